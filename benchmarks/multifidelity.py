"""Multi-fidelity: epochs trained by Hyperband and successive halving vs full-budget random search.

    python benchmarks/multifidelity.py --seeds 5            # train, record, print the tables
    python benchmarks/multifidelity.py --report             # the tables, from what is recorded
    python benchmarks/multifidelity.py --verify-workflow    # one small schedule through snakemake

The study of config/examples/hyperband.yaml (MNIST-1D, `data.n_samples` 4000 here, an MLP with
lr, n_layers, hidden_units, batch_size and dropout searched, epochs = R = 27, eta 3, min_epochs 1)
runs in this process, with real training and real checkpoint resume, in the order a single worker
would run the jobs. For each search seed:

* ``random``: the plan's random trials ``r0000`` .. ``r<N-1>`` (``SearchSpace.sample``), each trained
  for the full 27 epochs with ``snaketune.train.train``. Its validation accuracy after epoch 27 is
  the like-for-like target (a Hyperband rung also ends with its last epoch's weights). Each epoch's
  accuracy is kept, which also gives what random search reports without a schedule when it keeps
  the best epoch's weights (``patience: 0``: the best epoch; the default ``patience: 5``: early
  stopping, fewer epochs), since early stopping does not change the training before it stops;
* ``hyperband``, ``successive_halving``: the workflow's plan (``snaketune.plan.plan_brackets`` with
  ``method: random``, so the same trial ids, configurations and training seeds as ``random``);
  rung by rung, ``snaketune.schedule.promote`` picks the survivors and each resumes from its
  previous rung's checkpoint (``TrialSettings(resume=..., budget=..., patience=0,
  restore_best=False)``, as the workflow's ``train_rung`` jobs do), counting the epochs trained;
* ``bohb``: ``method: bayes`` with Hyperband: each bracket's configurations are proposed by
  ``snaketune.bayes.propose_round`` from the earlier brackets' rung results (TPE, batch = bracket),
  as the workflow's ``propose`` jobs do.

The best of a schedule is the best trial that reached the full budget (as ``select_best`` picks).
Reported per method: the best validation accuracy, the total epochs trained, and the epochs
after which the incumbent first reached random search's final best (or that it never did).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
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
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]

from snaketune.bayes import observations, propose_round  # noqa: E402
from snaketune.config import resolve_config  # noqa: E402
from snaketune.files import write_yaml  # noqa: E402
from snaketune.plan import plan_brackets, random_trial_id, trial_seed  # noqa: E402
from snaketune.schedule import promote, schedule_epochs  # noqa: E402
from snaketune.space import SearchSpace  # noqa: E402

METHODS = ("random", "hyperband", "successive_halving", "bohb")
NEVER = 1e18  # epochs to reach a target that is never reached
DEFAULT_OUT = REPO / "benchmarks" / "results" / "multifidelity.jsonl"
SPACE = {
    "lr": {"type": "float", "low": 1.0e-4, "high": 3.0e-2, "log": True},
    "n_layers": {"type": "int", "low": 1, "high": 4},
    "hidden_units": {"type": "int", "low": 32, "high": 512, "log": True},
    "batch_size": [32, 64, 128],
    "dropout": {"type": "float", "low": 0.0, "high": 0.4},
}


def study_config(method: str, seed: int, n_configs: int, max_epochs: int, min_epochs: int, eta: int, n_samples: int) -> dict:
    schedule = {"random": "none", "successive_halving": "successive_halving"}.get(method, "hyperband")
    search = {"method": "bayes" if method == "bohb" else "random", "schedule": schedule, "n_trials": n_configs, "seed": seed}
    search.update(min_epochs=min_epochs, eta=eta)
    return resolve_config(
        {
            "study": f"mf-{method}",
            "data": {"source": "mnist1d", "n_samples": n_samples},
            "search": search,
            "search_space": {**SPACE, "epochs": max_epochs},
        }
    )


class Trainer:
    """Runs the built-in trainer in-process, one trial (or one rung of a trial) at a time."""

    def __init__(self, data: Path, workdir: Path) -> None:
        self.data = data
        self.workdir = workdir

    def run(
        self,
        trial: str,
        params: dict,
        seed: int,
        budget: int,
        rung: int,
        resume: Path | None,
        start: int = 0,
        checkpoint: bool = True,
    ) -> dict:
        """Train ``trial`` to ``budget`` epochs (from ``resume``, the checkpoint after epoch ``start``)."""
        from snaketune.train import TrainFailed, TrialSettings, train

        out = self.workdir / trial / f"rung-{rung}"
        out.mkdir(parents=True, exist_ok=True)
        write_yaml(out / "params.yaml", params)
        settings = TrialSettings(
            params=out / "params.yaml",
            out=out,
            data=self.data,
            budget=budget,
            resume=resume,
            seed=seed,
            metric="val_accuracy",
            direction="maximize",
            patience=0,  # the schedule decides how long a trial trains (run_slot does the same)
            restore_best=False,  # continue from the last epoch, not the best one
            device="cpu",
            threads=1,
            checkpoint=checkpoint,
        )
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                m = train(settings)
        except TrainFailed as e:
            return {"status": "failed", "objective": None, "epochs_run": budget - start, "reason": str(e)}
        with (out / "history.csv").open() as f:
            history = [float(r["val_accuracy"]) for r in csv.DictReader(f)]
        return {"status": "ok", "objective": m["val_accuracy"], "epochs_run": m["epochs_this_run"], "history": history}


def run_random(cfg: dict, trainer: Trainer) -> dict:
    space = SearchSpace.from_config(cfg["search_space"])
    seed, R = cfg["search"]["seed"], cfg["search_space"]["epochs"]
    trials = []
    for i in range(cfg["search"]["n_trials"]):
        tid = random_trial_id(i)
        r = trainer.run(tid, space.sample(seed, i), trial_seed(seed, tid), R, 0, None, checkpoint=False)
        trials.append({"trial": tid, **r})
    return {"trials": trials}


def run_schedule(cfg: dict, trainer: Trainer) -> dict:
    """The brackets in order, each rung's slots in order; promoted trials resume from their checkpoints."""
    search = cfg["search"]
    seed, direction, n_startup = search["seed"], cfg["objective"]["direction"], search["n_startup"]
    space = SearchSpace.from_config(cfg["search_space"])
    plans = plan_brackets(cfg)
    records: list[dict[str, Any]] = []  # every slot's record, as the workflow's slot files hold them
    events = []  # (epochs trained by this slot, budget, objective) in execution order
    for plan in plans:
        b = plan.bracket
        params_of = {t.id: t.params for t in plan.trials}
        if any(p is None for p in params_of.values()):  # bayes: this bracket's round, from the earlier brackets
            history = observations(records, min_count=n_startup)
            proposals = propose_round(
                space,
                b.index,
                b.n_configs,
                history,
                direction=direction,
                sampler=search["sampler"],
                seed=seed,
                n_startup=n_startup,
            )
            params_of = {t.id: p for t, p in zip(plan.trials, proposals)}
        rung_records: list[dict[str, Any]] = []
        for rung in b.rungs:
            ids = [t.id for t in plan.trials] if rung.index == 0 else promote(rung_records, rung.n, "val_accuracy", direction)
            rung_records = []
            for tid in ids[: rung.n]:
                prev = trainer.workdir / tid / f"rung-{rung.index - 1}" / "checkpoint.pt" if rung.index > 0 else None
                start = b.rungs[rung.index - 1].budget if rung.index > 0 else 0
                r = trainer.run(tid, params_of[tid], trial_seed(seed, tid), rung.budget, rung.index, prev, start)
                if prev is not None:
                    prev.unlink(missing_ok=True)
                rec = {"trial": tid, "params": params_of[tid], "bracket": b.index, "rung": rung.index, "budget": rung.budget, **r}
                rec.pop("history", None)
                rung_records.append(rec)
                records.append(rec)
                events.append((r["epochs_run"], rung.budget, r["objective"]))
    return {"trials": records, "events": events, "planned_epochs": schedule_epochs([p.bracket for p in plans])}


