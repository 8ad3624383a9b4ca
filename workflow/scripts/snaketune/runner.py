"""The trial runner: executes one trainer command under the trainer contract and records it.

The runner is the same for the built-in trainer and for any custom ``trainer.command``. It
writes the trial's ``params.yaml``, runs the trainer in its own process group with the
``SNAKETUNE_*`` variables set, and turns whatever happened into ``result.json``:

* ``status: ok`` with the objective and all metrics, or
* ``status: failed`` with a reason (non-zero exit and the trainer's last stderr lines, a
  missing or unparsable metrics file, a non-finite objective, a timeout).

A failed search trial is a result, not an error: the runner exits 0 so the search goes on.
If the runner itself is told to stop (SIGTERM/SIGINT: Snakemake shutting down, a scheduler
preempting), it stops the trainer and exits non-zero without writing ``result.json``, so the
trial is rerun rather than recorded as failed. This module imports neither torch nor Snakemake.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import math
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from snaketune.files import read_json, read_yaml, write_json, write_yaml
from snaketune.gpu import GpuLeaseError, lease_gpu

SCRIPTS_DIR = Path(__file__).resolve().parents[1]
REASON_MAX = 500


def builtin_command() -> list[str]:
    return [sys.executable, "-m", "snaketune.train"]


def render_command(template: str, values: dict[str, str]) -> str:
    """Fill ``{params}``, ``{out}``, ... with shell-quoted values."""
    return template.format(**{k: shlex.quote(str(v)) for k, v in values.items()})


def failure_reason(returncode: int, stderr_tail: list[str]) -> str:
    """A one-line reason from an exit status and the trainer's last stderr lines."""
    lines = [ln.strip() for ln in stderr_tail if ln.strip()]
    for ln in reversed(lines):
        if ln.startswith("[snaketune] trial failed:"):
            return ln.split(":", 1)[1].strip()[:REASON_MAX]
    # A signal shows as a negative code, or as 128 + N when a shell ran the trainer.
    signum = -returncode if returncode < 0 else returncode - 128 if 128 < returncode < 160 else None
    if signum is not None:
        try:
            name = signal.Signals(signum).name
        except ValueError:
            name = str(signum)
        head = f"killed by signal {name}"
    else:
        head = f"exit code {returncode}"
    tail = " | ".join(lines[-3:])
    return (f"{head}: {tail}" if tail else head)[:REASON_MAX]


def read_metrics(path: Path, metric: str) -> tuple[dict | None, str | None]:
    """(metrics, None) when usable, else (metrics or None, reason)."""
    if not path.is_file():
        return None, f"the trainer wrote no {path.name}"
    try:
        metrics = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        return None, f"{path.name} is not valid JSON ({e})"
    if not isinstance(metrics, dict):
        return None, f"{path.name} must hold a JSON object, but holds {type(metrics).__name__}"
    if metric not in metrics:
        keys = ", ".join(sorted(metrics)) or "nothing"
        return metrics, f"{path.name} has no objective `{metric}` (it has: {keys})"
    value = metrics[metric]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return metrics, f"objective {metric} is not a number: {value!r}"
    if not math.isfinite(value):
        return metrics, f"objective {metric} is {value}"
    return metrics, None


class Preempted(RuntimeError):
    """The trainer was stopped from outside (SIGTERM); the trial must be rerun, not recorded."""


def was_preempted(returncode: int, stderr_tail: list[str]) -> bool:
    if any(line.startswith("[snaketune] preempted") for line in stderr_tail):
        return True
    return returncode in (-signal.SIGTERM, 128 + signal.SIGTERM)


class _Stop(Exception):
    def __init__(self, signum: int) -> None:
        self.signum = signum


