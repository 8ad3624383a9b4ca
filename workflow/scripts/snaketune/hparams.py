"""The built-in trainer's hyperparameters, gathered in one visible place.

Every name here may appear in ``search_space``; anything else is rejected before a job runs
(a custom ``trainer.command`` may use any names it likes). This module imports no torch, so
config checks stay cheap.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from snaketune.errors import ConfigError

ACTIVATIONS = ("relu", "gelu", "tanh", "silu", "leaky_relu")
OPTIMIZERS = ("adam", "adamw", "sgd")
# Metrics the built-in trainer reports during the search, and the direction that makes sense.
BUILTIN_METRICS = {"val_accuracy": "maximize", "val_loss": "minimize"}


@dataclass(frozen=True)
class HParams:
    # model
    n_layers: int = 2  # hidden layers (0 = a linear model)
    hidden_units: int = 64  # neurons per hidden layer
    activation: str = "relu"  # one of ACTIVATIONS
    dropout: float = 0.0  # dropout after each hidden layer, in [0, 1)
    # optimisation
    optimizer: str = "adam"  # one of OPTIMIZERS
    lr: float = 1e-3  # learning rate
    momentum: float = 0.9  # sgd only
    weight_decay: float = 0.0  # L2 (adam, sgd) or decoupled (adamw) weight decay
    batch_size: int = 64
    epochs: int = 50  # maximum; early stopping may stop sooner

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> HParams:
        """Build from a trial's params, checking names and values; errors name the parameter."""
        check_builtin_params(params.keys())
        hp = cls(**{k: v for k, v in params.items()})
        hp.validate()
        return hp

    def validate(self) -> None:
        def bad(name: str, why: str) -> ConfigError:
            return ConfigError(f"parameter `{name}`: {why}, but got {getattr(self, name)!r}")

        for name in ("n_layers", "hidden_units", "batch_size", "epochs"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool):
                raise bad(name, "must be an integer")
        if self.n_layers < 0:
            raise bad("n_layers", "must be >= 0")
        for name in ("hidden_units", "batch_size", "epochs"):
            if getattr(self, name) < 1:
                raise bad(name, "must be >= 1")
        if self.activation not in ACTIVATIONS:
            raise bad("activation", f"must be one of {', '.join(ACTIVATIONS)}")
        if self.optimizer not in OPTIMIZERS:
            raise bad("optimizer", f"must be one of {', '.join(OPTIMIZERS)}")
        for name in ("lr", "momentum", "weight_decay", "dropout"):
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

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


NAMES = tuple(f.name for f in fields(HParams))


def check_builtin_params(names) -> None:
    unknown = sorted(set(names) - set(NAMES))
    if unknown:
        from snaketune.config import suggest

        hints = "".join(suggest(n, NAMES) for n in unknown)
        raise ConfigError(
            f"search_space: the built-in trainer has no parameter(s) {', '.join(unknown)}{hints}; "
            f"it knows {', '.join(NAMES)} (a custom trainer.command may use any names)"
        )
