"""Conditional search spaces: which TPE settings find an optimum that needs a conditional parameter.

    python benchmarks/conditional.py --seeds 10 --trials 48

The problem (minimised, optimum 0): a categorical ``branch`` chooses which parameters exist.

* ``a``: ``a1``, ``a2`` in [0, 1]; at best 0.2 (a plateau that is easy to find);
* ``b``: ``b1`` in [0, 1] and the integer ``b2`` in 1 .. 8; 0 only where ``b1 = x + 0.3`` and
  ``b2 = 5``, a narrow valley along ``x`` (a model of ``x`` and ``b1`` together finds it);
* ``c``: nothing of its own; 0.5 + (x - 0.3)^2.

Every method runs the workflow's Bayesian rounds (``round_sizes(n_trials, 8, 4)``, each round's
sampler seeded by ``round_seed``) through ``snaketune.bayes.build_study`` and ``ask_active`` (the
define-by-run proposal of ``propose_round`` for a conditional space), differing in the sampler:

* ``random``: ``SearchSpace.sample(seed, i)``, the random search's trials;
* ``tpe-independent``: ``TPESampler(multivariate=False)``;
* ``tpe-multivariate``: ``TPESampler(multivariate=True)``, the setting of an unconditional space:
  on a dynamic space it models jointly only the parameters every trial has, the others one by one;
* ``tpe-group`` (what ``propose_round`` uses for a conditional space): ``multivariate=True,
  group=True``: one joint model per set of parameters that occur together.

All TPE variants keep ``constant_liar=True`` as the workflow does. Prints, per method, the median
and quartiles over seeds of the best value after n trials, and how many seeds reached 0.01.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from snaketune.bayes import Observation, ask_active, bayes_trial_id, build_study, round_seed, round_sizes  # noqa: E402
from snaketune.space import SearchSpace  # noqa: E402

N_STARTUP, BATCH = 8, 4
SPACE = {
    "branch": ["a", "b", "c"],
    "x": {"type": "float", "low": 0.0, "high": 1.0},
    "a1": {"type": "float", "low": 0.0, "high": 1.0, "when": {"branch": "a"}},
    "a2": {"type": "float", "low": 0.0, "high": 1.0, "when": {"branch": "a"}},
    "b1": {"type": "float", "low": 0.0, "high": 1.0, "when": {"branch": "b"}},
    "b2": {"type": "int", "low": 1, "high": 8, "when": {"branch": "b"}},
}
METHODS = ("random", "tpe-independent", "tpe-multivariate", "tpe-group")
REPORT_AT = (16, 32, 48, 64)


def objective(p: dict) -> float:
    x = p["x"]
    if p["branch"] == "a":
        return 0.2 + (x - 0.3) ** 2 + (p["a1"] - 0.8) ** 2 + (p["a2"] - 0.2) ** 2
    if p["branch"] == "b":
        return (x - 0.3) ** 2 + 5 * (p["b1"] - x - 0.3) ** 2 + 0.02 * (p["b2"] - 5) ** 2
    return 0.5 + (x - 0.3) ** 2


def sampler(method: str, seed: int):
    import optuna

    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    settings = {"tpe-independent": {}, "tpe-multivariate": {"multivariate": True}}
    settings["tpe-group"] = {"multivariate": True, "group": True}
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=N_STARTUP, constant_liar=True, **settings[method])


def run(method: str, seed: int, n_trials: int) -> list[float]:
    """The best-so-far objective after each trial."""
    space = SearchSpace.from_config(SPACE)
    values: list[float] = []
    if method == "random":
        values = [objective(space.sample(seed, i)) for i in range(n_trials)]
    else:
        history: list[Observation] = []
        for r, size in enumerate(round_sizes(n_trials, N_STARTUP, BATCH)):
            study = build_study(space, "minimize", history, sampler(method, round_seed(seed, r)))
            for k in range(size):
                p = ask_active(study, space)
                history.append(Observation(bayes_trial_id(r, k), p, objective(p)))
                values.append(history[-1].value)
    return list(np.minimum.accumulate(values))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--trials", type=int, default=48)
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    args = ap.parse_args()
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    at = [n for n in REPORT_AT if n <= args.trials] or [args.trials]
    print(f"best value after n trials (median [quartiles] over {args.seeds} seeds; optimum 0), optuna {optuna.__version__}")
    print("| method | " + " | ".join(f"n={n}" for n in at) + " | seeds < 0.01 | seconds |")
    print("|---" * (len(at) + 3) + "|")
    for method in args.methods:
        t0 = time.perf_counter()
        curves = [run(method, seed, args.trials) for seed in range(args.seeds)]
        cells = []
        for n in at:
            best = [c[n - 1] for c in curves]
            q1, med, q3 = np.percentile(best, [25, 50, 75])
            cells.append(f"{med:.3f} [{q1:.3f}, {q3:.3f}]")
        hits = sum(c[-1] < 0.01 for c in curves)
        print(f"| {method} | " + " | ".join(cells) + f" | {hits}/{args.seeds} | {time.perf_counter() - t0:.0f} |", flush=True)


if __name__ == "__main__":
    main()
