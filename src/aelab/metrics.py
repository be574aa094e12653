"""Reconstruction metrics and the PCA floor every autoencoder must beat."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor
from torchmetrics.image import PeakSignalNoiseRatio, StructuralSimilarityIndexMeasure

from .accel import autocast
from .nets.base import Autoencoder


@torch.inference_mode()
def reconstruct(model: Autoencoder, inputs: Tensor, batch_size: int = 1000,
                precision: str = "32") -> tuple[Tensor, Tensor]:
    """Reconstructions and codes for ``inputs``, batch by batch, on the model's device.

    Channels-last always (same numbers, faster convolutions); ``precision="bf16-mixed"`` adds
    autocast for the `reconstruct`/`encode` commands. Metrics are measured with the fp32 default.
    """
    device = next(model.parameters()).device
    model.eval().to(memory_format=torch.channels_last)
    recons, codes = [], []
    with autocast(precision, device.type):
        for batch in inputs.split(batch_size):
            out = model(batch.to(device).contiguous(memory_format=torch.channels_last))
            recons.append(out.recon.float().cpu())
            codes.append(out.z.float().cpu())
    model.to(memory_format=torch.contiguous_format)
    return torch.cat(recons), torch.cat(codes)


def error_metrics(recon: Tensor, target: Tensor) -> dict[str, float]:
    """RMSE, MSE and per-pixel binary cross-entropy (Keras' ``binary_crossentropy``) in [0, 1] units."""
    mse = F.mse_loss(recon, target).item()
    bce = F.binary_cross_entropy(recon.clamp(1e-7, 1 - 1e-7), target).item()
    return {"rmse": math.sqrt(mse), "mse": mse, "bce": bce}


def image_metrics(recon: Tensor, target: Tensor) -> dict[str, float]:
    """:func:`error_metrics` plus PSNR and SSIM, for (N, C, H, W) images in [0, 1]."""
    psnr, ssim = PeakSignalNoiseRatio(data_range=1.0), StructuralSimilarityIndexMeasure(data_range=1.0)
    for r, t in zip(recon.clamp(0, 1).split(1000), target.split(1000)):
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
    mean, basis = pca_fit(train, components)
    x = inputs.flatten(1).double() - mean
    recon = ((x @ basis.T) @ basis + mean).clamp(0, 1)
    return math.sqrt(F.mse_loss(recon, targets.flatten(1).double()).item())
