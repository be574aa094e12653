"""Regularised autoencoders (RAE-L2, Ghosh et al. 2020): reconstruction per image, plus
``code_weight`` x half the code's squared norm and ``decoder_weight`` x the squared norm of the
decoder's weights; they draw new images from a Gaussian mixture fitted to their training codes
(kept in the run folder as sampler-gmm-10.safetensors)."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from ..config import TrainSettings
from ..nets.base import AEOutput
from ..values import setting
from .autoencoder import AutoencoderSettings
from .generative import GenerativeAutoencoderFamily, PerImageSystem


@dataclass(frozen=True)
class RAESettings(AutoencoderSettings):
    """An autoencoder's settings and the weights of its two L2 penalties."""

    code_weight: float = setting(0.01, "weight of half the code's squared L2 norm (beta in the paper)", low=0)
    decoder_weight: float = setting(1e-3, "weight of the squared L2 norm of the decoder's weights", low=0)


class RAESystem(PerImageSystem):
    """Logs ``recon``, ``code`` (half the squared code norm) and ``decoder`` (the weights' squared norm)."""

    def regularise(self, out: AEOutput) -> tuple[Tensor, dict[str, Tensor]]:
        code = 0.5 * out.z.float().pow(2).sum(1).mean()
        decoder = sum(w.float().pow(2).sum() for w in self.model.decoder_weights())
        return self.settings.code_weight * code + self.settings.decoder_weight * decoder, {
            "code": code,
            "decoder": decoder,
        }


class RAEFamily(GenerativeAutoencoderFamily):
    name = "rae"
    system = RAESystem
    settings = RAESettings
    val_metrics = ("val_loss", "val_recon", "val_code")

    def loss_parts(self, settings: TrainSettings) -> dict[str, str]:
        return {"recon": "reconstruction term", "code": "half the squared code norm"}
