"""The trial runner: executes one trainer run under the trainer contract and records it.

Every training job runs one or more of these (``snaketune-trial``, :mod:`snaketune.job`). The runner is the same for
the built-in trainer and for any custom ``trainer.command``. It writes the run's ``params.yaml``,
runs the trainer in its own process group with the ``SNAKETUNE_*`` variables set, and turns
whatever happened into ``result.json``:

* ``status: ok`` with the objective and all metrics, or
* ``status: failed`` with a reason (non-zero exit and the trainer's last stderr lines, a
  missing or unparsable metrics file, a non-finite objective, a timeout).

A failed search trial is a result, not an error: the runner exits 0 so the search goes on.
If the runner itself is told to stop (SIGTERM/SIGINT: Snakemake shutting down, a scheduler
preempting), it stops the trainer and exits non-zero without writing ``result.json``, so the
trial is rerun rather than recorded as failed. Whether a job runs at all is Snakemake's decision
alone (its outputs, params and code): the runner never judges a run "already done".
This module imports neither torch nor Snakemake.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shlex
import signal
import sys
import time
from pathlib import Path
from typing import Any

from snaketune.files import read_yaml, write_json, write_yaml
from snaketune.gpu import lease_gpu
from snaketune.layout import CHECKPOINT, METRICS, PARAMS, RESULT
from snaketune.specs import RunSpec
from snaketune.supervise import run_builtin_in_process, run_command

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


def resolve_params(spec: RunSpec) -> tuple[dict[str, Any], int | None]:
    """(parameters, budget) of a run: from the spec, or proposed at run time (a Bayesian round's
    file), or the chosen trial's (select/winner.yaml, for the final stage, with its best epoch as budget)."""
    params, budget = spec.params, spec.budget
    if params is None:
        doc = read_yaml(spec.params_from)
        if spec.params_key:
            params = doc["trials"][spec.params_key]
        else:
            params = doc["params"]
            budget = budget or doc.get("best_epoch") or params.get("epochs")
    return params, budget


def trainer_environment(spec: RunSpec, values: dict[str, str], threads: int, device: str) -> dict[str, str]:
    """The trainer contract's variables (and the built-in trainer's extras) on top of ours."""
    t = spec.trainer
    env = dict(os.environ)
    env.update({f"SNAKETUNE_{k.upper()}": v for k, v in values.items()})
    env.update(
        {
            "SNAKETUNE_METRIC": t.metric,
            "SNAKETUNE_DIRECTION": t.direction,
            "SNAKETUNE_PATIENCE": str(t.patience),
            "SNAKETUNE_MIN_DELTA": str(t.min_delta),
            "SNAKETUNE_DEVICE": device,
            "SNAKETUNE_FAMILY": t.family,
            "SNAKETUNE_RESTORE_BEST": "1" if spec.restore_best else "0",
            "SNAKETUNE_THREADS": str(threads),
            "OMP_NUM_THREADS": str(threads),
            "MKL_NUM_THREADS": str(threads),
        }
    )
    return env


