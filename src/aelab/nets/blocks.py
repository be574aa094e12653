"""Layers the models share: activations by name and one conv-block factory.

``conv_block(..., block=..., batch_norm=...)`` offers seed 3's advanced patterns to every conv
model: batch normalisation after the convolution, residual connections (He et al. 2015,
https://arxiv.org/abs/1512.03385) and depthwise-separable convolutions (Chollet 2017,
https://arxiv.org/abs/1610.02357).
"""

from __future__ import annotations

from typing import Literal

from torch import Tensor, nn

BlockKind = Literal["plain", "separable", "residual"]

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "identity": nn.Identity,
}


# rectifiers overwrite their input: it is always a fresh layer output here, and no backward pass
# needs it (the rectifier's own backward reads its output), so training saves a full-size tensor
# write per activation
IN_PLACE = {"relu", "leaky_relu"}


def activation(name: str) -> nn.Module:
    """A fresh activation module by name; unknown names raise ``ValueError`` listing the valid ones."""
    try:
        kind = ACTIVATIONS[name]
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; choose one of: {', '.join(ACTIVATIONS)}") from None
    return kind(inplace=True) if name in IN_PLACE else kind()


def _conv(in_channels: int, out_channels: int, kernel_size: int, padding: int | str, separable: bool,
          bias: bool = True) -> nn.Module:
    if not separable:
        return nn.Conv2d(in_channels, out_channels, kernel_size, padding=padding, bias=bias)
    return nn.Sequential(nn.Conv2d(in_channels, in_channels, kernel_size, padding=padding, groups=in_channels,
                                   bias=False),
                         nn.Conv2d(in_channels, out_channels, 1, bias=bias))


class Residual(nn.Module):
    """conv-norm-act-conv-norm plus the input (1x1-projected when the width changes), then act."""

    def __init__(self, in_channels: int, out_channels: int, act: str, batch_norm: bool) -> None:
        super().__init__()
        norm = (lambda c: nn.BatchNorm2d(c)) if batch_norm else (lambda c: nn.Identity())
        self.body = nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=not batch_norm),
                                  norm(out_channels), activation(act),
                                  nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=not batch_norm),
                                  norm(out_channels))
        self.skip = nn.Identity() if in_channels == out_channels else nn.Conv2d(in_channels, out_channels, 1)
        self.act = activation(act)

    def forward(self, x: Tensor) -> Tensor:  # (B, C_in, H, W) -> (B, C_out, H, W)
        return self.act(self.body(x) + self.skip(x))


def conv_block(in_channels: int, out_channels: int, act: str = "relu", kernel_size: int = 3,
               padding: int | str = "same", block: BlockKind = "plain", batch_norm: bool = False) -> nn.Module:
    """A conv (Keras/TF 'same' padding by default), optional batch norm, then the activation."""
    if block == "residual":
        if padding not in ("same", kernel_size // 2) or kernel_size != 3:
            raise ValueError("residual blocks need 3x3 'same' convolutions")
        return Residual(in_channels, out_channels, act, batch_norm)
    if block not in ("plain", "separable"):
        raise ValueError(f"unknown block {block!r}; choose plain, separable or residual")
    layers = [_conv(in_channels, out_channels, kernel_size, padding, block == "separable", bias=not batch_norm)]
    if batch_norm:
        layers.append(nn.BatchNorm2d(out_channels))
    layers.append(activation(act))
    return nn.Sequential(*layers)


def check_positive(**values: int | tuple[int, ...]) -> None:
    """Raise ``ValueError`` naming the first size that is not a positive integer."""
    for name, value in values.items():
        items = value if isinstance(value, tuple) else (value,)
        if not items or any(not isinstance(v, int) or v < 1 for v in items):
            raise ValueError(f"{name} must be positive integer(s), got {value!r}")
