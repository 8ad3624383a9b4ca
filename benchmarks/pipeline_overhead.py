"""What the workflow costs: the default 27-trial study as Snakemake jobs vs an in-process loop.

    python benchmarks/pipeline_overhead.py --repeats 3

Every variant trains the same 27 configurations of config/config.yaml with the same trainer code
(snaketune.train.train) on the same prepared data, on CPU, and is timed as a command, from launch
to exit (what a user waits for):

* in-process program (benchmarks/inprocess_loop.py): torch imported once, the trials in a loop
  (1 process) or in a pool of 2 worker processes (what 2 cores allow), forked (workers inherit
  torch) or spawned (each worker imports it again); the program also reports its loop alone,
  without interpreter start, imports and teardown;
* snakemake, one job per trial (--cores 2), ILP and greedy scheduler: the trials and collect only,
  data prepared beforehand, so all variants do the same work;
* snakemake with search.trials_per_job: 14 (two packs, one per core; the trainer runs in the
  pack's process, so torch is imported twice instead of 27 times);
* snakemake, the whole study (prepare_data -> 27 trials -> collect -> select -> retrain).

Prints a Markdown table with medians and ratios to the fastest 2-worker program.
Run it with the Python of the environment to measure (its snakemake is used).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "workflow" / "scripts"))

from snaketune.config import resolve_config  # noqa: E402
from snaketune.data import prepare  # noqa: E402


def snakemake_exe() -> str:
    exe = shutil.which("snakemake", path=str(Path(sys.executable).parent)) or shutil.which("snakemake")
    if not exe:
        sys.exit("snakemake is not installed")
    return exe


def loop_program(data: Path, out: Path, workers: int, start: str) -> tuple[float, float]:
    """(wall seconds of the whole program, seconds of its training loop alone)."""
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, str(REPO / "benchmarks" / "inprocess_loop.py"), str(data), str(out)]
    t0 = time.perf_counter()
    proc = subprocess.run([*cmd, "--workers", str(workers), "--start", start], capture_output=True, text=True, check=True)
    wall = time.perf_counter() - t0
    loop = float(next(line for line in proc.stderr.splitlines() if line.startswith("loop ")).split()[1])
    return wall, loop


def snakemake_run(work: Path, target: list[str], extra: list[str]) -> float:
    if (work / "packed.yaml").exists():
        extra = [*extra, "--configfile", "packed.yaml"]
    cmd = [
        snakemake_exe(),
        *target,
        "--snakefile",
        str(REPO / "Snakefile"),
        "--directory",
        str(work),
        "--cores",
        "2",
        *extra,
        "--quiet",
        "all",
    ]
    # The jobs' `python` is this environment's, as with an activated virtualenv.
    env = {**os.environ, "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])}
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=work, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def fresh_workdir(root: Path, name: str) -> Path:
    work = root / name
    shutil.rmtree(work, ignore_errors=True)
    (work / "config").mkdir(parents=True)
    shutil.copy(REPO / "config" / "config.yaml", work / "config" / "config.yaml")
    return work


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    cfg = resolve_config(yaml.safe_load((REPO / "config" / "config.yaml").read_text()))
    labels = {
        "seq": "in-process program, sequential (1 process)",
        "fork": "in-process program, 2 forked workers",
        "spawn": "in-process program, 2 spawned workers",
        "smk-ilp": "snakemake, 27 trial jobs + collect, --cores 2, ILP scheduler",
        "smk-greedy": "snakemake, 27 trial jobs + collect, --cores 2, greedy scheduler (default)",
        "smk-pack": "snakemake, 2 packs of 14 trials + collect (search.trials_per_job: 14), --cores 2",
        "smk-full": "snakemake, whole study (prepare, 27 trials, collect, select, retrain), --cores 2",
    }
    walls: dict[str, list[float]] = {}
    loops: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        data = root / "prepared.npz"
        prepare(cfg["data"], data)
        for rep in range(args.repeats):
            for name in labels:
                if name in ("seq", "fork", "spawn"):
                    workers, start = (1, "fork") if name == "seq" else (2, name)
                    t, loop = loop_program(data, root / name, workers, start)
                    loops.setdefault(name, []).append(loop)
                elif name == "smk-full":
                    t = snakemake_run(fresh_workdir(root, name), [], [])
                else:
                    work = fresh_workdir(root, name)
                    if name == "smk-pack":
                        (work / "packed.yaml").write_text("study: seed-grid\nsearch: {trials_per_job: 14}\n")
                    snakemake_run(work, ["results/seed-grid/data/prepared.npz"], [])
                    extra = ["--scheduler", "ilp"] if name == "smk-ilp" else []
                    t = snakemake_run(work, ["results/seed-grid/trials.tsv"], extra)
                walls.setdefault(name, []).append(t)
                print(f"rep {rep}: {name:11s} {t:6.2f} s", file=sys.stderr, flush=True)
    ref_name = min(("fork", "spawn"), key=lambda n: statistics.median(walls[n]))
    ref = statistics.median(walls[ref_name])
    loop_ref = min(statistics.median(loops[n]) for n in ("fork", "spawn"))
    print(f"Reference: {labels[ref_name]}, {ref:.2f} s (its loop alone: {loop_ref:.2f} s, the faster pool's).\n")
    print(
        f"| variant | median wall (s) of {args.repeats} | runs (s) | loop alone (s) | ratio to the 2-worker program | ratio to its loop alone |"
    )
    print("|---|---|---|---|---|---|")
    for name, label in labels.items():
        runs = walls[name]
        med = statistics.median(runs)
        loop = f"{statistics.median(loops[name]):.2f}" if name in loops else ""
        print(
            f"| {label} | {med:.2f} | {', '.join(f'{r:.2f}' for r in runs)} | {loop} | {med / ref:.2f}x | {med / loop_ref:.2f}x |"
        )


if __name__ == "__main__":
    main()
