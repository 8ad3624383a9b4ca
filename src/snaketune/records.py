"""Trial records: reading results, ranking them, the budget to rank at, and final-stage metric names.

A *record* is what a run writes to its ``result.json`` (``trial``, ``status``, ``objective``,
``params``, ``metrics``, and where the trial sits: ``fold``/``folds``, ``round``, ``bracket``,
``rung``, ``budget``); :func:`load_records` turns the runs of a study into one record per trial.
The ranking functions take these records or the rows of ``trials.tsv`` (the same fields, flat
and as text), so the table, ``best.yaml``, rung promotion, the report and the Optuna export all
order trials by one rule (see :func:`rank_key`). With ``select.top_k`` the top trials are run
again with extra seeds; :func:`combine_seeds` gives a trial its mean over them, and
:func:`select_best` chooses by that mean, with the same rule. Nothing here imports pandas or
Optuna: the ``collect`` job reads 10,000 trial folders with it.
"""

from __future__ import annotations

import math
import os
import statistics
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from snaketune.files import read_json

# -- naming ------------------------------------------------------------------------------------------


TEST_PREFIX = "test_"


def test_metric(metric: str) -> str:
    """The name under which the final stage reports ``metric``, measured on the test set: the one rule
    of the trainer contract (README, config/README.md). ``val_<name>`` becomes ``test_<name>``; any
    other metric ``<name>`` becomes ``test_<name>``.

    >>> test_metric("val_accuracy"), test_metric("val_f1"), test_metric("score"), test_metric("loss")
    ('test_accuracy', 'test_f1', 'test_score', 'test_loss')
    """
    return TEST_PREFIX + metric.removeprefix("val_")


test_metric.__test__ = False  # a function named test_*, not a test: pytest must not collect it


def is_test_metric(name: str) -> bool:
    """A metric the final stage measured on the test set (a name :func:`test_metric` gives)."""
    return name.startswith(TEST_PREFIX)


def tiebreak_metric(metric: str) -> str | None:
    """The metric that tells equal objectives apart: for an accuracy-like ``X_accuracy`` the loss
    on the same split, ``X_loss`` (lower is better); None for any other objective."""
    if metric.endswith("_accuracy"):
        return metric.removesuffix("accuracy") + "loss"
    return None


# -- ranking -----------------------------------------------------------------------------------------


class NoSuccessfulTrial(RuntimeError):
    """Every trial failed; the message lists why."""


def _number(v: Any) -> float | None:
    """A finite number from a record's value or a table's text, else None."""
    if v is None or v == "" or isinstance(v, bool):
        return None
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def _field(record: Mapping[str, Any], name: str) -> Any:
    """``name`` of a record (its ``metrics``) or of a table row (a column)."""
    metrics = record.get("metrics")
    if isinstance(metrics, Mapping) and name in metrics:
        return metrics[name]
    return record.get(name)


def is_ok(record: Mapping[str, Any]) -> bool:
    """The trial succeeded: status ``ok`` and a finite objective."""
    return record.get("status") == "ok" and _number(record.get("objective")) is not None


def rank_key(metric: str, direction: str) -> Callable[[int, Mapping[str, Any]], tuple]:
    """The sort key of (position, record), best first. The one ranking rule of snaketune:

    1. successful trials before failed ones (failed ones keep their order);
    2. with a multi-fidelity schedule, a score at a larger ``budget`` outranks any score at a
       smaller one (a trial stopped early is not comparable with one trained to the end);
    3. the objective, in ``direction`` (``maximize`` or ``minimize``);
    4. robustness: for an accuracy-like objective ``X_accuracy``, the lower ``X_loss`` (equal
       accuracies are common on small validation sets; the loss says which one is more sure);
       a missing loss ranks after a present one;
    5. the record's position in the input (earlier first).
    """
    if direction not in ("maximize", "minimize"):
        raise ValueError(f"direction must be 'maximize' or 'minimize', but got {direction!r}")
    tiebreak = tiebreak_metric(metric)
    sign = -1.0 if direction == "maximize" else 1.0

    def key(position: int, record: Mapping[str, Any]) -> tuple:
        if not is_ok(record):
            return (1, 0.0, 0.0, 0.0, position)
        budget = _number(record.get("budget")) or 0.0
        loss = _number(_field(record, tiebreak)) if tiebreak else None
        return (0, -budget, sign * float(record["objective"]), math.inf if loss is None else loss, position)

    return key


