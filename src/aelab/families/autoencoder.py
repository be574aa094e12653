"""Autoencoders (seeds 1 and 2, and aelab's own): trained on reconstruction, optionally denoising
and/or sparse; measured against PCA with the same number of components as the code."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import lightning as L
import torch
from torch import Tensor

from .. import figures, progress
from ..config import Dimension, EvalSettings, TrainSettings
from ..data import ImageData, add_noise, noisy_copy
from ..losses import l1_activity, reconstruction_loss
from ..metrics import error_metrics, image_metrics, pca_errors, reconstruct
from ..nets.base import AEOutput, Autoencoder, Conditional
from .base import COMMON, SettingsCheck, check_finite, make_optimizer, printable
from .images import ImageFamily

if TYPE_CHECKING:
    from ..registry import ModelEntry
    from ..runs import Run


class AutoencoderSystem(SettingsCheck, L.LightningModule):
    """Trains any :class:`Autoencoder` on reconstruction, optionally denoising and/or sparse.

    Denoising (seeds 1 and 2): training inputs get fresh Gaussian noise every step, targets stay
    clean; validation batches arrive already noised with a fixed seed, so ``val_loss`` is
    comparable across epochs. Sparsity (seed 2): ``sparsity`` times the L1 norm of the code.
    """

    honours = COMMON + (
        "loss",
        "noise",
        "sparsity",
        "schedule",
        "reduce_lr",
        "lr_patience",
        "early_stopping",
        "patience",
        "log_activations",
        "log_embeddings",
    )
    # per optimiser name, options other than the learning rate: Adadelta's are Keras' (the seeds' programme examples)
    optimizer_options: dict[str, dict] = {"adadelta": {"rho": 0.95, "eps": 1e-7}}
    LR_FACTOR = 0.1  # seed 3's ReduceLROnPlateau: divide the learning rate by 10 when val_loss stalls

    def __init__(self, model: Autoencoder, settings: TrainSettings) -> None:
        super().__init__()
        self.model, self.settings = model, settings
        self.lr_patience = settings.lr_patience if settings.reduce_lr else None
        channels_last = bool(settings.channels_last) and "channels_last" in self.honours
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        if channels_last:
            self.model.to(memory_format=torch.channels_last)
        self._epoch_sums: dict[str, dict[str, Tensor]] = {}
        self._epoch_counts: dict[str, int] = {}

    def _shared_step(self, batch: tuple[Tensor, ...], stage: str, batch_idx: int = 0) -> Tensor:
        inputs, targets, *labels = batch  # labels: for systems that need them
        if stage == "train" and self.settings.noise > 0:
            inputs = add_noise(targets, self.settings.noise)
        model_inputs = labels if isinstance(self.model, Conditional) else []  # a cvae takes the labels too
        out = self.model(inputs.contiguous(memory_format=self.memory_format), *model_inputs)
        loss, terms = self.compute_loss(out, targets, *labels)
        if self.settings.sparsity > 0:
            loss = loss + self.settings.sparsity * l1_activity(out.z)
        if stage == "train":
            check_finite(loss, self.current_epoch, batch_idx)  # before the update: the weights stay finite
        self._accumulate(stage, len(inputs), loss=loss, **terms)
        return loss

    def _accumulate(self, stage: str, n: int, **values: Tensor) -> None:
        """Running sums of the epoch's losses: tensor adds, no per-step ``self.log`` machinery."""
        sums = self._epoch_sums.setdefault(stage, {})
        for name, value in values.items():
            sums[name] = sums.get(name, 0.0) + value.detach().float() * n
        self._epoch_counts[stage] = self._epoch_counts.get(stage, 0) + n

    def on_validation_epoch_end(self) -> None:
        # Logged once per epoch: each self.log call runs Lightning's metric bookkeeping in Python,
        # a per-step cost for every logged value. Validation ends each training epoch, so both
        # stages land here.
        for stage in ("train", "val"):
            count = self._epoch_counts.pop(stage, 0)
            for name, total in self._epoch_sums.pop(stage, {}).items():
                if name == "loss":
                    check_finite(total, self.current_epoch, "validation" if stage == "val" else "training")
                # several processes: the mean over them (equal shares; validation is the same on each)
                self.log(
                    f"{stage}_{name}", total / count, prog_bar=name == "loss", sync_dist=self.trainer.world_size > 1
                )

    def compute_loss(
        self, out: AEOutput, targets: Tensor, labels: Tensor | None = None
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """The training objective and any named terms worth logging."""
        return reconstruction_loss(out.logits, targets, self.settings.loss, self.model.output), {}

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        return self._shared_step(batch, "train", batch_idx)

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        return self._shared_step(batch, "val")

    def configure_optimizers(self):
        name = self.settings.optimizer
        optimizer = make_optimizer(
            name, self.model.parameters(), self.settings.lr, **self.optimizer_options.get(name, {})
        )
        if self.settings.schedule == "cosine":
            epochs = self.trainer.max_epochs
            return {
                "optimizer": optimizer,
                "lr_scheduler": torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, epochs),
            }
        if self.lr_patience is None:
            return optimizer
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, factor=self.LR_FACTOR, patience=self.lr_patience
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "monitor": "val_loss"}}


class AutoencoderFamily(ImageFamily):
    """Autoencoders: reconstruction metrics beside the PCA floor at the same code size."""

    name = "autoencoder"
    system = AutoencoderSystem
    headline = ("test_rmse", "pca_rmse")
    TRAIN_ERROR_IMAGES = 10_000  # the first this many training images measure the training error

    def loss_label(self, settings: TrainSettings) -> str:
        return {"bce": "binary cross-entropy (nats per pixel)", "mse": "mean squared error per pixel"}.get(
            settings.loss, "loss"
        )

    def curve_lines(self, settings: TrainSettings, metrics: dict) -> list[tuple[float, str]]:
        """PCA's test loss at the code's size, the floor to beat, in the training loss's own terms."""
        size = metrics.get("code_size")
        value = {
            "bce": metrics.get("pca_bce"),
            "mse": metrics["pca_rmse"] ** 2 if isinstance(metrics.get("pca_rmse"), float) else None,
        }.get(settings.loss)
        return [(value, f"PCA, {size} components (test): {value:.4g}")] if isinstance(value, float) else []

    def evaluate(
        self, run: Run, model: Autoencoder, data: ImageData, write_figures: bool, options: EvalSettings
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
        if entry.train.noise > 0:
            space.append(Dimension("noise", 0.1, 0.7))
        return space
