"""The study as an Optuna study: in memory (for parameter importances) or in a journal file that
``optuna-dashboard results/<study>/optuna.journal`` opens.

Every trial of ``trials.tsv`` becomes one Optuna trial, in completion order:

* ``ok`` → COMPLETE with the objective as its value; under a multi-fidelity schedule a trial that
  stopped below the largest budget is PRUNED (still with its value), as Optuna's Hyperband pruner
  would leave it, so the study's best trial is the one ``best.yaml`` names;
* ``failed`` → FAIL, with the reason in the user attribute ``error``.

With several objectives (objective.also) the study has one direction and metric name per
objective and each trial its values (optuna-dashboard draws the Pareto front); with limits
(objective.constraints) each trial carries one constraint per limit, so a trial beyond one shows
as infeasible. A trial whose metrics lack an objective is FAIL.

Searched parameters carry their Optuna distributions; fixed ones are single-choice categoricals.
The intermediate values are the objective metric per epoch from ``history.csv`` (the mean over the
folds with cross-validation). The table's other columns (trial id, metrics, round, rung, budget,
log) are user attributes; the study's user attribute ``best_trial`` names trials.tsv's winner, ranked by
``records.standings`` (Optuna's own ``best_trial`` takes the first of equal values; the table breaks
ties by the loss).
"""

from __future__ import annotations

import datetime
import math
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from snaketune.bayes import distributions
from snaketune.layout import Layout
from snaketune.records import FAILED, Objective, as_objective, best_record
from snaketune.space import Fixed, SearchSpace
from snaketune.trial_files import epoch_values

# Columns of a record kept as user attributes of the Optuna trial.
_STRUCTURE = ("round", "bracket", "rung", "budget", "folds", "objective_mean", "objective_std", "seeds")


def _plain(v: Any) -> Any:
    return v.item() if hasattr(v, "item") else v


def _param_distributions(space: SearchSpace) -> dict[str, Any]:
    from optuna.distributions import CategoricalDistribution

    dists = distributions(space)
    for p in space.params:
        if isinstance(p, Fixed):
            dists[p.name] = CategoricalDistribution([p.value])
    return {name: dists[name] for name in space.names}


def _fits(dist: Any, value: Any) -> bool:
    try:
        return bool(dist._contains(dist.to_internal_repr(value)))
    except (ValueError, TypeError):
        return False


def trial_state(record: Mapping[str, Any], top_budget: float | None):
    """COMPLETE, PRUNED (stopped below the largest budget of a schedule) or FAIL."""
    from optuna.trial import TrialState

    if record.get("status") != "ok" or record.get("objective") is None:
        return TrialState.FAIL
    budget = record.get("budget")
    if top_budget is not None and budget is not None and budget < top_budget:
        return TrialState.PRUNED
    return TrialState.COMPLETE


def frozen_trial(
    record: Mapping[str, Any],
    dists: Mapping[str, Any],
    *,
    top_budget: float | None = None,
    intermediate: Mapping[int, float] | None = None,
    objective: Objective | None = None,
):
    """One record of the table as an Optuna ``FrozenTrial`` (see the module docstring)."""
    import optuna

    state = trial_state(record, top_budget)
    standing = objective.standing(record) if objective is not None and not objective.simple else None
    if standing is not None and standing.status == FAILED:
        state = optuna.trial.TrialState.FAIL
    params, outside = {}, {}
    for name, dist in dists.items():
        if name not in (record.get("params") or {}):
            continue
        value = _plain(record["params"][name])
        if _fits(dist, value):
            params[name] = value
        else:  # the space was changed since this trial ran: keep the value, not the distribution
            outside[f"param_{name}"] = value
    attrs: dict[str, Any] = {}
    for k, v in (record.get("metrics") or {}).items():
        if isinstance(v, (bool, int, float, str)) and not (isinstance(v, float) and not math.isfinite(v)):
            attrs[k] = v
    attrs.update({k: _plain(record[k]) for k in _STRUCTURE if record.get(k) is not None})
    attrs.update(outside)
    attrs.update(trial=record["trial"], status=record.get("status"), log=record.get("log") or "")
    if record.get("reason") or (standing is not None and standing.reason):
        attrs["error"] = record.get("reason") or standing.reason
    values = None
    if state != optuna.trial.TrialState.FAIL:
        values = list(standing.values) if standing is not None else [float(record["objective"])]
    feasible = standing is not None and objective.limits and state != optuna.trial.TrialState.FAIL
    trial = optuna.trial.create_trial(
        state=state,
        values=values,
        params=params,
        distributions={k: dists[k] for k in params},
        user_attrs=attrs,
        intermediate_values=dict(intermediate) if intermediate else None,
        constraints=objective.slacks(record) if feasible else None,
    )
    finished = record.get("finished")
    if finished:
        done = datetime.datetime.fromtimestamp(float(finished))
        trial.datetime_complete = done
        trial.datetime_start = done - datetime.timedelta(seconds=float(record.get("seconds") or 0.0))
    return trial


def build_study(
    records: Sequence[Mapping[str, Any]],
    space: SearchSpace,
    *,
    metric: str,
    direction: str,
    study_name: str,
    storage: Any = None,
    layout: Layout | None = None,
    user_attrs: Mapping[str, Any] | None = None,
    objectives: Mapping[str, Any] | None = None,
):
    """An Optuna study holding ``records`` (in the given order) in ``storage`` (None: in memory).
    With the study's ``layout``, each trial's learning curve becomes its intermediate values.
    ``objectives``: the whole objective (snaketune.records.rule_params) when it has several
    metrics or limits."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    objective = as_objective(objectives) if objectives else Objective.single(metric, direction)
    study = optuna.create_study(study_name=study_name, storage=storage, directions=list(objective.directions))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(list(objective.metrics))
    study.set_user_attr("metric", metric)
    for k, v in (user_attrs or {}).items():
        study.set_user_attr(k, v)
    dists = _param_distributions(space)
    budgets = [r["budget"] for r in records if r.get("budget") is not None]
    top_budget = max(budgets) if budgets else None
    trials = []
    for r in records:
        curve = epoch_values(layout.trial_history_files(r), metric) if layout is not None else None
        trials.append(frozen_trial(r, dists, top_budget=top_budget, intermediate=curve, objective=objective))
    study.add_trials(trials)
    best = best_record(records, objective)
    if best is not None:  # Optuna's best_trial takes the first of equal values; records.standings breaks ties
        study.set_user_attr("best_trial", best["trial"])
    return study


def write_journal(
    path: str | os.PathLike,
    records: Sequence[Mapping[str, Any]],
    space: SearchSpace,
    *,
    metric: str,
    direction: str,
    study_name: str,
    layout: Layout | None = None,
    user_attrs: Mapping[str, Any] | None = None,
    objectives: Mapping[str, Any] | None = None,
) -> None:
    """Write the study to an Optuna journal file at ``path``, replacing any earlier one whole
    (built beside it, then renamed: a rerun never appends a second copy, a kill never leaves half)."""
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        storage = JournalStorage(JournalFileBackend(str(tmp)))
        build_study(
            records,
            space,
            metric=metric,
            direction=direction,
            study_name=study_name,
            storage=storage,
            layout=layout,
            user_attrs=user_attrs,
            objectives=objectives,
        )
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
