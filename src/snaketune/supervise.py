"""Process supervision: run a trainer, watch its time limit, pass signals on, never leave it behind.

A trainer runs in its own process group (so a stop reaches its children too), with its stderr
teed into ours (the job's log) and its last lines kept for the failure reason. SIGTERM or SIGINT
to this process stops the trainer (the same signal to its group, then SIGKILL after a grace
period) and the outcome names that signal; a second one meanwhile changes nothing. The built-in
trainer can also run inside this process (packs of short trials), with the same outcomes. This
module imports neither torch nor Snakemake.

No process of a trainer outlives its run, however the run ends:

* The group's leader is a small guard (:mod:`snaketune.guard`) that starts the trainer and exits
  as it did. It holds the read end of a pipe whose only write end is this process's: when this
  process dies, even by SIGKILL, the pipe reads end-of-file and the guard SIGKILLs the whole group.
* A timeout or a stop SIGTERMs the group, then SIGKILLs whatever is left of it after the grace
  period, whether the leader still runs or not; a trainer that exits leaves no stragglers either.
  The run's outcome is given only once no process of the group runs any more.
* A process that leaves the group on purpose (``setsid``, a daemon) is beyond reach.

:func:`sole_writer` keeps a second run out of a trial folder that a live run writes.
"""

from __future__ import annotations

import collections
import contextlib
import datetime
import fcntl
import os
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from snaketune.layout import WRITER_LOCK

GRACE_SECONDS = 10.0  # between SIGTERM (the trainer may checkpoint) and SIGKILL
REAP_SECONDS = 30.0  # for SIGKILLed processes to go: one inside a system call (a GPU driver, NFS) goes when it returns
TAIL_LINES = 20
POLL_SECONDS = 0.05
# A run whose Snakemake died stops its trainer within the grace period (die_with_parent); a new
# run of the same folder waits that long for it before it calls the folder taken.
LOCK_WAIT_SECONDS = GRACE_SECONDS + 5.0
_PR_SET_PDEATHSIG = 1  # linux/prctl.h


@dataclass(frozen=True)
class Outcome:
    returncode: int
    stderr_tail: list[str]
    timed_out: bool
    stopped: int | None = None  # the signal (SIGTERM, SIGINT) that stopped this process, and so the trainer
    usage: dict[str, float] | None = None  # the trainer's own cpu_seconds and max_rss_mb, where known


STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)  # a scheduler preempting, Snakemake stopping, Ctrl-C


class _Stop(Exception):
    def __init__(self, signum: int) -> None:
        self.signum = signum


def _ignore(signum, frame) -> None:
    pass


_finish_once_trained = False


def finish_once_trained() -> None:
    """For a process that runs one trainer and then exits (a training job): once its trainer has
    ended, SIGTERM and SIGINT no longer stop it. What is left is recording the run, a moment's
    work, and a job that has written its record must not fail: Snakemake deletes a failed job's
    outputs, and a finished trial would be trained again."""
    global _finish_once_trained
    _finish_once_trained = True


class Leftover(RuntimeError):
    """Processes of a trainer's group still run after SIGKILL: the run has no outcome yet."""


class FolderBusy(RuntimeError):
    """Another live run writes this trial folder; this one must not touch it."""


def die_with_parent(signum: int = signal.SIGKILL) -> bool:
    """Linux: have the kernel send ``signum`` to this process when its parent dies (the thread that
    started it, precisely); False where that cannot be arranged. Call it in the child."""
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    parent = os.getppid()
    if ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(signum), 0, 0, 0) != 0:
        return False
    if os.getppid() != parent:  # the parent died before the request: nothing will send the signal now
        os.kill(os.getpid(), signum)
    return True


def live_members(pgid: int) -> list[int]:
    """The processes of group ``pgid`` that still run. A zombie (dead, not yet reaped: a container's
    init may never reap the orphans it inherits) holds nothing and does not count."""
    if not os.path.exists("/proc/self/stat"):  # no procfs: ask the kernel whether the group exists
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return []
        except PermissionError:
            pass
        return [pgid]
    members = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        stat = process_stat(int(entry.name))
        if stat is None:  # gone meanwhile
            continue
        state, _ppid, pgrp = stat[:3]
        if int(pgrp) == pgid and state not in ("Z", "X"):
            members.append(int(entry.name))
    return members


