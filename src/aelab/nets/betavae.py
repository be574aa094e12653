"""The beta-VAE (Higgins et al. 2017, "beta-VAE: learning basic visual concepts with a constrained
variational framework", https://openreview.net/forum?id=Sy2fzU9gl): a VAE whose KL term is weighted
by beta > 1, trading reconstruction for a code whose dimensions vary independently; the total
correlation form (beta-TC-VAE, Chen et al. 2018, https://arxiv.org/abs/1802.04942) weights only
the part of the KL term that ties the dimensions together."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..registry import register_model
from .backbone import DenseCode, NormalPrior
from .base import AEOutput


@register_model(
    "beta-vae",
    "beta-VAE: the zoo's conv net with a Gaussian 16-D posterior; KL term x beta (4, Higgins et al.), "
    "or beta-TC-VAE's total-correlation weighting; samples from the prior",
    train=dict(loss="bce", optimizer="adam", lr=1e-3, batch_size=128, epochs=30),
    family="beta-vae",
)
class BetaVAE(DenseCode, NormalPrior):
    """:class:`~aelab.nets.backbone.DenseCode` with a posterior N(mean, exp(logvar)): ``forward``
    samples while training and uses the mean in eval mode; ``encode`` returns the mean."""

    def head(self, features: int, latent_dim: int) -> nn.Module:
        return nn.Linear(features, 2 * latent_dim)  # the mean and the log-variance

    def posterior(self, x: Tensor) -> tuple[Tensor, Tensor]:  # (B, C, H, W) -> 2 x (B, latent)
        return self.to_code(self.features(x)).chunk(2, dim=1)

    def _encode(self, x: Tensor) -> Tensor:
        return self.posterior(x)[0]

    def _forward(self, x: Tensor) -> AEOutput:
        mean, logvar = self.posterior(x)
        z = mean + torch.exp(0.5 * logvar) * torch.randn_like(mean) if self.training else mean
        return AEOutput(logits=self._decode_logits(z), z=z, mean=mean, logvar=logvar)
