"""The stop-signal workaround applies to the Snakemake releases known to need it, and only to them.

The SIGTERM deadlock itself, and that the deferred handler avoids it, is tested in
tests/test_resilience.py; SIGINT (Ctrl-C) in tests/test_interrupt.py.
"""

import signal

import pytest

from snaketune.shutdown import (
    drop_scheduler_timers,
    handle_stop_signals,
    is_affected,
    release,
)


@pytest.mark.parametrize(
    "snakemake, affected",
    [
        ("9.0.0", True),
        ("9.3.0", True),
        ("9.27.1", True),
        ("9.28.0", True),  # a later 9.x is assumed to keep the same lock
        ("10.0.0", False),
        ("8.30.0", False),
        ("9.5.0.dev3+g1234", True),
        ("", False),
        (None, False),
    ],
)
def test_the_workaround_is_for_the_checked_releases(snakemake, affected):
    assert is_affected(snakemake) is affected


def test_release_reads_what_snakemake_and_pip_print():
    assert release("9.27.1") == (9, 27, 1)
    assert release("9.3") == (9, 3, 0)
    assert release("unknown") is None


@pytest.fixture
def sigterm_handler():
    def snakemakes(signum, frame):
        pass

    old = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    signal.signal(signal.SIGTERM, snakemakes)
    yield snakemakes
    for s, h in old.items():
        signal.signal(s, h)


def test_an_unaffected_snakemake_keeps_its_own_handlers(sigterm_handler):
    sigint = signal.getsignal(signal.SIGINT)
    assert not handle_stop_signals("10.0.0")
    assert signal.getsignal(signal.SIGTERM) is sigterm_handler
    assert signal.getsignal(signal.SIGINT) is sigint


def test_an_affected_snakemake_gets_its_handler_deferred_once(sigterm_handler):
    assert handle_stop_signals("9.27.1")
    wrapped = signal.getsignal(signal.SIGTERM)
    assert wrapped is not sigterm_handler and getattr(wrapped, "_snaketune_deferred", False)
    assert signal.getsignal(signal.SIGINT) is wrapped, "Ctrl-C stops as gracefully"
    assert not handle_stop_signals("9.27.1"), "wrapping twice would add a thread per signal"


def test_snakemake_exits_without_waiting_for_its_schedulers_last_timer(tmp_path):
    """Snakemake's scheduler arms a one-second, non-daemon timer on every pass of its loop; once the
    run has ended the hooks cancel the pending ones, so no thread of Snakemake's keeps the process
    alive after its last job. A real run of a one-rule workflow, whose onsuccess hook looks at the
    live timers right after the call (a cancelled timer is finished at once; one left alone would
    still be waiting out its second)."""
    import subprocess
    import sys

    (tmp_path / "Snakefile").write_text(
        "import threading\n"
        "from snaketune.shutdown import drop_scheduler_timers\n"
        "rule a:\n"
        "    output: 'x'\n"
        "    shell: 'touch {output}'\n"
        "onsuccess:\n"
        "    timers = [t for t in threading.enumerate() if isinstance(t, threading.Timer) and not t.finished.is_set()]\n"
        "    n = drop_scheduler_timers()\n"
        "    print('TIMERS', len(timers), 'CANCELLED', n, 'PENDING', sum(not t.finished.is_set() for t in timers))\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "snakemake", "--cores", "1", "--directory", str(tmp_path), "-s", str(tmp_path / "Snakefile")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    line = next(x for x in (done.stdout + done.stderr).splitlines() if x.startswith("TIMERS"))
    timers, cancelled, pending = (int(x) for x in line.split()[1::2])
    assert timers >= 1, line  # Snakemake armed one: the test is not vacuous
    assert cancelled == timers and pending == 0, line


def test_only_snakemakes_scheduler_timers_are_cancelled():
    import threading

    mine = threading.Timer(30, lambda: None)
    mine.start()
    try:
        assert drop_scheduler_timers() == 0
        assert mine.is_alive()
    finally:
        mine.cancel()
