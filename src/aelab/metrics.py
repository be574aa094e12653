"""Reconstruction metrics and the PCA floor every autoencoder must beat."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor
from torchmetrics.image import PeakSignalNoiseRatio, StructuralSimilarityIndexMeasure

from .accel import autocast, channels_last
from .limits import INFERENCE_BATCH
from .losses import kl_to_standard_normal
from .nets.base import Autoencoder


@torch.inference_mode()
def reconstruct(
    model: Autoencoder,
    inputs: Tensor,
    batch_size: int = INFERENCE_BATCH,
    precision: str = "32",
    labels: Tensor | int | None = None,
) -> tuple[Tensor, Tensor]:
    """Reconstructions and codes for ``inputs`` (and their ``labels``, for a conditional model),
    batch by batch, on the model's device.

    Channels-last always (same numbers, faster convolutions; the model's own format is restored
    after); ``precision="bf16-mixed"`` adds autocast for the `reconstruct`/`encode` commands.
    Metrics are measured with the fp32 default.
    """
    device = next(model.parameters()).device
    model.eval()
    recons, codes = [], []
    with autocast(precision, device.type), channels_last(model):
        label_batches = labels.split(batch_size) if isinstance(labels, Tensor) else [labels] * len(inputs)
        for batch, batch_labels in zip(inputs.split(batch_size), label_batches):
            given = () if batch_labels is None else (batch_labels,)
            out = model(batch.to(device).contiguous(memory_format=torch.channels_last), *given)
            recons.append(out.recon.float().cpu())
            codes.append(out.z.float().cpu())
    return torch.cat(recons), torch.cat(codes)


def error_metrics(recon: Tensor, target: Tensor) -> dict[str, float]:
    """RMSE, MSE and per-pixel binary cross-entropy (Keras' ``binary_crossentropy``) in [0, 1] units."""
    mse = F.mse_loss(recon, target).item()
    bce = F.binary_cross_entropy(recon.clamp(1e-7, 1 - 1e-7), target).item()
    return {"rmse": math.sqrt(mse), "mse": mse, "bce": bce}


def image_metrics(recon: Tensor, target: Tensor) -> dict[str, float]:
    """:func:`error_metrics` plus PSNR and SSIM, for (N, C, H, W) images in [0, 1]."""
    psnr, ssim = PeakSignalNoiseRatio(data_range=1.0), StructuralSimilarityIndexMeasure(data_range=1.0)
    for r, t in zip(recon.clamp(0, 1).split(INFERENCE_BATCH), target.split(INFERENCE_BATCH)):
        psnr.update(r, t)
        ssim.update(r, t)
    return {**error_metrics(recon, target), "psnr": psnr.compute().item(), "ssim": ssim.compute().item()}


def pca_fit(train: Tensor, components: int) -> tuple[Tensor, Tensor]:
    """Mean and top principal directions (components, D) of flattened training images, exactly.

    Eigen-decomposes the smaller of the covariance (D x D) and Gram (N x N) matrices in float64.
    """
    x = train.flatten(1).double()
    mean = x.mean(0)
    x = x - mean
    n, d = x.shape
    components = min(components, n, d)
    if d <= n:
        _, vectors = torch.linalg.eigh(x.T @ x)
        basis = vectors[:, -components:].T
    else:
        values, vectors = torch.linalg.eigh(x @ x.T)
        top = vectors[:, -components:]
        basis = (x.T @ top / values[-components:].clamp_min(1e-12).sqrt()).T
    return mean, basis


def pca_rmse(train: Tensor, inputs: Tensor, targets: Tensor, components: int) -> float:
    """Test RMSE of PCA with ``components`` directions fitted on ``train``: project ``inputs``, compare to ``targets``.

    The reconstruction is clipped to the pixel range [0, 1], as every autoencoder's output is.
    """
    return pca_errors(train, inputs, targets, components)["rmse"]


def pca_errors(train: Tensor, inputs: Tensor, targets: Tensor, components: int) -> dict[str, float]:
    """:func:`pca_rmse`'s RMSE and the same reconstruction's binary cross-entropy per pixel
    (clipped to [1e-7, 1 - 1e-7]: PCA reaches 0 and 1 exactly), the losses an autoencoder trains on."""
    mean, basis = pca_fit(train, components)
    x = inputs.flatten(1).double() - mean
    recon = ((x @ basis.T) @ basis + mean).clamp(0, 1)
    target = targets.flatten(1).double()
    return {
        "rmse": math.sqrt(F.mse_loss(recon, target).item()),
        "bce": F.binary_cross_entropy(recon.clamp(1e-7, 1 - 1e-7), target).item(),
    }


@torch.inference_mode()
def vae_bounds(
    model,
    images: Tensor,
    samples: int = 100,
    batch_size: int = 100,
    seed: int = 0,
    labels: Tensor | None = None,
    on_batch: Callable[[], None] | None = None,
) -> dict[str, float]:
    """Test ELBO and the importance-weighted bound (IWAE, Burda et al. 2015, https://arxiv.org/abs/1509.00519)
    in nats per image, for a VAE with a Bernoulli decoder (a conditional one: given ``labels``,
    the bounds are on log p(x | label)).

    With ``k = samples`` draws z_k ~ q(z|x): ELBO = mean_k[log p(x|z_k)] - KL(q || p) (KL exact),
    IWAE = log mean_k exp(log p(x|z_k) + log p(z_k) - log q(z_k|x)), a tighter lower bound on
    log p(x) that approaches it as k grows.
    """
    generator = torch.Generator().manual_seed(seed)
    model.eval()
    totals = {"elbo": 0.0, "recon": 0.0, "kl": 0.0, "iwae": 0.0}
    label_batches = labels.split(batch_size) if labels is not None else [None] * len(images)
    with channels_last(model):  # float32 still (a bound in nats): channels-last halves the decoder's time on a CPU
        for x, y in zip(images.split(batch_size), label_batches):
            _bound_batch(model, x, y, samples, generator, totals)
            if on_batch is not None:
                on_batch()
    n = len(images)
    return {
        "test_elbo": totals["elbo"] / n,
        "test_recon_nats": totals["recon"] / n,
        "test_kl_nats": totals["kl"] / n,
        f"test_iwae_k{samples}": totals["iwae"] / n,
        "bound_images": n,
    }


def _bound_batch(
    model, x: Tensor, y: Tensor | None, samples: int, generator: torch.Generator, totals: dict[str, float]
) -> None:
    """One batch's share of :func:`vae_bounds`, added to ``totals``."""
    normal = torch.distributions.Normal(0.0, 1.0)
    given = () if y is None else (y,)
    mean, logvar = model.posterior(x.contiguous(memory_format=torch.channels_last), *given)
    std = torch.exp(0.5 * logvar)
    eps = torch.randn(samples, *mean.shape, generator=generator)
    z = mean + std * eps  # (k, B, D)
    repeated = () if y is None else (y.repeat(samples),)
    logits = model.decode_logits(z.flatten(0, 1), *repeated).reshape(samples, len(x), -1)
    log_px = -F.binary_cross_entropy_with_logits(logits, x.flatten(1).expand(samples, -1, -1), reduction="none").sum(
        -1
    )  # (k, B)
    log_pz = normal.log_prob(z).sum(-1)
    # no argument check: a diverged run's posterior may have collapsed (std 0); its bound is then
    # not finite, and recorded as such (null in metrics.json), not a crash
    log_qz = torch.distributions.Normal(mean, std, validate_args=False).log_prob(z).sum(-1)
    kl = kl_to_standard_normal(mean, logvar).sum(-1)  # (B,)
    totals["recon"] += (-log_px.mean(0)).sum().item()
    totals["kl"] += kl.sum().item()
    totals["elbo"] += (log_px.mean(0) - kl).sum().item()
    totals["iwae"] += (torch.logsumexp(log_px + log_pz - log_qz, 0) - math.log(samples)).sum().item()
