"""Warm trial workers: one job per trial, without paying ``import torch`` in every job.

On one machine, a trial's job spends most of its second of start-up importing torch. A warm
worker is a process that has imported torch and snaketune's trainers once and forks a child for
each trial; the trial's Snakemake job stays what it is (one job, one folder, one record). The job's
own process imports almost nothing: it hands its whole work to the worker (:func:`delegate`), whose
child runs the job's runner (:mod:`snaketune.job`, :mod:`snaketune.runner`) with everything
already imported, and that runner has the worker fork the trainer in turn, instead of starting a
new interpreter. A child runs ``python -m <module> <args>`` exactly as a new process would
(``runpy``), with the job's environment, working folder, stdout and stderr.

Who may use one
    Only trainers that snaketune runs with its own interpreter (the built-in trainer and
    ``trainer.function``); a ``trainer.command`` always gets its own process. The workflow's heavier
    Python steps hand themselves over too (:mod:`snaketune.scriptjob`: each Bayesian proposal, the
    final model's evaluation), so the worker also imports Optuna. Only local runs: the
    workflow turns workers on (``SNAKETUNE_WORKER_OWNER``, :func:`owner_token`) when Snakemake runs
    jobs on this machine itself, never under a cluster executor, whose jobs land on other nodes.
    ``trainer.warm_worker: false`` in the study, or ``SNAKETUNE_WORKER=0`` in the environment, turns
    them off.

Which worker
    One per Snakemake run (its owner, the Snakemake process), interpreter, environment, installed
    packages and user: the socket's name is a hash of them all, in a folder only the user can enter
    (``$XDG_RUNTIME_DIR/snaketune`` or ``/tmp/snaketune-<uid>``, or ``SNAKETUNE_WORKER_DIR``), and
    the worker serves only connections of its own user. Two checkouts, venvs or runs never share one.
    The first job that finds none starts it (a lock keeps it to one) and waits for it to listen;
    the workflow's onstart hook, when the run has trials to fork, starts it without waiting
    (:func:`prestart`), so that it imports torch while the first jobs (prepare_data) run.

Lifetime
    The worker exits when its Snakemake run ends (the workflow's ``onsuccess``/``onerror`` stop it
    and wait; a Snakemake that died is noticed within a second), or after ``IDLE_SECONDS`` without a
    trial. If it dies, the next job starts another.

What a trial job still guarantees
    Each link of the chain supervises the next as a trainer process is supervised
    (:func:`snaketune.supervise.watch`): the job's process the runner's child, the runner the
    trainer. Both children lead process groups of their own. A stop signal to the job goes to the
    runner, which passes it to the trainer (it checkpoints; a re-run resumes); the job waits out
    the runner's own grace period before it SIGKILLs anything. The runner applies the trial's
    timeout. If the job's process dies, even by SIGKILL, the worker sees its connection close and
    SIGKILLs the runner's group, whose connection then closes too, and so the trainer's group. If
    the worker dies, the kernel SIGKILLs the trainer (``PR_SET_PDEATHSIG``) and sends the runner
    SIGTERM, which stops it as any stop does (a trial resumes on the re-run; a trainer that had
    already ended is recorded), and the runner sends the job its exit status itself. A
    GPU lease's lock is passed to the trainer, so the slot stays taken until the trainer is gone.
    The trainer's own CPU time and peak memory, which Snakemake's ``benchmark.tsv`` (it follows
    the job's process) cannot see, are recorded in ``result.json``.

This module imports neither torch nor Snakemake (the worker process imports torch when it starts).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import select
import selectors
import signal
import socket
import struct
import subprocess
import sys
import time
import traceback
from collections.abc import Mapping, MutableMapping, Sequence
from pathlib import Path

ENV_SWITCH = "SNAKETUNE_WORKER"  # "0" (or false/no/off): never use a warm worker
ENV_OWNER = "SNAKETUNE_WORKER_OWNER"  # set by the workflow for local runs: the Snakemake process
ENV_DIR = "SNAKETUNE_WORKER_DIR"  # the folder of the sockets (default: see socket_dir)
ENV_IDLE = "SNAKETUNE_WORKER_IDLE"  # seconds without a trial before a worker exits (IDLE_SECONDS)
ENV_SOCKET = "SNAKETUNE_WORKER_SOCKET"  # set in a worker's children: the socket of the worker that forked them
# What the worker imports before it forks: the jobs' runner (snaketune.job hands itself over), the
# trainer's modules, and what the workflow scripts that hand themselves over (snaketune.scriptjob)
# import: Optuna for Bayesian proposals.
WARM_MODULES = (
    "snaketune.job",
    "snaketune.runner",
    "snaketune.packs",
    "snaketune.rungs",
    "snaketune.reeval",
    "snaketune.front",
    "snaketune.train",
    "snaketune.trial",
    "snaketune.model",
    "snaketune.data",
    "torch.optim",
    "optuna",
    "snaketune.bayes",
    "snaketune.plan",
    "snaketune.final",
    "snaketune.evaluate",
)
IDLE_SECONDS = 120.0  # a worker without a trial for this long exits
START_SECONDS = 120.0  # how long a job waits for a worker it started to listen (it imports torch)
OWNER_POLL_SECONDS = 0.5
_HEADER = struct.Struct("!I")
_MAX_REQUEST = 16 * 1024 * 1024
_OFF = ("0", "false", "no", "off")


class WorkerError(RuntimeError):
    """No warm worker could take the trial; the runner starts the trainer itself."""


# -- the owner: which Snakemake run a worker serves ------------------------------------------------


def _start_time(pid: int) -> str | None:
    """The kernel's start time of process ``pid`` (so a reused pid is another process), or None
    when it does not run (a zombie, dead but not yet reaped by its parent, does not)."""
    from snaketune.supervise import process_stat

    fields = process_stat(pid)
    return None if fields is None or fields[0] in ("Z", "X") else fields[19]


def owner_token(pid: int | None = None) -> str:
    """``<pid>:<start time>`` of the Snakemake process (this one by default)."""
    pid = os.getpid() if pid is None else pid
    return f"{pid}:{_start_time(pid) or '?'}"


def owner_alive(token: str) -> bool:
    """Whether the process ``token`` names still runs (and is the same process)."""
    pid_text, _, started = token.partition(":")
    try:
        pid = int(pid_text)
    except ValueError:
        return False
    if os.path.exists("/proc/self/stat"):
        now = _start_time(pid)
        return now is not None and (started in ("?", "") or now == started)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def _switched_off(environ: Mapping[str, str]) -> bool:
    return environ.get(ENV_SWITCH, "1").strip().lower() in _OFF


def configure(environ: dict[str, str] | os._Environ, *, local: bool, enabled: bool) -> bool:
    """The workflow's switch (common.smk, in the Snakemake process): set the owner for the jobs of a
    local run with workers enabled, else remove it (a cluster job must not inherit its head's)."""
    on = local and enabled and not _switched_off(environ)
    if on:
        environ.setdefault(ENV_OWNER, owner_token())  # a nested evaluation keeps its run's owner
    else:
        environ.pop(ENV_OWNER, None)
    return on


def active_owner(environ: Mapping[str, str] = os.environ) -> str | None:
    """The owner of the worker this job may use, or None (workers off)."""
    return None if _switched_off(environ) else environ.get(ENV_OWNER) or None


# -- where: one socket per (owner, interpreter, packages, user) ------------------------------------


def socket_dir(environ: Mapping[str, str] = os.environ, create: bool = True) -> Path:
    """The folder of this user's worker sockets: created mode 0700 (unless ``create`` is false);
    refused if anyone else may enter it."""
    chosen = environ.get(ENV_DIR)
    if chosen:
        folder = Path(chosen)
    elif environ.get("XDG_RUNTIME_DIR") and os.path.isdir(environ["XDG_RUNTIME_DIR"]):
        folder = Path(environ["XDG_RUNTIME_DIR"]) / "snaketune"
    else:
        folder = Path("/tmp") / f"snaketune-{os.getuid()}"
    if not create and not folder.is_dir():
        return folder
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = folder.stat()
    if st.st_uid != os.getuid() or st.st_mode & 0o077:
        raise WorkerError(f"{folder} must belong to this user and be closed to others (chmod 700)")
    return folder


def _installed() -> list[str]:
    """Which files of snaketune, torch and numpy this interpreter imports: each package's
    ``__init__.py``, its path, inode, size and modification time, which any reinstall or upgrade
    changes. Found without importing them (``find_spec`` only locates), and without
    ``importlib.metadata``, whose import and search took 30 ms of each trial job's start."""
    import importlib.util

    out = []
    for name in ("snaketune", "torch", "numpy"):
        try:
            origin = importlib.util.find_spec(name).origin
            st = os.stat(origin)
            out.append(f"{name}: {origin} {st.st_ino} {st.st_size} {st.st_mtime_ns}")
        except (AttributeError, ImportError, TypeError, ValueError, OSError):
            out.append(f"{name}: none")
    return out


def worker_key(owner: str) -> str:
    """The worker's name: a hash of the owner, the interpreter and its environment, the snaketune
    source this process imports, the installed packages' files and the user."""
    import snaketune

    parts = [
        owner,
        os.path.realpath(sys.executable),
        sys.prefix,
        sys.version,
        str(Path(snaketune.__file__).resolve().parent),
        *_installed(),
        str(os.getuid()),
    ]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:20]


