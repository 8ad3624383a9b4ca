"""Write a small regression table: 4 numeric features and a continuous target, for data.source: csv.

    python tests/make_regression_csv.py data/regression.csv            # 300 rows
    python tests/make_regression_csv.py data/regression.csv --rows 1000 --seed 1

The target is a smooth, partly nonlinear function of the features plus a little noise, on a scale
of its own (mean about 100, standard deviation about 40), and the features have scales of their
own too, so the trainer's standardisation of both is exercised:

    y = 100 + 20 * (1.5 * x1 - z2 + 0.5 * x3 * x4 + sin(2 * x1)) + noise,  z2 = (x2 - 50) / 10

with x1, x3, x4 ~ N(0, 1), x2 ~ N(50, 10) and noise ~ N(0, 2). Its values are not whole numbers, so
``data.task: auto`` reads it as regression. Best possible RMSE: about 2 (the noise).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

NOISE = 2.0


def make_regression_table(n_rows: int = 300, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(X of shape (n_rows, 4), y of shape (n_rows,)) as the module's docstring describes."""
    rng = np.random.default_rng(seed)
    x1, x3, x4 = rng.normal(size=(3, n_rows))
    x2 = rng.normal(50.0, 10.0, size=n_rows)
    signal = 1.5 * x1 - (x2 - 50.0) / 10.0 + 0.5 * x3 * x4 + np.sin(2.0 * x1)
    y = 100.0 + 20.0 * signal + rng.normal(0.0, NOISE, size=n_rows)
    return np.stack([x1, x2, x3, x4], axis=1), y


def write_regression_csv(path: str | Path, n_rows: int = 300, seed: int = 0) -> Path:
    """The table as a CSV with columns x1, x2, x3, x4, y; returns its path."""
    X, y = make_regression_table(n_rows, seed)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["x1,x2,x3,x4,y"] + [",".join(f"{v:.6f}" for v in (*row, target)) for row, target in zip(X, y)]
    path.write_text("\n".join(lines) + "\n")
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("path", help="the CSV file to write")
    ap.add_argument("--rows", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    print(write_regression_csv(args.path, args.rows, args.seed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
