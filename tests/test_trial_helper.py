"""snaketune.trial: the trainer side of the contract for your own training loop, and the example
script that uses it (config/examples/trainers/own_model.py)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import REPO, Study, tiny_config
from snaketune.data import prepare
from snaketune.trial import PREEMPTED_EXIT, Trial

SCRIPT = REPO / "config" / "examples" / "trainers" / "own_model.py"
PARAMS = {"lr": 0.01, "width": 32, "dropout": 0.2, "batch_size": 32, "epochs": 6}


def contract_env(tmp_path: Path, params: dict, **over: str) -> dict[str, str]:
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    return {
        "SNAKETUNE_PARAMS": str(tmp_path / "params.yaml"),
        "SNAKETUNE_OUT": str(tmp_path / "out"),
        "SNAKETUNE_STAGE": "search",
        "SNAKETUNE_SEED": "7",
        "SNAKETUNE_FOLD": "0",
        "SNAKETUNE_BUDGET": "",
        "SNAKETUNE_RESUME": "",
        "SNAKETUNE_METRIC": "val_accuracy",
        **over,
    }


def test_a_trial_reads_the_contract_and_reports_like_the_built_in_trainer(tmp_path):
    trial = Trial.from_env(contract_env(tmp_path, {"lr": 0.1, "epochs": 3}), handle_sigterm=False)
    assert (trial.params, trial.seed, trial.stage, trial.total_epochs) == ({"lr": 0.1, "epochs": 3}, 7, "search", 3)
    assert list(trial.epochs()) == [1, 2, 3]
    for epoch in trial.epochs():
        trial.report(epoch, train_loss=1.0 / epoch, val_accuracy=0.5 + epoch / 10)
    lines = (tmp_path / "out" / "history.csv").read_text().splitlines()
    assert lines[0] == "epoch,train_loss,val_accuracy" and lines[2] == "2,0.5,0.7" and len(lines) == 4
    metrics = trial.finish(val_accuracy=0.8)
    assert json.loads((tmp_path / "out" / "metrics.json").read_text()) == metrics == {"val_accuracy": 0.8, "epochs_run": 3}
    budgeted = Trial.from_env(contract_env(tmp_path, {"epochs": 9}, SNAKETUNE_BUDGET="3"), handle_sigterm=False)
    assert budgeted.total_epochs == 3


def test_the_final_stage_must_report_the_objectives_test_name(tmp_path, capsys):
    trial = Trial.from_env(contract_env(tmp_path, {"epochs": 1}, SNAKETUNE_STAGE="final"), handle_sigterm=False)
    assert trial.final and trial.test_metric == "test_accuracy"
    with pytest.raises(SystemExit) as stop:
        trial.finish(val_accuracy=0.9)
    assert stop.value.code == 2
    assert (
        "[snaketune] trial failed: finish() was given val_accuracy; the final stage needs test_accuracy"
        in capsys.readouterr().err
    )
    assert not (tmp_path / "out" / "metrics.json").exists()
    custom = Trial.from_env(contract_env(tmp_path, {"epochs": 1}, SNAKETUNE_METRIC="score"), handle_sigterm=False)
    assert custom.test_metric == "test_score"


def test_a_function_trainer_returns_its_metrics_or_fails_with_a_reason(tmp_path, monkeypatch, capsys):
    from snaketune.trial import main

    module = tmp_path / "my_fit.py"
    module.write_text(
        "def fit(params, trial):\n    return {'val_accuracy': params['lr'] * 2}\n"
        "def nothing(params, trial):\n    pass\n"
        "def finishes(params, trial):\n    trial.finish(val_accuracy=0.5, note='own')\n"
    )
    for key, value in contract_env(tmp_path, {"lr": 0.25}).items():
        monkeypatch.setenv(key, value)
    metrics = tmp_path / "out" / "metrics.json"
    assert main([f"{module}:fit"]) == 0 and json.loads(metrics.read_text()) == {"val_accuracy": 0.5}
    assert main([f"{module}:finishes"]) == 0 and json.loads(metrics.read_text()) == {"val_accuracy": 0.5, "note": "own"}
    monkeypatch.chdir(tmp_path)  # a module of the study's folder, by name
    assert main(["my_fit:fit"]) == 0
    for where, reason in [
        (f"{module}:nothing", "returned NoneType, not a mapping of metrics, and did not call trial.finish()"),
        (f"{module}:missing", "cannot be loaded: ImportError:"),
        ("no_such_module:fit", "cannot be loaded: ModuleNotFoundError:"),
    ]:
        with pytest.raises(SystemExit) as stop:
            main([where])
        assert stop.value.code == 2 and reason in capsys.readouterr().err


def test_a_checkpoint_resumes_only_the_same_trial_and_continues_its_history(tmp_path):
    torch = pytest.importorskip("torch")
    env = contract_env(tmp_path, {"lr": 0.1, "epochs": 5})
    first = Trial.from_env(env, handle_sigterm=False)
    for epoch in [1, 2]:
        first.report(epoch, loss=float(epoch))
        first.checkpoint(epoch, weights=torch.full((2,), float(epoch)))
    checkpoint = str(tmp_path / "out" / "checkpoint.pt")

    again = Trial.from_env({**env, "SNAKETUNE_RESUME": checkpoint}, handle_sigterm=False)
    state = again.resume()
    assert state["weights"].tolist() == [2.0, 2.0] and list(again.epochs()) == [3, 4, 5]
    assert [r["epoch"] for r in again.history] == [1, 2]
    # A promoted trial (a larger epochs budget) resumes; another seed or other parameters do not.
    promoted = Trial.from_env({**env, "SNAKETUNE_RESUME": checkpoint, "SNAKETUNE_BUDGET": "9"}, handle_sigterm=False)
    assert promoted.resume() is not None and list(promoted.epochs())[0] == 3
    other_seed = Trial.from_env({**env, "SNAKETUNE_RESUME": checkpoint, "SNAKETUNE_SEED": "8"}, handle_sigterm=False)
    assert other_seed.resume() is None and list(other_seed.epochs())[0] == 1
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"lr": 0.2, "epochs": 5}))
    assert Trial.from_env({**env, "SNAKETUNE_RESUME": checkpoint}, handle_sigterm=False).resume() is None


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "prepared.npz"
    prepare({"source": "synthetic", "n_samples": 600, "val_fraction": 0.2, "test_fraction": 0.2, "seed": 0}, path)
    return path


def run_script(env: dict[str, str], **kw) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(SCRIPT)], env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw
    )


def test_the_example_script_stopped_by_sigterm_resumes_to_the_uninterrupted_result(tmp_path, prepared):
    """Preempted mid-training (exit 143, the contract's preemption), the rerun continues from the
    last checkpoint and ends exactly as a run that was never stopped (CPU, same threads)."""
    params = {**PARAMS, "epochs": 40}
    (tmp_path / "whole").mkdir()
    whole_env = contract_env(tmp_path / "whole", params, SNAKETUNE_DATA=str(prepared), SNAKETUNE_THREADS="1")
    whole = run_script(whole_env)
    assert whole.wait(timeout=120) == 0, whole.stderr.read()
    expected = json.loads((tmp_path / "whole" / "out" / "metrics.json").read_text())

    (tmp_path / "cut").mkdir()
    env = contract_env(tmp_path / "cut", params, SNAKETUNE_DATA=str(prepared), SNAKETUNE_THREADS="1")
    checkpoint = tmp_path / "cut" / "out" / "checkpoint.pt"
    proc = run_script(env)
    deadline = time.time() + 60
    while not checkpoint.exists() and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == PREEMPTED_EXIT and "[snaketune] preempted (SIGTERM)" in err
    assert not (tmp_path / "cut" / "out" / "metrics.json").exists()

    resumed = run_script({**env, "SNAKETUNE_RESUME": str(checkpoint)})
    out, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, err
    assert "resuming after epoch" in out
    assert json.loads((tmp_path / "cut" / "out" / "metrics.json").read_text()) == expected
    history = (tmp_path / "cut" / "out" / "history.csv").read_text()
    assert history == (tmp_path / "whole" / "out" / "history.csv").read_text()  # the epochs before the stop kept
    assert [line.split(",")[0] for line in history.splitlines()[1:]] == [str(e) for e in range(1, 41)]


@pytest.mark.workflow
def test_the_own_model_example_runs_successive_halving_with_resumed_promotions(tmp_path):
    """The example's fit() as trainer.function (called in each trial's own process; the script as
    trainer.command is the test above): promoted trials resume from their checkpoints."""
    example = yaml.safe_load((REPO / "config" / "examples" / "own_model.yaml").read_text())
    cfg = tiny_config(
        study="own",
        trainer={"function": f"{SCRIPT}:fit"},
        search={**example["search"], "n_trials": 6, "min_epochs": 1},
        search_space={**example["search_space"], "epochs": 9},
        final={"repeats": 1},
    )
    s = Study(tmp_path, cfg)
    s.run()
    table = s.table()
    assert (table["status"] == "ok").all()
    promoted = [p for p in (s.results / "trials").glob("*/rung-1") if (p / "result.json").is_file()]
    assert promoted, "successive halving promotes some trials"
    for run in promoted:
        log = json.loads((run / "result.json").read_text())["log"]  # the rung slot's job log
        assert "resuming after epoch 1" in (s.path / log).read_text()
        epochs = [line.split(",")[0] for line in (run / "history.csv").read_text().splitlines()[1:]]
        assert epochs == [str(e) for e in range(1, 4)]  # the first rung's epoch, then this rung's
    final = json.loads((s.results / "final" / "metrics.json").read_text())
    assert 0 <= final["test_accuracy"] <= 1 and "val_accuracy" not in final
