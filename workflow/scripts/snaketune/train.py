"""The built-in trainer: one trial, driven by the trainer contract's SNAKETUNE_* variables.

Run it by hand to debug a single trial::

    SNAKETUNE_PARAMS=results/seed-grid/trials/g0123456789/params.yaml \\
    SNAKETUNE_OUT=/tmp/t1 SNAKETUNE_DATA=results/seed-grid/data/prepared.npz \\
    PYTHONPATH=workflow/scripts python -m snaketune.train

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

from snaketune.data import load_prepared
from snaketune.errors import ConfigError, DataError
from snaketune.files import atomic_write_bytes, atomic_write_text, read_yaml, write_json
from snaketune.hparams import HParams
from snaketune.model import build_model, n_parameters
from snaketune.optim import make_optimizer

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


def is_better(value: float, best: float | None, direction: str, min_delta: float) -> bool:
    if best is None:
        return True
    if direction == "maximize":
        return value > best + min_delta
    return value < best - min_delta


class Preempted(Exception):
    """SIGTERM arrived (a scheduler preempting, Snakemake stopping); the last checkpoint is kept."""


def _on_sigterm(signum, frame):
    raise Preempted()


def _history_csv(history: list[dict]) -> str:
    cols = list(history[0]) if history else ["epoch"]
    rows = [",".join(repr(r[c]) if isinstance(r[c], float) else str(r[c]) for c in cols) for r in history]
    return "\n".join([",".join(cols), *rows]) + "\n"


def save_checkpoint(path: Path, state: dict) -> None:
    """Everything needed to continue exactly where training stopped (loadable with weights_only=True)."""
    import io

    buf = io.BytesIO()
    torch.save(state, buf)
    # Renamed into place, so a kill never leaves a torn checkpoint; not fsynced (a per-epoch cost),
    # so only a machine crash can lose the last epoch's checkpoint.
    atomic_write_bytes(path, buf.getvalue(), fsync=False)


def load_checkpoint(path: Path, identity: dict) -> dict | None:
    """The checkpoint at ``path`` if it belongs to this trial (same parameters and seed), else None."""
    try:
        state = torch.load(path, weights_only=True, map_location="cpu")
    except FileNotFoundError:
        return None
    except Exception as e:  # torn or foreign file: start afresh rather than fail the trial
        print(f"[snaketune] ignoring unreadable checkpoint {path}: {e}", flush=True)
        return None
    if state.get("identity") != identity:
        print(f"[snaketune] ignoring checkpoint {path}: it belongs to other parameters or another seed", flush=True)
        return None
    return state


def train(settings: TrialSettings) -> dict:
    """Train one trial; write metrics.json and history.csv (and model.pt in stage final).

    A checkpoint (model, optimiser, epoch, early-stopping state, RNG states, history) is written
    after the epochs of a search run (at most one per ``settings.checkpoint_every`` seconds, and
    after the last epoch); ``settings.resume`` continues from one, so a preempted
    trial or a promoted multi-fidelity trial trains only the epochs it has not trained yet.
    """
    torch.set_num_threads(max(1, settings.threads))
    # Subnormal floats (Adam's second moments of tiny gradients decay into them) take a slow path
    # on x86 CPUs: flushing them to zero made a 5-layer MLP train 25% faster (docs/benchmarks.md).
    # It is a setting of this process (a trial's own), and changes nothing on a GPU.
    torch.set_flush_denormal(True)
    params = read_yaml(settings.params) or {}
    hp = HParams.from_params(params)
    device = pick_device(settings.device)
    torch.manual_seed(settings.seed)

    t_load = time.perf_counter()
    prepared = load_prepared(settings.data)
    print(
        f"[snaketune] loaded {settings.data}: {len(prepared.y)} examples of shape {tuple(prepared.X.shape[1:])} "
        f"({prepared.X.dtype}) in {1000 * (time.perf_counter() - t_load):.0f} ms",
        flush=True,
    )
    train_mask, eval_mask = prepared.rows(settings.stage, settings.fold)
    train_rows, eval_rows = torch.from_numpy(train_mask), torch.from_numpy(eval_mask)
    prefix = "test" if settings.stage == "final" else "val"
    input_shape = tuple(prepared.X.shape[1:])
    if hp.augments and len(input_shape) != 3:
        raise ConfigError(
            f"parameters flip and crop_padding augment images shaped (channels, height, width), but the data's "
            f"examples have shape {input_shape}; remove them from search_space or use data.source: images"
        )
    y_all = torch.from_numpy(prepared.y)
    if prepared.is_images:
        X_train, X_eval, mean, std = image_tensors(torch.from_numpy(prepared.X), train_rows, eval_rows, device)
    else:
        X_all = torch.from_numpy(prepared.X)
        X_all, mean, std = standardise(X_all, train_rows)
        X_train, X_eval = X_all[train_rows].to(device), X_all[eval_rows].to(device)
    y_train, y_eval = y_all[train_rows].to(device), y_all[eval_rows].to(device)

    model = build_model(settings.family, input_shape, len(prepared.classes), hp).to(device)
    autocast = cuda_autocast(device)
    # Batch norm cannot train on a single example whose maps are 1x1: skip such a last batch.
    min_batch = 2 if any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules()) else 1
    opt = make_optimizer(hp.optimizer, model.parameters(), hp.lr, hp.weight_decay, hp.momentum)
    epochs = settings.budget if settings.budget is not None else hp.epochs
    early_stop = settings.stage == "search" and settings.patience > 0
    metric = settings.metric if settings.stage == "search" else None

    gen = torch.Generator().manual_seed(settings.seed)
    n, bs = len(X_train), hp.batch_size
    history: list[dict] = []
    best_value: float | None = None
    best_epoch = 0
    best_state: dict[str, torch.Tensor] | None = None
    stale = 0
    start_epoch = 1
    settings.out.mkdir(parents=True, exist_ok=True)
    data_stat = settings.data.stat()
    identity = {
        "params": {k: params[k] for k in sorted(params)},
        "seed": settings.seed,
        "stage": settings.stage,
        "data": [data_stat.st_size, data_stat.st_mtime_ns],  # a re-prepared data file starts afresh
    }
    checkpoint_path = settings.out / "checkpoint.pt"
    if settings.resume is not None:
        state = load_checkpoint(settings.resume, identity)
        if state is not None:
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
            torch.set_rng_state(state["rng_torch"])
            gen.set_state(state["rng_batches"])
            if device.type == "cuda" and state.get("rng_cuda") is not None:
                torch.cuda.set_rng_state(state["rng_cuda"])
            history = list(state["history"])
            best_value, best_epoch, stale = state["best_value"], state["best_epoch"], state["stale"]
            best_state = state["best_state"]
            start_epoch = state["epoch"] + 1
            print(f"[snaketune] resumed from {settings.resume} after epoch {state['epoch']}", flush=True)

    def checkpoint(epoch: int) -> None:
        save_checkpoint(
            checkpoint_path,
            {
                "identity": identity,
                "epoch": epoch,
                "model": model.state_dict(),
                "optimizer": opt.state_dict(),
                "rng_torch": torch.get_rng_state(),
                "rng_batches": gen.get_state(),
                "rng_cuda": torch.cuda.get_rng_state() if device.type == "cuda" else None,
                "history": history,
                "best_value": best_value,
                "best_epoch": best_epoch,
                "stale": stale,
                "best_state": best_state,
            },
        )

    print(
        f"[snaketune] training {settings.stage} on {device}: {n} examples, {n_parameters(model)} parameters, "
        f"epochs {start_epoch}..{epochs}",
        flush=True,
    )
    t_start = last_saved = time.perf_counter()
    stopped_early = early_stop and stale >= settings.patience
    epoch = start_epoch - 1
    for epoch in range(start_epoch, epochs + 1):
        if stopped_early:
            break
        t0 = time.perf_counter()
        model.train()
        # One gather per epoch; the batches are then free views (no per-batch index_select).
        perm = torch.randperm(n, generator=gen).to(device)
        X_epoch, y_epoch = X_train.index_select(0, perm), y_train.index_select(0, perm)
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
                loss = F.cross_entropy(model(xb), y_epoch[i : i + nb])
            opt.zero_grad()
            loss.backward()
            opt.step()
            loss_sum.add_(loss.detach(), alpha=nb)  # summed on the device: no sync per batch
            n_seen += nb
        train_loss = loss_sum.item() / max(n_seen, 1)
        if not math.isfinite(train_loss):
            raise TrainFailed(f"diverged at epoch {epoch} (training loss {train_loss})")
        eval_loss, eval_acc = evaluate(model, X_eval, y_eval)
        row = {
            "epoch": epoch,
            "train_loss": train_loss,
            f"{prefix}_loss": eval_loss,
            f"{prefix}_accuracy": eval_acc,
            "seconds": time.perf_counter() - t0,
        }
        history.append(row)
        print(
            f"epoch {epoch:4d}  train_loss {train_loss:.4f}  {prefix}_loss {eval_loss:.4f}  "
            f"{prefix}_accuracy {eval_acc:.4f}  {row['seconds']:.2f}s",
            flush=True,
        )
        if metric is not None:
            value = row[metric]
            if not math.isfinite(value):
                raise TrainFailed(f"diverged at epoch {epoch} ({metric} {value})")
            if is_better(value, best_value, settings.direction, settings.min_delta):
                best_value, best_epoch, stale = value, epoch, 0
                if settings.restore_best:
                    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            else:
                stale += 1
                if early_stop and stale >= settings.patience:
                    print(
                        f"[snaketune] early stop after epoch {epoch}: no improvement of {metric} for {stale} epochs", flush=True
                    )
                    stopped_early = True
        # Saving costs 1-3 ms (measured on a small MLP): a quarter of a 10 ms epoch, nothing next
        # to a real one. Preempted between two checkpoints, a trial redoes at most that much.
        now = time.perf_counter()
        if settings.checkpoint and (stopped_early or epoch == epochs or now - last_saved >= settings.checkpoint_every):
            checkpoint(epoch)
            last_saved = now

    seconds = time.perf_counter() - t_start
    if best_state is not None and settings.restore_best:
        model.load_state_dict(best_state)  # restore the best epoch's weights
    final_loss, final_acc = evaluate(model, X_eval, y_eval)
    metrics = {
        f"{prefix}_accuracy": final_acc,
        f"{prefix}_loss": final_loss,
        "best_epoch": best_epoch if metric else len(history),
        "epochs_run": len(history),  # epochs the trial has trained, resumed runs included
        "epochs_this_run": sum(1 for r in history if r["epoch"] >= start_epoch),
        "train_seconds": round(seconds, 4),
        "n_parameters": n_parameters(model),
        "device": str(device),
    }
    if history:
        metrics["train_loss"] = history[-1]["train_loss"]
    atomic_write_text(settings.out / "history.csv", _history_csv(history))
    if settings.stage == "final":
        image = {"size": list(input_shape[1:]), "channels": input_shape[0], "scale": PIXEL_SCALE} if prepared.is_images else None
        save_model(settings.out / "model.pt", model, settings, hp, prepared.classes, input_shape, mean, std, image)
    write_json(settings.out / "metrics.json", metrics)  # last: its presence means the trial finished
    return metrics


def save_model(path: Path, model, settings: TrialSettings, hp: HParams, classes, input_shape, mean, std, image=None) -> None:
    """A file ``torch.load(path, weights_only=True)`` reads: weights plus what prediction needs.

    The input is ``(x - mean) / std``; for images (``image`` not None) x is the image file loaded
    as ``snaketune.images.load_image(path, image["size"], image["channels"])`` times ``image["scale"]``.
    """
    import io

    payload = {
        "format": "snaketune-model-1",
        "family": settings.family,
        "hparams": hp.as_dict(),
        "classes": list(classes),
        "input_shape": list(input_shape),
        "mean": mean.cpu(),
        "std": std.cpu(),
        "image": image,  # None for feature vectors; else {"size": [h, w], "channels": c, "scale": 1/255}
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
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        settings = TrialSettings.from_env()
        train(settings)
    except Preempted:
        print(
            "[snaketune] preempted (SIGTERM): the last completed epoch's checkpoint is kept; a rerun resumes from it",
            file=sys.stderr,
            flush=True,
        )
        os._exit(143)
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
