"""Losses shared by every model family."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def reconstruction_loss(logits: Tensor, target: Tensor, loss: str, output: str = "sigmoid") -> Tensor:
    """Mean per-pixel reconstruction loss.

    ``bce``: binary cross-entropy on the logits (numerically stable; seed 1's
    ``sigmoid_cross_entropy_with_logits``). ``mse``: squared error of the output image.
    """
    if loss == "bce":
        if output != "sigmoid":
            raise ValueError("binary cross-entropy needs a model with a sigmoid output; use --loss mse")
        return F.binary_cross_entropy_with_logits(logits.float(), target)
    if loss == "mse":
        image = logits.sigmoid() if output == "sigmoid" else logits
        return F.mse_loss(image.float(), target)
    raise ValueError(f"unknown loss {loss!r}; choose bce or mse")


def l1_activity(z: Tensor) -> Tensor:
    """Keras' ``activity_regularizer=l1``: sum of absolute code values, averaged over the batch."""
    return z.float().abs().flatten(1).sum(1).mean()
