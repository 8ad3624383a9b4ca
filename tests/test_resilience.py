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

    from snaketune.shutdown import handle_stop_signals

    lock, stopped, deadlocked = threading.Lock(), threading.Event(), threading.Event()

    def snakemake_like_handler(signum, frame):
        if not lock.acquire(timeout=2):  # Snakemake's waits forever; this test gives up instead
            deadlocked.set()
            return
        stopped.set()
        lock.release()

    old = signal.signal(signal.SIGTERM, snakemake_like_handler)
    try:
        assert handle_stop_signals(local_jobs=False)
        assert not handle_stop_signals(local_jobs=False), "wrapping twice would add a thread per signal"
        with lock:  # the main loop, post-processing a finished job
            os.kill(os.getpid(), signal.SIGTERM)
            assert not stopped.wait(0.2), "the handler must wait for the lock, not take it"
        assert stopped.wait(5), "the handler runs once the lock is free"
        assert not deadlocked.is_set()
    finally:
        signal.signal(signal.SIGTERM, old)
