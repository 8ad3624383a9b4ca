"""Bayesian optimisation in parallel rounds, with Optuna's samplers and no database.

Round 0 proposes ``n_startup`` random trials; each later round proposes ``batch`` trials from a
model of every earlier result, until ``n_trials`` are proposed. A round's ``propose`` job rebuilds
an in-memory Optuna study from the earlier trials (``create_trial`` + ``add_trial``) and asks the
sampler for the round's batch.

Failed trials must steer the model away, but Optuna's TPE and GP samplers skip trials in state
FAIL entirely (a test showed TPE putting 24 of 25 proposals into a region where every trial had
failed). So for these two samplers a failed trial enters the study as an *infeasible* trial: state
COMPLETE, the worst value seen so far, and a violated constraint ``failed = 1``; both samplers
then model it as a place not to go. CMA-ES and QMC ignore constraints; for them it is a FAIL. TPE runs
multivariate with ``constant_liar`` so a batch spreads out instead of collapsing onto one point.

With several objectives (objective.also) the study has one direction per objective and each
trial its values; with limits (objective.constraints) each trial carries one Optuna constraint
per limit (its distance beyond it, <= 0 within it), so TPE and GP model where the limits hold.
Failed trials keep their own ``failed`` constraint. CMA-ES takes neither (the config says so).

NSGA-II (``nsga2``) breeds each round after round 0 as a generation of ``batch`` trials; a
trial's generation lives in its Optuna system attributes, so a round's file carries them
(``sampler_attrs``) and later rounds put them back on the rebuilt trials (:attr:`Observation.attrs`).

Each round's sampler is seeded from (``search.seed``, round), and earlier trials are added in id
order, so the proposals depend only on the earlier results: a study is reproducible bit for bit
whatever the parallelism or the executor.

Asynchronous search (``search.parallel`` W): round 0 is as above; then every trial k (proposal
order) is a round of its own, proposed from the results of trials 0 .. k-W while trials
k-W+1 .. k-1 are added as running (``add_running``, their parameters from their own proposals).
No worker waits for a round's straggler, and each proposal is still a pure function of the seed
and earlier results, whatever finishes first. The ``propose`` job of trial k declares only round
k-1's file and trial k-W's results (the first asynchronous round: trials 0 .. k-W), so N trials
make O(N) DAG edges; every other file it reads is an ancestor through that chain, so Snakemake
has made it before the job runs, and a changed one (result j rewritten, by its trial rerunning or
by hand) reruns the job that declares it, round j+W, and so every later round: the same reruns
as with rounds, where each round declares every earlier result (snaketune.plan.StudyPlan.window).
"""

from __future__ import annotations

import hashlib
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from snaketune.records import FAILED, Objective, combine_records, rank_budget
from snaketune.space import Categorical, Fixed, FloatRange, IntRange, SearchSpace

SAMPLERS = ("tpe", "gp", "cmaes", "qmc", "nsga2")
CONSTRAINED_SAMPLERS = ("tpe", "gp", "nsga2")  # those that model failed trials as infeasible
# NSGA-II keeps each trial's generation in the trial's system attributes; a round's proposals
# carry them in its file (``sampler_attrs``), and later rounds put them back on the rebuilt trials.
GENERATION_ATTR = "NSGAIISampler:generation"
# Measured: the GP sampler needs ~41 s to propose 8 trials after 1,000 earlier ones (TPE ~0.7 s).
GP_SLOW_AFTER = 300


def round_sizes(n_trials: int, n_startup: int, batch: int) -> list[int]:
    """How many trials each round proposes: [n_startup, batch, batch, ..., rest]."""
    first = min(n_startup, n_trials)
    sizes = [first]
    left = n_trials - first
    while left > 0:
        sizes.append(min(batch, left))
        left -= sizes[-1]
    return sizes


def bayes_trial_id(round_index: int, k: int) -> str:
    return f"b{round_index}-{k}"


