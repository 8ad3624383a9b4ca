"""The built-in trainer: early stopping, determinism, the final stage, no peeking at test."""

import csv
import json

import numpy as np
import pytest
import torch
import yaml

from snaketune.data import TEST, prepare
from snaketune.train import TrainFailed, TrialSettings, train


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "prepared.npz"
    prepare({"source": "synthetic", "n_samples": 600, "val_fraction": 0.2, "test_fraction": 0.2, "seed": 0}, path)
    return path


def run(tmp_path, data, params, name="t", **kw):
    out = tmp_path / name
    out.mkdir(exist_ok=True)
    (out / "params.yaml").write_text(yaml.safe_dump(params))
    settings = TrialSettings(params=out / "params.yaml", out=out, data=data, **kw)
    metrics = train(settings)
    with open(out / "history.csv") as fh:
        history = list(csv.DictReader(fh))
    assert json.loads((out / "metrics.json").read_text()) == metrics
    return metrics, history


def test_early_stopping_stops_and_restores_the_best_epoch(tmp_path, prepared):
    params = {"lr": 0.05, "n_layers": 2, "hidden_units": 64, "batch_size": 16, "epochs": 200}
    m, hist = run(tmp_path, prepared, params, metric="val_loss", direction="minimize", patience=3, seed=1)
    assert m["epochs_run"] < 200, "a large learning rate must overfit and stop early"
    assert m["epochs_run"] == m["best_epoch"] + 3
    losses = [float(r["val_loss"]) for r in hist]
    assert m["best_epoch"] == int(np.argmin(losses)) + 1
    # The reported metrics are those of the restored best epoch, not of the last one.
    assert m["val_loss"] == pytest.approx(losses[m["best_epoch"] - 1], rel=1e-6)
    assert m["val_loss"] < losses[-1]


def test_patience_zero_trains_every_epoch(tmp_path, prepared):
    m, hist = run(tmp_path, prepared, {"epochs": 4, "hidden_units": 8}, patience=0)
    assert m["epochs_run"] == len(hist) == 4
    assert set(hist[0]) == {"epoch", "train_loss", "val_loss", "val_accuracy", "seconds"}


def test_deterministic_for_a_seed(tmp_path, prepared):
    params = {
        "lr": 0.01,
        "n_layers": 2,
        "hidden_units": 32,
        "dropout": 0.2,
        "epochs": 5,
        "optimizer": "adamw",
        "weight_decay": 0.01,
    }
    a, ha = run(tmp_path, prepared, params, "a", seed=7, patience=0)
    b, hb = run(tmp_path, prepared, params, "b", seed=7, patience=0)
    c, _ = run(tmp_path, prepared, params, "c", seed=8, patience=0)
    strip = lambda h: [{k: v for k, v in r.items() if k != "seconds"} for r in h]  # noqa: E731
    assert strip(ha) == strip(hb)
    assert a["val_loss"] == b["val_loss"]
    assert c["val_loss"] != a["val_loss"]


def test_search_never_reads_the_test_part(tmp_path, prepared):
    # Poison the test rows: any use of them in training, scaling or validation gives NaN.
    with np.load(prepared) as f:
        arrays = dict(f)
    arrays["X"][arrays["split"] == TEST] = np.nan
    poisoned = tmp_path / "poisoned.npz"
    np.savez(poisoned, **arrays)
    m, _ = run(tmp_path, poisoned, {"epochs": 3}, patience=0)
    assert np.isfinite(m["val_loss"]) and m["val_accuracy"] > 0.5
    # ... while the final stage, which does read the test part, sees the poison.
    out = tmp_path / "final"
    out.mkdir()
    (out / "params.yaml").write_text(yaml.safe_dump({"epochs": 1}))
    fm = train(TrialSettings(params=out / "params.yaml", out=out, data=poisoned, stage="final"))
    assert np.isnan(fm["test_loss"])


def test_final_stage_trains_the_budget_and_saves_a_safe_model(tmp_path, prepared):
    m, hist = run(tmp_path, prepared, {"epochs": 50, "n_layers": 1}, "final", stage="final", budget=3)
    assert m["epochs_run"] == 3 and "test_accuracy" in m and "test_loss" in m and "val_accuracy" not in m
    payload = torch.load(tmp_path / "final" / "model.pt", weights_only=True)
    assert payload["classes"] == ["class0", "class1", "class2"]
    assert payload["input_shape"] == [16]
    assert payload["hparams"]["n_layers"] == 1
    assert set(payload["state_dict"]) == {"0.weight", "0.bias", "2.weight", "2.bias"}


def test_divergence_is_a_clear_failure(tmp_path, prepared):
    with pytest.raises(TrainFailed, match="diverged at epoch 1"):
        run(tmp_path, prepared, {"lr": 1e12, "optimizer": "sgd", "momentum": 0.0, "epochs": 3, "hidden_units": 8}, patience=0)