def _run(cmd, *, shell: bool, env: dict, timeout: float | None) -> tuple[int, list[str], bool]:
    """Run the trainer; tee its stderr to ours; return (returncode, stderr tail, timed_out)."""
    proc = subprocess.Popen(cmd, shell=shell, env=env, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    tail: collections.deque[str] = collections.deque(maxlen=20)

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
            _terminate(proc)
    except _Stop as s:
        _terminate(proc)
        raise SystemExit(128 + s.signum) from None
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    reader.join(timeout=5)
    return proc.returncode, list(tail), timed_out


class _TimedOut(Exception):
    pass


def _run_in_process(env: dict, timeout: float | None) -> tuple[int, list[str], bool]:
    """The built-in trainer in this process, with the contract's variables; same outcomes as _run."""
    import traceback

    from snaketune import train as trainer

    def alarm(signum, frame):
        raise _TimedOut()

    old_alarm = signal.signal(signal.SIGALRM, alarm)
    old_term = signal.signal(signal.SIGTERM, trainer._on_sigterm)
    if timeout:
        signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        trainer.train(trainer.TrialSettings.from_env(env))
        return 0, [], False
    except _TimedOut:
        return 124, [], True
    except trainer.Preempted:
        return 143, ["[snaketune] preempted"], False
    except Exception as e:  # the trial fails; the pack goes on
        reason = trainer.failure_message(e)
        if reason is None:
            reason = "".join(traceback.format_exception_only(e)).strip()
            traceback.print_exc()
        print(f"[snaketune] trial failed: {reason}", file=sys.stderr, flush=True)
        return 2, [f"[snaketune] trial failed: {reason}"], False
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old_alarm)
        signal.signal(signal.SIGTERM, old_term)


@contextlib.contextmanager
def _output_to(path: Path):
    """Send this process's stdout and stderr (file descriptors 1 and 2) to ``path`` meanwhile."""
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


def run_pack(spec: dict[str, Any], **kw) -> dict[str, Any]:
    """Run several trials in one job (``search.trials_per_job``), each with its own files and status.

    A trial whose result.json already holds the same parameters is not run again, so a pack that
    was killed redoes only its unfinished trials. The built-in trainer runs in this process.
    """
    summary = []
    # One GPU lease for the whole pack: CUDA fixes a process's devices when it first initialises,
    # so every trial of the pack must run on the device the first one got.
    device = kw.get("device", "auto")
    with lease_gpu(f"pack-{spec['pack']}") if device != "cpu" else contextlib.nullcontext(None) as gpu:
        if gpu is not None:
            os.environ["CUDA_VISIBLE_DEVICES"] = gpu
            os.environ.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")
        for run in spec["runs"]:
            out = Path(run["trial_dir"])
            done = out / "result.json"
            if done.is_file():
                try:
                    previous = read_json(done)
                except ValueError:
                    previous = {}
                if previous.get("params") == resolve_params(run)[0] and previous.get("status") in ("ok", "failed"):
                    print(f"[snaketune] trial {run['trial']}: already done ({previous['status']})", flush=True)
                    summary.append({"trial": run["trial"], "status": previous["status"], "result": str(done)})
                    continue
            out.mkdir(parents=True, exist_ok=True)
            with _output_to(out / "train.log"):
                result = run_trial(run, in_process=True, lease=False, **kw)
            print(f"[snaketune] trial {run['trial']}: {result['status']} ({result['seconds']:.1f} s)", flush=True)
            summary.append({"trial": run["trial"], "status": result["status"], "result": str(done)})
    record = {"pack": spec["pack"], "trials": summary}
    write_json(spec["pack_file"], record)
    return {"status": "ok", "stage": "search", **record}


def _terminate(proc: subprocess.Popen, grace: float = 10.0) -> None:
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


def resolve_params(spec: dict[str, Any]) -> tuple[dict[str, Any], int | None]:
    """(parameters, budget) of a run: from the spec, or proposed at run time (a bayes round's
    file), or the chosen trial's (best.yaml, for the final stage, with its best epoch as budget)."""
    params, budget = spec.get("params"), spec.get("budget")
    if params is None:
        doc = read_yaml(spec["params_from"])
        if spec.get("params_key"):
            params = doc["trials"][spec["params_key"]]
        else:
            params = doc["params"]
            budget = budget or doc.get("best_epoch") or params.get("epochs")
    return params, budget


