"""Checkpoints: a resumed trial ends exactly where an uninterrupted one does; SIGTERM keeps the checkpoint."""

import os
import signal
import subprocess
import sys
import time
from dataclasses import replace

import pytest
import torch
import yaml

from conftest import run_spec
from snaketune.data import prepare
from snaketune.runner import run_trial
from snaketune.train import TrialSettings, train

PARAMS = {
    "lr": 0.01,
    "n_layers": 2,
    "hidden_units": 32,
    "dropout": 0.1,
    "batch_size": 32,
    "epochs": 8,
    "optimizer": "adamw",
    "weight_decay": 0.01,
}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "prepared.npz"
    prepare({"source": "synthetic", "n_samples": 600, "val_fraction": 0.2, "test_fraction": 0.2, "seed": 0}, path)
    return path


def settings(tmp_path, data, name, params=PARAMS, **kw):
    out = tmp_path / name
    out.mkdir(exist_ok=True)
    (out / "params.yaml").write_text(yaml.safe_dump(params))
    return TrialSettings(params=out / "params.yaml", out=out, data=data, **{"seed": 3, **kw})


def without_seconds(path):
    lines = path.read_text().splitlines()
    return [",".join(line.split(",")[:-1]) for line in lines]  # drop the `seconds` column


@pytest.mark.parametrize("patience", [0, 2])
def test_resumed_trial_equals_uninterrupted(tmp_path, data, patience):
    full = train(settings(tmp_path, data, "full", patience=patience))
    part = settings(tmp_path, data, "part", patience=patience, budget=3)
    first = train(part)
    assert first["epochs_run"] == 3 and (tmp_path / "part" / "checkpoint.pt").is_file()
    rest = train(settings(tmp_path, data, "rest", patience=patience, resume=tmp_path / "part" / "checkpoint.pt"))
    assert rest["epochs_this_run"] == full["epochs_run"] - 3  # only the missing epochs were trained
    for key in ("val_loss", "val_accuracy", "best_epoch", "epochs_run", "train_loss"):
        assert rest[key] == full[key], key
    assert without_seconds(tmp_path / "rest" / "history.csv") == without_seconds(tmp_path / "full" / "history.csv")


@pytest.mark.parametrize(
    "schedule",
    [{"lr_schedule": "cosine", "warmup_epochs": 2}, {"lr_schedule": "step", "lr_step_size": 2, "lr_gamma": 0.5}],
    ids=lambda s: s["lr_schedule"],
)
def test_a_resume_in_the_middle_of_a_schedule_equals_uninterrupted(tmp_path, data, schedule):
    """The lr is a function of the epoch and the `epochs` parameter, not of the budget: the run
    resumed after epoch 3 (a promoted multi-fidelity trial) trains on along the same schedule."""
    params = dict(PARAMS, lr=0.05, **schedule)
    full = train(settings(tmp_path, data, "full", params=params, patience=0))
    train(settings(tmp_path, data, "part", params=params, patience=0, budget=3))
    rest = train(settings(tmp_path, data, "rest", params=params, patience=0, resume=tmp_path / "part" / "checkpoint.pt"))
    assert rest["epochs_this_run"] == 8 - 3
    for key in ("val_loss", "val_accuracy", "best_epoch", "epochs_run", "train_loss"):
        assert rest[key] == full[key], key
    history = without_seconds(tmp_path / "rest" / "history.csv")
    assert history == without_seconds(tmp_path / "full" / "history.csv")
    assert history[0].endswith(",lr") and len({line.rsplit(",", 1)[1] for line in history[1:]}) > 2


def test_a_resumed_final_retrain_equals_uninterrupted(tmp_path, data):
    """A preempted final retrain continues from its checkpoint; the test rows are still evaluated once, at the end."""
    params = dict(PARAMS, lr_schedule="cosine")
    full = train(settings(tmp_path, data, "full", params=params, stage="final", budget=6))
    part = settings(tmp_path, data, "cut", params=params, stage="final", budget=2)
    train(part)
    rest = train(settings(tmp_path, data, "rest", params=params, stage="final", budget=6, resume=part.out / "checkpoint.pt"))
    assert rest["epochs_this_run"] == 4
    for key in ("test_loss", "test_accuracy", "epochs_run", "best_epoch", "train_loss"):
        assert rest[key] == full[key], key
    assert without_seconds(tmp_path / "rest" / "history.csv") == without_seconds(tmp_path / "full" / "history.csv")


