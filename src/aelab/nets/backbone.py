"""The convolutional encoder and decoder the zoo's families share (beta-VAE, WAE, RAE, AAE; the
VQ-VAE keeps the grid): two 4x4 stride-2 convolutions down to a quarter of the side, a dense code
of ``latent_dim`` (16: pythae's benchmark setting for MNIST), and the mirror image up. Small on
purpose: every family of the zoo table trains the same network for the same time on a CPU."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .base import Autoencoder, Generative
from .blocks import activation, check_positive


def down(in_channels: int, channels: tuple[int, ...], act: str) -> nn.Sequential:
    """4x4 stride-2 convolutions, one per width: the side halves at each."""
    widths = (in_channels, *channels)
    return nn.Sequential(
        *(
            layer
            for a, b in zip(widths, widths[1:])
            for layer in (nn.Conv2d(a, b, 4, stride=2, padding=1), activation(act))
        )
    )


def up(channels: tuple[int, ...], out_channels: int, act: str) -> nn.Sequential:
    """4x4 stride-2 transposed convolutions back up (the last one to the image's channels, as logits)."""
    widths = (*reversed(channels), out_channels)
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(widths, widths[1:])):
        layers.append(nn.ConvTranspose2d(a, b, 4, stride=2, padding=1))
        if i < len(widths) - 2:
            layers.append(activation(act))
    return nn.Sequential(*layers)


def check_side(in_size: int, channels: tuple[int, ...]) -> int:
    """The side after the stride-2 convolutions (the input side must halve evenly at each)."""
    step = 2 ** len(channels)
    if in_size % step:
        raise ValueError(f"input size {in_size} must be a multiple of {step} ({len(channels)} stride-2 convs)")
    return in_size // step


class DenseCode(Autoencoder):
    """Encoder: ``down`` (32, 64 channels), flatten, dense ``latent_dim``. Decoder: dense back,
    reshape, ``up``. Subclasses add a prior, a regulariser's parts or a second head."""

    def __init__(
        self,
        in_channels: int = 1,
        in_size: int = 28,
        latent_dim: int = 16,
        channels: tuple[int, ...] = (32, 64),
        act: str = "relu",
    ) -> None:
        super().__init__()
        check_positive(in_channels=in_channels, in_size=in_size, latent_dim=latent_dim, channels=channels)
        side = check_side(in_size, channels)
        self.input_shape = (in_channels, in_size, in_size)
        self.latent_dim = latent_dim
        self.inner = (channels[-1], side, side)
        self.features = nn.Sequential(down(in_channels, channels, act), nn.Flatten())
        self.to_code = self.head(math.prod(self.inner), latent_dim)
        self.expand = nn.Sequential(nn.Linear(latent_dim, math.prod(self.inner)), activation(act))
        self.decoder = up(channels, in_channels, act)

    def head(self, features: int, latent_dim: int) -> nn.Module:
        """The layer from the encoder's features to the code (a VAE's gives twice the width)."""
        return nn.Linear(features, latent_dim)

    def _encode(self, x: Tensor) -> Tensor:  # (B, C, H, W) -> (B, latent)
        return self.to_code(self.features(x))

    def _decode_logits(self, z: Tensor) -> Tensor:  # (B, latent) -> (B, C, H, W)
        return self.decoder(self.expand(z).view(-1, *self.inner))


class NormalPrior(Generative):
    """A code with the prior N(0, I): new images are decoded standard-normal draws."""

    latent_dim: int

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None, labels: Tensor | int | None = None) -> Tensor:
        """``n`` new images decoded from N(0, I): (n, C, H, W) in [0, 1]."""
        device = next(self.parameters()).device
        return self.decode(torch.randn(n, self.latent_dim, generator=generator).to(device), labels)

    def decode_latent(self, z: Tensor, labels: Tensor | int | None = None) -> Tensor:
        return self.decode(z, labels)
