"""Anomaly scores from geometric transformations (Golan & El-Yaniv, "Deep Anomaly Detection Using
Geometric Transformations", NeurIPS 2018: GEOM / GeoTrans).

A small convolutional network learns, on normal images only, which of ``len(TRANSFORMS)``
transformations (4 rotations by 90 degrees times 5 translations: none, or a quarter of the side
left, right, up or down, reflect-padded) was applied to an image. It learns that from what normal
images look like upright and centred; on an image of another kind it guesses worse. The score of
an image is GEOM's simple one: minus the sum over the transformations of the log-probability the
network gives the right one (higher: more anomalous).

GEOM uses 72 transformations (flips too, and 8-pixel translations on 32x32 images) and a wide
residual network; aelab uses 20 and a three-conv network of 8, 16 and 32 channels (chosen on
validation images, benchmarks/results/anomaly.md: the combined method scored 0.9456 with it,
0.9483 with 32, 64 and 128 channels at 3.6x the time), its batch norms folded into the
convolutions for scoring; fitting on 5,400 images and scoring 10,000 takes about ten seconds on a
2-core CPU. Flips are left out: most clothes
look the same mirrored, so a flip cannot be told from the upright image.
"""

from __future__ import annotations

import copy
import functools

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from .errors import AelabError

ROTATIONS = 4
SHIFTS = ((0, 0), (1, 0), (-1, 0), (0, 1), (0, -1))  # (right, down) in quarters of the side
TRANSFORMS = tuple((rotation, shift) for shift in SHIFTS for rotation in range(ROTATIONS))
EPOCHS, BATCH, LR = 5, 128, 1e-3  # chosen on validation images (benchmarks/anomaly_validation.py)
WIDTH = 8  # the first block's channels (validation: 32 scored 0.0027 higher combined, at 3.6x the time)


def transform(images: Tensor, index: int) -> Tensor:
    """Transformation ``index`` of :data:`TRANSFORMS` applied to square images (N, C, s, s):
    translated by a quarter of the side (reflect-padded), then rotated by 90 degrees x its rotation."""
    rotation, (right, down) = TRANSFORMS[index]
    if right or down:
        pad = images.shape[-1] // 4
        size = images.shape[-1]
        padded = F.pad(images, (pad, pad, pad, pad), mode="reflect")
        top, left = pad - down * pad, pad - right * pad
        images = padded[..., top : top + size, left : left + size]
    return _rotate(images, rotation)


def _rotate(images: Tensor, quarters: int) -> Tensor:
    """``torch.rot90(images, quarters, (-2, -1))`` in flips and a transpose, which ONNX exports."""
    if quarters == 1:
        return images.flip(-1).transpose(-2, -1)
    if quarters == 2:
        return images.flip(-2).flip(-1)
    if quarters == 3:
        return images.transpose(-2, -1).flip(-1)
    return images


class TransformationNet(nn.Module):
    """Which transformation an image went through: three 3x3 conv blocks (``width``, 2 x and 4 x
    ``width`` channels, batch norm, ReLU; 2x2 max-pooling between them), global average pooling, a
    dense layer to one logit a transformation.

    Each pooling comes before its ReLU (the same function: ReLU keeps the order of values, so it
    commutes with a maximum) and so runs on a quarter of the values; in evaluation the batch norms
    are folded into their convolutions (:meth:`inference`). The layers' indices, and so the saved
    weights' names, are those of the conv, norm, ReLU, pool order."""

    def __init__(self, channels: int = 1, width: int = WIDTH) -> None:
        super().__init__()

        def block(a: int, b: int, pool: bool) -> list[nn.Module]:
            return [
                nn.Conv2d(a, b, 3, padding=1),
                nn.BatchNorm2d(b),
                *([nn.MaxPool2d(2)] if pool else []),
                nn.ReLU(inplace=True),
            ]

        self.net = nn.Sequential(
            *block(channels, width, True),
            *block(width, 2 * width, True),
            *block(2 * width, 4 * width, False),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(4 * width, len(TRANSFORMS)),
        )
        self._folded: tuple[tuple, nn.Sequential] | None = None  # (the weights' version, the folded copy)

    def forward(self, x: Tensor) -> Tensor:  # (N, C, s, s) -> (N, transformations)
        # channels-last: oneDNN's faster layout for these convolutions on a CPU
        x = x.contiguous(memory_format=torch.channels_last)
        return self.net(x) if self.training or torch.is_grad_enabled() else self.inference()(x)

    def inference(self) -> nn.Sequential:
        """The network in evaluation with each batch norm folded into its convolution (made once,
        again when the weights change)."""
        weights = self.state_dict().values()  # changed in place by training or loading, or moved
        version = (sum(t._version for t in weights), tuple(t.data_ptr() for t in weights))
        if self._folded is None or self._folded[0] != version:
            layers, modules = [], list(self.net)
            for module in modules:
                if isinstance(module, nn.BatchNorm2d):
                    layers[-1] = fuse_conv_bn_eval(layers[-1], module)
                else:
                    layers.append(copy.deepcopy(module))
            self._folded = (version, nn.Sequential(*layers).eval().to(memory_format=torch.channels_last))
        return self._folded[1]


