"""The trials table and the choice of the best trial.

``collect`` turns the trials' ``result.json`` files into ``trials.tsv`` (best first, failed
last); ``select_best`` picks the winner from that table. Neither imports pandas: collecting
10,000 trial folders must stay fast.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from snaketune.files import atomic_write_text, read_json

FIRST_COLUMNS = ["trial", "status", "objective"]
# Where a trial sits in the search (bayes rounds, ...), present only when the search has them.
STRUCTURE_COLUMNS = ["objective_std", "folds", "round", "bracket", "rung", "budget"]
LAST_COLUMNS = ["seconds", "error", "log"]
# Metrics a trainer reports that are about the run rather than the score.
RUN_COLUMNS = ["best_epoch", "epochs_run", "train_seconds", "n_parameters", "device"]
# Accounting of one attempt (a resumed trial trains fewer epochs in its last attempt): kept in the
# trial's metrics.json, left out of the table, which must not depend on interruptions.
PER_ATTEMPT = {"epochs_this_run"}


class NoSuccessfulTrial(RuntimeError):
    """Every trial failed; the message lists why."""


def _fmt(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, (list, dict)):
        import json

        return json.dumps(v)
    return str(v).replace("\t", " ").replace("\n", " ")


def sort_key(direction: str, tiebreak: str | None):
    """Order rows best first: ok before failed, the highest budget reached (schedules), the objective,
    the tie-break metric, then position."""

    def key(item):
        pos, row = item
        if row.get("status") != "ok" or row.get("objective") in (None, ""):
            return (1, 0.0, 0.0, 0.0, pos)
        obj = float(row["objective"])
        tb = row.get(tiebreak) if tiebreak else None
        tb = float(tb) if tb not in (None, "") else math.inf
        # Multi-fidelity: a score at a larger budget outranks any score at a smaller one.
        budget = float(row["budget"]) if row.get("budget") not in (None, "") else 0.0
        return (0, -budget, -obj if direction == "maximize" else obj, tb, pos)

    return key


def tiebreak_metric(metric: str) -> str | None:
    """Equal accuracies are told apart by the loss on the same split."""
    if metric.endswith("_accuracy"):
        return metric[: -len("accuracy")] + "loss"
    return None


def iter_results(files: Sequence[str | Path]):
    """(path, record) of every run's result; a pack's record (search.trials_per_job) stands for
    its trials' own result files."""
    for f in files:
        r = read_json(f)
        if "pack" in r:
            for t in r["trials"]:
                yield Path(t["result"]), read_json(t["result"])
        else:
            yield Path(f), r


def load_records(result_files: Sequence[str | Path]) -> list[dict[str, Any]]:
    """One record per trial: its result.json; with a schedule the record of the highest rung it
    reached (empty slots skipped); with cross-validation its folds combined (see combine_folds).
    Trials keep the order in which they first appear."""
    return combine_records(r for _, r in iter_results(result_files))


