"""The study's files beyond one result: the `collect` step, and the trials' learning curves.

``collect_study`` writes ``trials.tsv`` and ``trials.json``; ``read_history`` and ``epoch_values``
read ``history.csv`` for the report's plots and the Optuna export. Reading and
ranking results is :mod:`snaketune.records`'s job; nothing here is on a trial's hot path.
"""

from __future__ import annotations

import csv
import math
import os
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

from snaketune.files import write_json
from snaketune.records import (
    Objective,
    as_objective,
    combine_records,
    in_completion_order,
    iter_results,
    pareto_front,
    with_seeds,
)

# `best_record as best_record`: re-exported from its old home here until callers import it from records.
from snaketune.records import best_record as best_record
from snaketune.table import table_rows, write_table


def collect_study(
    result_files: Sequence[str | os.PathLike],
    table: str | os.PathLike,
    records_file: str | os.PathLike,
    param_names: Sequence[str],
    objective: Objective | Mapping[str, Any] | str,
    direction: str | None = None,
    seed_files: Sequence[str | os.PathLike] = (),
    front: str | os.PathLike | None = None,
) -> list[dict[str, Any]]:
    """The `collect` step: read every result once and write the study's table (``trials.tsv``, best
    first, for people) and its records (``trials.json``, typed, in completion order, for the jobs
    after it). ``seed_files``: the re-evaluations of the top trials (select.top_k), which add their
    mean over the seeds to those trials. ``front``: with several objectives, where to write the
    Pareto front (``pareto.tsv``: the table's rows of rank 0 at the ranked budget, within the
    limits). Returns the table's rows."""
    results = list(iter_results(result_files))  # each file read once, packs expanded
    records = with_seeds(combine_records(r for _, r in results), (r for _, r in iter_results(seed_files)))
    objective = as_objective(objective, direction)
    rows = table_rows(records, param_names, objective)
    write_table(table, rows, param_names)
    if front is not None:
        write_table(front, pareto_front(rows, objective), param_names)
    write_json(records_file, in_completion_order(results, records))
    return rows


# A history.csv is the trainer's file, read by the report and the Optuna export: one that cannot be
# read, or is larger than any learning curve needs, is left out with a warning, never a crash.
HISTORY_MAX_BYTES = 64_000_000


def read_history(path: str | os.PathLike) -> dict[str, list[float]]:
    """A ``history.csv`` as columns of numbers (non-numeric cells become NaN), sorted by epoch; empty,
    with a warning, when the file cannot be read as CSV text or is over HISTORY_MAX_BYTES."""
    try:
        if os.path.getsize(path) > HISTORY_MAX_BYTES:
            raise ValueError(f"larger than {HISTORY_MAX_BYTES:,} bytes")
        with open(path, encoding="utf-8", newline="") as fh:
            rows = list(csv.DictReader(fh))
    except (OSError, ValueError, csv.Error) as e:  # UnicodeDecodeError is a ValueError
        warnings.warn(f"{path}: not read as a training history ({e}); its learning curve is left out", stacklevel=2)
        return {}
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
