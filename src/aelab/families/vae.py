"""Variational autoencoders (seed 3's VAE, and its conditional twin): trained on the negative
ELBO; measured as autoencoders, by the ELBO and IWAE bounds, and by the quality of their samples."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from torch import Tensor

from ..config import Dimension, EvalSettings, RunConfig, TrainSettings
from ..data import ImageData
from ..errors import AelabError, opt
from ..losses import vae_loss
from ..metrics import vae_bounds
from ..nets.base import AEOutput, Conditional
from ..nets.vae import ConvVAE
from ..progress import stage
from ..values import setting
from .autoencoder import AutoencoderFamily, AutoencoderSettings, AutoencoderSystem
from .base import RunFolder, printable
from .images import sample_metrics, sample_report

if TYPE_CHECKING:
    from ..registry import ModelEntry


KLForm = Literal["elbo", "seed"]


@dataclass(frozen=True)
class VAESettings(AutoencoderSettings):
    """An autoencoder's settings and the KL term's form and weight."""

    kl_form: KLForm = setting("elbo", "VAEs: elbo (summed per image) or seed (seed 3's per-pixel mean)")
    kl_weight: float = setting(1.0, "VAEs: weight of the KL term (beta; the seed's preset uses 5e-4)", low=0)


class VAESystem(AutoencoderSystem):
    """Trains a VAE on the negative ELBO (or seed 3's formulation); logs its two terms."""

    @classmethod
    def check(cls, model_name: str, settings: TrainSettings, explicit: set[str]) -> None:
        super().check(model_name, settings, explicit)
        if settings.loss != "bce":
            raise AelabError(f"{model_name}: VAEs here use a Bernoulli decoder: train them with {opt('loss', 'bce')}")

    def compute_loss(
        self, out: AEOutput, targets: Tensor, labels: Tensor | None = None
    ) -> tuple[Tensor, dict[str, Tensor]]:
        loss, recon, kl = vae_loss(
            out.logits, targets, out.mean, out.logvar, self.settings.kl_form, self.settings.kl_weight
        )
        return loss, {"recon": recon, "kl": kl}


class VAEFamily(AutoencoderFamily):
    """VAEs: the autoencoder's metrics, the ELBO and the IWAE bound on ``bound_images`` test images
    (``bound_samples`` samples each), and the quality of ``quality_samples`` samples
    (:class:`~aelab.EvalSettings`)."""

    name = "vae"
    system = VAESystem
    settings = VAESettings
    headline = ("test_rmse", "pca_rmse", "test_elbo", "fd_classifier")
    val_metrics = ("val_loss", "val_recon", "val_kl")

    def loss_label(self, settings: TrainSettings) -> str:
        if settings.kl_form == "seed":
            return "seed 3's loss (mean BCE per pixel + weighted KL)"
        weight = "" if settings.kl_weight == 1 else f" with the KL term x {settings.kl_weight:g}"
        return f"-ELBO (nats per image){weight}"

    def loss_metric(self, settings: TrainSettings) -> str | None:
        return None  # the loss is the -ELBO

    def curve_lines(self, settings: TrainSettings, metrics: dict) -> list[tuple[float, str]]:
        return []  # PCA has no ELBO

    def evaluate(
        self, run: RunFolder, model: ConvVAE, data: ImageData, write_figures: bool, options: EvalSettings
    ) -> dict[str, Any]:
        metrics = super().evaluate(run, model, data, write_figures, options)
        if options.bounds:
            images = data.test[: options.bound_images]
            labels = data.test_labels[: len(images)] if isinstance(model, Conditional) else None
            what = f"ELBO and IWAE bound ({options.bound_samples} samples x {len(images):,} images)"
            with stage(what, total=-(-len(images) // 100)) as step:
                metrics.update(
                    vae_bounds(model, images, samples=options.bound_samples, labels=labels, on_batch=step.advance)
                )
            metrics["bounds_seconds"] = round(step.seconds, 2)
        metrics.update(sample_metrics(run, model, data, write_figures, options))
        return metrics

    def report(self, metrics: dict[str, Any]) -> list[str]:
        lines, m = super().report(metrics), printable(metrics)
        iwae = next((k for k in metrics if k.startswith("test_iwae")), None)
        if iwae is None:
            return lines + ["  ELBO/IWAE bounds not measured (bounds off)"] + sample_report(metrics, m)
        lines.append(
            f"  test ELBO {m['test_elbo']:.1f} nats (reconstruction {m['test_recon_nats']:.1f}, "
            f"KL {m['test_kl_nats']:.1f}); {iwae.removeprefix('test_')} log-likelihood bound "
            f"{m[iwae]:.1f} nats ({metrics['bound_images']} images)"
        )
        return lines + sample_report(metrics, m)

    def search_space(self, entry: ModelEntry) -> list[Dimension]:
        return super().search_space(entry) + [Dimension("kl_weight", 0.25, 4.0, log=True)]


class CVAEFamily(VAEFamily):
    """Conditional VAEs: each batch's labels are the model's second input; every training image
    needs one."""

    name = "cvae"
    needs_labels = True

    def check_labels(self, config: RunConfig, data: ImageData) -> None:
        super().check_labels(config, data)
        if bool((data.train_labels < 0).any()):
            missing = int((data.train_labels < 0).sum())
            raise AelabError(
                f"{config.model} needs a label for every training image; {missing} of {data.name}'s have none"
            )
