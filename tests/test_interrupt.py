"""Ctrl-C never costs finished work (snaketune.shutdown, the Snakefile's onstart hook).

SIGINT to the `snakemake` process alone (``kill -INT``) and to its whole process group (Ctrl-C in a
terminal) stop it as its SIGTERM does: no job starts, the running trials stop and keep their
checkpoints, every job that ends is recorded. A plain re-run (no ``--rerun-incomplete``) then
trains only the interrupted trials, each from its checkpoint, and never a trial whose
``result.json`` was written. Logs name the signal that stopped a trial.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from conftest import BIN, SNAKEFILE, Study, snakemake_cmd, tiny_config
from snaketune.runner import was_preempted

INCOMPLETE = "IncompleteFilesException"


def start(s: Study, *targets: str) -> subprocess.Popen:
    """snakemake on ``s`` in a process group of its own, as a shell starts a foreground job."""
    cmd = snakemake_cmd() + [
        "--snakefile", str(SNAKEFILE),
        "--directory", str(s.path),
        "--configfile", str(s.config_path),
        "--cores", "2",
        *targets,
    ]  # fmt: skip
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "SNAKETUNE_CHECKPOINT_EVERY": "0"}
    log = open(s.path / "interrupted.log", "w")  # noqa: SIM115 (the child writes it)
    return subprocess.Popen(cmd, cwd=s.path, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def wait_for(condition, proc: subprocess.Popen, s: Study, what: str, seconds: float = 300):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    raise AssertionError(f"snakemake never reached {what}:\n{(s.path / 'interrupted.log').read_text()[-3000:]}")


def interrupt(proc: subprocess.Popen, whole_group: bool) -> None:
    """SIGINT to snakemake alone, or to its process group as a terminal's Ctrl-C; wait for its end."""
    (os.killpg if whole_group else os.kill)(proc.pid, signal.SIGINT)
    try:
        assert proc.wait(timeout=120) != 0, "an interrupted run does not succeed"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def epochs_logged(folder: Path) -> int:
    log = folder / "train.log"
    return sum(1 for line in log.read_text().splitlines() if line.startswith("epoch")) if log.is_file() else 0


def state(folder: Path) -> tuple[int, bytes, bytes]:
    """What a finished trial's re-run would change: its result's mtime and bytes, its log."""
    result = folder / "result.json"
    return result.stat().st_mtime_ns, result.read_bytes(), (folder / "train.log").read_bytes()


def assert_stopped_by_sigint(folder: Path, trainer_says: str) -> None:
    log = (folder / "train.log").read_text()
    assert "stopped by SIGINT; its checkpoint is kept" in log, log[-2000:]
    assert trainer_says in log, log[-2000:]
    assert "SIGTERM" not in log, log[-2000:]


# -- mid-search -------------------------------------------------------------------------------


def search_config() -> dict:
    """4 trials of 200 epochs of milliseconds on 2 cores: some end while others train."""
    cfg = tiny_config(study="ctrl-c")
    cfg["search_space"]["epochs"] = 200
    return cfg


TABLE = "results/ctrl-c/trials.tsv"  # the search's result; not the final retrain, the report (slow)


@pytest.mark.workflow
@pytest.mark.parametrize("whole_group", [False, True], ids=["snakemake-alone", "process-group"])
def test_sigint_mid_search_then_a_plain_rerun_trains_only_the_interrupted_trials(tmp_path, whole_group):
    s = Study(tmp_path, search_config())
    trials = s.results / "trials"
    folders = lambda: [p for p in trials.iterdir() if p.is_dir()] if trials.is_dir() else []  # noqa: E731

    def young_trials():  # once a trial has its result: those with a checkpoint and >= 100 epochs to go
        if not any((p / "result.json").is_file() for p in folders()):
            return None
        return {
            p
            for p in folders()
            if (p / "checkpoint.pt").is_file() and not (p / "result.json").exists() and epochs_logged(p) < 100
        }

    proc = start(s, TABLE)
    young = wait_for(young_trials, proc, s, "a finished trial and one in training")
    interrupt(proc, whole_group)

    finished = {p: state(p) for p in folders() if (p / "result.json").is_file()}
    interrupted = {p for p in folders() if p not in finished and (p / "checkpoint.pt").is_file()}
    assert young <= interrupted, "the signal came while these trials trained: they stopped, their checkpoints kept"
    for p in interrupted:
        assert_stopped_by_sigint(p, "[snaketune] preempted (SIGINT)")

    rerun = s.run(TABLE)
    assert INCOMPLETE not in rerun.stdout + rerun.stderr
    for p, before in finished.items():
        assert state(p) == before, f"{p.name} finished before the signal and was not trained again"
    for p in interrupted:
        log = (p / "train.log").read_text()
        assert f"[snaketune] resumed from {p.relative_to(s.path) / 'checkpoint.pt'}" in log, log[-2000:]
    table = s.table()
    assert len(table) == 4 and set(table["status"]) == {"ok"}


# -- during the final retrain -----------------------------------------------------------------

