"""The final stage: several retrains (final.repeats), their mean ± std, and the ensemble as the shipped model."""

import json

import numpy as np
import pytest
import yaml

from conftest import Study, tiny_config
from snaketune import ConfigError, resolve_config
from snaketune.final import summarise_repeats


def test_repeats_are_summarised_per_test_metric():
    runs = [{"test_accuracy": 0.9, "test_loss": 0.3}, {"test_accuracy": 0.8, "test_loss": 0.5}]
    out = summarise_repeats(runs, ["test_accuracy", "test_loss"])
    assert out["test_accuracy_mean"] == pytest.approx(0.85) and out["test_accuracy_std"] == pytest.approx(0.05)
    assert out["test_loss_repeats"] == [0.3, 0.5]


@pytest.mark.parametrize(
    "final, command, fragment",
    [
        ({"repeats": 1, "ensemble": True}, None, "an ensemble needs several retrains"),
        ({"repeats": 3, "ensemble": True}, "python t.py", "only the built-in trainer's models"),
    ],
)
def test_impossible_final_settings_are_config_errors(final, command, fragment):
    cfg = tiny_config(final=final)
    if command:
        cfg.update(trainer={"command": command}, objective={"metric": "score", "direction": "maximize"})
    with pytest.raises(ConfigError, match=fragment):
        resolve_config(cfg)


@pytest.mark.workflow
def test_an_ensemble_of_retrains_is_the_shipped_model_and_each_retrain_is_reported(tmp_path):
    from snaketune.data import TEST, load_prepared
    from snaketune.predict import Ensemble, load_model

    s = Study(tmp_path, tiny_config(study="rep", final={"repeats": 3, "ensemble": True}))
    out = s.run()
    final = s.results / "final"
    results = [json.loads((final / f"repeat-{r}" / "result.json").read_text()) for r in range(3)]
    assert len({r["seed"] for r in results}) == 3  # each retrain has its own seed
    assert all(r["status"] == "ok" and r["stage"] == "final" for r in results)
    metrics = json.loads((final / "metrics.json").read_text())
    repeats = [r["metrics"]["test_accuracy"] for r in results]
    assert metrics["repeats"] == 3 and metrics["ensemble"] is True
    assert metrics["test_accuracy_repeats"] == repeats
    assert metrics["test_accuracy_mean"] == pytest.approx(np.mean(repeats))
    assert metrics["test_accuracy_std"] == pytest.approx(np.std(repeats))
    # The shipped model is the ensemble, and its reported score is what it scores on the test set.
    model = load_model(final / "model.pt")
    assert isinstance(model, Ensemble) and len(model.members) == 3
    data = load_prepared(s.results / "data" / "prepared.npz")
    test = data.split == TEST
    accuracy = (model.probabilities(data.X[test]).argmax(axis=1) == data.y[test]).mean()
    assert metrics["test_accuracy"] == pytest.approx(accuracy)
    summary = (s.results / "summary.txt").read_text()
    assert "an ensemble of 3 retrains" in summary and "retrains: " in summary and "± " in summary
    answer = (s.results / "report" / "answer.html").read_text()  # the page the report opens on
    assert f"test_accuracy = {metrics['test_accuracy']:.4g} (retrains: " in answer and " ± " in answer
    best = yaml.safe_load((s.results / "best.yaml").read_text())  # the answer: validation, test, gap
    assert best["test"]["value"] == metrics["test_accuracy"] and best["test"]["values"] == repeats
    assert best["test"]["mean"] == pytest.approx(np.mean(repeats)) and best["test"]["std"] == pytest.approx(np.std(repeats))
    assert best["gap"] == pytest.approx(metrics["test_accuracy"] - best["value"])
    assert "snaketune: study rep" in out.stdout
