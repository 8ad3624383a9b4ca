"""What the workflow costs: the default 27-trial study as Snakemake jobs vs an in-process loop.

    python benchmarks/pipeline_overhead.py --repeats 3 [--full-epochs]

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

--full-epochs adds a second workload: the same grid without early stopping (every trial trains
all 50 epochs, about 5x the work), run by the 2-worker program, one job per trial and the packs.

Prints a Markdown table per workload with medians and ratios to its fastest 2-worker program.
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

from snaketune.config import resolve_config  # noqa: E402
from snaketune.data import prepare  # noqa: E402

LABELS = {
    "seq": "in-process program, sequential (1 process)",
    "fork": "in-process program, 2 forked workers",
    "spawn": "in-process program, 2 spawned workers",
    "smk-ilp": "snakemake, 27 trial jobs + collect, --cores 2, ILP scheduler",
    "smk-greedy": "snakemake, 27 trial jobs + collect, --cores 2, greedy scheduler (default)",
    "smk-pack": "snakemake, 2 packs of 14 trials + collect (search.trials_per_job: 14), --cores 2",
    "smk-full": "snakemake, whole study (prepare, 27 trials, collect, select, retrain), --cores 2",
}
WORKLOADS = {
    "default": ({}, list(LABELS)),
    "full-epochs": ({"early_stopping": {"patience": 0}}, ["fork", "smk-greedy", "smk-pack"]),
}
PROGRAMS = ("seq", "fork", "spawn")


def snakemake_exe() -> str:
    exe = shutil.which("snakemake", path=str(Path(sys.executable).parent)) or shutil.which("snakemake")
    if not exe:
        sys.exit("snakemake is not installed")
    return exe


def loop_program(data: Path, out: Path, name: str, overrides: dict) -> tuple[float, float]:
    """(wall seconds of the whole program, seconds of its training loop alone)."""
    shutil.rmtree(out, ignore_errors=True)
    workers, start = (1, "fork") if name == "seq" else (2, name)
    cmd = [sys.executable, str(REPO / "benchmarks" / "inprocess_loop.py"), str(data), str(out)]
    cmd += ["--workers", str(workers), "--start", start, "--set", yaml.safe_dump(overrides)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
    wall = time.perf_counter() - t0
    loop = float(next(line for line in proc.stderr.splitlines() if line.startswith("loop ")).split()[1])
    return wall, loop


def snakemake_run(work: Path, target: list[str], extra: list[str]) -> float:
    cmd = [
        snakemake_exe(),
        *target,
        "--snakefile",
        str(REPO / "Snakefile"),
        "--directory",
        str(work),
        "--cores",
        "2",
        "--configfile",
        "study.yaml",
        *extra,
        "--quiet",
        "all",
    ]
    # The jobs' `python` is this environment's, as with an activated virtualenv.
    env = {**os.environ, "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])}
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=work, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def fresh_workdir(root: Path, name: str, overrides: dict) -> Path:
    """A folder with the default study and a study.yaml holding the variant's changes to it."""
    work = root / name
    shutil.rmtree(work, ignore_errors=True)
    (work / "config").mkdir(parents=True)
    shutil.copy(REPO / "config" / "config.yaml", work / "config" / "config.yaml")
    (work / "study.yaml").write_text(yaml.safe_dump({"study": "seed-grid", **overrides}))
    return work


def measure(name: str, root: Path, data: Path, overrides: dict) -> tuple[float, float | None]:
    if name in PROGRAMS:
        return loop_program(data, root / name, name, overrides)
    if name == "smk-full":
        return snakemake_run(fresh_workdir(root, name, overrides), [], []), None
    if name == "smk-pack":
        overrides = {**overrides, "search": {"trials_per_job": 14}}
    work = fresh_workdir(root, name, overrides)
    snakemake_run(work, ["results/seed-grid/data/prepared.npz"], [])
    extra = ["--scheduler", "ilp"] if name == "smk-ilp" else []
    return snakemake_run(work, ["results/seed-grid/trials.tsv"], extra), None


def table(workload: str, names: list[str], walls: dict, loops: dict, repeats: int) -> None:
    pools = [n for n in ("fork", "spawn") if n in names]
    ref_name = min(pools, key=lambda n: statistics.median(walls[n]))
    ref = statistics.median(walls[ref_name])
    loop_ref = min(statistics.median(loops[n]) for n in pools)
    print(f"\nWorkload `{workload}`. Reference: {LABELS[ref_name]}, {ref:.2f} s (its loop alone: {loop_ref:.2f} s).\n")
    print(
        f"| variant | median wall (s) of {repeats} | runs (s) | loop alone (s) | ratio to the 2-worker program | ratio to its loop alone |"
    )
    print("|---|---|---|---|---|---|")
    for name in names:
        runs = walls[name]
        med = statistics.median(runs)
        loop = f"{statistics.median(loops[name]):.2f}" if name in loops else ""
        runs_text = ", ".join(f"{r:.2f}" for r in runs)
        print(f"| {LABELS[name]} | {med:.2f} | {runs_text} | {loop} | {med / ref:.2f}x | {med / loop_ref:.2f}x |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--full-epochs", action="store_true", help="also the workload without early stopping")
    args = ap.parse_args()
    cfg = resolve_config(yaml.safe_load((REPO / "config" / "config.yaml").read_text()))
    workloads = ["default", "full-epochs"] if args.full_epochs else ["default"]
    walls: dict[str, dict[str, list[float]]] = {w: {} for w in workloads}
    loops: dict[str, dict[str, list[float]]] = {w: {} for w in workloads}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        data = root / "prepared.npz"
        prepare(cfg["data"], data)
        for rep in range(args.repeats):  # interleaved: every variant once per repeat
            for w in workloads:
                overrides, names = WORKLOADS[w]
                for name in names:
                    wall, loop = measure(name, root, data, overrides)
                    walls[w].setdefault(name, []).append(wall)
                    if loop is not None:
                        loops[w].setdefault(name, []).append(loop)
                    print(f"rep {rep}: {w:11s} {name:11s} {wall:6.2f} s", file=sys.stderr, flush=True)
    for w in workloads:
        table(w, WORKLOADS[w][1], walls[w], loops[w], args.repeats)


if __name__ == "__main__":
    main()