def check_square(images: Tensor) -> None:
    if images.shape[-1] != images.shape[-2] or images.shape[-1] < 8:
        raise AelabError(
            f"the transformations method rotates images by 90 degrees: it needs square images of "
            f"at least 8x8 pixels, got {images.shape[-2]}x{images.shape[-1]}"
        )


def fit_transformation_net(
    images: Tensor, seed: int = 0, epochs: int = EPOCHS, width: int = WIDTH
) -> TransformationNet:
    """A :class:`TransformationNet` trained on normal ``images`` (N, C, s, s) in [0, 1]: each epoch
    every image once, under one transformation drawn at random; Adam, cross-entropy."""
    check_square(images)
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = TransformationNet(images.shape[1], width).to(images.device, memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(net.parameters(), lr=LR)
    net.train()
    shuffled = (
        batch
        for _ in range(epochs)
        for batch in images[torch.randperm(len(images), generator=generator).to(images.device)].split(BATCH)
    )
    for batch in shuffled:
        drawn = torch.randint(len(TRANSFORMS), (len(batch),), generator=generator).to(images.device)
        inputs, targets = _transformed(batch, drawn)
        loss = F.cross_entropy(net(inputs), targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return net.eval()


def _transformed(batch: Tensor, drawn: Tensor) -> tuple[Tensor, Tensor]:
    """The batch's images, each under its drawn transformation, in one gather: each transformation
    moves pixels (the reflect padding repeats some), so it is a table of where each pixel comes from."""
    flat = batch.flatten(2)
    sources = source_pixels(batch.shape[-1], batch.device)[drawn]  # (B, s*s)
    return flat.gather(2, sources[:, None, :].expand(-1, flat.shape[1], -1)).view_as(batch), drawn


@functools.cache
def source_pixels(size: int, device: torch.device) -> Tensor:
    """(transformations, size*size): the index of the pixel each transformation puts at each place."""
    where = torch.arange(size * size, dtype=torch.float64).view(1, 1, size, size)
    return torch.cat([transform(where, t).reshape(1, -1) for t in range(len(TRANSFORMS))]).round().long().to(device)


def transformation_score(net: nn.Module, images: Tensor) -> Tensor:
    """GEOM's score (N,) in float64: minus the summed log-probability of the right transformation
    over every transformation of each image (the graph an exported detector traces too)."""
    right = [F.log_softmax(net(transform(images, t)).float(), dim=1)[:, t] for t in range(len(TRANSFORMS))]
    return -torch.stack(right).double().sum(dim=0)


@torch.no_grad()
def transformation_scores(net: nn.Module, images: Tensor, chunk: int = 256) -> Tensor:
    """:func:`transformation_score` of many images, ``chunk`` at a time, on the network's device."""
    check_square(images)
    device = next(net.parameters()).device
    return torch.cat([transformation_score(net, part.to(device)).cpu() for part in images.split(chunk)])
