"""The built-in trainer: one trial, driven by the trainer contract's SNAKETUNE_* variables.

Run it by hand to debug a single trial::

    SNAKETUNE_PARAMS=results/seed-grid/trials/g0123456789/params.yaml \\
    SNAKETUNE_OUT=/tmp/t1 SNAKETUNE_DATA=results/seed-grid/data/prepared.npz \\
    python -m snaketune.train

The whole data set lives on the device as tensors; every epoch draws batches from one random
permutation, so there is no per-sample DataLoader in the hot loop. Images arrive decoded, as uint8;
they become float32 on the device, and training batches are augmented there. A trial is deterministic for
a given seed on CPU. The process imports only what training needs and exits as soon as its
outputs are safely on disk.
"""

from __future__ import annotations

import math
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.optim.adam import adam as adam_update
from torch.optim.sgd import sgd as sgd_update

from snaketune.data import Prepared, load_prepared
from snaketune.errors import ConfigError, DataError
from snaketune.files import atomic_write_bytes, atomic_write_text, history_csv, read_yaml, write_json
from snaketune.hparams import OPTIMIZERS, HParams
from snaketune.model import build_model, n_parameters
from snaketune.task import CLASSIFICATION, REGRESSION, objective_mismatch, regression_metrics

EVAL_CHUNK = 8192  # rows per forward pass when evaluating


@dataclass
class TrialSettings:
    """What the runner tells a trainer, read from the environment (the trainer contract)."""

    params: Path
    out: Path
    data: Path
    stage: str = "search"  # search | final
    fold: int = 0
    budget: int | None = None  # epochs this run may train; None = the `epochs` parameter
    resume: Path | None = None
    seed: int = 0
    # Built-in trainer extras (set by the runner from the study config).
    metric: str = "val_accuracy"
    direction: str = "maximize"
    patience: int = 5
    min_delta: float = 0.0
    device: str = "auto"
    threads: int = 1
    family: str = "mlp"
    checkpoint: bool = True  # write checkpoint.pt after epochs (search stage)
    # Seconds between checkpoints: one after an epoch once this long has passed since the last
    # (so after every epoch that takes longer), and one after the run's last epoch. 0: every epoch.
    checkpoint_every: float = 1.0
    restore_best: bool = True  # end with the best epoch's weights (off for multi-fidelity rungs)

    @classmethod
    def from_env(cls, env=os.environ) -> TrialSettings:
        missing = [k for k in ("SNAKETUNE_PARAMS", "SNAKETUNE_OUT", "SNAKETUNE_DATA") if not env.get(k)]
        if missing:
            raise ConfigError(f"the trainer needs the environment variable(s) {', '.join(missing)} (see the trainer contract)")

        def opt(name: str, conv, default):
            v = env.get(name, "")
            if v == "":
                return default
            try:
                return conv(v)
            except ValueError:
                raise ConfigError(f"the environment variable {name}={v!r} is not a valid {conv.__name__}") from None

        return cls(
            params=Path(env["SNAKETUNE_PARAMS"]),
            out=Path(env["SNAKETUNE_OUT"]),
            data=Path(env["SNAKETUNE_DATA"]),
            stage=opt("SNAKETUNE_STAGE", str, "search"),
            fold=opt("SNAKETUNE_FOLD", int, 0),
            budget=opt("SNAKETUNE_BUDGET", int, None),
            resume=opt("SNAKETUNE_RESUME", Path, None),
            seed=opt("SNAKETUNE_SEED", int, 0),
            metric=opt("SNAKETUNE_METRIC", str, "val_accuracy"),
            direction=opt("SNAKETUNE_DIRECTION", str, "maximize"),
            patience=opt("SNAKETUNE_PATIENCE", int, 5),
            min_delta=opt("SNAKETUNE_MIN_DELTA", float, 0.0),
            device=opt("SNAKETUNE_DEVICE", str, "auto"),
            threads=opt("SNAKETUNE_THREADS", int, 1),
            family=opt("SNAKETUNE_FAMILY", str, "mlp"),
            checkpoint=opt("SNAKETUNE_CHECKPOINT", lambda v: v != "0", True),
            checkpoint_every=opt("SNAKETUNE_CHECKPOINT_EVERY", float, 1.0),
            restore_best=opt("SNAKETUNE_RESTORE_BEST", lambda v: v != "0", True),
        )


class TrainFailed(RuntimeError):
    """The trial cannot produce a result (diverged, out of memory); the message is the reason."""


