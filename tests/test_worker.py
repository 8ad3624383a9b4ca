"""Warm trial workers (snaketune.worker): a trial forked from a worker that has imported torch keeps
every guarantee of a trial in a process of its own: the same numbers, its time limit, its stop and
resume, no orphan when its runner or the worker dies, its GPU slot held while it runs, its own
resource figures; and the worker is one per run, interpreter and user, restarts, and goes away.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from test_orphans import BUILTIN, alive, forked, gone_within, snaketune_trial, spec, trainer, wait_for, workers_of

from conftest import Study, tiny_config
from snaketune import supervise, worker
from snaketune.runner import Preempted, run_trial

pytestmark = pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="finding processes reads /proc")
TIMING = ("train_seconds", "seconds")


@pytest.fixture
def owner(monkeypatch):
    """A stand-in for a Snakemake run that owns a worker: a process of its own, ended afterwards."""
    proc = subprocess.Popen(["sleep", "600"])
    token = worker.owner_token(proc.pid)
    monkeypatch.setenv(worker.ENV_OWNER, token)
    monkeypatch.delenv(worker.ENV_SWITCH, raising=False)
    yield token
    worker.stop(token)
    proc.kill()
    proc.wait()


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from snaketune.data import prepare

    path = tmp_path_factory.mktemp("data") / "prepared.npz"
    prepare({"source": "synthetic", "n_samples": 300, "val_fraction": 0.2, "test_fraction": 0.2, "seed": 0}, path)
    return path


def metrics(result: dict) -> dict:
    return {k: v for k, v in result["metrics"].items() if k not in TIMING}


def test_a_forked_trial_computes_what_a_process_of_its_own_computes_in_one_shared_worker(
    tmp_path, data, owner, monkeypatch, capfd
):
    params = dict(BUILTIN, epochs=6)
    monkeypatch.setenv(worker.ENV_SWITCH, "0")
    cold = run_trial(spec(tmp_path / "cold", None, data=data, params=params), device="cpu")
    assert "forked by the warm worker" not in capfd.readouterr().out
    assert workers_of(owner) == []
    monkeypatch.delenv(worker.ENV_SWITCH)
    warm = run_trial(spec(tmp_path / "warm", None, data=data, params=params), device="cpu")
    log = capfd.readouterr()
    assert "forked by the warm worker" in log.out and "Warning" not in log.out + log.err
    assert warm["status"] == cold["status"] == "ok"
    assert metrics(warm) == metrics(cold), "the same numbers, to the last bit"
    (first,) = workers_of(owner)
    again = run_trial(spec(tmp_path / "again", None, data=data, params=params), device="cpu")
    assert metrics(again) == metrics(cold) and workers_of(owner) == [first], "one worker serves the run"
    for r in (cold, warm, again):  # the trainer's own figures, which benchmark.tsv cannot see
        assert r["cpu_seconds"] > 0 and r["max_rss_mb"] > 20
        assert json.loads((Path(r["log"]).parent / "result.json").read_text())["cpu_seconds"] == r["cpu_seconds"]


def test_the_worker_restarts_when_it_dies_and_exits_with_its_run_or_when_idle(tmp_path, data, owner, monkeypatch, capfd):
    params = dict(BUILTIN, epochs=2)
    run_trial(spec(tmp_path / "a", None, data=data, params=params), device="cpu")
    (first,) = workers_of(owner)
    os.kill(first, signal.SIGKILL)
    assert gone_within([first], 5) == []
    r = run_trial(spec(tmp_path / "b", None, data=data, params=params), device="cpu")
    assert r["status"] == "ok" and "forked by the warm worker" in capfd.readouterr().out
    (second,) = workers_of(owner)
    assert second != first
    # its owner (the Snakemake run) ends: the worker goes too
    pid = int(owner.split(":")[0])
    os.kill(pid, signal.SIGKILL)
    assert gone_within([second], 10) == []
    # a worker of a live run that has nothing to do goes after its idle time
    proc = subprocess.Popen(["sleep", "600"])
    try:
        monkeypatch.setenv(worker.ENV_OWNER, worker.owner_token(proc.pid))
        monkeypatch.setenv(worker.ENV_IDLE, "1")
        run_trial(spec(tmp_path / "c", None, data=data, params=params), device="cpu")
        (third,) = workers_of(worker.owner_token(proc.pid))
        assert gone_within([third], 15) == []
    finally:
        proc.kill()
        proc.wait()


def test_one_worker_per_run_interpreter_environment_and_user(monkeypatch):
    key = worker.worker_key("1:2")
    assert worker.worker_key("1:2") == key
    assert worker.worker_key("1:3") != key, "another run"
    monkeypatch.setattr(sys, "executable", "/elsewhere/bin/python")
    assert worker.worker_key("1:2") != key, "another interpreter"
    monkeypatch.undo()
    monkeypatch.setattr(sys, "prefix", "/another/venv")
    assert worker.worker_key("1:2") != key, "another environment"
    monkeypatch.undo()
    monkeypatch.setattr(worker, "_installed", lambda: ["torch: elsewhere"])
    assert worker.worker_key("1:2") != key, "other installed packages"
    monkeypatch.undo()
    monkeypatch.setattr(os, "getuid", lambda: 12345)
    assert worker.worker_key("1:2") != key, "another user"


def test_a_socket_folder_that_others_may_enter_is_refused(tmp_path):
    folder = tmp_path / "w"
    folder.mkdir(mode=0o755)
    folder.chmod(0o755)
    with pytest.raises(worker.WorkerError, match="closed to others"):
        worker.socket_dir({worker.ENV_DIR: str(folder)})


def test_workers_are_for_local_runs_and_can_be_turned_off():
    env: dict[str, str] = {}
    assert worker.configure(env, local=True, enabled=True) and worker.active_owner(env) == worker.owner_token()
    assert not worker.configure(env, local=False, enabled=True), "a cluster executor's jobs land on other nodes"
    assert worker.ENV_OWNER not in env, "nor do its jobs inherit the head's worker"
    assert not worker.configure(env, local=True, enabled=False)  # trainer.warm_worker: false
    env[worker.ENV_SWITCH] = "0"
    assert not worker.configure(env, local=True, enabled=True)
    env[worker.ENV_OWNER] = "1:2"
    assert worker.active_owner(env) is None


def test_a_timeout_kills_the_forked_trainer(tmp_path, data, owner, monkeypatch, capfd):
    monkeypatch.setattr(supervise, "GRACE_SECONDS", 1.0)
    out = tmp_path / "t1"
    r = run_trial(spec(out, None, data=data), device="cpu", timeout=3)
    assert r["status"] == "failed" and r["reason"] == "timed out after 3 s"
    assert "forked by the warm worker" in capfd.readouterr().out
    assert workers_of(owner) and forked(owner) == []


def test_sigterm_to_the_job_checkpoints_and_a_rerun_resumes_to_the_uninterrupted_result(
    tmp_path, data, owner, monkeypatch, capfd
):
    monkeypatch.setenv("SNAKETUNE_CHECKPOINT_EVERY", "0")
    params = dict(BUILTIN, epochs=60)
    full = run_trial(spec(tmp_path / "full", None, data=data, params=params), device="cpu")
    out = tmp_path / "stopped"
    run = spec(out, None, data=data, params=params)
    log = open(tmp_path / "job.log", "wb")
    job = snaketune_trial(run, stdout=log, stderr=subprocess.STDOUT)
    wait_for(lambda: (out / "checkpoint.pt").is_file(), what="a checkpoint")
    job.send_signal(signal.SIGTERM)
    assert job.wait(30) == 1
    text = (tmp_path / "job.log").read_text()
    assert "forked by the warm worker" in text and "stopped by SIGTERM" in text
    assert not (out / "result.json").exists() and (out / "checkpoint.pt").is_file()
    assert workers_of(owner) and forked(owner) == []
    capfd.readouterr()
    again = run_trial(run, device="cpu")
    assert "[snaketune] resumed from" in capfd.readouterr().out
    assert 0 < again["metrics"]["epochs_this_run"] < full["metrics"]["epochs_run"]
    for key in ("val_accuracy", "val_loss", "best_epoch", "epochs_run", "train_loss"):
        assert again["metrics"][key] == full["metrics"][key], key


def test_sigkill_of_the_job_leaves_no_trainer(tmp_path, data, owner):
    out = tmp_path / "t1"
    job = snaketune_trial(spec(out, None, data=data), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        running = wait_for(lambda: forked(owner), what="the forked trainer")
        assert job.pid not in running and workers_of(owner), "the trainer is the worker's child"
    finally:
        job.kill()
        job.wait()
    assert gone_within(running, 5) == [], "the worker kills the trainer of a runner that died"
    assert workers_of(owner), "and goes on serving its run"


def test_the_worker_dying_mid_trial_is_an_interruption_that_resumes(tmp_path, data, owner, monkeypatch, capfd):
    monkeypatch.setenv("SNAKETUNE_CHECKPOINT_EVERY", "0")
    out = tmp_path / "t1"
    run = spec(out, None, data=data, params=dict(BUILTIN, epochs=400))

    trainers = []

    def kill_worker():
        wait_for(lambda: (out / "checkpoint.pt").is_file(), what="a checkpoint")
        # The trainer is running (400 epochs, a checkpoint written): note it, then kill its worker.
        trainers.extend(forked(owner))
        for pid in workers_of(owner):
            os.kill(pid, signal.SIGKILL)

    killer = threading.Thread(target=kill_worker, daemon=True)
    killer.start()
    with pytest.raises(Preempted, match="SIGKILL"):
        run_trial(run, device="cpu")
    killer.join(10)
    assert trainers and gone_within(trainers, 5) == []
    capfd.readouterr()
    again = run_trial(run, device="cpu")
    assert again["status"] == "ok" and "[snaketune] resumed from" in capfd.readouterr().out


def loaded(pid: int) -> str:
    """The files mapped into process ``pid`` (its shared libraries)."""
    return Path(f"/proc/{pid}/maps").read_text()


def test_a_trial_job_hands_its_work_to_the_worker_and_imports_no_torch_itself(tmp_path, data, owner):
    """The job's process (Snakemake's job, what benchmark.tsv measures) only waits for the worker's
    child that does its work: it maps no torch library, while the trainer does."""
    out = tmp_path / "t1"
    log = tmp_path / "job.log"
    with open(log, "wb") as fh:
        job = snaketune_trial(spec(out, None, data=data), stdout=fh, stderr=subprocess.STDOUT)
    try:
        child = int(wait_for(lambda: re.search(r"trainer (\d+) forked", log.read_text()), what="the forked trainer")[1])
        assert "libtorch" in loaded(child) and "libtorch" not in loaded(job.pid)
        helpers = [p for p in forked(owner) if p != child]
        assert helpers and job.pid not in helpers, "the job's runner is a child of the worker too"
    finally:
        job.kill()
        job.wait()
    assert gone_within([child, *helpers], 5) == [], "the worker kills what a job that died left"


def test_a_job_that_no_worker_takes_does_its_work_itself(tmp_path, data, owner, monkeypatch):
    sockets = tmp_path / "open"
    sockets.mkdir(mode=0o755)
    sockets.chmod(0o755)  # refused: others may enter it
    monkeypatch.setenv(worker.ENV_DIR, str(sockets))
    out = tmp_path / "t1"
    run = spec(out, None, data=data, params=dict(BUILTIN, epochs=2))
    done = snaketune_trial(run, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    text = done.communicate(timeout=120)[0].decode()
    assert done.returncode == 0, text
    assert "no warm worker" in text and "closed to others" in text
    assert json.loads((out / "result.json").read_text())["status"] == "ok"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--spec", '{"kind": "run", "trainer": {"command": null}}'], True),
        (['--spec={"kind": "run", "trainer": {"command": null, "function": "m:f"}}'], True),
        (["--spec", '{"kind": "pack", "runs": [{"trainer": {"command": null}}]}', "--device", "cpu"], True),
        (["--spec", '{"kind": "run", "trainer": {"command": "python t.py"}}'], False),
        (["--spec", '{"kind": "run", "trainer": {"command": null}}', "--study", "s", "--job-log", "x"], False),
        (["--spec", "not json"], False),
        (["--spec"], False),
        ([], False),
    ],
)
def test_which_jobs_go_to_the_worker(args, expected):
    from snaketune.job import forkable

    assert forkable(args) is expected


def test_a_spec_file_is_read_to_decide(tmp_path):
    from snaketune.job import forkable

    (tmp_path / "spec.json").write_text('{"kind": "run", "trainer": {"command": "sh t.sh"}}')
    assert not forkable(["--spec", f"@{tmp_path / 'spec.json'}"])
    (tmp_path / "spec.json").write_text('{"kind": "run", "trainer": {"command": null}}')
    assert forkable(["--spec", f"@{tmp_path / 'spec.json'}"])
    assert not forkable(["--spec", f"@{tmp_path / 'missing.json'}"])


def test_a_job_whose_worker_dies_gets_its_runners_own_word(tmp_path, data, owner, monkeypatch):
    """The runner that does a job's work is the worker's child, but it does not die with the
    worker: it records what happened to its trainer (an interruption here; a record, had the
    trainer ended) and the job exits with the runner's own status, which it sends itself."""
    monkeypatch.setenv("SNAKETUNE_CHECKPOINT_EVERY", "0")
    out = tmp_path / "t1"
    run = spec(out, None, data=data, params=dict(BUILTIN, epochs=400))
    log = tmp_path / "job.log"
    with open(log, "wb") as fh:
        job = snaketune_trial(run, stdout=fh, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: (out / "checkpoint.pt").is_file(), what="a checkpoint")
        running = forked(owner)
        for pid in workers_of(owner):
            os.kill(pid, signal.SIGKILL)
        assert job.wait(30) == 1
    finally:
        job.kill()
        job.wait()
    text = log.read_text()
    assert re.search(r"trial t1 was (stopped by SIGTERM|killed by a SIGKILL that snaketune did not send)", text), text
    assert gone_within(running, 5) == []
    again = run_trial(run, device="cpu")
    assert again["status"] == "ok" and again["metrics"]["epochs_this_run"] < 400, "it resumed"


