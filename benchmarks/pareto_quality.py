"""Several objectives: the hypervolume of the Pareto front vs number of trials, per search method,
and Pareto-rank vs first-objective promotion in successive halving, over seeds (issue 17).

    python benchmarks/pareto_quality.py --methods random snaketune-tpe snaketune-tpe-b1 optuna-tpe --seeds 10 --trials 60
    python benchmarks/pareto_quality.py --problems zdt1 binh-korn-c tnk digits --methods snaketune-gp --seeds 3 --trials 40
    python benchmarks/pareto_quality.py --problems digits --seeds 5 --trials 40
    python benchmarks/pareto_quality.py --halving --seeds 10
    python benchmarks/pareto_quality.py --report            # the tables, from what is recorded

**Search (part A).** The study loop runs in this process; every proposal comes from the code the
workflow's jobs run, with the workflow's trial ids and seeds:

* ``random``: ``SearchSpace.sample(seed, i)``, trials ``r0000``, ``r0001``, ... as the plan draws them;
* ``snaketune-tpe``, ``snaketune-gp`` (batch 4), ``snaketune-tpe-b1`` (batch 1):
  ``snaketune.bayes.propose_round`` round by round (``round_sizes(n_trials, n_startup=8, batch)``),
  the earlier results turned into observations by ``snaketune.bayes.observations(records, 8,
  objective=objective)``, with ``direction=objective.directions`` and the limits' names, exactly
  what each round's ``propose`` job (workflow/scripts/propose.py) does;
* ``optuna-tpe``: the reference, plain sequential multi-objective Optuna (``TPESampler(seed,
  multivariate=True, n_startup_trials=8)``, one study with one direction per objective, ask/tell
  one trial at a time, limits given with ``Trial.set_constraint``), to show what rounds cost.

Problems (each with a fixed reference point, so hypervolumes compare across methods and seeds):

* ``zdt1``: ZDT1 in 6 dimensions (x in [0, 1]^6), minimise f1 = x1 and f2 = g (1 - sqrt(f1 / g)),
  g = 1 + 9 mean(x2..x6); front f2 = 1 - sqrt(f1); reference (1.1, 11) (the worst values, f1 = 1
  and f2 = g = 10, plus 10 %);
* ``binh-korn``: Binh and Korn, x in [0, 5], y in [0, 3], minimise f1 = 4x² + 4y² and
  f2 = (x - 5)² + (y - 5)²; reference (140, 55) (the worst values 136 and 50, plus ~10 % of 50);
* ``binh-korn-c``: the same with its two constraints, (x - 5)² + y² <= 25 and
  (x - 8)² + (y + 3)² >= 7.7, as ``objective.constraints`` on the metrics ``c1`` and ``c2``; a trial
  beyond a limit is ``infeasible`` and only feasible trials count for the hypervolume (the
  constraints leave the front itself unchanged, and only (x - 5)² + y² <= 25 cuts the box);
* ``tnk``: Tanaka's problem, x, y in [0, pi], minimise f1 = x and f2 = y subject to
  x² + y² - 0.1 cos(16 atan(x / y)) >= 1 (metric ``c1``) and (x - 0.5)² + (y - 0.5)² <= 0.5
  (``c2``): the front lies on the first constraint's wavy boundary, in pieces, and about 5 % of
  the box is feasible, so here a sampler must model the limits; reference (1.2, 1.2);
* ``digits``: the built-in MLP trained in-process (``snaketune.train.train``, early stopping with
  patience 5, the trial seed ``trial_seed(seed, trial_id)`` as the workflow uses), maximise
  ``val_accuracy`` and minimise ``n_parameters``; the space of config/examples/pareto.yaml without
  its limit, epochs 20; reference (accuracy 0, n_parameters 150,794 = the largest network of the
  space, 3 layers of 256), the hypervolume divided by 150,794 (a fraction of the reference box).
  On that linear scale the front's most accurate mid-sized network decides nearly all of the
  hypervolume, so the report also measures it with log10(n_parameters) (reference log10(150,794),
  divided by log10(150,794 / 310), 310 = the smallest network): every decade of size counts alike.

For the functions the report shows the relative gap to the true front's hypervolume, 1 - HV / HV* (HV* from
10^5 or more points of the known front; lower is better); for digits the hypervolume (higher is better).

**Successive halving (part B, ``--halving``).** On digits, per seed the same 27 random
configurations (``r0000`` ..) start at 1 epoch; eta 3, rungs 27 → 9 → 3 → 1 at 1, 3, 9 and 27 epochs.
Survivors are chosen by ``snaketune.schedule.promote(records, n, objective)`` (``pareto``: front by
front, crowding distance within the last front) or ``promote(records, n, "val_accuracy",
"maximize")`` (``first-objective``), and each resumes from its previous rung's checkpoint
(``TrialSettings(resume=..., budget=..., patience=0, restore_best=False)``, as the workflow's
rung jobs do; multifidelity.py shows this equals an uninterrupted run bit for bit), so both train
exactly the same epochs. Reported: the hypervolume of every trial's last record (its highest rung;
both spend the same epochs), the hypervolume of the front the library reports (``pareto_front``:
the trials of the highest budget only), and the epochs each trained.

Each run is appended to ``--out`` (JSON lines) as soon as it ends and skipped when the file already
holds it with at least ``--trials`` trials, so the benchmark can be run piecewise.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import shutil
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

REPO = Path(__file__).resolve().parents[1]

from snaketune.bayes import bayes_trial_id, distributions, observations, propose_round, round_sizes  # noqa: E402
from snaketune.pareto import hypervolume  # noqa: E402
from snaketune.plan import random_trial_id, trial_seed  # noqa: E402
from snaketune.records import FEASIBLE, Objective, pareto_front  # noqa: E402
from snaketune.schedule import promote, successive_halving  # noqa: E402
from snaketune.space import Fixed, SearchSpace  # noqa: E402

N_STARTUP = 8
METHODS = ("random", "snaketune-tpe", "snaketune-tpe-b1", "snaketune-gp", "optuna-tpe")
BAYES = {"snaketune-tpe": ("tpe", 4), "snaketune-tpe-b1": ("tpe", 1), "snaketune-gp": ("gp", 4)}
PROMOTIONS = ("pareto", "first-objective")
DEFAULT_OUT = REPO / "benchmarks" / "results" / "pareto_quality.jsonl"
DIGITS_MAX_PARAMETERS = 150_794  # 64 -> 256 -> 256 -> 256 -> 10, checked against the model in DigitsTrainer
DIGITS_MIN_PARAMETERS = 310  # 64 -> 4 -> 10

# ---------------------------------------------------------------------------------------------- problems


def zdt1(params: dict[str, Any]) -> dict[str, float]:
    x = [float(params[f"x{i}"]) for i in range(1, 7)]
    g = 1 + 9 * sum(x[1:]) / (len(x) - 1)
    return {"f1": x[0], "f2": g * (1 - math.sqrt(x[0] / g))}


def binh_korn(params: dict[str, Any]) -> dict[str, float]:
    x, y = float(params["x"]), float(params["y"])
    return {
        "f1": 4 * x * x + 4 * y * y,
        "f2": (x - 5) ** 2 + (y - 5) ** 2,
        "c1": (x - 5) ** 2 + y * y,  # <= 25
        "c2": (x - 8) ** 2 + (y + 3) ** 2,  # >= 7.7
    }


def zdt1_front() -> list[list[float]]:
    f1 = np.linspace(0.0, 1.0, 100_001)
    return np.stack([f1, 1 - np.sqrt(f1)], axis=1).tolist()


def binh_korn_front() -> list[list[float]]:
    # The Pareto set: x = y in [0, 3], then y = 3 and x in [3, 5] (inside both constraints).
    t = np.linspace(0.0, 3.0, 60_001)
    u = np.linspace(3.0, 5.0, 40_001)
    x, y = np.concatenate([t, u]), np.concatenate([t, np.full_like(u, 3.0)])
    return np.stack([4 * x * x + 4 * y * y, (x - 5) ** 2 + (y - 5) ** 2], axis=1).tolist()


def tnk(params: dict[str, Any]) -> dict[str, float]:
    x, y = float(params["x"]), float(params["y"])
    return {
        "f1": x,
        "f2": y,
        "c1": x * x + y * y - 0.1 * math.cos(16 * math.atan2(x, y)),  # >= 1
        "c2": (x - 0.5) ** 2 + (y - 0.5) ** 2,  # <= 0.5
    }


def tnk_front() -> list[list[float]]:
    # Pareto-optimal points lie on the boundary of the first constraint, x = r sin(a), y = r cos(a)
    # with r² = 1 + 0.1 cos(16 a): keep those within the second, then the non-dominated ones.
    a = np.linspace(0.0, math.pi / 2, 400_001)
    r = np.sqrt(1 + 0.1 * np.cos(16 * a))
    x, y = r * np.sin(a), r * np.cos(a)
    keep = (x - 0.5) ** 2 + (y - 0.5) ** 2 <= 0.5
    x, y = x[keep], y[keep]
    order = np.argsort(x, kind="stable")
    x, y = x[order], y[order]
    front = y < np.minimum.accumulate(np.concatenate([[np.inf], y[:-1]]))  # y below every y to its left
    return np.stack([x[front], y[front]], axis=1).tolist()


@dataclass(frozen=True)
class View:
    """How a hypervolume is measured: the reference point (in losses, lower is better, as
    Objective.losses gives them), the divisor, and whether the second loss is taken as log10."""

    label: str
    reference: tuple[float, float]
    scale: float = 1.0
    log_second: bool = False


@dataclass
class Problem:
    name: str
    space_config: dict[str, Any]
    objective_config: dict[str, Any]
    views: tuple[View, ...]  # the first is the main one (HV*, the progress lines)
    function: Callable[[dict[str, Any]], dict[str, float]] | None = None  # None: the MLP on digits
    front: Callable[[], list[list[float]]] | None = None  # the true front's losses, for HV*
    space: SearchSpace = field(init=False)
    objective: Objective = field(init=False)

    def __post_init__(self) -> None:
        self.space = SearchSpace.from_config(self.space_config)
        self.objective = Objective.from_config(self.objective_config)


BINH_KORN_SPACE = {"x": {"type": "float", "low": 0.0, "high": 5.0}, "y": {"type": "float", "low": 0.0, "high": 3.0}}
TWO_MINIMISED = {"metric": "f1", "direction": "minimize", "also": {"f2": "minimize"}}
DIGITS_SPACE = {  # config/examples/pareto.yaml's, with fewer epochs
    "lr": {"type": "float", "low": 1.0e-3, "high": 1.0e-1, "log": True},
    "n_layers": {"type": "int", "low": 1, "high": 3},
    "hidden_units": {"type": "int", "low": 4, "high": 256, "log": True},
    "batch_size": [32, 64],
    "dropout": {"type": "float", "low": 0.0, "high": 0.3},
    "epochs": 20,
}
DIGITS_DATA = {"source": "digits", "val_fraction": 0.2, "test_fraction": 0.2, "seed": 0}

PROBLEMS = {
    "zdt1": Problem(
        "zdt1",
        {f"x{i}": {"type": "float", "low": 0.0, "high": 1.0} for i in range(1, 7)},
        TWO_MINIMISED,
        (View("hypervolume", (1.1, 11.0)),),
        function=zdt1,
        front=zdt1_front,
    ),
    "binh-korn": Problem(
        "binh-korn",
        BINH_KORN_SPACE,
        TWO_MINIMISED,
        (View("hypervolume", (140.0, 55.0)),),
        function=binh_korn,
        front=binh_korn_front,
    ),
    "binh-korn-c": Problem(
        "binh-korn-c",
        BINH_KORN_SPACE,
        {**TWO_MINIMISED, "constraints": {"c1": {"max": 25.0}, "c2": {"min": 7.7}}},
        (View("hypervolume", (140.0, 55.0)),),
        function=binh_korn,
        front=binh_korn_front,
    ),
    "tnk": Problem(
        "tnk",
        {"x": {"type": "float", "low": 0.0, "high": math.pi}, "y": {"type": "float", "low": 0.0, "high": math.pi}},
        {**TWO_MINIMISED, "constraints": {"c1": {"min": 1.0}, "c2": {"max": 0.5}}},
        (View("hypervolume", (1.2, 1.2)),),
        function=tnk,
        front=tnk_front,
    ),
    "digits": Problem(
        "digits",
        DIGITS_SPACE,
        {"metric": "val_accuracy", "direction": "maximize", "also": {"n_parameters": "minimize"}},
        (
            View("hypervolume / (1 × 150,794)", (0.0, float(DIGITS_MAX_PARAMETERS)), float(DIGITS_MAX_PARAMETERS)),
            View(
                "hypervolume with log10(n_parameters) / (1 × log10(150,794 / 310))",
                (0.0, math.log10(DIGITS_MAX_PARAMETERS)),
                math.log10(DIGITS_MAX_PARAMETERS / DIGITS_MIN_PARAMETERS),
                log_second=True,
            ),
        ),
    ),
}

# ---------------------------------------------------------------------------------------------- evaluation


class DigitsTrainer:
    """The built-in trainer in-process on prepared digits, as search_quality.py's Evaluator runs it
    (copied rather than imported: that one returns the accuracy only, this needs every metric)."""

    KEEP = ("val_accuracy", "val_loss", "n_parameters", "epochs_run", "epochs_this_run")

    def __init__(self, workdir: Path) -> None:
        from snaketune.config import resolve_config
        from snaketune.data import prepare

        # The workflow's defaults for everything the study does not set (early stopping: patience 5).
        cfg = resolve_config({"data": DIGITS_DATA, "search_space": DIGITS_SPACE, "search": {"method": "random"}})
        self.workdir = workdir
        self.data_file = workdir / "digits.npz"
        prepare(cfg["data"], self.data_file)
        self.patience = cfg["early_stopping"]["patience"]
        self._check_reference()

    def _check_reference(self) -> None:
        from snaketune.hparams import HParams
        from snaketune.model import build_model, n_parameters

        for n_layers, hidden_units, expected in ((3, 256, DIGITS_MAX_PARAMETERS), (1, 4, DIGITS_MIN_PARAMETERS)):
            hp = HParams.from_params({"n_layers": n_layers, "hidden_units": hidden_units})
            n = n_parameters(build_model("mlp", (64,), 10, hp))
            if n != expected:
                sys.exit(f"the digits MLP with {n_layers} layers of {hidden_units} has {n} parameters, not {expected}")

    def run(
        self,
        params: dict[str, Any],
        seed: int,
        out: Path,
        *,
        budget: int | None = None,
        resume: Path | None = None,
        schedule: bool = False,
    ) -> dict[str, Any] | None:
        """One run's metrics (None = failed); ``schedule``: a rung (patience 0, last epoch's weights, a checkpoint)."""
        from snaketune.files import write_yaml
        from snaketune.train import TrainFailed, TrialSettings, train

        out.mkdir(parents=True, exist_ok=True)
        write_yaml(out / "params.yaml", params)
        settings = TrialSettings(
            params=out / "params.yaml",
            out=out,
            data=self.data_file,
            seed=seed,
            budget=budget,
            resume=resume,
            metric="val_accuracy",
            direction="maximize",
            patience=0 if schedule else self.patience,  # the schedule decides how long a rung trains
            restore_best=not schedule,  # a rung continues from its last epoch, not its best one
            device="cpu",
            threads=1,
            checkpoint=schedule,
        )
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                metrics = train(settings)
        except TrainFailed:
            return None
        return {k: metrics[k] for k in self.KEEP if k in metrics}


class Evaluator:
    """Scores one trial as a record: ``trial``, ``status``, ``objective`` (the first metric), ``params``, ``metrics``."""

    def __init__(self, problem: Problem, workdir: Path) -> None:
        self.problem = problem
        self.workdir = workdir
        self.digits = DigitsTrainer(workdir) if problem.function is None else None

    def __call__(self, params: dict[str, Any], trial_id: str, search_seed: int) -> dict[str, Any]:
        if self.problem.function is not None:
            metrics: dict[str, Any] | None = self.problem.function(params)
        else:
            out = self.workdir / "trial"
            shutil.rmtree(out, ignore_errors=True)
            metrics = self.digits.run(params, trial_seed(search_seed, trial_id), out)
        if metrics is None:
            return {"trial": trial_id, "status": "failed", "objective": None, "params": params, "metrics": {}}
        objective = metrics[self.problem.objective.metric]
        return {"trial": trial_id, "status": "ok", "objective": objective, "params": params, "metrics": metrics}


def run_method(method: str, problem: Problem, evaluate: Evaluator, seed: int, n_trials: int) -> dict[str, Any]:
    """One search of ``n_trials`` trials; returns each trial's record in the order it was proposed."""
    space, objective = problem.space, problem.objective
    records: list[dict[str, Any]] = []
    propose_s = 0.0
    t_start = time.perf_counter()
    if method == "random":
        for i in range(n_trials):
            records.append(evaluate(space.sample(seed, i), random_trial_id(i), seed))
    elif method in BAYES:
        sampler, batch = BAYES[method]
        for r, size in enumerate(round_sizes(n_trials, N_STARTUP, batch)):
            t0 = time.perf_counter()
            # What workflow/scripts/propose.py does with objective.also / objective.constraints.
            history = observations(records, min_count=N_STARTUP, objective=objective)
            proposals = propose_round(
                space,
                r,
                size,
                history,
                direction=objective.directions,
                sampler=sampler,
                seed=seed,
                n_startup=N_STARTUP,
                limits=[str(lim) for lim in objective.limits],
            )
            propose_s += time.perf_counter() - t0
            for k, params in enumerate(proposals):
                records.append(evaluate(params, bayes_trial_id(r, k), seed))
    elif method == "optuna-tpe":
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        sampler = optuna.samplers.TPESampler(seed=seed, multivariate=True, n_startup_trials=N_STARTUP)
        study = optuna.create_study(directions=list(objective.directions), sampler=sampler)
        dists = distributions(space)
        fixed = {p.name: p.value for p in space.params if isinstance(p, Fixed)}
        for i in range(n_trials):
            t0 = time.perf_counter()
            trial = study.ask(dists)
            propose_s += time.perf_counter() - t0
            params = {n: (fixed[n] if n in fixed else trial.params[n]) for n in space.names}
            params = {k: v.item() if hasattr(v, "item") else v for k, v in params.items()}
            record = evaluate(params, f"q{i:04d}", seed)
            records.append(record)
            standing = objective.standing(record)
            if standing.values is None:
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
                continue
            for name, slack in objective.slacks(record).items():
                trial.set_constraint(name, slack)
            study.tell(trial, list(standing.values))
    else:
        raise ValueError(f"unknown method {method!r}")
    return {"records": records, "seconds": time.perf_counter() - t_start, "propose_seconds": propose_s}