def process_stat(pid: int) -> list[str] | None:
    """The fields of ``/proc/<pid>/stat`` after the command name (which may hold spaces): state,
    ppid, pgrp, ... (``proc(5)`` numbers them from 3); None if it cannot be read (gone)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read().decode("ascii", "replace")
    except OSError:
        return None
    return stat[stat.rindex(")") + 2 :].split()


def kill_group(proc: subprocess.Popen, wait: float | None = None) -> None:
    """SIGKILL every process left in the group ``proc`` leads (alive or not), reap ``proc``, and
    return once none of the group runs; raise Leftover if some still run after ``wait`` s (REAP_SECONDS)."""
    wait = REAP_SECONDS if wait is None else wait
    deadline = time.monotonic() + wait
    while True:
        proc.poll()  # reap the leader if it has exited
        left = live_members(proc.pid)
        if not left:
            proc.wait()
            return
        if time.monotonic() > deadline:
            raise Leftover(
                f"trainer process(es) {', '.join(map(str, left))} of process group {proc.pid} still run "
                f"{wait:g} s after SIGKILL (stuck in the kernel: a GPU driver, a network file system?)"
            )
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        time.sleep(POLL_SECONDS)


def terminate(proc: subprocess.Popen, grace: float | None = None, signum: int = signal.SIGTERM) -> None:
    """Send ``signum`` to the trainer's process group (it may checkpoint); after ``grace`` s
    (GRACE_SECONDS), or as soon as none of it runs, SIGKILL whatever is left, leader or not, and
    wait until nothing is."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signum)
    deadline = time.monotonic() + (GRACE_SECONDS if grace is None else grace)
    while time.monotonic() < deadline and (proc.poll() is None or live_members(proc.pid)):
        time.sleep(POLL_SECONDS)
    kill_group(proc)


def guarded(cmd: str | list[str], lifeline: int) -> list[str]:
    """The command line that runs ``cmd`` under :mod:`snaketune.guard`, watching the pipe end
    ``lifeline``: the guard's file run as a script, in isolated mode (``-I``)."""
    how = ["--shell", cmd] if isinstance(cmd, str) else ["--exec", *cmd]
    return [sys.executable, "-I", str(Path(__file__).with_name("guard.py")), str(lifeline), *how]


def run_command(cmd: str | list[str], *, env: Mapping[str, str], timeout: float | None) -> Outcome:
    """Run the trainer (a shell command line, or an argument list); tee its stderr to ours."""
    lifeline, held = os.pipe()  # the guard's read end, and the one write end: ours, closed when we die
    try:
        proc = subprocess.Popen(
            guarded(cmd, lifeline),
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
            pass_fds=(lifeline,),
        )
    except BaseException:
        os.close(held)
        raise
    finally:
        os.close(lifeline)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    try:
        outcome = watch(proc, timeout)
    finally:
        os.close(held)  # the group is gone by now, unless we fail: then the guard kills it
    # The guard waited for the trainer, so its figures are the trainer's (and the guard's few ms).
    # Peak memory is the largest of this process's children so far: a job runs one trainer.
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return replace(outcome, usage={"cpu_seconds": cpu, "max_rss_mb": after.ru_maxrss / 1024})


