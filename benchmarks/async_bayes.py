"""Asynchronous Bayesian search (search.parallel) vs rounds, on trials of heavy-tailed durations (issue 18).

    python benchmarks/async_bayes.py --trials 48 --seeds 0 1 2 --cores 4      # run, record, print
    python benchmarks/async_bayes.py --report                                  # the tables again
    python benchmarks/async_bayes.py --proposal-cost 100 1000                  # one proposal's cost
    python benchmarks/async_bayes.py --dag 1000                                # snakemake -n, async vs rounds

**Studies.** Each mode runs a real ``snakemake --cores C`` study (target ``trials.tsv``) of
``benchmarks/trainers/sleepy_branin.py``: a trainer that sleeps a log-normal time drawn from the
trial's seed (median 1 s, sigma 1, at most 10 s by default) and reports the Branin function of its
(x1, x2). TPE, n_startup 8, the same search seed per mode. Modes: ``rounds-B`` (``batch: B``) and
``parallel-W`` (``parallel: W``, a sliding window of W trials in flight).

Measured per study: the wall time of the snakemake process; the **idle share** of the trial
workers over the trial phase, ``1 - busy / (cores * span)``, where a training job's busy time is
its Snakemake benchmark's wall seconds, ending when it wrote its ``result.json`` (that file's
mtime), and the span runs from the first trial's start to the last trial's end (``propose`` jobs
count as idle: they are not trials); the same before the drain (up to the last trial's start:
afterwards nothing is left to hand out, and any method idles while its last trials finish); the
propose jobs' seconds as a share of that capacity (since 2026-12-03 a propose job holds no job
slot, ``threads: 0``: it runs beside the trials, and this share is no longer taken from them);
and the best (lowest) Branin value among the first N
trials (proposal order), N = --trials and N/2.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
TRAINER = REPO / "benchmarks" / "trainers" / "sleepy_branin.py"
RECORD = REPO / "benchmarks" / "results" / "async_bayes.jsonl"
BIN = Path(sys.executable).parent


def study_config(mode: str, trials: int, seed: int, median: float, sigma: float, cap: float) -> dict:
    kind, n = mode.split("-")
    search = {"method": "bayes", "sampler": "tpe", "n_trials": trials, "n_startup": 8, "seed": seed}
    search.update({"batch": int(n)} if kind == "rounds" else {"parallel": int(n)})
    return {
        "study": "bench",
        "trainer": {"command": f"{sys.executable} {TRAINER} --median {median} --sigma {sigma} --cap {cap}"},
        "objective": {"metric": "loss", "direction": "minimize"},
        "search": search,
        "search_space": {"x1": {"type": "float", "low": -5.0, "high": 10.0}, "x2": {"type": "float", "low": 0.0, "high": 15.0}},
        "final": {"retrain": False},
    }


def snakemake(work: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    cmd = [str(BIN / "snakemake"), "--snakefile", str(REPO / "Snakefile"), "--directory", str(work)]
    cmd += ["--configfile", str(work / "study.yaml"), *args]
    return subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, check=True)


def job_span(result: Path, benchmark: Path) -> tuple[float, float]:
    """(start, end) of a job: its benchmark's wall seconds, ending when it wrote ``result``."""
    end = result.stat().st_mtime
    seconds = float(benchmark.read_text().splitlines()[1].split("\t")[0])
    return end - seconds, end