def socket_path(owner: str, environ: Mapping[str, str] = os.environ, create: bool = True) -> Path:
    """The socket of the owner's worker (its lock and log: the same name, .lock and .log)."""
    path = socket_dir(environ, create) / f"w-{worker_key(owner)}.sock"
    if len(os.fsencode(path)) > 100:  # sun_path holds 108 bytes
        raise WorkerError(f"the socket path {path} is too long; set {ENV_DIR} to a short folder")
    return path


# -- the wire: a length-prefixed JSON message, with file descriptors on the first part ------------


def _send(sock: socket.socket, message: dict, fds: Sequence[int] = ()) -> None:
    data = json.dumps(message).encode()
    payload = _HEADER.pack(len(data)) + data
    sent = socket.send_fds(sock, [payload], list(fds)) if fds else sock.send(payload)
    if sent < len(payload):
        sock.sendall(payload[sent:])


def _recv(sock: socket.socket, maxfds: int = 0) -> tuple[dict | None, list[int]]:
    """One message and the descriptors that came with it; (None, []) at end-of-file."""
    data, fds, _flags, _addr = socket.recv_fds(sock, 65536, maxfds) if maxfds else (sock.recv(65536), [], 0, None)
    if not data:
        for fd in fds:
            os.close(fd)
        return None, []
    while len(data) < _HEADER.size or len(data) < _HEADER.size + _HEADER.unpack_from(data)[0]:
        if len(data) >= _HEADER.size and _HEADER.unpack_from(data)[0] > _MAX_REQUEST:
            raise ValueError("message too large")
        more = sock.recv(65536)
        if not more:
            raise ConnectionError("connection closed mid-message")
        data += more
    (size,) = _HEADER.unpack_from(data)
    return json.loads(data[_HEADER.size : _HEADER.size + size]), fds