def combine_records(results: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """load_records on records already read."""
    by_trial: dict[str, dict[str, Any]] = {}
    folds: dict[str, list[dict[str, Any]]] = {}
    for r in results:
        if r.get("status") == "skipped" or not r.get("trial"):
            continue
        if r.get("folds", 1) > 1:
            folds.setdefault(r["trial"], []).append(r)
            by_trial.setdefault(r["trial"], r)
            continue
        seen = by_trial.get(r["trial"])
        if seen is None or r.get("rung", 0) > seen.get("rung", 0):
            by_trial[r["trial"]] = r
    for trial, records in folds.items():
        by_trial[trial] = combine_folds(records)
    return list(by_trial.values())


def combine_folds(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """A cross-validated trial: the mean (and standard deviation) of its folds' objectives and
    metrics; failed if any fold failed, with that fold's reason."""
    import statistics

    records = sorted(records, key=lambda r: r.get("fold", 0))
    first = records[0]
    out: dict[str, Any] = {k: first.get(k) for k in ("trial", "params", "round", "stage", "folds", "log")}
    out["seconds"] = round(sum(r.get("seconds") or 0 for r in records), 3)
    failed = [r for r in records if r.get("status") != "ok"]
    if len(records) < first.get("folds", 1):
        failed = failed or [{"fold": "?", "reason": f"only {len(records)} of {first['folds']} folds have results"}]
    if failed:
        f = failed[0]
        out.update(status="failed", objective=None, reason=f"fold {f.get('fold')}: {f.get('reason')}", metrics={})
        return out
    objectives = [float(r["objective"]) for r in records]
    metrics: dict[str, Any] = {}
    for key in records[0].get("metrics", {}):
        values = [r["metrics"].get(key) for r in records]
        if all(v == values[0] for v in values):
            metrics[key] = values[0]  # the same in every fold (n_parameters, device)
        elif all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            metrics[key] = statistics.fmean(values)
    if "best_epoch" in metrics:
        metrics["best_epoch"] = max(1, round(metrics["best_epoch"]))  # the final retrain's epochs
    metrics["fold_objectives"] = objectives
    out.update(
        status="ok",
        objective=statistics.fmean(objectives),
        objective_std=statistics.pstdev(objectives),
        reason=None,
        metrics=metrics,
    )
    return out


def collect(result_files: Sequence[str | Path], param_names: Sequence[str], metric: str, direction: str) -> list[dict[str, Any]]:
    """Read every result record and return the table rows (one per trial), best first."""
    return table_rows(load_records(result_files), param_names, metric, direction)


def table_rows(
    records: Iterable[Mapping[str, Any]], param_names: Sequence[str], metric: str, direction: str
) -> list[dict[str, Any]]:
    """The table rows of records (one per trial, as load_records gives them), best first; equal
    objectives keep the records' order."""
    rows = []
    metric_names: list[str] = []
    for r in records:
        row: dict[str, Any] = {"trial": r["trial"], "status": r["status"], "objective": r.get("objective")}
        for k in STRUCTURE_COLUMNS:
            if r.get(k) is not None and not (k == "folds" and r[k] == 1):
                row[k] = r[k]
        for p in param_names:
            row[p] = r.get("params", {}).get(p)
        for k, v in (r.get("metrics") or {}).items():
            if k not in row and k not in PER_ATTEMPT and not isinstance(v, (dict, list)):
                row[k] = v
                if k not in metric_names:
                    metric_names.append(k)
        row["seconds"] = r.get("seconds")
        row["error"] = r.get("reason") or ""
        row["log"] = r.get("log") or ""
        rows.append(row)
    key = sort_key(direction, tiebreak_metric(metric))
    return [row for _, row in sorted(enumerate(rows), key=key)]


def columns_for(rows: Iterable[Mapping[str, Any]], param_names: Sequence[str]) -> list[str]:
    seen: list[str] = []
    for row in rows:
        for k in row:
            if k not in seen:
                seen.append(k)
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


def select_best(rows: Sequence[Mapping[str, Any]], metric: str, direction: str) -> Mapping[str, Any]:
    """The best successful row; raise NoSuccessfulTrial listing the reasons when there is none."""
    ok = [r for r in rows if r.get("status") == "ok" and r.get("objective") not in (None, "")]
    if not ok:
        reasons = "\n".join(f"  {r['trial']}: {r.get('error') or 'no objective'}" for r in rows[:50])
        more = f"\n  ... and {len(rows) - 50} more" if len(rows) > 50 else ""
        raise NoSuccessfulTrial(
            f"all {len(rows)} trials failed, so there is no best configuration. Reasons:\n{reasons}{more}\n"
            "Fix the trainer or the search space; the trials' logs are in the table's `log` column."
        )
    key = sort_key(direction, tiebreak_metric(metric))
    return min(enumerate(ok), key=key)[1]
