"""Layers the models share: activations by name and one conv-block factory.

``conv_block(..., block=..., batch_norm=...)`` offers seed 3's advanced patterns to every conv
model: batch normalisation after the convolution, residual connections (He et al. 2015,
https://arxiv.org/abs/1512.03385), depthwise-separable convolutions (Chollet 2017,
https://arxiv.org/abs/1610.02357) and Inception modules (Szegedy et al. 2015,
https://arxiv.org/abs/1512.00567).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

BlockKind = Literal["plain", "separable", "residual", "inception"]

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


class ImageConv2d(nn.Conv2d):
    """The convolution that ends a decoder: ``nn.Conv2d`` to the image's channels, with the same
    weights and the same arithmetic, but for one output channel in float32 on the CPU run as a
    depthwise convolution (one 2-D filter per input channel) and a sum over the input channels.
    oneDNN's direct kernel spreads its vector lanes over output channels, which leaves most of
    them idle when there is one; the depthwise form fills them, forward and backward
    (benchmarks/thin_conv.py times both). Under bf16 autocast, on a GPU and for several output
    channels it is ``nn.Conv2d`` itself."""

    def forward(self, x: Tensor) -> Tensor:  # (B, C, H, W) -> (B, out_channels, H', W')
        if (
            self.out_channels != 1
            or self.groups != 1
            or self.padding_mode != "zeros"
            or x.device.type != "cpu"
            or x.dtype != torch.float32
            or torch.is_autocast_enabled("cpu")
            or torch.onnx.is_in_onnx_export()  # the file keeps the plain convolution
        ):
            return super().forward(x)
        taps = self.weight.transpose(0, 1)  # (C, 1, kh, kw): one filter per input channel
        each = F.conv2d(x, taps, None, self.stride, self.padding, self.dilation, self.in_channels)  # (B, C, H', W')
        out = each.sum(1, keepdim=True)
        return out if self.bias is None else out + self.bias.view(1, 1, 1, 1)


def _conv(
    in_channels: int, out_channels: int, kernel_size: int, padding: int | str, separable: bool, bias: bool = True
) -> nn.Module:
    if not separable:
        return nn.Conv2d(in_channels, out_channels, kernel_size, padding=padding, bias=bias)
    return nn.Sequential(
        nn.Conv2d(in_channels, in_channels, kernel_size, padding=padding, groups=in_channels, bias=False),
        nn.Conv2d(in_channels, out_channels, 1, bias=bias),
    )


class Residual(nn.Module):
    """conv-norm-act-conv-norm plus the input (1x1-projected when the width changes), then act."""

    def __init__(self, in_channels: int, out_channels: int, act: str, batch_norm: bool) -> None:
        super().__init__()
        norm = (lambda c: nn.BatchNorm2d(c)) if batch_norm else (lambda c: nn.Identity())
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=not batch_norm),
            norm(out_channels),
            activation(act),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=not batch_norm),
            norm(out_channels),
        )
        self.skip = nn.Identity() if in_channels == out_channels else nn.Conv2d(in_channels, out_channels, 1)
        self.act = activation(act)

    def forward(self, x: Tensor) -> Tensor:  # (B, C_in, H, W) -> (B, C_out, H, W)
        return self.act(self.body(x) + self.skip(x))


class Inception(nn.Module):
    """Seed 3's Inception module: four parallel branches over the same input, concatenated along
    the channels: a 1x1 conv; 1x1 then 3x3; 1x1 then two 3x3 (a 5x5's field of view for less
    work, as Inception v3 factors it); 3x3 max-pooling (stride 1) then 1x1. Each conv is followed
    by the batch norm (optional) and the activation. ``out_channels`` is shared out among the
    branches (the first takes any remainder). The spatial size is kept, or with ``valid=True``
    shrinks by 2 like an unpadded 3x3 conv (the seed-2 model's): each branch's last 3x3 and the
    pooling are unpadded, and the 1x1 branch is cropped by a pixel at each border."""

    def __init__(self, in_channels: int, out_channels: int, act: str, batch_norm: bool, valid: bool = False) -> None:
        super().__init__()
        if out_channels < 4:
            raise ValueError(
                f"an inception block needs at least 4 output channels (one per branch), got {out_channels}"
            )
        share = out_channels // 4
        widths = [out_channels - 3 * share, share, share, share]

        def unit(a: int, b: int, k: int, last: bool = False) -> list[nn.Module]:
            norm = [nn.BatchNorm2d(b)] if batch_norm else []
            padding = 0 if valid and last else k // 2
            return [nn.Conv2d(a, b, k, padding=padding, bias=not batch_norm), *norm, activation(act)]

        self.crop = 1 if valid else 0
        self.branches = nn.ModuleList(
            [
                nn.Sequential(*unit(in_channels, widths[0], 1)),
                nn.Sequential(*unit(in_channels, widths[1], 1), *unit(widths[1], widths[1], 3, last=True)),
                nn.Sequential(
                    *unit(in_channels, widths[2], 1),
                    *unit(widths[2], widths[2], 3),
                    *unit(widths[2], widths[2], 3, last=True),
                ),
                nn.Sequential(nn.MaxPool2d(3, stride=1, padding=0 if valid else 1), *unit(in_channels, widths[3], 1)),
            ]
        )

    def forward(self, x: Tensor) -> Tensor:  # (B, C_in, H, W) -> (B, C_out, H', W'), H' = H or H - 2
        first, *rest = (branch(x) for branch in self.branches)
        if self.crop:
            first = first[..., self.crop : -self.crop, self.crop : -self.crop]
        return torch.cat([first, *rest], dim=1)


def conv_block(
    in_channels: int,
    out_channels: int,
    act: str = "relu",
    kernel_size: int = 3,
    padding: int | str = "same",
    block: BlockKind = "plain",
    batch_norm: bool = False,
) -> nn.Module:
    """A conv (Keras/TF 'same' padding by default), optional batch norm, then the activation."""
    if block == "residual":
        if padding not in ("same", kernel_size // 2) or kernel_size != 3:
            raise ValueError("residual blocks need 3x3 'same' convolutions")
        return Residual(in_channels, out_channels, act, batch_norm)
    if block == "inception":
        if kernel_size != 3 or padding not in ("same", 1, 0, "valid"):
            raise ValueError("inception blocks stand in for 3x3 convolutions, 'same' or unpadded")
        return Inception(in_channels, out_channels, act, batch_norm, valid=padding in (0, "valid"))
    if block not in ("plain", "separable"):
        raise ValueError(f"unknown block {block!r}; choose plain, separable, residual or inception")
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


WEIGHTED = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.ConvTranspose2d)


def initialise(net: nn.Module, scheme: str) -> nn.Module:
    """Set the initial weights of ``net``'s dense and convolutional layers: ``"torch"`` keeps
    PyTorch's layer defaults; ``"glorot"`` draws Glorot-uniform weights and zero biases, the default of
    Keras and CNTK that the seeds trained with (PyTorch's defaults are about 2x smaller for a 784-128
    layer, small enough to leave a deep ReLU stack under Adadelta on a plateau)."""
    if scheme == "glorot":
        for layer in net.modules():
            if isinstance(layer, WEIGHTED):
                nn.init.xavier_uniform_(layer.weight)
                if layer.bias is not None:
                    nn.init.zeros_(layer.bias)
    elif scheme != "torch":
        raise ValueError(f"unknown initial-weight scheme {scheme!r}: torch or glorot")
    return net