# A trainer that reports one epoch every 10 ms and checkpoints it, and stops on SIGINT as the
# contract's helper does (snaketune.trial): the final retrain trains for 2 s or more.
SLOW_TRAINER = """\
import time
from snaketune.trial import Trial

trial = Trial.from_env()
trial.resume()
for epoch in trial.epochs():
    time.sleep(0.01)
    trial.report(epoch, val_accuracy=epoch / 1000)
    trial.checkpoint(epoch, step=epoch)
trial.finish(**{trial.test_metric if trial.final else "val_accuracy": trial.total_epochs / 1000})
"""


@pytest.mark.workflow
def test_sigint_during_the_final_retrain_then_a_plain_rerun_resumes_it(tmp_path):
    (tmp_path / "slow.py").write_text(SLOW_TRAINER)
    cfg = tiny_config(study="ctrl-c-final")
    cfg["trainer"] = {"command": f"{sys.executable} {tmp_path / 'slow.py'}"}
    cfg["search_space"] = {"lr": 0.01, "epochs": 200}  # one trial
    s = Study(tmp_path, cfg)
    final = s.results / "final"
    target = str((final / "result.json").relative_to(s.path))

    proc = start(s, target)
    wait_for(lambda: (final / "checkpoint.pt").is_file() and 0 < epochs_logged(final) < 100, proc, s, "the final retrain")
    interrupt(proc, whole_group=False)

    (trial,) = [p for p in (s.results / "trials").iterdir() if p.is_dir()]
    searched = state(trial)
    assert not (final / "result.json").exists() and (final / "checkpoint.pt").is_file()
    assert_stopped_by_sigint(final, "[snaketune] preempted (SIGINT)")

    rerun = s.run(target)
    assert INCOMPLETE not in rerun.stdout + rerun.stderr
    assert state(trial) == searched, "the search's trial is not trained again"
    assert "resuming after epoch" in (final / "train.log").read_text()
    assert (final / "result.json").is_file()


# -- the pieces -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "returncode, tail, expected",
    [
        (-signal.SIGINT, [], signal.SIGINT),
        (130, [], signal.SIGINT),  # a shell ran the trainer
        (130, ["[snaketune] preempted (SIGINT): ..."], signal.SIGINT),
        (143, ["[snaketune] preempted (SIGTERM): ..."], signal.SIGTERM),
        (-signal.SIGTERM, [], signal.SIGTERM),
        (1, ["[snaketune] preempted"], signal.SIGTERM),  # the contract's word, whatever the status
        (-signal.SIGKILL, [], signal.SIGKILL),
        (1, ["Traceback ..."], None),
    ],
)
def test_sigint_is_an_interruption_like_sigterm(returncode, tail, expected):
    assert was_preempted(returncode, tail) == expected


def python(code: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=60, **kw)


def test_sigint_calls_snakemakes_graceful_handler_and_passes_the_signal_to_the_jobs():
    """In a process of its own (it signals its children): SIGINT runs the SIGTERM handler that
    Snakemake installed (on a thread), and every child, a running job, gets the SIGINT."""
    proc = python(
        """
        import os, signal, subprocess, sys, threading
        from snaketune.shutdown import handle_stop_signals

        called = threading.Event()
        signal.signal(signal.SIGTERM, lambda signum, frame: called.set())  # Snakemake's exit_gracefully
        assert handle_stop_signals("9.27.1")
        job = subprocess.Popen([sys.executable, "-c", "import time; print(flush=True); time.sleep(60)"], stdout=subprocess.PIPE)
        job.stdout.readline()  # started, its KeyboardInterrupt handler in place
        os.kill(os.getpid(), signal.SIGINT)
        assert called.wait(10), "Snakemake's graceful stop ran"
        print("job exit", job.wait(10))
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert f"job exit {-signal.SIGINT}" in proc.stdout, "the job was interrupted (Python's KeyboardInterrupt)"


def test_cluster_jobs_keep_snakemakes_ctrl_c():
    proc = python(
        """
        import signal
        from snaketune.shutdown import handle_stop_signals

        signal.signal(signal.SIGTERM, lambda signum, frame: None)
        before = signal.getsignal(signal.SIGINT)
        assert handle_stop_signals("9.27.1", local_jobs=False)
        assert signal.getsignal(signal.SIGINT) is before
        assert getattr(signal.getsignal(signal.SIGTERM), "_snaketune_deferred", False)
        """
    )
    assert proc.returncode == 0, proc.stderr


def test_a_job_ignores_a_stop_once_its_trainer_has_ended():
    """What is left is writing the record: a job that wrote it must not fail (and lose it)."""
    proc = python(
        """
        import os, signal, sys, time
        from snaketune import supervise

        supervise.finish_once_trained()
        outcome = supervise.run_command([sys.executable, "-c", "pass"], env=os.environ, timeout=None)
        assert outcome.returncode == 0 and outcome.stopped is None
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.2)
        print("recorded")
        """
    )
    assert proc.returncode == 0 and "recorded" in proc.stdout, proc.stderr