def watch(proc: subprocess.Popen, timeout: float | None, grace: float | None = None) -> Outcome:
    """Supervise a started trainer (a ``Popen`` of its group's leader, or anything with its
    ``pid``, ``stderr``, ``poll`` and ``wait``) until none of its group runs: its stderr teed into
    ours (unless ``stderr`` is None: it writes ours itself), its time limit, this process's stop
    signals passed on, SIGKILL ``grace`` s later (GRACE_SECONDS). Its outcome."""
    tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)

    def pump() -> None:
        for raw in iter(proc.stderr.readline, b""):
            line = raw.decode("utf-8", "replace")
            tail.append(line)
            sys.stderr.write(line)
            sys.stderr.flush()

    reader = threading.Thread(target=pump, daemon=True)
    if proc.stderr is not None:
        reader.start()

    def stop(signum, frame):
        if _finish_once_trained and proc.returncode is not None:
            return  # the trainer has ended by itself: its run is recorded, not stopped
        raise _Stop(signum)

    old = {s: signal.signal(s, stop) for s in STOP_SIGNALS}
    timed_out, stopped = False, None
    try:
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            terminate(proc)
        kill_group(proc)  # a trainer that exited leaves no stragglers in its group
    except _Stop as s:
        for signum in STOP_SIGNALS:  # stopping already: Ctrl-C's SIGINT may come twice (the terminal, Snakemake)
            signal.signal(signum, _ignore)
        if _finish_once_trained and proc.poll() is not None:
            kill_group(proc)  # the trainer had just ended by itself: the run has its outcome
        else:
            stopped = s.signum
            terminate(proc, grace, signum=stopped)  # the same signal: the trainer's log names what stopped it
    finally:
        for s, h in old.items():  # SIG_IGN, not a handler: Python resets its handlers as it exits
            signal.signal(s, signal.SIG_IGN if _finish_once_trained else h)
    if reader.is_alive():
        reader.join(timeout=5)
    return Outcome(proc.returncode, list(tail), timed_out, stopped, getattr(proc, "usage", None))


class _TimedOut(Exception):
    pass


def run_builtin_in_process(env: Mapping[str, str], timeout: float | None) -> Outcome:
    """The built-in trainer in this process, with the contract's variables; outcomes as run_command."""
    from snaketune import train as trainer

    def alarm(signum, frame):
        raise _TimedOut()

    old_alarm = signal.signal(signal.SIGALRM, alarm)
    old_stop = {s: signal.signal(s, trainer._on_sigterm) for s in STOP_SIGNALS}
    if timeout:
        signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        trainer.train(trainer.TrialSettings.from_env(env))
        return Outcome(0, [], False)
    except _TimedOut:
        return Outcome(124, [], True)
    except trainer.Preempted as e:
        return Outcome(128 + e.signum, [f"[snaketune] preempted ({signal.Signals(e.signum).name})"], False, e.signum)
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
        for s, h in old_stop.items():
            signal.signal(s, h)


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


_held: set[Path] = set()  # the trial folders this process holds (sole_writer is reentrant)


@contextlib.contextmanager
def sole_writer(folder: str | os.PathLike, wait: float | None = None):
    """Hold the trial folder's lock (an exclusive ``flock`` on ``<folder>/writer.lock``) meanwhile.

    One run writes a trial folder at a time. A holder that is stopping (its Snakemake died and it
    stops its trainer) gets ``wait`` s (LOCK_WAIT_SECONDS) to let go; a folder still held then has
    another live writer (a second Snakemake on the same study, or a job that a killed Snakemake left
    running): raise FolderBusy, naming the holder, before anything in the folder is touched. The kernel drops the
    lock when its holder dies, by any signal, so a killed run never blocks its re-run. The lock file
    is never deleted (that would race with a process that has it open); it holds the last holder's
    pid, host and start time.
    """
    folder = Path(folder).resolve()
    if folder in _held:
        yield
        return
    path = folder / WRITER_LOCK
    wait = LOCK_WAIT_SECONDS if wait is None else wait
    folder.mkdir(parents=True, exist_ok=True)  # a promoted rung's or a re-run's folder is new
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
    try:
        deadline, told = time.monotonic() + wait, False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                holder = " ".join(os.pread(fd, 512, 0).decode("utf-8", "replace").split()) or "unknown"
                if time.monotonic() >= deadline:
                    raise FolderBusy(
                        f"{folder} is being written by another live run ({holder}): a trial folder has one "
                        "writer at a time. Stop that run (or let it finish), then run Snakemake again."
                    ) from None
                if not told:
                    print(f"[snaketune] waiting up to {wait:g} s for the run writing {folder} ({holder})", flush=True)
                    told = True
                time.sleep(0.2)
            except OSError as e:  # e.g. ENOLCK: a file system without locks; the run goes on unprotected
                print(f"[snaketune] warning: cannot lock {path} ({e.strerror}); nothing keeps a second run out", flush=True)
                break
        since = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid={os.getpid()} host={socket.gethostname()} since={since}\n".encode(), 0)
        _held.add(folder)
        try:
            yield
        finally:
            _held.discard(folder)
    finally:
        os.close(fd)  # releases the lock
