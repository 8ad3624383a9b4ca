"""Stopping Snakemake: SIGTERM must stop it, never hang it; SIGINT (Ctrl-C) must stop it as cleanly.

**SIGTERM.** Snakemake 9's scheduler handles SIGTERM with ``JobScheduler.exit_gracefully`` (start
no more jobs, post-process the running ones as they end, then exit), which takes the scheduler's
non-reentrant ``threading.Lock``. Python runs signal handlers on the main thread between two
bytecodes, and the main thread holds that very lock while it post-processes finished jobs
(``JobScheduler.schedule``: ``with self._lock: self._finish_jobs() ...``; in snakemake/scheduler.py
up to 9.1, snakemake/scheduling/job_scheduler.py since), so a SIGTERM that lands there waits
forever for itself: Snakemake hangs, its jobs already stopped, until something sends SIGKILL (and
the next run must ``--unlock``). Seen here: 1 hang in 8 SIGTERMs sent while trials finish. SLURM
sends SIGTERM to a head job it cancels or times out. Upstream: no report found in
snakemake/snakemake's issues as of 2026-12 (searched for SIGTERM, deadlock, ``exit_gracefully``,
scheduler lock); this should go once Snakemake's handler stops taking the lock on the main thread.

**SIGINT.** Snakemake 9 has no SIGINT handler: Python's KeyboardInterrupt ends the scheduler's loop
wherever it lands (``except (KeyboardInterrupt, SystemExit)``: ``self._executor.cancel()``, return),
and the local executor's ``cancel`` waits for the running jobs (``ThreadPoolExecutor.shutdown``)
while nothing post-processes a job any more. Every job that ends after the signal, and one that had
ended but was not post-processed yet, keeps the "incomplete" marks Snakemake put on its outputs
when it started: a plain re-run stops with ``IncompleteFilesException``, and ``--rerun-incomplete``
reruns them all, retraining trials whose ``result.json`` had been written whole. A SIGINT to the
``snakemake`` process alone (``kill -INT``) reaches none of its jobs either, so it waits for each
running trial to end.

``handle_stop_signals`` keeps Snakemake's own SIGTERM handler and its meaning but calls it on a
short-lived thread, which waits for the lock like any other thread instead of deadlocking the one
that holds it. When the jobs run on this machine, as this process's children, SIGINT stops the
same way: the same handler (so every job that ends is post-processed: recorded when it succeeded,
its outputs removed when it failed), and the signal passed on to the running jobs, which stop
their trainers and fail without a record (Ctrl-C in a terminal has already sent it to them: a
second one changes nothing). A plain re-run then runs only the interrupted jobs, which resume from
their checkpoints. A cluster executor's jobs are not children: there Ctrl-C keeps Snakemake's
meaning (cancel the jobs).

**The end of a run.** Every pass of the scheduler's loop arms a ``threading.Timer`` of one second
(``JobScheduler._schedule_reevalutation``: the job rate limit, ``--max-jobs-per-timespan``, 100/1s
by default, whose smallest timespan is a second) that only wakes the loop. The timer is not a
daemon thread, so the interpreter waits for the last one before it exits: every run that ran a job
kept ``snakemake`` alive for up to a second after its last job and its "Elapsed time" (1.0-1.3 s
measured, a bare one-rule Snakefile included). ``drop_scheduler_timers``, called by the onsuccess
and onerror hooks once the loop has ended, cancels them. Upstream: no report found in
snakemake/snakemake's issues as of 2026-12 (searched for the timer, the exit delay, the rate limiter).

Both rely on how Snakemake's scheduler works inside, so they apply only to Snakemake 9
(``FIRST_AFFECTED`` up to, not including, ``UNAFFECTED_FROM``): every release read (9.0.0, 9.1.4 and
9.27.1, the newest, ``CHECKED_UP_TO``) has the same locking and KeyboardInterrupt code, so a later
9.x is assumed to keep it until someone reads it; Snakemake 10 runs unchanged.
"""