def pick_device(requested: str) -> torch.device:
    if requested == "cuda" or (requested == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise TrainFailed("trainer.device is cuda but no CUDA device is visible")
        return torch.device("cuda")
    return torch.device("cpu")


def standardise(X: torch.Tensor, train_rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Scale features with the mean and std of the training rows only (per feature)."""
    ref = X[train_rows]
    mean = ref.mean(dim=0)
    std = ref.std(dim=0)
    std = torch.where(std > 1e-8, std, torch.ones_like(std))
    return (X - mean) / std, mean, std


PIXEL_SCALE = 1 / 255  # uint8 pixels -> [0, 1] before the per-channel normalisation


def image_tensors(
    X: torch.Tensor, train_rows: torch.Tensor, eval_rows: torch.Tensor, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """uint8 (n, C, H, W) images -> normalised float32 on ``device``: (train, eval, mean, std).

    Pixels are scaled to [0, 1], then normalised per channel with the mean and std of the training
    images only; mean and std have shape (C, 1, 1), so ``(x - mean) / std`` also fits one image.
    Only the uint8 rows travel to the device; the float copy is made there.
    """
    train = X[train_rows].to(device).float().mul_(PIXEL_SCALE)
    mean = train.mean(dim=(0, 2, 3), keepdim=True)[0]
    std = train.std(dim=(0, 2, 3), keepdim=True)[0]
    std = torch.where(std > 1e-8, std, torch.ones_like(std))
    train.sub_(mean).div_(std)
    evaluation = X[eval_rows].to(device).float().mul_(PIXEL_SCALE).sub_(mean).div_(std)
    return train, evaluation, mean, std


def augment(x: torch.Tensor, flip: float, crop_padding: int, gen: torch.Generator) -> torch.Tensor:
    """Random horizontal flips and random crops of a batch of (normalised) images, on its device.

    The random numbers come from ``gen`` (on the CPU, saved in checkpoints), so a trial stays
    deterministic for its seed and resumes exactly. Crops pad with zeros, i.e. the training mean.
    """
    b, c, h, w = x.shape
    if flip > 0:
        flipped = (torch.rand(b, generator=gen) < flip).to(x.device)
        x = torch.where(flipped[:, None, None, None], x.flip(3), x)
    if crop_padding > 0:
        p = crop_padding
        offsets = torch.randint(0, 2 * p + 1, (2, b), generator=gen).to(x.device)
        padded = F.pad(x, (p, p, p, p))
        rows = (offsets[0][:, None] + torch.arange(h, device=x.device))[:, None, :, None]  # (b, 1, h, 1)
        cols = (offsets[1][:, None] + torch.arange(w, device=x.device))[:, None, None, :]  # (b, 1, 1, w)
        batch = torch.arange(b, device=x.device)[:, None, None, None]
        channel = torch.arange(c, device=x.device)[None, :, None, None]
        x = padded[batch, channel, rows, cols]
    return x


def cuda_autocast(device: torch.device):
    """On a CUDA device: bf16 autocast where the card supports it, and cuDNN's autotuner for the
    convolutions (inputs have fixed shapes). On the CPU: nothing, so CPU runs stay deterministic."""
    import contextlib

    if device.type != "cuda":
        return contextlib.nullcontext()
    torch.backends.cudnn.benchmark = True
    return torch.autocast("cuda", dtype=torch.bfloat16, enabled=torch.cuda.is_bf16_supported())


@torch.inference_mode()
def evaluate(model: torch.nn.Module, X: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) over all rows, with one host sync at the end."""
    model.eval()
    loss = torch.zeros((), device=X.device)
    correct = torch.zeros((), device=X.device, dtype=torch.long)
    for i in range(0, len(X), EVAL_CHUNK):
        out = model(X[i : i + EVAL_CHUNK])
        yb = y[i : i + EVAL_CHUNK]
        loss += F.cross_entropy(out, yb, reduction="sum")
        correct += (out.argmax(dim=1) == yb).sum()
    n = max(len(X), 1)
    return loss.item() / n, correct.item() / n


def mse_loss(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The regression loss: mean squared error of the network's one output against the standardised target."""
    return F.mse_loss(out.squeeze(1).float(), y)


@torch.inference_mode()
def predict_standardised(model: torch.nn.Module, X: torch.Tensor) -> torch.Tensor:
    """A regression network's outputs for all rows, (n,), on the standardised scale of its target."""
    model.eval()
    outs = [model(X[i : i + EVAL_CHUNK]).squeeze(1).float() for i in range(0, len(X), EVAL_CHUNK)]
    return torch.cat(outs) if outs else torch.zeros(0, device=X.device)


def is_better(value: float, best: float | None, direction: str, min_delta: float) -> bool:
    if best is None:
        return True
    if direction == "maximize":
        return value > best + min_delta
    return value < best - min_delta


@dataclass
class EarlyStopping:
    """The objective's best epoch so far, and whether training should stop.

    An epoch improves on the best when its value beats it by more than ``min_delta``; after
    ``patience`` epochs in a row without improvement training stops (``patience`` 0: never, the
    best epoch is still tracked). With ``keep_best`` a copy of the best epoch's weights is kept.
    """

    direction: str = "maximize"  # maximize | minimize
    patience: int = 0
    min_delta: float = 0.0
    keep_best: bool = True
    best_value: float | None = None
    best_epoch: int = 0
    stale: int = 0  # epochs since the best one
    best_state: dict[str, torch.Tensor] | None = None

    @property
    def stopped(self) -> bool:
        return self.patience > 0 and self.stale >= self.patience

    def update(self, value: float, epoch: int, model: torch.nn.Module) -> bool:
        """Record an epoch's objective value; True when training should stop after it."""
        if is_better(value, self.best_value, self.direction, self.min_delta):
            self.best_value, self.best_epoch, self.stale = value, epoch, 0
            if self.keep_best:
                self.best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            self.stale += 1
        return self.stopped

    def state_dict(self) -> dict:
        return {"best_value": self.best_value, "best_epoch": self.best_epoch, "stale": self.stale, "best_state": self.best_state}

    def load_state_dict(self, state: dict) -> None:
        self.best_value, self.best_epoch, self.stale = state["best_value"], state["best_epoch"], state["stale"]
        self.best_state = state["best_state"]


ADAM_BETAS = (0.9, 0.999)  # torch.optim.Adam's defaults
ADAM_EPS = 1e-8


def fused_kernels_fit(params: list[torch.Tensor]) -> bool:
    """Whether PyTorch's fused optimiser kernels take these parameters: floating point, on the CPU
    (torch >= 2.4) or a CUDA device. Elsewhere the foreach kernels compute the same update."""
    return all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params)


class Optimizer:
    """Adam, AdamW or SGD: torch.optim computes the update (its documented functional API,
    ``torch.optim.adam.adam`` and ``torch.optim.sgd.sgd``); this class keeps the state.

    ``torch.optim.Adam(...)`` computes the same (tests/test_optim.py compares them step by step),
    but every ``torch.optim.Optimizer`` imports ``torch._dynamo`` when it is built, which costs a trial
    process about as long as ``import torch`` itself (docs/benchmarks.md, "torch.optim in a trial
    process"); the functional API runs the same fused or foreach kernels without it. The state is
    torch.optim's, one tensor per parameter: Adam's step count, first and second moments; SGD's
    momentum buffer (None until the first step). Every parameter must take part in the loss (a
    gradient for each), as in the built-in networks. Build one with :func:`make_optimizer`.
    """

    def __init__(self, name: str, params, lr: float, weight_decay: float, momentum: float, fused: bool | None) -> None:
        self.name = name
        self.params = list(params)
        self.lr, self.weight_decay, self.momentum = float(lr), float(weight_decay), float(momentum)
        self.fused = fused_kernels_fit(self.params) if fused is None else fused
        if name == "sgd":
            self.state = {"momentum_buffer": [None] * len(self.params) if self.momentum else []}
        else:
            self.state = {
                "step": [torch.zeros((), device=self._device("step", p)) for p in self.params],
                "exp_avg": [torch.zeros_like(p, memory_format=torch.preserve_format) for p in self.params],
                "exp_avg_sq": [torch.zeros_like(p, memory_format=torch.preserve_format) for p in self.params],
            }

    def _device(self, key: str, p: torch.Tensor) -> torch.device:
        # As torch.optim does: the fused kernel counts steps on the parameters' device, the foreach
        # one on the CPU (where reading the count needs no device sync).
        return torch.device("cpu") if key == "step" and not self.fused else p.device

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        grads = [p.grad for p in self.params]
        if self.name == "sgd":  # momentum without dampening or Nesterov; weight decay is L2
            sgd_update(
                self.params,
                grads,
                self.state["momentum_buffer"],
                fused=self.fused,
                foreach=not self.fused,
                weight_decay=self.weight_decay,
                momentum=self.momentum,
                lr=self.lr,
                dampening=0.0,
                nesterov=False,
                maximize=False,
            )
            return
        adam_update(
            self.params,
            grads,
            self.state["exp_avg"],
            self.state["exp_avg_sq"],
            [],  # amsgrad's maxima
            self.state["step"],
            fused=self.fused,
            foreach=not self.fused,
            decoupled_weight_decay=self.name == "adamw",  # adam: L2 penalty; adamw: decoupled
            amsgrad=False,
            beta1=ADAM_BETAS[0],
            beta2=ADAM_BETAS[1],
            lr=self.lr,
            weight_decay=self.weight_decay,
            eps=ADAM_EPS,
            maximize=False,
        )

    def state_dict(self) -> dict[str, list]:
        return dict(self.state)

    def load_state_dict(self, state: dict[str, list]) -> None:
        """Continue from ``state``, each tensor moved to where this optimiser keeps it (a checkpoint
        may come from another device)."""
        loaded = {}
        for key, current in self.state.items():
            if len(state[key]) != len(current):
                raise ValueError(f"optimizer state {key!r} has {len(state[key])} tensors, the model needs {len(current)}")
            loaded[key] = [None if t is None else t.to(self._device(key, p)) for t, p in zip(state[key], self.params)]
        self.state = loaded


def lr_at(hp: HParams, epoch: int) -> float:
    """The learning rate of (1-based) ``epoch``: a linear warmup, then ``hp.lr_schedule``.

    The horizon is always the ``epochs`` parameter (the maximum), never the run's budget nor the
    epoch early stopping stops at: a multi-fidelity trial resumed across rungs follows one schedule,
    and the final retrain, trained for the winner's best epoch, follows the winner's lr to that epoch.
    Applied by setting ``Optimizer.lr`` before each epoch. torch.optim.lr_scheduler cannot drive our
    Optimizer (it needs a torch.optim.Optimizer, whose construction imports torch._dynamo), and a
    pure function of the epoch needs no state in the checkpoint, so a resumed run stays exact.
    """
    warmup = hp.warmup_epochs
    # 1) warmup: epochs 1..warmup rise linearly, lr/(warmup+1) ... lr*warmup/(warmup+1), below the full lr
    if epoch <= warmup:
        return hp.lr * epoch / (warmup + 1)
    t = epoch - warmup - 1  # epochs since the warmup ended: 0 for the first at the full lr
    # 2) constant: the full lr every epoch
    if hp.lr_schedule == "constant":
        return float(hp.lr)
    # 3) step: times lr_gamma after every lr_step_size epochs (torch's StepLR, counted after the warmup)
    if hp.lr_schedule == "step":
        return hp.lr * hp.lr_gamma ** (t // hp.lr_step_size)
    # 4) cosine: half a cosine from lr down to 0 at the end of epoch `epochs` (torch's CosineAnnealingLR
    #    with T_max the epochs after the warmup), so the last epoch still learns; 0 past the horizon
    if hp.lr_schedule == "cosine":
        progress = min(t / max(hp.epochs - warmup, 1), 1.0)
        return hp.lr * 0.5 * (1.0 + math.cos(math.pi * progress))
    raise ValueError(f"unknown lr_schedule {hp.lr_schedule!r}")


def make_optimizer(name: str, params, lr: float, weight_decay: float, momentum: float, *, fused: bool | None = None) -> Optimizer:
    """``adam`` (L2 weight decay), ``adamw`` (decoupled weight decay) or ``sgd`` (momentum, L2 weight
    decay), on PyTorch's fused kernels where the parameters allow (``fused=None``), else its foreach ones."""
    if name not in OPTIMIZERS:
        raise ConfigError(f"unknown optimizer {name!r}; valid: {', '.join(OPTIMIZERS)}")
    return Optimizer(name, params, lr, weight_decay, momentum, fused)


class Preempted(Exception):
    """SIGTERM or SIGINT arrived (a scheduler preempting, Snakemake stopping, Ctrl-C); the last
    checkpoint is kept."""

    def __init__(self, signum: int = signal.SIGTERM) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _on_sigterm(signum, frame):
    raise Preempted(signum)


def _epoch_line(row: dict) -> str:
    """The log line of an epoch: ``epoch    3  train_loss 0.4321  val_loss ...  0.12s``."""
    values = "  ".join(f"{k} {v:.4g}" if k == "lr" else f"{k} {v:.4f}" for k, v in row.items() if k not in ("epoch", "seconds"))
    return f"epoch {row['epoch']:4d}  {values}  {row['seconds']:.2f}s"


@dataclass
class TrialTensors:
    """The rows a run trains on and evaluates on, on the training device, normalised with
    statistics of the training rows only (``mean`` and ``std``, kept for the model file).

    Regression: ``y_train`` is the target standardised with the training rows' ``target_mean`` and
    ``target_std`` (float32, on the device); ``y_eval`` is the target as it is (float64, on the CPU),
    since its metrics are computed on its own scale (:func:`evaluate_metrics`).
    """

    X_train: torch.Tensor
    y_train: torch.Tensor
    X_eval: torch.Tensor
    y_eval: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor
    target_mean: float | None = None  # regression only
    target_std: float | None = None

    @property
    def regression(self) -> bool:
        return self.target_std is not None


def standardise_target(y: torch.Tensor, train_rows: torch.Tensor) -> tuple[torch.Tensor, float, float]:
    """A regression target scaled with the mean and std of its training rows: (scaled float32, mean, std).
    A constant target keeps std 1. Predictions go back with ``out * std + mean``."""
    ref = y[train_rows].double()
    mean = float(ref.mean())
    std = float(ref.std()) if len(ref) > 1 else 0.0
    std = std if std > 1e-12 else 1.0
    return ((y.double() - mean) / std).float(), mean, std


def trial_tensors(prepared: Prepared, stage: str, fold: int, device: torch.device) -> TrialTensors:
    """Training and evaluation rows of ``stage`` (and ``fold``): images become normalised float32
    on the device, feature vectors are standardised per feature, and so is a regression target."""
    train_mask, eval_mask = prepared.rows(stage, fold)
    train_rows, eval_rows = torch.from_numpy(train_mask), torch.from_numpy(eval_mask)
    if prepared.is_images:
        X_train, X_eval, mean, std = image_tensors(torch.from_numpy(prepared.X), train_rows, eval_rows, device)
    else:
        X_all, mean, std = standardise(torch.from_numpy(prepared.X), train_rows)
        X_train, X_eval = X_all[train_rows].to(device), X_all[eval_rows].to(device)
    y_all = torch.from_numpy(prepared.y)
    if prepared.is_regression:
        scaled, target_mean, target_std = standardise_target(y_all, train_rows)
        y_eval = y_all[eval_rows].double()
        return TrialTensors(X_train, scaled[train_rows].to(device), X_eval, y_eval, mean, std, target_mean, target_std)
    return TrialTensors(X_train, y_all[train_rows].to(device), X_eval, y_all[eval_rows].to(device), mean, std)


def evaluate_metrics(model: torch.nn.Module, data: TrialTensors) -> dict[str, float]:
    """The evaluated rows' metrics, unprefixed: ``loss`` and ``accuracy`` (classification), or
    ``loss`` (MSE of the standardised target), ``rmse``, ``mae`` and ``r2`` on the target's own scale."""
    if not data.regression:
        loss, accuracy = evaluate(model, data.X_eval, data.y_eval)
        return {"loss": loss, "accuracy": accuracy}
    predicted = predict_standardised(model, data.X_eval).double().cpu() * data.target_std + data.target_mean
    return regression_metrics(predicted.numpy(), data.y_eval.numpy(), data.target_std)


def train_epoch(
    model: torch.nn.Module,
    opt: Optimizer,
    X: torch.Tensor,
    y: torch.Tensor,
    hp: HParams,
    gen: torch.Generator,
    autocast,
    loss_fn=F.cross_entropy,
) -> float:
    """One pass over the training rows in batches of one random permutation; the mean training loss
    (``loss_fn``: cross-entropy for classes, :func:`mse_loss` for a standardised regression target)."""
    model.train()
    device = X.device
    # Batch norm cannot train on a single example whose maps are 1x1: skip such a last batch.
    min_batch = 2 if any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules()) else 1
    n, bs = len(X), hp.batch_size
    # One gather per epoch; the batches are then free views (no per-batch index_select).
    perm = torch.randperm(n, generator=gen).to(device)
    X_epoch, y_epoch = X.index_select(0, perm), y.index_select(0, perm)
    loss_sum = torch.zeros((), device=device)
    n_seen = 0
    for i in range(0, n, bs):
        nb = min(bs, n - i)
        if nb < min_batch:
            continue
        xb = X_epoch[i : i + nb]
        if hp.augments:  # training batches only; evaluation sees the images as they are
            xb = augment(xb, hp.flip_probability, hp.crop_padding, gen)
        with autocast:
            loss = loss_fn(model(xb), y_epoch[i : i + nb])
        opt.zero_grad()
        loss.backward()
        opt.step()
        loss_sum.add_(loss.detach(), alpha=nb)  # summed on the device: no sync per batch
        n_seen += nb
    return loss_sum.item() / max(n_seen, 1)


# 2: the optimiser state of Optimizer, the identity of checkpoint_identity; 3: a final run's history
# holds training metrics only (a format-2 final checkpoint's rows have test columns)
CHECKPOINT_FORMAT = 3


def checkpoint_identity(settings: TrialSettings, params: dict) -> dict:
    """Everything that decides what a run computes: a checkpoint resumes only a run with the same."""
    data = settings.data.stat()
    return {
        "format": CHECKPOINT_FORMAT,
        "params": {k: params[k] for k in sorted(params)},
        "seed": settings.seed,
        "stage": settings.stage,
        "fold": settings.fold,
        "data": [data.st_size, data.st_mtime_ns],  # a re-prepared data file starts afresh
        "family": settings.family,
        "metric": settings.metric,  # the objective: a study whose objective changed starts afresh
        "direction": settings.direction,
        "patience": settings.patience,
        "min_delta": settings.min_delta,
        "restore_best": settings.restore_best,
    }


def save_checkpoint(path: Path, state: dict) -> None:
    """Everything needed to continue exactly where training stopped (loadable with weights_only=True)."""
    import io

    buf = io.BytesIO()
    torch.save(state, buf)
    # Renamed into place, so a kill never leaves a torn checkpoint; not fsynced (a per-epoch cost),
    # so only a machine crash can lose the last epoch's checkpoint.
    atomic_write_bytes(path, buf.getvalue(), fsync=False)


def load_checkpoint(path: Path, identity: dict, device: torch.device | str = "cpu") -> dict | None:
    """The checkpoint at ``path``, its tensors on ``device``, if it has this run's ``identity``; else None."""
    try:
        state = torch.load(path, weights_only=True, map_location=device)
    except FileNotFoundError:
        return None
    except Exception as e:  # torn or foreign file: start afresh rather than fail the trial
        print(f"[snaketune] ignoring unreadable checkpoint {path}: {e}", flush=True)
        return None
    theirs = state.get("identity") if isinstance(state, dict) else None
    if theirs != identity:
        theirs = theirs if isinstance(theirs, dict) else {}
        differ = ", ".join(
            f"{k} {theirs.get(k)!r} there, {identity.get(k)!r} here"
            for k in sorted(identity.keys() | theirs.keys())
            if theirs.get(k) != identity.get(k)
        )
        print(f"[snaketune] ignoring checkpoint {path}: it belongs to other settings ({differ})", flush=True)
        return None
    return state


def training_state(
    epoch: int, model: torch.nn.Module, opt: Optimizer, gen: torch.Generator, stopper: EarlyStopping, history: list[dict]
) -> dict:
    """What a checkpoint holds besides its identity: enough to continue after ``epoch`` exactly."""
    cuda = next(model.parameters()).is_cuda
    return {
        "epoch": epoch,
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "rng_torch": torch.get_rng_state(),
        "rng_batches": gen.get_state(),
        "rng_cuda": torch.cuda.get_rng_state() if cuda else None,
        "history": history,
        "early_stopping": stopper.state_dict(),
    }


def restore_training_state(
    state: dict, model: torch.nn.Module, opt: Optimizer, gen: torch.Generator, stopper: EarlyStopping
) -> list[dict]:
    """Continue from a checkpoint loaded onto the model's device (:func:`load_checkpoint`); its history."""
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["optimizer"])
    stopper.load_state_dict(state["early_stopping"])
    # Random number generator states are CPU byte tensors, wherever the checkpoint was loaded.
    torch.set_rng_state(state["rng_torch"].cpu())
    gen.set_state(state["rng_batches"].cpu())
    if next(model.parameters()).is_cuda and state["rng_cuda"] is not None:
        torch.cuda.set_rng_state(state["rng_cuda"].cpu())
    return list(state["history"])


def train(settings: TrialSettings) -> dict:
    """Train one trial; write metrics.json and history.csv (and model.pt in stage final).

    Stage search evaluates the validation rows after every epoch (early stopping, the best epoch's
    weights). Stage final trains its whole budget on train+validation with no evaluation in between,
    then evaluates the test rows exactly once, for metrics.json: its history holds training metrics only.
    A checkpoint (model, optimiser, epoch, early-stopping state, RNG states, history) is written
    after the epochs of a search run (at most one per ``settings.checkpoint_every`` seconds, and
    after the last epoch); ``settings.resume`` continues from one, so a preempted
    trial or a promoted multi-fidelity trial trains only the epochs it has not trained yet.
    """
    if settings.stage not in ("search", "final"):
        raise ConfigError(f"SNAKETUNE_STAGE must be search or final, but got {settings.stage!r}")
    torch.set_num_threads(max(1, settings.threads))
    # Subnormal floats (Adam's second moments of tiny gradients decay into them) take a slow path
    # on x86 CPUs: flushing them to zero made a 5-layer MLP train 25% faster (docs/benchmarks.md).
    # It is a setting of this process (a trial's own), and changes nothing on a GPU.
    torch.set_flush_denormal(True)
    params = read_yaml(settings.params) or {}
    hp = HParams.from_params(params)
    device = pick_device(settings.device)
    torch.manual_seed(settings.seed)

    # Data, model, optimiser.
    t_load = time.perf_counter()
    prepared = load_prepared(settings.data)
    input_shape = tuple(prepared.X.shape[1:])
    print(
        f"[snaketune] loaded {settings.data}: {len(prepared.y)} examples of shape {input_shape} "
        f"({prepared.X.dtype}) in {1000 * (time.perf_counter() - t_load):.0f} ms",
        flush=True,
    )
    if hp.augments and len(input_shape) != 3:
        raise ConfigError(
            f"parameters flip and crop_padding augment images shaped (channels, height, width), but the data's "
            f"examples have shape {input_shape}; remove them from search_space or use data.source: images"
        )
    searching = settings.stage == "search"
    mismatch = objective_mismatch(prepared.task, settings.metric) if searching else None
    if mismatch:
        raise ConfigError(f"{mismatch} ({settings.data} was prepared for {prepared.task})")
    data = trial_tensors(prepared, settings.stage, settings.fold, device)
    prefix = "val" if searching else "test"
    n_outputs = 1 if prepared.is_regression else len(prepared.classes)  # one value, or a score per class
    loss_fn = mse_loss if prepared.is_regression else F.cross_entropy
    model = build_model(settings.family, input_shape, n_outputs, hp).to(device)
    autocast = cuda_autocast(device)
    opt = make_optimizer(hp.optimizer, model.parameters(), hp.lr, hp.weight_decay, hp.momentum)
    epochs = settings.budget if settings.budget is not None else hp.epochs

    # The objective is tracked in the search stage only; the final stage has no validation rows: it
    # trains its whole budget and keeps the last weights.
    metric = settings.metric if searching else None
    stopper = EarlyStopping(
        settings.direction, settings.patience if searching else 0, settings.min_delta, settings.restore_best and searching
    )
    gen = torch.Generator().manual_seed(settings.seed)  # batches and augmentation
    history: list[dict] = []

    # Resume, or start at epoch 1.
    settings.out.mkdir(parents=True, exist_ok=True)
    identity = checkpoint_identity(settings, params)
    checkpoint_path = settings.out / "checkpoint.pt"
    start_epoch = 1
    state = load_checkpoint(settings.resume, identity, device) if settings.resume is not None else None
    if state is not None:
        history = restore_training_state(state, model, opt, gen, stopper)
        start_epoch = state["epoch"] + 1
        print(f"[snaketune] resumed from {settings.resume} after epoch {state['epoch']}", flush=True)

    print(
        f"[snaketune] training {settings.stage} on {device}: {len(data.X_train)} examples, "
        f"{n_parameters(model)} parameters, epochs {start_epoch}..{epochs}",
        flush=True,
    )
    t_start = last_saved = time.perf_counter()
    for epoch in range(start_epoch, epochs + 1):
        if stopper.stopped:
            break
        t0 = time.perf_counter()
        opt.lr = lr_at(hp, epoch)
        train_loss = train_epoch(model, opt, data.X_train, data.y_train, hp, gen, autocast, loss_fn)
        if not math.isfinite(train_loss):
            raise TrainFailed(f"diverged at epoch {epoch} (training loss {train_loss})")
        row = {"epoch": epoch, "train_loss": train_loss}
        if searching:
            row.update({f"val_{k}": v for k, v in evaluate_metrics(model, data).items()})
        if hp.lr_varies:  # a constant lr's history stays as it always was
            row["lr"] = opt.lr
        row["seconds"] = time.perf_counter() - t0
        history.append(row)
        print(_epoch_line(row), flush=True)
        if metric is not None:
            if not math.isfinite(row[metric]):
                raise TrainFailed(f"diverged at epoch {epoch} ({metric} {row[metric]})")
            if stopper.update(row[metric], epoch, model):
                print(
                    f"[snaketune] early stop after epoch {epoch}: no improvement of {metric} for {stopper.stale} epochs",
                    flush=True,
                )
        # Saving costs 1-3 ms (measured on a small MLP): a quarter of a 10 ms epoch, nothing next
        # to a real one. Preempted between two checkpoints, a trial redoes at most that much.
        now = time.perf_counter()
        if settings.checkpoint and (stopper.stopped or epoch == epochs or now - last_saved >= settings.checkpoint_every):
            save_checkpoint(checkpoint_path, {"identity": identity, **training_state(epoch, model, opt, gen, stopper, history)})
            last_saved = now

    seconds = time.perf_counter() - t_start
    if stopper.best_state is not None:
        model.load_state_dict(stopper.best_state)  # restore the best epoch's weights
    # Search: the validation rows once more, with the weights kept. Final: the model is now fixed, and
    # this is the one and only evaluation of the test rows.
    scores = evaluate_metrics(model, data)
    metrics = {
        **{f"{prefix}_{k}": v for k, v in scores.items() if k != "loss"},
        f"{prefix}_loss": scores["loss"],
        # The epoch the reported scores (and the weights kept) come from: the best one, or without
        # restore_best (multi-fidelity rungs) the last one, so a winner's score and best epoch agree
        # and the final retrain trains as many epochs as produced the score.
        "best_epoch": stopper.best_epoch if metric and stopper.keep_best else len(history),
        "epochs_run": len(history),  # epochs the trial has trained, resumed runs included
        "epochs_this_run": sum(1 for r in history if r["epoch"] >= start_epoch),
        "train_seconds": round(seconds, 4),
        "n_parameters": n_parameters(model),
        "device": str(device),
    }
    if history:
        metrics["train_loss"] = history[-1]["train_loss"]
    atomic_write_text(settings.out / "history.csv", history_csv(history))
    if settings.stage == "final":
        image = {"size": list(input_shape[1:]), "channels": input_shape[0], "scale": PIXEL_SCALE} if prepared.is_images else None
        target = {"mean": data.target_mean, "std": data.target_std} if data.regression else None
        save_model(
            settings.out / "model.pt",
            model,
            settings,
            hp,
            prepared.classes,
            input_shape,
            data.mean,
            data.std,
            image,
            task=prepared.task,
            target=target,
            features=prepared.features,
        )
    write_json(settings.out / "metrics.json", metrics)  # last: its presence means the trial finished
    return metrics


def save_model(
    path: Path,
    model,
    settings: TrialSettings,
    hp: HParams,
    classes,
    input_shape,
    mean,
    std,
    image=None,
    *,
    task: str = CLASSIFICATION,
    target: dict | None = None,
    features: list[str] | None = None,
) -> None:
    """A file ``torch.load(path, weights_only=True)`` reads: weights plus what prediction needs.

    The input is ``(x - mean) / std``; for images (``image`` not None) x is the image file loaded
    as ``snaketune.images.load_image(path, image["size"], image["channels"])`` times ``image["scale"]``.
    A regression network has one output, the standardised target: its prediction is
    ``output * target["std"] + target["mean"]`` (the training rows' statistics).
    """
    if task == REGRESSION and target is None:
        raise ValueError("a regression model needs its target's mean and std")
    import io

    payload = {
        "format": "snaketune-model-1",
        "family": settings.family,
        "seed": settings.seed,  # the final stage's repeats differ in it alone (an ensemble's members)
        "hparams": hp.as_dict(),
        "classes": list(classes),
        "input_shape": list(input_shape),
        "mean": mean.cpu(),
        "std": std.cpu(),
        "image": image,  # None for feature vectors; else {"size": [h, w], "channels": c, "scale": 1/255}
        "task": task,  # classification | regression (a file without it: classification)
        "target": target,  # regression: {"mean": m, "std": s} of the training rows' target; else None
        "features": list(features) if features is not None else None,  # a CSV's feature columns, in order
        "state_dict": {k: v.cpu() for k, v in model.state_dict().items()},
    }
    buf = io.BytesIO()
    torch.save(payload, buf)
    atomic_write_bytes(path, buf.getvalue())


def failure_message(e: BaseException) -> str | None:
    """The one-line reason for an expected way a trial fails, or None for anything else."""
    if isinstance(e, (TrainFailed, ConfigError, DataError)):
        return str(e)
    if isinstance(e, torch.OutOfMemoryError):
        return "out of memory"
    return None


def main() -> None:
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _on_sigterm)
    try:
        settings = TrialSettings.from_env()
        train(settings)
    except Preempted as e:
        print(
            f"[snaketune] preempted ({e}): the last completed epoch's checkpoint is kept; a rerun resumes from it",
            file=sys.stderr,
            flush=True,
        )
        os._exit(128 + e.signum)  # 143 (SIGTERM) or 130 (SIGINT), as the runner reads them
    except Exception as e:
        reason = failure_message(e)
        if reason is None:
            raise  # a bug: the traceback goes to the log, the runner reports its last lines
        print(f"[snaketune] trial failed: {reason}", file=sys.stderr, flush=True)
        sys.stdout.flush()
        os._exit(2)
    sys.stdout.flush()
    sys.stderr.flush()
    # Outputs are fsynced and renamed into place: skip the interpreter's slow torch teardown.
    os._exit(0)


if __name__ == "__main__":
    main()
