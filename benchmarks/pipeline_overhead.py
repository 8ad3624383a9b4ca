"""What the workflow costs: the default 27-trial study as Snakemake jobs vs an in-process loop.

    python benchmarks/pipeline_overhead.py --repeats 3

All variants train the same 27 configurations of config/config.yaml with the same trainer code
(snaketune.train.train) on the same prepared data, on CPU:

* in-process, sequential: one Python process, torch imported once, a loop over the trials;
* in-process, 2 workers: a spawn pool of two processes (what 2 cores allow), torch imported once each;
* snakemake, one job per trial (--cores 2), ILP and greedy scheduler: the trials and collect only,
  data prepared beforehand, so all variants do the same work;
* snakemake with search.trials_per_job: 14 (two packs, one per core; the trainer runs in the
  pack's process, so torch is imported twice instead of 27 times);
* snakemake, the whole study (prepare_data -> 27 trials -> collect -> select -> retrain).

Prints a Markdown table with medians and the ratio to the two-worker loop.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
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
from snaketune.plan import plan_trials, trial_seed  # noqa: E402


def snakemake_exe() -> str:
    exe = shutil.which("snakemake", path=str(Path(sys.executable).parent)) or shutil.which("snakemake")
    if not exe:
        sys.exit("snakemake is not installed")
    return exe


def _train_one(args) -> float:
    from snaketune.files import write_yaml
    from snaketune.train import TrialSettings, train

    trial_id, params, data, out, seed, cfg = args
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_yaml(out / "params.yaml", params)
    m = train(
        TrialSettings(
            params=out / "params.yaml",
            out=out,
            data=Path(data),
            seed=seed,
            metric=cfg["objective"]["metric"],
            direction=cfg["objective"]["direction"],
            patience=cfg["early_stopping"]["patience"],
            device="cpu",
        )
    )
    return m["val_accuracy"]


def _quiet_init() -> None:
    sys.stdout = open(os.devnull, "w")


def in_process(cfg, data, work: Path, workers: int) -> float:
    jobs = [(t.id, t.params, str(data), str(work / t.id), trial_seed(cfg["search"]["seed"], t.id), cfg) for t in plan_trials(cfg)]
    t0 = time.perf_counter()
    if workers == 1:
        _quiet_init()
        try:
            for j in jobs:
                _train_one(j)
        finally:
            sys.stdout = sys.__stdout__
    else:
        with mp.get_context("spawn").Pool(workers, initializer=_quiet_init) as pool:
            pool.map(_train_one, jobs, chunksize=1)
    return time.perf_counter() - t0


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
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=work, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
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
    results: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        data = root / "prepared.npz"
        prepare(cfg["data"], data)
        for rep in range(args.repeats):
            order = ["seq", "pool", "smk-ilp", "smk-greedy", "smk-pack", "smk-full"]
            for name in order:
                if name == "seq":
                    t = in_process(cfg, data, root / f"seq{rep}", 1)
                elif name == "pool":
                    t = in_process(cfg, data, root / f"pool{rep}", 2)
                elif name.startswith("smk-") and name != "smk-full":
                    work = fresh_workdir(root, name)
                    if name == "smk-pack":
                        (work / "packed.yaml").write_text("study: seed-grid\nsearch: {trials_per_job: 14}\n")
                    snakemake_run(work, ["results/seed-grid/data/prepared.npz"], [])
                    extra = ["--scheduler", "ilp"] if name == "smk-ilp" else ["--scheduler", "greedy"]
                    t = snakemake_run(work, ["results/seed-grid/trials.tsv"], extra)
                else:
                    work = fresh_workdir(root, name)
                    t = snakemake_run(work, [], [])
                results.setdefault(name, []).append(t)
                print(f"rep {rep}: {name:11s} {t:6.2f} s", file=sys.stderr, flush=True)
    labels = {
        "seq": "in-process, sequential (1 process)",
        "pool": "in-process, 2 worker processes",
        "smk-ilp": "snakemake, 27 trial jobs + collect, --cores 2, ILP scheduler",
        "smk-greedy": "snakemake, 27 trial jobs + collect, --cores 2, greedy scheduler",
        "smk-pack": "snakemake, 2 packs of 14 trials + collect (search.trials_per_job: 14), --cores 2, greedy",
        "smk-full": "snakemake, whole study (prepare, 27 trials, collect, select, retrain), --cores 2",
    }
    ref = statistics.median(results["pool"])
    print(f"| variant | median wall (s) of {args.repeats} | runs (s) | ratio to 2-worker loop |")
    print("|---|---|---|---|")
    for name, label in labels.items():
        runs = results[name]
        med = statistics.median(runs)
        print(f"| {label} | {med:.2f} | {', '.join(f'{r:.1f}' for r in runs)} | {med / ref:.2f}x |")


if __name__ == "__main__":
    main()
