"""The whole default study (prepare, 27 trials, collect, select, 3 retrains, figures, summary) as a
user runs it, `snakemake --cores 2`, timed end to end; checkouts in turns (issue 16).

    mkdir /tmp/before && git archive <commit> | tar -x -C /tmp/before
    python benchmarks/whole_study.py --repeats 5 --against /tmp/before [--calibrate]

Each run starts from nothing (a fresh working folder, no results, no .snakemake) with the
checkout's own Snakefile and config/config.yaml, its ``src/`` first on PYTHONPATH (the jobs'
``snaketune-trial`` imports it too). Printed: the wall time of each run and their medians, and the
median seconds of each rule's jobs (Snakemake's benchmark.tsv, the job's own process) in the last
folder of each checkout. On a shared machine compare the variants' medians, measured in turns.

Run it with the snakemake of the install to measure on PATH. A user's install (`pip install .`)
has no executor plugins; the test extra installs three, and Snakemake imports every installed
executor plugin as it starts (1.0 s to its first job without them, 2.3 s with them, here), so the figures
in docs/benchmarks.md come from a virtual environment with `pip install torch==2.13.0 && pip
install .` only.
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

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

PROGRAM = "2-worker in-process program (27 trials only; --calibrate)"


def run_once(checkout: Path, folder: Path) -> float:
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
    t0 = time.perf_counter()
    done = subprocess.run(cmd, cwd=folder, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        sys.exit(f"{checkout}: snakemake failed\n{done.stderr[-3000:]}")
    return wall


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
    args = ap.parse_args()
    checkouts = {"this checkout": REPO, **{str(p): p.resolve() for p in args.against}}
    walls: dict[str, list[float]] = {name: [] for name in checkouts}
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
                walls[name].append(run_once(checkout, folders[name]))
                print(f"repeat {r + 1}: {name}: {walls[name][-1]:.1f} s", flush=True)
            if args.calibrate:
                walls[PROGRAM].append(loop_program(data, Path(tmp) / "program", "fork", {})[0])
                print(f"repeat {r + 1}: {PROGRAM}: {walls[PROGRAM][-1]:.1f} s", flush=True)
        ref = statistics.median(walls[PROGRAM]) if args.calibrate else None
        print(
            "\n| workflow | median wall (s) | runs (s) |"
            + (" ratio to the program |\n|---|---|---|---|" if ref else "\n|---|---|---|")
        )
        for name, w in walls.items():
            ratio = f" {statistics.median(w) / ref:.2f}x |" if ref else ""
            print(f"| {name} | {statistics.median(w):.1f} | {', '.join(f'{x:.1f}' for x in w)} |{ratio}")
        for name, folder in folders.items():
            seconds = rule_seconds(folder)
            print(f"\n{name}, last run, median s per job: " + ", ".join(f"{k} {v:.2f}" for k, v in seconds.items()))


if __name__ == "__main__":
    main()
