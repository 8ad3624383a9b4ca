"""Multi-fidelity schedules: successive halving and Hyperband as a static set of jobs.

A *bracket* starts ``n`` configurations at a small budget (epochs); each *rung* keeps the best
``1/eta`` and trains them ``eta`` times longer, up to the ``epochs`` parameter. Hyperband runs
several brackets that trade the number of configurations against their starting budget
(Li et al., 2018). Every rung is a fixed number of *slots* known before the run; a ``promote``
job decides at run time which trial fills each slot of the next rung, and the promoted trial
continues from its own checkpoint, so it trains only the extra epochs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from snaketune.records import FEASIBLE, Objective, Standing, as_objective, ranked, standings


@dataclass(frozen=True)
class Rung:
    index: int
    budget: int  # total epochs a trial has trained when this rung ends
    n: int  # slots: trials trained in this rung


@dataclass(frozen=True)
class Bracket:
    index: int
    rungs: tuple[Rung, ...]

    @property
    def n_configs(self) -> int:
        return self.rungs[0].n


def _s_max(min_budget: int, max_budget: int, eta: int) -> int:
    # floor(log_eta(R / r)) with a little slack so that 27/1 with eta 3 gives exactly 3.
    return int(math.floor(math.log(max_budget / min_budget) / math.log(eta) + 1e-9))


def _budgets(max_budget: int, eta: int, s: int) -> list[int]:
    """Rung budgets R * eta^(i - s), i = 0..s: the last rung trains to exactly R."""
    budgets = [max(1, int(round(max_budget * eta ** (i - s)))) for i in range(s + 1)]
    for i in range(1, len(budgets)):  # rounding must never make a rung shorter than the one before
        budgets[i] = max(budgets[i], budgets[i - 1] + 1)
    budgets[-1] = max_budget
    return budgets


def bracket(n: int, s: int, max_budget: int, eta: int, index: int = 0) -> Bracket:
    """``n`` configurations through ``s + 1`` rungs ending at ``max_budget``."""
    budgets = _budgets(max_budget, eta, s)
    # At least one survivor per rung, so the winner always reaches the full budget.
    return Bracket(index, tuple(Rung(i, b, max(1, n // eta**i)) for i, b in enumerate(budgets)))


def successive_halving(n: int, min_budget: int, max_budget: int, eta: int, index: int = 0) -> Bracket:
    """One bracket: ``n`` configurations from ``min_budget`` (rounded up to R / eta^s) to ``max_budget``."""
    return bracket(n, _s_max(min_budget, max_budget, eta), max_budget, eta, index)


def hyperband(min_budget: int, max_budget: int, eta: int, n_configs_at_least: int = 1) -> list[Bracket]:
    """Hyperband's brackets s = s_max .. 0, repeated until at least ``n_configs_at_least`` configurations."""
    s_max = _s_max(min_budget, max_budget, eta)
    brackets: list[Bracket] = []
    total = 0
    while True:
        for s in range(s_max, -1, -1):
            n = int(math.ceil((s_max + 1) / (s + 1) * eta**s))
            brackets.append(bracket(n, s, max_budget, eta, len(brackets)))
            total += n
        if total >= n_configs_at_least:
            return brackets


def schedule_epochs(brackets: Sequence[Bracket]) -> int:
    """Epochs the whole schedule trains when every promoted trial resumes from its checkpoint."""
    total = 0
    for b in brackets:
        prev = 0
        for r in b.rungs:
            total += r.n * (r.budget - prev)
            prev = r.budget
    return total


def promote(
    records: Sequence[Mapping[str, Any]], n: int, objective: Objective | Mapping[str, Any] | str, direction: str | None = None
) -> list[str]:
    """The ``n`` trials of a rung that go on, by the study's one ranking rule (``records.standings``:
    equal accuracies are told apart by the loss, then by trial order); trials beyond a limit of
    objective.constraints only when too few are within the limits, the smallest excess first.

    With several objectives (objective.also) the first ``n`` of :func:`spread_order`: the rung's
    trials within the limits go on front by front, and of the first front that does not fit whole,
    those that crowd it least, so the survivors spread along the front instead of crowding around
    the first objective's best."""
    return spread_order(records, objective, direction)[:n]


def spread_order(
    records: Sequence[Mapping[str, Any]], objective: Objective | Mapping[str, Any] | str, direction: str | None = None
) -> list[str]:
    """The successful trials, in the order they go on. One objective: best first. Several: the
    trials within the limits front by front (Pareto rank 0 first), each front in NSGA-II's
    crowding-distance order (:func:`snaketune.pareto.crowding_order`: its two ends first, then the
    points in its widest gaps, whatever the objectives' scales), then those beyond a limit, the
    smallest excess first."""
    objective = as_objective(objective, direction)
    best_first = ranked(records, objective, ok_only=True)
    if not objective.multi:
        return [r["trial"] for r in best_first]
    from snaketune.pareto import crowding_order

    fronts: dict[int, list[tuple[Mapping[str, Any], Standing]]] = {}
    beyond: list[Mapping[str, Any]] = []
    for r, (_, standing, rank) in zip(best_first, standings(best_first, objective)):
        if standing.status == FEASIBLE:
            fronts.setdefault(rank or 0, []).append((r, standing))
        else:
            beyond.append(r)
    order: list[Mapping[str, Any]] = []
    for rank in sorted(fronts):
        front = fronts[rank]
        order += [front[i][0] for i in crowding_order([objective.losses(s.values) for _, s in front])]
    return [r["trial"] for r in order + beyond]