# ---------------------------------------------------------------------------------------------- successive halving


def run_halving(promotion: str, trainer: DigitsTrainer, workdir: Path, seed: int, n_configs: int, eta: int, max_epochs: int):
    """One successive-halving bracket on digits; every rung record, in execution order."""
    problem = PROBLEMS["digits"]
    space, objective = problem.space, problem.objective
    bracket = successive_halving(n_configs, 1, max_epochs, eta)
    params_of = {random_trial_id(i): space.sample(seed, i) for i in range(n_configs)}
    records: list[dict[str, Any]] = []
    rung_records: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    for rung in bracket.rungs:
        if rung.index == 0:
            ids = list(params_of)
        elif promotion == "pareto":
            ids = promote(rung_records, rung.n, objective)
        else:
            ids = promote(rung_records, rung.n, objective.metric, objective.direction)
        rung_records = []
        for tid in ids[: rung.n]:
            prev = workdir / tid / f"rung-{rung.index - 1}" / "checkpoint.pt" if rung.index > 0 else None
            metrics = trainer.run(
                params_of[tid],
                trial_seed(seed, tid),
                workdir / tid / f"rung-{rung.index}",
                budget=rung.budget,
                resume=prev,
                schedule=True,
            )
            rec: dict[str, Any] = {"trial": tid, "params": params_of[tid], "rung": rung.index, "budget": rung.budget}
            if metrics is None:
                rec.update(status="failed", objective=None, metrics={})
            else:
                rec.update(status="ok", objective=metrics["val_accuracy"], metrics=metrics)
            rung_records.append(rec)
            records.append(rec)
    shutil.rmtree(workdir, ignore_errors=True)
    epochs = sum(r["metrics"].get("epochs_this_run", 0) for r in records)
    return {"records": records, "epochs": epochs, "seconds": time.perf_counter() - t0}


