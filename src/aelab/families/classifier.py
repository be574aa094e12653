"""Autoencoders with a classifier head (seed 3's several outputs): the weighted sum of the
reconstruction loss and the cross-entropy of the head, semi-supervised where labels are hidden."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ..config import EvalSettings, TrainSettings
from ..data import ImageData
from ..errors import AelabError
from ..limits import INFERENCE_BATCH
from ..losses import reconstruction_loss
from ..nets.base import AEOutput, Autoencoder, Classifier
from ..values import setting
from .autoencoder import AutoencoderFamily, AutoencoderSettings, AutoencoderSystem
from .base import RunFolder


@dataclass(frozen=True)
class ClassifierSettings(AutoencoderSettings):
    """An autoencoder's settings and the weights of its two losses, and how many labels it sees."""

    loss_weights: dict[str, float] | None = setting(
        None, "models with several outputs: each loss's weight, e.g. recon=1,label=0.5 (default: each model's own)"
    )
    labelled: float = setting(
        1.0,
        "models that learn from labels: the fraction of training images whose label is used (semi-supervised below 1)",
        low=0,
        high=1,
        open_low=True,
    )


class ClassifierSystem(AutoencoderSystem):
    """Trains an autoencoder with a classifier head: the weighted sum of the reconstruction loss and
    the cross-entropy of the head, the latter over the images that have a label (label -1: none).
    Logs each loss and the accuracy on its own."""

    LOSSES = ("recon", "label")

    @classmethod
    def check(cls, model_name: str, settings: TrainSettings, explicit: set[str]) -> None:
        super().check(model_name, settings, explicit)
        unknown = sorted(set(settings.loss_weights or {}) - set(cls.LOSSES))
        if unknown:
            raise AelabError(
                f"{model_name} has no loss {unknown[0]!r} to weigh; its losses are: {', '.join(cls.LOSSES)}"
            )
        if not any((settings.loss_weights or {"recon": 1.0}).values()):
            raise AelabError(
                f"{model_name}: every loss weight is 0, so there is nothing to train; give one a weight > 0"
            )

    def __init__(self, model: Autoencoder, settings: TrainSettings) -> None:
        super().__init__(model, settings)
        self.weights = {name: 1.0 for name in self.LOSSES} | (settings.loss_weights or {})

    def compute_loss(
        self, out: AEOutput, targets: Tensor, labels: Tensor | None = None
    ) -> tuple[Tensor, dict[str, Tensor]]:
        recon = reconstruction_loss(out.logits, targets, self.settings.loss, self.model.output)
        known = labels >= 0
        n_known = known.sum()
        # the label loss over the labelled images only; a batch without any adds nothing
        per_image = F.cross_entropy(out.class_logits.float(), labels.clamp_min(0), reduction="none")
        label = (per_image * known).sum() / n_known.clamp_min(1)
        correct = ((out.class_logits.argmax(-1) == labels) & known).sum() / n_known.clamp_min(1)
        loss = sum(
            self.weights[name] * term for name, term in (("recon", recon), ("label", label)) if self.weights[name]
        )  # a weight of 0 leaves its head out of the gradient entirely
        return loss, {"recon": recon, "label": label, "accuracy": correct}


class ClassifierFamily(AutoencoderFamily):
    """The autoencoder's metrics and the head's test accuracy on the labelled test images."""

    name = "classifier"
    system = ClassifierSystem
    settings = ClassifierSettings
    needs_labels = True
    headline = ("test_rmse", "pca_rmse", "test_accuracy")
    val_metrics = ("val_loss", "val_recon", "val_label", "val_accuracy")

    def batch_options(self, settings: ClassifierSettings) -> dict[str, Any]:
        """Noised inputs for a denoiser, and the labels of a ``labelled`` fraction of the images."""
        return {"noise": settings.noise, "labelled": settings.labelled}

    def loss_metric(self, settings: TrainSettings) -> str | None:
        return None  # the loss adds the head's cross-entropy

    @torch.no_grad()
    def curve_lines(self, settings: TrainSettings, metrics: dict) -> list[tuple[float, str]]:
        return []  # its loss adds the head's cross-entropy: PCA's error is not on that scale

    def evaluate(
        self,
        run: RunFolder,
        model: Classifier,
        data: ImageData,
        write_figures: bool,
        options: EvalSettings,
        batch_size: int = INFERENCE_BATCH,
    ) -> dict[str, Any]:
        metrics = super().evaluate(run, model, data, write_figures, options)
        if data.test_labels is None:
            return metrics
        known = data.test_labels >= 0
        model.eval()
        predicted = torch.cat([model.classify(batch).argmax(-1) for batch in data.test[known].split(batch_size)])
        metrics["test_accuracy"] = (predicted == data.test_labels[known]).float().mean().item()
        metrics["test_labelled_images"] = int(known.sum())
        return metrics

    def head_report(self, metrics: dict[str, Any], m: dict[str, Any]) -> list[str]:
        if "test_accuracy" not in metrics:
            return []
        return [
            f"  test accuracy {m['test_accuracy']:.4f} (classifier head, {metrics['test_labelled_images']} "
            "labelled test images)"
        ]
