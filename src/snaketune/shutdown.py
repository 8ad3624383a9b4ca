"""A SIGTERM sent to Snakemake must stop it, never hang it.

Snakemake 9's scheduler handles SIGTERM with ``JobScheduler.exit_gracefully``, which takes the
scheduler's non-reentrant ``threading.Lock``. Python runs signal handlers on the main thread
between two bytecodes, and the main thread holds that very lock while it post-processes finished
jobs (``JobScheduler.schedule``: ``with self._lock: self._finish_jobs() ...``; in
snakemake/scheduler.py up to 9.1, snakemake/scheduling/job_scheduler.py since), so a SIGTERM that
lands there waits forever for itself: Snakemake hangs, its jobs already stopped, until something
sends SIGKILL (and the next run must ``--unlock``). Seen here: 1 hang in 8 SIGTERMs sent while
trials finish. SLURM sends SIGTERM to a head job it cancels or times out.

Upstream: no report found in snakemake/snakemake's issues as of 2026-12 (searched for SIGTERM,
deadlock, ``exit_gracefully``, scheduler lock); the workaround should go once Snakemake's handler
stops taking the lock on the main thread.

``defer_sigterm_handler`` keeps Snakemake's own handler and its meaning (finish or stop the
running jobs, then exit) but calls it on a short-lived thread, which waits for the lock like any
other thread instead of deadlocking the one that holds it. It relies on how Snakemake's scheduler
works inside, so it applies only to Snakemake 9 (``FIRST_AFFECTED`` up to, not including,
``UNAFFECTED_FROM``): every release read (9.0.0, 9.1.4 and 9.27.1, the newest, ``CHECKED_UP_TO``)
has the same locking code, so a later 9.x is assumed to keep it until someone reads it; Snakemake
10 runs unchanged.
"""

from __future__ import annotations

import re
import signal
import sys
import threading
from importlib.metadata import PackageNotFoundError, version

# The Snakemake releases whose scheduler has the deadlock: read in 9.0.0, 9.1.4 and 9.27.1
# (the newest when checked), simulated by tests/test_resilience.py.
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


def has_sigterm_deadlock(snakemake: str | None) -> bool:
    """Whether this Snakemake release is one known to deadlock on SIGTERM."""
    found = release(snakemake)
    return found is not None and FIRST_AFFECTED <= found < UNAFFECTED_FROM


def defer_sigterm_handler(snakemake: str | None = None) -> bool:
    """Run the current SIGTERM handler off the main thread, if ``snakemake`` (by default the
    running Snakemake's version) is affected; True if a handler was wrapped."""
    if not has_sigterm_deadlock(snakemake if snakemake is not None else snakemake_version()):
        return False
    try:
        handler = signal.getsignal(signal.SIGTERM)
    except ValueError:
        return False
    if not callable(handler) or getattr(handler, "_snaketune_deferred", False):
        return False

    def deferred(signum, frame):
        threading.Thread(target=handler, args=(signum, None), name="sigterm", daemon=True).start()

    deferred._snaketune_deferred = True
    try:
        signal.signal(signal.SIGTERM, deferred)
    except ValueError:  # not the main thread: leave the handler as it is
        return False
    return True