def last_records(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every trial's record of its highest rung (as records.load_records keeps it)."""
    by_trial: dict[str, dict[str, Any]] = {}
    for r in records:
        if r["trial"] not in by_trial or r["rung"] > by_trial[r["trial"]]["rung"]:
            by_trial[r["trial"]] = r
    return list(by_trial.values())


# ---------------------------------------------------------------------------------------------- analysis


def front_hypervolume(records: list[dict[str, Any]], problem: Problem, view: View | None = None) -> float:
    """The hypervolume of the feasible records (failed and infeasible ones count for nothing)."""
    objective, view = problem.objective, view or problem.views[0]
    losses = []
    for r in records:
        standing = objective.standing(r)
        if standing.status == FEASIBLE:
            loss = objective.losses(standing.values)
            if view.log_second:
                loss[1] = math.log10(loss[1])
            losses.append(loss)
    return hypervolume(losses, view.reference) / view.scale if losses else 0.0


_OPTIMA: dict[str, float] = {}


def optimal_hypervolume(problem: Problem) -> float | None:
    if problem.front is None:
        return None
    if problem.name not in _OPTIMA:
        view = problem.views[0]
        _OPTIMA[problem.name] = hypervolume(problem.front(), view.reference) / view.scale
    return _OPTIMA[problem.name]


def load_runs(path: Path) -> tuple[dict[tuple[str, str, int], dict], dict[tuple[str, int], dict]]:
    """The longest recorded search of each (problem, method, seed), and each (promotion, seed)'s halving run."""
    searches: dict[tuple[str, str, int], dict] = {}
    halvings: dict[tuple[str, int], dict] = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            if not line.strip():
                continue
            r = json.loads(line)
            if r["kind"] == "halving":
                halvings[(r["promotion"], r["seed"])] = r
                continue
            key = (r["problem"], r["method"], r["seed"])
            if key not in searches or len(r["records"]) > len(searches[key]["records"]):
                searches[key] = r
    return searches, halvings


def quartiles(xs: list[float]) -> tuple[float, float, float]:
    q1, med, q3 = np.percentile(np.asarray(xs, dtype=float), [25, 50, 75])
    return float(med), float(q1), float(q3)


def fmt(x: float, spec: str = ".4f") -> str:
    return format(x, spec)


def fmt_q(xs: list[float], spec: str = ".4f") -> str:
    med, q1, q3 = quartiles(xs)
    return f"{fmt(med, spec)} [{fmt(q1, spec)}, {fmt(q3, spec)}]"


def trials_to_reach(records: list[dict], problem: Problem, view: View, target: float) -> float:
    """Trials until the hypervolume first reaches ``target`` (inf: never)."""
    for n in range(1, len(records) + 1):
        if front_hypervolume(records[:n], problem, view) >= target - 1e-12:
            return float(n)
    return math.inf


def fmt_trials(x: float, cap: int) -> str:
    return f">{cap}" if x > cap else f"{x:.0f}" if x == int(x) else f"{x:.1f}"


def search_table(
    name: str,
    problem: Problem,
    view: View,
    mine: dict,
    runs: dict[str, dict[int, list[dict]]],
    shown_at: list[int],
    n_random: int,
) -> None:
    """One problem's table for one way of measuring the hypervolume."""
    optimum = optimal_hypervolume(problem) if view is problem.views[0] else None
    targets = {s: front_hypervolume(recs, problem, view) for s, recs in runs.get("random", {}).items()}
    if optimum is not None:
        what = f"relative {view.label} gap 1 − HV / HV* (HV* = {optimum:.6g}; lower is better)"
    else:
        what = f"{view.label} (higher is better)"
    print(f"### {name}: {what}, median [quartiles] over seeds; reference point ({', '.join(f'{v:g}' for v in view.reference)})\n")
    head = " | ".join(f"after {n}" for n in shown_at)
    print(
        f"| method | seeds | trials | {head} | trials to reach random's {n_random or ''}-trial HV | propose s/trial | run s (median) |"
    )
    print("|---|---|---|" + "---|" * len(shown_at) + "---|---|---|")
    for method in METHODS:
        if method not in runs:
            continue
        per_seed = runs[method]
        n_max = min(len(recs) for recs in per_seed.values())
        cells = []
        for n in shown_at:
            if n > n_max:
                cells.append("")
                continue
            hv = [front_hypervolume(recs[:n], problem, view) for recs in per_seed.values()]
            cells.append(fmt_q([1 - h / optimum for h in hv], ".3g") if optimum is not None else fmt_q(hv))
        paired = [trials_to_reach(per_seed[s], problem, view, targets[s]) for s in per_seed if s in targets]
        if paired and method != "random":
            capped = [min(x, n_max + 1) for x in paired]
            med, q1, q3 = quartiles(capped)
            hits = sum(x <= n_max for x in paired)
            reach = f"{fmt_trials(med, n_max)} [{fmt_trials(q1, n_max)}, {fmt_trials(q3, n_max)}] ({hits}/{len(paired)})"
        else:
            reach = "–"
        prop = [mine[(name, method, s)]["propose_seconds"] / len(per_seed[s]) for s in per_seed]
        secs = [mine[(name, method, s)]["seconds"] for s in per_seed]
        prop_s = f"{np.median(prop):.3f}" if method != "random" else "–"
        print(f"| {method} | {len(per_seed)} | {n_max} | {' | '.join(cells)} | {reach} | {prop_s} | {np.median(secs):.1f} |")
    print()


def report_search(searches: dict, checkpoints: list[int]) -> None:
    for name, problem in PROBLEMS.items():
        mine = {k: r for k, r in searches.items() if k[0] == name}
        if not mine:
            continue
        runs: dict[str, dict[int, list[dict]]] = {}
        for (_, method, seed), r in sorted(mine.items()):
            runs.setdefault(method, {})[seed] = r["records"]
        longest = max(len(recs) for per_seed in runs.values() for recs in per_seed.values())
        shown_at = [n for n in checkpoints if n <= longest]
        n_random = min((len(recs) for recs in runs.get("random", {}).values()), default=0)
        for view in problem.views:
            search_table(name, problem, view, mine, runs, shown_at, n_random)
        feasible = {
            m: [sum(problem.objective.standing(r).status == FEASIBLE for r in recs) / len(recs) for recs in per_seed.values()]
            for m, per_seed in runs.items()
        }
        if problem.objective.limits:
            shares = ", ".join(f"{m} {np.median(v):.0%}" for m, v in feasible.items())
            print(f"Feasible trials (median share over seeds): {shares}.\n")
        total = sum(r["seconds"] for r in mine.values())
        print(f"Time: {total:.0f} s for the {len(mine)} runs of {name}.\n")


def report_halving(halvings: dict) -> None:
    if not halvings:
        return
    problem = PROBLEMS["digits"]
    linear, log = problem.views
    meta = next(iter(halvings.values()))
    seeds = sorted({s for (_, s) in halvings})
    print(
        f"### digits, successive halving: {meta['n_configs']} configurations, eta {meta['eta']}, 1 → {meta['max_epochs']} epochs, "
        f"seeds {', '.join(map(str, seeds))}; median [quartiles] over seeds, higher is better\n"
    )
    print(
        "| promotion | seeds | HV / (1 × 150,794) of every trial's last record | HV with log10(n_parameters), same records | "
        "HV / (1 × 150,794) of pareto_front (highest budget only) | front size (every trial's last record) | "
        "trials at the full budget | their best accuracy | epochs (per seed) | run s (median) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    paired: dict[str, dict[str, dict[int, float]]] = {linear.label: {}, log.label: {}}
    for promotion in PROMOTIONS:
        runs = {s: r for (p, s), r in halvings.items() if p == promotion}
        if not runs:
            continue
        top, size, full, best, secs = [], [], [], [], []
        for s, r in runs.items():
            last = last_records(r["records"])
            for view in (linear, log):
                paired[view.label].setdefault(promotion, {})[s] = front_hypervolume(last, problem, view)
            top.append(front_hypervolume(list(pareto_front(last, problem.objective)), problem, linear))
            size.append(len(pareto_front([{**x, "budget": None} for x in last], problem.objective)))
            at_full = [x for x in last if x["budget"] == r["max_epochs"] and x["status"] == "ok"]
            full.append(len(at_full))
            best.append(max((x["objective"] for x in at_full), default=float("nan")))
            secs.append(r["seconds"])
        epochs = sorted({r["epochs"] for r in runs.values()})
        hv_lin, hv_log = (list(paired[v.label][promotion].values()) for v in (linear, log))
        print(
            f"| {promotion} | {len(runs)} | {fmt_q(hv_lin)} | {fmt_q(hv_log)} | {fmt_q(top)} | {fmt_q(size, '.0f')} | "
            f"{fmt_q(full, '.0f')} | {fmt_q(best)} | {', '.join(map(str, epochs))} | {np.median(secs):.1f} |"
        )
    print()
    for label, by_promotion in paired.items():
        if len(by_promotion) < 2:
            continue
        common = sorted(set(by_promotion["pareto"]) & set(by_promotion["first-objective"]))
        diff = [by_promotion["pareto"][s] - by_promotion["first-objective"][s] for s in common]
        wins = sum(d > 1e-12 for d in diff)
        ties = sum(abs(d) <= 1e-12 for d in diff)
        print(
            f"Paired by seed, {label} of every trial's last record, pareto − first-objective: median "
            f"{fmt(float(np.median(diff)))} [{fmt(float(np.percentile(diff, 25)))}, {fmt(float(np.percentile(diff, 75)))}]; "
            f"pareto larger in {wins}, equal in {ties}, smaller in {len(diff) - wins - ties} of {len(diff)} seeds.\n"
        )
    total = sum(r["seconds"] for r in halvings.values())
    print(f"Time: {total:.0f} s for the {len(halvings)} successive-halving runs.\n")


def report(out: Path, checkpoints: list[int]) -> None:
    searches, halvings = load_runs(out)
    if not searches and not halvings:
        sys.exit(f"nothing recorded in {out}")
    print(f"Recorded in {out.relative_to(REPO) if out.is_relative_to(REPO) else out}; {date.today().isoformat()}.\n")
    report_search(searches, checkpoints)
    report_halving(halvings)


# ---------------------------------------------------------------------------------------------- main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--problems", nargs="+", choices=list(PROBLEMS), default=["zdt1", "binh-korn", "binh-korn-c", "tnk"])
    ap.add_argument("--methods", nargs="+", choices=METHODS, default=["random", "snaketune-tpe", "optuna-tpe"])
    ap.add_argument("--seeds", type=int, default=10, help="search seeds FIRST .. FIRST+N-1")
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--trials", type=int, default=60)
    ap.add_argument("--halving", action="store_true", help="part B: successive halving on digits, both promotions")
    ap.add_argument("--n-configs", type=int, default=27, help="--halving: configurations of the bracket")
    ap.add_argument("--eta", type=int, default=3, help="--halving")
    ap.add_argument("--max-epochs", type=int, default=27, help="--halving: the last rung's budget")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON lines, one per run")
    ap.add_argument("--report", action="store_true", help="only print the tables of what --out holds")
    ap.add_argument("--checkpoints", type=int, nargs="+", default=[10, 20, 40, 60])
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    if not args.report:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        searches, halvings = load_runs(args.out)
        seeds = range(args.first_seed, args.first_seed + args.seeds)
        with tempfile.TemporaryDirectory() as tmp:
            if args.halving:
                trainer = DigitsTrainer(Path(tmp))
                for seed in seeds:
                    for promotion in PROMOTIONS:
                        if (promotion, seed) in halvings:
                            continue
                        r = run_halving(promotion, trainer, Path(tmp) / "sh", seed, args.n_configs, args.eta, args.max_epochs)
                        rec = {"kind": "halving", "promotion": promotion, "seed": seed, **r}
                        rec.update(n_configs=args.n_configs, eta=args.eta, max_epochs=args.max_epochs)
                        with args.out.open("a") as f:
                            f.write(json.dumps(rec) + "\n")
                        print(
                            f"halving {promotion} seed {seed}: {r['epochs']} epochs in {r['seconds']:.1f} s",
                            file=sys.stderr,
                            flush=True,
                        )
            else:
                for name in args.problems:
                    problem = PROBLEMS[name]
                    evaluate = Evaluator(problem, Path(tmp))
                    for method in args.methods:
                        t_part = time.perf_counter()
                        for seed in seeds:
                            prev = searches.get((name, method, seed))
                            if prev is not None and len(prev["records"]) >= args.trials:
                                continue
                            r = run_method(method, problem, evaluate, seed, args.trials)
                            rec = {"kind": "search", "problem": name, "method": method, "seed": seed, **r}
                            with args.out.open("a") as f:
                                f.write(json.dumps(rec) + "\n")
                            hv = front_hypervolume(r["records"], problem)
                            print(
                                f"{name} {method} seed {seed}: HV {hv:.6g} in {r['seconds']:.1f} s", file=sys.stderr, flush=True
                            )
                        print(f"{name} {method}: {time.perf_counter() - t_part:.1f} s", file=sys.stderr, flush=True)
    report(args.out, args.checkpoints)


if __name__ == "__main__":
    main()
