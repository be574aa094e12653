"""Losses shared by every model family."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .errors import opt


class _MeanBCEWithLogits(torch.autograd.Function):
    """Mean binary cross-entropy on logits, ``max(x, 0) - x*y + log(1 + exp(-|x|))``, with the
    gradient ``(sigmoid(x) - y) / N`` written out.

    Same loss (to float rounding: ``log(1 + e)`` drops terms below 6e-8 a pixel that ``log1p``
    keeps) and gradient as ``F.binary_cross_entropy_with_logits``, which goes through
    ``log_sigmoid``, a kernel PyTorch's CPU build does not vectorise: about 1 ms a call and 3-5%
    of the seed-1 training step at batch 200 in the speed benchmark's profiles before this form
    (benchmarks/results/speed.md, ``aten::log_sigmoid_forward``).
    """

    @staticmethod
    def forward(ctx, logits: Tensor, target: Tensor) -> Tensor:
        ctx.save_for_backward(logits, target)
        return (logits.clamp(min=0) - logits * target + torch.exp(-logits.abs()).add_(1).log_()).mean()

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:
        logits, target = ctx.saved_tensors
        return (torch.sigmoid(logits) - target).mul_(grad / logits.numel()), None


def bce_with_logits(logits: Tensor, target: Tensor) -> Tensor:
    """Mean per-pixel binary cross-entropy of ``target`` under ``sigmoid(logits)``, in fp32."""
    if target.requires_grad:  # the written-out gradient is the logits' only
        return F.binary_cross_entropy_with_logits(logits.float(), target)
    return _MeanBCEWithLogits.apply(logits.float(), target)


def reconstruction_loss(logits: Tensor, target: Tensor, loss: str, output: str = "sigmoid") -> Tensor:
    """Mean per-pixel reconstruction loss.

    ``bce``: binary cross-entropy on the logits (numerically stable; seed 1's
    ``sigmoid_cross_entropy_with_logits``). ``mse``: squared error of the output image.
    """
    if loss == "bce":
        if output != "sigmoid":
            raise ValueError(f"binary cross-entropy needs a model with a sigmoid output; use {opt('loss', 'mse')}")
        return bce_with_logits(logits, target)
    if loss == "mse":
        logits = logits.float()  # the output and its error in fp32, whatever precision made the logits
        image = logits.sigmoid() if output == "sigmoid" else logits
        return F.mse_loss(image, target)
    raise ValueError(f"unknown loss {loss!r}; choose bce or mse")


def l1_activity(z: Tensor) -> Tensor:
    """Keras' ``activity_regularizer=l1``: sum of absolute code values, averaged over the batch."""
    return z.float().abs().flatten(1).sum(1).mean()


def kl_to_standard_normal(mean: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(mean, exp(logvar)) || N(0, I)) per latent dimension, (B, D), in nats."""
    return -0.5 * (1 + logvar - mean.pow(2) - logvar.exp())


def vae_loss(
    logits: Tensor, target: Tensor, mean: Tensor, logvar: Tensor, kl_form: str, kl_weight: float
) -> tuple[Tensor, Tensor, Tensor]:
    """(loss, reconstruction term, KL term), averaged over the batch.

    ``elbo``: the negative ELBO per image, BCE summed over pixels + ``kl_weight`` x KL summed over
    latent dimensions (beta-VAE, Higgins et al. 2017, when ``kl_weight`` != 1). ``seed``: seed 3's
    ``mean(BCE over pixels) - 5e-4 * mean(1 + log_var - mean^2 - exp(log_var))``, i.e. the
    per-pixel mean BCE plus ``kl_weight`` x 2 x the per-dimension mean KL.
    """
    bce = F.binary_cross_entropy_with_logits(logits.float(), target, reduction="none").flatten(1)
    kl = kl_to_standard_normal(mean.float(), logvar.float())
    if kl_form == "seed":
        recon, kl_term = bce.mean(1), 2 * kl.mean(1)
    else:
        recon, kl_term = bce.sum(1), kl.sum(1)
    return (recon + kl_weight * kl_term).mean(), recon.mean(), kl_term.mean()
