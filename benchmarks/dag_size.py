"""How long Snakemake takes to build a study's DAG, by the number of its jobs (issue 14).

    python benchmarks/dag_size.py --trials 100 1000 5000 10000 20000 --repeats 3
    python benchmarks/dag_size.py --trials 2000 --folds 5 --repeats 3    # 10,000 jobs from 2,000 trials
    python benchmarks/dag_size.py --plan 10000 100000 --repeats 3         # planning alone, trials_per_job 1000
    mkdir /tmp/before && git archive <commit> | tar -x -C /tmp/before    # issue 16: before, after, floor
    python benchmarks/dag_size.py --trials 10000 --repeats 5 --floor --against /tmp/before

* DAG: CPU time (user + system), wall time and peak memory (GNU time) of ``snakemake -n --quiet
  all`` on a random search of N trials (the 6-parameter space of benchmarks/scale.py) on
  ``synthetic`` data, nothing trained or prepared: a dry run reads the config, plans the study and
  builds every job of the DAG. CPU time is the figure to compare: on a shared machine the wall time
  also counts the other processes' turns. The job count is ``snaketune.plan.plan_size``'s (the
  search's training jobs plus the final retrains), the figure the config's limits are about
  (snaketune.config.MAX_JOBS, WARN_JOBS).
* plan: resolve_config plus StudyPlan in this process (what every snakemake invocation, and on a
  cluster every job, does when it parses the workflow), with trials_per_job 1000 so that the DAG
  stays small: the CPU cost per trial, which snaketune.config.MAX_TRIALS bounds.
* --floor: Snakemake's own floor, timed in turn with the study (study, floor, study, floor, ...):
  a bare Snakefile of one rule (one output, a one-line shell command) and a rule gathering its N
  outputs, dry-run the same way. CPU / floor is the median of the per-turn ratios, the figure that
  survives a loaded machine. --against DIR times another checkout of the workflow in the same
  turns (its Snakefile, its ``src/`` on PYTHONPATH): before and after a change, side by side.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from scale import SPACE, snakemake_exe  # noqa: E402

from snaketune.config import resolve_config  # noqa: E402
from snaketune.plan import StudyPlan, plan_size  # noqa: E402


def study(n: int, folds: int = 1, per_job: int = 1) -> dict:
    return {
        "study": "dag",
        "data": {"source": "synthetic", "n_samples": 300},
        "search": {"method": "random", "n_trials": n, "trials_per_job": per_job},
        "search_space": SPACE,
        "cv": {"folds": folds},
    }


FLOOR_SNAKEFILE = """rule all:
    input:
        expand("out/{{i}}.txt", i=range({n})),


rule one:
    output:
        "out/{{i}}.txt",
    shell:
        "touch {{output}}"
