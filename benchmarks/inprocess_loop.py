"""The reference for benchmarks/pipeline_overhead.py: the default study as a plain Python program.

    python benchmarks/inprocess_loop.py PREPARED.npz OUT_DIR --workers 2 --start fork [--set YAML]

What a user would write instead of a workflow: import torch, plan the 27 trials of
config/config.yaml, train them with the same trainer code (snaketune.train.train, which writes
each trial's params, history, metrics and checkpoint) in a pool of worker processes, print the
best. `--set` merges a mapping over the config's sections, as a second --configfile would (e.g.
`{early_stopping: {patience: 0}}`). Prints `loop <seconds>` on stderr: the time from the pool's
start to the last trial, without the interpreter's start, the imports and the teardown
(pipeline_overhead.py times the whole program from outside as well).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
import time
from pathlib import Path

import torch  # noqa: F401  (imported once in the parent: forked workers inherit it)
import yaml

REPO = Path(__file__).resolve().parents[1]

from snaketune.config import resolve_config  # noqa: E402
from snaketune.files import write_yaml  # noqa: E402
from snaketune.plan import plan_trials, trial_seed  # noqa: E402
from snaketune.train import TrialSettings, train  # noqa: E402


def study_config(overrides: dict) -> dict:
    raw = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    for key, value in overrides.items():
        raw[key] = {**raw.get(key, {}), **value} if isinstance(value, dict) and key != "search_space" else value
    return resolve_config(raw)


def train_one(job: tuple[str, dict, str, str, dict]) -> float:
    trial_id, params, data, out, cfg = job
    folder = Path(out) / trial_id
    folder.mkdir(parents=True, exist_ok=True)
    write_yaml(folder / "params.yaml", params)
    metrics = train(
        TrialSettings(
            params=folder / "params.yaml",
            out=folder,
            data=Path(data),
            seed=trial_seed(cfg["search"]["seed"], trial_id),
            metric=cfg["objective"]["metric"],
            direction=cfg["objective"]["direction"],
            patience=cfg["early_stopping"]["patience"],
            device="cpu",
        )
    )
    return metrics[cfg["objective"]["metric"]]


def quiet() -> None:
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115  (the trainer prints a line per epoch)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", help="the prepared data (results/<study>/data/prepared.npz)")
    ap.add_argument("out", help="folder for the trials' files")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--start", choices=["fork", "spawn", "forkserver"], default="fork")
    ap.add_argument("--set", default="{}", help="YAML mapping merged over config/config.yaml")
    args = ap.parse_args()
    cfg = study_config(yaml.safe_load(args.set))
    jobs = [(t.id, t.params, args.data, args.out, cfg) for t in plan_trials(cfg)]
    t0 = time.perf_counter()
    if args.workers == 1:
        stdout = sys.stdout
        quiet()
        scores = [train_one(j) for j in jobs]
        sys.stdout = stdout
    else:
        with mp.get_context(args.start).Pool(args.workers, initializer=quiet) as pool:
            scores = pool.map(train_one, jobs, chunksize=1)
    print(f"loop {time.perf_counter() - t0:.3f}", file=sys.stderr)
    print(f"best {cfg['objective']['metric']}: {max(scores):.4f} of {len(scores)} trials")


if __name__ == "__main__":
    main()
