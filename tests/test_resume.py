"""Checkpoints: a resumed trial ends exactly where an uninterrupted one does; SIGTERM keeps the checkpoint."""

import os
import signal
import subprocess
import sys
import time

import pytest
import yaml

from conftest import REPO
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
    return TrialSettings(params=out / "params.yaml", out=out, data=data, seed=3, **kw)


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


def test_a_checkpoint_of_other_parameters_is_ignored(tmp_path, data, capsys):
    train(settings(tmp_path, data, "a", budget=2))
    other = dict(PARAMS, lr=0.02)
    m = train(settings(tmp_path, data, "b", params=other, budget=2, resume=tmp_path / "a" / "checkpoint.pt"))
    assert m["epochs_run"] == 2
    assert "belongs to other parameters" in capsys.readouterr().out


def trainer_env(tmp_path, data, name, **extra):
    s = settings(tmp_path, data, name)
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO / "workflow" / "scripts"),
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
    spec = {
        "trial": "t",
        "trial_dir": str(tmp_path / "t"),
        "params": {"x": 1},
        "data": "d",
        "metric": "m",
        "command": f"{sys.executable} {script}",
    }
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
    spec = {
        "trial": "t",
        "trial_dir": str(out),
        "params": {"x": 1},
        "data": "d",
        "metric": "m",
        "command": f"{sys.executable} {script}",
        "resume": str(prev),
    }
    assert run_trial(spec)["metrics"]["resume"] == str(out / "checkpoint.pt")
    assert not (out / "checkpoint.pt").exists()  # a finished trial drops its checkpoint ...
    spec["keep_checkpoint"] = True
    assert run_trial(spec)["metrics"]["resume"] == str(prev)  # ... and then the named one is used


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
