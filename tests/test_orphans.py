"""No trainer outlives its job, and no trial folder ever has two writers (snaketune.supervise).

A timeout kills a trainer's whole process group, SIGTERM or not; a killed runner, a killed
runner's parent or a killed Snakemake takes its trainers along; a second run of a folder that a
live run writes is refused; a SIGKILL that snaketune did not send interrupts a run (it resumes)
instead of ending it, until it happened on MAX_SIGKILLS attempts.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from conftest import BIN, SNAKEFILE, Study, run_spec, snakemake_cmd, tiny_config
from snaketune import supervise, worker
from snaketune.layout import SIGKILLS, WRITER_LOCK
from snaketune.runner import MAX_SIGKILLS, Preempted, run_trial
from snaketune.specs import to_json

HAS_PROC = os.path.exists("/proc/self/stat")
needs_proc = pytest.mark.skipif(not HAS_PROC, reason="finding a runner's processes reads /proc")
TIMING = ["seconds", "train_seconds"]


# -- processes --------------------------------------------------------------------------------


def alive(pid: int) -> bool:
    """Whether ``pid`` still runs; a zombie (dead, not reaped: a container's init may never reap
    the orphans it inherits) does not."""
    if HAS_PROC:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except (FileNotFoundError, ProcessLookupError):
            return False
        return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def gone_within(pids, seconds: float) -> list[int]:
    """The pids still running after up to ``seconds`` s."""
    deadline = time.monotonic() + seconds
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    return [p for p in pids if alive(p)]


def descendants(root: int) -> list[int]:
    """Every running process below ``root`` (Linux: parents from /proc)."""
    parent = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                stat = Path(entry.path, "stat").read_text()
            except OSError:
                continue
            parent[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, todo = [], [root]
    while todo:
        kids = [p for p, pp in parent.items() if pp == todo[-1]]
        todo.pop()
        found += kids
        todo += kids
    return [p for p in found if alive(p)]


def cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").rstrip("\0").split("\0")
    except OSError:
        return []


def pids() -> list[int]:
    return [int(e.name) for e in os.scandir("/proc") if e.name.isdigit() and alive(int(e.name))]


def workers_of(token: str) -> list[int]:
    """The running workers that serve ``token`` (not their forked children, which show the same
    command line: their parent is a worker)."""
    serving = [p for p in pids() if "snaketune.worker" in cmdline(p) and cmdline(p)[-1:] == [token]]
    return [p for p in serving if parent_of(p) not in serving]


def parent_of(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def forked(token: str) -> list[int]:
    """The running processes below the workers of ``token``: its trainers. (A forked process's
    /proc/<pid>/environ shows the worker's environment, not the trial's.)"""
    return [p for w in workers_of(token) for p in descendants(w)]


def wait_for(condition, seconds: float = 60, what: str = "the condition"):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


# -- trainers ---------------------------------------------------------------------------------


def trainer(tmp_path: Path, body: str, name: str = "trainer.py") -> str:
    """A custom trainer: Python ``body`` with ``out`` (its folder) and ``mark(*pids)`` (write the
    pids to ``<out>/pids`` when started) defined, run as the contract's shell command."""
    path = tmp_path / name
    prelude = """\
        import json, os, signal, subprocess, sys, time
        out = os.environ["SNAKETUNE_OUT"]
        def mark(*pids):
            open(os.path.join(out, "pids.tmp"), "w").write(" ".join(map(str, (os.getpid(), *pids))))
            os.replace(os.path.join(out, "pids.tmp"), os.path.join(out, "pids"))
        def child(ignore_sigterm):
            code = "import signal, time\\n" + ("signal.signal(signal.SIGTERM, signal.SIG_IGN)\\n" if ignore_sigterm else "") + "time.sleep(600)"
            return subprocess.Popen([sys.executable, "-c", code])
        """
    path.write_text(textwrap.dedent(prelude) + textwrap.dedent(body))
    return f"{sys.executable} {path}"


def started(out: Path) -> list[int]:
    """The pids a trainer() wrote once it runs."""
    return wait_for(lambda: (out / "pids").is_file() and [int(p) for p in (out / "pids").read_text().split()], what="the trainer")


