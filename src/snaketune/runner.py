"""The trial runner: executes one trainer run under the trainer contract and records it.

Every training job runs one or more of these (``snaketune-trial``, :mod:`snaketune.job`). The runner is the same for
the built-in trainer and for any custom ``trainer.command``. It writes the run's ``params.yaml``,
runs the trainer in its own process group with the ``SNAKETUNE_*`` variables set (on a local
run, snaketune's own trainers are forked from a warm worker, :mod:`snaketune.worker`), and turns
whatever happened into ``result.json``:

* ``status: ok`` with the objective and all metrics, or
* ``status: failed`` with a reason (non-zero exit and the trainer's last stderr lines, a
  missing or unparsable metrics file, a non-finite objective, a timeout).

A failed search trial is a result, not an error: the runner exits 0 so the search goes on.
If the runner itself is told to stop (SIGTERM/SIGINT: Snakemake shutting down, a scheduler
preempting, Ctrl-C), it passes the signal on to the trainer and exits non-zero without writing
``result.json``, naming the signal, so the trial is rerun rather than recorded as failed; a trainer
ended by SIGTERM or SIGINT from elsewhere is treated alike. A trainer killed by a SIGKILL that snaketune did
not send (the kernel's out-of-memory killer, mostly) is stopped in the same way, but only
``MAX_SIGKILLS - 1`` times per run: the next such kill is recorded as the run's failure (counted
in ``sigkills.json`` in the run's folder, until the run has a record). A run holds its folder's
lock (:func:`snaketune.supervise.sole_writer`) from its first write to its record, so no second
run ever writes the same folder. Whether a job runs at all is Snakemake's decision
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
import string
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from snaketune import worker
from snaketune.files import atomic_write_text, read_json, read_yaml, write_json, write_yaml
from snaketune.gpu import held_lock_fds, lease_gpu
from snaketune.layout import CHECKPOINT, HISTORY, METRICS, PARAMS, RESULT, SIGKILLS, TRIAL_ENV
from snaketune.specs import RunSpec
from snaketune.supervise import run_builtin_in_process, run_command, sole_writer

REASON_MAX = 500
MAX_SIGKILLS = 2  # attempts a SIGKILL that snaketune did not send may end before the run is recorded failed


def builtin_command(function: str | None = None) -> list[str]:
    """The trainer snaketune itself runs: the built-in one, or a ``trainer.function`` called by
    snaketune.trial in the trial's own process (the same interpreter as the job's)."""
    if function:
        return [sys.executable, "-m", "snaketune.trial", function]
    return [sys.executable, "-m", "snaketune.train"]


class CommandTemplateError(ValueError):
    """``trainer.command`` cannot be filled in; the message says which placeholder and what is valid."""


def render_command(template: str, values: dict[str, str]) -> str:
    """Fill ``{params}``, ``{out}``, ... with shell-quoted values.

    Only bare ``{name}`` placeholders of ``values`` are filled, and ``{{``/``}}`` are literal braces; a
    conversion (``{out!r}``), a format spec (``{seed:d}``), an attribute or index (``{out.x}``) or an
    unknown name raises CommandTemplateError instead of str.format's surprises.
    """
    valid = ", ".join(f"{{{k}}}" for k in values)
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as e:
        raise CommandTemplateError(f"cannot parse it ({e}); write a literal brace as {{{{ or }}}}") from None
    out = []
    for literal, name, spec, conversion in parts:
        out.append(literal)
        if name is None:
            continue
        field = "{" + name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
        if name not in values:
            raise CommandTemplateError(f"unknown placeholder {field}; valid: {valid}")
        if conversion or spec:
            raise CommandTemplateError(f"placeholder {field} has a conversion or format spec; write it as {{{name}}}")
        out.append(shlex.quote(str(values[name])))
    return "".join(out)


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


# What one run may report in metrics.json (README, "The trainer contract"). A trainer's output is
# untrusted input: every key becomes a column of trials.tsv and a field of every later job's records,
# so a file beyond these limits is a failed trial that names the limit, never a runner crash.
METRICS_MAX_BYTES = 1_000_000
METRICS_MAX_KEYS = 500
METRIC_NAME_MAX = 200
METRICS_MAX_DEPTH = 16  # nested values (lists, objects) are kept in result.json, left out of trials.tsv
_SHOW = 60  # characters of a key or value quoted in a reason


class _BadMetrics(ValueError):
    """metrics.json is readable JSON but not what a trial may report."""


def _shown(v: Any) -> str:
    """``repr(v)`` cut to a length a reason can carry (a key or value is the trainer's text)."""
    text = repr(v)
    return text if len(text) <= _SHOW else f"{text[: _SHOW - 5]}...{text[-2:]}"


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """json.loads' object hook: a key twice in one object is an error (which value counts is ambiguous)."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _BadMetrics(f"key {_shown(key)} appears twice in one object")
        out[key] = value
    return out


def _parse_int(text: str) -> int:
    """json.loads' integer parser: every number a trial reports must fit a float (up to about 1.8e308),
    or a later mean or ranking would fail on it."""
    digits = len(text.lstrip("-"))
    try:
        if digits > 400:  # beyond any float; and int() itself refuses over 4,300 digits
            raise OverflowError
        value = int(text)
        float(value)
    except OverflowError:
        raise _BadMetrics(f"the integer {text[:12]}... ({digits} digits) is too large for a float") from None
    return value


def _check_metrics(metrics: dict[str, Any], name: str) -> None:
    """Raise _BadMetrics when ``metrics`` exceeds what a trial may report."""
    if len(metrics) > METRICS_MAX_KEYS:
        raise _BadMetrics(f"{name} has {len(metrics)} keys, more than the {METRICS_MAX_KEYS} a trial may report")
    for key in metrics:
        if not key.strip():
            raise _BadMetrics(f"{name} has a blank key {key!r}; give every metric a name")
        if len(key) > METRIC_NAME_MAX:
            raise _BadMetrics(f"{name}: key {_shown(key)} is {len(key)} characters long, more than {METRIC_NAME_MAX}")
        if not key.isprintable():
            raise _BadMetrics(
                f"{name}: key {_shown(key)} holds a tab, newline or other non-printable character; "
                "it would name a column of trials.tsv"
            )
    # Every value, without recursion (a value may be nested as deeply as the parser allowed): its
    # depth, and its text, which JSON's \u escapes can make a lone surrogate that no file can hold.
    stack: list[tuple[Any, int]] = [(metrics, 0)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise _BadMetrics(f"{name}: the text {_shown(value)} holds an unpaired \\u surrogate escape") from None
        elif isinstance(value, (dict, list)):
            if depth > METRICS_MAX_DEPTH:
                raise _BadMetrics(f"{name} nests lists or objects more than {METRICS_MAX_DEPTH} levels deep")
            items = [*value, *value.values()] if isinstance(value, dict) else value
            stack.extend((v, depth + 1) for v in items)


def read_metrics(path: Path, metric: str, stage: str = "search") -> tuple[dict | None, str | None]:
    """(metrics, None) when the trainer's ``metrics.json`` is usable, else (metrics or None, reason).

    The objective is ``metric`` in the search stage, and its test-set name (records.test_metric) in
    the final stage. The file is untrusted: whatever it holds, the answer is a reason, never an
    exception. A file beyond the limits above gives no metrics at all; a valid one whose objective
    is missing or not a finite number keeps its metrics for the record.
    """
    from snaketune.records import test_metric

    name = path.name
    objective = test_metric(metric) if stage == "final" else metric
    try:
        if not path.exists():
            return None, f"the trainer wrote no {name}"
        if not path.is_file():
            return None, f"{name} is not a regular file"
        with open(path, "rb") as fh:
            data = fh.read(METRICS_MAX_BYTES + 1)  # a bounded read: the file may still be growing, or be huge
    except OSError as e:
        return None, f"cannot read {name} ({e.strerror or e})"
    if len(data) > METRICS_MAX_BYTES:
        return None, (
            f"{name} is larger than the limit of {METRICS_MAX_BYTES:,} bytes a trial may report; "
            "keep large outputs in other files of the trial's folder"
        )
    if not data.strip():
        return None, f"{name} is empty"
    try:
        metrics = json.loads(data.decode("utf-8-sig"), object_pairs_hook=_unique_keys, parse_int=_parse_int)
    except UnicodeDecodeError as e:
        return None, f"{name} is not UTF-8 text (byte {e.start})"
    except RecursionError:
        return None, f"{name} nests lists or objects more than {METRICS_MAX_DEPTH} levels deep"
    except _BadMetrics as e:
        return None, f"{name}: {e}"
    except ValueError as e:
        return None, f"{name} is not valid JSON ({str(e)[: _SHOW * 2]})"
    if not isinstance(metrics, dict):
        return None, f'{name} must hold a JSON object ({{"{objective}": ...}}), but holds {_json_type(metrics)}'
    try:
        _check_metrics(metrics, name)
    except _BadMetrics as e:
        return None, str(e)
    if objective not in metrics:
        keys = sorted(metrics)
        shown = ", ".join(_shown(k)[1:-1] for k in keys[:20]) + (f", ... ({len(keys)} keys)" if len(keys) > 20 else "")
        named = f", the final stage's name for the objective `{metric}`" if objective != metric else ""
        return metrics, f"{name} has no objective `{objective}`{named} (it has: {shown or 'nothing'})"
    value = metrics[objective]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return metrics, f"objective {objective} is not a number: {_shown(value)}"
    if not math.isfinite(value):
        return metrics, f"objective {objective} is {value}"
    return metrics, None


def _json_type(value: Any) -> str:
    """What a JSON document holds, in JSON's words."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    return {str: "a string", list: "an array"}.get(type(value), type(value).__name__)


class Preempted(RuntimeError):
    """The trainer was stopped from outside (SIGTERM or SIGINT, or a SIGKILL that snaketune did not
    send); the trial must be rerun, not recorded."""


def was_preempted(returncode: int, stderr_tail: list[str]) -> signal.Signals | None:
    """The signal that stopped the trainer from outside (SIGTERM, SIGINT or SIGKILL), or None. Call
    it only for a run that snaketune did not stop itself (a timeout): then any SIGKILL came from
    elsewhere. SIGINT (Ctrl-C) is an interruption like SIGTERM, not a result."""
    signum = next((s for s in (signal.SIGTERM, signal.SIGINT, signal.SIGKILL) if returncode in (-s, 128 + s)), None)
    if any(line.startswith("[snaketune] preempted") for line in stderr_tail):  # the contract's own word
        return signum if signum == signal.SIGINT else signal.SIGTERM
    return signum  # -N, or 128 + N when a shell ran the trainer


def count_sigkill(out: Path, run: dict[str, Any]) -> int:
    """Count one more attempt of ``run`` (its identity) that a SIGKILL ended; return the count.
    A count left by another run in the same folder (other parameters, budget, seed) starts over."""
    path = out / SIGKILLS
    try:
        known = read_json(path)
        count = known["sigkills"] if known.get("run") == run else 0
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        count = 0
    write_json(path, {"run": run, "sigkills": count + 1})
    return count + 1


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


def write_trial_env(path: Path, env: Mapping[str, str]) -> None:
    """The contract's variables of this run, to source when debugging it (README, "Debug one
    trial"): everything that decides what it computes (parameters file, data, seed, fold, budget,
    stage, objective, early stopping, threads, device), not where it writes or what it resumes,
    nor the run's warm worker (``SNAKETUNE_WORKER_*``: its Snakemake process and socket)."""
    keys = sorted(
        k
        for k in env
        if k.startswith("SNAKETUNE_") and k not in ("SNAKETUNE_OUT", "SNAKETUNE_RESUME") and not k.startswith("SNAKETUNE_WORKER")
    )
    keys += [k for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS") if k in env]
    atomic_write_text(path, "".join(f"{k}={shlex.quote(env[k])}\n" for k in keys))


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
    The run holds its folder (:func:`snaketune.supervise.sole_writer`) until its record is written;
    a folder that another live run holds raises FolderBusy before anything in it is touched.
    """
    out = Path(spec.dir)
    out.mkdir(parents=True, exist_ok=True)
    with sole_writer(out):
        result = _run_trial(spec, threads, timeout, device, in_process, lease)
        (out / SIGKILLS).unlink(missing_ok=True)  # recorded: its killed attempts no longer count
        return result


def _run_trial(spec: RunSpec, threads: int, timeout: float | None, device: str, in_process: bool, lease: bool) -> dict[str, Any]:
    out = Path(spec.dir)
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
    write_trial_env(out / TRIAL_ENV, env)
    template = spec.trainer.command
    try:
        cmd = render_command(template, values) if template else builtin_command(spec.trainer.function)
    except CommandTemplateError as e:  # the config check missed it: a failed trial, not a job that fails on every re-run
        return record_run(spec, params, None, f"trainer.command cannot be filled in: {e}", 0.0, None, env)
    in_process = in_process and not template and not spec.trainer.function
    # Our own interpreter's trainers may run in a warm worker's fork (local runs, snaketune.worker).
    owner = None if in_process or template else worker.active_owner(env)
    shown = "built-in trainer, in process" if in_process else cmd if isinstance(cmd, str) else shlex.join(cmd)
    shown += ", forked by the warm worker" if owner else ""
    print(f"[snaketune] trial {spec.trial} ({spec.stage}, seed {spec.seed}): {shown}", flush=True)

    leasing = lease_gpu(spec.trial) if device != "cpu" and lease else contextlib.nullcontext(None)
    with leasing as gpu:  # held while the trainer runs; released on every exit path (the kernel drops it on a kill)
        if gpu is not None:
            env["CUDA_VISIBLE_DEVICES"] = gpu
            env.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")  # indices as nvidia-smi and SLURM number them
            print(f"[snaketune] trial {spec.trial} runs on GPU {gpu}", flush=True)
        t0 = time.time()  # waiting for a GPU is not the trial's time
        outcome = None
        if in_process:
            outcome = run_builtin_in_process(env, timeout)
        elif owner:
            try:
                outcome = worker.run(cmd, env, timeout=timeout, owner=owner, keep_fds=held_lock_fds())
            except worker.WorkerError as e:
                print(f"[snaketune] no warm worker ({e}): the trainer starts as a process of its own", flush=True)
        if outcome is None:
            outcome = run_command(cmd, env=env, timeout=timeout)
        seconds = time.time() - t0

    # Not a result: the trial is rerun (Snakemake's retries, a requeue, a re-run) and resumes. We send
    # SIGKILL only at a timeout (or a stop, which never gets here): any other is mostly the
    # out-of-memory killer, which may strike on every attempt, so on MAX_SIGKILLS it is the result.
    if outcome.stopped:  # this job was told to stop, and stopped its trainer with the same signal
        stopped_by = signal.Signals(outcome.stopped)
    else:
        stopped_by = None if outcome.timed_out else was_preempted(outcome.returncode, outcome.stderr_tail)
    sigkills = 0
    if stopped_by == signal.SIGKILL:
        sigkills = count_sigkill(out, {"params": params, "budget": budget, "seed": spec.seed, "stage": spec.stage})
    if stopped_by in (signal.SIGTERM, signal.SIGINT):
        raise Preempted(
            f"trial {spec.trial} was stopped by {stopped_by.name}; its checkpoint is kept and a rerun resumes from it"
        )
    if 0 < sigkills < MAX_SIGKILLS:
        raise Preempted(
            f"trial {spec.trial} was killed by a SIGKILL that snaketune did not send (out of memory?) on attempt "
            f"{sigkills} of {MAX_SIGKILLS}; its checkpoint is kept and a rerun resumes from it"
        )

    metrics, reason = None, None
    if sigkills:
        reason = f"killed by SIGKILL (out of memory?) on {sigkills} attempts"
    elif outcome.timed_out:
        reason = f"timed out after {timeout:g} s"
    elif outcome.returncode != 0:
        reason = failure_reason(outcome.returncode, outcome.stderr_tail)
    else:
        metrics, reason = read_metrics(metrics_path, metric, spec.stage)
    return record_run(spec, params, metrics, reason, seconds, outcome.returncode, env, outcome.usage)


def record_run(
    spec: RunSpec,
    params: dict[str, Any],
    metrics: dict[str, Any] | None,
    reason: str | None,
    seconds: float,
    exit_code: int | None,
    env: dict[str, str],
    usage: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """Write (and return) a run's ``result.json``: ok, or failed because of ``reason``."""
    out = Path(spec.dir)
    metric = spec.trainer.metric
    result = {
        "trial": spec.trial,
        "status": "failed" if reason else "ok",
        "objective": metrics.get(metric) if (metrics and not reason and spec.stage == "search") else None,
        "reason": reason,
        "params": params,
        "metrics": metrics or {},
        "seconds": round(seconds, 3),
        # The trainer process's own figures (benchmark.tsv measures the job's process, which with a
        # warm worker is not the one that trains): CPU seconds and peak resident memory.
        "cpu_seconds": round(usage["cpu_seconds"], 3) if usage else None,
        "max_rss_mb": round(usage["max_rss_mb"], 1) if usage else None,
        "exit_code": exit_code,
        "stage": spec.stage,
        "fold": spec.fold,
        "folds": spec.folds,
        "round": spec.round,
        "seed": spec.seed,
        "log": spec.log,
        "host": os.uname().nodename,
        "cuda_visible_devices": env.get("CUDA_VISIBLE_DEVICES"),
    }
    write_json(out / RESULT, result)
    if not reason and not spec.keep_checkpoint:
        (out / CHECKPOINT).unlink(missing_ok=True)  # a finished run needs no checkpoint
    state = "ok" if not reason else f"FAILED: {reason}"
    print(f"[snaketune] trial {spec.trial} {state} ({seconds:.1f} s)", flush=True)
    return result


def leave_declared_files(spec: RunSpec) -> None:
    """Without a shared file system the run's ``history.csv`` is a declared output of its job (the
    learning curves read it in another job, which gets only declared files): an empty one where the
    trainer wrote none (a custom trainer, a failed run), which readers take for none
    (:meth:`snaketune.layout.Layout.trial_history_files`)."""
    history = Path(spec.dir) / HISTORY
    if not history.exists():
        history.parent.mkdir(parents=True, exist_ok=True)
        history.touch()


def run_into_slot(run: RunSpec | None, file: str, where: dict[str, Any], why_empty: str, **kw: Any) -> dict[str, Any]:
    """A slot filled at run time (a rung's promoted trial, a re-evaluated trial): run ``run`` and
    record its result, with ``where`` the slot is, in the run's folder and in ``file``; or, when
    nothing filled the slot (``run`` None), record it in ``file`` as ``skipped`` because ``why_empty``."""
    if run is None:
        record = {"trial": None, "status": "skipped", "reason": why_empty, **where}
        write_json(file, record)
        return record
    with sole_writer(run.dir):  # one hold from the run's first write to this record of it
        result = {**run_trial(run, **kw), **where}
        write_json(Path(run.dir) / RESULT, result)
    write_json(file, result)
    return result
