"""Your own PyTorch model and training loop as a snaketune trainer (config/examples/own_model.yaml).

A plain training script: its own data loading, its own model, optimiser and learning-rate
schedule. The lines marked ``# snaketune`` are all it takes to make it a trainer: read the trial,
resume, report each epoch, checkpoint, finish. Run it as a command (``trainer.command``) or call
``fit`` as a function (``trainer.function: config/examples/trainers/own_model.py:fit``).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from snaketune.trial import Trial  # snaketune


def load(path: str, fold: int, final: bool) -> tuple[torch.Tensor, ...]:
    """The prepared data (arrays X, y, split: 0 train, 1 validation, 2 test; with cross-validation,
    n_folds > 1, `fold` says which rows are fold k's validation rows), standardised by the
    training rows."""
    with np.load(path, allow_pickle=False) as f:
        X, y, split = f["X"].reshape(len(f["X"]), -1).astype(np.float32), f["y"].astype(np.int64), f["split"]
        folds, fold_of = int(f["n_folds"]), f["fold"]
    if final:  # the final stage trains on train+validation and is tested on the test rows
        train, held_out = split != 2, split == 2
    elif folds > 1:
        train, held_out = (split != 2) & (fold_of != fold), fold_of == fold
    else:
        train, held_out = split == 0, split == 1
    mean, std = X[train].mean(0), X[train].std(0) + 1e-6
    X = (X - mean) / std
    return tuple(torch.from_numpy(a) for a in (X[train], y[train], X[held_out], y[held_out]))


class Net(nn.Module):
    def __init__(self, n_in: int, n_out: int, width: int, dropout: float):
        super().__init__()
        self.body = nn.Sequential(
            nn.Linear(n_in, width), nn.ReLU(), nn.Dropout(dropout), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, n_out)
        )

    def forward(self, x):
        return self.body(x)


def evaluate(model: nn.Module, X: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    model.eval()
    with torch.no_grad():
        logits = model(X)
        return nn.functional.cross_entropy(logits, y).item(), (logits.argmax(1) == y).float().mean().item()


def fit(params: dict, trial: Trial) -> dict:
    torch.manual_seed(trial.seed)
    torch.set_num_threads(trial.threads or 1)
    X_train, y_train, X_eval, y_eval = load(trial.data, trial.fold, trial.final)
    model = Net(X_train.shape[1], int(y_train.max()) + 1, int(params["width"]), float(params["dropout"]))
    opt = torch.optim.Adam(model.parameters(), lr=float(params["lr"]))
    # The schedule's horizon is the `epochs` parameter, not this run's budget: a trial promoted to a
    # larger budget continues the same curve.
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=int(params["epochs"]))
    generator = torch.Generator().manual_seed(trial.seed)

    state = trial.resume()  # snaketune: None, or what the last checkpoint() saved
    if state:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        schedule.load_state_dict(state["schedule"])
        generator.set_state(state["generator"])
        torch.set_rng_state(state["rng"])  # dropout draws from torch's global generator

    batch = int(params["batch_size"])
    for epoch in trial.epochs():  # snaketune: the resumed epoch + 1 .. this run's budget
        model.train()
        order = torch.randperm(len(X_train), generator=generator)
        total = 0.0
        for i in range(0, len(order), batch):
            idx = order[i : i + batch]
            loss = nn.functional.cross_entropy(model(X_train[idx]), y_train[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        schedule.step()
        row = {"train_loss": total / len(X_train), "lr": schedule.get_last_lr()[0]}
        if not trial.final:  # the test rows are read once, at the end
            row["val_loss"], row["val_accuracy"] = evaluate(model, X_eval, y_eval)
        trial.report(epoch, **row)  # snaketune: a row of history.csv
        trial.checkpoint(  # snaketune: what a resume needs
            epoch,
            model=model.state_dict(),
            opt=opt.state_dict(),
            schedule=schedule.state_dict(),
            generator=generator.get_state(),
            rng=torch.get_rng_state(),
        )

    loss, accuracy = evaluate(model, X_eval, y_eval)
    prefix = "test" if trial.final else "val"
    return {f"{prefix}_accuracy": accuracy, f"{prefix}_loss": loss}


if __name__ == "__main__":
    trial = Trial.from_env()  # snaketune
    trial.finish(**fit(trial.params, trial))  # snaketune: metrics.json
