"""Search quality: best-so-far objective vs number of trials, per search method, over seeds.

    python benchmarks/search_quality.py --objectives branin hartmann6 --seeds 10 --trials 80
    python benchmarks/search_quality.py --objectives branin hartmann6 --methods gp-b4 --seeds 5 --trials 60
    python benchmarks/search_quality.py --objectives digits --methods random tpe-b4 --seeds 5 --trials 80
    python benchmarks/search_quality.py --report            # the tables, from what is recorded
    python benchmarks/search_quality.py --verify-workflow   # the same proposals through snakemake

The study loop runs in this process, but every proposal comes from the code the workflow's jobs
run, with the workflow's trial ids and seeds:

* ``grid``: ``SearchSpace.grid()`` (the combinations of each parameter's ``grid:`` values) in an
  order shuffled by the seed (the workflow runs grid trials in parallel, in no meaningful order);
* ``random``: ``SearchSpace.sample(seed, i)``, trial ``r0000``, ``r0001``, ... as the plan draws them;
* ``tpe-b1``, ``tpe-b4``, ``gp-b4``: ``snaketune.bayes.propose_round`` round by round, with
  ``round_sizes(n_trials, n_startup=8, batch)`` and the earlier results turned into observations by
  ``snaketune.bayes.observations``, exactly what each round's ``propose`` job does;
* ``optuna-tpe``: the reference, plain sequential Optuna (``TPESampler(seed, multivariate=True,
  n_startup_trials=8)``, one study, ask/tell one trial at a time, no rounds), to show what the
  round machinery and batching cost.

Objectives: ``branin`` and ``hartmann6`` are scored by the functions of the trainers in
``benchmarks/trainers/`` (which the workflow runs under the trainer contract); ``digits`` and
``mnist1d`` train the built-in MLP in-process with ``snaketune.train.train`` (validation accuracy,
early stopping with patience 5, the trial seed ``trial_seed(seed, trial_id)`` as the workflow
uses; no per-epoch checkpoint, which does not change the result).

Each run (objective, method, seed) is appended to ``--out`` (JSON lines) as soon as it ends and is
skipped when the file already holds it with at least ``--trials`` trials, so the benchmark can be
run piecewise. The report prints, per objective, the median and quartiles over seeds of the best
value after n trials (regret f - f* for the functions, validation accuracy for the MLPs), and the
trials each method needs to reach random search's best of its ``--target-trials`` trials.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks" / "trainers"))

import branin as branin_trainer  # noqa: E402
import hartmann6 as hartmann6_trainer  # noqa: E402

from snaketune.bayes import bayes_trial_id, distributions, observations, propose_round, round_sizes  # noqa: E402
from snaketune.plan import grid_trial_id, random_trial_id, trial_seed  # noqa: E402
from snaketune.space import Fixed, SearchSpace  # noqa: E402

N_STARTUP = 8
METHODS = ("grid", "random", "tpe-b1", "tpe-b4", "gp-b4", "optuna-tpe")
BAYES = {"tpe-b1": ("tpe", 1), "tpe-b4": ("tpe", 4), "gp-b4": ("gp", 4)}
DEFAULT_OUT = REPO / "benchmarks" / "results" / "search_quality.jsonl"


def mlp_space(epochs: int) -> dict[str, Any]:
    """config/examples/bayes.yaml's search space; the `grid:` values (81 combinations) serve grid search only."""
    return {
        "lr": {"type": "float", "low": 1.0e-4, "high": 1.0e-1, "log": True, "grid": [3.0e-4, 3.0e-3, 3.0e-2]},
        "n_layers": {"type": "int", "low": 1, "high": 5, "grid": [1, 3, 5]},
        "hidden_units": {"type": "int", "low": 16, "high": 512, "log": True, "grid": [32, 128, 512]},
        "batch_size": [32, 64, 128],
        "dropout": {"type": "float", "low": 0.0, "high": 0.5, "grid": [0.1]},
        "weight_decay": {"type": "float", "low": 1.0e-6, "high": 1.0e-2, "log": True, "grid": [1.0e-4]},
        "epochs": epochs,
    }


@dataclass
class Objective:
    name: str
    space_config: dict[str, Any]
    direction: str
    optimum: float | None = None  # known global optimum (functions): the report shows regret
    data: dict[str, Any] | None = None  # MLP objectives: the data config
    function: Callable[[dict[str, Any]], float] | None = None
    trainer: str | None = None  # the trainer script the workflow runs
    space: SearchSpace = field(init=False)

    def __post_init__(self) -> None:
        self.space = SearchSpace.from_config(self.space_config)