def test_the_forked_trainer_holds_the_gpu_slot_until_it_is_gone(tmp_path, data, owner, monkeypatch):
    locks = tmp_path / "locks"
    monkeypatch.setenv("SNAKETUNE_GPU_DEVICES", "0")
    monkeypatch.setenv("SNAKETUNE_GPU_LOCK_DIR", str(locks))
    out = tmp_path / "t1"
    log = tmp_path / "job.log"
    with open(log, "wb") as fh:
        job = snaketune_trial(spec(out, None, data=data), "--device", "auto", stdout=fh, stderr=subprocess.STDOUT)
    try:
        child = int(wait_for(lambda: re.search(r"trainer (\d+) forked", log.read_text()), what="the forked trainer")[1])
        assert child in forked(owner)
        slot = locks / "gpu0-slot0.lock"
        held = {os.path.realpath(f"/proc/{child}/fd/{fd}") for fd in os.listdir(f"/proc/{child}/fd")}
        assert str(slot.resolve()) in held, "the trainer holds the lease's lock itself"
    finally:
        job.kill()
        job.wait()
    assert gone_within(forked(owner) + [child], 5) == []
    fd = os.open(slot, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # free once the trainer is gone
    finally:
        os.close(fd)


def test_a_trainer_command_runs_as_a_process_of_its_own(tmp_path, owner, capfd):
    out = tmp_path / "t1"
    body = "json.dump({'m': 1}, open(os.path.join(out, 'metrics.json'), 'w'))\n"
    r = run_trial(spec(out, trainer(tmp_path, body)))
    assert r["status"] == "ok" and r["cpu_seconds"] > 0
    assert "forked by the warm worker" not in capfd.readouterr().out
    assert workers_of(owner) == [], "no worker was started for it"


@pytest.mark.workflow
def test_a_local_run_forks_its_trials_and_leaves_no_worker_behind(tmp_path, monkeypatch):
    sockets = tmp_path / "w"  # this run's worker only
    sockets.mkdir(mode=0o700)
    monkeypatch.setenv(worker.ENV_DIR, str(sockets))
    s = Study(tmp_path, tiny_config())
    s.run("results/tiny/trials.tsv")
    logs = [p.read_text() for p in (s.results / "trials").glob("*/train.log")]
    assert len(logs) == 4 and all("forked by the warm worker" in text for text in logs)
    served = {int(m) for text in logs for m in re.findall(r"forked by warm worker (\d+)", text)}
    assert len(served) == 1, "one worker serves the run"
    assert not alive(served.pop()), "Snakemake returns after its worker has gone"
    assert list(sockets.iterdir()) == [], "and it leaves nothing behind (socket, lock, log)"
    # trainer.warm_worker: false (or SNAKETUNE_WORKER=0): a process per trial again; how a trial
    # runs is not what it is, so switching it reruns nothing
    s.write(tiny_config(trainer={"warm_worker": False}))
    again = s.run("-n", "results/tiny/trials.tsv")
    assert "Nothing to be done" in again.stdout + again.stderr
    s.write(tiny_config(trainer={"warm_worker": False}, search_space={**tiny_config()["search_space"], "epochs": 3}))
    s.run("results/tiny/trials.tsv")
    logs = [s.results / "trials" / trial / "train.log" for trial in s.table()["trial"]]
    assert len(logs) == 4 and not any("forked by the warm worker" in p.read_text() for p in logs)


LISTING_TRAINER = """
import json, os
out = os.environ["SNAKETUNE_OUT"]
print("worker files:", sorted(os.listdir(os.environ["SNAKETUNE_WORKER_DIR"])))
json.dump({"val_mse": 1.0, "test_mse": 1.0}, open(os.path.join(out, "metrics.json"), "w"))
"""


@pytest.mark.workflow
def test_a_study_whose_trials_are_not_forked_starts_no_worker(tmp_path, monkeypatch):
    """The run starts its worker ahead of the trials only when it has trials to fork: a
    trainer.command trial runs as a process of its own, so nothing is started for it (a worker's
    start creates its log and lock in the socket folder at once, which the trainer lists)."""
    sockets = tmp_path / "w"
    sockets.mkdir(mode=0o700)
    monkeypatch.setenv(worker.ENV_DIR, str(sockets))
    s = Study(
        tmp_path,
        tiny_config(
            trainer={"command": f"{sys.executable} trainer.py"},
            objective={"metric": "val_mse", "direction": "minimize"},
        ),
    )
    (tmp_path / "trainer.py").write_text(LISTING_TRAINER)
    s.run("results/tiny/trials.tsv")
    logs = [p.read_text() for p in (s.results / "trials").glob("*/train.log")]
    assert len(logs) == 4 and all("worker files: []" in text for text in logs), logs