# ---------------------------------------------------------------------------------------------- analysis


def random_views(run: dict, R: int, patience: int = 5) -> dict[str, dict]:
    """Random search read three ways from the same per-epoch histories: each with per-trial (epochs, value)."""
    last, best, early = [], [], []
    for t in run["trials"]:
        h = t.get("history") or []
        if t["status"] != "ok" or not h:
            for v in (last, best, early):
                v.append((R, None))
            continue
        last.append((len(h), h[-1]))
        best.append((len(h), max(h)))
        top, stale, stop = None, 0, len(h)
        for e, acc in enumerate(h, start=1):
            if top is None or acc > top:
                top, stale = acc, 0
            else:
                stale += 1
                if stale >= patience:
                    stop = e
                    break
        early.append((stop, top))
    return {"last": {"per_trial": last}, "best": {"per_trial": best}, "early": {"per_trial": early}}


def anytime(per_trial: list[tuple[int, float | None]]) -> list[tuple[int, float | None]]:
    """(cumulative epochs, best so far) after each trial, in order."""
    out, total, inc = [], 0, None
    for epochs, v in per_trial:
        total += epochs
        if v is not None and (inc is None or v > inc):
            inc = v
        out.append((total, inc))
    return out


def schedule_anytime(events: list, R: int) -> list[tuple[int, float | None]]:
    out, total, inc = [], 0, None
    for epochs, budget, v in events:
        total += epochs
        if budget == R and v is not None and (inc is None or v > inc):
            inc = v
        out.append((total, inc))
    return out


