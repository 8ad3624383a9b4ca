"""What the MLflow and TensorBoard exports send of a study, read from its files as they are now.

Both exports show the same things: each trial's record (its parameters, status, failure reason
and result metrics), its learning curves from ``history.csv`` and, with cross-validation, each
fold's. This module reads them once for both, and is where the rule "a trainer's file is
untrusted" is kept for them: a value that is not a finite number, or a history that cannot be
read, is left out with a warning that names the file, never a crash. Their command lines
(``python -m snaketune.export_<tool> results/<study>``) share :func:`export_command`.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import sys
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from snaketune.files import read_json
from snaketune.layout import HISTORY, Layout, run_name
from snaketune.records import is_ok, records_in_completion_order
from snaketune.trial_files import epoch_values, read_history

# A learning curve: the value of one history.csv column per epoch.
Curve = dict[int, float]
# Epochs are steps in MLflow and TensorBoard (64-bit integers there): a trainer's larger or
# negative "epoch" is not one.
MAX_EPOCH = 2**31


class ExportError(RuntimeError):
    """An export cannot go where it was asked to; the message says why and what to do."""


class MissingExtra(ImportError):
    """An export's optional dependency is not installed; the message says what to install."""


def require(module: str, *, extra: str, package: str, what: str) -> Any:
    """``module``, imported; or MissingExtra naming the extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise MissingExtra(
            f"{what} needs {package}, which this Python ({sys.executable}) cannot import ({e}). "
            f'Install snaketune\'s "{extra}" extra: pip install "snaketune[{extra}]", or in a checkout pip install -e ".[{extra}]"'
        ) from e


def study_records(layout: Layout) -> list[dict[str, Any]]:
    """One record per trial of every search result the study folder holds now, in completion
    order: a study that is still running, or was stopped, exports its finished trials."""
    return records_in_completion_order(layout.search_result_files())


def finite_metrics(values: Mapping[str, Any], where: str) -> dict[str, float]:
    """The finite numbers of ``values`` (a metrics mapping a trainer wrote), as floats. Text,
    booleans and lists are not metrics and are passed over; a non-finite number is left out with a
    warning naming ``where`` (the file) and the key."""
    out: dict[str, float] = {}
    for key, v in values.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            continue
        try:
            x = float(v)
        except OverflowError:  # an integer beyond any float
            x = math.inf
        if not math.isfinite(x):
            shown = repr(v) if len(repr(v)) <= 40 else f"{repr(v)[:20]}... ({len(repr(v))} digits)"
            warnings.warn(f"{where}: {key} = {shown} is not a finite number; left out of the export", stacklevel=2)
            continue
        out[str(key)] = x
    return out


def history_curves(path: str | Path) -> dict[str, Curve]:
    """Every numeric column of a ``history.csv`` (but ``epoch``) as a curve over whole epochs.
    Cells that are empty, not numbers or not finite are left out, with one warning per column
    naming the file; so is a row whose epoch is not a whole number (from 0 to MAX_EPOCH - 1). An
    unreadable file gives no curves (read_history warns)."""
    columns = read_history(path)
    epochs = columns.pop("epoch", [])
    steps = [int(e) if 0 <= e < MAX_EPOCH and e == int(e) else None for e in epochs]  # NaN fails 0 <= e
    if None in steps:
        warnings.warn(
            f"{path}: {steps.count(None)} row(s) without a whole epoch number from 0 to {MAX_EPOCH - 1}; left out of the export",
            stacklevel=2,
        )
    curves: dict[str, Curve] = {}
    for name, values in columns.items():
        curve = {s: v for s, v in zip(steps, values) if s is not None and math.isfinite(v)}
        skipped = sum(s is not None for s in steps) - len(curve)
        if not curve:
            warnings.warn(f"{path}: column {name!r} has no finite numbers; left out of the export", stacklevel=2)
            continue
        if skipped:
            warnings.warn(f"{path}: column {name!r} has {skipped} value(s) that are not finite numbers; left out", stacklevel=2)
        curves[name] = curve
    return curves


@dataclass(frozen=True)
class FoldView:
    """One fold of a cross-validated trial: its run's name under ``trials/``, record and curves."""

    fold: int
    run: str
    record: Mapping[str, Any] | None  # None when the fold has no result yet
    curves: dict[str, Curve]

    @property
    def ok(self) -> bool:
        return self.record is not None and is_ok(self.record)


