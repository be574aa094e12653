"""Adversarial autoencoders (Makhzani et al. 2016): reconstruction per image, plus
``adversarial_weight`` x the encoder's loss at fooling the discriminator on its codes; the
discriminator learns to tell codes from prior draws in the same step (its own loss reaches
only its own weights, and the encoder's loss only the encoder's: one optimiser, one backward)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.func import functional_call

from ..config import TrainSettings
from ..nets.base import AEOutput
from ..values import setting
from .autoencoder import AutoencoderSettings
from .generative import GenerativeAutoencoderFamily, PerImageSystem


@dataclass(frozen=True)
class AAESettings(AutoencoderSettings):
    """An autoencoder's settings and the weight of the encoder's adversarial loss."""

    adversarial_weight: float = setting(10.0, "weight of the encoder's loss at fooling the discriminator", low=0)


class AAESystem(PerImageSystem):
    """Logs ``recon``, ``fool`` (the encoder's adversarial loss) and ``critic`` (the discriminator's)."""

    def regularise(self, out: AEOutput) -> tuple[Tensor, dict[str, Tensor]]:
        model, codes = self.model, out.z.float()
        frozen = {name: p.detach() for name, p in model.critic.named_parameters()}  # the encoder's view: D fixed
        fool = F.binary_cross_entropy_with_logits(
            functional_call(model.critic, frozen, (codes,)).squeeze(-1), torch.ones(len(codes), device=codes.device)
        )
        judged = model.judge(torch.cat([codes.detach(), torch.randn_like(codes)]))
        truth = torch.cat([torch.zeros(len(codes)), torch.ones(len(codes))]).to(judged.device)
        critic = F.binary_cross_entropy_with_logits(judged, truth)
        return self.settings.adversarial_weight * fool + critic, {"fool": fool, "critic": critic}


class AAEFamily(GenerativeAutoencoderFamily):
    name = "aae"
    system = AAESystem
    settings = AAESettings
    val_metrics = ("val_loss", "val_recon", "val_fool", "val_critic")

    def loss_parts(self, settings: TrainSettings) -> dict[str, str]:
        return {"recon": "reconstruction term"}
