"""A killed snakemake, re-run, completes the study as if nothing had happened."""

import pandas as pd
import pytest
import yaml

from conftest import Study, run_and_kill, tiny_config

pytestmark = pytest.mark.workflow
TIMING = ["seconds", "train_seconds"]


def grid_config():
    cfg = tiny_config(study="killed")
    cfg["search_space"].update(
        lr={"type": "float", "low": 0.001, "high": 0.1, "log": True, "grid": [0.005, 0.01, 0.03, 0.06]}, epochs=4
    )
    return cfg


def test_kill_and_rerun_gives_the_uninterrupted_table(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    ref, killed = Study(tmp_path / "a", grid_config()), Study(tmp_path / "b", grid_config())
    ref.run()

    results = lambda: sorted(killed.results.glob("trials/*/result.json"))  # noqa: E731
    run_and_kill(killed, lambda: len(results()) >= 3)
    finished = {p.parent: {f.name: f.stat().st_mtime_ns for f in p.parent.iterdir()} for p in results()}
    assert 1 <= len(finished) < 8, "the kill must come mid-study"

    killed.run("--rerun-incomplete")
    for folder, mtimes in finished.items():  # no finished trial was retrained or rewritten
        assert {name: (folder / name).stat().st_mtime_ns for name in mtimes} == mtimes
    pd.testing.assert_frame_equal(ref.table().drop(columns=TIMING), killed.table().drop(columns=TIMING))
    best = [yaml.safe_load((st.results / "best.yaml").read_text()) for st in (ref, killed)]
    for b in best:
        del b["metrics"]["train_seconds"]
    assert best[0] == best[1]


def test_a_sigterm_while_the_main_thread_holds_the_lock_its_handler_needs_does_not_hang():
    """Snakemake's SIGTERM handler takes a lock its main loop may hold at that moment; deferred to
    a thread, it waits for the lock instead of deadlocking (snaketune.shutdown, the onstart hook)."""
    import os
    import signal
    import threading

    from snaketune.shutdown import defer_sigterm_handler

    lock, stopped, deadlocked = threading.Lock(), threading.Event(), threading.Event()

    def snakemake_like_handler(signum, frame):
        if not lock.acquire(timeout=2):  # Snakemake's waits forever; this test gives up instead
            deadlocked.set()
            return
        stopped.set()
        lock.release()

    old = signal.signal(signal.SIGTERM, snakemake_like_handler)
    try:
        assert defer_sigterm_handler()
        assert not defer_sigterm_handler(), "wrapping twice would add a thread per signal"
        with lock:  # the main loop, post-processing a finished job
            os.kill(os.getpid(), signal.SIGTERM)
            assert not stopped.wait(0.2), "the handler must wait for the lock, not take it"
        assert stopped.wait(5), "the handler runs once the lock is free"
        assert not deadlocked.is_set()
    finally:
        signal.signal(signal.SIGTERM, old)


def test_snakemakes_rate_limit_timers_do_not_hold_the_finished_process():
    """Snakemake re-arms a one-second, non-daemon timer after each scheduling pass; Python waits for
    it at exit. The end hooks cancel Snakemake's timers (and only Snakemake's)."""
    import threading

    from snaketune.shutdown import release_scheduler_timers

    def reevaluate():  # what Snakemake's scheduler hands its timer
        pass

    reevaluate.__module__ = "snakemake.scheduling.job_scheduler"
    fired = threading.Event()
    theirs, ours = threading.Timer(60, reevaluate), threading.Timer(0.3, fired.set)
    theirs.start()
    ours.start()
    try:
        assert release_scheduler_timers() == 1
        theirs.join(5)
        assert not theirs.is_alive(), "the cancelled timer's thread ends at once"
        assert fired.wait(5), "a timer that is not Snakemake's still fires"
    finally:
        theirs.cancel()
        ours.cancel()


def test_a_finished_run_leaves_no_timer_for_python_to_wait_for(tmp_path):
    """The Snakefile's end hook in a real run: when Python shuts down, no timer is pending (before
    the hook, Snakemake's last rate-limit timer held every run for up to a second)."""
    import os
    import subprocess
    import sys

    from conftest import BIN, SNAKEFILE

    s = Study(tmp_path, tiny_config(final={"retrain": False}))
    shim = (
        "import sys, threading\n"
        "from snakemake.cli import main\n"
        "shutdown = threading._shutdown\n"
        "def report():\n"
        "    pending = [t for t in threading.enumerate() if isinstance(t, threading.Timer) and not t.finished.is_set()]\n"
        "    print(f'pending timers at exit: {len(pending)}', file=sys.stderr, flush=True)\n"
        "    shutdown()\n"
        "threading._shutdown = report\n"
        "sys.argv = ['snakemake', *sys.argv[1:]]\n"
        "main()\n"
    )
    args = ["--snakefile", str(SNAKEFILE), "--configfile", str(s.config_path), "--cores", "2", "results/tiny/trials.tsv"]
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    proc = subprocess.run([sys.executable, "-c", shim, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "pending timers at exit: 0" in proc.stderr, proc.stderr[-2000:]