OBJECTIVES = {
    "branin": Objective(
        "branin",
        {
            "x1": {"type": "float", "low": -5.0, "high": 10.0, "grid": [float(v) for v in np.linspace(-5, 10, 9)]},
            "x2": {"type": "float", "low": 0.0, "high": 15.0, "grid": [float(v) for v in np.linspace(0, 15, 9)]},
        },
        "minimize",
        optimum=branin_trainer.MINIMUM,
        function=branin_trainer.objective,
        trainer="benchmarks/trainers/branin.py",
    ),
    "hartmann6": Objective(
        "hartmann6",
        {n: {"type": "float", "low": 0.0, "high": 1.0, "grid": [0.25, 0.75]} for n in hartmann6_trainer.NAMES},
        "minimize",
        optimum=hartmann6_trainer.MINIMUM,
        function=hartmann6_trainer.objective,
        trainer="benchmarks/trainers/hartmann6.py",
    ),
    "digits": Objective(
        "digits", mlp_space(50), "maximize", data={"source": "digits", "val_fraction": 0.2, "test_fraction": 0.2, "seed": 0}
    ),
    "mnist1d": Objective(
        "mnist1d",
        mlp_space(30),
        "maximize",
        data={"source": "mnist1d", "n_samples": 4000, "val_fraction": 0.2, "test_fraction": 0.2, "seed": 0},
    ),
}


class Evaluator:
    """Scores one trial: the trainer's function, or the built-in trainer in-process (None = failed)."""

    def __init__(self, objective: Objective, workdir: Path) -> None:
        self.objective = objective
        self.workdir = workdir
        self.data_file: Path | None = None
        if objective.data is not None:
            from snaketune.config import resolve_config
            from snaketune.data import prepare

            # The workflow's defaults for everything the study does not set (early stopping: patience 5).
            cfg = resolve_config({"data": objective.data, "search_space": objective.space_config, "search": {"method": "random"}})
            self.data_file = workdir / f"{objective.name}.npz"
            prepare(cfg["data"], self.data_file)
            self.patience = cfg["early_stopping"]["patience"]

    def __call__(self, params: dict[str, Any], trial_id: str, search_seed: int) -> float | None:
        if self.objective.function is not None:
            return self.objective.function(params)
        from snaketune.files import write_yaml
        from snaketune.train import TrainFailed, TrialSettings, train

        out = self.workdir / "trial"
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        write_yaml(out / "params.yaml", params)
        settings = TrialSettings(
            params=out / "params.yaml",
            out=out,
            data=self.data_file,
            seed=trial_seed(search_seed, trial_id),
            metric="val_accuracy",
            direction="maximize",
            patience=self.patience,
            device="cpu",
            threads=1,
            checkpoint=False,
        )
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                return float(train(settings)["val_accuracy"])
        except TrainFailed:
            return None


def run_method(method: str, objective: Objective, evaluate: Evaluator, seed: int, n_trials: int) -> dict[str, Any]:
    """One search of ``n_trials`` trials; returns the objective of each trial in the order it was proposed."""
    space = objective.space
    values: list[float | None] = []
    propose_s = 0.0
    t_start = time.perf_counter()
    if method == "grid":
        points = space.grid()
        order = np.random.default_rng(seed).permutation(len(points))
        for i in order[:n_trials]:
            values.append(evaluate(points[i], grid_trial_id(points[i]), seed))
    elif method == "random":
        for i in range(n_trials):
            values.append(evaluate(space.sample(seed, i), random_trial_id(i), seed))
    elif method in BAYES:
        sampler, batch = BAYES[method]
        records: list[dict[str, Any]] = []
        for r, size in enumerate(round_sizes(n_trials, N_STARTUP, batch)):
            t0 = time.perf_counter()
            history = observations(records, min_count=N_STARTUP)
            proposals = propose_round(
                space, r, size, history, direction=objective.direction, sampler=sampler, seed=seed, n_startup=N_STARTUP
            )
            propose_s += time.perf_counter() - t0
            for k, params in enumerate(proposals):
                tid = bayes_trial_id(r, k)
                value = evaluate(params, tid, seed)
                values.append(value)
                records.append(
                    {"trial": tid, "status": "ok" if value is not None else "failed", "objective": value, "params": params}
                )
    elif method == "optuna-tpe":
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        sampler = optuna.samplers.TPESampler(seed=seed, multivariate=True, n_startup_trials=N_STARTUP)
        study = optuna.create_study(direction=objective.direction, sampler=sampler)
        dists = distributions(space)
        fixed = {p.name: p.value for p in space.params if isinstance(p, Fixed)}
        for i in range(n_trials):
            t0 = time.perf_counter()
            trial = study.ask(dists)
            propose_s += time.perf_counter() - t0
            params = {n: (fixed[n] if n in fixed else trial.params[n]) for n in space.names}
            params = {k: v.item() if hasattr(v, "item") else v for k, v in params.items()}
            value = evaluate(params, f"q{i:04d}", seed)
            values.append(value)
            if value is None:
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
            else:
                study.tell(trial, value)
    else:
        raise ValueError(f"unknown method {method!r}")
    return {"values": values, "seconds": time.perf_counter() - t_start, "propose_seconds": propose_s}