def round_trial_ids(n_trials: int, n_startup: int, batch: int) -> list[list[str]]:
    return [[bayes_trial_id(r, k) for k in range(n)] for r, n in enumerate(round_sizes(n_trials, n_startup, batch))]


def round_seed(seed: int, round_index: int) -> int:
    digest = hashlib.sha256(f"{seed}:round:{round_index}".encode()).hexdigest()
    return int(digest[:8], 16)


def distributions(space: SearchSpace) -> dict[str, Any]:
    """Optuna distributions of the searched (non-fixed) parameters."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    out: dict[str, Any] = {}
    for p in space.params:
        if isinstance(p, FloatRange):
            out[p.name] = FloatDistribution(p.low, p.high, log=p.log, step=p.step)
        elif isinstance(p, IntRange):
            out[p.name] = IntDistribution(p.low, p.high, log=p.log, step=p.step)
        elif isinstance(p, Categorical):
            out[p.name] = CategoricalDistribution(list(p.choices))
        else:
            assert isinstance(p, Fixed)
    return out


def make_sampler(name: str, seed: int, n_startup: int, group: bool = False, population: int = 0):
    """``group`` (a conditional search space): TPE models each set of parameters that occur
    together jointly (docs/benchmarks.md, "Conditional search spaces"). ``population``: NSGA-II's
    population size, a round's batch (each round after round 0 is a generation)."""
    import optuna

    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(population_size=max(2, population), seed=seed)
    if name == "tpe" and group:
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(
            seed=seed, n_startup_trials=n_startup, multivariate=True, group=True, constant_liar=True
        )
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=n_startup, multivariate=True, constant_liar=True)
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed, n_startup_trials=n_startup, warn_independent_sampling=False)
    if name == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=seed, n_startup_trials=n_startup, warn_independent_sampling=False)
    if name == "qmc":
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
        # A low-discrepancy sequence: the same scrambling seed in every round, so later rounds
        # continue the sequence (see propose_round) instead of restarting it.
        return optuna.samplers.QMCSampler(
            seed=seed, scramble=True, warn_independent_sampling=False, warn_asynchronous_seeding=False
        )
    raise ValueError(f"unknown sampler {name!r}; valid: {', '.join(SAMPLERS)}")


@dataclass(frozen=True)
class Observation:
    """One earlier trial as the sampler sees it."""

    trial: str
    params: dict[str, Any]
    value: float | tuple[float, ...] | None  # None = failed; several objectives: one value each
    intermediate: dict[int, float] | None = None
    limits: dict[str, float] | None = None  # objective.constraints: Optuna's constraint value per limit
    attrs: dict[str, Any] | None = None  # the sampler's bookkeeping of the trial (NSGA-II: its generation)

    @property
    def values(self) -> tuple[float, ...] | None:
        if self.value is None:
            return None
        values = self.value if isinstance(self.value, tuple) else (self.value,)
        return values if all(math.isfinite(v) for v in values) else None


