"""Wasserstein autoencoders (WAE-MMD, Tolstikhin et al. 2018): reconstruction per image plus
``mmd_weight`` x the maximum mean discrepancy between the batch's codes and as many draws of
the prior N(0, I), with the paper's inverse multiquadratic kernel over several scales."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..config import TrainSettings
from ..nets.base import AEOutput
from ..values import setting
from .autoencoder import AutoencoderSettings
from .generative import GenerativeAutoencoderFamily, PerImageSystem

SCALES = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)  # the paper's code: the kernel's C at these multiples of 2 x dim


@dataclass(frozen=True)
class WAESettings(AutoencoderSettings):
    """An autoencoder's settings and the weight of the MMD between the codes and the prior."""

    mmd_weight: float = setting(10.0, "weight of the MMD to the prior (lambda; 10: the paper's MNIST choice)", low=0)


def imq_mmd(codes: Tensor, prior: Tensor) -> Tensor:
    """The unbiased MMD^2 estimate between two samples (B, D) under k(x, y) = C / (C + |x - y|^2),
    summed over the scales C = s x 2 x D (the prior's expected squared distance)."""
    n, dim = codes.shape
    both = torch.cat([codes, prior])
    distances = torch.cdist(both, both).pow(2)
    kernel = sum(c / (c + distances) for c in (s * 2 * dim for s in SCALES))
    within = (
        kernel[:n, :n].sum() - kernel[:n, :n].diagonal().sum() + kernel[n:, n:].sum() - kernel[n:, n:].diagonal().sum()
    )
    return within / (n * (n - 1)) - 2 * kernel[:n, n:].mean()


class WAESystem(PerImageSystem):
    """Logs ``recon`` and ``mmd``."""

    def regularise(self, out: AEOutput) -> tuple[Tensor, dict[str, Tensor]]:
        codes = out.z.float()
        mmd = imq_mmd(codes, torch.randn_like(codes)) if len(codes) > 1 else codes.sum() * 0
        return self.settings.mmd_weight * mmd, {"mmd": mmd}


class WAEFamily(GenerativeAutoencoderFamily):
    name = "wae"
    system = WAESystem
    settings = WAESettings
    val_metrics = ("val_loss", "val_recon", "val_mmd")

    def loss_parts(self, settings: TrainSettings) -> dict[str, str]:
        return {"recon": "reconstruction term", "mmd": "MMD to the prior (unweighted)"}
