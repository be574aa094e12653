"""beta-VAEs: a VAE's negative ELBO with the KL term weighted by ``beta`` (Higgins et al. 2017),
or, with ``decomposition = "tc"``, only its total-correlation part (beta-TC-VAE, Chen et al.
2018, estimated by minibatch-weighted sampling); measured as VAEs are (ELBO and IWAE bounds at
beta = 1, sample quality)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import torch
from torch import Tensor

from ..config import Dimension, TrainSettings
from ..errors import AelabError, opt
from ..losses import kl_to_standard_normal
from ..nets.base import AEOutput
from ..values import setting
from .autoencoder import AutoencoderSettings
from .generative import PerImageSystem
from .vae import VAEFamily

if TYPE_CHECKING:
    from ..registry import ModelEntry

Decomposition = Literal["kl", "tc"]


@dataclass(frozen=True)
class BetaVAESettings(AutoencoderSettings):
    """An autoencoder's settings and the weight of the KL term (or of its total correlation)."""

    beta: float = setting(
        4.0,
        "weight of the KL term (1: a plain VAE; 4: Higgins et al. 2017's choice for disentangled codes)",
        low=0,
    )
    decomposition: Decomposition = setting(
        "kl", "kl (beta x the whole KL term) or tc (beta-TC-VAE: beta x its total correlation only)"
    )


class BetaVAESystem(PerImageSystem):
    """The reconstruction in nats per image plus beta x KL (or the KL's three parts, the total
    correlation weighted by beta); logs ``recon`` and ``kl`` (and ``tc``)."""

    @classmethod
    def check(cls, model_name: str, settings: BetaVAESettings, explicit: set[str]) -> None:
        super().check(model_name, settings, explicit)
        if settings.loss != "bce":
            raise AelabError(f"{model_name}: VAEs here use a Bernoulli decoder: train them with {opt('loss', 'bce')}")

    def regularise(self, out: AEOutput) -> tuple[Tensor, dict[str, Tensor]]:
        mean, logvar = out.mean.float(), out.logvar.float()
        kl = kl_to_standard_normal(mean, logvar).sum(1).mean()
        if self.settings.decomposition == "kl":
            return self.settings.beta * kl, {"kl": kl}
        mutual, tc, dimensions = total_correlation(out.z.float(), mean, logvar, self.images())
        return mutual + self.settings.beta * tc + dimensions, {"kl": kl, "tc": tc}

    def images(self) -> int:
        """How many training images there are (the sampling weight of beta-TC-VAE's estimate)."""
        trainer = self._trainer
        if trainer is None or not trainer.num_training_batches or math.isinf(trainer.num_training_batches):
            return 60_000  # outside a fit (a test's single step): Fashion-MNIST's training set
        return int(trainer.num_training_batches * self.settings.batch_size)


def total_correlation(z: Tensor, mean: Tensor, logvar: Tensor, images: int) -> tuple[Tensor, Tensor, Tensor]:
    """The KL term's parts (Chen et al. 2018, eq. 2), each per image: the index-code mutual
    information, the total correlation and the dimension-wise KL, by minibatch-weighted sampling
    (q(z) estimated from the batch's posteriors, each weighted as 1 / (batch x ``images``))."""
    b = len(z)
    log_density = -0.5 * (math.log(2 * math.pi) + logvar + (z.unsqueeze(1) - mean).pow(2) / logvar.exp())  # (B, B, D)
    weight = math.log(b * images)
    log_qz = torch.logsumexp(log_density.sum(2), 1) - weight
    log_product = (torch.logsumexp(log_density, 1) - weight).sum(1)
    log_qz_x = log_density.diagonal(dim1=0, dim2=1).sum(0)
    log_pz = (-0.5 * (math.log(2 * math.pi) + z.pow(2))).sum(1)
    return (log_qz_x - log_qz).mean(), (log_qz - log_product).mean(), (log_product - log_pz).mean()


class BetaVAEFamily(VAEFamily):
    """beta-VAEs: the VAE family's metrics (its bounds are of the model, whatever beta trained it)."""

    name = "beta-vae"
    system = BetaVAESystem
    settings = BetaVAESettings
    val_metrics = ("val_loss", "val_recon", "val_kl")

    def loss_label(self, settings: TrainSettings) -> str:
        what = "total correlation" if settings.decomposition == "tc" else "KL term"
        return f"reconstruction + {settings.beta:g} x {what} (nats per image)"

    def loss_parts(self, settings: TrainSettings) -> dict[str, str]:
        return {"recon": "reconstruction term", "kl": "KL term (unweighted)", "tc": "total correlation"}

    def search_space(self, entry: ModelEntry) -> list[Dimension]:
        return [d for d in super().search_space(entry) if d.name != "kl_weight"] + [
            Dimension("beta", 0.5, 16.0, log=True)
        ]