# ---------------------------------------------------------------------------------------------- records


def load_records(path: Path) -> dict[tuple[str, str, int], dict[str, Any]]:
    """The longest recorded run of each (objective, method, seed)."""
    runs: dict[tuple[str, str, int], dict[str, Any]] = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            if line.strip():
                r = json.loads(line)
                key = (r["objective"], r["method"], r["seed"])
                if key not in runs or len(r["values"]) > len(runs[key]["values"]):
                    runs[key] = r
    return runs


def best_so_far(values: list[float | None], direction: str) -> np.ndarray:
    sign = 1.0 if direction == "minimize" else -1.0
    v = np.array([sign * x if x is not None and math.isfinite(x) else np.inf for x in values])
    return sign * np.minimum.accumulate(v)


def trials_to_reach(curve: np.ndarray, target: float, direction: str) -> float:
    hit = curve <= target if direction == "minimize" else curve >= target
    idx = np.flatnonzero(hit)
    return float(idx[0] + 1) if len(idx) else math.inf


def quartiles(xs: list[float]) -> tuple[float, float, float]:
    a = np.asarray(xs, dtype=float)
    q1, med, q3 = np.percentile(a, [25, 50, 75])
    return float(med), float(q1), float(q3)


def fmt_value(x: float, objective: Objective) -> str:
    if objective.optimum is not None:  # regret
        return f"{x:.2g}" if x >= 1e-3 else f"{x:.1e}"
    return f"{x:.4f}"


def fmt_trials(x: float, cap: int) -> str:
    return f">{cap}" if x > cap else f"{x:.0f}" if x == int(x) else f"{x:.1f}"


