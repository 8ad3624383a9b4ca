"""A regression study on a CSV through the real snakemake CLI: search (cross-validated, early
stopping), retrain (an ensemble of two), predict on the target's own scale (snaketune.predict and
the snaketune-predict command), the answer in best.yaml and the report's test-set figure."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import yaml

from conftest import BIN, Study, tiny_config
from make_regression_csv import make_regression_table, write_regression_csv

pytestmark = pytest.mark.workflow


def regression_config(**over):
    settings = dict(
        study="reg",
        objective={"metric": "val_rmse", "direction": "minimize"},  # the objective of a regression study
        search_space={"lr": [0.01, 0.03], "n_layers": [1, 2], "hidden_units": 32, "batch_size": 32, "epochs": 60},
        search={"trials_per_job": 6},  # 4 trials x 3 folds in two jobs: torch imported twice, not 12 times
        early_stopping={"patience": 8},
        cv={"folds": 3},
        final={"repeats": 2, "ensemble": True},
    )
    cfg = tiny_config(**{**settings, **over})
    cfg["data"] = {"source": "csv", "path": "regression.csv", "label_column": "y"}  # data.task: auto decides
    return cfg


def test_a_regression_study_on_a_csv_searches_retrains_and_predicts_on_the_targets_scale(tmp_path):
    from snaketune.data import TEST, load_prepared
    from snaketune.predict import Ensemble, load_model

    write_regression_csv(tmp_path / "regression.csv")  # 300 rows, y of std about 45 around 100
    s = Study(tmp_path, regression_config())
    out = s.run()

    # prepare_data decided the task from the labels, and says by which rule.
    summary = json.loads((s.results / "data" / "summary.json").read_text())
    assert summary["task"] == "regression" and "non-integer numbers" in summary["task_rule"]
    log = (s.results / "logs" / "prepare_data.log").read_text()
    assert "task: regression (data.task auto: the labels include non-integer numbers (e.g. " in log
    target_std = summary["target"]["std"]

    # The search: regression metrics in the table, best (lowest RMSE) first, far below the target's std.
    table = s.table()
    assert len(table) == 4 and set(table["status"]) == {"ok"} and set(table["folds"]) == {3}
    assert {"val_rmse", "val_mae", "val_r2", "val_loss", "objective_std"} <= set(table.columns)
    assert "val_accuracy" not in table.columns
    assert list(table["objective"]) == sorted(table["objective"])  # minimize
    assert table["objective"][0] < 0.5 * target_std and table["val_r2"][0] > 0.5

    # The final stage: an ensemble of two retrains, test metrics named by the one rule.
    final = json.loads((s.results / "final" / "metrics.json").read_text())
    assert {"test_rmse", "test_mae", "test_r2", "test_loss", "test_rmse_mean", "test_rmse_std"} <= set(final)
    assert "test_accuracy" not in final and final["ensemble"] is True
    assert final["test_r2"] > 0.5 and final["test_rmse"] < 0.5 * target_std
    best = yaml.safe_load((s.results / "best.yaml").read_text())
    assert best["metric"] == "val_rmse" and best["test"]["metric"] == "test_rmse"
    assert best["test"]["value"] == final["test_rmse"] and best["gap"] == pytest.approx(final["test_rmse"] - best["value"])
    assert "test_rmse = " in (s.results / "summary.txt").read_text() and "test_rmse = " in out.stdout

    # snaketune.predict: the shipped ensemble predicts values on the target's own scale.
    model = load_model(s.results / "final" / "model.pt")
    assert isinstance(model, Ensemble) and model.task == "regression" and len(model.members) == 2
    data = load_prepared(s.results / "data" / "prepared.npz")
    test = data.split == TEST
    predicted = model.predict(data.X[test])
    assert np.sqrt(np.mean((predicted - data.y[test]) ** 2)) == pytest.approx(final["test_rmse"], rel=1e-6)

    # The snaketune-predict command on new rows (a CSV with the training columns, label included).
    X_new, y_new = make_regression_table(40, seed=123)
    rows = ["x1,x2,x3,x4,y"] + [",".join(f"{v:.6f}" for v in (*x, t)) for x, t in zip(X_new, y_new)]
    (tmp_path / "new.csv").write_text("\n".join(rows) + "\n")
    command = shutil.which("snaketune-predict", path=str(BIN)) or shutil.which("snaketune-predict")
    cli = [command] if command else [sys.executable, "-m", "snaketune.predict"]
    proc = subprocess.run([*cli, str(s.results / "final" / "model.pt"), "new.csv"], capture_output=True, text=True,
                          cwd=tmp_path, check=True)  # fmt: skip
    lines = [line.split("\t") for line in proc.stdout.splitlines()]
    assert [name for name, _ in lines] == [f"new.csv:{i + 2}" for i in range(40)]
    values = np.array([float(v) for _, v in lines])
    assert np.allclose(values, model.predict(X_new.astype(np.float32)), rtol=1e-5)
    assert np.sqrt(np.mean((values - y_new) ** 2)) < 0.5 * target_std  # new data, the target's scale

    # The report: predicted against true values, no confusion matrix.
    figures = s.results / "report"
    assert (figures / "predictions.png").stat().st_size > 0 and not (figures / "confusion_matrix.png").exists()
    assert "WARNING" not in (s.results / "logs" / "plot_predictions.log").read_text()


def test_a_classification_objective_on_a_regression_csv_stops_before_any_trial(tmp_path):
    write_regression_csv(tmp_path / "regression.csv")
    cfg = regression_config(objective={"metric": "val_accuracy", "direction": "maximize"})
    s = Study(tmp_path, cfg)
    proc = s.run(check=False)
    assert proc.returncode != 0
    message = proc.stdout + proc.stderr
    assert "the objective val_accuracy is a classification metric, but the task is regression" in message
    assert "set objective: {metric: val_rmse, direction: minimize}" in message
    assert not (s.results / "trials").exists()
