"""The whole default study (prepare, 27 trials, collect, select, 3 retrains, figures, summary) as a
user runs it, `snakemake --cores 2`, timed end to end; checkouts in turns (issue 16).

    mkdir /tmp/before && git archive <commit> | tar -x -C /tmp/before
    python benchmarks/whole_study.py --repeats 5 --against /tmp/before [--calibrate] [--search-only]

--search-only times the 27 trial jobs and collect alone (`snakemake results/seed-grid/trials.tsv`,
the data prepared beforehand, untimed), pipeline_overhead.py's one-job-per-trial variant, with
checkouts in turns.

Each run starts from nothing (a fresh working folder, no results, no .snakemake) with the
checkout's own Snakefile and config/config.yaml, its ``src/`` first on PYTHONPATH (the jobs'
``snaketune-trial`` imports it too). Printed: the wall time of each run and their medians, and the
median seconds of each rule's jobs (Snakemake's benchmark.tsv, the job's own process) in the last
folder of each checkout, and the CPU seconds of Snakemake and of the jobs' own processes (its
reaped children: not the warm worker and its forks, which a job hands its work to). On a shared
machine compare the variants' medians, measured in turns.

Run it with the snakemake of the install to measure on PATH. A user's install (`pip install .`)
has no executor plugins; the test extra installs three, and Snakemake imports every installed
executor plugin as it starts (1.0 s to its first job without them, 2.3 s with them, here), so the figures
in docs/benchmarks.md come from a virtual environment with `pip install torch==2.13.0 && pip
install .` only.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

PROGRAM = "2-worker in-process program (27 trials only; --calibrate)"


def run_once(checkout: Path, folder: Path, search_only: bool = False) -> tuple[float, float]:
    """(wall seconds, CPU seconds of Snakemake and its reaped children) of one run from nothing."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    cmd = [
        shutil.which("snakemake") or "snakemake",
        "--snakefile", str(checkout / "Snakefile"),
        "--configfile", str(checkout / "config" / "config.yaml"),
        "--directory", str(folder),
        "--cores", "2",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(checkout / "src")}
    if search_only:
        subprocess.run([*cmd, "results/seed-grid/data/prepared.npz"], cwd=folder, env=env, capture_output=True, check=True)
        cmd.append("results/seed-grid/trials.tsv")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    done = subprocess.run(cmd, cwd=folder, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        sys.exit(f"{checkout}: snakemake failed\n{done.stderr[-3000:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def rule_seconds(folder: Path) -> dict[str, float]:
    """Median seconds per rule from the study's benchmark files (trials: their own files)."""
    by_rule: dict[str, list[float]] = {}
    for f in folder.glob("results/*/**/benchmark*.tsv"):
        rule = "train_trial"
        by_rule.setdefault(rule, []).append(float(f.read_text().splitlines()[1].split("\t")[0]))
    for f in folder.glob("results/*/benchmarks/**/*.tsv"):
        rule = f.relative_to(next(folder.glob("results/*/benchmarks"))).parts[0].removesuffix(".tsv")
        by_rule.setdefault(rule, []).append(float(f.read_text().splitlines()[1].split("\t")[0]))
    return {rule: statistics.median(v) for rule, v in sorted(by_rule.items())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--against", type=Path, action="append", default=[], help="another checkout, timed in turns")
    ap.add_argument(
        "--calibrate",
        action="store_true",
        help="also time pipeline_overhead.py's reference, the 2-worker in-process program on the same grid, in "
        "turns: the machine's speed that day, to compare with figures of other days",
    )
    ap.add_argument("--search-only", action="store_true", help="the 27 trial jobs and collect only (data prepared first)")
    args = ap.parse_args()
    checkouts = {"this checkout": REPO, **{str(p): p.resolve() for p in args.against}}
    walls: dict[str, list[float]] = {name: [] for name in checkouts}
    cpus: dict[str, list[float]] = {name: [] for name in checkouts}
    if args.calibrate:
        walls[PROGRAM] = []
    with tempfile.TemporaryDirectory() as tmp:
        folders = {name: Path(tmp) / f"study-{i}" for i, name in enumerate(checkouts)}
        data = Path(tmp) / "prepared.npz"
        if args.calibrate:  # imported only then: inprocess_loop imports torch
            from inprocess_loop import study_config
            from pipeline_overhead import loop_program

            from snaketune.data import prepare

            prepare(study_config({})["data"], data)
        for r in range(args.repeats):
            for name, checkout in checkouts.items():
                wall, cpu = run_once(checkout, folders[name], args.search_only)
                walls[name].append(wall)
                cpus[name].append(cpu)
                print(f"repeat {r + 1}: {name}: {wall:.1f} s ({cpu:.1f} s of CPU)", flush=True)
            if args.calibrate:
                walls[PROGRAM].append(loop_program(data, Path(tmp) / "program", "fork", {})[0])
                print(f"repeat {r + 1}: {PROGRAM}: {walls[PROGRAM][-1]:.1f} s", flush=True)
        ref = statistics.median(walls[PROGRAM]) if args.calibrate else None
        print(
            "\n| workflow | median wall (s) | runs (s) | CPU of snakemake and its jobs' processes, median (s) |"
            + (" ratio to the program |\n|---|---|---|---|---|" if ref else "\n|---|---|---|---|")
        )
        for name, w in walls.items():
            ratio = f" {statistics.median(w) / ref:.2f}x |" if ref else ""
            cpu = f"{statistics.median(cpus[name]):.1f}" if cpus.get(name) else ""
            print(f"| {name} | {statistics.median(w):.1f} | {', '.join(f'{x:.1f}' for x in w)} | {cpu} |{ratio}")
        for name, folder in folders.items():
            seconds = rule_seconds(folder)
            print(f"\n{name}, last run, median s per job: " + ", ".join(f"{k} {v:.2f}" for k, v in seconds.items()))


if __name__ == "__main__":
    main()