"""


def dry_run(work: Path, cfg: dict | None, checkout: Path = REPO) -> tuple[float, float, int]:
    """(CPU seconds, wall seconds, peak MB) of ``snakemake -n --quiet all`` in a fresh folder: the
    study ``cfg`` with the workflow of ``checkout``, or (``cfg`` None) the Snakefile already there."""
    work.mkdir(parents=True, exist_ok=True)
    cmd, env = [snakemake_exe(), "--directory", str(work)], None
    if cfg is not None:
        (work / "study.yaml").write_text(json.dumps(cfg))
        cmd += ["--snakefile", str(checkout / "Snakefile"), "--configfile", "study.yaml"]
        if checkout != REPO:  # its own library, not the one installed from this checkout
            env = {**os.environ, "PYTHONPATH": str(checkout / "src")}
    cmd += ["-n", "--quiet", "all"]
    proc = subprocess.run(["/usr/bin/time", "-f", "%U %S %e %M", *cmd], cwd=work, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise SystemExit(proc.stderr[-2000:])
    user, system, wall, kb = proc.stderr.strip().splitlines()[-1].split()
    return float(user) + float(system), float(wall), int(kb) // 1024


def against_floor(n: int, repeats: int, root: Path, checkouts: dict[str, Path]) -> None:
    """Rows of the side-by-side table: each checkout's study of n trials and the bare floor, in turns."""
    # Every checkout imports its library compiled: under PYTHONDONTWRITEBYTECODE, one without a
    # __pycache__ would compile it again in every run.
    for checkout in checkouts.values():
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(checkout / "src")], check=True, capture_output=True)
    (root / f"floor{n}").mkdir(parents=True)
    (root / f"floor{n}" / "Snakefile").write_text(FLOOR_SNAKEFILE.format(n=n))
    runs: dict[str, list[tuple[float, float, int]]] = {name: [] for name in [*checkouts, "floor"]}
    for r in range(repeats):
        for i, (name, checkout) in enumerate(checkouts.items()):
            runs[name].append(dry_run(root / f"checkout{i}-{n}-{r}", study(n), checkout))
        runs["floor"].append(dry_run(root / f"floor{n}", None))
    floor = runs["floor"]
    for name, rs in runs.items():
        cpu_ratio = statistics.median(c / f for (c, _, _), (f, _, _) in zip(rs, floor))
        wall_ratio = statistics.median(w / f for (_, w, _), (_, f, _) in zip(rs, floor))
        print(
            f"| {n:,} | {name} | {statistics.median(c for c, _, _ in rs):.1f} | {', '.join(f'{c:.1f}' for c, _, _ in rs)} "
            f"| {statistics.median(w for _, w, _ in rs):.1f} | {', '.join(f'{w:.1f}' for _, w, _ in rs)} "
            f"| {cpu_ratio:.2f} | {wall_ratio:.2f} | {max(m for _, _, m in rs)} |",
            flush=True,
        )


def plan_seconds(n: int) -> float:
    """CPU seconds of resolve_config + StudyPlan for n trials."""
    t0 = time.process_time()
    StudyPlan(resolve_config(study(n, per_job=1000)))
    return time.process_time() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, nargs="*", default=[100, 1000, 5000, 10000, 20000])
    ap.add_argument("--folds", type=int, default=1, help="cv.folds of the DAG studies")
    ap.add_argument("--plan", type=int, nargs="*", default=[], help="time planning alone for these trial counts")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--floor", action="store_true", help="time Snakemake's floor (a bare one-rule Snakefile) in turns")
    ap.add_argument("--against", type=Path, help="with --floor: another checkout of the workflow, timed in the same turns")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.floor:
            checkouts = {"this checkout": REPO}
            if args.against:
                checkouts = {str(args.against): args.against.resolve(), **checkouts}
            print(
                "| trials | workflow | CPU median (s) | CPU runs (s) | wall median (s) | wall runs (s) | CPU / floor "
                "| wall / floor | peak memory (MB) |"
            )
            print("|---|---|---|---|---|---|---|---|---|")
            for n in args.trials:
                against_floor(n, args.repeats, Path(tmp), checkouts)
            args.trials = []
        if args.trials:
            print(
                "| trials | cv.folds | jobs | CPU median (s) | CPU runs (s) | ms CPU per job | wall median (s) | peak memory (MB) |"
            )
            print("|---|---|---|---|---|---|---|---|")
        for n in args.trials:
            cfg = study(n, args.folds)
            jobs = plan_size(resolve_config(cfg)).jobs
            runs = [dry_run(Path(tmp) / f"n{n}-f{args.folds}-{r}", cfg) for r in range(args.repeats)]
            cpu = statistics.median(c for c, _, _ in runs)
            print(
                f"| {n:,} | {args.folds} | {jobs:,} | {cpu:.1f} | {', '.join(f'{c:.1f}' for c, _, _ in runs)} "
                f"| {1000 * cpu / jobs:.2f} | {statistics.median(w for _, w, _ in runs):.1f} | {max(m for _, _, m in runs)} |",
                flush=True,
            )
        if args.plan:
            print(
                "\n| trials (plan only, trials_per_job 1000) | CPU median (s) | CPU runs (s) | µs per trial | peak memory (MB) |"
            )
            print("|---|---|---|---|---|")
        for n in args.plan:
            walls = [plan_seconds(n) for _ in range(args.repeats)]
            med = statistics.median(walls)
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
            print(f"| {n:,} | {med:.2f} | {', '.join(f'{w:.2f}' for w in walls)} | {1e6 * med / n:.0f} | {rss} |", flush=True)


if __name__ == "__main__":
    main()
