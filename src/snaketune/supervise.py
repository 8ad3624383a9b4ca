"""Process supervision: run a trainer, watch its time limit, pass signals on, never leave it behind.

A trainer runs in its own process group (so a stop reaches its children too), with its stderr
teed into ours (the job's log) and its last lines kept for the failure reason. SIGTERM or SIGINT
to this process stops the trainer (SIGTERM, then SIGKILL after a grace period) and exits with
128 + the signal. The built-in trainer can also run inside this process (packs of short trials),
with the same outcomes. This module imports neither torch nor Snakemake.
"""

from __future__ import annotations

import collections
import contextlib
import os
import signal
import subprocess
import sys
import threading
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

GRACE_SECONDS = 10.0  # between SIGTERM (the trainer may checkpoint) and SIGKILL
TAIL_LINES = 20


@dataclass(frozen=True)
class Outcome:
    returncode: int
    stderr_tail: list[str]
    timed_out: bool


class _Stop(Exception):
    def __init__(self, signum: int) -> None:
        self.signum = signum


def terminate(proc: subprocess.Popen, grace: float = GRACE_SECONDS) -> None:
    """SIGTERM the trainer's process group (it may checkpoint), SIGKILL it after ``grace`` s."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()


def run_command(cmd: str | list[str], *, env: Mapping[str, str], timeout: float | None) -> Outcome:
    """Run the trainer (a shell command line, or an argument list); tee its stderr to ours."""
    proc = subprocess.Popen(
        cmd,
        shell=isinstance(cmd, str),
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)

    def pump() -> None:
        for raw in iter(proc.stderr.readline, b""):
            line = raw.decode("utf-8", "replace")
            tail.append(line)
            sys.stderr.write(line)
            sys.stderr.flush()

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()

    def stop(signum, frame):
        raise _Stop(signum)

    old = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
    timed_out = False
    try:
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            terminate(proc)
    except _Stop as s:
        terminate(proc)
        raise SystemExit(128 + s.signum) from None
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    reader.join(timeout=5)
    return Outcome(proc.returncode, list(tail), timed_out)


class _TimedOut(Exception):
    pass


def run_builtin_in_process(env: Mapping[str, str], timeout: float | None) -> Outcome:
    """The built-in trainer in this process, with the contract's variables; outcomes as run_command."""
    from snaketune import train as trainer

    def alarm(signum, frame):
        raise _TimedOut()

    old_alarm = signal.signal(signal.SIGALRM, alarm)
    old_term = signal.signal(signal.SIGTERM, trainer._on_sigterm)
    if timeout:
        signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        trainer.train(trainer.TrialSettings.from_env(env))
        return Outcome(0, [], False)
    except _TimedOut:
        return Outcome(124, [], True)
    except trainer.Preempted:
        return Outcome(143, ["[snaketune] preempted"], False)
    except Exception as e:  # the trial fails; the pack goes on
        reason = trainer.failure_message(e)
        if reason is None:
            reason = "".join(traceback.format_exception_only(e)).strip()
            traceback.print_exc()
        print(f"[snaketune] trial failed: {reason}", file=sys.stderr, flush=True)
        return Outcome(2, [f"[snaketune] trial failed: {reason}"], False)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old_alarm)
        signal.signal(signal.SIGTERM, old_term)


@contextlib.contextmanager
def output_to(path: str | os.PathLike):
    """Send this process's stdout and stderr (file descriptors 1 and 2) to ``path`` meanwhile."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for f in (fd, *saved):
            os.close(f)