# -- the client: a trial's runner --------------------------------------------------------------------


class WarmChild:
    """A trainer the worker forked, as :func:`snaketune.supervise.watch` sees a ``Popen``: its pid
    (the leader of its own process group), its stderr pipe, ``poll()``, ``wait()``, ``returncode``;
    and, once it has ended, its own CPU seconds and peak memory (``usage``)."""

    def __init__(self, conn: socket.socket, pid: int, stderr_read: int | None, worker: int | None = None) -> None:
        self.conn, self.pid, self.worker = conn, pid, worker
        self.stderr = None if stderr_read is None else os.fdopen(stderr_read, "rb")  # None: it writes ours
        self.returncode: int | None = None
        self.usage: dict[str, float] | None = None

    def _take(self, timeout: float | None) -> None:
        if self.returncode is not None:
            return
        ready, _, _ = select.select([self.conn], [], [], timeout)
        if not ready:
            return
        # A stop signal (its handler raises) waits until the message is read whole: half a
        # message lost would turn a trainer that ended into one whose worker died.
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
        try:
            try:
                message, _ = _recv(self.conn)
            except (OSError, ValueError):
                message = None
            if message is None:  # the worker died (the kernel SIGKILLs its children), and a reporting child too
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(self.pid, signal.SIGKILL)
                print(f"[snaketune] the warm worker running trainer {self.pid} died", file=sys.stderr, flush=True)
                self.returncode = -signal.SIGKILL
            else:
                self.usage = message.get("usage")
                self.returncode = int(message["returncode"])
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)

    def poll(self) -> int | None:
        self._take(0)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.returncode is None:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise subprocess.TimeoutExpired("warm trainer", timeout)
            self._take(left)
        return self.returncode

    def close(self) -> None:
        self.conn.close()
        if self.stderr is not None:
            self.stderr.close()