def test_a_checkpoint_of_other_parameters_is_ignored(tmp_path, data, capsys):
    train(settings(tmp_path, data, "a", budget=2))
    other = dict(PARAMS, lr=0.02)
    m = train(settings(tmp_path, data, "b", params=other, budget=2, resume=tmp_path / "a" / "checkpoint.pt"))
    assert m["epochs_run"] == 2
    assert "belongs to other settings (params " in capsys.readouterr().out


def test_a_checkpoint_made_for_another_objective_is_ignored(tmp_path, data, capsys):
    """A study whose objective changed must not continue runs whose early stopping and best
    weights followed the old one."""
    train(settings(tmp_path, data, "acc", budget=2, metric="val_accuracy"))
    m = train(settings(tmp_path, data, "loss", budget=3, metric="val_loss", resume=tmp_path / "acc" / "checkpoint.pt"))
    assert m["epochs_this_run"] == 3 == m["epochs_run"]  # started afresh
    out = capsys.readouterr().out
    assert "metric 'val_accuracy' there, 'val_loss' here" in out and "resumed from" not in out


@pytest.mark.parametrize(
    "change",
    [{"direction": "minimize"}, {"patience": 3}, {"min_delta": 0.01}, {"restore_best": False}, {"seed": 4}, {"stage": "final"}],
    ids=lambda c: next(iter(c)),
)
def test_every_setting_that_changes_the_run_is_part_of_the_identity(tmp_path, data, capsys, change):
    train(settings(tmp_path, data, "a", budget=2))
    m = train(settings(tmp_path, data, "b", budget=3, resume=tmp_path / "a" / "checkpoint.pt", **change))
    assert m["epochs_this_run"] == 3, "started afresh"
    assert f"{next(iter(change))} " in capsys.readouterr().out.split("belongs to other settings", 1)[1]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="resuming on a CUDA device needs one")
@pytest.mark.parametrize("optimizer", ["adamw", "sgd"])
def test_resumed_trial_on_cuda_equals_uninterrupted(tmp_path, data, optimizer):
    """The checkpoint's tensors (model, optimiser state, best weights) go to the training device, so
    the first step after a resume runs on CUDA; the run then ends where an uninterrupted one does."""
    params = dict(PARAMS, optimizer=optimizer, momentum=0.9)
    kw = {"params": params, "device": "cuda", "patience": 2, "checkpoint_every": 0}
    full = train(settings(tmp_path, data, "full", **kw))
    first = train(settings(tmp_path, data, "part", budget=3, **kw))
    assert first["device"] == "cuda" and first["epochs_run"] == 3
    rest = train(settings(tmp_path, data, "rest", resume=tmp_path / "part" / "checkpoint.pt", **kw))
    assert rest["device"] == "cuda"
    assert rest["epochs_this_run"] == full["epochs_run"] - 3  # only the missing epochs were trained
    assert (rest["epochs_run"], rest["best_epoch"]) == (full["epochs_run"], full["best_epoch"])
    for key in ("val_loss", "val_accuracy", "train_loss"):
        assert rest[key] == pytest.approx(full[key], rel=1e-5), key
    resumed = [line.split(",") for line in without_seconds(tmp_path / "rest" / "history.csv")]
    uninterrupted = [line.split(",") for line in without_seconds(tmp_path / "full" / "history.csv")]
    assert [r[0] for r in resumed] == [r[0] for r in uninterrupted]
    for a, b in zip(resumed[1:], uninterrupted[1:]):
        assert [float(v) for v in a[1:]] == pytest.approx([float(v) for v in b[1:]], rel=1e-5)


def trainer_env(tmp_path, data, name, **extra):
    s = settings(tmp_path, data, name)
    env = {
        **os.environ,
        "SNAKETUNE_PARAMS": str(s.params),
        "SNAKETUNE_OUT": str(s.out),
        "SNAKETUNE_DATA": str(data),
        "SNAKETUNE_SEED": "3",
        "SNAKETUNE_PATIENCE": "0",
        **extra,
    }
    return s, env


