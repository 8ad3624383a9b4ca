"""The built-in trainer: early stopping, determinism, the final stage, no peeking at test."""

import csv
import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from snaketune.data import TEST, VAL, prepare
from snaketune.train import EarlyStopping, TrainFailed, TrialSettings, checkpoint_identity, train


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


def test_without_restore_best_the_scores_and_the_best_epoch_are_the_last_epochs(tmp_path, prepared):
    """A multi-fidelity rung keeps its last weights: its score is the last epoch's, and so is its
    best epoch (what the final retrain trains), so the two never disagree."""
    params = {"lr": 0.05, "n_layers": 2, "hidden_units": 64, "batch_size": 16, "epochs": 30}
    m, hist = run(tmp_path, prepared, params, metric="val_loss", direction="minimize", patience=0, restore_best=False, seed=1)
    losses = [float(r["val_loss"]) for r in hist]
    assert min(losses) < losses[-1], "a large learning rate must overfit: the last epoch is not the best"
    assert m["best_epoch"] == m["epochs_run"] == 30
    assert m["val_loss"] == pytest.approx(losses[-1], rel=1e-6)


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


def test_early_stopping_counts_epochs_without_improvement_beyond_min_delta():
    model = torch.nn.Linear(2, 2)
    stop = EarlyStopping("maximize", patience=2, min_delta=0.01)
    assert not stop.update(0.50, 1, model) and stop.best_epoch == 1
    assert not stop.update(0.505, 2, model) and stop.stale == 1  # within min_delta: no improvement
    assert not stop.update(0.52, 3, model) and (stop.best_epoch, stop.stale) == (3, 0)
    assert not stop.update(0.40, 4, model)
    assert stop.update(0.51, 5, model) and stop.stopped and stop.best_value == 0.52
    down = EarlyStopping("minimize", patience=0)
    assert not any(down.update(v, e, model) for e, v in enumerate([1.0, 0.5, 0.7, 0.8, 0.9, 1.0], 1))
    assert (down.best_epoch, down.stale, down.stopped) == (2, 4, False)  # patience 0: tracks, never stops


def test_early_stopping_keeps_a_copy_of_the_best_weights_and_round_trips():
    model = torch.nn.Linear(2, 2)
    stop = EarlyStopping("minimize", patience=3)
    stop.update(1.0, 1, model)
    best = model.weight.detach().clone()
    with torch.no_grad():
        model.weight.add_(1.0)
    stop.update(2.0, 2, model)
    assert torch.equal(stop.best_state["weight"], best)  # a copy, not the live weights
    again = EarlyStopping("minimize", patience=3)
    again.load_state_dict(stop.state_dict())
    assert again == stop
    lean = EarlyStopping(keep_best=False)
    lean.update(1.0, 1, model)
    assert lean.best_state is None


# Settings that do not change what a run computes: where it runs and writes, how far it goes now.
NOT_IN_IDENTITY = {"params", "out", "data", "budget", "resume", "device", "threads", "checkpoint", "checkpoint_every"}


def test_the_checkpoint_identity_holds_every_setting_that_changes_a_run(tmp_path, prepared):
    def other(value):
        if isinstance(value, bool):
            return not value
        if isinstance(value, (int, float)):
            return value + 1
        if isinstance(value, str):
            return value + "-other"
        return Path(copy) if value == prepared else Path("elsewhere")

    base = TrialSettings(params=tmp_path / "params.yaml", out=tmp_path, data=prepared)
    copy = shutil.copy2(prepared, tmp_path / "copy.npz")  # the same data (size, mtime) under another name
    identity = checkpoint_identity(base, {"lr": 0.1})
    for field in dataclasses.fields(TrialSettings):
        changed = checkpoint_identity(dataclasses.replace(base, **{field.name: other(getattr(base, field.name))}), {"lr": 0.1})
        if field.name in NOT_IN_IDENTITY:
            assert changed == identity, field.name
        else:
            assert changed != identity, f"{field.name} changes what a run computes but not its checkpoint's identity"
    assert checkpoint_identity(base, {"lr": 0.2}) != identity


def test_the_final_stage_evaluates_the_test_rows_exactly_once(tmp_path, prepared, monkeypatch, capsys):
    """Once the model is fixed, after the last epoch: never per epoch, never for early stopping."""
    import snaketune.train as trainer

    with np.load(prepared) as f:
        split, y = f["split"], torch.from_numpy(f["y"])
    real, calls = trainer.evaluate, []
    monkeypatch.setattr(trainer, "evaluate", lambda model, X, labels: (calls.append(labels.clone()), real(model, X, labels))[1])
    m, hist = run(tmp_path, prepared, {"epochs": 50, "hidden_units": 8}, "final", stage="final", budget=4, patience=2)
    assert len(calls) == 1 and torch.equal(calls[0], y[split == TEST])
    assert m["epochs_run"] == m["best_epoch"] == 4 and "test_accuracy" in m and "test_loss" in m
    assert list(hist[0]) == ["epoch", "train_loss", "seconds"]  # no test_* column
    epoch_lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("epoch")]
    assert len(epoch_lines) == 4 and not any("test" in ln or "val" in ln for ln in epoch_lines)

    # The search stage still evaluates the validation rows after every epoch (and once with the kept weights).
    calls.clear()
    m, hist = run(tmp_path, prepared, {"epochs": 3, "hidden_units": 8}, "search", patience=0)
    assert len(calls) == 3 + 1 and all(torch.equal(c, y[split == VAL]) for c in calls)
    assert {"val_loss", "val_accuracy"} <= set(hist[0])


def test_final_repeats_with_other_seeds_are_distinct_models_that_load_on_their_own(tmp_path, prepared):
    """The final stage's repeats (an ensemble's members) differ by SNAKETUNE_SEED alone; each model.pt
    holds everything prediction needs."""
    from snaketune.predict import load_model

    params = {"epochs": 50, "hidden_units": 16, "lr_schedule": "cosine"}
    for seed in (0, 1):
        run(tmp_path, prepared, params, f"final{seed}", stage="final", budget=3, seed=seed)
    a, b = (torch.load(tmp_path / f"final{s}" / "model.pt", weights_only=True) for s in (0, 1))
    assert (a["seed"], b["seed"]) == (0, 1)
    assert a["hparams"] == b["hparams"] and a["hparams"]["lr_schedule"] == "cosine"
    assert not torch.equal(a["state_dict"]["0.weight"], b["state_dict"]["0.weight"])
    with np.load(prepared) as f:
        X = f["X"][f["split"] == TEST]
    models = [load_model(tmp_path / f"final{s}" / "model.pt") for s in (0, 1)]
    probs = [m.probabilities(X) for m in models]
    assert all(p.shape == (len(X), 3) and np.allclose(p.sum(axis=1), 1, atol=1e-5) for p in probs)
    assert not np.allclose(probs[0], probs[1])
    assert models[0].classes == models[1].classes == ["class0", "class1", "class2"]
