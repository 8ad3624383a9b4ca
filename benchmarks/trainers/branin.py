"""A trainer that scores the Branin function (a Python twin of config/examples/trainers/branin.sh).

Global minimum 0.397887 at (-pi, 12.275), (pi, 2.275) and (9.42478, 2.475), on x1 in [-5, 10],
x2 in [0, 15]. Run by the workflow as ``trainer.command: python benchmarks/trainers/branin.py``;
benchmarks/search_quality.py imports ``branin`` so that both score trials with the same code.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping
from pathlib import Path

NAMES = ("x1", "x2")
MINIMUM = 0.397887357729738


def branin(x1: float, x2: float) -> float:
    b, c, t = 5.1 / (4 * math.pi**2), 5 / math.pi, 1 / (8 * math.pi)
    return (x2 - b * x1 * x1 + c * x1 - 6) ** 2 + 10 * (1 - t) * math.cos(x1) + 10


def objective(params: Mapping[str, float]) -> float:
    return branin(float(params["x1"]), float(params["x2"]))


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _contract import run

    run(objective, NAMES)
