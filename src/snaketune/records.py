"""Trial records: reading results, ranking them, the budget to rank at, and final-stage metric names.

A *record* is what a run writes to its ``result.json`` (``trial``, ``status``, ``objective``,
``params``, ``metrics``, and where the trial sits: ``fold``/``folds``, ``round``, ``bracket``,
``rung``, ``budget``); :func:`load_records` turns the runs of a study into one record per trial.
The ranking functions take these records or the rows of ``trials.tsv`` (the same fields, flat
and as text), so the table, ``best.yaml``, rung promotion, the report and the Optuna export all
order trials by one rule (see :func:`standings`). What "best" means is an :class:`Objective`: one
metric, or several (a Pareto front), and hard limits (``objective.constraints``). With
``select.top_k`` the top trials are run again with extra seeds; :func:`combine_seeds` gives a
trial its mean over them, and :func:`select_best` chooses by that mean, with the same rule.
Nothing here imports pandas or Optuna at import time (Pareto ranks import snaketune.pareto, with
several objectives only): the ``collect`` job reads 10,000 trial folders with it.
"""

from __future__ import annotations

import math
import os
import statistics
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from snaketune.errors import suggest
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


# -- the objective -----------------------------------------------------------------------------------

DIRECTIONS = ("maximize", "minimize")
# Where a trial stands once the objective has judged it (the trials table's `status`): ok and within
# every limit; ok but beyond a limit of objective.constraints; or failed (the trainer failed, or its
# metrics lack an objective or a constrained metric).
FEASIBLE, INFEASIBLE, FAILED = "ok", "infeasible", "failed"


def _scale(bound: float) -> float:
    """What a limit's excess is measured in: the bound's size, or 1 for a bound of 0 (an absolute
    excess, rather than one divided by almost nothing that would outweigh every other limit)."""
    return abs(bound) if bound != 0 else 1.0


