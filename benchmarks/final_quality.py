"""How good is the final model? Retrain protocols compared on several data splits (issue 13).

For each data set and each split (``data.seed`` 0 .. n-1, every other setting as in the default
study) the default study's search space (config/config.yaml: the seed's 27-trial grid of
lr x n_layers x batch_size, its fixed values and early stopping) is searched with the built-in
trainer, once with a constant learning rate and once with a cosine schedule; the winner is chosen by snaketune's ranking rule
(``records.select_best``). Then each protocol produces a final model and reads the test set once:

* ``retrain``: retrain the winner on train+validation for its best epoch count (constant lr);
* ``retrain+cosine``: the same, searched and retrained with the cosine schedule;
* ``winner``: keep the winning trial's own best-epoch weights (trained on train only);
* ``repeats``: k retrains of ``retrain+cosine`` with different seeds: their mean test score;
* ``ensemble``: those k models averaged (mean of their softmax outputs) as one model.

Reported per data set and protocol, over the splits: the test accuracy's mean, standard deviation
and minimum, and the mean gap between the winner's validation accuracy and the final test accuracy.

    python benchmarks/final_quality.py                      # digits and mnist1d, 5 splits, k = 3
    python benchmarks/final_quality.py --datasets digits --splits 3 --set hidden_units=64 weight_decay=0

Trials run in a pool of ``--workers`` processes (one thread each), all in process (no Snakemake):
this measures the protocols, not the pipeline.
"""

from __future__ import annotations

import argparse
import itertools
import json
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def default_study() -> tuple[dict, dict, int]:
    """(grid values, fixed values, patience) of the default study, config/config.yaml."""
    import yaml

    from snaketune import resolve_config
    from snaketune.space import Fixed, SearchSpace

    cfg = resolve_config(yaml.safe_load((REPO / "config" / "config.yaml").read_text()))
    space = SearchSpace.from_config(cfg["search_space"])
    grid = {p.name: p.grid_values() for p in space.params if not isinstance(p, Fixed)}
    fixed = {p.name: p.value for p in space.params if isinstance(p, Fixed)}
    return grid, fixed, cfg["early_stopping"]["patience"]


GRID, FIXED, PATIENCE = default_study()


def _train(task: dict) -> dict:
    """One run of the built-in trainer in this worker process; its metrics."""
    import contextlib
    import io

    from snaketune.files import write_yaml
    from snaketune.train import TrialSettings, train

    out = Path(task["out"])
    out.mkdir(parents=True, exist_ok=True)
    write_yaml(out / "params.yaml", task["params"])
    settings = TrialSettings(
        params=out / "params.yaml",
        out=out,
        data=Path(task["data"]),
        stage=task["stage"],
        seed=task["seed"],
        budget=task.get("budget"),
        patience=int(os.environ.get("SNAKETUNE_BENCH_PATIENCE", PATIENCE)),
        device="cpu",
        checkpoint_every=1e9,  # one checkpoint, after the last epoch (the winner protocol reads it)
    )
    with contextlib.redirect_stdout(io.StringIO()):
        return train(settings)


def _pool_init() -> None:
    import torch

    torch.set_num_threads(1)


def task_fixed() -> dict:
    """--set values, handed to the workers through the environment (spawned pool processes)."""
    return json.loads(os.environ.get("SNAKETUNE_BENCH_SET", "{}"))


def prepare_split(dataset: str, split: int, folder: Path) -> Path:
    from snaketune.data import prepare

    out = folder / f"{dataset}-{split}.npz"
    data = {"source": dataset, "seed": split, "val_fraction": 0.2, "test_fraction": 0.2, "n_samples": None}
    prepare(data, out)
    return out


def search(pool, data: Path, folder: Path, schedule: str, seed: int = 0) -> tuple[dict, list[dict]]:
    """The grid on ``data``; (the winner's record, every record)."""
    from snaketune.plan import grid_trial_id, trial_seed
    from snaketune.records import select_best

    tasks = []
    for values in itertools.product(*GRID.values()):
        params = {**dict(zip(GRID, values)), **FIXED, **task_fixed(), "lr_schedule": schedule}
        tid = grid_trial_id(params)
        tasks.append(
            {"out": str(folder / tid), "data": str(data), "params": params, "stage": "search", "seed": trial_seed(seed, tid)}
        )
    metrics = pool.map(_train, tasks)
    records = [
        {
            "trial": Path(t["out"]).name,
            "status": "ok",
            "objective": m["val_accuracy"],
            "params": t["params"],
            "metrics": m,
            "dir": t["out"],
        }
        for t, m in zip(tasks, metrics)
    ]
    return select_best(records, "val_accuracy", "maximize"), records