def _connect(path: Path) -> socket.socket | None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        sock.connect(str(path))
    except (FileNotFoundError, ConnectionRefusedError):
        sock.close()
        return None
    return sock


THREAD_VARIABLES = ("OMP_NUM_THREADS", "GOTO_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS")


def one_thread_for_zero(environ: MutableMapping[str, str]) -> MutableMapping[str, str]:
    """Set the thread-count variables Snakemake exports as the job's threads to 1 where they are 0
    (a rule with ``threads: 0``, such as ``propose``): OpenMP rejects 0 (torch prints an error)."""
    for name in THREAD_VARIABLES:
        if environ.get(name) == "0":
            environ[name] = "1"
    return environ


def _spawn(path: Path, owner: str) -> subprocess.Popen:
    """Start the owner's worker at ``path`` (it exits at once if another one holds the start lock)."""
    with open(path.with_suffix(".log"), "ab") as fh:  # the worker's own messages (its trainers write to their jobs' logs)
        return subprocess.Popen(
            [sys.executable, "-m", "snaketune.worker", "serve", str(path), owner],
            stdin=subprocess.DEVNULL,
            stdout=fh,
            stderr=fh,
            start_new_session=True,  # not in Snakemake's process group: it outlives a job, not its run
            close_fds=True,
            # numpy's OpenBLAS starts a thread pool as it is imported: one thread, so that the
            # worker forks from a single thread (a trainer sets its own thread count for torch)
            env={**one_thread_for_zero(dict(os.environ)), "OPENBLAS_NUM_THREADS": "1"},
        )


def prestart(environ: Mapping[str, str] = os.environ) -> bool:
    """Start this run's worker if workers are on and none listens, without waiting for it: the
    workflow's onstart hook calls it when the run has trials to fork, so that the worker imports
    torch while the first jobs run. Whether one was started."""
    owner = active_owner(environ)
    if owner is None:
        return False
    try:
        path = socket_path(owner, environ)
        probe = _connect(path)
        if probe is not None:
            probe.close()
            return False
        starter = _spawn(path, owner)
    except (WorkerError, OSError):
        return False  # the first trial tries again, and says why
    starter.returncode = 0  # it runs on after this process: keep Popen's destructor quiet about it
    return True


def connect(owner: str, environ: Mapping[str, str] = os.environ) -> socket.socket:
    """A connection to the owner's worker, started if none listens; WorkerError if none can be had.
    In a worker's child (a job's runner): the worker that forked it."""
    try:
        path = Path(environ[ENV_SOCKET]) if environ.get(ENV_SOCKET) else socket_path(owner, environ)
    except OSError as e:
        raise WorkerError(f"no folder for the worker's socket ({e})") from None
    sock = _connect(path)
    if sock is not None:
        return sock
    log = path.with_suffix(".log")
    starter = _spawn(path, owner)
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        sock = _connect(path)
        if sock is not None:
            starter.returncode = starter.returncode or 0  # keep Popen's destructor quiet about it
            return sock
        code = starter.poll()
        if code not in (None, 0):  # 0: another job's worker won the start; it listens soon
            raise WorkerError(f"the warm worker exited with status {code} at start (its log: {log})")
        time.sleep(0.02)
    raise WorkerError(f"no warm worker listened at {path} within {START_SECONDS:g} s (its log: {log})")


def start(
    cmd: Sequence[str],
    env: Mapping[str, str],
    *,
    owner: str,
    keep_fds: Sequence[int] = (),
    tee_stderr: bool = True,
    reports: bool = False,
) -> WarmChild:
    """Have the owner's worker fork ``cmd``, which must be ``[this interpreter, "-m", module, *args]``,
    with ``env`` in this folder, its stdout ours and its stderr a pipe to us (``tee_stderr``, for
    the trainer's last lines) or ours, holding ``keep_fds`` (GPU lease locks) while it runs. With
    ``reports`` the child itself sends its exit status over the connection as it exits, so that it
    arrives even if the worker dies first (end-of-file then means both are gone). WorkerError if no
    worker takes it (nothing has run then)."""
    if len(cmd) < 3 or list(cmd[:2]) != [sys.executable, "-m"]:
        raise WorkerError(f"a worker runs only `{sys.executable} -m <module>`, not {list(cmd)}")
    try:
        conn = connect(owner, env)
        stderr_read, stderr_write = os.pipe() if tee_stderr else (None, 2)
    except (WorkerError, OSError) as e:
        raise WorkerError(str(e)) from None

    def close_pipe() -> None:
        if stderr_read is not None:
            os.close(stderr_read)

    try:
        request = {"argv": list(cmd[2:]), "env": dict(env), "cwd": os.getcwd(), "report": reports}
        sys.stdout.flush()
        sys.stderr.flush()
        _send(conn, request, [1, stderr_write, *keep_fds])
        reply, _ = _recv(conn)
    except (OSError, ValueError) as e:
        conn.close()
        close_pipe()
        raise WorkerError(f"the warm worker did not take the trial ({e})") from None
    finally:
        if stderr_read is not None:
            os.close(stderr_write)
    if not reply or "pid" not in reply:
        conn.close()
        close_pipe()
        raise WorkerError(f"the warm worker did not take the trial ({(reply or {}).get('error', 'it closed the connection')})")
    return WarmChild(conn, int(reply["pid"]), stderr_read, reply.get("worker"))


