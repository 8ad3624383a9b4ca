"""The built-in networks. An MLP is ``n_layers`` x (Linear -> activation -> dropout) -> Linear."""

from __future__ import annotations

import math

from torch import nn

from snaketune.hparams import HParams

_ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh, "silu": nn.SiLU, "leaky_relu": nn.LeakyReLU}


def build_mlp(input_shape: tuple[int, ...] | list[int], n_classes: int, hp: HParams) -> nn.Sequential:
    """Images and sequences are flattened, so the MLP accepts any input shape."""
    layers: list[nn.Module] = [nn.Flatten()] if len(input_shape) > 1 else []
    width = math.prod(input_shape)
    for _ in range(hp.n_layers):
        layers += [nn.Linear(width, hp.hidden_units), _ACTIVATIONS[hp.activation]()]
        if hp.dropout > 0:
            layers.append(nn.Dropout(hp.dropout))
        width = hp.hidden_units
    layers.append(nn.Linear(width, n_classes))
    return nn.Sequential(*layers)


def build_model(family: str, input_shape, n_classes: int, hp: HParams) -> nn.Module:
    if family == "mlp":
        return build_mlp(input_shape, n_classes, hp)
    raise ValueError(f"unknown model family {family!r}")


def n_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