@dataclass(frozen=True)
class Limit:
    """A hard limit on a metric the trainer writes (``objective.constraints``): ``min <= value <= max``."""

    metric: str
    min: float | None = None
    max: float | None = None

    def __post_init__(self) -> None:
        if self.min is None and self.max is None:
            raise ValueError(f"the limit on {self.metric} needs `min`, `max` or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"the limit on {self.metric} can never hold: min {self.min:g} > max {self.max:g}")

    def excess(self, value: float) -> float:
        """How far ``value`` lies beyond the limit (0 within it), as a fraction of the bound's size,
        so that limits on metrics of different scales add up."""
        if self.max is not None and value > self.max:
            return (value - self.max) / _scale(self.max)
        if self.min is not None and value < self.min:
            return (self.min - value) / _scale(self.min)
        return 0.0

    def slack(self, value: float) -> float:
        """Optuna's constraint value: <= 0 within the limit, the distance beyond it otherwise."""
        return max(
            value - self.max if self.max is not None else -math.inf, self.min - value if self.min is not None else -math.inf
        )

    def broken(self, value: float) -> str:
        """What a value beyond the limit breaks: ``n_parameters = 61034 > max 50000``."""
        if self.max is not None and value > self.max:
            return f"{self.metric} = {value:g} > max {self.max:g}"
        return f"{self.metric} = {value:g} < min {self.min:g}"

    def __str__(self) -> str:
        if self.min is not None and self.max is not None:
            return f"{self.min:g} <= {self.metric} <= {self.max:g}"
        return f"{self.metric} <= {self.max:g}" if self.max is not None else f"{self.metric} >= {self.min:g}"


@dataclass(frozen=True)
class Standing:
    """How the objective judges one trial: its status (FEASIBLE, INFEASIBLE or FAILED), its objective
    values (``values``, None when failed), the limits' total excess and why it is not feasible."""

    status: str
    values: tuple[float, ...] | None = None
    excess: float = 0.0
    reason: str | None = None


@dataclass(frozen=True)
class Objective:
    """What "best" means: one metric and direction (the simple case), or several (a Pareto front),
    and hard limits on any metric (``objective.constraints``). The first metric is the trainer's
    objective (early stopping, the table's ``objective`` column, the final stage's test score);
    the others and the limits are read from the trial's metrics when trials are ranked, so adding
    one retrains nothing.

    >>> o = Objective.from_config({"metric": "val_accuracy", "direction": "maximize",
    ...                            "also": {"n_parameters": "minimize"}, "constraints": {"n_parameters": {"max": 500}}})
    >>> o.standing({"status": "ok", "objective": 0.9, "metrics": {"n_parameters": 700}}).reason
    'n_parameters = 700 > max 500'
    """

    metrics: tuple[str, ...]
    directions: tuple[str, ...]
    limits: tuple[Limit, ...] = ()

    def __post_init__(self) -> None:
        for d in self.directions:
            if d not in DIRECTIONS:
                raise ValueError(f"direction must be 'maximize' or 'minimize', but got {d!r}")
        if len(self.metrics) != len(self.directions) or not self.metrics:
            raise ValueError(f"every objective needs a direction: metrics {self.metrics}, directions {self.directions}")
        if len(set(self.metrics)) != len(self.metrics):
            raise ValueError(f"an objective is listed twice: {', '.join(self.metrics)}")

    @classmethod
    def single(cls, metric: str, direction: str) -> Objective:
        return cls((metric,), (direction,))

    @classmethod
    def from_config(cls, objective: Mapping[str, Any]) -> Objective:
        """From the config's ``objective`` mapping: ``metric``, ``direction``, optional ``also``
        (further metrics, each with its direction, in order) and ``constraints`` (metric: {min, max})."""
        also = dict(objective.get("also") or {})
        limits = tuple(Limit(m, b.get("min"), b.get("max")) for m, b in (objective.get("constraints") or {}).items())
        return cls((objective["metric"], *also), (objective["direction"], *also.values()), limits)

    def config(self) -> dict[str, Any]:
        """The config's ``objective`` mapping of this objective (:meth:`from_config` reads it back)."""
        out: dict[str, Any] = {"metric": self.metric, "direction": self.direction}
        if self.multi:
            out["also"] = dict(zip(self.metrics[1:], self.directions[1:]))
        if self.limits:
            out["constraints"] = {
                lim.metric: {k: v for k, v in (("min", lim.min), ("max", lim.max)) if v is not None} for lim in self.limits
            }
        return out

    @property
    def metric(self) -> str:
        return self.metrics[0]

    @property
    def direction(self) -> str:
        return self.directions[0]

    @property
    def multi(self) -> bool:
        """Several objectives: trials are ranked by Pareto rank, and there is a front."""
        return len(self.metrics) > 1

    @property
    def simple(self) -> bool:
        """One objective and no limits: ranking as it always was."""
        return not self.multi and not self.limits

    def standing(self, record: Mapping[str, Any]) -> Standing:
        """Judge a record or table row: failed (with its own reason, or the objective or limited metric
        its metrics lack), infeasible (beyond a limit: which one and by how much), else feasible."""
        # A table row already judged beyond a limit (status "infeasible") is judged again.
        judged_before = record.get("status") == INFEASIBLE and _number(record.get("objective")) is not None
        if not is_ok(record) and not judged_before:
            return Standing(FAILED, reason=record.get("reason") or record.get("error") or None)
        values = [float(record["objective"])]
        for m in self.metrics[1:]:
            v = _number(_field(record, m))
            if v is None:
                return Standing(FAILED, reason=f"metrics.json has no finite {m} (objective.also)")
            values.append(v)
        excess, broken = 0.0, []
        for lim in self.limits:
            v = _number(_field(record, lim.metric))
            if v is None:
                return Standing(FAILED, reason=f"metrics.json has no finite {lim.metric} (objective.constraints)")
            if lim.excess(v) > 0:
                excess += lim.excess(v)
                broken.append(lim.broken(v))
        if broken:
            return Standing(INFEASIBLE, tuple(values), excess, "; ".join(broken))
        return Standing(FEASIBLE, tuple(values))

    def losses(self, values: Sequence[float]) -> list[float]:
        """Objective values turned so that lower is better (maximised ones negated): Pareto maths' input."""
        return [-v if d == "maximize" else v for v, d in zip(values, self.directions)]

    def slacks(self, record: Mapping[str, Any]) -> dict[str, float]:
        """Optuna's constraint values of a successful record: per limit, <= 0 within it (a metric
        the record lacks: infinitely far beyond)."""
        out = {}
        for lim in self.limits:
            value = _number(_field(record, lim.metric))
            out[str(lim)] = math.inf if value is None else lim.slack(value)
        return out


def as_objective(objective: Objective | Mapping[str, Any] | str, direction: str | None = None) -> Objective:
    """An :class:`Objective` from an Objective, a config's ``objective`` mapping, or (one metric)
    a metric name and its direction: the ranking functions take any of the three."""
    if isinstance(objective, Objective):
        return objective
    if isinstance(objective, Mapping):
        return Objective.from_config(objective)
    if direction is None:
        raise TypeError(f"a metric name ({objective!r}) needs its direction")
    return Objective.single(objective, direction)


def rule_params(objective: Mapping[str, Any]) -> dict[str, Any]:
    """What a rule passes on besides ``metric`` and ``direction``: ``objectives`` (the whole objective)
    only when there are several objectives or limits. A single objective adds nothing, so the rules
    of a study made before objective.also and objective.constraints existed keep their params and
    Snakemake reruns none of their jobs."""
    o = Objective.from_config(objective)
    return {} if o.simple else {"objectives": o.config()}


def from_rule_params(params: Mapping[str, Any], metric: str | None = None) -> Objective:
    """The objective a job's params name (:func:`rule_params`, plus ``metric`` and ``direction``)."""
    full = params.get("objectives") if hasattr(params, "get") else None
    if full:
        return Objective.from_config(full)
    return Objective.single(metric or params.get("metric"), params.get("direction"))


# -- ranking -----------------------------------------------------------------------------------------


class NoSuccessfulTrial(RuntimeError):
    """Every trial failed (or broke a limit); the message lists why."""


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


_CLASS = {FEASIBLE: 0, INFEASIBLE: 1, FAILED: 2}


def standings(records: Sequence[Mapping[str, Any]], objective: Objective) -> list[tuple[tuple, Standing, int | None]]:
    """(sort key, standing, Pareto rank) of each record, in input order. The one ranking rule of
    snaketune, best first:

    1. feasible trials, then those beyond a limit of ``objective.constraints`` (the smaller their
       total excess, the better), then failed ones (in their order);
    2. with a multi-fidelity schedule, a score at a larger ``budget`` outranks any score at a
       smaller one (a trial stopped early is not comparable with one trained to the end);
    3. with several objectives, the Pareto rank among the feasible trials of the same budget
       (0 = the non-dominated front; :func:`snaketune.pareto.nondomination_ranks`);
    4. the (first) objective, in its direction;
    5. robustness: for an accuracy-like objective ``X_accuracy``, the lower ``X_loss`` (equal
       accuracies are common on small validation sets; the loss says which one is more sure);
       a missing loss ranks after a present one;
    6. the record's position in the input (earlier first).

    The Pareto rank is None for a trial off the ranking (infeasible, failed) and with one objective.
    """
    tiebreak = tiebreak_metric(objective.metric)
    sign = -1.0 if objective.direction == "maximize" else 1.0
    judged = [objective.standing(r) for r in records]
    pareto: list[int | None] = [None] * len(records)
    if objective.multi:
        by_budget: dict[float, list[int]] = {}
        for i, (r, s) in enumerate(zip(records, judged)):
            if s.status == FEASIBLE:
                by_budget.setdefault(_number(r.get("budget")) or 0.0, []).append(i)
        from snaketune.pareto import nondomination_ranks

        for group in by_budget.values():
            for i, rank in zip(group, nondomination_ranks([objective.losses(judged[i].values) for i in group])):
                pareto[i] = rank
    out = []
    for position, (r, s) in enumerate(zip(records, judged)):
        if s.status == FAILED:
            key: tuple = (2, 0.0, 0.0, 0, 0.0, 0.0, position)
        else:
            budget = _number(r.get("budget")) or 0.0
            loss = _number(_field(r, tiebreak)) if tiebreak else None
            key = (
                _CLASS[s.status],
                -budget,
                s.excess,
                pareto[position] or 0,
                sign * s.values[0],
                math.inf if loss is None else loss,
                position,
            )
        out.append((key, s, pareto[position]))
    return out


def ranked(
    records: Iterable[Mapping[str, Any]],
    objective: Objective | Mapping[str, Any] | str,
    direction: str | None = None,
    *,
    ok_only: bool = False,
) -> list[Mapping[str, Any]]:
    """``records`` best first by :func:`standings` (failed last, or left out with ``ok_only``;
    trials beyond a limit stay, after the feasible ones). ``objective``: an :class:`Objective`,
    a config's ``objective`` mapping, or a metric name with its ``direction``."""
    records = list(records)
    judged = standings(records, as_objective(objective, direction))
    order = sorted(range(len(records)), key=lambda i: judged[i][0])
    return [records[i] for i in order if not ok_only or judged[i][1].status != FAILED]


def best_record(
    records: Iterable[Mapping[str, Any]], objective: Objective | Mapping[str, Any] | str, direction: str | None = None
) -> Mapping[str, Any] | None:
    """The best feasible record (the first row of trials.tsv), or None when no trial succeeded
    within the limits."""
    records = list(records)
    judged = standings(records, as_objective(objective, direction))
    if not judged:
        return None
    i = min(range(len(records)), key=lambda i: judged[i][0])
    return records[i] if judged[i][1].status == FEASIBLE else None


def pareto_front(records: Iterable[Mapping[str, Any]], objective: Objective) -> list[Mapping[str, Any]]:
    """The feasible trials no other feasible trial of the ranked budget dominates, best first by
    the first objective (with one objective: the best trial)."""
    records = list(records)
    judged = standings(records, objective)
    order = sorted(range(len(records)), key=lambda i: judged[i][0])
    if not order or judged[order[0]][1].status != FEASIBLE:
        return []
    top_budget = judged[order[0]][0][1]
    return [
        records[i]
        for i in order
        if judged[i][1].status == FEASIBLE and judged[i][0][1] == top_budget and (judged[i][2] or 0) == 0
    ][: None if objective.multi else 1]


def select_best(
    rows: Sequence[Mapping[str, Any]],
    objective: Objective | Mapping[str, Any] | str,
    direction: str | None = None,
    *,
    reevaluated: Sequence[str] | None = None,
) -> Mapping[str, Any]:
    """The best feasible row or record; raise NoSuccessfulTrial listing the reasons when there is none.

    ``reevaluated`` (select.top_k): the trials run again with extra seeds, in their search ranking;
    only they can win, ranked by their mean over the seeds (:func:`by_seed_mean`) with the same rule.
    """
    objective = as_objective(objective, direction)
    if reevaluated is not None:
        by_trial = {r.get("trial"): r for r in rows}
        candidates = [by_seed_mean(by_trial[t]) for t in reevaluated if t in by_trial]
        best = best_record(candidates, objective)
        if best is None:
            _no_success(candidates, objective, "re-evaluated trials have no mean within the limits (a seed failed)")
        return by_trial[best["trial"]]
    best = best_record(rows, objective)
    if best is None:
        _no_success(rows, objective, "trials failed" if not objective.limits else "trials failed or broke a limit")
    return best


def _no_success(rows: Sequence[Mapping[str, Any]], objective: Objective, what: str) -> None:
    judged = [objective.standing(r) for r in rows]
    reasons = "\n".join(f"  {r.get('trial')}: {s.reason or 'no objective'}" for r, s in list(zip(rows, judged))[:50])
    more = f"\n  ... and {len(rows) - 50} more" if len(rows) > 50 else ""
    limits = f" Limits (objective.constraints): {'; '.join(map(str, objective.limits))}." if objective.limits else ""
    raise NoSuccessfulTrial(
        f"all {len(rows)} {what}, so there is no best configuration. Reasons:\n{reasons}{more}\n"
        f"Fix the trainer or the search space; the trials' logs are in the table's `log` column.{limits}"
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
    objective: Objective | Mapping[str, Any] | str,
    direction: str | None = None,
    *,
    study: str,
    reevaluated: Sequence[str] | None = None,
    trial: str | None = None,
) -> dict[str, Any]:
    """What ``select/winner.yaml`` (the first part of ``best.yaml``) holds: the chosen trial (:func:`select_best`), its parameters, score and best
    epoch (the final retrain trains that many epochs). With ``reevaluated`` (select.top_k) the score
    is the mean over the seeds, the best epoch the rounded mean of the seeds' best epochs, and the
    document lists the seeds' values and every re-evaluated trial's mean, best first.

    With several objectives the chosen trial is the table's first row: on the Pareto front, within
    the limits, with the best first objective; the document adds every objective's value, the
    size of the front and the rule. ``trial`` (select.trial) names the trial to choose instead: it
    must have succeeded (a trial beyond a limit may be named; the document says which limit)."""
    objective = as_objective(objective, direction)
    metric, direction = objective.metric, objective.direction
    if trial is not None:
        best = _named(records, trial, objective)
        chosen_by = f"named by select.trial ({trial})"
    else:
        best = select_best(records, objective, reevaluated=reevaluated)
        chosen_by = None
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
    if not objective.simple:
        judged = [objective.standing(r) for r in records]
        doc["n_feasible"] = sum(s.status == FEASIBLE for s in judged)
        standing = objective.standing(best)
        if standing.status == INFEASIBLE:
            doc["infeasible"] = standing.reason
    if objective.multi:
        doc["objectives"] = {m: v for m, v in zip(objective.metrics, objective.standing(best).values or ())}
        doc["directions"] = dict(zip(objective.metrics, objective.directions))
        doc["front_size"] = len(pareto_front(records, objective))
        chosen_by = chosen_by or f"the Pareto front's best {metric} within the limits"
    if chosen_by:
        doc["chosen_by"] = chosen_by
    if reevaluated is None:
        return doc
    by_trial = {r["trial"]: r for r in records}
    views = ranked([by_seed_mean(by_trial[t]) for t in reevaluated if t in by_trial], objective)
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


def _named(records: Sequence[Mapping[str, Any]], trial: str, objective: Objective) -> Mapping[str, Any]:
    """The record of the trial ``select.trial`` names; it must exist and have succeeded."""
    by_trial = {r.get("trial"): r for r in records}
    if trial not in by_trial:
        ids = [str(t) for t in by_trial]
        shown = ", ".join(ids[:10]) + (f", ... ({len(ids)} in all)" if len(ids) > 10 else "")
        raise NoSuccessfulTrial(
            f"config key `select.trial`: the study has no trial {trial!r}{suggest(trial, ids)}; its trials: {shown}"
        )
    record = by_trial[trial]
    standing = objective.standing(record)
    if standing.status == FAILED:
        raise NoSuccessfulTrial(
            f"config key `select.trial`: trial {trial} failed ({standing.reason}); name a trial that succeeded"
        )
    return record


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
