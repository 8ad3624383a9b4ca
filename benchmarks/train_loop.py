"""The built-in training loop against a straightforward DataLoader loop, same model and data, on CPU.

    python benchmarks/train_loop.py --repeats 3 --epochs 20

For each data set (digits, mnist1d) and each MLP of the default grid (1, 3, 5 hidden layers of 128
units x batch 32, 64, 128), both loops train the same network (same initial weights) with Adam
(lr 0.001) for the same epochs and evaluate on the validation part after every epoch:

* DataLoader: TensorDataset + DataLoader(shuffle=True), torch.optim.Adam, `loss.item()` per batch
  (the loop most tutorials write);
* snaketune: `snaketune.train.train` itself (data resident as tensors, batches from one
  permutation, fused Adam, one host sync per epoch, inference_mode evaluation, subnormals flushed
  to zero), with its checkpoints switched off so both do the same work;
* the DataLoader loop once more with subnormals flushed to zero, to show what that alone is worth.

One thread per process (what a trial uses). Prints samples/s (training examples per second,
median of the repeats), the ratio, and the final validation accuracy of both.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
import yaml

REPO = Path(__file__).resolve().parents[1]

from snaketune.data import load_prepared, prepare  # noqa: E402
from snaketune.hparams import HParams  # noqa: E402
from snaketune.model import build_model  # noqa: E402
from snaketune.train import TrialSettings, standardise, train  # noqa: E402


def dataloader_loop(data: Path, hp: HParams, seed: int, flush_denormal: bool = False) -> tuple[float, float]:
    """(seconds, final val accuracy) of the textbook loop (optionally with subnormals flushed to
    zero, as snaketune's loop does, to show what that alone is worth)."""
    from torch.utils.data import DataLoader, TensorDataset

    torch.set_flush_denormal(flush_denormal)

    p = load_prepared(data)
    tr, ev = p.rows("search")
    X, _, _ = standardise(torch.from_numpy(p.X), torch.from_numpy(tr))
    y = torch.from_numpy(p.y)
    torch.manual_seed(seed)
    model = build_model("mlp", tuple(p.X.shape[1:]), len(p.classes), hp)
    opt = torch.optim.Adam(model.parameters(), lr=hp.lr)
    train_loader = DataLoader(TensorDataset(X[tr], y[tr]), batch_size=hp.batch_size, shuffle=True)
    val_loader = DataLoader(TensorDataset(X[ev], y[ev]), batch_size=256)
    t0 = time.perf_counter()
    for _ in range(hp.epochs):
        model.train()
        running = 0.0
        for xb, yb in train_loader:
            opt.zero_grad()
            loss = F.cross_entropy(model(xb), yb)
            loss.backward()
            opt.step()
            running += loss.item()
        model.eval()
        correct = 0
        with torch.no_grad():
            for xb, yb in val_loader:
                correct += (model(xb).argmax(1) == yb).sum().item()
    return time.perf_counter() - t0, correct / int(ev.sum())


def snaketune_loop(data: Path, hp: HParams, seed: int, work: Path) -> tuple[float, float]:
    (work / "params.yaml").write_text(yaml.safe_dump(hp.as_dict()))
    s = TrialSettings(
        params=work / "params.yaml", out=work, data=data, seed=seed, patience=0, checkpoint=False, restore_best=False
    )
    m = train(s)
    return m["train_seconds"], m["val_accuracy"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--datasets", nargs="*", default=["digits", "mnist1d"])
    ap.add_argument("--layers", nargs="*", type=int, default=[1, 3, 5])
    args = ap.parse_args()
    torch.set_num_threads(1)
    print(
        "| data | layers | batch | DataLoader (samples/s) | snaketune (samples/s) | ratio | val acc DataLoader / snaketune "
        "| DataLoader + flushed subnormals (samples/s) | ratio to that |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for source in args.datasets:
            data = root / f"{source}.npz"
            prepare({"source": source, "n_samples": None, "val_fraction": 0.2, "test_fraction": 0.2, "seed": 0}, data)
            n_train = int(load_prepared(data).rows("search")[0].sum())
            for layers in args.layers:
                for batch in (32, 64, 128):
                    hp = HParams(n_layers=layers, hidden_units=128, batch_size=batch, epochs=args.epochs, lr=1e-3)
                    dl, dl_flushed, ours, acc = [], [], [], None
                    for rep in range(args.repeats):
                        t, a_dl = dataloader_loop(data, hp, seed=rep)
                        dl.append(n_train * args.epochs / t)
                        t, _ = dataloader_loop(data, hp, seed=rep, flush_denormal=True)
                        dl_flushed.append(n_train * args.epochs / t)
                        work = root / f"{source}-{layers}-{batch}-{rep}"
                        work.mkdir()
                        sys.stdout = open("/dev/null", "w")  # the trainer prints one line per epoch
                        try:
                            t, a_ours = snaketune_loop(data, hp, rep, work)
                        finally:
                            sys.stdout = sys.__stdout__
                        ours.append(n_train * args.epochs / t)
                        acc = (a_dl, a_ours)
                    md, mf, mo = statistics.median(dl), statistics.median(dl_flushed), statistics.median(ours)
                    print(
                        f"| {source} | {layers} | {batch} | {md:,.0f} | {mo:,.0f} | {mo / md:.2f}x | {acc[0]:.3f} / {acc[1]:.3f} "
                        f"| {mf:,.0f} | {mo / mf:.2f}x |",
                        flush=True,
                    )


if __name__ == "__main__":
    main()