def winner_weights_on_test(winner: dict, data: Path) -> float:
    """Test accuracy of the winning trial's own best-epoch weights (from its last checkpoint)."""
    import torch

    from snaketune.data import TEST, load_prepared
    from snaketune.hparams import HParams
    from snaketune.model import build_model
    from snaketune.train import evaluate, trial_tensors

    prepared = load_prepared(data)
    tensors = trial_tensors(prepared, "search", 0, torch.device("cpu"))
    hp = HParams.from_params(winner["params"])
    model = build_model("mlp", tuple(prepared.X.shape[1:]), len(prepared.classes), hp)
    state = torch.load(Path(winner["dir"]) / "checkpoint.pt", weights_only=True, map_location="cpu")
    model.load_state_dict(state["early_stopping"]["best_state"])
    test = prepared.split == TEST
    X = (torch.from_numpy(prepared.X[test]) - tensors.mean) / tensors.std
    return evaluate(model, X, torch.from_numpy(prepared.y[test]))[1]


def ensemble_on_test(models: list[Path], data: Path) -> float:
    import numpy as np

    from snaketune.data import TEST, load_prepared
    from snaketune.predict import load_model

    prepared = load_prepared(data)
    test = prepared.split == TEST
    probabilities = np.mean([load_model(m).probabilities(prepared.X[test]) for m in models], axis=0)
    return float((probabilities.argmax(axis=1) == prepared.y[test]).mean())


def final_runs(pool, winner: dict, data: Path, folder: Path, seeds: list[int]) -> list[dict]:
    budget = winner["metrics"]["best_epoch"]
    tasks = [
        {
            "out": str(folder / f"final-{s}"),
            "data": str(data),
            "params": winner["params"],
            "stage": "final",
            "seed": s,
            "budget": budget,
        }
        for s in seeds
    ]
    return [{**m, "model": str(Path(t["out"]) / "model.pt")} for t, m in zip(tasks, pool.map(_train, tasks))]


def one_split(pool, dataset: str, split: int, repeats: int, root: Path) -> dict[str, tuple[float, float]]:
    """{protocol: (winner's validation accuracy, final test accuracy)} for one split."""
    from snaketune.plan import trial_seed

    folder = root / f"{dataset}-{split}"
    data = prepare_split(dataset, split, root)
    out: dict[str, tuple[float, float]] = {}
    const, _ = search(pool, data, folder / "constant", "constant")
    cosine, _ = search(pool, data, folder / "cosine", "cosine")
    out["winner"] = (const["objective"], winner_weights_on_test(const, data))
    first_seed = trial_seed(0, "final")
    out["retrain"] = (const["objective"], final_runs(pool, const, data, folder / "constant", [first_seed])[0]["test_accuracy"])
    seeds = [first_seed] + [trial_seed(0, f"final-{k}") for k in range(1, repeats)]
    runs = final_runs(pool, cosine, data, folder / "cosine", seeds)
    out["retrain+cosine"] = (cosine["objective"], runs[0]["test_accuracy"])
    out["repeats"] = (cosine["objective"], statistics.fmean(r["test_accuracy"] for r in runs))
    out["ensemble"] = (cosine["objective"], ensemble_on_test([Path(r["model"]) for r in runs], data))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--datasets", nargs="+", default=["digits", "mnist1d"])
    ap.add_argument("--splits", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--json", type=Path, help="also write the per-split figures here")
    ap.add_argument("--set", nargs="*", default=[], metavar="NAME=VALUE", help="change a fixed parameter, e.g. hidden_units=128")
    ap.add_argument("--patience", type=int, default=PATIENCE, help="early stopping's patience in the search")
    args = ap.parse_args()
    import yaml

    os.environ["SNAKETUNE_BENCH_SET"] = json.dumps({k: yaml.safe_load(v) for k, v in (s.split("=", 1) for s in args.set)})
    os.environ["SNAKETUNE_BENCH_PATIENCE"] = str(args.patience)
    rows, per_split = [], {}
    ctx = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory() as tmp, ctx.Pool(args.workers, initializer=_pool_init) as pool:
        for dataset in args.datasets:
            results: dict[str, list[tuple[float, float]]] = {}
            for split in range(args.splits):
                t0 = time.perf_counter()
                for protocol, pair in one_split(pool, dataset, split, args.repeats, Path(tmp)).items():
                    results.setdefault(protocol, []).append(pair)
                    per_split.setdefault(dataset, {}).setdefault(protocol, []).append(pair)
                print(f"{dataset} split {split}: {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
            for protocol, pairs in results.items():
                tests = [t for _, t in pairs]
                gap = statistics.fmean(v - t for v, t in pairs)
                rows.append((dataset, protocol, statistics.fmean(tests), statistics.pstdev(tests), min(tests), gap))
    print(f"| data | protocol | test accuracy, mean ± std over {args.splits} splits | min | val → test gap |")
    print("|---|---|---|---|---|")
    for dataset, protocol, mean, std, low, gap in rows:
        print(f"| {dataset} | {protocol} | {mean:.4f} ± {std:.4f} | {low:.4f} | {gap:+.4f} |")
    if args.json:
        args.json.write_text(json.dumps(per_split, indent=1))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.exit(main())
