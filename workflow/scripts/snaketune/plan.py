"""The plan: which trials a study runs, each with a stable id.

Grid ids are a short hash of the trial's full parameter set, so widening a grid keeps the ids
(and the finished results) of the combinations it already had. Random ids are ``r0000``,
``r0001``, ... and trial ``i`` is drawn from its own seed, so raising ``n_trials`` keeps the
first trials as they were. Bayesian ids are ``b<round>-<k>``; their parameters are proposed
by the round's ``propose`` job.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from snaketune.schedule import Bracket, bracket, hyperband, successive_halving
from snaketune.space import SearchSpace


@dataclass(frozen=True)
class Trial:
    id: str
    params: dict[str, Any] | None  # None: proposed at run time (bayes rounds)
    round: int | None = None


def params_key(params: Mapping[str, Any]) -> str:
    """Canonical text of a parameter set (order-independent, 1 == 1.0 kept apart)."""
    return json.dumps({k: [type(v).__name__, v] for k, v in sorted(params.items())}, separators=(",", ":"))


def grid_trial_id(params: Mapping[str, Any]) -> str:
    return "g" + hashlib.sha256(params_key(params).encode()).hexdigest()[:10]


def random_trial_id(index: int) -> str:
    return f"r{index:04d}"


def trial_seed(search_seed: int, trial_id: str, fold: int = 0) -> int:
    """The training seed of one trial (and fold): stable, independent of scheduling."""
    digest = hashlib.sha256(f"{search_seed}:{trial_id}:{fold}".encode()).hexdigest()
    return int(digest[:8], 16)


def plan_trials(config: Mapping[str, Any]) -> list[Trial]:
    """Every trial of a grid or random study, in a stable order."""
    space = SearchSpace.from_config(config["search_space"])
    search = config["search"]
    if search["method"] == "grid":
        return [Trial(grid_trial_id(p), p) for p in space.grid()]
    if search["method"] == "random":
        seed = search["seed"]
        return [Trial(random_trial_id(i), space.sample(seed, i)) for i in range(search["n_trials"])]
    if search["method"] == "bayes":
        from snaketune.bayes import round_trial_ids

        rounds = round_trial_ids(search["n_trials"], search["n_startup"], search["batch"])
        return [Trial(tid, None, r) for r, ids in enumerate(rounds) for tid in ids]
    raise ValueError(f"unknown search.method {search['method']!r}")


@dataclass(frozen=True)
class BracketPlan:
    """A multi-fidelity bracket and the configurations that fill its first rung (slot k = trials[k])."""

    bracket: Bracket
    trials: list[Trial]


def plan_brackets(config: Mapping[str, Any]) -> list[BracketPlan]:
    """The brackets of a multi-fidelity study (``search.schedule`` successive_halving or hyperband).

    grid: every grid point starts in the bracket (hyperband: in every bracket, ids prefixed
    ``h<bracket>-``). random: successive halving starts ``n_trials`` configurations; hyperband
    repeats its brackets until at least ``n_trials`` have started, ids ``r0000`` on across
    brackets. bayes: every bracket's configurations are proposed from all earlier brackets'
    results (BOHB-like); successive halving makes each Bayesian round a bracket.
    """
    search = config["search"]
    schedule, method = search["schedule"], search["method"]
    R, r0, eta = int(config["search_space"]["epochs"]), search["min_epochs"], search["eta"]
    space = SearchSpace.from_config(config["search_space"])
    if method == "grid":
        grid = [Trial(grid_trial_id(p), p) for p in space.grid()]
        if schedule == "successive_halving":
            return [BracketPlan(successive_halving(len(grid), r0, R, eta), grid)]
        return [
            BracketPlan(
                bracket(len(grid), len(b.rungs) - 1, R, eta, b.index), [Trial(f"h{b.index}-{t.id}", t.params) for t in grid]
            )
            for b in hyperband(r0, R, eta)
        ]
    if method == "random":
        seed = search["seed"]
        if schedule == "successive_halving":
            brackets = [successive_halving(search["n_trials"], r0, R, eta)]
        else:
            brackets = hyperband(r0, R, eta, search["n_trials"])
        plans, i = [], 0
        for b in brackets:
            trials = [Trial(random_trial_id(i + k), space.sample(seed, i + k)) for k in range(b.n_configs)]
            i += b.n_configs
            plans.append(BracketPlan(b, trials))
        return plans
    if method == "bayes":
        from snaketune.bayes import bayes_trial_id, round_sizes

        if schedule == "successive_halving":
            sizes = round_sizes(search["n_trials"], search["n_startup"], search["batch"])
            brackets = [successive_halving(n, r0, R, eta, index=r) for r, n in enumerate(sizes)]
        else:
            brackets = hyperband(r0, R, eta, search["n_trials"])
        return [BracketPlan(b, [Trial(bayes_trial_id(b.index, k), None, b.index) for k in range(b.n_configs)]) for b in brackets]
    raise ValueError(f"unknown search.method {method!r}")