def run(
    cmd: Sequence[str],
    env: Mapping[str, str],
    *,
    timeout: float | None,
    owner: str,
    keep_fds: Sequence[int] = (),
    label: str | None = "trainer",
):
    """Run ``cmd`` (``python -m <module> <args>``) in the owner's warm worker, supervised as a trainer
    process is (:func:`snaketune.supervise.watch`); its Outcome. WorkerError if no worker takes it.
    ``label`` names the child on stdout (None: nothing is printed)."""
    from snaketune.supervise import watch

    child = start(cmd, env, owner=owner, keep_fds=keep_fds)
    if label:
        print(f"[snaketune] {label} {child.pid} forked by warm worker {child.worker}", flush=True)
    try:
        return watch(child, timeout)
    finally:
        child.close()


def delegate(module: str, args: Sequence[str], env: Mapping[str, str], *, owner: str) -> int:
    """Run this job's own work, ``python -m <module> <args>`` with ``env``, in the owner's warm worker
    instead of in this process, and return the exit status this process is to exit with: the
    child's, or 1 if a signal ended it (its stdout and stderr are ours). This process only waits:
    its stop signals go to the child, which ends its work as this process would have (a trial's
    runner stops its trainer, which checkpoints), and whatever of the child's group still runs
    after its own grace period and reaping time is SIGKILLed. Once the child has ended, a stop
    signal no longer fails this job (:func:`snaketune.supervise.finish_once_trained`): the child's
    outputs are written. WorkerError if no worker takes it (nothing has run then)."""
    from snaketune.supervise import GRACE_SECONDS, REAP_SECONDS, Leftover, finish_once_trained, watch

    child = start([sys.executable, "-m", module, *args], env, owner=owner, tee_stderr=False, reports=True)
    finish_once_trained()
    try:
        outcome = watch(child, None, grace=GRACE_SECONDS + REAP_SECONDS + 5.0)
    except Leftover as e:
        print(f"[snaketune] {e}", file=sys.stderr, flush=True)
        return 1
    finally:
        child.close()
    code = outcome.returncode
    if code < 0:  # killed: by our SIGKILL after the grace period, the out-of-memory killer, the worker's death
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = str(-code)
        print(
            f"[snaketune] process {child.pid}, which did this job's work in the warm worker, was killed by {name}",
            file=sys.stderr,
        )
        return 1
    return code


def stop(owner: str | None = None, wait: float = 10.0) -> bool:
    """Ask the owner's worker (this run's, by default) to exit, and wait until it has; False if none ran."""
    owner = owner or os.environ.get(ENV_OWNER)
    if not owner:
        return False
    try:
        sock = _connect(socket_path(owner, create=False))
    except (WorkerError, OSError):
        return False
    if sock is None:
        return False
    deadline = time.monotonic() + wait
    with sock:
        pid, _uid, _gid = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")))
        try:
            _send(sock, {"stop": True})
            sock.settimeout(wait)
            while sock.recv(4096):  # the worker closes it as it exits
                pass
        except OSError:
            pass
    started = _start_time(pid)
    while started is not None and _start_time(pid) == started and time.monotonic() < deadline:
        time.sleep(0.01)  # gone, not only closing its files
    return True


# -- the worker process --------------------------------------------------------------------------------


