"""A trainer that scores the 6-dimensional Hartmann function on [0, 1]^6 (to be minimized).

Global minimum -3.32237 at (0.20169, 0.150011, 0.476874, 0.275332, 0.311652, 0.6573); six local
minima. Run by the workflow as ``trainer.command: python benchmarks/trainers/hartmann6.py``;
benchmarks/search_quality.py imports ``hartmann6`` so that both score trials with the same code.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

NAMES = ("x1", "x2", "x3", "x4", "x5", "x6")
MINIMUM = -3.32236801141551
ALPHA = (1.0, 1.2, 3.0, 3.2)
A = (
    (10.0, 3.0, 17.0, 3.5, 1.7, 8.0),
    (0.05, 10.0, 17.0, 0.1, 8.0, 14.0),
    (3.0, 3.5, 1.7, 10.0, 17.0, 8.0),
    (17.0, 8.0, 0.05, 10.0, 0.1, 14.0),
)
P = (
    (0.1312, 0.1696, 0.5569, 0.0124, 0.8283, 0.5886),
    (0.2329, 0.4135, 0.8307, 0.3736, 0.1004, 0.9991),
    (0.2348, 0.1451, 0.3522, 0.2883, 0.3047, 0.6650),
    (0.4047, 0.8828, 0.8732, 0.5743, 0.1091, 0.0381),
)


def hartmann6(x: Sequence[float]) -> float:
    total = 0.0
    for alpha, a, p in zip(ALPHA, A, P):
        total += alpha * math.exp(-sum(aj * (xj - pj) ** 2 for aj, xj, pj in zip(a, x, p)))
    return -total


def objective(params: Mapping[str, float]) -> float:
    return hartmann6([float(params[n]) for n in NAMES])


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _contract import run

    run(objective, NAMES)
