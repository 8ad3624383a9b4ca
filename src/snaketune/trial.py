"""The trainer side of the contract, for your own training loop (README, "Your own model").

A trial's process reads its parameters, reports per-epoch metrics, checkpoints so that a promoted
multi-fidelity trial and a preempted one continue where they stopped, and ends with its metrics.
This module does each of those the way the built-in trainer does (atomic files, the same
``history.csv`` and ``metrics.json``, the same preemption exit), and is light to import: no
Snakemake, and torch only when a checkpoint is saved or loaded.

A script run as ``trainer.command`` (or a function named by ``trainer.function``, which gets the
``Trial`` as its second argument)::

    from snaketune.trial import Trial

    trial = Trial.from_env()
    model, opt = build(trial.params)
    state = trial.resume()                      # None, or what the last checkpoint() saved
    if state:
        model.load_state_dict(state["model"]); opt.load_state_dict(state["opt"])
    for epoch in trial.epochs():                # resumed epoch + 1 .. the budget
        train_loss = train_one_epoch(model, opt)
        val_accuracy = evaluate(model)
        trial.report(epoch, train_loss=train_loss, val_accuracy=val_accuracy)
        trial.checkpoint(epoch, model=model.state_dict(), opt=opt.state_dict())
    trial.finish(val_accuracy=val_accuracy)     # the final stage: test_accuracy (Trial.test_metric)

SIGTERM (a scheduler preempting, Snakemake stopping) or SIGINT (Ctrl-C) ends the process at once
with the exit the contract calls preempted (143, or 130 for SIGINT), naming the signal: the job
fails without a result, and its rerun resumes from the last checkpoint. ``trial.fail(reason)``
records the trial as failed with that reason.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from snaketune.files import atomic_write_bytes, atomic_write_text, history_csv, read_yaml, write_json
from snaketune.layout import CHECKPOINT, HISTORY, METRICS
from snaketune.records import test_metric

PREEMPTED_EXIT = 143  # 128 + SIGTERM: what the runner reads as preempted (with the line below)
FAILED_EXIT = 2


@dataclass
class Trial:
    """One run of a trial, as the runner describes it (the ``SNAKETUNE_*`` variables)."""

    params: dict[str, Any]
    out: Path
    stage: str = "search"  # search | final (train on train+validation, report test_* metrics)
    seed: int = 0
    fold: int = 0
    budget: int | None = None  # epochs this run should end at (a rung's budget, the final epoch count)
    resume_from: Path | None = None  # the checkpoint to continue from (own or a promoted trial's)
    data: str | None = None  # the prepared data file (SNAKETUNE_DATA), or None
    metric: str | None = None  # the study's objective (SNAKETUNE_METRIC), when the runner sets it
    device: str = "auto"
    threads: int | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    _start_epoch: int = 0
    finished: bool = False  # finish() wrote metrics.json

    # -- reading the trial ------------------------------------------------------------------------

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ, *, handle_sigterm: bool = True) -> Trial:
        """The trial the runner started this process for; with ``handle_sigterm`` SIGTERM and SIGINT
        exit as preempted (see the module's text)."""
        params_path, out = env.get("SNAKETUNE_PARAMS"), env.get("SNAKETUNE_OUT")
        if not params_path or not out:
            sys.exit("snaketune.trial: SNAKETUNE_PARAMS and SNAKETUNE_OUT are not set: run this as a study's trainer")
        params = read_yaml(params_path) or {}
        if not isinstance(params, dict):
            sys.exit(f"snaketune.trial: {params_path} holds no mapping of parameters")

        def number(name: str) -> int | None:
            v = env.get(name, "")
            return int(v) if v.strip() else None

        trial = cls(
            params=params,
            out=Path(out),
            stage=env.get("SNAKETUNE_STAGE") or "search",
            seed=number("SNAKETUNE_SEED") or 0,
            fold=number("SNAKETUNE_FOLD") or 0,
            budget=number("SNAKETUNE_BUDGET"),
            resume_from=Path(env["SNAKETUNE_RESUME"]) if env.get("SNAKETUNE_RESUME") else None,
            data=env.get("SNAKETUNE_DATA") or None,
            metric=env.get("SNAKETUNE_METRIC") or None,
            device=env.get("SNAKETUNE_DEVICE") or "auto",
            threads=number("SNAKETUNE_THREADS"),
        )
        trial.out.mkdir(parents=True, exist_ok=True)
        if handle_sigterm:
            for signum in (signal.SIGTERM, signal.SIGINT):
                signal.signal(signum, _preempted)
        return trial

    @property
    def final(self) -> bool:
        return self.stage == "final"

    @property
    def test_metric(self) -> str | None:
        """The name the final stage must report the objective under (``val_accuracy`` ->
        ``test_accuracy``, ``score`` -> ``test_score``)."""
        return test_metric(self.metric) if self.metric else None

    @property
    def total_epochs(self) -> int:
        """The epoch this run ends at: the budget, else the ``epochs`` parameter."""
        if self.budget is not None:
            return self.budget
        if "epochs" not in self.params:
            self.fail("the trial has no budget and no `epochs` parameter: add epochs to search_space")
        return int(self.params["epochs"])

    def torch_device(self):
        """``device`` as a torch device: ``auto`` is CUDA when available."""
        import torch

        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(self.device)

    # -- checkpoints --------------------------------------------------------------------------------

    def identity(self) -> dict[str, Any]:
        """What a checkpoint must match to be resumed: the parameters (but the epoch count, which a
        promotion raises), seed, fold and stage."""
        params = {k: self.params[k] for k in sorted(self.params) if k != "epochs"}
        return {"helper": 1, "params": params, "seed": self.seed, "fold": self.fold, "stage": self.stage}

    def resume(self) -> dict[str, Any] | None:
        """What the last :meth:`checkpoint` of this run (or of the promoted trial's previous rung)
        saved, with ``history`` restored and :meth:`epochs` continuing after its epoch; None to
        start afresh (no checkpoint, or one of other settings, which is said in the log)."""
        import torch

        path = self.resume_from
        if path is None or not path.is_file():
            return None
        try:
            saved = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # a torn or foreign file: start afresh rather than fail the trial
            print(f"[snaketune] ignoring unreadable checkpoint {path}: {e}", flush=True)
            return None
        meta = saved.get("snaketune") if isinstance(saved, dict) else None
        if not isinstance(meta, dict) or meta.get("identity") != self.identity():
            print(f"[snaketune] ignoring checkpoint {path}: it belongs to other settings", flush=True)
            return None
        self._start_epoch = int(meta["epoch"])
        self.history = list(meta.get("history") or [])
        print(f"[snaketune] resuming after epoch {self._start_epoch} from {path}", flush=True)
        return saved["state"]

    def checkpoint(self, epoch: int, **state: Any) -> None:
        """Save ``state`` (state dicts, tensors, numbers: what ``torch.load(weights_only=True)``
        reads) as the run's checkpoint after ``epoch``, atomically."""
        import io

        import torch

        buf = io.BytesIO()
        meta = {"identity": self.identity(), "epoch": int(epoch), "history": self.history}
        torch.save({"snaketune": meta, "state": state}, buf)
        atomic_write_bytes(self.out / CHECKPOINT, buf.getvalue(), fsync=False)

    # -- reporting ----------------------------------------------------------------------------------

    def epochs(self) -> Iterator[int]:
        """The epochs to train: after the resumed one (0 without) up to :attr:`total_epochs`."""
        return iter(range(self._start_epoch + 1, self.total_epochs + 1))

    def report(self, epoch: int, **metrics: Any) -> None:
        """One epoch's metrics: a row of ``history.csv`` (rewritten whole, atomically) and a log line."""
        row = {"epoch": int(epoch), **{k: _plain(v) for k, v in metrics.items()}}
        self.history = [r for r in self.history if r.get("epoch") != row["epoch"]] + [row]
        atomic_write_text(self.out / HISTORY, history_csv(self.history))
        shown = "  ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items() if k != "epoch")
        print(f"epoch {row['epoch']:4d}  {shown}", flush=True)

    def finish(self, **metrics: Any) -> dict[str, Any]:
        """Write ``metrics.json`` (last: its presence means the run finished). ``epochs_run`` is
        added from the history when not given. In the final stage the objective must be reported
        under :attr:`test_metric`."""
        out = {k: _plain(v) for k, v in metrics.items()}
        if self.history:
            out.setdefault("epochs_run", int(self.history[-1]["epoch"]))
        wanted = self.test_metric if self.final else self.metric
        if wanted and wanted not in out:
            stage = "final stage" if self.final else "search"
            self.fail(f"finish() was given {', '.join(out) or 'no metrics'}; the {stage} needs {wanted}")
        write_json(self.out / METRICS, out)
        self.finished = True
        return out

    def fail(self, reason: str) -> None:
        """End the run as a failed trial with ``reason`` (the table's error column)."""
        print(f"[snaketune] trial failed: {reason}", file=sys.stderr, flush=True)
        raise SystemExit(FAILED_EXIT)


def _plain(v: Any) -> Any:
    """A metric as JSON holds it: one-element tensors and numpy scalars become Python numbers."""
    if hasattr(v, "item") and callable(v.item):
        try:
            return v.item()
        except (TypeError, ValueError, RuntimeError):
            return v
    return v


def _preempted(signum, frame) -> None:
    print(
        f"[snaketune] preempted ({signal.Signals(signum).name}): the last checkpoint is kept; a rerun resumes from it",
        file=sys.stderr,
        flush=True,
    )
    raise SystemExit(128 + signum)  # PREEMPTED_EXIT for SIGTERM, 130 for SIGINT


def load_function(where: str):
    """The function ``trainer.function`` names: ``module:function`` (importable) or
    ``path/to/file.py:function`` (relative to the working directory Snakemake runs in)."""
    import importlib
    import importlib.util

    module_name, _, name = where.strip().rpartition(":")
    if module_name.endswith(".py"):
        path = Path(module_name).resolve()
        spec = importlib.util.spec_from_file_location(path.stem, path)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot load {path}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[path.stem] = module
        sys.path.insert(0, str(path.parent))  # the file's own imports of its neighbours
        spec.loader.exec_module(module)
    else:
        sys.path.insert(0, os.getcwd())  # a module of the study's folder, as `python -m` would find it
        module = importlib.import_module(module_name)
    function = getattr(module, name, None)
    if not callable(function):
        raise ImportError(f"{module_name} has no function {name!r}")
    return function


def main(argv: list[str] | None = None) -> int:
    """``python -m snaketune.trial module:function``: the trial process of a ``trainer.function``.
    The function is called with the trial's parameters and its :class:`Trial`; the metrics it
    returns are written with :meth:`Trial.finish` (unless it called finish itself)."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        sys.exit("usage: python -m snaketune.trial module:function   (run by snaketune for trainer.function)")
    trial = Trial.from_env()
    try:
        function = load_function(argv[0])
    except Exception as e:  # an import error is the trial's failure, with its reason
        trial.fail(f"trainer.function {argv[0]!r} cannot be loaded: {type(e).__name__}: {e}")
    metrics = function(trial.params, trial)
    if not trial.finished:
        if not isinstance(metrics, Mapping):
            trial.fail(
                f"trainer.function {argv[0]!r} returned {type(metrics).__name__}, not a mapping of metrics, and did not call trial.finish()"
            )
        trial.finish(**metrics)
    return 0


if __name__ == "__main__":
    sys.exit(main())