def ranked(
    records: Iterable[Mapping[str, Any]], metric: str, direction: str, *, ok_only: bool = False
) -> list[Mapping[str, Any]]:
    """``records`` best first by :func:`rank_key` (failed last, or left out with ``ok_only``)."""
    key = rank_key(metric, direction)
    order = sorted(enumerate(records), key=lambda item: key(*item))
    return [r for _, r in order if not ok_only or is_ok(r)]


def best_record(records: Iterable[Mapping[str, Any]], metric: str, direction: str) -> Mapping[str, Any] | None:
    """The best successful record (the first row of trials.tsv), or None when no trial succeeded."""
    key = rank_key(metric, direction)
    best = min(enumerate(records), key=lambda item: key(*item), default=None)
    return best[1] if best is not None and is_ok(best[1]) else None


def select_best(
    rows: Sequence[Mapping[str, Any]], metric: str, direction: str, *, reevaluated: Sequence[str] | None = None
) -> Mapping[str, Any]:
    """The best successful row or record; raise NoSuccessfulTrial listing the reasons when there is none.

    ``reevaluated`` (select.top_k): the trials run again with extra seeds, in their search ranking;
    only they can win, ranked by their mean over the seeds (:func:`by_seed_mean`) with the same rule.
    """
    if reevaluated is not None:
        by_trial = {r.get("trial"): r for r in rows}
        candidates = [by_seed_mean(by_trial[t]) for t in reevaluated if t in by_trial]
        best = best_record(candidates, metric, direction)
        if best is None:
            _no_success(candidates, "re-evaluated trials have no mean (a seed failed)")
        return by_trial[best["trial"]]
    best = best_record(rows, metric, direction)
    if best is None:
        _no_success(rows, "trials failed")
    return best


def _no_success(rows: Sequence[Mapping[str, Any]], what: str) -> None:
    reasons = "\n".join(f"  {r.get('trial')}: {r.get('error') or r.get('reason') or 'no objective'}" for r in rows[:50])
    more = f"\n  ... and {len(rows) - 50} more" if len(rows) > 50 else ""
    raise NoSuccessfulTrial(
        f"all {len(rows)} {what}, so there is no best configuration. Reasons:\n{reasons}{more}\n"
        "Fix the trainer or the search space; the trials' logs are in the table's `log` column."
    )


def by_seed_mean(record: Mapping[str, Any]) -> dict[str, Any]:
    """A re-evaluated trial (:func:`combine_seeds`) as the ranking sees it when choosing by the mean:
    the mean over its seeds as the objective, its metrics' means (the tie-break loss) as its metrics;
    failed when a seed failed. Every such view has the seeds' budget, so ``budget`` is left out."""
    mean = record.get("objective_mean")
    return {
        **record,
        "status": "ok" if mean is not None else "failed",
        "objective": mean,
        "metrics": record.get("seed_metrics") or {},
        "reason": record.get("seed_error"),
        "budget": None,
    }


