"""What the workflow costs: the default 27-trial study as Snakemake jobs vs an in-process loop.

    python benchmarks/pipeline_overhead.py --repeats 3 [--full-epochs] [--worker on|off|both]

Every variant trains the same 27 configurations of config/config.yaml with the same trainer code
(snaketune.train.train) on the same prepared data, on CPU, and is timed as a command, from launch
to exit (what a user waits for):

* in-process program (benchmarks/inprocess_loop.py): torch imported once, the trials in a loop
  (1 process) or in a pool of 2 worker processes (what 2 cores allow), forked (workers inherit
  torch) or spawned (each worker imports it again); the program also reports its loop alone,
  without interpreter start, imports and teardown;
* Optuna's own multi-process pattern (benchmarks/optuna_workers.py): 2 worker processes launched
  side by side, sharing one study in a JournalFileBackend file, a GridSampler over the same 27
  configurations, the same training as the objective; after the run the script counts the
  study's trials (27 trained, each configuration once, or an error) and prints the count;
* snakemake, one job per trial (--cores 2), ILP and greedy scheduler: the trials and collect only,
  data prepared beforehand, so all variants do the same work;
* snakemake with search.trials_per_job: 14 (two packs, one per core; the trainer runs in the
  pack's runner: torch is imported twice instead of 27 times, or never with the worker on, where
  the runner is a fork of the worker);
* snakemake, the whole study (prepare_data -> 27 trials -> collect -> select -> retrain);
* Snakemake's own floor: a bare Snakefile of 27 jobs that run `true` and one that gathers their
  outputs, --cores 2: what any workflow of one job per trial pays before its trials compute
  anything (Snakemake's start, its per-job work, its exit).

--full-epochs adds a second workload: the same grid without early stopping (every trial trains
all 50 epochs, about 5x the work), run by the 2-worker program, the Optuna workers, one job per
trial and the packs.

--worker sets SNAKETUNE_WORKER for the snakemake variants of the study (greedy, ILP, packs, whole
study): on (1, "warm worker"), off (0, "no worker") or both (default: each twice, on and off). With
the worker on, a pack's job runs in a fork of the worker too, so it imports no torch; the other
variants don't run the study's workflow.

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
from snaketune.plan import plan_trials  # noqa: E402

LABELS = {
    "seq": "in-process program, sequential (1 process)",
    "fork": "in-process program, 2 forked workers",
    "spawn": "in-process program, 2 spawned workers",
    "optuna": "Optuna, 2 worker processes sharing a JournalFileBackend file (GridSampler)",
    "smk-ilp": "snakemake, 27 trial jobs + collect, --cores 2, ILP scheduler",
    "smk-greedy": "snakemake, 27 trial jobs + collect, --cores 2, greedy scheduler (default)",
    "smk-pack": "snakemake, 2 packs of 14 trials + collect (search.trials_per_job: 14), --cores 2",
    "smk-full": "snakemake, whole study (prepare, 27 trials, collect, select, retrain), --cores 2",
    "smk-floor": "snakemake, a bare Snakefile: 27 jobs running `true` + gather, --cores 2 (Snakemake's floor)",
}
FLOOR_SNAKEFILE = """
rule gather:
    input:
        expand("out/{i}.txt", i=range(27)),
    output:
        "gathered.txt",
    shell:
        "cat {input} > {output}"


rule job:
    output:
        "out/{i}.txt",
    shell:
        "true > {output}"
"""
WORKLOADS = {
    "default": ({}, list(LABELS)),
    "full-epochs": ({"early_stopping": {"patience": 0}}, ["fork", "optuna", "smk-greedy", "smk-pack", "smk-floor"]),
}
PROGRAMS = ("seq", "fork", "spawn")
# The variants run with SNAKETUNE_WORKER=1 and/or 0 (--worker), as "<name>@on" / "<name>@off".
WORKER_VARIANTS = ("smk-ilp", "smk-greedy", "smk-pack", "smk-full")
WORKER_LABELS = {"on": "warm worker", "off": "no worker"}


def variants(names: list[str], worker: str) -> list[str]:
    """A workload's variants with --worker applied: the worker variants once per setting."""
    settings = ["on", "off"] if worker == "both" else [worker]
    return [v for n in names for v in ([f"{n}@{s}" for s in settings] if n in WORKER_VARIANTS else [n])]


def label(variant: str) -> str:
    name, _, worker = variant.partition("@")
    return f"{LABELS[name]}, {WORKER_LABELS[worker]}" if worker else LABELS[name]


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


def optuna_run(data: Path, out: Path, overrides: dict) -> tuple[float, str]:
    """(wall seconds from the launch of the 2 workers to the exit of both, what their study holds)."""
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    journal = out / "journal.log"
    cmd = [sys.executable, str(REPO / "benchmarks" / "optuna_workers.py"), str(data), str(out / "trials"), str(journal)]
    cmd += ["--set", yaml.safe_dump(overrides)]
    logs = [out / "worker-0.log", out / "worker-1.log"]
    with logs[0].open("w") as err0, logs[1].open("w") as err1:  # files: a full pipe would stall a worker
        t0 = time.perf_counter()
        procs = [subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err) for err in (err0, err1)]
        codes = [proc.wait() for proc in procs]
        wall = time.perf_counter() - t0
    for code, log in zip(codes, logs):
        if code:
            sys.exit(f"an Optuna worker failed (exit {code}):\n{log.read_text()}")
    return wall, optuna_trials(journal)