def spec(out: Path, command: str | None, **over):
    """A custom trainer's run (objective ``m``), or with ``command`` None the built-in trainer's on
    ``data`` (without early stopping, so that it trains until it is killed)."""
    if command is None:
        over = {"metric": "val_accuracy", "params": BUILTIN, "patience": 0, **over}
    fields = {"data": out.parent / "data.npz", "params": {"x": 1}, "metric": "m", **over}
    return run_spec(out, command, **fields)


def snaketune_trial(run, *args: str, **popen) -> subprocess.Popen:
    """``snaketune-trial`` (the job's command) on one run, as a process of its own."""
    return subprocess.Popen([str(BIN / "snaketune-trial"), "--spec", to_json(run), "--device", "cpu", *args], **popen)


def folder_state(folder: Path) -> dict[str, tuple[int, bytes]]:
    return {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from snaketune.data import prepare

    path = tmp_path_factory.mktemp("data") / "prepared.npz"
    prepare({"source": "synthetic", "n_samples": 300, "val_fraction": 0.2, "test_fraction": 0.2, "seed": 0}, path)
    return path


BUILTIN = {"lr": 0.01, "n_layers": 1, "hidden_units": 16, "batch_size": 32, "epochs": 100000}


# -- timeouts ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        # the trainer and its child ignore SIGTERM
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\nkid = child(True)\nmark(kid.pid)\ntime.sleep(600)\n",
        # the trainer obeys SIGTERM (its process ends at once) but its child ignores it
        "kid = child(True)\nmark(kid.pid)\ntime.sleep(600)\n",
    ],
    ids=["trainer-ignores-sigterm", "child-ignores-sigterm"],
)
def test_a_timeout_kills_every_process_of_the_trainer(tmp_path, monkeypatch, body):
    monkeypatch.setattr(supervise, "GRACE_SECONDS", 1.0)
    out = tmp_path / "t1"
    t0 = time.monotonic()
    r = run_trial(spec(out, trainer(tmp_path, body)), timeout=1.0)
    assert r["status"] == "failed" and r["reason"] == "timed out after 1 s"
    seen = started(out)
    assert len(seen) == 2
    assert [p for p in seen if alive(p)] == [], "no process of the trainer outlives the runner's return"
    assert time.monotonic() - t0 < 15


def test_a_trainer_that_exits_leaves_no_process_behind(tmp_path):
    out = tmp_path / "t1"
    body = "kid = child(True)\nmark(kid.pid)\njson.dump({'m': 1}, open(os.path.join(out, 'metrics.json'), 'w'))\n"
    r = run_trial(spec(out, trainer(tmp_path, body)))
    assert r["status"] == "ok"
    assert [p for p in started(out) if alive(p)] == []


# -- a runner, its parent, Snakemake killed ---------------------------------------------------


