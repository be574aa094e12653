"""The interface every autoencoder shares, so one system trains them all and one test sweeps them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn


@dataclass
class AEOutput:
    """What every autoencoder's forward returns."""

    logits: Tensor  # (B, C, H, W) reconstruction before the output activation
    z: Tensor  # the code, (B, ...) as the model lays it out (a VAE's sampled z while training)
    mean: Tensor | None = None  # VAEs: the posterior's mean, (B, latent)
    logvar: Tensor | None = None  # VAEs: the posterior's log-variance, (B, latent)
    output: Literal["sigmoid", "linear"] = "sigmoid"  # the model's output activation

    @property
    def recon(self) -> Tensor:
        """(B, C, H, W) reconstruction in image space, computed when asked: training on BCE
        needs only the logits."""
        return torch.sigmoid(self.logits) if self.output == "sigmoid" else self.logits


class Autoencoder(nn.Module):
    """An encoder and a decoder around a code.

    Subclasses set ``input_shape`` (C, H, W) and implement ``encode`` and ``decode_logits``.
    ``output`` is ``"sigmoid"`` for models whose outputs are probabilities per pixel (trained
    with BCE on the logits or MSE on the probabilities), ``"linear"`` for models that regress
    pixel values directly (the CNTK deconvolution example, trained on squared error).
    """

    input_shape: tuple[int, int, int]
    output: Literal["sigmoid", "linear"] = "sigmoid"
    # False where forward passes the decoder more than the code (the unpooling model's switches)
    decodes_from_code_alone: bool = True

    def encode(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def decode_logits(self, z: Tensor) -> Tensor:
        raise NotImplementedError

    def to_image(self, logits: Tensor) -> Tensor:
        return torch.sigmoid(logits) if self.output == "sigmoid" else logits

    def decode(self, z: Tensor) -> Tensor:
        """Images in [0, 1] (linear-output models may overshoot slightly) from codes."""
        return self.to_image(self.decode_logits(z))

    def forward(self, x: Tensor) -> AEOutput:
        z = self.encode(x)
        logits = self.decode_logits(z)
        return AEOutput(logits=logits, z=z, output=self.output)

    @torch.no_grad()
    def code_shape(self) -> tuple[int, ...]:
        """Shape of one image's code, found by encoding a blank input."""
        probe = torch.zeros(1, *self.input_shape, device=next(self.parameters()).device)
        return tuple(self.encode(probe).shape[1:])

    def code_size(self) -> int:
        return int(torch.tensor(self.code_shape()).prod())