def report(out: Path, checkpoints: list[int], target_trials: int, target_at: int) -> None:
    runs = load_records(out)
    if not runs:
        sys.exit(f"nothing recorded in {out}")
    print(f"Recorded in {out.relative_to(REPO) if out.is_relative_to(REPO) else out}; {date.today().isoformat()}.\n")
    for name, objective in OBJECTIVES.items():
        mine = {k: r for k, r in runs.items() if k[0] == name}
        if not mine:
            continue
        curves: dict[str, dict[int, np.ndarray]] = {}
        for (_, method, seed), r in sorted(mine.items()):
            curve = best_so_far(r["values"], objective.direction)
            if objective.optimum is not None:
                curve = curve - objective.optimum
            curves.setdefault(method, {})[seed] = curve
        # The target: random search's best after `target_trials` trials (or after all it ran, if fewer).
        n_random = min((len(c) for c in curves.get("random", {}).values()), default=0)
        n_target = min(target_trials, n_random)
        targets = {s: c[n_target - 1] for s, c in curves.get("random", {}).items()} if n_target else {}
        longest = max(len(c) for per_seed in curves.values() for c in per_seed.values())
        shown_at = [n for n in checkpoints if n <= longest]
        shown = "regret f − f*, lower is better" if objective.optimum is not None else "validation accuracy, higher is better"
        print(f"### {name}: best so far ({shown}), median [quartiles] over seeds\n")
        head = " | ".join(f"after {n}" for n in shown_at)
        print(f"| method | seeds | trials | {head} | trials to reach random's {n_target}-trial best | propose s/trial |")
        print("|---|---|---|" + "---|" * len(shown_at) + "---|---|")
        direction = "minimize" if objective.optimum is not None else objective.direction
        for method in METHODS:
            if method not in curves:
                continue
            per_seed = curves[method]
            n_max = min(len(c) for c in per_seed.values())
            cells = []
            for n in shown_at:
                if n > n_max:
                    cells.append("")
                    continue
                med, q1, q3 = quartiles([c[n - 1] for c in per_seed.values()])
                cells.append(f"{fmt_value(med, objective)} [{fmt_value(q1, objective)}, {fmt_value(q3, objective)}]")
            paired = [trials_to_reach(per_seed[s], targets[s], direction) for s in per_seed if s in targets]
            if paired:
                capped = [min(x, n_max + 1) for x in paired]
                med, q1, q3 = quartiles(capped)
                n_hit = sum(x <= n_max for x in paired)
                reach = (
                    f"{fmt_trials(med, n_max)} [{fmt_trials(q1, n_max)}, {fmt_trials(q3, n_max)}] "
                    f"({n_hit}/{len(paired)} within {n_max})"
                )
            else:
                reach = ""
            prop = [
                mine[(name, method, s)]["propose_seconds"] / len(mine[(name, method, s)]["values"])
                for s in per_seed
                if method != "grid" and method != "random"
            ]
            prop_s = f"{np.median(prop):.3f}" if prop else "–"
            print(f"| {method} | {len(per_seed)} | {n_max} | {' | '.join(cells)} | {reach} | {prop_s} |")
        if "tpe-b4" in curves and targets and n_target == target_trials:
            tpe = curves["tpe-b4"]
            common = [s for s in tpe if s in targets and len(tpe[s]) >= target_at]
            if common:
                cap = min(len(tpe[s]) for s in common)
                at = np.median([tpe[s][target_at - 1] for s in common])
                ref = np.median([targets[s] for s in common])
                reach = np.median([trials_to_reach(tpe[s], targets[s], direction) for s in common])
                better = at <= ref if direction == "minimize" else at >= ref
                print(
                    f"\nTarget (tpe-b4 reaches random's {target_trials}-trial best within {target_at} trials), "
                    f"{len(common)} seeds: median best of tpe-b4 after {target_at} = {fmt_value(at, objective)} vs "
                    f"median best of random after {target_trials} = {fmt_value(ref, objective)} -> "
                    f"{'met' if better else 'missed'}; paired by seed, median trials to reach = "
                    f"{fmt_trials(reach, cap)} -> {'met' if reach <= target_at else 'missed'}."
                )
        print()


# ---------------------------------------------------------------------------------------------- workflow check


def snakemake_exe() -> str:
    exe = shutil.which("snakemake", path=str(Path(sys.executable).parent)) or shutil.which("snakemake")
    if not exe:
        sys.exit("snakemake is not installed")
    return exe


def workflow_study(objective: Objective, method: str, seed: int, n_trials: int) -> dict[str, Any]:
    search: dict[str, Any] = {"method": "grid" if method == "grid" else "random" if method == "random" else "bayes", "seed": seed}
    if method in BAYES:
        sampler, batch = BAYES[method]
        search.update(sampler=sampler, batch=batch, n_startup=N_STARTUP, n_trials=n_trials)
    elif method == "random":
        search["n_trials"] = n_trials
    cfg: dict[str, Any] = {"study": f"{objective.name}-{method}", "search": search, "search_space": objective.space_config}
    cfg["final"] = {"retrain": False}
    if objective.trainer is not None:
        cfg["trainer"] = {"command": f"{sys.executable} {REPO / objective.trainer}"}
        cfg["objective"] = {"metric": "loss", "direction": "minimize"}
    else:
        cfg["data"] = objective.data
    return cfg


