"""Seed 3's convolutional variational autoencoder (003_cc967e401ad40983.txt)."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..registry import register_model, register_preset
from .base import AEOutput, Autoencoder, Generative
from .blocks import ImageConv2d, activation, check_positive


@register_model(
    "vae",
    "seed-3 convolutional VAE: conv 32-64s2-64-64, dense 32, 2-D latent; summed ELBO (beta=1)",
    train=dict(loss="bce", optimizer="adam", lr=1e-3, batch_size=128, epochs=30),
    family="vae",
    converters={"hidden": lambda width: (width,) if isinstance(width, int) else width},
)
class ConvVAE(Autoencoder, Generative):
    """Kingma & Welling, Auto-Encoding Variational Bayes (https://arxiv.org/abs/1312.6114), as seed 3 builds it.

    Encoder: 3x3 conv 32, 3x3 conv 64 stride 2, 3x3 conv 64, 3x3 conv 64 (ReLU, 'same'), flatten,
    dense ``hidden`` (32) + ReLU, then two dense heads: ``z_mean`` and ``z_log_var`` (``latent_dim`` each).
    Decoder: dense back to the pre-flatten shape + ReLU, reshape, 3x3 Conv2DTranspose 32 stride 2
    + ReLU, 3x3 conv to the input channels with a sigmoid.

    Sampling is ``mean + exp(0.5 * log_var) * eps``. The seed writes ``exp(z_log_var) * eps``
    while its KL term treats ``z_log_var`` as the log-variance; we follow the KL term, which is
    the standard parameterisation. ``encode`` returns the mean (the deterministic code used by
    the latent tools); ``forward`` samples while training and uses the mean in eval mode.
    """

    def __init__(
        self,
        in_channels: int = 1,
        in_size: int = 28,
        latent_dim: int = 2,
        hidden: tuple[int, ...] = (32,),
        act: str = "relu",
    ) -> None:
        super().__init__()
        check_positive(in_channels=in_channels, in_size=in_size, latent_dim=latent_dim, hidden=hidden)
        if in_size % 2:
            raise ValueError(f"input size {in_size} must be even (one stride-2 conv and its transpose)")
        self.input_shape = (in_channels, in_size, in_size)
        self.latent_dim = latent_dim
        self.inner = (64, in_size // 2, in_size // 2)
        widths = [math.prod(self.inner), *hidden]  # the dense layers between the convs and the two heads
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 32, 3, padding=1),
            activation(act),
            nn.Conv2d(32, 64, 3, stride=2, padding=1),
            activation(act),
            nn.Conv2d(64, 64, 3, padding=1),
            activation(act),
            nn.Conv2d(64, 64, 3, padding=1),
            activation(act),
            nn.Flatten(),
            *(layer for a, b in zip(widths, widths[1:]) for layer in (nn.Linear(a, b), activation(act))),
        )
        self.to_mean = nn.Linear(widths[-1], latent_dim)
        self.to_logvar = nn.Linear(widths[-1], latent_dim)
        self.expand = nn.Sequential(nn.Linear(latent_dim, math.prod(self.inner)), activation(act))
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(64, 32, 3, stride=2, padding=1, output_padding=1),
            activation(act),
            ImageConv2d(32, in_channels, 3, padding=1),
        )

    def posterior(self, x: Tensor) -> tuple[Tensor, Tensor]:  # (B, C, H, W) -> 2 x (B, latent)
        h = self.features(x)
        return self.to_mean(h), self.to_logvar(h)

    def _encode(self, x: Tensor) -> Tensor:  # (B, C, H, W) -> (B, latent)
        return self.posterior(x)[0]

    def _decode_logits(self, z: Tensor) -> Tensor:  # (B, latent) -> (B, C, H, W)
        return self.decoder(self.expand(z).view(-1, *self.inner))

    def _forward(self, x: Tensor) -> AEOutput:
        mean, logvar = self.posterior(x)
        z = mean + torch.exp(0.5 * logvar) * torch.randn_like(mean) if self.training else mean
        logits = self._decode_logits(z)
        return AEOutput(logits=logits, z=z, mean=mean, logvar=logvar)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None, labels: Tensor | int | None = None) -> Tensor:
        """``n`` new images decoded from the prior N(0, I): (n, C, H, W) in [0, 1]."""
        device = next(self.parameters()).device
        z = torch.randn(n, self.latent_dim, generator=generator).to(device)
        return self.decode(z, labels)

    def decode_latent(self, z: Tensor, labels: Tensor | int | None = None) -> Tensor:
        return self.decode(z, labels)


register_preset(
    "vae-seed",
    "vae",
    "seed 3's loss: per-pixel mean BCE + 5e-4 x mean KL term, RMSprop, batch 16",
    train=dict(loss="bce", optimizer="rmsprop", lr=1e-3, batch_size=16, epochs=10, kl_form="seed", kl_weight=5e-4),
)
