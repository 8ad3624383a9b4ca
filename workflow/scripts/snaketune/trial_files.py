"""Read a finished study back for people: trials in completion order and their learning curves.

Used by the `collect` step (which writes them as trials.json), the report's plots and the Optuna
export; nothing here is on a trial's hot path.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from snaketune.files import write_json
from snaketune.table import combine_records, iter_results, sort_key, table_rows, tiebreak_metric, write_table


def records_in_completion_order(result_files: Sequence[str | os.PathLike]) -> list[dict[str, Any]]:
    """One record per trial (as ``table.load_records``), ordered by when the trial finished.

    A trial finished when its last result file was written (its last fold, or its highest rung);
    the time is kept as ``finished`` (seconds since the epoch). Bayesian rounds stay in order.
    """
    results = list(iter_results(result_files))  # each file read once, packs expanded
    return in_completion_order(results, combine_records(r for _, r in results))


def collect_study(
    result_files: Sequence[str | os.PathLike],
    table: str | os.PathLike,
    records_file: str | os.PathLike,
    param_names: Sequence[str],
    metric: str,
    direction: str,
) -> list[dict[str, Any]]:
    """The `collect` step: read every result once and write the study's table (``trials.tsv``, best
    first, for people) and its records (``trials.json``, typed, in completion order, for the jobs
    after it). Returns the table's rows."""
    results = list(iter_results(result_files))  # each file read once, packs expanded
    records = combine_records(r for _, r in results)
    rows = table_rows(records, param_names, metric, direction)
    write_table(table, rows, param_names)
    write_json(records_file, in_completion_order(results, records))
    return rows


def in_completion_order(
    results: Sequence[tuple[os.PathLike, Mapping[str, Any]]], records: Sequence[dict[str, Any]]
) -> list[dict[str, Any]]:
    """``records`` (combined from ``results``, the (path, record) pairs of ``iter_results``),
    each with its ``finished`` time, in completion order."""
    finished: dict[str, float] = {}
    for path, record in results:
        trial = record.get("trial")
        if trial:
            finished[trial] = max(finished.get(trial, 0.0), os.stat(path).st_mtime)
    records = [{**r, "finished": finished.get(r["trial"], 0.0)} for r in records]
    # Bayesian round r is proposed after every trial of earlier rounds finished: keep that order
    # even on a file system with coarse time stamps.
    return sorted(records, key=lambda r: (r.get("round") or 0, r["finished"]))


def history_files(trials_dir: str | os.PathLike, record: Mapping[str, Any]) -> list[Path]:
    """Where a trial's ``history.csv`` lives: one per fold with cross-validation; with a schedule
    the highest rung's (it holds the whole curve, earlier rungs included). Missing files are left out
    (custom trainers need not write one)."""
    base = Path(trials_dir) / str(record["trial"])
    folds = int(record.get("folds") or 1)
    if folds > 1:
        paths = [base / f"fold-{f}" / "history.csv" for f in range(folds)]
    elif record.get("rung") is not None:
        paths = [base / f"rung-{record['rung']}" / "history.csv"]
    else:
        paths = [base / "history.csv"]
    return [p for p in paths if p.is_file()]


def read_history(path: str | os.PathLike) -> dict[str, list[float]]:
    """A ``history.csv`` as columns of numbers (non-numeric cells become NaN), sorted by epoch."""
    with open(path, encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        return {}

    def number(v: str | None) -> float:
        try:
            return float(v) if v not in (None, "") else math.nan
        except ValueError:
            return math.nan

    columns = {c: [number(r.get(c)) for r in rows] for c in rows[0] if c}
    if "epoch" not in columns:
        columns["epoch"] = [float(i + 1) for i in range(len(rows))]
    order = sorted(range(len(rows)), key=lambda i: columns["epoch"][i])
    return {c: [values[i] for i in order] for c, values in columns.items()}


def epoch_values(files: Sequence[str | os.PathLike], metric: str) -> dict[int, float]:
    """``metric`` per epoch from one or more ``history.csv`` files (folds: the mean over the folds,
    for the epochs every fold reached). Empty when no file has the column."""
    per_file = []
    for f in files:
        h = read_history(f)
        if metric not in h:
            return {}
        per_file.append({int(e): v for e, v in zip(h["epoch"], h[metric]) if math.isfinite(e) and math.isfinite(v)})
    if not per_file:
        return {}
    common = set.intersection(*(set(d) for d in per_file))
    return {e: sum(d[e] for d in per_file) / len(per_file) for e in sorted(common)}


def ranked(records: Sequence[Mapping[str, Any]], metric: str, direction: str) -> list[Mapping[str, Any]]:
    """Successful records best first, as trials.tsv orders them."""
    key = sort_key(direction, tiebreak_metric(metric))
    ok = [r for r in records if r.get("status") == "ok" and r.get("objective") is not None]
    rows = [{"status": "ok", "objective": r["objective"], "budget": r.get("budget"), **(r.get("metrics") or {})} for r in ok]
    order = sorted(range(len(ok)), key=lambda i: key((i, rows[i])))
    return [ok[i] for i in order]


def best_record(records: Sequence[Mapping[str, Any]], metric: str, direction: str) -> Mapping[str, Any] | None:
    """The record of trials.tsv's first row (the highest budget first, then the objective, then the
    tie-break metric), or None when no trial succeeded."""
    best = ranked(records, metric, direction)[:1]
    return best[0] if best else None