@needs_proc
@pytest.mark.parametrize("which", ["builtin", "shell"])
def test_killing_the_runner_kills_its_trainer(tmp_path, data, which):
    out = tmp_path / "t1"
    if which == "builtin":  # the built-in trainer as a process of its own, the job's usual case
        run = spec(out, None, data=data)
        ready = lambda: (out / "checkpoint.pt").is_file()  # noqa: E731
    else:  # a shell command line: the trainer is the shell's child, its own child a grandchild
        run = spec(out, f"cd {tmp_path} && " + trainer(tmp_path, "kid = child(False)\nmark(kid.pid)\ntime.sleep(600)\n"))
        ready = lambda: (out / "pids").is_file()  # noqa: E731
    env = {**os.environ, "SNAKETUNE_CHECKPOINT_EVERY": "0"}
    runner = snaketune_trial(run, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(ready, what="the trainer")
        trainers = descendants(runner.pid)
        assert trainers
    finally:
        runner.kill()
        runner.wait()
    assert gone_within(trainers, 5) == [], "the trainer dies with its runner"
    if which == "builtin":
        before = folder_state(out)
        time.sleep(0.5)
        assert folder_state(out) == before, "nothing writes the folder any more"


@needs_proc
def test_a_job_whose_parent_dies_stops_with_its_trainer(tmp_path):
    """Snakemake runs a job as its (or its shell's) child: that parent killed, the job stops."""
    out = tmp_path / "t1"
    run = spec(out, trainer(tmp_path, "kid = child(False)\nmark(kid.pid)\ntime.sleep(600)\n"))
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import subprocess, sys; subprocess.run(sys.argv[1:])",
            str(BIN / "snaketune-trial"),
            "--spec",
            to_json(run),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        pids = started(out)
        everything = descendants(parent.pid)
        assert set(pids) <= set(everything)
    finally:
        parent.kill()
        parent.wait()
    assert gone_within(everything, supervise.GRACE_SECONDS + 5) == []
    assert not (out / "result.json").exists(), "a stopped job records nothing"


def grid_config():
    """Two trials of 150 epochs of milliseconds: long enough to be killed while they train."""
    cfg = tiny_config(study="killed9")
    cfg["search_space"].update(
        lr={"type": "float", "low": 0.001, "high": 0.1, "log": True, "grid": [0.01, 0.05]}, n_layers=1, epochs=150
    )
    return cfg


TABLE = "results/killed9/trials.tsv"  # the search's result; not the final retrain, the report (slow)


@needs_proc
@pytest.mark.workflow
def test_kill_9_of_snakemake_then_unlock_and_rerun_incomplete_gives_the_uninterrupted_table(tmp_path, monkeypatch):
    monkeypatch.setenv("SNAKETUNE_CHECKPOINT_EVERY", "0")  # a checkpoint after every epoch: the kill lands after one
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    ref, killed = Study(tmp_path / "a", grid_config()), Study(tmp_path / "b", grid_config())
    ref.run(TABLE)

    trials = killed.results / "trials"
    training = lambda: [p.parent for p in trials.glob("*/checkpoint.pt") if not (p.parent / "result.json").exists()]  # noqa: E731
    cmd = snakemake_cmd() + [
        "--snakefile",
        str(SNAKEFILE),
        "--directory",
        str(killed.path),
        "--configfile",
        str(killed.config_path),
        "--cores",
        "2",
        TABLE,
    ]
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    proc = subprocess.Popen(
        cmd, cwd=killed.path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    owner = worker.owner_token(proc.pid)  # the run whose warm worker forks the trainers
    try:
        wait_for(training, 120, "a trial in training")
        processes = descendants(proc.pid) + workers_of(owner) + forked(owner)
        assert forked(owner), "the trainers are the warm worker's children"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # Snakemake, its job shells and runners: not the trainers' own groups
        proc.wait()
    assert gone_within(processes, 5) == [], "no trainer, and no worker, survives the kill"
    interrupted = [p for p in trials.iterdir() if not (p / "result.json").exists()]
    checkpointed = training()
    assert checkpointed, "the kill must come mid-training"
    after_kill = {folder: folder_state(folder) for folder in interrupted}
    for folder in [p for p in interrupted if (p / WRITER_LOCK).exists()]:  # no writer is left: every lock is free
        fd = os.open(folder / WRITER_LOCK, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(fd)

    killed.run("--unlock", TABLE)
    assert {folder: folder_state(folder) for folder in interrupted} == after_kill, "nothing wrote them since the kill"
    killed.run("--rerun-incomplete", TABLE)
    for folder in interrupted:
        log = (folder / "train.log").read_text()
        assert "being written by another" not in log and "waiting up to" not in log
        assert ("[snaketune] resumed from" in log) == (folder in checkpointed)
    pd.testing.assert_frame_equal(ref.table().drop(columns=TIMING), killed.table().drop(columns=TIMING))


# -- the folder lock --------------------------------------------------------------------------


@pytest.mark.parametrize("second", ["custom", "builtin-in-process"])
def test_a_second_run_of_a_folder_that_a_live_run_writes_fails_and_touches_nothing(tmp_path, data, monkeypatch, second):
    monkeypatch.setattr(supervise, "LOCK_WAIT_SECONDS", 0.5)
    out = tmp_path / "t1"
    first = snaketune_trial(spec(out, trainer(tmp_path, "mark()\ntime.sleep(600)\n")), stdout=subprocess.DEVNULL)
    try:
        started(out)
        before = folder_state(out)
        if second == "custom":
            run = spec(out, trainer(tmp_path, "json.dump({'m': 1}, open(os.path.join(out, 'metrics.json'), 'w'))\n", "other.py"))
            kw = {}
        else:
            run, kw = spec(out, None, data=data, params=dict(BUILTIN, epochs=2)), {"in_process": True}
        holder = re.escape(f"{out.resolve()} is being written by another live run (pid={first.pid} ")
        with pytest.raises(supervise.FolderBusy, match=holder):
            run_trial(run, **kw)
        assert folder_state(out) == before, "the refused run writes nothing in the folder"
    finally:
        first.kill()
        first.wait()
    r = run_trial(spec(out, trainer(tmp_path, "json.dump({'m': 1}, open(os.path.join(out, 'metrics.json'), 'w'))\n", "other.py")))
    assert r["status"] == "ok", "a killed holder leaves the folder free"


# -- a SIGKILL from elsewhere (the out-of-memory killer) --------------------------------------


KILLED_ONCE = """\
open(os.path.join(out, "attempts"), "a").write(os.environ["SNAKETUNE_RESUME"] + "\\n")
open(os.path.join(out, "checkpoint.pt"), "w").write("state")
if len(open(os.path.join(out, "attempts")).readlines()) <= KILLS:
    os.kill(os.getpid(), signal.SIGKILL)
json.dump({"m": 1}, open(os.path.join(out, "metrics.json"), "w"))
"""


@pytest.mark.parametrize("shell", [False, True], ids=["exec", "shell"])
def test_a_sigkill_snaketune_did_not_send_is_an_interruption_then_a_recorded_failure(tmp_path, shell):
    out = tmp_path / "t1"
    command = trainer(tmp_path, f"KILLS = {MAX_SIGKILLS}\n" + KILLED_ONCE)
    run = spec(out, f"cd {tmp_path} && {command}" if shell else command)
    for attempt in range(1, MAX_SIGKILLS):
        job = snaketune_trial(run, stderr=subprocess.PIPE, text=True)
        _, err = job.communicate(timeout=60)
        assert job.returncode == 1, "the job fails: Snakemake retries it, or a re-run runs it"
        assert f"SIGKILL that snaketune did not send (out of memory?) on attempt {attempt} of {MAX_SIGKILLS}" in err
        assert not (out / "result.json").exists() and (out / "checkpoint.pt").is_file()
        assert json.loads((out / SIGKILLS).read_text())["sigkills"] == attempt
    job = snaketune_trial(run, stderr=subprocess.PIPE, text=True)
    job.communicate(timeout=60)
    assert job.returncode == 0, "a failed search trial is a result"
    result = json.loads((out / "result.json").read_text())
    assert result["status"] == "failed" and result["reason"] == f"killed by SIGKILL (out of memory?) on {MAX_SIGKILLS} attempts"
    resumed = (out / "attempts").read_text().splitlines()
    assert resumed == [""] + [str(out / "checkpoint.pt")] * (MAX_SIGKILLS - 1), "each re-run resumes from the checkpoint"
    assert not (out / SIGKILLS).exists(), "the run has its record: the count is done"


def test_a_run_killed_fewer_times_finishes_normally(tmp_path):
    out = tmp_path / "t1"
    run = spec(out, trainer(tmp_path, "KILLS = 1\n" + KILLED_ONCE))
    with pytest.raises(Preempted, match="attempt 1 of"):
        run_trial(run)
    r = run_trial(run)
    assert r["status"] == "ok" and not (out / SIGKILLS).exists()


@needs_proc
def test_the_builtin_trainer_killed_by_sigkill_resumes_and_ends_as_uninterrupted(tmp_path, data, monkeypatch):
    monkeypatch.setenv("SNAKETUNE_CHECKPOINT_EVERY", "0")
    params = dict(BUILTIN, epochs=100)
    full = run_trial(spec(tmp_path / "full", None, data=data, params=params), device="cpu")
    out = tmp_path / "killed"
    run = spec(out, None, data=data, params=params)

    def oom_killer():  # SIGKILL the trainer (not the runner) once it has checkpointed
        wait_for(lambda: (out / "checkpoint.pt").is_file(), what="a checkpoint")
        for pid in descendants(os.getpid()):
            if "snaketune.train" in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace"):
                os.kill(pid, signal.SIGKILL)

    killer = threading.Thread(target=oom_killer, daemon=True)
    killer.start()
    with pytest.raises(Preempted, match="SIGKILL"):
        run_trial(run, device="cpu")
    killer.join(10)
    assert (out / "checkpoint.pt").is_file()
    again = run_trial(run, device="cpu")
    assert again["status"] == "ok"
    assert 0 < again["metrics"]["epochs_this_run"] < full["metrics"]["epochs_run"], "the re-run resumed"
    for key in ("val_accuracy", "val_loss", "best_epoch", "epochs_run", "train_loss"):
        assert again["metrics"][key] == full["metrics"][key], key