def measure(mode: str, args: argparse.Namespace, seed: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="async-bayes-") as tmp:
        work = Path(tmp)
        cfg = study_config(mode, args.trials, seed, args.median, args.sigma, args.cap)
        (work / "study.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
        snakemake(work, "--cores", "1", "results/bench/data/prepared.npz")  # outside the timing
        t0 = time.perf_counter()
        snakemake(work, "--cores", str(args.cores), "results/bench/trials.tsv")
        wall = time.perf_counter() - t0
        results = work / "results" / "bench"
        trials = sorted((results / "trials").iterdir(), key=lambda p: natural(p.name))
        spans = [job_span(t / "result.json", t / "benchmark.tsv") for t in trials]
        start, end = min(s for s, _ in spans), max(e for _, e in spans)
        busy = sum(e - s for s, e in spans)
        last_start = max(s for s, _ in spans)  # from here on no trial is left to start: the drain
        busy_before = sum(min(e, last_start) - s for s, e in spans if s < last_start)
        rounds = [job_span(f, results / "benchmarks" / "propose" / f"{f.stem}.tsv") for f in (results / "rounds").glob("*.yaml")]
        propose = sum(min(e, end) - max(s, start) for s, e in rounds if e > start and s < end)
        order = [json.loads((t / "result.json").read_text()) for t in trials]
        losses = [r["objective"] if r["status"] == "ok" else float("inf") for r in order]
    capacity = args.cores * (end - start)
    return {
        "mode": mode,
        "seed": seed,
        "trials": args.trials,
        "cores": args.cores,
        "sleep": [args.median, args.sigma, args.cap],
        "wall_s": round(wall, 2),
        "trial_phase_s": round(end - start, 2),
        "idle_share": round(1 - busy / capacity, 4),
        "idle_before_drain": round(1 - busy_before / (args.cores * (last_start - start)), 4),
        "propose_share": round(propose / capacity, 4),
        "trial_seconds": round(busy, 2),
        "best": min(losses),
        "best_half": min(losses[: args.trials // 2]),
        "date": str(date.today()),
    }


def natural(name: str) -> tuple:
    import re

    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name))


def report(rows: list[dict]) -> None:
    print(
        "| mode | studies | wall (s), median | trial phase (s) | idle share, median (runs) | idle before the drain (runs) | propose share | best after N/2 | best after N |"
    )
    print("|---|---|---|---|---|---|---|---|---|")

    def key(r: dict) -> tuple:
        return (r["mode"], r["trials"], r["cores"], tuple(r["sleep"]))

    for group in dict.fromkeys(key(r) for r in rows):
        rs = [r for r in rows if key(r) == group]
        mode = f"{group[0]}, sleep median {group[3][0]:g} s"

        def med(key: str, rs: list[dict] = rs) -> float:
            return statistics.median(r[key] for r in rs)

        idle = ", ".join(f"{r['idle_share']:.0%}" for r in rs)
        drain = [r["idle_before_drain"] for r in rs if "idle_before_drain" in r]
        before = f"{statistics.median(drain):.0%} ({len(drain)})" if drain else "–"
        print(
            f"| {mode} | {len(rs)} × {rs[0]['trials']} trials | {med('wall_s'):.1f} | {med('trial_phase_s'):.1f} | "
            f"{med('idle_share'):.0%} ({idle}) | {before} | {med('propose_share'):.0%} | {statistics.mean(r['best_half'] for r in rs):.3f} | "
            f"{statistics.mean(r['best'] for r in rs):.3f} |"
        )


def proposal_cost(n_earlier: int, window: int, repeats: int) -> list[float]:
    """Seconds of one asynchronous proposal (TPE, 2-d Branin) after ``n_earlier`` observed trials
    and ``window - 1`` running: what a propose job computes, without reading files."""
    sys.path.insert(0, str(REPO / "benchmarks" / "trainers"))
    from branin import branin

    from snaketune.bayes import Observation, propose_round
    from snaketune.space import SearchSpace

    space = SearchSpace.from_config(study_config("parallel-4", 10, 0, 1, 1, 1)["search_space"])
    history = []
    for i in range(n_earlier):
        p = space.sample(0, i)
        history.append(Observation(f"b{i}-0", p, branin(p["x1"], p["x2"])))
    running = [Observation(f"b{n_earlier + i}-0", space.sample(1, i), None) for i in range(window - 1)]
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        propose_round(space, n_earlier, 1, history, direction="minimize", sampler="tpe", seed=0, n_startup=8, running=running)
        out.append(time.perf_counter() - t0)
    return out


def dag_time(trials: int, mode: str, repeats: int) -> list[float]:
    out = []
    with tempfile.TemporaryDirectory(prefix="async-dag-") as tmp:
        work = Path(tmp)
        (work / "study.yaml").write_text(yaml.safe_dump(study_config(mode, trials, 0, 1, 1, 1), sort_keys=False))
        for _ in range(repeats):
            t0 = time.perf_counter()
            snakemake(work, "-n", "--cores", "4", "--quiet", "all")
            out.append(time.perf_counter() - t0)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=48)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--cores", type=int, default=4)
    ap.add_argument("--modes", nargs="+", default=["rounds-4", "parallel-4", "parallel-8"])
    ap.add_argument("--median", type=float, default=1.0)
    ap.add_argument("--sigma", type=float, default=1.0)
    ap.add_argument("--cap", type=float, default=10.0)
    ap.add_argument("--report", action="store_true", help="print the tables from what is recorded")
    ap.add_argument("--proposal-cost", type=int, nargs="*", help="time one proposal after these many trials")
    ap.add_argument("--dag", type=int, nargs="*", help="time snakemake -n of studies of these many trials")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    if args.report:
        report([json.loads(line) for line in RECORD.read_text().splitlines() if line.strip()])
        return
    if args.proposal_cost:
        for n in args.proposal_cost:
            runs = proposal_cost(n, 4, args.repeats)
            print(
                f"proposal after {n} trials (4 in flight): median {statistics.median(runs):.3f} s, runs {[round(r, 3) for r in runs]}"
            )
        return
    if args.dag:
        for n in args.dag:
            for mode in ("rounds-4", "parallel-4"):
                runs = dag_time(n, mode, args.repeats)
                print(
                    f"snakemake -n, {n} trials, {mode}: median {statistics.median(runs):.2f} s, runs {[round(r, 2) for r in runs]}"
                )
        return
    if shutil.which("snakemake", path=str(BIN)) is None:
        sys.exit("snakemake is not installed next to this Python")
    RECORD.parent.mkdir(parents=True, exist_ok=True)
    rows = []
    for seed in args.seeds:
        for mode in args.modes:  # interleaved, so a slower spell of the machine hits every mode
            row = measure(mode, args, seed)
            print(json.dumps(row), flush=True)
            with RECORD.open("a") as f:
                f.write(json.dumps(row) + "\n")
            rows.append(row)
    report(rows)


if __name__ == "__main__":
    main()