def run_trial(
    spec: RunSpec,
    threads: int = 1,
    timeout: float | None = None,
    device: str = "auto",
    in_process: bool = False,
    lease: bool = True,
) -> dict[str, Any]:
    """Run one trainer run as ``spec`` describes and return (and write) its result record.

    ``in_process`` runs the built-in trainer inside this process (packs of small trials: torch is
    imported once per pack instead of once per trial); custom trainers always get their own process.
    """
    from snaketune.records import test_metric

    out = Path(spec.dir)
    out.mkdir(parents=True, exist_ok=True)
    metric = spec.trainer.metric
    params, budget = resolve_params(spec)
    params_path = out / PARAMS
    write_yaml(params_path, params)
    metrics_path, result_path = out / METRICS, out / RESULT
    for stale in (metrics_path, result_path):
        stale.unlink(missing_ok=True)

    # Continue an interrupted attempt of this very run if it left a checkpoint (preemption, a kill);
    # else the checkpoint the spec names (a promoted multi-fidelity trial), if it exists. The
    # trainer checks that a checkpoint belongs to this run (parameters, seed, objective, ...).
    resume = ""
    for candidate in (out / CHECKPOINT, spec.resume):
        if candidate and Path(candidate).is_file():
            resume = str(candidate)
            break
    values = {
        "params": str(params_path),
        "out": str(out),
        "data": str(spec.trainer.data),
        "fold": str(spec.fold),
        "budget": "" if budget is None else str(int(budget)),
        "resume": resume,
        "stage": spec.stage,
        "seed": str(spec.seed),
    }
    env = trainer_environment(spec, values, threads, device)
    template = spec.trainer.command
    cmd = render_command(template, values) if template else builtin_command()
    in_process = in_process and not template
    shown = "built-in trainer, in process" if in_process else cmd if isinstance(cmd, str) else shlex.join(cmd)
    print(f"[snaketune] trial {spec.trial} ({spec.stage}, seed {spec.seed}): {shown}", flush=True)

    leasing = lease_gpu(spec.trial) if device != "cpu" and lease else contextlib.nullcontext(None)
    with leasing as gpu:  # held while the trainer runs; released on every exit path (the kernel drops it on a kill)
        if gpu is not None:
            env["CUDA_VISIBLE_DEVICES"] = gpu
            env.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")  # indices as nvidia-smi and SLURM number them
            print(f"[snaketune] trial {spec.trial} runs on GPU {gpu}", flush=True)
        t0 = time.time()  # waiting for a GPU is not the trial's time
        outcome = run_builtin_in_process(env, timeout) if in_process else run_command(cmd, env=env, timeout=timeout)
        seconds = time.time() - t0

    if not outcome.timed_out and was_preempted(outcome.returncode, outcome.stderr_tail):
        # Not a result: the trial is rerun (Snakemake's retries, a requeue, a re-run) and resumes.
        raise Preempted(f"trial {spec.trial} was stopped by SIGTERM; its checkpoint is kept and a rerun resumes from it")

    metrics, reason = None, None
    if outcome.timed_out:
        reason = f"timed out after {timeout:g} s"
    elif outcome.returncode != 0:
        reason = failure_reason(outcome.returncode, outcome.stderr_tail)
    else:
        metrics, reason = read_metrics(metrics_path, test_metric(metric) if spec.stage == "final" else metric)

    result = {
        "trial": spec.trial,
        "status": "failed" if reason else "ok",
        "objective": metrics.get(metric) if (metrics and not reason and spec.stage == "search") else None,
        "reason": reason,
        "params": params,
        "metrics": metrics or {},
        "seconds": round(seconds, 3),
        "exit_code": outcome.returncode,
        "stage": spec.stage,
        "fold": spec.fold,
        "folds": spec.folds,
        "round": spec.round,
        "seed": spec.seed,
        "log": spec.log,
        "host": os.uname().nodename,
        "cuda_visible_devices": env.get("CUDA_VISIBLE_DEVICES"),
    }
    write_json(result_path, result)
    if not reason and not spec.keep_checkpoint:
        (out / CHECKPOINT).unlink(missing_ok=True)  # a finished run needs no checkpoint
    state = "ok" if not reason else f"FAILED: {reason}"
    print(f"[snaketune] trial {spec.trial} {state} ({seconds:.1f} s)", flush=True)
    return result


def run_into_slot(run: RunSpec | None, file: str, where: dict[str, Any], why_empty: str, **kw: Any) -> dict[str, Any]:
    """A slot filled at run time (a rung's promoted trial, a re-evaluated trial): run ``run`` and
    record its result, with ``where`` the slot is, in the run's folder and in ``file``; or, when
    nothing filled the slot (``run`` None), record it in ``file`` as ``skipped`` because ``why_empty``."""
    if run is None:
        record = {"trial": None, "status": "skipped", "reason": why_empty, **where}
        write_json(file, record)
        return record
    result = {**run_trial(run, **kw), **where}
    write_json(Path(run.dir) / RESULT, result)
    write_json(file, result)
    return result
