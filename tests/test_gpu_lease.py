"""GPU leases: which devices, least-loaded choice, mutual exclusion under stress, release on crash."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from snaketune.gpu import (
    ENV_DEVICES,
    ENV_LOCK_DIR,
    ENV_SLOTS,
    ENV_TIMEOUT,
    ENV_VISIBLE,
    GpuLeaseError,
    acquire_gpu,
    lease_gpu,
    parse_device_list,
    parse_slots,
    parse_timeout,
    query_nvidia_smi,
    resolve_devices,
    slot_path,
    slot_status,
)


def no_smi():
    raise AssertionError("nvidia-smi must not be queried here")


def child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SNAKETUNE_") and k != ENV_VISIBLE}
    env.update(extra)
    return env


def quiet(_message: str) -> None:
    pass


# -- device list ------------------------------------------------------------------------------


def test_scheduler_visible_devices_are_respected_and_nvidia_smi_not_asked():
    found = resolve_devices({ENV_VISIBLE: "2,3"}, nvidia_smi=no_smi)
    assert found.devices == ("2", "3")
    assert found.scheduler


@pytest.mark.parametrize("value", ["", "  ", "-1", "-1,0"])
def test_empty_or_negative_visible_devices_mean_no_gpu(value):
    assert resolve_devices({ENV_VISIBLE: value, ENV_DEVICES: ""}, nvidia_smi=no_smi).devices == ()


def test_visible_devices_stop_at_an_invalid_entry_like_cuda():
    assert resolve_devices({ENV_VISIBLE: "1,bogus,2"}, nvidia_smi=no_smi).devices == ("1",)


def test_uuids_are_device_ids():
    found = resolve_devices({ENV_VISIBLE: " GPU-8f6c1a2b-0000 , MIG-GPU-8f6c/1/0"}, nvidia_smi=no_smi)
    assert found.devices == ("GPU-8f6c1a2b-0000", "MIG-GPU-8f6c/1/0")


def test_explicit_list_when_no_scheduler():
    found = resolve_devices({ENV_DEVICES: "0, 2"}, nvidia_smi=no_smi)
    assert found.devices == ("0", "2")
    assert not found.scheduler
    assert resolve_devices({ENV_DEVICES: "none"}, nvidia_smi=no_smi).devices == ()


def test_explicit_list_must_stay_within_visible_devices():
    found = resolve_devices({ENV_VISIBLE: "1,2,3", ENV_DEVICES: "3,1"}, nvidia_smi=no_smi)
    assert found.devices == ("3", "1")
    assert not found.scheduler  # several trials may share the allocation's devices: they need locks
    with pytest.raises(GpuLeaseError, match=r"names 0, outside CUDA_VISIBLE_DEVICES='1,2,3'"):
        resolve_devices({ENV_VISIBLE: "1,2,3", ENV_DEVICES: "0,1"}, nvidia_smi=no_smi)


def test_nvidia_smi_is_the_fallback():
    assert resolve_devices({}, nvidia_smi=lambda: ["0", "1", "2", "3"]).devices == ("0", "1", "2", "3")
    assert resolve_devices({ENV_DEVICES: ""}, nvidia_smi=lambda: ["0"]).source == "nvidia-smi"
    assert resolve_devices({}, nvidia_smi=lambda: None).devices == ()
    assert resolve_devices({}, nvidia_smi=lambda: []).devices == ()


@pytest.mark.parametrize(
    ("text", "message"),
    [("0,,1", "empty entry at position 2"), ("0,1,0", "names device 0 twice"), ("gpu0", "not a device id")],
)
def test_bad_explicit_lists_say_what_is_wrong(text, message):
    with pytest.raises(GpuLeaseError, match=message):
        parse_device_list(text, ENV_DEVICES)


def test_slots_and_timeout_settings():
    assert parse_slots(None) == 1
    assert parse_slots(" 3 ") == 3
    for bad in ("0", "-2", "two", "1.5"):
        with pytest.raises(GpuLeaseError, match=r"SNAKETUNE_SLOTS_PER_GPU='.*' is not valid; expected a whole number >= 1"):
            parse_slots(bad)
    assert parse_timeout(None) == 0.0
    assert parse_timeout("2.5") == 2.5
    for bad in ("-1", "soon", "nan"):
        with pytest.raises(GpuLeaseError, match="SNAKETUNE_GPU_WAIT_TIMEOUT"):
            parse_timeout(bad)


def fake_smi(tmp_path: Path, body: str) -> Path:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    exe = bindir / "nvidia-smi"
    exe.write_text("#!/bin/sh\n" + body)
    exe.chmod(0o755)
    return bindir


def test_query_nvidia_smi_uses_the_program(tmp_path, monkeypatch):
    argsfile = tmp_path / "args"
    monkeypatch.setenv("PATH", str(fake_smi(tmp_path, f'echo "$@" > {argsfile}\nprintf "0\\n1\\n"\n')))
    assert query_nvidia_smi() == ["0", "1"]
    assert argsfile.read_text().split() == ["--query-gpu=index", "--format=csv,noheader"]


def test_query_nvidia_smi_failure_means_no_gpu(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(fake_smi(tmp_path, 'echo "NVIDIA-SMI has failed: no driver"\nexit 9\n')))
    assert query_nvidia_smi() == []
    assert "NVIDIA-SMI has failed" in capsys.readouterr().err
    monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))
    assert query_nvidia_smi() is None


# -- leases in one process ---------------------------------------------------------------------


def test_no_gpu_means_no_lease(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))  # no nvidia-smi
    for env in ({}, {ENV_VISIBLE: ""}, {ENV_DEVICES: "none"}):
        with lease_gpu("t", env=env, lock_dir=tmp_path / "locks") as device:
            assert device is None
    assert not (tmp_path / "locks").exists()


def test_single_scheduler_device_is_used_without_a_lock(tmp_path):
    with lease_gpu("t", env={ENV_VISIBLE: "5"}, lock_dir=tmp_path / "locks") as device:
        assert device == "5"
    assert not (tmp_path / "locks").exists()
    with lease_gpu("t", env={ENV_VISIBLE: "5", ENV_SLOTS: "2"}, lock_dir=tmp_path / "locks") as device:
        assert device == "5"
        assert "trial=t\n" in slot_path(tmp_path / "locks", "5", 0).read_text()


def test_uuid_lease_and_lock_file_names(tmp_path):
    env = {ENV_VISIBLE: "GPU-aaaa-1111,MIG-GPU-bbbb/1/0", ENV_LOCK_DIR: str(tmp_path)}
    with lease_gpu("u1", env=env) as first, lease_gpu("u2", env=env) as second:
        assert (first, second) == ("GPU-aaaa-1111", "MIG-GPU-bbbb/1/0")
        assert sorted(p.name for p in tmp_path.glob("gpu*")) == ["gpuGPU-aaaa-1111-slot0.lock", "gpuMIG-GPU-bbbb_1_0-slot0.lock"]


def test_least_loaded_device_first_then_stacking(tmp_path):
    kw = dict(env={}, devices=["0", "1", "2"], slots_per_gpu=2, lock_dir=tmp_path, timeout=0.5, poll=0.01, log=quiet)
    leases = [acquire_gpu(f"t{i}", **kw) for i in range(6)]
    try:
        assert [(ls.device, ls.slot) for ls in leases] == [("0", 0), ("1", 0), ("2", 0), ("0", 1), ("1", 1), ("2", 1)]
        leases[1].release()  # device 1 now has a free slot 0
        again = acquire_gpu("t6", **kw)
        assert (again.device, again.slot) == ("1", 0)
        leases[1] = again
        leases[2].release()
        leases[5].release()  # device 2 is idle; devices 0 and 1 hold two each
        leases[3].release()  # device 0 holds one: device 2 (none) still wins
        nxt = acquire_gpu("t7", **kw)
        assert nxt.device == "2"
        leases.append(nxt)
    finally:
        for ls in leases:
            ls.release()


def test_least_loaded_beats_lowest_free_slot(tmp_path):
    kw = dict(env={}, devices=["0", "1"], slots_per_gpu=3, lock_dir=tmp_path, timeout=0.5, poll=0.01, log=quiet)
    leases = {}
    for i in range(6):
        ls = acquire_gpu(f"t{i}", **kw)
        leases[ls.device, ls.slot] = ls
    try:
        assert sorted(leases) == [(d, k) for d in "01" for k in range(3)]
        for key in (("0", 0), ("1", 1), ("1", 2)):
            leases.pop(key).release()
        # device 0 holds 2 (slot 0 free), device 1 holds 1 (slots 1, 2 free): the lease goes to device 1
        nxt = acquire_gpu("t6", **kw)
        leases[nxt.device, nxt.slot] = nxt
        assert (nxt.device, nxt.slot) == ("1", 1)
    finally:
        for ls in leases.values():
            ls.release()


def test_lock_file_names_the_holder_and_is_emptied_on_release(tmp_path):
    with lease_gpu("lr0.01-fold2", env={}, devices=["3"], lock_dir=tmp_path, log=quiet) as device:
        text = slot_path(tmp_path, device, 0).read_text()
        assert f"pid={os.getpid()}\n" in text
        assert "trial=lr0.01-fold2\n" in text
    assert slot_path(tmp_path, "3", 0).read_text() == ""


def test_released_on_exception(tmp_path):
    kw = dict(env={}, devices=["0"], slots_per_gpu=1, lock_dir=tmp_path, poll=0.01, log=quiet)
    with pytest.raises(ValueError, match="trainer exploded"):
        with lease_gpu("boom", **kw) as device:
            assert device == "0"
            raise ValueError("trainer exploded")
    messages: list[str] = []
    with lease_gpu("next", timeout=0.5, **{**kw, "log": messages.append}) as device:
        assert device == "0"
    assert messages == []  # the slot was free at the first try


def test_timeout_names_the_holders(tmp_path):
    kw = dict(env={}, devices=["0", "1"], slots_per_gpu=1, lock_dir=tmp_path, poll=0.02, log=quiet)
    with lease_gpu("holder-a", **kw), lease_gpu("holder-b", **kw):
        t0 = time.monotonic()
        with pytest.raises(GpuLeaseError) as info:
            with lease_gpu("late", timeout=0.3, **kw):
                pass
        waited = time.monotonic() - t0
    assert 0.3 <= waited < 2.0
    message = str(info.value)
    assert "no GPU slot came free within 0.3 s" in message
    assert "trial=holder-a" in message and "trial=holder-b" in message
    assert ENV_TIMEOUT in message


def test_waits_until_a_slot_frees(tmp_path):
    kw = dict(env={}, devices=["7"], slots_per_gpu=1, lock_dir=tmp_path, poll=0.02)
    holder = acquire_gpu("first", log=quiet, **kw)
    timer = threading.Timer(0.3, holder.release)
    messages: list[str] = []
    t0 = time.monotonic()
    timer.start()
    try:
        with lease_gpu("second", timeout=5, log=messages.append, **kw) as device:
            waited = time.monotonic() - t0
            assert device == "7"
            assert "trial=second\n" in slot_path(tmp_path, "7", 0).read_text()
    finally:
        timer.cancel()
        holder.release()
    assert 0.3 <= waited < 3.0
    assert "waits for a GPU" in messages[0] and "got GPU 7" in messages[-1]


def test_settings_from_the_environment(tmp_path):
    env = {ENV_DEVICES: "4,6", ENV_SLOTS: "2", ENV_LOCK_DIR: str(tmp_path / "l"), ENV_TIMEOUT: "0.2"}
    with lease_gpu("a", env=env) as a, lease_gpu("b", env=env) as b, lease_gpu("c", env=env) as c, lease_gpu("d", env=env) as d:
        assert (a, b, c, d) == ("4", "6", "4", "6")
        with pytest.raises(GpuLeaseError, match="within 0.2 s"):
            with lease_gpu("e", env=env, log=quiet):
                pass
    assert len(list((tmp_path / "l").glob("gpu*-slot*.lock"))) == 4


# -- many processes ----------------------------------------------------------------------------

WORKER = textwrap.dedent(
    """
    import json, os, sys, time
    from pathlib import Path
    from snaketune.gpu import lease_gpu, slot_path

    lock_dir, devices, slots, rounds, hold, out, wid, marks = sys.argv[1:]
    devices, slots, rounds, hold, marks = devices.split(","), int(slots), int(rounds), float(hold), Path(marks)
    (marks / f"ready-{wid}").touch()
    while not (marks / "go").exists():
        time.sleep(0.002)
    records = []
    for r in range(rounds):
        trial = f"w{wid}-r{r}"
        with lease_gpu(trial, env={}, devices=devices, slots_per_gpu=slots, lock_dir=lock_dir, timeout=30, poll=0.01,
                       log=lambda m: None) as dev:
            t_start = time.monotonic()
            mine = [k for k in range(slots) if f"trial={trial}\\n" in slot_path(Path(lock_dir), dev, k).read_text()]
            clash = False
            # A marker per slot, created exclusively: a second holder of the same slot would find it there.
            marker = marks / f"slot-{dev}-{mine[0] if mine else 'x'}"
            try:
                os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            except FileExistsError:
                clash = True
            # A marker per holder of this device: never more than `slots` while any of them holds.
            mark = marks / f"dev-{dev}-{wid}"
            mark.touch()
            on_device = sum(1 for p in os.listdir(marks) if p.startswith(f"dev-{dev}-"))
            time.sleep(hold)
            mark.unlink()
            if not clash:
                marker.unlink()
            t_end = time.monotonic()
        records.append(dict(device=dev, slots=mine, t_start=t_start, t_end=t_end, clash=clash, on_device=on_device))
    Path(out).write_text(json.dumps(records))
    """
)


def test_stress_no_slot_is_ever_shared(tmp_path):
    n_workers, devices, slots, rounds, hold = 24, ["0", "1", "2"], 2, 5, 0.01
    lock_dir, marks = tmp_path / "locks", tmp_path / "marks"
    marks.mkdir()
    env = child_env()
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(lock_dir), ",".join(devices), str(slots), str(rounds), str(hold)]
            + [str(tmp_path / f"out{i}.json"), str(i), str(marks)],
            env=env,
        )
        for i in range(n_workers)
    ]
    try:
        deadline = time.monotonic() + 30
        while len(list(marks.glob("ready-*"))) < n_workers:
            assert time.monotonic() < deadline, "workers did not start"
            assert all(p.poll() in (None, 0) for p in procs), "a worker crashed while starting"
            time.sleep(0.01)
        (marks / "go").touch()
        for p in procs:
            assert p.wait(timeout=60) == 0
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()

    records = [r for i in range(n_workers) for r in json.loads((tmp_path / f"out{i}.json").read_text())]
    assert len(records) == n_workers * rounds
    assert all(len(r["slots"]) == 1 for r in records), "each holder's trial is in exactly one lock file of its device"
    assert not any(r["clash"] for r in records)
    assert max(r["on_device"] for r in records) <= slots
    assert {r["device"] for r in records} == set(devices)

    by_slot: dict[tuple[str, int], list[tuple[float, float]]] = {}
    for r in records:
        by_slot.setdefault((r["device"], r["slots"][0]), []).append((r["t_start"], r["t_end"]))
    assert set(by_slot) <= {(d, k) for d in devices for k in range(slots)}
    for key, spans in by_slot.items():
        spans.sort()
        for (_, end), (start, _) in zip(spans, spans[1:]):
            assert start >= end, f"slot {key} held by two processes at once"

    # Sweep over all holds: per device never more than `slots` at once, and leases did run in parallel.
    events = sorted((t, kind, r["device"]) for r in records for t, kind in ((r["t_start"], 1), (r["t_end"], -1)))
    now = dict.fromkeys(devices, 0)
    peak_total = 0
    for _, kind, device in sorted(events, key=lambda e: (e[0], e[1])):  # ends before starts at equal times
        now[device] += kind
        assert now[device] <= slots, f"device {device} had {now[device]} holders"
        peak_total = max(peak_total, sum(now.values()))
    assert peak_total >= 3, "the stress test never ran leases in parallel"


HOLDER = textwrap.dedent(
    """
    import sys, time
    from snaketune.gpu import lease_gpu
    with lease_gpu("victim", env={}, devices=["0"], slots_per_gpu=1, lock_dir=sys.argv[1], log=lambda m: None) as dev:
        print(dev, flush=True)
        time.sleep(60)
    """
)


def test_sigkilled_holder_frees_its_slot_at_once(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path)], env=child_env(), stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "0"
        assert f"pid={proc.pid}\n" in slot_path(tmp_path, "0", 0).read_text()
        kw = dict(env={}, devices=["0"], slots_per_gpu=1, lock_dir=tmp_path, poll=0.02)
        with pytest.raises(GpuLeaseError, match="trial=victim"):
            with lease_gpu("blocked", timeout=0.2, log=quiet, **kw):
                pass
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=10) == -signal.SIGKILL
        [state] = slot_status(tmp_path, ["0"], 1)
        assert not state.held and "trial=victim" in state.holder  # stale text, but free
        messages: list[str] = []
        with lease_gpu("heir", timeout=2, log=messages.append, **kw) as device:
            assert device == "0"
            assert messages == []  # free at the first try: it never had to wait
            assert "trial=heir\n" in slot_path(tmp_path, "0", 0).read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# -- CLI and imports -----------------------------------------------------------------------------


def test_status_cli_lists_slots_and_holders(tmp_path):
    env = child_env(**{ENV_DEVICES: "0,1", ENV_SLOTS: "2", ENV_LOCK_DIR: str(tmp_path)})
    with lease_gpu("cli-trial", env=env, log=quiet) as device:
        assert device == "0"
        out = subprocess.run(
            [sys.executable, "-m", "snaketune.gpu", "status"], env=env, capture_output=True, text=True, timeout=30
        )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("devices: 0, 1 (from SNAKETUNE_GPU_DEVICES); 2 slot(s) per GPU")
    held = [ln for ln in lines if " held " in ln]
    assert len(held) == 1 and "slot 0" in held[0] and "trial=cli-trial" in held[0] and f"pid={os.getpid()}" in held[0]
    assert sum(" free" in ln for ln in lines) == 3

    bad = subprocess.run(
        [sys.executable, "-m", "snaketune.gpu", "status"], env={**env, ENV_SLOTS: "0"}, capture_output=True, text=True
    )
    assert bad.returncode == 2 and "SNAKETUNE_SLOTS_PER_GPU='0' is not valid" in bad.stderr


def test_gpu_module_imports_neither_torch_nor_snakemake():
    code = "import sys, snaketune.gpu; bad = {'torch', 'snakemake'} & set(sys.modules); assert not bad, bad"
    subprocess.run([sys.executable, "-c", code], env=child_env(), check=True, timeout=30)