@dataclass(frozen=True)
class TrialView:
    """One trial as the exports show it: the record (``trials.json``'s, or combined from the result
    files), its result metrics, its curves (with cross-validation the mean over the folds, for the
    epochs every fold reached) and its folds."""

    record: Mapping[str, Any]
    metrics: dict[str, float]
    curves: dict[str, Curve]
    folds: list[FoldView] = field(default_factory=list)

    @property
    def trial(self) -> str:
        return str(self.record["trial"])

    @property
    def ok(self) -> bool:
        return is_ok(self.record)

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.record.get("params") or {})

    @property
    def reason(self) -> str | None:
        return self.record.get("reason") or self.record.get("error") or None

    @property
    def finished(self) -> float | None:
        """When the trial finished (seconds since the epoch), if known."""
        t = self.record.get("finished")
        return float(t) if isinstance(t, (int, float)) and not isinstance(t, bool) and t > 0 else None

    @property
    def seconds(self) -> float:
        s = self.record.get("seconds")
        return float(s) if isinstance(s, (int, float)) and not isinstance(s, bool) and math.isfinite(s) else 0.0


def result_metrics(record: Mapping[str, Any], where: str) -> dict[str, float]:
    """A record's result as metrics: ``objective`` (with cross-validation the mean over the folds,
    and ``objective_std``), then the finite numbers of its metrics.json; nothing for a failed trial."""
    if not is_ok(record):
        return {}
    out = {"objective": float(record["objective"])}
    std = record.get("objective_std")
    if isinstance(std, (int, float)) and not isinstance(std, bool) and math.isfinite(std):
        out["objective_std"] = float(std)
    return {**out, **finite_metrics(record.get("metrics") or {}, where)}


def trial_view(layout: Layout, record: Mapping[str, Any]) -> TrialView:
    """A trial's record, result and curves as they are on disk now."""
    trial = str(record["trial"])
    folds = int(record.get("folds") or 1)
    metrics = result_metrics(record, f"{layout.run_dir(trial)} (metrics.json)")
    if folds <= 1:
        files = layout.trial_history_files(record)
        return TrialView(record, metrics, history_curves(files[0]) if files else {})
    views = []
    for k in range(folds):
        run = run_name(trial, fold=k)
        result = Path(layout.result(run))
        history = Path(layout.run_file(run, HISTORY))
        fold_record = read_json(result) if result.is_file() else None
        if fold_record is None and not history.is_file():
            continue  # not run yet
        views.append(FoldView(k, run, fold_record, history_curves(history) if history.is_file() else {}))
    files = layout.trial_history_files(record)
    names = sorted(set().union(*(v.curves for v in views))) if views else []
    mean = {name: epoch_values(files, name) for name in names} if len(files) == folds else {}
    mean = {name: {e: v for e, v in curve.items() if 0 <= e < MAX_EPOCH} for name, curve in mean.items()}
    return TrialView(record, metrics, {name: curve for name, curve in mean.items() if curve}, views)


def trial_views(layout: Layout, records: Sequence[Mapping[str, Any]]) -> list[TrialView]:
    return [trial_view(layout, r) for r in records if r.get("trial")]


def param_text(value: Any) -> str:
    """A parameter's value as text, as params.yaml holds it (lists and mappings as JSON)."""
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple, dict)) or value is None:
        return json.dumps(value)
    return str(value)


def export_command(
    argv: Sequence[str] | None,
    *,
    prog: str,
    description: str,
    options: Mapping[str, Mapping[str, Any]],
    export: Callable[..., Any],
    summary: Callable[[Any], str],
) -> int:
    """An export's command line, ``prog results/<study> [options]``: ``options`` are the flags
    besides the study's folder (flag: ``add_argument``'s keywords), each passed on by its name as
    ``export(layout, **options)``; then ``summary(what export returned)`` is printed. A folder that
    is not a study's, or an error the export explains (ExportError, MissingExtra), ends the command
    with a message instead of a traceback."""
    ap = argparse.ArgumentParser(prog=prog, description=description)
    ap.add_argument("results", help="the study's folder, results/<study>")
    for flag, settings in options.items():
        ap.add_argument(flag, **settings)
    args = vars(ap.parse_args(argv))
    results = args.pop("results")
    layout = Layout.at(results)
    if not Path(layout.trials_dir).is_dir():
        sys.exit(f"snaketune: {results} is not a study folder (it has no trials/ folder); pass results/<study>")
    try:
        done = export(layout, **args)
    except (ExportError, MissingExtra) as e:
        sys.exit(f"snaketune: {e}")
    print(summary(done))
    return 0