def epochs_to_reach(curve: list[tuple[int, float | None]], target: float) -> float:
    for total, inc in curve:
        if inc is not None and inc >= target - 1e-12:
            return total
    return math.inf


def check_resume(schedule_run: dict, random_run: dict) -> tuple[int, int]:
    """Rung results equal to the uninterrupted 27-epoch run's accuracy at the same epoch: (equal, compared)."""
    hist = {t["trial"]: t.get("history") for t in random_run["trials"]}
    equal = compared = 0
    for r in schedule_run["trials"]:
        h = hist.get(r["trial"])
        if r["status"] == "ok" and h:
            compared += 1
            equal += r["objective"] == h[r["budget"] - 1]
    return equal, compared


def load_runs(path: Path) -> dict[tuple[str, int], dict]:
    runs = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            if line.strip():
                r = json.loads(line)
                runs[(r["method"], r["seed"])] = r
    return runs


def q(xs: list[float] | None, fmt: str) -> str:
    """Median [quartiles]; ``inf`` (never) sorts last and prints as "never"."""
    xs = [min(x, NEVER) for x in xs or [] if x is not None]
    if not xs:
        return "–"
    q1, med, q3 = np.percentile(np.asarray(xs, dtype=float), [25, 50, 75])

    def f(v: float) -> str:
        return "never" if v >= NEVER / 2 else format(v, fmt)

    return f"{f(med)} [{f(q1)}, {f(q3)}]"