def optuna_trials(journal: Path) -> str:
    """The trials of the Optuna workers' study, checked: each of the 27 configurations trained once."""
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=None, storage=JournalStorage(JournalFileBackend(str(journal))))
    trials = study.get_trials(deepcopy=False)
    trained = [t.user_attrs["trial_id"] for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    planned = {t.id for t in plan_trials(resolve_config(yaml.safe_load((REPO / "config" / "config.yaml").read_text())))}
    text = f"{len(trained)} trials trained, {len(set(trained) & planned)} distinct of the {len(planned)} configurations"
    if len(trials) > len(trained):
        text += f", {len(trials) - len(trained)} more trial(s) pruned before training (the grid was taken)"
    if len(trained) != len(planned) or set(trained) != planned:
        print(f"error: the Optuna workers' study: {text}", file=sys.stderr)
        text = f"ERROR: {text}"
    return text


def snakemake_run(work: Path, target: list[str], extra: list[str], worker: str = "off") -> float:
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
    env["SNAKETUNE_WORKER"] = "1" if worker == "on" else "0"
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=work, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def floor_run(work: Path) -> float:
    """Snakemake's own cost for 27 jobs and a gather: a bare Snakefile, no workflow code."""
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    (work / "Snakefile").write_text(FLOOR_SNAKEFILE)
    cmd = [snakemake_exe(), "--snakefile", str(work / "Snakefile"), "--directory", str(work), "--cores", "2", "--quiet", "all"]
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=work, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def fresh_workdir(root: Path, name: str, overrides: dict) -> Path:
    """A folder with the default study and a study.yaml holding the variant's changes to it."""
    work = root / name
    shutil.rmtree(work, ignore_errors=True)
    (work / "config").mkdir(parents=True)
    shutil.copy(REPO / "config" / "config.yaml", work / "config" / "config.yaml")
    (work / "study.yaml").write_text(yaml.safe_dump({"study": "seed-grid", **overrides}))
    return work


def measure(variant: str, root: Path, data: Path, overrides: dict) -> tuple[float, float | None, str | None]:
    """(wall seconds, seconds of the loop alone or None, a note for the table or None)."""
    name, _, worker = variant.partition("@")
    if name in PROGRAMS:
        return *loop_program(data, root / name, name, overrides), None
    if name == "optuna":
        wall, note = optuna_run(data, root / name, overrides)
        return wall, None, note
    folder = variant.replace("@", "-")
    if name == "smk-floor":
        return floor_run(root / folder), None, None
    if name == "smk-full":
        return snakemake_run(fresh_workdir(root, folder, overrides), [], [], worker), None, None
    if name == "smk-pack":
        overrides = {**overrides, "search": {"trials_per_job": 14}}
    work = fresh_workdir(root, folder, overrides)
    snakemake_run(work, ["results/seed-grid/data/prepared.npz"], [])
    extra = ["--scheduler", "ilp"] if name == "smk-ilp" else []
    return snakemake_run(work, ["results/seed-grid/trials.tsv"], extra, worker or "off"), None, None


def table(workload: str, names: list[str], walls: dict, loops: dict, notes: dict, repeats: int) -> None:
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
        print(f"| {label(name)} | {med:.2f} | {runs_text} | {loop} | {med / ref:.2f}x | {med / loop_ref:.2f}x |")
    for name, texts in notes.items():
        print(f"\n{label(name)}, after each run: {'; '.join(texts)}.")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--full-epochs", action="store_true", help="also the workload without early stopping")
    ap.add_argument(
        "--worker",
        choices=["on", "off", "both"],
        default="both",
        help="SNAKETUNE_WORKER=1 (on) or 0 (off) for the one-job-per-trial snakemake variants, or each twice (both)",
    )
    args = ap.parse_args()
    cfg = resolve_config(yaml.safe_load((REPO / "config" / "config.yaml").read_text()))
    workloads = ["default", "full-epochs"] if args.full_epochs else ["default"]
    walls: dict[str, dict[str, list[float]]] = {w: {} for w in workloads}
    loops: dict[str, dict[str, list[float]]] = {w: {} for w in workloads}
    notes: dict[str, dict[str, list[str]]] = {w: {} for w in workloads}
    names = {w: variants(WORKLOADS[w][1], args.worker) for w in workloads}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        data = root / "prepared.npz"
        prepare(cfg["data"], data)
        for rep in range(args.repeats):  # interleaved: every variant once per repeat
            for w in workloads:
                for name in names[w]:
                    wall, loop, note = measure(name, root, data, WORKLOADS[w][0])
                    walls[w].setdefault(name, []).append(wall)
                    if loop is not None:
                        loops[w].setdefault(name, []).append(loop)
                    if note is not None:
                        notes[w].setdefault(name, []).append(note)
                    print(f"rep {rep}: {w:11s} {name:14s} {wall:6.2f} s", file=sys.stderr, flush=True)
    for w in workloads:
        table(w, names[w], walls[w], loops[w], notes[w], args.repeats)


if __name__ == "__main__":
    main()
