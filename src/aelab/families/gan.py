"""GANs (seed 3's DCGAN and `gan-sn`): adversarial training, one discriminator step then one
generator step per batch; measured by the quality of their samples."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Literal

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import EvalSettings, TrainSettings
from ..data import ImageData
from ..errors import AelabError, opt
from ..nets.gan import DCGAN
from ..values import setting
from .base import RunFolder, SettingsCheck, check_finite, make_optimizer, printable
from .images import ImageFamily, ImageSettings, sample_metrics, sample_report

log = logging.getLogger("aelab")


GANObjective = Literal["bce", "hinge"]
SEED_LABEL_NOISE = 0.05  # seed 3's "add random noise to the labels"


@dataclass(frozen=True)
class GANSettings(ImageSettings):
    """How a GAN trains: the image models' settings, the discriminator's learning rate and the
    adversarial recipe (objective, Adam's betas, gradient clipping, label noise). A model gives its
    own recipe: `gan` seed 3's, `gan-sn` the hinge loss without clipping or label noise."""

    d_lr: float | None = setting(
        None, "GANs: the discriminator's learning rate (default 2 x --lr, the seed's ratio)", low=0, open_low=True
    )
    objective: GANObjective = setting(
        "bce",
        "the adversarial loss: bce (seed 3's cross-entropy on noisy labels) or hinge "
        "(Lim & Ye 2017; Miyato et al., gan-sn's)",
    )
    adam_betas: tuple[float, ...] = setting(
        (0.5, 0.999), "Adam's two betas for both players (the DCGAN paper's 0.5,0.999; gan-sn's 0,0.9)"
    )
    clip_value: float | None = setting(
        1.0,
        "clip each gradient to this absolute value (Keras' clipvalue=1.0, as seed 3 trained); none: no clipping",
        low=0,
        open_low=True,
    )
    label_noise: float | None = setting(
        None,
        "bce objective: each label moved toward the middle by this x U(0, 1) (default: seed 3's "
        f"'add random noise to the labels', {SEED_LABEL_NOISE}; the hinge loss has no labels)",
        low=0,
        high=0.5,
        open_high=True,
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if len(self.adam_betas) != 2 or not all(0 <= beta < 1 for beta in self.adam_betas):
            raise AelabError(f"adam_betas must be two numbers in [0, 1), got {list(self.adam_betas)}")
        if self.objective == "hinge" and self.label_noise:
            raise AelabError(f"{opt('label_noise')} is for the bce objective; the hinge loss has no labels")

    @property
    def effective_label_noise(self) -> float:
        """The label noise the objective trains with: ``label_noise``, or its default."""
        if self.objective == "hinge":
            return 0.0
        return SEED_LABEL_NOISE if self.label_noise is None else self.label_noise


class GANSystem(SettingsCheck, L.LightningModule):
    """Adversarial training with Lightning's manual optimisation: one discriminator step, then one
    generator step, per batch (seed 3's loop).

    Discriminator: generated images labelled 1, real ones 0, each label moved toward the middle
    by ``label_noise`` x U(0, 1) (seed 3: "add random noise to the labels"; moving inward keeps the
    targets in [0, 1]). Generator: trained through the discriminator towards "real" on fresh
    latent points. RMSprop with rho 0.9 and gradients clipped at 1.0 by value, as Keras' was
    (torch's clip_grad_value_: exact for fp32/bf16; with fp16 loss scaling the clip acts on scaled
    gradients, which is why bf16 is the GPU default where the GPU has it).

    The recipe is in the settings (:class:`GANSettings`): `gan-sn` trains by the hinge loss without
    label noise or clipping; the model updates its generator's moving average after each generator
    step where it keeps one.
    """

    monitor = None  # no validation loss to select a "best" epoch by: the last one is kept
    COLLAPSE_MARGIN = 0.05  # warn when the discriminator's loss is this close to its floor

    @classmethod
    def check(cls, model_name: str, settings: GANSettings, explicit: set[str]) -> None:
        super().check(model_name, settings, explicit)
        if settings.optimizer != "adam" and "adam_betas" in explicit:
            raise AelabError(f"{model_name}: {opt('adam_betas')} is for {opt('optimizer', 'adam')}")

    def __init__(self, model: DCGAN, settings: GANSettings) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.model = model
        self.lr, self.d_lr = settings.lr, settings.d_lr or 2 * settings.lr
        self.optimizer_name, self.betas, self.clip = settings.optimizer, settings.adam_betas, settings.clip_value
        # the recipe: seed 3's noisy-label cross-entropy, or the hinge loss (gan-sn)
        self.hinge = settings.objective == "hinge"
        self.label_noise = settings.effective_label_noise
        channels_last = bool(settings.channels_last)
        # with noisy labels the discriminator's loss cannot go below the labels' mean entropy
        u = torch.linspace(1e-6, 1, 10001) * self.label_noise
        self.loss_floor = float(-(u * u.log() + (1 - u) * (1 - u).log()).mean()) if self.label_noise > 0 else 0.0
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        if channels_last:
            self.model.to(memory_format=torch.channels_last)

    def _latent(self, n: int) -> Tensor:
        return torch.randn(n, self.model.latent_dim, device=self.device)

    def _d_loss(self, real: Tensor, fake: Tensor) -> Tensor:
        logits = self.model.discriminator(torch.cat([fake, real]).contiguous(memory_format=self.memory_format))
        if self.hinge:  # the logit scores "generated": above +1 for fakes, below -1 for real images
            return F.relu(1 - logits[: len(fake)].float()).mean() + F.relu(1 + logits[len(fake) :].float()).mean()
        labels = torch.cat([torch.ones(len(fake), device=self.device), torch.zeros(len(real), device=self.device)])
        noise = self.label_noise * torch.rand_like(labels)
        labels = labels - noise * (2 * labels - 1)  # 1 -> 1 - noise, 0 -> 0 + noise
        return F.binary_cross_entropy_with_logits(logits.float(), labels)

    def _g_loss(self, n: int) -> Tensor:
        logits = self.model.discriminator(self.model.generator(self._latent(n)))
        if self.hinge:
            return logits.float().mean()
        return F.binary_cross_entropy_with_logits(logits.float(), torch.zeros_like(logits.float()))

    def discriminator_step(self, real: Tensor, optimizer, backward, batch_idx: int = 0) -> Tensor:
        """One update of the discriminator only: the generated batch is detached."""
        fake = self.model.generator(self._latent(len(real))).detach()
        loss = self._d_loss(real, fake)
        check_finite(loss, self.current_epoch, batch_idx)
        self._update(loss, optimizer, backward, self.model.discriminator)
        return loss

    def generator_step(self, n: int, optimizer, backward, batch_idx: int = 0) -> Tensor:
        """One update of the generator only (the discriminator's gradients are cleared before its own
        step), then of its moving average where the model keeps one (gan-sn)."""
        loss = self._g_loss(n)
        check_finite(loss, self.current_epoch, batch_idx)
        self._update(loss, optimizer, backward, self.model.generator)
        self.model.update_ema()
        return loss

    def _update(self, loss: Tensor, optimizer, backward, player: nn.Module) -> None:
        optimizer.zero_grad()
        backward(loss)
        if self.clip is not None:
            torch.nn.utils.clip_grad_value_(player.parameters(), self.clip)  # seed 3: Keras' clipvalue=1.0
        optimizer.step()

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        real = batch[1] * 2 - 1  # images in [-1, 1], the generator's tanh range
        opt_d, opt_g = self.optimizers()
        d_loss = self.discriminator_step(real, opt_d, self.manual_backward, batch_idx)
        g_loss = self.generator_step(len(real), opt_g, self.manual_backward, batch_idx)
        self.log_dict(
            {"train_d_loss": d_loss, "train_g_loss": g_loss},
            on_step=False,
            on_epoch=True,
            prog_bar=True,
            batch_size=len(real),
            sync_dist=self.trainer.world_size > 1,
        )

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        real = batch[1] * 2 - 1
        fake = self.model.generator(self._latent(len(real)))
        self.log_dict(
            {"val_d_loss": self._d_loss(real, fake), "val_g_loss": self._g_loss(len(real))},
            on_step=False,
            on_epoch=True,
            batch_size=len(real),
            sync_dist=self.trainer.world_size > 1,
        )

    def on_train_epoch_end(self) -> None:
        d_loss = self.trainer.callback_metrics.get("train_d_loss")
        if d_loss is not None and float(d_loss) < self.loss_floor + self.COLLAPSE_MARGIN:
            log.warning(
                "epoch %d: the discriminator's loss (%.4f; %.4f is the least its noisy labels allow) is "
                "collapsing toward zero: it dominates the generator. Seed 3's remedy: lower the "
                f"discriminator's learning rate ({opt('d_lr')}) and raise its dropout ({opt('param', 'dropout=0.6')}).",
                self.current_epoch + 1,
                float(d_loss),
                self.loss_floor,
            )

    def configure_optimizers(self):
        def make(params, lr):
            if self.optimizer_name == "rmsprop":  # the seed's Keras RMSprop: rho 0.9, eps 1e-7
                return torch.optim.RMSprop(params, lr=lr, alpha=0.9, eps=1e-7)
            if self.optimizer_name == "adam":  # the DCGAN paper's beta1 = 0.5, gan-sn's 0 / 0.9
                return make_optimizer("adam", params, lr, betas=self.betas)
            return make_optimizer(self.optimizer_name, params, lr)

        return [
            make(self.model.discriminator.parameters(), self.d_lr),
            make(self.model.generator.parameters(), self.lr),
        ]


class GANFamily(ImageFamily):
    """GANs: no reconstruction; the quality of 10,000 samples and a grid of them."""

    name = "gan"
    system = GANSystem
    settings = GANSettings
    headline = ("fd_classifier",)
    val_metrics = ("val_d_loss", "val_g_loss")

    def loss_label(self, settings: TrainSettings) -> str:
        return "each player's loss (d: discriminator, g: generator)"

    def evaluate(
        self, run: RunFolder, model: DCGAN, data: ImageData, write_figures: bool, options: EvalSettings
    ) -> dict[str, Any]:
        metrics = super().evaluate(run, model, data, write_figures, options)
        metrics.update(sample_metrics(run, model, data, write_figures, options))
        return metrics

    def report(self, metrics: dict[str, Any]) -> list[str]:
        return super().report(metrics) + sample_report(metrics, printable(metrics))