def best_document(
    records: Sequence[Mapping[str, Any]],
    metric: str,
    direction: str,
    *,
    study: str,
    reevaluated: Sequence[str] | None = None,
) -> dict[str, Any]:
    """What ``select/winner.yaml`` (the first part of ``best.yaml``) holds: the chosen trial (:func:`select_best`), its parameters, score and best
    epoch (the final retrain trains that many epochs). With ``reevaluated`` (select.top_k) the score
    is the mean over the seeds, the best epoch the rounded mean of the seeds' best epochs, and the
    document lists the seeds' values and every re-evaluated trial's mean, best first."""
    best = select_best(records, metric, direction, reevaluated=reevaluated)
    metrics = best["metrics"]
    doc: dict[str, Any] = {
        "study": study,
        "trial": best["trial"],
        "metric": metric,
        "direction": direction,
        "value": best["objective"],
        "best_epoch": metrics.get("best_epoch"),
        "params": best["params"],
        "metrics": metrics,
        "n_trials": len(records),
        "n_ok": sum(r["status"] == "ok" for r in records),
    }
    if reevaluated is None:
        return doc
    by_trial = {r["trial"]: r for r in records}
    views = ranked([by_seed_mean(by_trial[t]) for t in reevaluated if t in by_trial], metric, direction)
    doc.update(
        chosen_by=f"the best mean {metric} over {best['seeds']} seeds among the top {len(reevaluated)} trials",
        value=best["objective_mean"],
        best_epoch=best["seed_metrics"].get("best_epoch", doc["best_epoch"]),
        search_value=best["objective"],
        objective_mean=best["objective_mean"],
        objective_std=best["objective_std"],
        seeds=best["seeds"],
        seed_objectives=best["seed_objectives"],
        seed_best_epochs=best["seed_best_epochs"],
        reevaluated=[
            {k: v.get(k) for k in ("trial", "objective_mean", "objective_std", "seeds", "seed_error") if v.get(k) is not None}
            for v in views
        ],
    )
    return doc


def rank_budget(records: Iterable[Mapping[str, Any]], min_count: int = 1) -> Any:
    """The budget whose scores are compared (a model fitted, importances measured) under a
    multi-fidelity schedule: as in BOHB, the largest budget with at least ``min_count`` successful
    records, else the budget with the most (the larger of equals). None without budgets.

    Scores of different budgets are never mixed: a trial stopped after 3 epochs is not a worse
    configuration than one trained for 27, only a less trained one.
    """
    ok_at: dict[float, int] = {}
    value_of: dict[float, Any] = {}  # the budget as the records hold it (int in records, text in rows)
    for r in records:
        b = _number(r.get("budget"))
        if b is None:
            continue
        value_of.setdefault(b, r["budget"])
        ok_at[b] = ok_at.get(b, 0) + is_ok(r)
    if not ok_at:
        return None
    enough = [b for b, n in ok_at.items() if n >= min_count]
    chosen = max(enough) if enough else max(ok_at, key=lambda b: (ok_at[b], b))
    return value_of[chosen]


# -- reading -----------------------------------------------------------------------------------------


def iter_results(files: Sequence[str | os.PathLike]) -> Iterator[tuple[Path, dict[str, Any]]]:
    """(path, record) of every run's result; a pack's record (search.trials_per_job) stands for
    its trials' own result files."""
    for f in files:
        r = read_json(f)
        if "pack" in r:
            for t in r["trials"]:
                yield Path(t["result"]), read_json(t["result"])
        else:
            yield Path(f), r


def load_records(result_files: Sequence[str | os.PathLike]) -> list[dict[str, Any]]:
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