class _Server:
    def __init__(self, path: Path, owner: str, lock: int, idle: float = IDLE_SECONDS) -> None:
        self.path, self.owner, self.lock, self.idle = path, owner, lock, idle
        self.cwd = os.getcwd()
        self.sel = selectors.DefaultSelector()
        self.children: dict[int, tuple[socket.socket, int]] = {}  # pid -> (its runner's connection, pidfd)
        self.last_busy = time.monotonic()
        self.listener: socket.socket | None = None
        self.stopping = False  # asked to stop: it exits once its trainers have ended
        self.run_over = False  # its run has ended: nothing will ask for this worker again
        self.trouble = False  # something went wrong: its log stays for reading
        self.keep_open: socket.socket | None = None  # the stop request's connection, closed as it exits

    def log(self, text: str, trouble: bool = False) -> None:
        self.trouble = self.trouble or trouble
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        print(f"{stamp} [snaketune worker {os.getpid()}] {text}", file=sys.stderr, flush=True)

    def listen(self) -> None:
        self.path.unlink(missing_ok=True)  # a dead worker's socket: we hold the start lock
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        listener.bind(str(self.path))
        os.chmod(self.path, 0o600)
        listener.listen(64)
        self.listener = listener
        self.sel.register(listener, selectors.EVENT_READ, ("accept", None))

    def serve(self) -> None:
        while not (self.stopping and not self.children):
            for key, _ in self.sel.select(timeout=OWNER_POLL_SECONDS):
                kind, pid = key.data
                try:
                    if kind == "accept":
                        self.accept()
                    elif kind == "exited":
                        self.reap(pid)
                    elif kind == "runner":
                        self.runner_gone(pid)
                except Exception:  # one bad connection never ends the worker
                    self.log(traceback.format_exc(), trouble=True)
            if not self.children:
                if not owner_alive(self.owner):
                    self.log("its Snakemake run has ended: exiting")
                    self.run_over = True
                    return
                if time.monotonic() - self.last_busy > self.idle:
                    self.log(f"idle for {self.idle:g} s: exiting")
                    return

    def accept(self) -> None:
        conn, _ = self.listener.accept()
        creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        _pid, uid, _gid = struct.unpack("3i", creds)
        if uid != os.getuid():
            self.log(f"refused a connection of user {uid}")
            conn.close()
            return
        conn.settimeout(10)
        fds: list[int] = []
        try:
            request, fds = _recv(conn, maxfds=16)
            if request is None:
                conn.close()
                return
            if request.get("stop"):
                self.log("asked to stop")
                self.stopping = self.run_over = True
                self.sel.unregister(self.listener)
                self.listener.close()
                self.path.unlink(missing_ok=True)
                self.keep_open = conn  # closed as the process exits: the asker waits for that
                return
            pid = self.fork(request, fds, conn)
        except Exception as e:
            self.log(f"could not start a trial: {traceback.format_exc()}", trouble=True)
            with contextlib.suppress(OSError):
                _send(conn, {"error": f"{type(e).__name__}: {e}"})
            conn.close()
            return
        finally:
            for fd in fds:
                os.close(fd)
        pidfd = os.pidfd_open(pid)
        self.children[pid] = (conn, pidfd)
        self.sel.register(pidfd, selectors.EVENT_READ, ("exited", pid))
        self.sel.register(conn, selectors.EVENT_READ, ("runner", pid))
        self.last_busy = time.monotonic()
        _send(conn, {"pid": pid, "worker": os.getpid()})

    def fork(self, request: dict, fds: list[int], conn: socket.socket) -> int:
        argv, env, cwd = list(request["argv"]), dict(request["env"]), request["cwd"]
        if len(fds) < 2 or not argv:
            raise ValueError("a request needs a module, stdout and stderr")
        ready_read, ready_write = os.pipe()
        sys.stdout.flush()
        sys.stderr.flush()
        reports = bool(request.get("report"))
        pid = os.fork()
        if pid == 0:  # the trial's trainer, or the work of a job (delegate)
            code = 1
            try:
                os.close(ready_read)
                for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD):
                    signal.signal(signum, signal.SIG_DFL)  # the worker's own handlers are not the child's
                os.setsid()  # leads its own group, as a trainer the runner starts does
                from snaketune.supervise import die_with_parent

                die_with_parent(signal.SIGKILL)
                os.write(ready_write, b"1")
                os.close(ready_write)
                if not reports:
                    conn.close()  # the worker's end: the runner sees it close when the worker dies
                code = _child(self, argv, env, cwd, fds)
            except BaseException:
                with contextlib.suppress(Exception):
                    traceback.print_exc()
            finally:
                with contextlib.suppress(Exception):
                    sys.stdout.flush()
                    sys.stderr.flush()
                if reports:  # its exit status, which reaches the job even if the worker has died meanwhile
                    with contextlib.suppress(Exception):
                        _send(conn, {"returncode": code})
                os._exit(code)
        os.close(ready_write)
        try:
            os.read(ready_read, 1)  # the child leads its group now: the runner may signal it
        finally:
            os.close(ready_read)
        return pid

    def reap(self, pid: int) -> None:
        conn, pidfd = self.children.pop(pid)
        self.sel.unregister(pidfd)
        os.close(pidfd)
        _, status, usage = os.wait4(pid, 0)
        report = {
            "returncode": os.waitstatus_to_exitcode(status),
            "usage": {"cpu_seconds": usage.ru_utime + usage.ru_stime, "max_rss_mb": usage.ru_maxrss / 1024},
        }
        with contextlib.suppress(OSError, KeyError, ValueError):
            self.sel.unregister(conn)
            _send(conn, report)
        conn.close()
        self.last_busy = time.monotonic()

    def runner_gone(self, pid: int) -> None:
        conn, _ = self.children[pid]
        with contextlib.suppress(OSError):
            conn.setblocking(False)
            if conn.recv(1):  # a runner sends nothing after its request: only end-of-file is news
                return
        self.sel.unregister(conn)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)  # its runner died: so does the trainer, all of its group
        self.log(f"the runner of trainer {pid} went away: its process group is killed")

    def shutdown(self) -> None:
        for pid in list(self.children):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
        if self.listener is not None and not self.stopping:
            self.path.unlink(missing_ok=True)
        if self.run_over:  # no job of its run will start a worker again: leave nothing behind
            self.path.with_suffix(".lock").unlink(missing_ok=True)
            if not self.trouble:
                self.path.with_suffix(".log").unlink(missing_ok=True)