def test_sigterm_keeps_the_checkpoint_and_a_rerun_resumes(tmp_path, data):
    params = dict(PARAMS, epochs=400, hidden_units=128)
    s, env = trainer_env(tmp_path, data, "job", SNAKETUNE_CHECKPOINT_EVERY="0")  # after every epoch
    (s.out / "params.yaml").write_text(yaml.safe_dump(params))
    proc = subprocess.Popen(
        [sys.executable, "-m", "snaketune.train"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    ckpt = s.out / "checkpoint.pt"
    deadline = time.time() + 60
    while not ckpt.exists() and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # well into a later epoch
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 143, err
    assert "preempted" in err
    assert not (s.out / "metrics.json").exists()
    done = sum(1 for line in out.splitlines() if line.startswith("epoch"))
    assert 1 <= done < 400

    env["SNAKETUNE_RESUME"] = str(ckpt)
    env["SNAKETUNE_BUDGET"] = str(done + 3)
    again = subprocess.run([sys.executable, "-m", "snaketune.train"], env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    # The checkpoint is the last *completed* epoch: the one printed last, or the one before if
    # SIGTERM came between printing and checkpointing.
    line = next(x for x in again.stdout.splitlines() if x.startswith("[snaketune] resumed"))
    assert line.startswith(f"[snaketune] resumed from {ckpt} after epoch ")
    resumed = int(line.rsplit(" ", 1)[1])
    assert done - 1 <= resumed <= done
    epochs = [int(x.split()[1]) for x in again.stdout.splitlines() if x.startswith("epoch")]
    assert epochs == list(range(resumed + 1, done + 4))


def test_runner_does_not_record_a_preempted_trial(tmp_path):
    script = tmp_path / "t.py"
    script.write_text("import os, signal\nos.kill(os.getpid(), signal.SIGTERM)\n")
    spec = run_spec(tmp_path / "t", f"{sys.executable} {script}", data="d", params={"x": 1}, metric="m")
    from snaketune.runner import Preempted

    with pytest.raises(Preempted, match="rerun resumes"):
        run_trial(spec)
    assert not (tmp_path / "t" / "result.json").exists()


def test_runner_resumes_from_its_own_checkpoint_first(tmp_path):
    out = tmp_path / "t"
    out.mkdir()
    (out / "checkpoint.pt").write_bytes(b"x")
    prev = tmp_path / "prev.pt"
    prev.write_bytes(b"y")
    script = tmp_path / "t.py"
    script.write_text(
        "import json, os\njson.dump({'m': 1, 'resume': os.environ['SNAKETUNE_RESUME']}, open(os.path.join(os.environ['SNAKETUNE_OUT'], 'metrics.json'), 'w'))\n"
    )
    spec = run_spec(out, f"{sys.executable} {script}", data="d", params={"x": 1}, metric="m", resume=str(prev))
    assert run_trial(spec)["metrics"]["resume"] == str(out / "checkpoint.pt")
    assert not (out / "checkpoint.pt").exists()  # a finished trial drops its checkpoint ...
    assert run_trial(replace(spec, keep_checkpoint=True))["metrics"]["resume"] == str(prev)  # ... and then the named one is used


def test_short_epochs_are_checkpointed_at_most_once_per_interval_and_after_the_last(tmp_path, data, monkeypatch):
    """Saving a checkpoint costs milliseconds: after every 10 ms epoch that would be a quarter of
    the training; with checkpoint_every the checkpoints of short epochs are spaced out."""
    import snaketune.train as trainer

    saved, real = [], trainer.save_checkpoint
    monkeypatch.setattr(trainer, "save_checkpoint", lambda path, state: (saved.append(state["epoch"]), real(path, state)))
    train(settings(tmp_path, data, "every", checkpoint_every=0, budget=6))
    assert saved == [1, 2, 3, 4, 5, 6]
    saved.clear()
    train(settings(tmp_path, data, "spaced", checkpoint_every=3600, budget=6))
    assert saved == [6], "only the last epoch (a promoted multi-fidelity trial resumes from it)"
    saved.clear()
    early = train(settings(tmp_path, data, "early", checkpoint_every=3600, patience=1, params=dict(PARAMS, lr=1.0)))
    assert saved == [early["epochs_run"]] and early["epochs_run"] < 8, "an early stop is a last epoch too"


def test_a_malformed_checkpoint_interval_names_the_variable():
    from snaketune.errors import ConfigError

    env = {"SNAKETUNE_PARAMS": "p", "SNAKETUNE_OUT": "o", "SNAKETUNE_DATA": "d", "SNAKETUNE_CHECKPOINT_EVERY": "soon"}
    with pytest.raises(ConfigError, match="SNAKETUNE_CHECKPOINT_EVERY='soon' is not a valid float"):
        TrialSettings.from_env(env)