from __future__ import annotations

import contextlib
import re
import signal
import sys
import threading
from importlib.metadata import PackageNotFoundError, version

# The Snakemake releases whose scheduler has the deadlock and loses jobs on KeyboardInterrupt: read
# in 9.0.0, 9.1.4 and 9.27.1 (the newest when checked); tests/test_resilience.py and
# tests/test_interrupt.py.
FIRST_AFFECTED = (9, 0, 0)
CHECKED_UP_TO = (9, 27, 1)
UNAFFECTED_FROM = (10, 0, 0)


def snakemake_version() -> str | None:
    """The version of the Snakemake running this process (or else installed), without importing it."""
    running = sys.modules.get("snakemake")
    found = getattr(running, "__version__", None)
    if found:
        return str(found)
    try:
        return version("snakemake")
    except PackageNotFoundError:
        return None


def release(text: str | None) -> tuple[int, int, int] | None:
    """``"9.27.1"`` -> ``(9, 27, 1)``; ``"9.3"`` -> ``(9, 3, 0)``; None for anything else."""
    match = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", text or "")
    if match is None:
        return None
    major, minor, patch = match.groups()
    return int(major), int(minor), int(patch or 0)


def is_affected(snakemake: str | None) -> bool:
    """Whether this Snakemake release is one whose stop signals need :func:`handle_stop_signals`."""
    found = release(snakemake)
    return found is not None and FIRST_AFFECTED <= found < UNAFFECTED_FROM


def pass_on_to_children(signum: int) -> None:
    """Send ``signum`` to this process's children: the running jobs of Snakemake's local executor
    (a rule's shell, or the job's program that ``exec`` put in its place)."""
    import psutil  # Snakemake's own dependency

    for child in psutil.Process().children():
        with contextlib.suppress(psutil.Error):  # gone meanwhile
            child.send_signal(signum)


def handle_stop_signals(snakemake: str | None = None, *, local_jobs: bool = True) -> bool:
    """If ``snakemake`` (by default the running Snakemake's version) is affected: run the current
    SIGTERM handler (Snakemake's) off the main thread, and with ``local_jobs`` (the jobs are this
    process's children) have SIGINT pass itself on to them and then call that handler too. True if
    the handlers were installed."""
    if not is_affected(snakemake if snakemake is not None else snakemake_version()):
        return False
    try:
        handler = signal.getsignal(signal.SIGTERM)
    except ValueError:
        return False
    if not callable(handler) or getattr(handler, "_snaketune_deferred", False):
        return False

    def stop(signum: int) -> None:
        handler(signal.SIGTERM, None)  # first, so that the scheduler starts no more jobs
        if signum != signal.SIGTERM:
            pass_on_to_children(signum)

    def deferred(signum, frame):
        threading.Thread(target=stop, args=(signum,), name="stop", daemon=True).start()

    deferred._snaketune_deferred = True
    try:
        signal.signal(signal.SIGTERM, deferred)
        if local_jobs:
            signal.signal(signal.SIGINT, deferred)
    except ValueError:  # not the main thread: leave the handlers as they are
        return False
    return True


def drop_scheduler_timers() -> int:
    """Cancel the pending wake-ups of Snakemake's scheduler loop (see the module's text): for the
    onsuccess and onerror hooks, which run after that loop has ended. A timer is recognised by the
    function it calls (a ``JobScheduler`` method's, in a ``snakemake`` module), so no other timer is
    touched and a Snakemake that no longer arms them is left alone. Returns how many were cancelled."""
    cancelled = 0
    for thread in threading.enumerate():
        function = getattr(thread, "function", None)
        if not isinstance(thread, threading.Timer) or function is None:
            continue
        module, name = getattr(function, "__module__", None) or "", getattr(function, "__qualname__", "")
        if module.startswith("snakemake.") and name.startswith("JobScheduler."):
            thread.cancel()
            cancelled += 1
    return cancelled
