"""Autoencoders (seeds 1 and 2, and aelab's own): trained on reconstruction, optionally denoising
and/or sparse; measured against PCA with the same number of components as the code."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import lightning as L
import torch
from torch import Tensor

from .. import figures, progress
from ..callbacks import ActivationLog, EmbeddingLog
from ..config import Dimension, EvalSettings, TrainSettings
from ..data import ImageData, add_noise, noisy_copy, split_validation
from ..errors import AelabError
from ..losses import l1_activity, reconstruction_loss
from ..metrics import error_metrics, image_metrics, pca_errors, reconstruct
from ..nets.base import AEOutput, Autoencoder, Conditional
from ..values import setting
from .base import RunFolder, ScheduledSystem, ScheduleSettings, check_finite, printable
from .images import ImageFamily, ImageSettings

if TYPE_CHECKING:
    from ..registry import ModelEntry


LossName = Literal["bce", "mse"]


@dataclass(frozen=True)
class AutoencoderSettings(ImageSettings, ScheduleSettings):
    """How an autoencoder trains: the image models' and scheduled families' settings, and its
    reconstruction loss, denoising, sparsity and what it logs while it trains."""

    loss: LossName = setting("bce", "reconstruction loss: bce (on logits) or mse")
    noise: float = setting(
        0.0, "denoising: Gaussian noise factor added to the inputs (clipped to [0, 1]); targets stay clean", low=0
    )
    sparsity: float = setting(0.0, "L1 penalty on the code (Keras' activity_regularizer)", low=0)
    log_activations: bool = setting(
        False,
        "save every layer's activations for a fixed validation batch each epoch "
        "(RUN/activations/epoch_NNN.npz) and their histograms to TensorBoard",
    )
    log_embeddings: bool = setting(
        False,
        "write the codes of fixed validation images, with labels and thumbnails, "
        "to TensorBoard's embedding projector each epoch",
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        for needs in ("log_activations", "log_embeddings"):
            if getattr(self, needs) and "tensorboard" not in self.logger:
                raise AelabError(
                    f"{needs} writes to TensorBoard: add tensorboard to logger (now {','.join(self.logger) or 'none'})"
                )


class AutoencoderSystem(ScheduledSystem):
    """Trains any :class:`Autoencoder` on reconstruction, optionally denoising and/or sparse.

    Denoising (seeds 1 and 2): training inputs get fresh Gaussian noise every step, targets stay
    clean; validation batches arrive already noised with a fixed seed, so ``val_loss`` is
    comparable across epochs. Sparsity (seed 2): ``sparsity`` times the L1 norm of the code.
    """

    # per optimiser name, options other than the learning rate: Adadelta's are Keras' (the seeds' programme examples)
    optimizer_options: dict[str, dict] = {"adadelta": {"rho": 0.95, "eps": 1e-7}}

    def __init__(self, model: Autoencoder, settings: AutoencoderSettings) -> None:
        super().__init__(model, settings)
        channels_last = bool(settings.channels_last)
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        if channels_last:
            self.model.to(memory_format=torch.channels_last)

    def _shared_step(self, batch: tuple[Tensor, ...], stage: str, batch_idx: int = 0) -> Tensor:
        inputs, targets, *labels = batch  # labels: for systems that need them
        if stage == "train" and self.settings.noise > 0:
            inputs = add_noise(targets, self.settings.noise)
        model_inputs = labels if isinstance(self.model, Conditional) else []  # a cvae takes the labels too
        out = self.model(inputs.contiguous(memory_format=self.memory_format), *model_inputs)
        loss, terms = self.compute_loss(out, targets, *labels)
        weights = self.term_weights()
        for name, term in out.terms.items():  # what the network adds (each logged by its name below)
            loss = loss + weights.get(name, 1.0) * term
        if self.settings.sparsity > 0:
            loss = loss + self.settings.sparsity * l1_activity(out.z)
        if stage == "train":
            check_finite(loss, self.current_epoch, batch_idx)  # before the update: the weights stay finite
        self._accumulate(stage, len(inputs), loss=loss, **terms, **out.terms, **out.stats)
        return loss

    def term_weights(self) -> dict[str, float]:
        """The weight of each loss term the network adds (``AEOutput.terms``; 1 where not named)."""
        return {}

    def compute_loss(
        self, out: AEOutput, targets: Tensor, labels: Tensor | None = None
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """The training objective and any named terms worth logging."""
        return reconstruction_loss(out.logits, targets, self.settings.loss, self.model.output), {}


class AutoencoderFamily(ImageFamily):
    """Autoencoders: reconstruction metrics beside the PCA floor at the same code size."""

    name = "autoencoder"
    system = AutoencoderSystem
    settings = AutoencoderSettings
    headline = ("test_rmse", "pca_rmse")
    TRAIN_ERROR_IMAGES = 10_000  # the first this many training images measure the training error

    def batch_options(self, settings: AutoencoderSettings) -> dict[str, Any]:
        """Noised inputs for a denoiser; every label for a model that takes labels (a cvae)."""
        return {"noise": settings.noise, "labelled": 1.0 if self.needs_labels else None}

    def callbacks(
        self, run: RunFolder, model: torch.nn.Module, data: Any, settings: AutoencoderSettings, val_batches: Any
    ) -> list[L.Callback]:
        """The image families' callbacks, and --log-activations (a fixed batch of 8 validation
        images, as seed 3's callback saves one) and --log-embeddings (the codes of up to 1,000,
        labelled where the data are)."""
        callbacks = super().callbacks(run, model, data, settings, val_batches)
        if not (settings.log_activations or settings.log_embeddings):
            return callbacks
        images, labels = val_batches.targets, val_batches.labels  # clean images (inputs may be noised)
        if labels is None and isinstance(data, ImageData) and data.train_labels is not None:
            labels = split_validation(data.train_labels, settings.val_fraction, seed=settings.seed)[1]
        conditional = isinstance(model, Conditional)
        if settings.log_activations:
            callbacks.append(ActivationLog(run.path / "activations", images[:8], labels[:8] if conditional else None))
        if settings.log_embeddings:
            callbacks.append(EmbeddingLog(images[:1000], None if labels is None else labels[:1000], conditional))
        return callbacks

    def loss_label(self, settings: TrainSettings) -> str:
        return {"bce": "binary cross-entropy (nats per pixel)", "mse": "mean squared error per pixel"}.get(
            settings.loss, "loss"
        )

    def loss_metric(self, settings: AutoencoderSettings) -> str | None:
        return "test_bce" if settings.loss == "bce" else None

    def curve_lines(self, settings: TrainSettings, metrics: dict) -> list[tuple[float, str]]:
        """PCA's test loss at the code's size, the floor to beat, in the training loss's own terms."""
        size = metrics.get("code_size")
        value = {
            "bce": metrics.get("pca_bce"),
            "mse": metrics["pca_rmse"] ** 2 if isinstance(metrics.get("pca_rmse"), float) else None,
        }.get(settings.loss)
        return [(value, f"PCA, {size} components (test): {value:.4g}")] if isinstance(value, float) else []

    def evaluate(
        self, run: RunFolder, model: Autoencoder, data: ImageData, write_figures: bool, options: EvalSettings
    ) -> dict[str, Any]:
        metrics = super().evaluate(run, model, data, write_figures, options)
        noise, name = run.config.train.noise, run.config.model
        test_inputs = noisy_copy(data.test, noise)
        conditional = isinstance(model, Conditional)
        test_labels, train_labels = (data.test_labels, data.train_labels) if conditional else (None, None)
        with progress.stage(f"test reconstructions, RMSE/BCE/PSNR/SSIM ({len(data.test):,} images)"):
            recon, codes = reconstruct(model, test_inputs, labels=test_labels)
            metrics.update({f"test_{k}": v for k, v in image_metrics(recon, data.test).items()})
        code_size = int(math.prod(codes.shape[1:]))
        # the training error tells over-fitting from under-fitting: a fixed share estimates it as well
        train = data.train[: self.TRAIN_ERROR_IMAGES]
        with progress.stage(f"training-set reconstruction error ({len(train):,} images)"):
            train_labels = None if train_labels is None else train_labels[: len(train)]
            train_recon, _ = reconstruct(model, noisy_copy(train, noise), labels=train_labels)
            metrics.update({f"train_{k}": v for k, v in error_metrics(train_recon, train).items()})
            metrics["train_error_images"] = len(train)
        del train_recon
        metrics["code_size"] = code_size
        with progress.stage(f"PCA with {code_size} components, the floor to beat"):
            pca = pca_errors(data.train, test_inputs, data.test, code_size)
            metrics["pca_rmse"], metrics["pca_bce"] = pca["rmse"], pca["bce"]
        # a code as large as the image makes PCA lossless on clean inputs: there is no floor to divide by
        metrics["rmse_vs_pca"] = metrics["test_rmse"] / metrics["pca_rmse"] if metrics["pca_rmse"] > 1e-6 else None
        metrics["mean_code_activation"] = codes.abs().mean().item()
        if noise > 0:
            metrics["noise"] = noise
            metrics["noisy_input_rmse"] = math.sqrt(torch.nn.functional.mse_loss(test_inputs, data.test).item())
        if write_figures:
            with progress.stage("figures: reconstructions, codes" + (", denoising" if noise > 0 else "")):
                figures.reconstructions(data.test, recon, run.path / "reconstructions.png", f"{name}: test images")
                figures.codes(test_inputs, codes, recon, run.path / "codes.png")
                if noise > 0:
                    figures.denoising(
                        data.test, test_inputs, recon, run.path / "denoising.png", f"{name}: noise factor {noise}"
                    )
        return metrics

    def report(self, metrics: dict[str, Any]) -> list[str]:
        lines, m = super().report(metrics), printable(metrics)
        if metrics["rmse_vs_pca"] is None:
            verdict = f"PCA with {metrics['code_size']} components is lossless here (the code is as large as the image)"
        else:
            beats = (metrics["test_rmse"] or float("inf")) < metrics["pca_rmse"]
            verdict = (
                f"{'beats' if beats else 'does not beat'} PCA with {metrics['code_size']} components "
                f"({m['rmse_vs_pca']:.2f}x)"
            )
        lines.append(f"  test_rmse {m['test_rmse']:.4f}   pca_rmse {m['pca_rmse']:.4f}   -> {verdict}")
        lines.append(
            f"  test_bce {m['test_bce']:.4f}   test_psnr {m['test_psnr']:.2f} dB   test_ssim {m['test_ssim']:.3f}"
        )
        lines += self.head_report(metrics, m)
        if "probe_accuracy" in metrics:
            lines.append(
                f"  linear probe accuracy: codes {m['probe_accuracy']:.4f}, PCA codes of the same size "
                f"{m['probe_pca_accuracy']:.4f}, pixels {m['probe_pixels_accuracy']:.4f}"
            )
        if "noisy_input_rmse" in metrics:
            lines.append(f"  noisy input rmse {m['noisy_input_rmse']:.4f} (noise factor {metrics['noise']})")
        return lines

    def head_report(self, metrics: dict[str, Any], m: dict[str, Any]) -> list[str]:
        """Lines about an extra head's metrics (the classifier's), after the reconstruction's."""
        return []

    def search_space(self, entry: ModelEntry) -> list[Dimension]:
        """Also what an autoencoder has free: the code size, the layer widths (half, as registered,
        double) and the noise of a denoiser."""
        space, defaults = super().search_space(entry), entry.defaults()
        if "code_size" in defaults:
            space.append(Dimension("code_size", 8, 128, log=True, integer=True))
        for name in ("channels", "hidden"):
            widths = defaults.get(name)
            if isinstance(widths, tuple) and widths:
                choices = dict.fromkeys(tuple(max(1, round(w * scale)) for w in widths) for scale in (0.5, 1, 2))
                space.append(Dimension(name, choices=tuple(choices)))
        if self.default_settings(entry).noise > 0:
            space.append(Dimension("noise", 0.1, 0.7))
        return space
