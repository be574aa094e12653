"""What the generative autoencoders of the zoo share (beta-VAE, VQ-VAE, WAE, RAE, AAE): an
autoencoder's metrics and training, a loss counted per image (nats for ``bce``, as the VAE's
-ELBO, so the regularisers' weights read as in their papers), and the quality of samples drawn
from the model's prior, or from a Gaussian mixture over its training codes where it has none
(:mod:`aelab.samplers`; the fitted mixture is kept in the run folder)."""

from __future__ import annotations

import math
from typing import Any

from torch import Tensor

from ..config import EvalSettings, TrainSettings
from ..data import ImageData
from ..losses import reconstruction_loss
from ..nets.base import AEOutput, Autoencoder, Generative
from ..samplers import mixture_of
from .autoencoder import AutoencoderFamily, AutoencoderSystem
from .base import RunFolder, printable
from .images import sample_metrics, sample_report


class PerImageSystem(AutoencoderSystem):
    """An autoencoder trained on its reconstruction loss summed over each image's pixels (mean
    over the batch), plus what ``regularise`` adds; each term logged by name."""

    def compute_loss(
        self, out: AEOutput, targets: Tensor, labels: Tensor | None = None
    ) -> tuple[Tensor, dict[str, Tensor]]:
        pixels = math.prod(targets.shape[1:])
        recon = reconstruction_loss(out.logits, targets, self.settings.loss, self.model.output) * pixels
        penalty, logged = self.regularise(out)
        return recon + penalty, {"recon": recon, **logged}

    def regularise(self, out: AEOutput) -> tuple[Tensor | float, dict[str, Tensor]]:
        """The family's own penalty (added to the loss) and its parts worth logging, by name."""
        return 0.0, {}


class GenerativeAutoencoderFamily(AutoencoderFamily):
    """Autoencoders that draw new images: the autoencoder's metrics, and the Fréchet distance of
    samples from the prior (or from a mixture fitted to the training codes)."""

    system = PerImageSystem
    headline = ("test_rmse", "pca_rmse", "fd_classifier")
    mixture_components = 10

    def loss_label(self, settings: TrainSettings) -> str:
        unit = "nats" if settings.loss == "bce" else "squared error"
        return f"loss per image ({unit}): reconstruction + regularisers"

    def loss_metric(self, settings: TrainSettings) -> str | None:
        return None  # a sum per image, not test_bce

    def curve_lines(self, settings: TrainSettings, metrics: dict) -> list[tuple[float, str]]:
        """PCA's test BCE at the code's size, per image as the loss is (where the code is continuous
        and smaller than the image: PCA is no floor otherwise)."""
        pca, pixels = metrics.get("pca_bce"), metrics.get("image_pixels")
        if settings.loss != "bce" or metrics.get("rmse_vs_pca") is None or not isinstance(pca, float) or not pixels:
            return []
        value = pca * pixels
        return [(value, f"PCA, {metrics['code_size']} components (test reconstruction): {value:.1f}")]

    def draw(self, run: RunFolder, model: Autoencoder, data: ImageData, keep: bool):
        """How samples are drawn: the prior, or a mixture over the training codes (the run's, kept
        there with ``keep``; an evaluation that writes nothing fits its own)."""
        if isinstance(model, Generative):
            return model.sample
        mixture, _ = mixture_of(model, run.path, lambda: data.train, self.mixture_components, keep=keep)
        return lambda n, generator: mixture.sample(model, n, generator)

    def evaluate(
        self, run: RunFolder, model: Autoencoder, data: ImageData, write_figures: bool, options: EvalSettings
    ) -> dict[str, Any]:
        metrics = super().evaluate(run, model, data, write_figures, options)
        metrics["image_pixels"] = math.prod(data.test.shape[1:])
        metrics.update(
            sample_metrics(run, model, data, write_figures, options, draw=self.draw(run, model, data, write_figures))
        )
        metrics["sampler"] = "prior" if isinstance(model, Generative) else f"gmm ({self.mixture_components})"
        return metrics

    def report(self, metrics: dict[str, Any]) -> list[str]:
        lines = super().report(metrics)
        if metrics.get("fd_classifier") is not None:
            lines.append(f"  samples drawn from: {metrics['sampler']}")
        return lines + sample_report(metrics, printable(metrics))
