"""The built-in networks.

An MLP is ``n_layers`` x (Linear -> activation -> dropout) -> Linear (layer i ``hidden_units_<i>``
wide where given, else ``hidden_units``). A CNN is ``n_conv`` x
(Conv2d -> batch norm -> activation -> 2x2 pooling), flattened, then the same dense head, so
``n_layers``, ``hidden_units`` and ``dropout`` mean the same in both families.
"""

from __future__ import annotations

import math

from torch import nn

from snaketune.errors import ConfigError
from snaketune.hparams import HParams

_ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh, "silu": nn.SiLU, "leaky_relu": nn.LeakyReLU}


def _dense_head(width: int, n_classes: int, hp: HParams) -> list[nn.Module]:
    """``n_layers`` x (Linear -> activation -> dropout) -> Linear, from ``width`` inputs; layer i has
    ``hidden_units_<i>`` units where given, else ``hidden_units``."""
    layers: list[nn.Module] = []
    for units in hp.widths():
        layers += [nn.Linear(width, units), _ACTIVATIONS[hp.activation]()]
        if hp.dropout > 0:
            layers.append(nn.Dropout(hp.dropout))
        width = units
    layers.append(nn.Linear(width, n_classes))
    return layers


def build_mlp(input_shape: tuple[int, ...] | list[int], n_classes: int, hp: HParams) -> nn.Sequential:
    """Images and sequences are flattened, so the MLP accepts any input shape."""
    layers: list[nn.Module] = [nn.Flatten()] if len(input_shape) > 1 else []
    return nn.Sequential(*layers, *_dense_head(math.prod(input_shape), n_classes, hp))


def build_cnn(input_shape: tuple[int, ...] | list[int], n_classes: int, hp: HParams) -> nn.Sequential:
    """Convolutional blocks over (channels, height, width) images, then the MLP's dense head."""
    if len(input_shape) != 3:
        raise ConfigError(
            f"model.family cnn needs images shaped (channels, height, width), but the data's examples have shape "
            f"{tuple(input_shape)}; use data.source: images (or an npz X of shape (n, c, h, w)), or model.family: mlp"
        )
    in_channels, height, width = (int(v) for v in input_shape)
    layers: list[nn.Module] = []
    for i, out_channels in enumerate(hp.conv_channels()):
        # Padding keeps the size; a bias before batch norm would be cancelled by its mean.
        layers.append(nn.Conv2d(in_channels, out_channels, hp.kernel_size, padding=hp.kernel_size // 2, bias=not hp.batch_norm))
        if hp.batch_norm:
            layers.append(nn.BatchNorm2d(out_channels))
        layers.append(_ACTIVATIONS[hp.activation]())
        if hp.pool != "none":
            if height < 2 or width < 2:
                raise ConfigError(
                    f"parameters n_conv={hp.n_conv}, pool={hp.pool}: block {i + 1} would pool a {height}x{width} map "
                    f"of the {input_shape[1]}x{input_shape[2]} images below 1x1; use fewer blocks, pool: none or larger "
                    "data.image_size"
                )
            layers.append(nn.MaxPool2d(2) if hp.pool == "max" else nn.AvgPool2d(2))
            height, width = height // 2, width // 2
        in_channels = out_channels
    layers.append(nn.Flatten())
    return nn.Sequential(*layers, *_dense_head(in_channels * height * width, n_classes, hp))


def build_model(family: str, input_shape, n_classes: int, hp: HParams) -> nn.Module:
    if family == "mlp":
        return build_mlp(input_shape, n_classes, hp)
    if family == "cnn":
        return build_cnn(input_shape, n_classes, hp)
    raise ConfigError(f"unknown model family {family!r}; valid: mlp, cnn")


def n_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
