"""Regression in the built-in trainer (issue 15): data.task, its detection rules, the regression
metrics, the target's standardisation, the random split and plain k-fold, the objective checks,
and prediction on the target's own scale."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml

from conftest import REPO, tiny_config
from make_regression_csv import make_regression_table, write_regression_csv
from snaketune import ConfigError, DataError, resolve_config
from snaketune.data import TEST, TRAIN, VAL, load_prepared, load_source, prepare, prepare_params, random_folds, random_split
from snaketune.task import (
    REGRESSION_OBJECTIVE,
    config_task,
    detect_task,
    expected_task,
    regression_metrics,
)
from snaketune.train import TrialSettings, train, trial_tensors


def data_cfg(path, **over):
    cfg = {"source": "csv", "path": str(path), "label_column": "y", "val_fraction": 0.2, "test_fraction": 0.2, "seed": 0}
    return {**cfg, **over}


@pytest.fixture(scope="module")
def regression_csv(tmp_path_factory):
    return write_regression_csv(tmp_path_factory.mktemp("csv") / "regression.csv")


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, regression_csv):
    path = tmp_path_factory.mktemp("data") / "prepared.npz"
    prepare(data_cfg(regression_csv), path, objective="val_rmse")
    return path


# -- the task: detection rules, each with the reason it gives ----------------------------------------


@pytest.mark.parametrize(
    "labels, configured, source, task, reason",
    [
        (np.array([0.5, 1.0]), "classification", None, "classification", "set in the config"),
        (np.array(["a", "b"]), "regression", None, "regression", "set in the config"),
        (np.array([]), "auto", "digits", "classification", "data.source digits holds classes"),
        (np.array([]), "auto", "diabetes", "regression", "data.source diabetes holds measured values"),
        (np.array(["cat", "dog", "cat"]), "auto", None, "classification", "the labels are text (e.g. 'cat'): classes"),
        (np.array([True, False]), "auto", None, "classification", "the labels are True/False"),
        (np.array([1.0, 2.0, -6.99]), "auto", None, "regression", "the labels include non-integer numbers (e.g. -6.99)"),
        (np.arange(100) % 20, "auto", None, "classification", "the labels are 20 distinct whole numbers (at most 20"),
        (np.arange(100.0) % 3, "auto", None, "classification", "the labels are 3 distinct whole numbers"),
        (
            np.r_[np.arange(21).repeat(2), 99],
            "auto",
            None,
            "regression",
            "the labels are 22 distinct whole numbers, and 1 of them (e.g. 99) are held by a single example",
        ),
    ],
    ids=[
        "set-classification",
        "set-regression",
        "source-classes",
        "source-values",
        "text",
        "bool",
        "non-integer",
        "few-integers",
        "whole-floats",
        "many-integers-one-single",
    ],
)
def test_each_detection_rule_decides_and_says_why(labels, configured, source, task, reason):
    decision = detect_task(labels, configured, source)
    assert decision.task == task and reason in decision.reason
    assert decision.message == f"task: {task} (data.task {configured}: {decision.reason})"


def test_many_integers_each_seen_twice_are_ambiguous_and_ask_for_data_task():
    with pytest.raises(DataError, match="set data.task: classification .* or data.task: regression"):
        detect_task(np.arange(30).repeat(2))


def test_the_prepare_log_and_summary_name_the_task_and_its_rule(tmp_path, regression_csv):
    summary = prepare(data_cfg(regression_csv), tmp_path / "p.npz")
    assert summary["task"] == "regression"
    assert summary["task_rule"].startswith("data.task auto: the labels include non-integer numbers (e.g. ")
    assert summary["features"] == ["x1", "x2", "x3", "x4"] and "classes" not in summary
    assert summary["target"]["std"] > 30 and 80 < summary["target"]["mean"] < 120
    p = load_prepared(tmp_path / "p.npz")
    assert p.is_regression and p.classes == [] and p.y.dtype == np.float64
    assert p.features == ["x1", "x2", "x3", "x4"]


def test_the_issues_csv_no_longer_fails_on_a_class_with_one_example(tmp_path):
    """Issue 15: a continuous target was read as classes ("class '-6.99…' has 1 example(s)")."""
    rng = np.random.default_rng(0)
    path = tmp_path / "issue.csv"
    X = rng.normal(size=(80, 2))
    rows = ["a,b,target"] + [f"{a},{b},{3 * a - b + rng.normal():.4f}" for a, b in X]
    path.write_text("\n".join(rows) + "\n")
    summary = prepare(data_cfg(path, label_column="target"), tmp_path / "p.npz")
    assert summary["task"] == "regression" and summary["split"] == {"train": 48, "validation": 16, "test": 16}
    # As classes (what the old reading did) it still fails, and says what to do.
    with pytest.raises(DataError, match=r"is data.label_column a class label\? \(data.task: regression"):
        prepare(data_cfg(path, label_column="target", task="classification"), tmp_path / "c.npz")


def test_integer_targets_like_diabetes_are_regression_and_diabetes_is_a_source(tmp_path):
    ds = load_source({"source": "diabetes", "seed": 0})
    assert ds.task == "regression" and ds.X.shape == (442, 10) and ds.features[:3] == ["age", "sex", "bmi"]
    assert np.all(ds.y == np.round(ds.y))  # whole numbers, yet many distinct ones, some seen once
    path = tmp_path / "d.npz"
    np.savez(path, X=ds.X, y=ds.y.astype(np.int64))
    assert load_source({"source": "npz", "path": str(path)}).task == "regression"


def test_text_labels_asked_to_be_regression_name_the_line(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("f,y\n1,2.5\n2,tall\n3,4.0\n")
    with pytest.raises(DataError, match="column 'y' must hold a number per example for regression, but line 3 holds 'tall'"):
        load_source(data_cfg(path, task="regression"))


# -- the objective against the task: at config time where the config knows it, else in prepare_data ---


@pytest.mark.parametrize(
    "data, objective, fragment",
    [
        ({"source": "diabetes"}, {}, "the objective val_accuracy is a classification metric, but the task is regression"),
        (
            {"source": "synthetic", "task": "regression"},
            {"metric": "val_rmse", "direction": "minimize"},
            "`data.task`: regression, but data.source synthetic holds classes",
        ),
        (
            {"source": "synthetic"},
            {"metric": "val_r2", "direction": "maximize"},
            "the objective val_r2 is a regression metric, but the task is classification",
        ),
        ({"source": "diabetes"}, {"metric": "val_r2", "direction": "minimize"}, "val_r2 should be maximized"),
    ],
)
def test_a_metric_of_the_other_task_is_a_config_error(data, objective, fragment):
    with pytest.raises(ConfigError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        resolve_config(tiny_config(data=data, objective=objective))


def test_a_classification_metric_on_a_regression_csv_is_a_config_error_when_the_task_is_set(tmp_path, regression_csv):
    cfg = tiny_config(objective={"metric": "val_accuracy", "direction": "maximize"})
    cfg["data"] = data_cfg(regression_csv, task="regression")
    with pytest.raises(ConfigError, match=f"set {REGRESSION_OBJECTIVE}".replace("{", r"\{").replace("}", r"\}")):
        resolve_config(cfg)


def test_a_classification_metric_on_a_detected_regression_target_stops_prepare_data(tmp_path, regression_csv):
    cfg = resolve_config({**tiny_config(), "data": data_cfg(regression_csv)})  # auto: the config cannot know
    assert config_task(cfg) is None and expected_task(cfg) == "classification"  # the default objective's task
    with pytest.raises(DataError) as e:
        prepare(cfg["data"], tmp_path / "p.npz", objective="val_accuracy")
    message = str(e.value)
    assert "the objective val_accuracy is a classification metric, but the task is regression" in message
    assert f"set {REGRESSION_OBJECTIVE}" in message and "column 'y' decided it (task: regression (data.task auto" in message
    assert "if that is wrong, set data.task: classification" in message
    assert not (tmp_path / "p.npz").exists()
    prepare(cfg["data"], tmp_path / "p.npz", objective="val_rmse")  # a regression metric: fine


def test_expected_task_is_what_the_workflow_plans_the_report_for(regression_csv):
    base = {**tiny_config(), "data": data_cfg(regression_csv)}
    rmse = resolve_config({**base, "objective": {"metric": "val_rmse", "direction": "minimize"}})
    loss = resolve_config({**base, "objective": {"metric": "val_loss", "direction": "minimize"}})
    assert expected_task(rmse) == "regression" and expected_task(loss) is None
    assert expected_task(resolve_config(tiny_config())) == "classification"


def test_a_trial_with_a_classification_objective_on_regression_data_fails_with_the_reason(tmp_path, prepared):
    (tmp_path / "params.yaml").write_text("epochs: 1\n")
    with pytest.raises(ConfigError, match="the objective val_accuracy is a classification metric, but the task is regression"):
        train(TrialSettings(params=tmp_path / "params.yaml", out=tmp_path, data=prepared))


def test_prepare_params_leave_out_the_default_task_so_older_studies_are_not_prepared_again():
    data = {"source": "csv", "path": "x.csv", "task": "auto"}
    assert prepare_params(data) == {"source": "csv", "path": "x.csv"}
    assert prepare_params({**data, "task": "regression"})["task"] == "regression"


# -- the split: random for regression; folds are plain k-fold, never empty ------------------------------


def test_the_regression_split_is_random_seeded_and_sized():
    split = random_split(300, 0.2, 0.25, seed=1)
    assert [(split == k).sum() for k in (TRAIN, VAL, TEST)] == [165, 60, 75]
    assert np.array_equal(split, random_split(300, 0.2, 0.25, seed=1))
    assert not np.array_equal(split, random_split(300, 0.2, 0.25, seed=2))
    with pytest.raises(DataError, match="4 example.s. are too few"):
        random_split(4, 0.1, 0.1, 0)


@pytest.mark.parametrize("k", [2, 3, 7, 48])
def test_regression_folds_are_plain_k_fold_and_never_empty(k):
    split = random_split(80, 0.2, 0.4, seed=0)  # 48 examples outside the test part
    fold = random_folds(split, k, seed=0)
    assert np.all(fold[split == TEST] == -1)
    sizes = np.bincount(fold[split != TEST], minlength=k)
    assert len(sizes) == k and sizes.min() >= 1 and sizes.max() - sizes.min() <= 1
    with pytest.raises(DataError, match="48 example.s. outside the test part are too few for cv.folds=49"):
        random_folds(split, 49, seed=0)


def test_a_cross_validated_regression_trial_trains_on_its_folds(tmp_path, regression_csv):
    prepare(data_cfg(regression_csv), tmp_path / "cv.npz", folds=3)
    p = load_prepared(tmp_path / "cv.npz")
    for f in range(3):
        train_rows, eval_rows = p.rows("search", f)
        assert eval_rows.sum() == 80 and train_rows.sum() == 160 and not (train_rows & eval_rows).any()
    (tmp_path / "params.yaml").write_text("epochs: 3\nhidden_units: 8\n")
    m = train(TrialSettings(params=tmp_path / "params.yaml", out=tmp_path / "f1", data=tmp_path / "cv.npz", fold=1,
                            metric="val_rmse", direction="minimize"))  # fmt: skip
    assert np.isfinite(m["val_rmse"])


# -- the metrics ---------------------------------------------------------------------------------------


def test_regression_metrics_agree_with_scikit_learn():
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    rng = np.random.default_rng(0)
    y = rng.normal(50, 10, size=200)
    p = y + rng.normal(0, 3, size=200)
    m = regression_metrics(p, y, scale=10.0)
    assert m["rmse"] == pytest.approx(mean_squared_error(y, p) ** 0.5)
    assert m["mae"] == pytest.approx(mean_absolute_error(y, p))
    assert m["r2"] == pytest.approx(r2_score(y, p))
    assert m["loss"] == pytest.approx(mean_squared_error(y, p) / 100)  # MSE of the standardised target
    assert np.isnan(regression_metrics(np.ones(3), np.full(3, 2.0), 1.0)["r2"])  # no variance to explain
    assert all(np.isnan(v) for v in regression_metrics(np.zeros(0), np.zeros(0), 1.0).values())


def test_a_search_run_reports_the_regression_metrics_and_stops_early_on_the_objective(tmp_path, prepared):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"lr": 0.03, "hidden_units": 16, "batch_size": 16, "epochs": 300}))
    m = train(TrialSettings(params=tmp_path / "params.yaml", out=tmp_path / "s", data=prepared, metric="val_rmse",
                            direction="minimize", patience=5, seed=1))  # fmt: skip
    history = (tmp_path / "s" / "history.csv").read_text().splitlines()
    assert history[0] == "epoch,train_loss,val_loss,val_rmse,val_mae,val_r2,seconds"
    assert {"val_rmse", "val_mae", "val_r2", "val_loss"} <= set(m) and "val_accuracy" not in m
    assert m["epochs_run"] == m["best_epoch"] + 5 < 300
    rmse = [float(line.split(",")[3]) for line in history[1:]]
    assert m["val_rmse"] == pytest.approx(min(rmse), rel=1e-6)  # the best epoch's weights are kept
    assert m["val_rmse"] < 0.5 * 45 and m["val_r2"] > 0.5  # far below the target's std (about 45)
    # val_loss is the MSE of the target standardised with the training rows' statistics.
    p = load_prepared(prepared)
    train_y = p.y[p.split == TRAIN]
    assert m["val_loss"] == pytest.approx(m["val_rmse"] ** 2 / train_y.std(ddof=1) ** 2, rel=1e-6)


def test_a_resumed_regression_run_equals_an_uninterrupted_one(tmp_path, prepared):
    """What a multi-fidelity rung does: continue a checkpoint to a larger budget."""
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"lr": 0.01, "hidden_units": 16, "epochs": 8}))

    def run(name, **kw):
        return train(TrialSettings(params=tmp_path / "params.yaml", out=tmp_path / name, data=prepared, metric="val_r2",
                                   direction="maximize", patience=0, restore_best=False, **kw))  # fmt: skip

    whole = run("whole", budget=6)
    run("part", budget=3)
    rest = run("rest", budget=6, resume=tmp_path / "part" / "checkpoint.pt")
    strip = lambda m: {k: v for k, v in m.items() if k not in ("train_seconds", "epochs_this_run")}  # noqa: E731
    assert strip(rest) == strip(whole)


# -- the target's standardisation, round trip: trained on the standardised scale, predicting on its own --


def test_the_target_is_standardised_with_the_training_rows_and_restored_in_predictions(tmp_path, prepared):
    from snaketune.predict import Ensemble, Regressor, load_model, save_ensemble

    p = load_prepared(prepared)
    data = trial_tensors(p, "search", 0, torch.device("cpu"))
    train_y = p.y[p.split == TRAIN]
    assert data.target_mean == pytest.approx(train_y.mean()) and data.target_std == pytest.approx(train_y.std(ddof=1))
    assert data.y_train.mean().item() == pytest.approx(0, abs=1e-5) and data.y_train.std().item() == pytest.approx(1, abs=1e-5)
    restored = data.y_train.double().numpy() * data.target_std + data.target_mean
    assert np.allclose(restored, train_y, rtol=1e-6)  # the round trip, to float32's precision
    assert np.array_equal(data.y_eval.numpy(), p.y[p.split == VAL])  # evaluated on its own scale

    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"lr": 0.01, "hidden_units": 32, "epochs": 40}))
    for seed in (0, 1):
        train(TrialSettings(params=tmp_path / "params.yaml", out=tmp_path / f"final{seed}", data=prepared, stage="final",
                            budget=40, seed=seed, metric="val_rmse", direction="minimize"))  # fmt: skip
    metrics = json.loads((tmp_path / "final0" / "metrics.json").read_text())
    assert {"test_rmse", "test_mae", "test_r2", "test_loss"} <= set(metrics) and "test_accuracy" not in metrics
    saved = torch.load(tmp_path / "final0" / "model.pt", weights_only=True)
    final_y = p.y[p.split != TEST]  # the final stage trains on train+validation: its statistics
    assert saved["task"] == "regression" and saved["classes"] == [] and saved["features"] == ["x1", "x2", "x3", "x4"]
    assert saved["target"]["mean"] == pytest.approx(final_y.mean())
    assert saved["target"]["std"] == pytest.approx(final_y.std(ddof=1))

    model = load_model(tmp_path / "final0" / "model.pt")
    assert isinstance(model, Regressor)
    X, y = p.X[p.split == TEST], p.y[p.split == TEST]
    predicted = model.predict(X)
    assert predicted.shape == y.shape and abs(predicted.mean() - y.mean()) < 0.25 * y.std()  # the target's scale
    assert np.sqrt(np.mean((predicted - y) ** 2)) == pytest.approx(metrics["test_rmse"], rel=1e-6)
    with pytest.raises(DataError, match="regression model"):
        model.probabilities(X)

    save_ensemble(tmp_path / "ensemble.pt", [tmp_path / f"final{s}" / "model.pt" for s in (0, 1)])
    ensemble = load_model(tmp_path / "ensemble.pt")
    assert isinstance(ensemble, Ensemble) and ensemble.task == "regression"
    members = [load_model(tmp_path / f"final{s}" / "model.pt").predict(X) for s in (0, 1)]
    assert not np.allclose(members[0], members[1])
    assert np.allclose(ensemble.predict(X), (members[0] + members[1]) / 2)


def test_predict_reads_feature_rows_by_column_name_and_names_what_is_missing(tmp_path, prepared):
    from snaketune.predict import main

    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"lr": 0.01, "hidden_units": 8, "epochs": 3}))
    train(TrialSettings(params=tmp_path / "params.yaml", out=tmp_path / "final", data=prepared, stage="final", budget=3))
    X, _ = make_regression_table(5, seed=9)
    rows = ["y,x4,x3,x2,x1,comment"] + [f"0,{r[3]},{r[2]},{r[1]},{r[0]},x" for r in X]  # another column order
    (tmp_path / "new.csv").write_text("\n".join(rows) + "\n")
    from snaketune.predict import load_model

    model = load_model(tmp_path / "final" / "model.pt")
    table, names = model.load_table(tmp_path / "new.csv")
    assert np.allclose(table, X.astype(np.float32)) and names[0] == f"{tmp_path / 'new.csv'}:2"
    (tmp_path / "short.csv").write_text("x1,x2\n1,2\n")
    proc = subprocess.run(
        [sys.executable, "-m", "snaketune.predict", str(tmp_path / "final" / "model.pt"), str(tmp_path / "short.csv")],
        capture_output=True, text=True, cwd=REPO,
    )  # fmt: skip
    assert proc.returncode == 2 and "lacks the feature column(s) 'x3', 'x4' the model was trained on" in proc.stderr
    assert main([str(tmp_path / "final" / "model.pt"), str(tmp_path / "new.csv")]) == 0
