"""Anomaly scores from geometric transformations (Golan & El-Yaniv, "Deep Anomaly Detection Using
Geometric Transformations", NeurIPS 2018: GEOM / GeoTrans).

A small convolutional network learns, on normal images only, which of ``len(TRANSFORMS)``
transformations (4 rotations by 90 degrees times 5 translations: none, or a quarter of the side
left, right, up or down, reflect-padded) was applied to an image. It learns that from what normal
images look like upright and centred; on an image of another kind it guesses worse. The score of
an image is GEOM's simple one: minus the sum over the transformations of the log-probability the
network gives the right one (higher: more anomalous).

GEOM uses 72 transformations (flips too, and 8-pixel translations on 32x32 images) and a wide
residual network; with aelab's 20 and a three-conv network, fitting on 6,000 images and scoring
10,000 takes about a minute on a 2-core CPU (benchmarks/results/anomaly.md). Flips are left
out: most clothes look the same mirrored, so a flip cannot be told from the upright image.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .errors import AelabError

ROTATIONS = 4
SHIFTS = ((0, 0), (1, 0), (-1, 0), (0, 1), (0, -1))  # (right, down) in quarters of the side
TRANSFORMS = tuple((rotation, shift) for shift in SHIFTS for rotation in range(ROTATIONS))
EPOCHS, BATCH, LR = 5, 128, 1e-3  # chosen on validation images (benchmarks/anomaly_validation.py)


def transform(images: Tensor, index: int) -> Tensor:
    """Transformation ``index`` of :data:`TRANSFORMS` applied to square images (N, C, s, s):
    translated by a quarter of the side (reflect-padded), then rotated by 90 degrees x its rotation."""
    rotation, (right, down) = TRANSFORMS[index]
    if right or down:
        pad = images.shape[-1] // 4
        size = images.shape[-1]
        padded = F.pad(images, (pad, pad, pad, pad), mode="reflect")
        top, left = pad - down * pad, pad - right * pad
        images = padded[..., top:top + size, left:left + size]
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
    """Which transformation an image went through: three 3x3 conv blocks (32, 64, 128 channels,
    batch norm, ReLU; 2x2 max-pooling between them), global average pooling, a dense layer to one
    logit a transformation."""

    def __init__(self, channels: int = 1) -> None:
        super().__init__()

        def block(a: int, b: int) -> list[nn.Module]:
            return [nn.Conv2d(a, b, 3, padding=1), nn.BatchNorm2d(b), nn.ReLU()]

        self.net = nn.Sequential(*block(channels, 32), nn.MaxPool2d(2), *block(32, 64), nn.MaxPool2d(2),
                                 *block(64, 128), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                 nn.Linear(128, len(TRANSFORMS)))

    def forward(self, x: Tensor) -> Tensor:  # (N, C, s, s) -> (N, transformations)
        # channels-last: oneDNN's faster layout for these convolutions on a CPU
        return self.net(x.contiguous(memory_format=torch.channels_last))


def check_square(images: Tensor) -> None:
    if images.shape[-1] != images.shape[-2] or images.shape[-1] < 8:
        raise AelabError(f"the transformations method rotates images by 90 degrees: it needs square images of "
                         f"at least 8x8 pixels, got {images.shape[-2]}x{images.shape[-1]}")


def fit_transformation_net(images: Tensor, seed: int = 0, epochs: int = EPOCHS) -> TransformationNet:
    """A :class:`TransformationNet` trained on normal ``images`` (N, C, s, s) in [0, 1]: each epoch
    every image once, under one transformation drawn at random; Adam, cross-entropy."""
    check_square(images)
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = TransformationNet(images.shape[1]).to(images.device, memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(net.parameters(), lr=LR)
    net.train()
    for _ in range(epochs):
        order = torch.randperm(len(images), generator=generator).to(images.device)
        for batch in images[order].split(BATCH):
            drawn = torch.randint(len(TRANSFORMS), (len(batch),), generator=generator).to(images.device)
            inputs, targets = _transformed(batch, drawn)
            loss = F.cross_entropy(net(inputs), targets)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return net.eval()


def _transformed(batch: Tensor, drawn: Tensor) -> tuple[Tensor, Tensor]:
    """The batch's images, each under its drawn transformation (grouped by transformation)."""
    groups = [(batch[drawn == t], t) for t in range(len(TRANSFORMS)) if (drawn == t).any()]
    return (torch.cat([transform(images, t) for images, t in groups]),
            torch.cat([torch.full((len(images),), t, device=batch.device) for images, t in groups]))


def transformation_score(net: nn.Module, images: Tensor) -> Tensor:
    """GEOM's score (N,) in float64: minus the summed log-probability of the right transformation
    over every transformation of each image (the graph an exported detector traces too)."""
    right = [F.log_softmax(net(transform(images, t)).float(), dim=1)[:, t] for t in range(len(TRANSFORMS))]
    return -torch.stack(right).double().sum(dim=0)


@torch.no_grad()
def transformation_scores(net: nn.Module, images: Tensor, chunk: int = 1000) -> Tensor:
    """:func:`transformation_score` of many images, ``chunk`` at a time, on the network's device."""
    check_square(images)
    device = next(net.parameters()).device
    return torch.cat([transformation_score(net, part.to(device)).cpu() for part in images.split(chunk)])