def verify_workflow(cases: list[tuple[str, str, int, int]], workdir: Path) -> None:
    """Run each case as a real study (snakemake --cores 2) and compare it with the in-process driver."""
    print("| study | method | seed | trials | wall s (snakemake) | proposals identical | best (workflow) | best (in-process) |")
    print("|---|---|---|---|---|---|---|---|")
    for name, method, seed, n_trials in cases:
        objective = OBJECTIVES[name]
        cfg = workflow_study(objective, method, seed, n_trials)
        study_dir = workdir / f"wf-{name}-{method}-{seed}"
        shutil.rmtree(study_dir, ignore_errors=True)
        study_dir.mkdir(parents=True)
        (study_dir / "study.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
        cmd = [snakemake_exe(), "--snakefile", str(REPO / "Snakefile"), "--directory", str(study_dir)]
        cmd += ["--configfile", str(study_dir / "study.yaml"), "--cores", "2", "--quiet", "all"]
        env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=study_dir, capture_output=True, text=True, env=env)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            sys.exit(f"snakemake failed for {name}/{method}:\n{proc.stderr[-4000:]}")
        results = study_dir / "results" / cfg["study"]
        # The in-process driver, recording the proposals of each round as the propose jobs write them.
        evaluate = Evaluator(objective, workdir)
        space = objective.space
        same = True
        if method in BAYES:
            sampler, batch = BAYES[method]
            records: list[dict[str, Any]] = []
            for r, size in enumerate(round_sizes(n_trials, N_STARTUP, batch)):
                history = observations(records, min_count=N_STARTUP)
                mine = propose_round(
                    space, r, size, history, direction=objective.direction, sampler=sampler, seed=seed, n_startup=N_STARTUP
                )
                theirs = yaml.safe_load((results / "rounds" / f"round-{r}.yaml").read_text())["trials"]
                same &= theirs == {bayes_trial_id(r, k): p for k, p in enumerate(mine)}
                for k, params in enumerate(mine):
                    value = evaluate(params, bayes_trial_id(r, k), seed)
                    records.append(
                        {
                            "trial": bayes_trial_id(r, k),
                            "status": "ok" if value is not None else "failed",
                            "objective": value,
                            "params": params,
                        }
                    )
            values = [r["objective"] for r in records]
        else:
            plan = (
                [(grid_trial_id(p), p) for p in space.grid()]
                if method == "grid"
                else [(random_trial_id(i), space.sample(seed, i)) for i in range(n_trials)]
            )
            values = []
            for tid, params in plan:
                same &= yaml.safe_load((results / "trials" / tid / "params.yaml").read_text()) == params
                values.append(evaluate(params, tid, seed))
        best = yaml.safe_load((results / "best.yaml").read_text())["value"]
        mine_best = best_so_far(values, objective.direction)[-1]
        print(
            f"| {name} | {method} | {seed} | {n_trials} | {wall:.1f} | {'yes' if same else 'NO'} | {best!r} | {float(mine_best)!r} |",
            flush=True,
        )


# ---------------------------------------------------------------------------------------------- main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--objectives", nargs="+", choices=list(OBJECTIVES), default=["branin", "hartmann6"])
    ap.add_argument("--methods", nargs="+", choices=METHODS, default=[m for m in METHODS if m != "gp-b4"])
    ap.add_argument("--seeds", type=int, default=10, help="search seeds 0 .. N-1")
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--trials", type=int, default=80)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON lines, one per (objective, method, seed)")
    ap.add_argument("--report", action="store_true", help="only print the tables of what --out holds")
    ap.add_argument("--checkpoints", type=int, nargs="+", default=[10, 20, 40, 60, 80])
    ap.add_argument("--target-trials", type=int, default=80, help="random search's trials whose best is the target")
    ap.add_argument("--target-at", type=int, default=40, help="trials within which tpe-b4 should reach the target")
    ap.add_argument(
        "--verify-workflow",
        action="store_true",
        help="run branin tpe-b4 (40 trials), hartmann6 gp-b4 (20), branin random (30) and digits tpe-b4 (16) "
        "through snakemake and compare with the in-process driver",
    )
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    if args.verify_workflow:
        cases = [
            ("branin", "tpe-b4", 0, 40),
            ("hartmann6", "gp-b4", 0, 20),
            ("branin", "random", 0, 30),
            ("digits", "tpe-b4", 0, 16),
        ]
        with tempfile.TemporaryDirectory() as tmp:
            verify_workflow(cases, Path(tmp))
        return
    if not args.report:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        done = load_records(args.out)
        with tempfile.TemporaryDirectory() as tmp:
            for name in args.objectives:
                objective = OBJECTIVES[name]
                evaluate = Evaluator(objective, Path(tmp))
                for method in args.methods:
                    for seed in range(args.first_seed, args.first_seed + args.seeds):
                        prev = done.get((name, method, seed))
                        wanted = min(args.trials, objective.space.grid_size()) if method == "grid" else args.trials
                        if prev is not None and len(prev["values"]) >= wanted:
                            continue
                        r = run_method(method, objective, evaluate, seed, args.trials)
                        rec = {"objective": name, "method": method, "seed": seed, **r}
                        with args.out.open("a") as f:
                            f.write(json.dumps(rec) + "\n")
                        best = best_so_far(r["values"], objective.direction)[-1]
                        print(
                            f"{name} {method} seed {seed}: best {best:.6g} in {r['seconds']:.1f} s", file=sys.stderr, flush=True
                        )
    report(args.out, args.checkpoints, args.target_trials, args.target_at)


if __name__ == "__main__":
    main()