def _child(server: _Server, argv: list[str], env: dict[str, str], cwd: str, fds: list[int]) -> int:
    """In the forked child: become ``python -m <argv>`` for the trial and return its exit status."""
    import runpy

    server.sel.close()
    os.close(server.lock)  # the start lock is the worker's, not its trainers'
    if server.listener is not None:
        server.listener.close()
    for conn, pidfd in server.children.values():
        conn.close()
        os.close(pidfd)
    stdout, stderr, *held = fds  # held: GPU lease locks, kept open (so held) until this process ends
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(stdout, 1)
    os.dup2(stderr, 2)
    for fd in (devnull, stdout, stderr):
        os.close(fd)
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    os.environ[ENV_SOCKET] = str(server.path)  # the child's own requests go to this worker (connect)
    if sys.path and sys.path[0] == server.cwd:  # `python -m` looks for modules in its folder first
        sys.path[0] = os.getcwd()
    sys.argv = [argv[0], *argv[1:]]
    # As `python -m` would: the module runs as __main__, not as the copy the worker imported
    # (which stays imported under its name only if the trainer imports it itself).
    sys.modules.pop(argv[0], None)
    try:
        runpy.run_module(argv[0], run_name="__main__", alter_sys=True)
    except SystemExit as e:
        if e.code is None:
            return 0
        if isinstance(e.code, int):
            return e.code
        print(e.code, file=sys.stderr)
        return 1
    return 0


def serve(path: Path, owner: str) -> int:
    """The worker process: take the start lock, import the trainers, listen until the run ends."""
    import fcntl

    lock = os.open(path.with_suffix(".lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return 0  # another worker serves this owner, or is starting
    try:
        idle = float(os.environ.get(ENV_IDLE) or IDLE_SECONDS)
    except ValueError:
        idle = IDLE_SECONDS
    server = _Server(path, owner, lock, idle)
    import importlib

    for name in WARM_MODULES:  # imports only: no thread, no CUDA before the forks
        importlib.import_module(name)
    import gc

    gc.freeze()  # the warm imports stay where they are: no copy-on-write from the collector in children

    def on_stop(signum, frame):
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for Snakemake, which stops its jobs
    server.listen()
    server.log(f"serving {owner} at {path}")
    try:
        server.serve()
    finally:
        server.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)  # at once: torch's slow teardown would keep a run's end waiting


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) == 3 and argv[0] == "serve":
        return serve(Path(argv[1]), argv[2])
    print("usage: python -m snaketune.worker serve <socket> <owner>", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
