"""VQ-VAEs: reconstruction per image, plus ``commitment`` x the encoder's distance to its chosen
codebook entries and the prior's cross-entropy over the code grid (the network adds both; the
codebook itself moves by moving averages); codebook use (perplexity) logged each epoch. Samples
come from the learned prior; the evaluation adds the test codes' perplexity and their negative
log-likelihood under the prior."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ..config import EvalSettings, TrainSettings
from ..data import ImageData
from ..limits import INFERENCE_BATCH
from ..nets.vqvae import VQVAE, perplexity
from ..progress import stage
from ..values import setting
from .autoencoder import AutoencoderSettings
from .base import RunFolder, printable
from .generative import GenerativeAutoencoderFamily, PerImageSystem


@dataclass(frozen=True)
class VQVAESettings(AutoencoderSettings):
    """An autoencoder's settings and the commitment term's weight."""

    commitment: float = setting(0.25, "weight of the commitment term (beta; 0.25: the VQ-VAE paper's)", low=0)


class VQVAESystem(PerImageSystem):
    """Logs ``recon``, ``commitment``, ``prior`` (nats per grid position) and ``perplexity``."""

    def term_weights(self) -> dict[str, float]:
        return {"commitment": self.settings.commitment}


class VQVAEFamily(GenerativeAutoencoderFamily):
    name = "vqvae"
    system = VQVAESystem
    settings = VQVAESettings
    headline = ("test_rmse", "fd_classifier", "test_perplexity")
    val_metrics = ("val_loss", "val_recon", "val_commitment", "val_prior", "val_perplexity")

    def loss_parts(self, settings: TrainSettings) -> dict[str, str]:
        return {"recon": "reconstruction term", "prior": "prior's cross-entropy (nats per position)"}

    def evaluate(
        self, run: RunFolder, model: VQVAE, data: ImageData, write_figures: bool, options: EvalSettings
    ) -> dict[str, Any]:
        metrics = super().evaluate(run, model, data, write_figures, options)
        model.eval()
        counts, nats = torch.zeros(len(model.codebook.entries)), 0.0
        device = next(model.parameters()).device
        with stage(f"codebook use and prior likelihood ({len(data.test):,} test images)"), torch.no_grad():
            for start in range(0, len(data.test), INFERENCE_BATCH):
                x = model.check_images(data.test[start : start + INFERENCE_BATCH]).to(device)
                _, grid, _ = model.codebook(model.encoder(x))
                counts += torch.bincount(grid.flatten().cpu(), minlength=len(counts)).float()
                logits = model.prior(grid)
                nats += torch.nn.functional.cross_entropy(logits, grid, reduction="sum").item()
        metrics["test_perplexity"] = float(perplexity(counts))
        metrics["codebook_used"] = int((counts > 0).sum())
        metrics["test_prior_nats"] = nats / len(data.test)  # -log p(grid) per image, in nats
        return metrics

    def report(self, metrics: dict[str, Any]) -> list[str]:
        m = printable(metrics)
        return super().report(metrics) + [
            f"  codebook: perplexity {m['test_perplexity']:.1f}, {metrics['codebook_used']} entries used; "
            f"prior -log p(code grid) {m['test_prior_nats']:.1f} nats per image"
        ]
