"""The trials table, ``trials.tsv``: its rows, its columns, writing and reading it.

``collect`` turns the trials' ``result.json`` files into the table's rows, best first by the
ranking of :mod:`snaketune.records` (failed last). No pandas: collecting 10,000 trial folders
must stay fast.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from snaketune.files import atomic_write_text
from snaketune.records import FAILED, INFEASIBLE, Objective, as_objective, load_records, standings

# `X as X`: names re-exported from their old home here (NoSuccessfulTrial, combine_folds,
# iter_results, select_best) until the workflow scripts and tests import them from snaketune.records.
from snaketune.records import NoSuccessfulTrial as NoSuccessfulTrial
from snaketune.records import combine_folds as combine_folds
from snaketune.records import iter_results as iter_results
from snaketune.records import select_best as select_best

FIRST_COLUMNS = ["trial", "status", "objective"]
# Where a trial sits in the search (bayes rounds, ...), present only when the search has them.
# objective_std: over the folds (cv.folds > 1), or with objective_mean and `seeds` (how many runs)
# over a re-evaluated trial's seeds (select.top_k; the config never allows both in one study).
# pareto_rank: with several objectives (objective.also), 0 = on the Pareto front (snaketune.records).
STRUCTURE_COLUMNS = ["pareto_rank", "objective_mean", "objective_std", "seeds", "folds", "round", "bracket", "rung", "budget"]
LAST_COLUMNS = ["seconds", "error", "log"]
# Metrics a trainer reports that are about the run rather than the score.
RUN_COLUMNS = ["best_epoch", "epochs_run", "train_seconds", "n_parameters", "device"]
# Accounting of one attempt (a resumed trial trains fewer epochs in its last attempt): kept in the
# trial's metrics.json, left out of the table, which must not depend on interruptions.
PER_ATTEMPT = {"epochs_this_run"}
# The table's own columns: a metric of one of these names (a trainer's `budget`, `status`, ...) stays
# in the trial's records but never takes the column's place, where it would change the ranking.
OWN_COLUMNS = frozenset(FIRST_COLUMNS + STRUCTURE_COLUMNS + LAST_COLUMNS)


def _fmt(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, (list, dict)):
        import json

        return json.dumps(v)
    return str(v).replace("\t", " ").replace("\n", " ")


def collect(
    result_files: Sequence[str | Path],
    param_names: Sequence[str],
    objective: Objective | Mapping[str, Any] | str,
    direction: str | None = None,
) -> list[dict[str, Any]]:
    """Read every result record and return the table rows (one per trial), best first."""
    return table_rows(load_records(result_files), param_names, objective, direction)


def table_rows(
    records: Iterable[Mapping[str, Any]],
    param_names: Sequence[str],
    objective: Objective | Mapping[str, Any] | str,
    direction: str | None = None,
) -> list[dict[str, Any]]:
    """The table rows of records (one per trial, as load_records gives them), best first by
    ``records.standings``. A trial beyond a limit of objective.constraints has the status
    ``infeasible`` and the broken limit as its error; one whose metrics lack an objective or a
    limited metric is ``failed``; with several objectives ``pareto_rank`` is filled in."""
    objective = as_objective(objective, direction)
    rows = []
    for r in records:
        row: dict[str, Any] = {"trial": r["trial"], "status": r["status"], "objective": r.get("objective")}
        for k in STRUCTURE_COLUMNS:
            if r.get(k) is not None and not (k == "folds" and r[k] == 1):
                row[k] = r[k]
        for p in param_names:
            row[p] = r.get("params", {}).get(p)
        for k, v in (r.get("metrics") or {}).items():
            if k not in row and k not in OWN_COLUMNS and k not in PER_ATTEMPT and not isinstance(v, (dict, list)):
                row[k] = v
        row["seconds"] = r.get("seconds")
        row["error"] = r.get("reason") or (f"re-evaluation: {r['seed_error']}" if r.get("seed_error") else "")
        row["log"] = r.get("log") or ""
        rows.append(row)
    judged = standings(rows, objective)
    for row, (_, standing, pareto_rank) in zip(rows, judged):
        if standing.status in (FAILED, INFEASIBLE) and row["status"] == "ok":
            row["status"], row["error"] = standing.status, standing.reason or ""
        if objective.multi:
            row["pareto_rank"] = pareto_rank
    order = sorted(range(len(rows)), key=lambda i: judged[i][0])
    return [rows[i] for i in order]


def columns_for(rows: Iterable[Mapping[str, Any]], param_names: Sequence[str]) -> list[str]:
    """The table's columns in order; metrics in the order they first appear. Linear in the number of
    cells (a dict keeps first-seen order): a trial may report hundreds of metrics."""
    seen: dict[str, None] = {}
    for row in rows:
        seen.update(dict.fromkeys(row))
    structure = [k for k in STRUCTURE_COLUMNS if k in seen]
    fixed = set(FIRST_COLUMNS) | set(LAST_COLUMNS) | set(param_names) | set(structure)
    metrics = [k for k in seen if k not in fixed and k not in RUN_COLUMNS]
    run = [k for k in RUN_COLUMNS if k in seen]
    return FIRST_COLUMNS + structure + list(param_names) + metrics + run + LAST_COLUMNS


def write_table(path: str | Path, rows: Sequence[Mapping[str, Any]], param_names: Sequence[str]) -> None:
    cols = columns_for(rows, param_names)
    buf = io.StringIO()
    w = csv.writer(buf, delimiter="\t", lineterminator="\n")
    w.writerow(cols)
    for row in rows:
        w.writerow([_fmt(row.get(c)) for c in cols])
    atomic_write_text(path, buf.getvalue())


def read_table(path: str | Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))
