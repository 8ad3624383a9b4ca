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
