"""How snaketune scales: DAG build, collect, Bayesian proposals, memory.

    python benchmarks/scale.py --dag 1000 10000 100000 --collect 1000 10000 --repeats 3

* DAG: wall time and peak memory of `snakemake -n` for a random search of N trials (data
  prepared beforehand, so only planning is timed), default (greedy, from profiles/default) scheduler;
* collect: the `collect` step (read N result.json files, sort, write trials.tsv and trials.json), on
  synthetic result files shaped like real ones;
* propose: one Bayesian round (batch 8) with TPE after 1,000 earlier trials;
* trial: peak memory of one trial process of the default study;
* fan-out (--fanout N ...): a whole random search of N trials of the Branin example (a shell+awk
  trainer: each job is almost only its start-up) at --cores 2, greedy vs ILP scheduler, interleaved.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

from snaketune.bayes import Observation, propose_round  # noqa: E402
from snaketune.space import SearchSpace  # noqa: E402
from snaketune.trial_files import collect_study  # noqa: E402

SPACE = {
    "lr": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True},
    "n_layers": {"type": "int", "low": 1, "high": 5},
    "hidden_units": {"type": "int", "low": 16, "high": 512, "log": True},
    "batch_size": [32, 64, 128],
    "dropout": {"type": "float", "low": 0.0, "high": 0.5},
    "epochs": 20,
}


def snakemake_exe() -> str:
    return shutil.which("snakemake", path=str(Path(sys.executable).parent)) or "snakemake"


def timed(cmd: list[str], cwd: Path) -> tuple[float, int]:
    """(wall seconds, peak RSS in MB) of a command, measured by GNU time."""
    t0 = time.perf_counter()
    proc = subprocess.run(["/usr/bin/time", "-f", "%M", *cmd], cwd=cwd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(proc.stderr[-2000:])
    return wall, int(proc.stderr.strip().splitlines()[-1]) // 1024


def dag(n: int, root: Path, per_job: int = 1) -> tuple[float, int]:
    work = root / f"dag{n}-{per_job}"
    work.mkdir(exist_ok=True)
    cfg = {
        "study": "scale",
        "data": {"source": "synthetic"},
        "search": {"method": "random", "n_trials": n, "trials_per_job": per_job},
        "search_space": SPACE,
    }
    (work / "study.yaml").write_text(json.dumps(cfg))
    base = [snakemake_exe(), "--snakefile", str(REPO / "Snakefile"), "--directory", str(work), "--configfile", "study.yaml"]
    subprocess.run(
        [*base[:1], "results/scale/data/prepared.npz", *base[1:], "--cores", "1", "--quiet", "all"], cwd=work, check=True
    )
    return timed([*base, "-n", "--quiet", "all"], work)


def fanout(n: int, root: Path, scheduler: str) -> float:
    """Wall seconds of N Branin trials and collect at --cores 2 with the given scheduler."""
    work = root / f"fan{n}-{scheduler}"
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(REPO / "config", work / "config")
    (work / "fan.yaml").write_text(json.dumps({"study": "fan", "search": {"n_trials": n}}))
    cmd = [snakemake_exe(), "results/fan/trials.tsv", "--snakefile", str(REPO / "Snakefile"), "--directory", str(work)]
    cmd += ["--configfile", "config/examples/branin.yaml", "fan.yaml", "--cores", "2", "--scheduler", scheduler]
    env = {**os.environ, "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])}
    t0 = time.perf_counter()
    subprocess.run([*cmd, "--quiet", "all"], cwd=work, env=env, check=True, capture_output=True)
    return time.perf_counter() - t0


def fake_results(n: int, folder: Path) -> list[Path]:
    rng = random.Random(0)
    files = []
    space = SearchSpace.from_config(SPACE)
    for i in range(n):
        tid = f"r{i:04d}"
        d = folder / tid
        d.mkdir(parents=True)
        acc = rng.random()
        ok = rng.random() > 0.05
        rec = {
            "trial": tid,
            "status": "ok" if ok else "failed",
            "objective": acc if ok else None,
            "reason": None if ok else "diverged at epoch 3",
            "params": space.sample(0, i),
            "metrics": {
                "val_accuracy": acc,
                "val_loss": 1 - acc,
                "best_epoch": 7,
                "epochs_run": 12,
                "train_seconds": 0.4,
                "n_parameters": 9610,
            },
            "seconds": 1.2,
            "log": f"results/x/trials/{tid}/train.log",
        }
        (d / "result.json").write_text(json.dumps(rec))
        files.append(d / "result.json")
    return files


def collect_time(n: int, root: Path) -> float:
    files = fake_results(n, root / f"collect{n}")
    t0 = time.perf_counter()
    collect_study(files, root / f"collect{n}.tsv", root / f"collect{n}.json", list(SPACE), "val_accuracy", "maximize")
    return time.perf_counter() - t0


def propose_time(n_earlier: int) -> float:
    space = SearchSpace.from_config(SPACE)
    rng = random.Random(1)
    history = [Observation(f"b{i // 8}-{i % 8}", space.sample(1, i), rng.random()) for i in range(n_earlier)]
    t0 = time.perf_counter()
    propose_round(space, n_earlier // 8, 8, history, direction="maximize", sampler="tpe", seed=0, n_startup=8)
    return time.perf_counter() - t0


def trial_memory(root: Path) -> int:
    work = root / "trial"
    (work / "config").mkdir(parents=True)
    shutil.copy(REPO / "config" / "config.yaml", work / "config" / "config.yaml")
    subprocess.run(
        [
            snakemake_exe(),
            "results/seed-grid/data/prepared.npz",
            "--snakefile",
            str(REPO / "Snakefile"),
            "--directory",
            str(work),
            "--cores",
            "1",
        ],
        cwd=work,
        check=True,
        capture_output=True,
    )
    (work / "p.yaml").write_text("lr: 0.01\nn_layers: 5\nbatch_size: 32\nhidden_units: 128\nepochs: 30\n")
    env_cmd = [
        "env",
        f"SNAKETUNE_PARAMS={work / 'p.yaml'}",
        f"SNAKETUNE_OUT={work / 'out'}",
        f"SNAKETUNE_DATA={work / 'results/seed-grid/data/prepared.npz'}",
        sys.executable,
        "-m",
        "snaketune.train",
    ]
    return timed(env_cmd, work)[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dag", type=int, nargs="*", default=[1000, 10000])
    ap.add_argument("--collect", type=int, nargs="*", default=[1000, 10000])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--per-job", type=int, default=1, help="search.trials_per_job for the DAG studies")
    ap.add_argument("--no-trial", action="store_true", help="skip the trial-memory measurement")
    ap.add_argument("--fanout", type=int, nargs="*", default=[], help="whole studies of N quick trials, greedy vs ILP")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        print("| what | N | median (s) | runs (s) | peak memory (MB) |")
        print("|---|---|---|---|---|")
        for n in args.dag:
            runs = [dag(n, root, args.per_job) for _ in range(args.repeats if n <= 10000 else 1)]
            walls = [w for w, _ in runs]
            what = "`snakemake -n` (DAG build)" + (f", trials_per_job {args.per_job}" if args.per_job > 1 else "")
            print(
                f"| {what} | {n:,} | {statistics.median(walls):.1f} | {', '.join(f'{w:.1f}' for w in walls)} | {max(m for _, m in runs)} |",
                flush=True,
            )
        for n in args.collect:
            runs = [collect_time(n, root / f"c{r}") for r in range(args.repeats)]
            print(
                f"| collect (read, sort, write trials.tsv and trials.json) | {n:,} | {statistics.median(runs):.2f} | {', '.join(f'{r:.2f}' for r in runs)} | |",
                flush=True,
            )
        runs = [propose_time(1000) for _ in range(args.repeats)]
        print(
            f"| propose a TPE round of 8 after 1,000 trials | 1,000 | {statistics.median(runs):.2f} | {', '.join(f'{r:.2f}' for r in runs)} | |"
        )
        for n in args.fanout:
            by_scheduler: dict[str, list[float]] = {"greedy": [], "ilp": []}
            for _ in range(args.repeats):  # interleaved
                for scheduler, walls in by_scheduler.items():
                    walls.append(fanout(n, root, scheduler))
            greedy = statistics.median(by_scheduler["greedy"])
            for scheduler, walls in by_scheduler.items():
                med = statistics.median(walls)
                print(
                    f"| whole study, {n:,} Branin trials (shell+awk trainer), --cores 2, {scheduler} scheduler "
                    f"({med / greedy:.2f}x greedy) | {n:,} | {med:.1f} | {', '.join(f'{w:.1f}' for w in walls)} | |",
                    flush=True,
                )
        if not args.no_trial:
            print(f"| one trial process (5x128 MLP, digits, 30 epochs) | 1 | | | {trial_memory(root)} |")


if __name__ == "__main__":
    main()