def run_trial(
    spec: dict[str, Any],
    threads: int = 1,
    timeout: float | None = None,
    device: str = "auto",
    in_process: bool = False,
    lease: bool = True,
) -> dict[str, Any]:
    """Run one trial as ``spec`` describes and return (and write) its result record.

    ``in_process`` runs the built-in trainer inside this process (packs of small trials: torch is
    imported once per pack instead of once per trial); custom trainers always get their own process.
    """
    out = Path(spec["trial_dir"])
    out.mkdir(parents=True, exist_ok=True)
    stage = spec.get("stage", "search")
    metric = spec["metric"]
    params, budget = resolve_params(spec)
    params_path = out / "params.yaml"
    write_yaml(params_path, params)
    metrics_path = out / "metrics.json"
    result_path = out / "result.json"
    for stale in (metrics_path, result_path):
        stale.unlink(missing_ok=True)

    # Continue an interrupted attempt of this very run if it left a checkpoint (preemption, a kill);
    # else the checkpoint the spec names (a promoted multi-fidelity trial), if it exists.
    resume = ""
    for candidate in (out / "checkpoint.pt", spec.get("resume")):
        if candidate and Path(candidate).is_file():
            resume = str(candidate)
            break
    values = {
        "params": str(params_path),
        "out": str(out),
        "data": str(spec["data"]),
        "fold": str(spec.get("fold", 0)),
        "budget": "" if budget is None else str(int(budget)),
        "resume": resume,
        "stage": stage,
        "seed": str(spec.get("seed", 0)),
    }
    env = dict(os.environ)
    env.update({f"SNAKETUNE_{k.upper()}": v for k, v in values.items()})
    env.update(
        {
            "SNAKETUNE_METRIC": metric,
            "SNAKETUNE_DIRECTION": spec.get("direction", "maximize"),
            "SNAKETUNE_PATIENCE": str(spec.get("patience", 5)),
            "SNAKETUNE_MIN_DELTA": str(spec.get("min_delta", 0.0)),
            "SNAKETUNE_DEVICE": device,
            "SNAKETUNE_FAMILY": spec.get("family", "mlp"),
            "SNAKETUNE_RESTORE_BEST": "1" if spec.get("restore_best", True) else "0",
            "SNAKETUNE_THREADS": str(threads),
            "OMP_NUM_THREADS": str(threads),
            "MKL_NUM_THREADS": str(threads),
            "PYTHONPATH": os.pathsep.join(filter(None, [str(SCRIPTS_DIR), env.get("PYTHONPATH")])),
        }
    )
    template = spec.get("command")
    cmd = render_command(template, values) if template else builtin_command()
    in_process = in_process and not template
    shown = "built-in trainer, in process" if in_process else cmd if isinstance(cmd, str) else shlex.join(cmd)
    print(f"[snaketune] trial {spec['trial']} ({stage}): {shown}", flush=True)

    leasing = lease_gpu(str(spec["trial"])) if device != "cpu" and lease else contextlib.nullcontext(None)
    with leasing as gpu:  # held while the trainer runs; released on every exit path (the kernel drops it on a kill)
        if gpu is not None:
            env["CUDA_VISIBLE_DEVICES"] = gpu
            env.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")  # indices as nvidia-smi and SLURM number them
            print(f"[snaketune] trial {spec['trial']} runs on GPU {gpu}", flush=True)
        t0 = time.time()  # waiting for a GPU is not the trial's time
        if in_process:
            returncode, tail, timed_out = _run_in_process(env, timeout)
        else:
            returncode, tail, timed_out = _run(cmd, shell=isinstance(cmd, str), env=env, timeout=timeout)
        seconds = time.time() - t0

    if not timed_out and was_preempted(returncode, tail):
        # Not a result: the trial is rerun (Snakemake's retries, a requeue, a re-run) and resumes.
        raise Preempted(f"trial {spec['trial']} was stopped by SIGTERM; its checkpoint is kept and a rerun resumes from it")

    metrics, reason = None, None
    if timed_out:
        reason = f"timed out after {timeout:g} s"
    elif returncode != 0:
        reason = failure_reason(returncode, tail)
    else:
        check_metric = metric
        if stage == "final":
            check_metric = "test_" + metric.split("_", 1)[1] if metric.startswith("val_") else metric
        metrics, reason = read_metrics(metrics_path, check_metric)

    result = {
        "trial": spec["trial"],
        "status": "failed" if reason else "ok",
        "objective": metrics.get(metric) if (metrics and not reason and stage == "search") else None,
        "reason": reason,
        "params": params,
        "metrics": metrics or {},
        "seconds": round(seconds, 3),
        "exit_code": returncode,
        "stage": stage,
        "fold": spec.get("fold", 0),
        "folds": spec.get("folds", 1),
        "round": spec.get("round"),
        "log": spec.get("log"),
        "host": os.uname().nodename,
        "cuda_visible_devices": env.get("CUDA_VISIBLE_DEVICES"),
    }
    write_json(result_path, result)
    if not reason and not spec.get("keep_checkpoint", False):
        (out / "checkpoint.pt").unlink(missing_ok=True)  # a finished trial needs no checkpoint
    state = "ok" if not reason else f"FAILED: {reason}"
    print(f"[snaketune] trial {spec['trial']} {state} ({seconds:.1f} s)", flush=True)
    return result