def build_study(
    space: SearchSpace,
    direction: str | Sequence[str],
    history: Sequence[Observation],
    sampler,
    failed_as_infeasible: bool = False,
    limits: Sequence[str] = (),
):
    """An in-memory Optuna study holding the earlier trials; ``direction``: one, or one per objective.

    Failed trials are FAIL, or with ``failed_as_infeasible`` COMPLETE with the worst value seen
    and the constraint ``failed = 1`` (see the module docstring). ``limits``: the names of the
    constraints an observation carries (objective.constraints); a failed trial is within them
    (its ``failed`` constraint says enough).
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    directions = [direction] if isinstance(direction, str) else list(direction)
    dists = distributions(space)
    study = optuna.create_study(directions=directions, sampler=sampler)
    seen = [o.values for o in history if o.values is not None and len(o.values) == len(directions)]
    worst = [
        (min(v[i] for v in seen) if d == "maximize" else max(v[i] for v in seen)) if seen else 0.0
        for i, d in enumerate(directions)
    ]
    for obs in history:
        if space.conditional:  # only the parameters active in this trial, each with its distribution
            params = {k: v for k, v in space.active(obs.params).items() if k in dists}
            if not active_complete(space, obs.params):
                continue  # a trial from a different search space: not evidence about this one
        else:
            params = {k: obs.params[k] for k in dists if k in obs.params}
            if set(params) != set(dists):
                continue  # a trial from a different search space: not evidence about this one
        ok = obs.values is not None and len(obs.values) == len(directions)
        within = dict.fromkeys(limits, 0.0)
        if ok:
            state, values, constraints = (
                optuna.trial.TrialState.COMPLETE,
                list(obs.values),
                {"failed": 0.0, **within, **(obs.limits or {})},
            )
        elif failed_as_infeasible:
            state, values, constraints = optuna.trial.TrialState.COMPLETE, worst, {"failed": 1.0, **within}
        else:
            state, values, constraints = optuna.trial.TrialState.FAIL, None, None
        try:
            frozen = optuna.trial.create_trial(
                state=state,
                values=values,
                params=params,
                distributions={k: dists[k] for k in params} if space.conditional else dists,
                intermediate_values=obs.intermediate or None,
                user_attrs={"snaketune_trial": obs.trial},
                system_attrs=dict(obs.attrs) if obs.attrs else None,  # a copy: Optuna adds the constraints to it
                constraints=constraints if failed_as_infeasible else None,
            )
        except ValueError:
            continue  # a value outside the current ranges (the space was narrowed since)
        study.add_trial(frozen)
    return study


def propose_round(
    space: SearchSpace,
    round_index: int,
    size: int,
    history: Sequence[Observation],
    *,
    direction: str | Sequence[str],
    sampler: str,
    seed: int,
    n_startup: int,
    limits: Sequence[str] = (),
    running: Sequence[Observation] = (),
    population: int = 0,
    sampler_attrs: list[dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """The parameters of round ``round_index``'s ``size`` trials, given the earlier results
    (``direction``: one per objective; ``limits``: the names of the observations' constraints;
    ``running``: trials proposed but not yet observed, search.parallel's window, their values
    ignored; ``population``: NSGA-II's population size; ``sampler_attrs``: a list that receives
    each proposal's sampler bookkeeping, NSGA-II's generation, to be written with the round and
    given back as :attr:`Observation.attrs`)."""
    s = make_sampler(
        sampler,
        seed if sampler == "qmc" else round_seed(seed, round_index),
        n_startup,
        group=space.conditional,
        population=population,
    )
    if sampler == "gp" and len(history) >= GP_SLOW_AFTER:
        warnings.warn(
            f"the GP sampler is slow with many trials ({len(history)} so far; about 40 s per round at 1,000); "
            "consider search.sampler: tpe for long studies",
            stacklevel=2,
        )
    ordered = sorted(history, key=lambda o: natural_key(o.trial))
    study = build_study(space, direction, ordered, s, failed_as_infeasible=sampler in CONSTRAINED_SAMPLERS, limits=limits)
    dists = distributions(space)
    add_running(study, dists, running)
    if sampler == "qmc":
        for _ in range(len(study.trials)):  # continue the sequence past the points already used
            study.ask(dists)
    fixed = {p.name: p.value for p in space.params if isinstance(p, Fixed)}
    proposals = []
    for _ in range(size):
        if space.conditional:
            proposals.append(ask_active(study, space))
            continue
        trial = study.ask(dists)  # asked, never told: constant_liar treats it as running
        params = {name: trial.params[name] for name in space.names if name in trial.params}
        params.update(fixed)
        if sampler == "nsga2" and sampler_attrs is not None:
            generation = study.trials[trial.number].system_attrs.get(GENERATION_ATTR)
            sampler_attrs.append({GENERATION_ATTR: generation} if generation is not None else {})
        proposals.append({name: _plain(params[name]) for name in space.names})
    return proposals


def ask_active(study, space: SearchSpace) -> dict[str, Any]:
    """One proposal of a conditional space, define-by-run: ``study.ask()``, then each active
    parameter suggested in the order of the conditions (snaketune.space.SearchSpace.order), so an
    inactive one is never sampled; fixed ones are set. Asked, never told (constant_liar)."""
    trial = study.ask()
    params: dict[str, Any] = {}
    for name in space.order:
        if not space.is_active(name, params):
            continue
        p = space[name]
        if isinstance(p, Fixed):
            params[name] = p.value
        elif isinstance(p, FloatRange):
            params[name] = trial.suggest_float(name, p.low, p.high, log=p.log, step=p.step)
        elif isinstance(p, IntRange):
            params[name] = trial.suggest_int(name, p.low, p.high, log=p.log, step=p.step)
        else:
            params[name] = trial.suggest_categorical(name, list(p.choices))
    return {name: _plain(params[name]) for name in space.names if name in params}


def active_complete(space: SearchSpace, params: Mapping[str, Any]) -> bool:
    """Whether ``params`` holds every parameter active given its own values (a trial of this space)."""
    kept = space.active(params)
    return all(name in kept or not space.is_active(name, kept) for name in space.names)


def add_running(study, dists: Mapping[str, Any], running: Sequence[Observation]) -> None:
    """Add the trials still running (search.parallel) to ``study`` as RUNNING, in id order: as a
    round's own earlier asks, so that constant_liar TPE keeps away from them (QMC counts them as
    points of its sequence already used). Built from their proposals, not asked: an ask would
    cost a whole sampling each."""
    import optuna

    for obs in sorted(running, key=lambda o: natural_key(o.trial)):
        params = {k: obs.params[k] for k in dists if k in obs.params}
        try:
            frozen = optuna.trial.create_trial(
                state=optuna.trial.TrialState.RUNNING,
                params=params,
                distributions={k: dists[k] for k in params},
                user_attrs={"snaketune_trial": obs.trial},
            )
        except ValueError:
            continue  # a value outside the current ranges
        study.add_trial(frozen)


def _plain(v: Any) -> Any:
    """numpy scalars -> Python scalars, so YAML and JSON stay plain."""
    return v.item() if hasattr(v, "item") else v


def natural_key(trial_id: str) -> tuple:
    """b10-2 sorts after b9-7: numbers compare as numbers."""
    import re

    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", trial_id))


def observations(
    results: Sequence[Mapping[str, Any]], min_count: int = 1, objective: Objective | None = None
) -> list[Observation]:
    """Turn result records into sampler observations.

    ``objective`` (several objectives or limits): each observation holds every objective's value
    and its limits' constraint values; a trial whose metrics lack one is failed. Without it, the
    records' own ``objective``.

    With cross-validation the folds of a trial become one observation (their mean). With a
    multi-fidelity schedule a trial has one record per rung, each at its own budget; the model is
    fitted on the records of ``records.rank_budget(results, min_count)`` only (as in BOHB), so
    scores of different budgets are never mixed.
    """
    results = [r for r in results if r.get("status") in ("ok", "failed") and r.get("trial")]
    budget = rank_budget(results, min_count)
    if budget is None:  # one observation per trial: cross-validation folds become their mean
        results = combine_records(results)
    else:
        results = [r for r in results if r.get("budget") == budget]
    obs = []
    for r in results:
        params = dict(r.get("params") or {})
        if objective is not None and not objective.simple:
            standing = objective.standing(r)
            if standing.status == FAILED:
                obs.append(Observation(r["trial"], params, None))
            else:
                values = standing.values if objective.multi else standing.values[0]
                obs.append(Observation(r["trial"], params, values, limits=objective.slacks(r) or None))
            continue
        value = r.get("objective") if r.get("status") == "ok" else None
        obs.append(Observation(r["trial"], params, None if value is None else float(value)))
    return obs