def report(path: Path) -> None:
    runs = load_runs(path)
    seeds = sorted({s for (m, s) in runs if m == "random"})
    if not seeds:
        sys.exit(f"no random-search runs in {path}")
    meta = runs[("random", seeds[0])]
    R, N = meta["max_epochs"], meta["n_configs"]
    print(
        f"Recorded in {path.relative_to(REPO) if path.is_relative_to(REPO) else path}; {date.today().isoformat()}; "
        f"mnist1d n_samples {meta['n_samples']}, R = {R}, eta {meta['eta']}, min_epochs {meta['min_epochs']}, "
        f"{N} configurations, seeds {', '.join(map(str, seeds))}.\n"
    )
    rows: dict[str, dict[str, list]] = {}

    def add(label: str, **kv) -> None:
        for k, v in kv.items():
            rows.setdefault(label, {}).setdefault(k, []).append(v)

    def add_curve(label: str, curve, full: int, total_random: int, target: float, target_best: float) -> None:
        """One method's row for one seed: best value, epochs spent, and epochs to reach the targets."""
        add(
            label,
            best=curve[-1][1],
            epochs=curve[-1][0],
            frac=curve[-1][0] / total_random,
            reach=epochs_to_reach(curve, target),
            reach_best=epochs_to_reach(curve, target_best),
            full=full,
        )

    per_seed_lines = []
    for s in seeds:
        rnd = runs[("random", s)]
        views = random_views(rnd, R)
        curves = {k: anytime(v["per_trial"]) for k, v in views.items()}
        target = curves["last"][-1][1]  # random's final best, like-for-like
        target_best = curves["best"][-1][1]
        total_random = curves["last"][-1][0]
        labels = {
            "last": f"random, {N} configs × {R} epochs (accuracy after epoch {R})",
            "best": f"random, {N} configs × {R} epochs, best epoch kept (patience 0)",
            "early": f"random, {N} configs, early stopping (patience 5, the default)",
        }
        for k, label in labels.items():
            add_curve(label, curves[k], N, total_random, target, target_best)
        for method in METHODS[1:]:
            run = runs.get((method, s))
            if run is None:
                continue
            c = schedule_anytime(run["events"], R)
            full = sum(1 for r in run["trials"] if r["budget"] == R and r["status"] == "ok")
            add_curve(method, c, full, total_random, target, target_best)
            if method != "bohb":
                eq, n = check_resume(run, rnd)
                add(method, resume=f"{eq}/{n}")
            hb_epochs = c[-1][0]
            k = max(1, hb_epochs // R)  # random search given the schedule's epochs: its first k configurations
            add(
                f"random with {method}'s epochs (its first ⌊epochs / {R}⌋ configs)",
                best=curves["last"][min(k, N) - 1][1],
                epochs=min(k, N) * R,
                frac=min(k, N) * R / total_random,
            )
            per_seed_lines.append(
                f"| {s} | {method} | {c[-1][1]:.4f} | {target:.4f} | {target_best:.4f} | {hb_epochs} | {total_random} | "
                f"{hb_epochs / total_random:.2f} | {fmt_epochs(epochs_to_reach(c, target))} | {fmt_epochs(epochs_to_reach(c, target_best))} | "
                f"{curves['last'][min(k, N) - 1][1]:.4f} ({k} configs) | "
                f"{'met' if c[-1][1] >= target - 1e-12 and 3 * hb_epochs <= total_random else 'missed'} |"
            )
    print(f"Median [quartiles] over {len(seeds)} seeds:\n")
    print(
        "| method | best val accuracy | total epochs | epochs / random's | configs trained to the full budget | "
        f"epochs to reach random's final best (after epoch {R}) | … (best epoch kept) | rung results = uninterrupted run |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for label, d in rows.items():
        print(
            f"| {label} | {q(d['best'], '.4f')} | {q(d['epochs'], '.0f')} | {q(d.get('frac'), '.2f')} | {q(d.get('full'), '.0f')} | "
            f"{q(d.get('reach'), '.0f')} | {q(d.get('reach_best'), '.0f')} | {', '.join(d.get('resume', [])) or '–'} |"
        )
    print("\nPer seed (target: the schedule's best ≥ random's final best after epoch R, with ≤ 1/3 of random's epochs):\n")
    print(
        "| seed | method | best | random's best (epoch 27) | random's best (best epoch) | epochs | random's epochs | ratio | "
        "epochs to reach random (epoch 27) | … (best epoch) | random with the same epochs | target |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for line in per_seed_lines:
        print(line)


def fmt_epochs(x: float) -> str:
    return "never" if math.isinf(x) else f"{x:.0f}"


# ---------------------------------------------------------------------------------------------- workflow check


def verify_workflow(workdir: Path, n_samples: int) -> None:
    """A small successive-halving study (9 configurations, R = 9) through snakemake vs the in-process driver."""
    cfg = study_config("successive_halving", 0, 9, 9, 1, 3, n_samples)
    raw = {
        "study": "mf-verify",
        "data": cfg["data"],
        "search": {k: cfg["search"][k] for k in ("method", "schedule", "n_trials", "seed", "min_epochs", "eta")},
        "search_space": cfg["search_space"],
        "final": {"retrain": False},
    }
    study = workdir / "wf"
    study.mkdir(parents=True)
    (study / "study.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    exe = shutil.which("snakemake", path=str(Path(sys.executable).parent)) or shutil.which("snakemake")
    cmd = [exe, "--snakefile", str(REPO / "Snakefile"), "--directory", str(study), "--configfile", str(study / "study.yaml")]
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    t0 = time.perf_counter()
    proc = subprocess.run([*cmd, "--cores", "2", "--quiet", "all"], cwd=study, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"snakemake failed:\n{proc.stderr[-4000:]}")
    theirs = {}
    for f in sorted((study / "results" / "mf-verify" / "rungs").glob("b*/r*/s*.json")):
        r = json.loads(f.read_text())
        if r.get("status") == "ok":
            theirs[(r["trial"], r["budget"])] = (r["objective"], r["metrics"]["epochs_this_run"])
    from snaketune.data import prepare

    prepare(cfg["data"], workdir / "prepared.npz")
    mine_run = run_schedule(cfg, Trainer(workdir / "prepared.npz", workdir / "inproc"))
    mine = {(r["trial"], r["budget"]): (r["objective"], r["epochs_run"]) for r in mine_run["trials"] if r["status"] == "ok"}
    same = mine == theirs
    print(
        "| study | rung results (workflow) | rung results (in-process) | identical (trial, budget, accuracy, epochs) | wall s |"
    )
    print("|---|---|---|---|---|")
    print(
        f"| successive halving, 9 configs, R 9, eta 3, seed 0 | {len(theirs)} | {len(mine)} | {'yes' if same else 'NO'} | {wall:.1f} |"
    )
    if not same:
        for k in sorted(set(mine) | set(theirs)):
            print(k, mine.get(k), theirs.get(k))


# ---------------------------------------------------------------------------------------------- main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=5, help="search seeds FIRST .. FIRST+N-1")
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    ap.add_argument("--n-configs", type=int, default=49, help="random: trials; schedules: at least this many configurations")
    ap.add_argument("--max-epochs", type=int, default=27)
    ap.add_argument("--min-epochs", type=int, default=1)
    ap.add_argument("--eta", type=int, default=3)
    ap.add_argument("--n-samples", type=int, default=4000, help="mnist1d examples (data.n_samples)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON lines, one per (method, seed)")
    ap.add_argument("--report", action="store_true", help="only print the tables of what --out holds")
    ap.add_argument("--verify-workflow", action="store_true", help="run a small schedule through snakemake and compare")
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    if args.verify_workflow:
        with tempfile.TemporaryDirectory() as tmp:
            verify_workflow(Path(tmp), args.n_samples)
        return
    if not args.report:
        from snaketune.data import prepare

        args.out.parent.mkdir(parents=True, exist_ok=True)
        done = load_runs(args.out)
        with tempfile.TemporaryDirectory() as tmp:
            data = Path(tmp) / "prepared.npz"
            prepare(study_config("random", 0, 1, args.max_epochs, 1, 3, args.n_samples)["data"], data)
            for seed in range(args.first_seed, args.first_seed + args.seeds):
                for method in args.methods:
                    if (method, seed) in done:
                        continue
                    cfg = study_config(method, seed, args.n_configs, args.max_epochs, args.min_epochs, args.eta, args.n_samples)
                    trainer = Trainer(data, Path(tmp) / f"{method}-{seed}")
                    t0 = time.perf_counter()
                    run = run_random(cfg, trainer) if method == "random" else run_schedule(cfg, trainer)
                    shutil.rmtree(trainer.workdir, ignore_errors=True)
                    rec = {"method": method, "seed": seed, "seconds": time.perf_counter() - t0, **run}
                    rec.update(n_configs=args.n_configs, max_epochs=args.max_epochs, min_epochs=args.min_epochs)
                    rec.update(eta=args.eta, n_samples=args.n_samples)
                    with args.out.open("a") as f:
                        f.write(json.dumps(rec) + "\n")
                    print(f"{method} seed {seed}: {rec['seconds']:.1f} s", file=sys.stderr, flush=True)
    report(args.out)


if __name__ == "__main__":
    main()