def run_slot(spec: dict[str, Any], **kw) -> dict[str, Any]:
    """Run one slot of a multi-fidelity rung: the trial the promotion put there, to the rung's budget.

    Rung 0's slots hold the bracket's configurations; a later rung's slot k holds the k-th trial
    the ``promote`` job chose. A promoted trial trains in ``trials/<trial>/rung-<i>/`` and resumes
    from its previous rung's checkpoint, so it trains only the epochs it has not trained yet.
    An empty slot (fewer successful trials than slots) is recorded as ``skipped``.
    """
    from snaketune.plan import trial_seed

    b, i, k = spec["bracket"], spec["rung"], spec["slot"]
    where = {"bracket": b, "rung": i, "slot": k, "budget": spec["budget"]}
    trials_dir = Path(spec["trials_dir"])
    run = {key: v for key, v in spec.items() if key not in ("bracket", "rung", "slot", "slot_file", "trials_dir", "promotion")}
    if i == 0:
        trial = spec["trial"]
    else:
        promoted = read_yaml(spec["promotion"])["trials"]
        if k >= len(promoted):
            record = {"trial": None, "status": "skipped", "reason": "fewer successful trials than slots", **where}
            write_json(spec["slot_file"], record)
            return record
        trial = promoted[k]
        previous = trials_dir / trial / f"rung-{i - 1}"
        run.update(
            params=read_yaml(previous / "params.yaml"), params_from=None, params_key=None, resume=str(previous / "checkpoint.pt")
        )
    run.update(
        trial=trial,
        trial_dir=str(trials_dir / trial / f"rung-{i}"),
        seed=trial_seed(spec["search_seed"], trial),  # the same in every rung: the checkpoint must match
        patience=0,  # the schedule decides how long a trial trains
        restore_best=False,  # continue from the last epoch, not the best one
        keep_checkpoint=not spec["last_rung"],
    )
    result = {**run_trial(run, **kw), **where}
    write_json(Path(run["trial_dir"]) / "result.json", result)
    write_json(spec["slot_file"], result)
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="run_trial", description="Run one snaketune trial (used by the workflow's training rules).")
    ap.add_argument("--spec", required=True, help="JSON object describing the trial, or @file holding it")
    ap.add_argument("--threads", type=int, default=1, help="CPU threads for the trainer")
    ap.add_argument("--timeout", type=float, default=0, help="seconds before the trial is killed (0 = no limit)")
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    args = ap.parse_args(argv)
    spec = read_json(args.spec[1:]) if args.spec.startswith("@") else json.loads(args.spec)
    try:
        run = run_slot if "slot" in spec else run_pack if "runs" in spec else run_trial
        result = run(spec, threads=args.threads, timeout=args.timeout or None, device=args.device)
    except (Preempted, GpuLeaseError) as e:
        print(f"[snaketune] {e}", file=sys.stderr, flush=True)
        return 1
    if result["status"] == "failed" and result.get("stage") == "final":
        print(f"[snaketune] the final retrain failed: {result['reason']}", file=sys.stderr)
        return 1
    return 0
