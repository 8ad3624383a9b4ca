"""The built-in trainer's hyperparameters, gathered in one visible place.

Every name here may appear in ``search_space``; anything else is rejected before a job runs
(a custom ``trainer.command`` may use any names it likes). This module imports no torch, so
config checks stay cheap.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from snaketune.errors import ConfigError, suggest

ACTIVATIONS = ("relu", "gelu", "tanh", "silu", "leaky_relu")
OPTIMIZERS = ("adam", "adamw", "sgd")
# How the learning rate changes over the epochs (snaketune.train.lr_at); the horizon is `epochs`.
LR_SCHEDULES = ("constant", "cosine", "step")
POOLS = ("max", "avg", "none")
# Used only by model.family cnn; naming one in a study of another family is a config error.
CNN_PARAMS = ("n_conv", "channels", "channel_growth", "kernel_size", "batch_norm", "pool")
# Augment training images; they need image-shaped inputs (channels, height, width).
AUGMENTATION_PARAMS = ("flip", "crop_padding")
# hidden_units_<i>: the width of hidden layer i (1-based), instead of hidden_units for that layer.
LAYER_UNITS = re.compile(r"hidden_units_([1-9][0-9]*)")


@dataclass(frozen=True)
class HParams:
    # model
    n_layers: int = 2  # hidden layers (0 = a linear model)
    hidden_units: int = 64  # neurons per hidden layer
    # (layer, width) pairs from the parameters hidden_units_<layer>: that layer's width instead of hidden_units
    layer_units: tuple[tuple[int, int], ...] = ()
    activation: str = "relu"  # one of ACTIVATIONS
    dropout: float = 0.0  # dropout after each hidden layer, in [0, 1)
    # cnn only: n_conv blocks of Conv2d -> batch norm -> activation -> 2x2 pooling, then the dense head above
    n_conv: int = 2  # convolutional blocks (0 = the dense head alone)
    channels: int = 16  # filters of the first block
    channel_growth: float = 2.0  # each block has this many times the filters of the one before (1 = constant)
    kernel_size: int = 3  # odd; padded so a block keeps the image size
    batch_norm: bool = True
    pool: str = "max"  # one of POOLS, after each block (halves height and width); none = keep the size
    # augmentation of training images (never of validation or test images)
    flip: float = 0.0  # probability of a random horizontal flip; true = 0.5, false = 0
    crop_padding: int = 0  # pad by this many pixels and crop a random window of the original size; 0 = off
    # optimisation
    optimizer: str = "adam"  # one of OPTIMIZERS
    lr: float = 1e-3  # learning rate (the peak one when a schedule or warmup changes it per epoch)
    lr_schedule: str = "constant"  # one of LR_SCHEDULES; cosine: down to 0 at epoch `epochs`; step: see lr_step_size
    warmup_epochs: int = 0  # the lr rises linearly over these first epochs, then follows lr_schedule; 0 = off
    lr_step_size: int = 10  # step only: the lr is multiplied by lr_gamma after every lr_step_size epochs
    lr_gamma: float = 0.1  # step only: the factor of each step, in (0, 1]
    momentum: float = 0.9  # sgd only
    weight_decay: float = 0.0  # L2 (adam, sgd) or decoupled (adamw) weight decay
    batch_size: int = 64
    epochs: int = 50  # maximum; early stopping may stop sooner

    @classmethod
    def from_params(cls, params: Mapping[str, Any], key: str = "parameter `{}`") -> HParams:
        """Build from a trial's params, checking names and values; errors name the parameter
        (``key`` formats its name). A parameter the trial lacks (an inactive one) keeps its default."""
        check_builtin_params(params.keys())
        fields_ = {k: v for k, v in params.items() if layer_of(k) is None}
        widths = sorted((layer_of(k), v) for k, v in params.items() if layer_of(k) is not None)
        hp = cls(**fields_, layer_units=tuple(widths))
        hp.validate(key)
        return hp

    def validate(self, key: str = "parameter `{}`") -> None:
        """Raise a ConfigError naming the first bad value; ``key`` formats its name (the config's
        checks say ``search_space.{}``)."""

        def bad(name: str, why: str) -> ConfigError:
            return ConfigError(f"{key.format(name)}: {why}, but got {getattr(self, name)!r}")

        for name in INT_PARAMS:
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool):
                raise bad(name, "must be an integer")
        for layer, width in self.layer_units:
            if not isinstance(width, int) or isinstance(width, bool) or width < 1:
                raise ConfigError(f"{key.format(f'hidden_units_{layer}')}: must be an integer >= 1, but got {width!r}")
        for name in ("n_layers", "n_conv", "crop_padding", "warmup_epochs"):
            if getattr(self, name) < 0:
                raise bad(name, "must be >= 0")
        for name in ("hidden_units", "batch_size", "epochs", "channels", "lr_step_size"):
            if getattr(self, name) < 1:
                raise bad(name, "must be >= 1")
        if self.kernel_size < 1 or self.kernel_size % 2 == 0:
            raise bad("kernel_size", "must be an odd integer >= 1 (3, 5, 7 ...)")
        if self.pool not in POOLS:
            raise bad("pool", f"must be one of {', '.join(POOLS)}")
        if not isinstance(self.batch_norm, bool):
            raise bad("batch_norm", "must be true or false")
        if (
            isinstance(self.channel_growth, bool)
            or not isinstance(self.channel_growth, (int, float))
            or not self.channel_growth > 0
        ):
            raise bad("channel_growth", "must be a number > 0")
        if not isinstance(self.flip, (int, float)) or not 0 <= self.flip <= 1:
            raise bad("flip", "must be a probability in [0, 1], or true (0.5) or false (0)")
        if self.activation not in ACTIVATIONS:
            raise bad("activation", f"must be one of {', '.join(ACTIVATIONS)}")
        if self.optimizer not in OPTIMIZERS:
            raise bad("optimizer", f"must be one of {', '.join(OPTIMIZERS)}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise bad("lr_schedule", f"must be one of {', '.join(LR_SCHEDULES)}")
        for name in ("lr", "momentum", "weight_decay", "dropout", "lr_gamma"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or isinstance(v, bool):
                raise bad(name, "must be a number")
        if not self.lr > 0:
            raise bad("lr", "must be > 0")
        if not 0 <= self.dropout < 1:
            raise bad("dropout", "must be in [0, 1)")
        if self.weight_decay < 0:
            raise bad("weight_decay", "must be >= 0")
        if not 0 <= self.momentum < 1:
            raise bad("momentum", "must be in [0, 1)")
        if not 0 < self.lr_gamma <= 1:
            raise bad("lr_gamma", "must be in (0, 1]")

    @property
    def flip_probability(self) -> float:
        """``flip: true`` means a coin toss per image."""
        if isinstance(self.flip, bool):
            return 0.5 if self.flip else 0.0
        return float(self.flip)

    @property
    def lr_varies(self) -> bool:
        """Whether the lr changes from epoch to epoch (then history.csv records it in an ``lr`` column)."""
        return self.lr_schedule != "constant" or self.warmup_epochs > 0

    @property
    def augments(self) -> bool:
        return self.flip_probability > 0 or self.crop_padding > 0

    def widths(self) -> list[int]:
        """The width of each hidden layer: hidden_units, or the layer's own hidden_units_<i>."""
        own = dict(self.layer_units)
        return [own.get(i + 1, self.hidden_units) for i in range(self.n_layers)]

    def conv_channels(self) -> list[int]:
        """Filters of each convolutional block: channels, channels x growth, ... (at least 1)."""
        return [max(1, round(self.channels * self.channel_growth**i)) for i in range(self.n_conv)]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


