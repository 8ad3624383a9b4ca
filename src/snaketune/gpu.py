"""Lease one GPU (slot) for a trial, so concurrent trials on one machine never share a slot.

Snakemake's ``--resources gpu=N`` limits how many GPU jobs run at once but never says *which* GPU
a job should use (snakemake issue #281). The runner therefore leases a device itself, with
:func:`lease_gpu`, and puts the leased id into the trainer's ``CUDA_VISIBLE_DEVICES``.

How a lease works
    * Each GPU has ``slots_per_gpu`` slots. Slot ``k`` of device ``d`` is the file
      ``<lock_dir>/gpu<d>-slot<k>.lock``; holding the slot means holding an exclusive ``flock`` on it.
      The kernel drops the lock when the holder's file is closed, which includes the holder dying by
      any signal, SIGKILL too: a stale lease cannot outlive its process.
    * Choosing is serialised by ``<lock_dir>/choose.lock`` (held for about a millisecond), so the
      picture of which slots are busy is exact: the lease takes a free slot on the least-loaded device
      (fewest held slots), ties broken by the order of the device list, then the lowest slot. Trials are
      spread over the GPUs before they are stacked on one.
    * The holder writes its PID, trial, host and start time into its lock file (``cat`` shows who holds
      it) and empties the file on release; a free slot whose file is not empty lost its holder to a kill.
      Lock files are never deleted (deleting a lock file races with processes that have it open).
    * When every slot is busy the lease polls (every 0.2 s plus jitter) until one frees, or fails with
      :class:`GpuLeaseError` after the wait timeout.

Which devices
    1. ``CUDA_VISIBLE_DEVICES`` is set (by a scheduler such as SLURM, or by hand): the lease stays within
       that list. Empty, or a negative index such as ``-1``, means no GPUs (as for CUDA, entries after an
       invalid one are ignored). With exactly one device and one slot per GPU the lease simply uses that
       device, without a lock file.
    2. Otherwise ``SNAKETUNE_GPU_DEVICES``, else the GPUs ``nvidia-smi --query-gpu=index`` lists (torch is
       never imported), else none: :func:`lease_gpu` yields ``None`` and the environment is left alone.

Settings (environment variables)
    ``SNAKETUNE_GPU_DEVICES``
        Comma list of device ids as ``CUDA_VISIBLE_DEVICES`` spells them (``0,1`` or ``GPU-<uuid>,...``);
        ``none`` means no GPUs, empty means unset. With ``CUDA_VISIBLE_DEVICES`` set it must be a subset of it.
    ``SNAKETUNE_SLOTS_PER_GPU``
        How many trials may share one GPU: an integer >= 1 (default 1).
    ``SNAKETUNE_GPU_LOCK_DIR``
        Folder of the lock files. Default: ``.snakemake/snaketune-gpu-locks/<host>`` under the working
        directory (``<host>-job<id>`` inside a SLURM/PBS/LSF job, whose device ids are its own), so runs
        sharing a file system across hosts do not block each other. Point it at a host-local folder such
        as ``/tmp/snaketune-gpu-locks`` to coordinate several workflows on one machine.
    ``SNAKETUNE_GPU_WAIT_TIMEOUT``
        Seconds to wait for a free slot before failing; ``0`` or unset waits forever.

Debugging: ``python -m snaketune.gpu status`` lists the slots and who holds them.
This module imports neither torch nor Snakemake.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import fcntl
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ENV_VISIBLE = "CUDA_VISIBLE_DEVICES"
ENV_DEVICES = "SNAKETUNE_GPU_DEVICES"
ENV_SLOTS = "SNAKETUNE_SLOTS_PER_GPU"
ENV_LOCK_DIR = "SNAKETUNE_GPU_LOCK_DIR"
ENV_TIMEOUT = "SNAKETUNE_GPU_WAIT_TIMEOUT"
DEFAULT_LOCK_ROOT = Path(".snakemake") / "snaketune-gpu-locks"
JOB_ID_VARS = ("SLURM_JOB_ID", "PBS_JOBID", "LSB_JOBID")
CHOOSER = "choose.lock"
POLL_SECONDS = 0.2

_DEVICE_ID = re.compile(r"\d+|(GPU|MIG)-\S+")
_LOCK_NAME = re.compile(r"gpu(?P<device>.+)-slot(?P<slot>\d+)\.lock")
_VALID_IDS = "a GPU index such as 0, or a UUID such as GPU-8f6c... or MIG-..."


class GpuLeaseError(RuntimeError):
    """A GPU setting is invalid, or no GPU slot came free in time; the message says what would help."""


@dataclass(frozen=True)
class DeviceList:
    """The devices a lease may choose from, and where the list came from."""

    devices: tuple[str, ...]
    source: str
    scheduler: bool = False  # True when the list is exactly the inherited CUDA_VISIBLE_DEVICES


_held_fds: set[int] = set()  # the lock files of the leases this process holds


def held_lock_fds() -> list[int]:
    """The open lock files of this process's leases: a trainer that another process starts for
    this one (a warm worker's child) holds copies, so that a slot stays taken while it runs."""
    return sorted(_held_fds)


@dataclass
class GpuLease:
    """A held lease: the device, and the slot and lock file (both ``None`` when no lock was needed)."""

    device: str
    slot: int | None = None
    path: Path | None = None
    _fd: int | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self._fd is not None:
            _held_fds.add(self._fd)

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        """Empty the lock file and drop the lock; calling it again does nothing."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        _held_fds.discard(fd)
        try:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
        except OSError:
            pass  # closing below drops the lock anyway
        finally:
            os.close(fd)


@dataclass(frozen=True)
class SlotState:
    """One slot as ``status`` sees it."""

    device: str
    slot: int
    path: Path
    held: bool
    holder: str  # the lock file's text on one line ("" when empty or missing)


# -- settings ---------------------------------------------------------------------------------


def parse_device_list(text: str, variable: str, *, strict: bool = True) -> list[str]:
    """Split a ``CUDA_VISIBLE_DEVICES``-style comma list into device ids.

    A negative index (``-1``) ends the list, as it does for CUDA. ``strict`` rejects entries that are
    not device ids; otherwise (for an inherited ``CUDA_VISIBLE_DEVICES``) the list ends at the first
    such entry, which is what CUDA itself does.
    """
    text = text.strip()
    if not text:
        return []
    devices: list[str] = []
    for position, raw in enumerate(text.split(","), start=1):
        item = raw.strip()
        if not item:
            raise GpuLeaseError(
                f"{variable}={text!r} has an empty entry at position {position}; expected a comma list such as '0,1'"
            )
        if re.fullmatch(r"-\d+", item):
            break
        if not _DEVICE_ID.fullmatch(item):
            if strict:
                raise GpuLeaseError(f"{variable}={text!r}: entry {item!r} is not a device id; expected {_VALID_IDS}")
            break
        if item in devices:
            raise GpuLeaseError(f"{variable}={text!r} names device {item} twice; list each device once")
        devices.append(item)
    return devices


def query_nvidia_smi(timeout: float = 10.0) -> list[str] | None:
    """The GPU indices ``nvidia-smi`` lists; ``None`` when it is not installed, ``[]`` when it fails."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    cmd = [exe, "--query-gpu=index", "--format=csv,noheader"]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as e:
        _log(f"[snaketune] nvidia-smi could not be run ({e}); using no GPU")
        return []
    if out.returncode != 0:
        detail = (out.stderr or out.stdout).strip().splitlines()
        _log(f"[snaketune] nvidia-smi failed (exit {out.returncode}: {detail[-1] if detail else 'no output'}); using no GPU")
        return []
    return [ln.strip() for ln in out.stdout.splitlines() if ln.strip()]


def resolve_devices(env: Mapping[str, str], nvidia_smi: Callable[[], list[str] | None] = query_nvidia_smi) -> DeviceList:
    """The devices a lease may use, from an environment mapping (pure but for ``nvidia_smi``)."""
    visible = env.get(ENV_VISIBLE)
    explicit = env.get(ENV_DEVICES, "").strip()
    wanted: list[str] | None = None
    if explicit:
        wanted = [] if explicit.lower() == "none" else parse_device_list(explicit, ENV_DEVICES)
    if visible is not None:
        allowed = parse_device_list(visible, ENV_VISIBLE, strict=False)
        if wanted is None:
            return DeviceList(tuple(allowed), ENV_VISIBLE, scheduler=True)
        outside = [d for d in wanted if d not in allowed]
        if outside:
            raise GpuLeaseError(
                f"{ENV_DEVICES}={explicit!r} names {', '.join(outside)}, outside {ENV_VISIBLE}={visible!r}; "
                f"list only devices from {ENV_VISIBLE}, or unset {ENV_DEVICES}"
            )
        return DeviceList(tuple(wanted), f"{ENV_DEVICES} within {ENV_VISIBLE}")
    if wanted is not None:
        return DeviceList(tuple(wanted), ENV_DEVICES)
    found = nvidia_smi()
    if found is None:
        return DeviceList((), "none (no CUDA_VISIBLE_DEVICES, no SNAKETUNE_GPU_DEVICES, no nvidia-smi)")
    return DeviceList(tuple(parse_device_list(",".join(found), "nvidia-smi output")), "nvidia-smi")


def parse_slots(text: str | None) -> int:
    """``SNAKETUNE_SLOTS_PER_GPU``: an integer >= 1, default 1."""
    if text is None or not text.strip():
        return 1
    try:
        slots = int(text.strip())
    except ValueError:
        slots = 0
    if slots < 1:
        raise GpuLeaseError(f"{ENV_SLOTS}={text!r} is not valid; expected a whole number >= 1 (trials sharing one GPU)")
    return slots


def parse_timeout(text: str | None) -> float:
    """``SNAKETUNE_GPU_WAIT_TIMEOUT``: seconds >= 0; 0 (the default) waits forever."""
    if text is None or not text.strip():
        return 0.0
    try:
        seconds = float(text.strip())
    except ValueError:
        seconds = -1.0
    if not seconds >= 0 or seconds == float("inf"):
        raise GpuLeaseError(f"{ENV_TIMEOUT}={text!r} is not valid; expected seconds >= 0 (0 waits forever)")
    return seconds


def resolve_lock_dir(env: Mapping[str, str]) -> Path:
    """``SNAKETUNE_GPU_LOCK_DIR``, else ``.snakemake/snaketune-gpu-locks/<host>[-job<id>]`` here."""
    explicit = env.get(ENV_LOCK_DIR, "").strip()
    if explicit:
        return Path(os.path.abspath(os.path.expanduser(explicit)))
    scope = socket.gethostname().split(".")[0] or "host"
    job = next((env[v] for v in JOB_ID_VARS if env.get(v)), None)
    if job:
        scope += f"-job{job}"
    return Path.cwd() / DEFAULT_LOCK_ROOT / _safe(scope)


def slot_path(lock_dir: Path, device: str, slot: int) -> Path:
    """``<lock_dir>/gpu<device>-slot<slot>.lock`` (characters unsafe in file names become ``_``)."""
    return Path(lock_dir) / f"gpu{_safe(device)}-slot{slot}.lock"


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", text)


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- locking ----------------------------------------------------------------------------------


def _open_lock(path: Path, create: bool = True) -> int | None:
    flags = os.O_RDWR | os.O_CLOEXEC | (os.O_CREAT if create else 0)
    try:
        return os.open(path, flags, 0o666)
    except FileNotFoundError:
        if create:
            raise
        return None
    except OSError as e:
        raise GpuLeaseError(
            f"cannot open GPU lock file {path}: {e.strerror}; set {ENV_LOCK_DIR} to a writable local folder"
        ) from e


def _try_lock(fd: int, path: Path) -> bool:
    """Take the exclusive lock on ``fd`` without waiting; False when another process holds it."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError as e:  # e.g. ENOLCK: a file system without flock
        raise GpuLeaseError(f"cannot lock {path}: {e.strerror}; set {ENV_LOCK_DIR} to a folder on a local file system") from e
    return True


@contextlib.contextmanager
def _chooser(lock_dir: Path) -> Iterator[None]:
    """Serialise choosing (and ``status``): no one sees the slots another chooser is probing."""
    path = lock_dir / CHOOSER
    fd = _open_lock(path)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _choose(lock_dir: Path, devices: Sequence[str], slots: int) -> GpuLease | None:
    """Lock a free slot on the least-loaded device; ``None`` when every slot is held."""
    load = dict.fromkeys(devices, 0)
    free: list[tuple[str, int, int]] = []  # (device, slot, locked fd)
    chosen: tuple[str, int, int] | None = None
    with _chooser(lock_dir):
        try:
            for device in devices:
                for slot in range(slots):
                    path = slot_path(lock_dir, device, slot)
                    fd = _open_lock(path)
                    try:
                        locked = _try_lock(fd, path)
                    except BaseException:
                        os.close(fd)
                        raise
                    if locked:
                        free.append((device, slot, fd))
                    else:
                        os.close(fd)
                        load[device] += 1
            if free:
                order = {d: i for i, d in enumerate(devices)}
                chosen = min(free, key=lambda f: (load[f[0]], order[f[0]], f[1]))
        finally:
            for entry in free:
                if entry is not chosen:
                    os.close(entry[2])
    if chosen is None:
        return None
    device, slot, fd = chosen
    return GpuLease(device, slot, slot_path(lock_dir, device, slot), fd)


def _write_holder(lease: GpuLease, trial: str) -> None:
    since = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    text = f"pid={os.getpid()}\ntrial={trial}\nhost={socket.gethostname()}\ndevice={lease.device}\nslot={lease.slot}\nsince={since}\n"
    if lease._fd is None:
        raise GpuLeaseError(f"the lease on GPU {lease.device} is not held")
    os.ftruncate(lease._fd, 0)
    os.pwrite(lease._fd, text.encode(), 0)


def _holders(lock_dir: Path, devices: Sequence[str], slots: int) -> str:
    lines = [f"{s.device}/slot{s.slot}: {s.holder or '?'}" for s in slot_status(lock_dir, devices, slots) if s.held]
    return "; ".join(lines[:8]) + (f"; and {len(lines) - 8} more" if len(lines) > 8 else "")


def acquire_gpu(
    trial: str = "",
    *,
    env: Mapping[str, str] | None = None,
    devices: Sequence[str] | None = None,
    slots_per_gpu: int | None = None,
    lock_dir: str | os.PathLike | None = None,
    timeout: float | None = None,
    poll: float = POLL_SECONDS,
    log: Callable[[str], None] = _log,
) -> GpuLease | None:
    """Lease a GPU slot and return it (call ``release()``), or ``None`` when there are no GPUs.

    Settings not given come from ``env`` (default ``os.environ``): see the module docstring.
    ``devices`` replaces the device list (and skips ``CUDA_VISIBLE_DEVICES``). ``timeout`` is the
    longest wait for a free slot in seconds (0 waits forever); on expiry :class:`GpuLeaseError` is
    raised naming the holders.
    """
    env = os.environ if env is None else env
    if devices is None:
        found = resolve_devices(env)
        device_list, source, scheduler = list(found.devices), found.source, found.scheduler
    else:
        device_list = parse_device_list(",".join(devices), "devices") if devices else []
        source, scheduler = "the devices argument", False
    slots = parse_slots(env.get(ENV_SLOTS)) if slots_per_gpu is None else slots_per_gpu
    if isinstance(slots, bool) or not isinstance(slots, int) or slots < 1:
        raise GpuLeaseError(f"slots_per_gpu={slots!r} is not valid; expected a whole number >= 1")
    if not device_list:
        return None
    if scheduler and len(device_list) == 1 and slots == 1:
        return GpuLease(device_list[0])  # the scheduler gave this job its own GPU: nothing to share
    wait = parse_timeout(env.get(ENV_TIMEOUT)) if timeout is None else timeout
    if not wait >= 0:
        raise GpuLeaseError(f"timeout={timeout!r} is not valid; expected seconds >= 0 (0 waits forever)")
    directory = Path(lock_dir) if lock_dir is not None else resolve_lock_dir(env)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise GpuLeaseError(
            f"cannot create the GPU lock folder {directory}: {e.strerror}; set {ENV_LOCK_DIR} to a writable folder"
        ) from e

    name = trial or f"pid {os.getpid()}"
    start = time.monotonic()
    deadline = start + wait if wait > 0 else None
    waiting = False
    while True:
        lease = _choose(directory, device_list, slots)
        if lease is not None:
            try:
                _write_holder(lease, trial)
            except BaseException:
                lease.release()
                raise
            if waiting:
                log(f"[snaketune] trial {name} got GPU {lease.device} (slot {lease.slot}) after {time.monotonic() - start:.1f} s")
            return lease
        now = time.monotonic()
        total = len(device_list) * slots
        if deadline is not None and now >= deadline:
            raise GpuLeaseError(
                f"trial {name}: no GPU slot came free within {wait:g} s; all {total} slots "
                f"({len(device_list)} devices from {source} x {slots} slots) in {directory} are held "
                f"({_holders(directory, device_list, slots)}). Raise {ENV_TIMEOUT} (0 waits forever), "
                f"allow more trials per GPU with {ENV_SLOTS}, or look for stuck holders with `python -m snaketune.gpu status`"
            )
        if not waiting:
            log(f"[snaketune] trial {name} waits for a GPU: all {total} slots in {directory} are busy")
            waiting = True
        pause = poll + random.uniform(0.0, poll / 4)
        time.sleep(pause if deadline is None else max(0.0, min(pause, deadline - now)))


@contextlib.contextmanager
def lease_gpu(
    trial: str = "",
    *,
    env: Mapping[str, str] | None = None,
    devices: Sequence[str] | None = None,
    slots_per_gpu: int | None = None,
    lock_dir: str | os.PathLike | None = None,
    timeout: float | None = None,
    poll: float = POLL_SECONDS,
    log: Callable[[str], None] = _log,
) -> Iterator[str | None]:
    """Hold a GPU slot for the ``with`` block; yields the device id for ``CUDA_VISIBLE_DEVICES``, or ``None``.

    ``None`` means there are no GPUs (leave the environment alone). The slot is released when the block
    exits by any path, and by the kernel if the process dies. Arguments as for :func:`acquire_gpu`.
    """
    lease = acquire_gpu(
        trial, env=env, devices=devices, slots_per_gpu=slots_per_gpu, lock_dir=lock_dir, timeout=timeout, poll=poll, log=log
    )
    try:
        yield None if lease is None else lease.device
    finally:
        if lease is not None:
            lease.release()


# -- status -----------------------------------------------------------------------------------


def slot_status(lock_dir: str | os.PathLike, devices: Sequence[str] = (), slots: int = 1) -> list[SlotState]:
    """Every slot of ``devices`` and every other lock file in ``lock_dir``: held or free, and by whom."""
    lock_dir = Path(lock_dir)
    wanted = [(d, k, slot_path(lock_dir, d, k)) for d in devices for k in range(slots)]
    known = {p for _, _, p in wanted}
    if lock_dir.is_dir():
        for path in sorted(lock_dir.glob("gpu*-slot*.lock")):
            m = _LOCK_NAME.fullmatch(path.name)
            if m and path not in known:
                wanted.append((m["device"], int(m["slot"]), path))
    states: list[SlotState] = []
    if not lock_dir.is_dir():
        return [SlotState(d, k, p, False, "") for d, k, p in wanted]
    with _chooser(lock_dir):
        for device, slot, path in wanted:
            fd = _open_lock(path, create=False)
            if fd is None:
                states.append(SlotState(device, slot, path, False, ""))
                continue
            try:
                held = not _try_lock(fd, path)
                text = os.pread(fd, 4096, 0).decode("utf-8", "replace")
            finally:
                os.close(fd)
            states.append(SlotState(device, slot, path, held, " ".join(text.split())))
    return states


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m snaketune.gpu", description="Inspect snaketune's GPU leases.")
    sub = ap.add_subparsers(dest="command", required=True)
    st = sub.add_parser("status", help="list the GPU slots and who holds them")
    st.add_argument("--lock-dir", help=f"lock folder (default: ${ENV_LOCK_DIR} or .snakemake/snaketune-gpu-locks/<host>)")
    args = ap.parse_args(argv)

    env = os.environ
    try:
        found = resolve_devices(env)
        slots = parse_slots(env.get(ENV_SLOTS))
        lock_dir = Path(args.lock_dir) if args.lock_dir else resolve_lock_dir(env)
    except GpuLeaseError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    devices = ", ".join(found.devices) or "none"
    print(f"devices: {devices} (from {found.source}); {slots} slot(s) per GPU; locks in {lock_dir}")
    if found.scheduler and len(found.devices) == 1 and slots == 1:
        print("a lease uses this one device without a lock file")
    states = slot_status(lock_dir, found.devices, slots)
    if not states:
        print("no lock files")
    for s in states:
        if s.held:
            state = f"held   {s.holder}"
        elif s.holder:
            state = f"free   (holder died without releasing: {s.holder})"
        else:
            state = "free"
        print(f"gpu {s.device:>6} slot {s.slot}  {state}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
