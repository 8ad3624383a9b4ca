"""Optuna's Pareto maths, behind one door: non-dominated sorting, hypervolume, and crowding
distance (which points of a front to keep when not all fit).

Every function takes *losses*: an (n, m) array-like of objective values turned so that lower is
better (a maximised objective negated); :meth:`snaketune.records.Objective.losses` makes them.

Optuna's public API gives the first front only (``Study.best_trials``). The full non-dominated
sort its NSGA-II and TPE samplers use, its exact hypervolume (WFG) and NSGA-II's crowding
distance are private functions, so
they are used here only behind :func:`_optuna`'s version check: present with these signatures in
Optuna 5.0 to 5.1 (pyproject.toml allows ``>=5.0,<6``; .ci/lower-bounds tests 5.0). A newer major
version fails with a message that says so, instead of computing something else.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

TESTED_MAJOR = 5


def _optuna() -> SimpleNamespace:
    """Optuna's private Pareto functions, after checking the version they were read from."""
    import optuna

    major = int(optuna.__version__.split(".")[0])
    try:
        from optuna._hypervolume import compute_hypervolume
        from optuna.samplers.nsgaii._elite_population_selection_strategy import _calc_crowding_distance
        from optuna.study._multi_objective import _fast_non_domination_rank
    except ImportError as e:  # pragma: no cover - only with an Optuna outside pyproject's range
        raise RuntimeError(
            f"snaketune's Pareto ranking uses Optuna {TESTED_MAJOR}.x's non-dominated sort and hypervolume; "
            f"Optuna {optuna.__version__} does not have them ({e}). Install optuna>={TESTED_MAJOR}.0,<{TESTED_MAJOR + 1}"
        ) from None
    if major != TESTED_MAJOR:  # pragma: no cover - pyproject.toml keeps it out
        raise RuntimeError(
            f"snaketune's Pareto ranking was checked against Optuna {TESTED_MAJOR}.x, not {optuna.__version__}; "
            f"install optuna>={TESTED_MAJOR}.0,<{TESTED_MAJOR + 1}"
        )
    return SimpleNamespace(rank=_fast_non_domination_rank, hypervolume=compute_hypervolume, crowding=_calc_crowding_distance)


def _array(losses: Sequence[Sequence[float]]) -> Any:
    import numpy as np

    a = np.asarray(losses, dtype=float)
    if a.size == 0:
        return a.reshape(0, a.shape[-1] if a.ndim == 2 else 0)
    if a.ndim != 2:
        raise ValueError(f"losses must be an (n, m) table of numbers, but got shape {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError("losses must be finite (a failed trial has no place on a front)")
    return a


def nondomination_ranks(losses: Sequence[Sequence[float]]) -> list[int]:
    """The Pareto rank of each point: 0 for the non-dominated front, 1 for the front once those are
    removed, and so on. Equal points share a rank.

    >>> nondomination_ranks([[1, 3], [2, 2], [3, 1], [2, 3], [3, 3]])
    [0, 0, 0, 1, 2]
    """
    a = _array(losses)
    if len(a) == 0:
        return []
    return [int(r) for r in _optuna().rank(a)]


def reference_point(losses: Sequence[Sequence[float]]) -> list[float]:
    """A reference point for the hypervolume of these points: the worst value of each objective,
    moved 10% of its range further (at least 1e-12), so every point contributes."""
    a = _array(losses)
    worst, best = a.max(axis=0), a.min(axis=0)
    span = worst - best
    return [float(w + max(0.1 * s, 1e-12, 1e-9 * abs(w))) for w, s in zip(worst, span)]


def hypervolume(losses: Sequence[Sequence[float]], reference: Sequence[float]) -> float:
    """The volume dominated by ``losses`` and bounded by ``reference`` (points beyond it count for
    nothing). The larger, the better the front.

    >>> hypervolume([[1, 2], [2, 1]], [3, 3])
    3.0
    """
    import numpy as np

    a = _array(losses)
    ref = np.asarray(reference, dtype=float)
    a = a[(a < ref).all(axis=1)] if len(a) else a
    if len(a) == 0:
        return 0.0
    return float(_optuna().hypervolume(a, ref))


def crowding_order(losses: Sequence[Sequence[float]]) -> list[int]:
    """The indices of the points (all of one front), most isolated first, by NSGA-II's crowding
    distance: per objective, the gap between a point's two neighbours divided by the objective's
    range, summed over the objectives; the two ends of each objective count as infinitely far.
    Keeping the first k keeps the ends of the front and spreads the rest along it, whatever the
    objectives' scales. Equal distances keep the input order (pass the points best first).

    >>> crowding_order([[0, 10], [1, 9], [1.1, 8.9], [5, 5], [10, 0]])
    [0, 4, 3, 2, 1]
    """
    a = _array(losses)
    # Optuna's function reads a trial's `values` and `number` only.
    points = [SimpleNamespace(values=[float(v) for v in row], number=i) for i, row in enumerate(a)]
    distance = _optuna().crowding(points)
    return sorted(range(len(a)), key=lambda i: (-distance[i], i))