def _mean_metrics(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The metrics of several runs of one configuration (folds, seeds): a value the same in every run
    (n_parameters, device) as it is, a numeric one as its mean; ``best_epoch`` rounded, at least 1
    (the final retrain's epochs)."""
    metrics: dict[str, Any] = {}
    for key in records[0].get("metrics", {}):
        values = [r["metrics"].get(key) for r in records]
        if all(v == values[0] for v in values):
            metrics[key] = values[0]
        elif all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            metrics[key] = statistics.fmean(values)
    if "best_epoch" in metrics:
        metrics["best_epoch"] = max(1, round(metrics["best_epoch"]))
    return metrics


def combine_folds(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """A cross-validated trial: the mean (and standard deviation) of its folds' objectives and
    metrics; failed if any fold failed, with that fold's reason."""
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
    metrics = _mean_metrics(records)
    metrics["fold_objectives"] = objectives
    out.update(
        status="ok",
        objective=statistics.fmean(objectives),
        objective_std=statistics.pstdev(objectives),
        reason=None,
        metrics=metrics,
    )
    return out


def combine_seeds(record: Mapping[str, Any], seed_runs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """A trial re-evaluated with extra seeds (select.top_k): ``record`` (its search run) with

    * ``objective_mean``, ``objective_std`` (population): over the search run and ``seed_runs``
      (its re-runs, each with ``extra_seed`` 1, 2, ...); under a schedule the search run counts only
      if it reached the re-runs' budget (scores of different budgets are never mixed);
    * ``seeds``: how many runs the mean is over; ``seed_objectives``, ``seed_best_epochs``: per run,
      the search run first; ``seed_metrics``: every metric's mean (``best_epoch`` rounded);
    * or, when a run failed, ``objective_mean`` None and ``seed_error`` saying which and why.

    >>> r = combine_seeds({"trial": "a", "status": "ok", "objective": 1.0, "metrics": {"best_epoch": 4}},
    ...                   [{"trial": "a", "status": "ok", "objective": 0.5, "extra_seed": 1, "metrics": {"best_epoch": 8}}])
    >>> r["objective_mean"], r["objective_std"], r["seeds"], r["seed_metrics"]["best_epoch"]
    (0.75, 0.25, 2, 6)
    """
    runs = sorted(seed_runs, key=lambda r: r.get("extra_seed", 0))
    budget = _number(runs[0].get("budget")) if runs else None
    counted = ([record] if _number(record.get("budget")) == budget else []) + runs
    out = dict(record)
    out["seeds"] = len(counted)
    failed = [r for r in counted if not is_ok(r)]
    if failed or not counted:
        f = failed[0] if failed else {"reason": "no run to average"}
        out.update(
            objective_mean=None,
            objective_std=None,
            seed_error=f"seed {f.get('extra_seed', 0)}: {f.get('reason') or 'no objective'}",
        )
        return out
    objectives = [float(r["objective"]) for r in counted]
    out.update(
        objective_mean=statistics.fmean(objectives),
        objective_std=statistics.pstdev(objectives),
        seed_objectives=objectives,
        seed_best_epochs=[(r.get("metrics") or {}).get("best_epoch") for r in counted],
        seed_metrics=_mean_metrics(counted),
    )
    return out


def with_seeds(records: Iterable[Mapping[str, Any]], seed_runs: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """``records`` (one per trial), the re-evaluated ones combined with their ``seed_runs``
    (:func:`combine_seeds`); empty re-evaluation slots (``skipped``) are left out. With
    cross-validation each extra seed's folds are first combined (:func:`combine_folds`), as the
    search run's are."""
    runs: dict[tuple[str, Any], list[Mapping[str, Any]]] = {}
    for r in seed_runs:
        if r.get("status") != "skipped" and r.get("trial"):
            runs.setdefault((r["trial"], r.get("extra_seed")), []).append(r)
    by_trial: dict[str, list[Mapping[str, Any]]] = {}
    for (trial, seed), group in runs.items():
        one = group[0]
        if one.get("folds", 1) > 1:
            one = {**combine_folds(group), "extra_seed": seed, "budget": one.get("budget")}
        by_trial.setdefault(trial, []).append(one)
    return [combine_seeds(r, by_trial[r["trial"]]) if r["trial"] in by_trial else dict(r) for r in records]


def records_in_completion_order(result_files: Sequence[str | os.PathLike]) -> list[dict[str, Any]]:
    """One record per trial (as :func:`load_records`), ordered by when the trial finished.

    A trial finished when its last result file was written (its last fold, or its highest rung);
    the time is kept as ``finished`` (seconds since the epoch). Bayesian rounds stay in order.
    """
    results = list(iter_results(result_files))  # each file read once, packs expanded
    return in_completion_order(results, combine_records(r for _, r in results))


def in_completion_order(
    results: Sequence[tuple[str | os.PathLike, Mapping[str, Any]]], records: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """``records`` (combined from ``results``, the (path, record) pairs of :func:`iter_results`),
    each with its ``finished`` time, in completion order."""
    finished: dict[str, float] = {}
    for path, record in results:
        trial = record.get("trial")
        if trial:
            finished[trial] = max(finished.get(trial, 0.0), os.stat(path).st_mtime)
    out = [{**r, "finished": finished.get(r["trial"], 0.0)} for r in records]
    # Bayesian round r is proposed after every trial of earlier rounds finished: keep that order
    # even on a file system with coarse time stamps.
    return sorted(out, key=lambda r: (r.get("round") or 0, r["finished"]))