NAMES = tuple(f.name for f in fields(HParams) if f.name != "layer_units")
# The parameters that must be integers (a float range over one of them is a config error).
INT_PARAMS = tuple(f.name for f in fields(HParams) if f.type == "int")
# The parameters that are numbers (``1e-3`` in the config is read as one, even where PyYAML reads text).
FLOAT_PARAMS = tuple(f.name for f in fields(HParams) if f.type == "float")


def layer_of(name: str) -> int | None:
    """The layer of a per-layer width parameter (``hidden_units_3`` -> 3), else None."""
    m = LAYER_UNITS.fullmatch(name)
    return int(m[1]) if m else None


def declared_type(name: str) -> type | None:
    """int or float for the built-in trainer's numeric parameters, else None."""
    if name in INT_PARAMS or layer_of(name) is not None:
        return int
    return float if name in FLOAT_PARAMS else None


def check_builtin_params(names) -> None:
    unknown = sorted(n for n in set(names) - set(NAMES) if layer_of(n) is None)
    if unknown:
        hints = "".join(suggest(n, NAMES) for n in unknown)
        raise ConfigError(
            f"search_space: the built-in trainer has no parameter(s) {', '.join(unknown)}{hints}; "
            f"it knows {', '.join(NAMES)}, and hidden_units_1, hidden_units_2, ... (one hidden layer's width) "
            "(a custom trainer.command may use any names)"
        )
