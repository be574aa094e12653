"""LightningModules: they own losses, optimisers and logging; the networks stay plain nn.Modules."""

from __future__ import annotations

import logging

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import LAUNCH, TrainSettings
from .data import add_noise
from .errors import AelabError
from .losses import l1_activity, reconstruction_loss, vae_loss
from .nets.base import AEOutput, Autoencoder
from .nets.gan import DCGAN

log = logging.getLogger("aelab")

OPTIMIZERS = {
    "adam": torch.optim.Adam,
    "adadelta": torch.optim.Adadelta,
    "rmsprop": torch.optim.RMSprop,
    "sgd": torch.optim.SGD,
}


class NonFiniteLoss(AelabError):
    """The loss became NaN or infinite: training stops here (the weights are not updated with it)."""

    def __init__(self, epoch: int, step: int | str, value: float) -> None:
        where = f"step {step}" if isinstance(step, int) else step
        super().__init__(f"the loss became {value} at epoch {epoch}, {where}")


# the settings every system honours; each system adds its own in ``honours``
COMMON = ("epochs", "batch_size", "lr", "optimizer", "seed", "init", "val_fraction", "precision", "channels_last",
          "stream", *LAUNCH)


class SettingsCheck:
    """Each system declares the settings it honours; one it does not is refused, in one line, before
    anything is written (``check``)."""

    honours: tuple[str, ...] = COMMON
    needs_labels = False  # True: batches carry each image's class label (see training._batches)

    @classmethod
    def check(cls, model_name: str, settings: TrainSettings, explicit: set[str]) -> None:
        ignored = [name for name in explicit if name not in cls.honours]
        if ignored:
            raise AelabError(f"{model_name} does not use the setting {ignored[0]} (--{ignored[0].replace('_', '-')}); "
                             f"it uses: {', '.join(cls.honours)}")


def check_finite(loss: Tensor, epoch: int, step: int | str) -> None:
    if not torch.isfinite(loss):
        raise NonFiniteLoss(epoch + 1, step if isinstance(step, str) else step + 1, float(loss.detach()))


def make_optimizer(name: str, params, lr: float, **options) -> torch.optim.Optimizer:
    """The optimiser by name; Adam uses PyTorch's fused kernel (one pass over all weights)."""
    if name == "adam":
        options.setdefault("fused", True)
    return OPTIMIZERS[name](params, lr=lr, **options)


class AutoencoderSystem(SettingsCheck, L.LightningModule):
    """Trains any :class:`Autoencoder` on reconstruction, optionally denoising and/or sparse.

    Denoising (seeds 1 and 2): training inputs get fresh Gaussian noise every step, targets stay
    clean; validation batches arrive already noised with a fixed seed, so ``val_loss`` is
    comparable across epochs. Sparsity (seed 2): ``sparsity`` times the L1 norm of the code.
    """

    monitor = "val_loss"  # what checkpoints, early stopping and the plateau schedule watch
    honours = COMMON + ("loss", "noise", "sparsity", "schedule", "reduce_lr", "lr_patience", "early_stopping",
                        "patience", "log_activations", "log_embeddings")
    # per optimiser name, options other than the learning rate: Adadelta's are Keras' (the seeds' programme examples)
    optimizer_options: dict[str, dict] = {"adadelta": {"rho": 0.95, "eps": 1e-7}}

    @classmethod
    def from_settings(cls, model, settings: TrainSettings, **extra):
        return cls(model, loss=settings.loss, optimizer=settings.optimizer, lr=settings.lr, noise=settings.noise,
                   sparsity=settings.sparsity, schedule=settings.schedule,
                   lr_patience=settings.lr_patience if settings.reduce_lr else None,
                   channels_last=bool(settings.channels_last), **extra)

    def __init__(self, model: Autoencoder, loss: str = "bce", optimizer: str = "adam", lr: float = 1e-3,
                 noise: float = 0.0, sparsity: float = 0.0, schedule: str = "plateau", lr_patience: int | None = 5,
                 lr_factor: float = 0.1, channels_last: bool = False) -> None:
        super().__init__()
        self.model = model
        self.loss_name, self.optimizer_name, self.lr, self.schedule = loss, optimizer, lr, schedule
        self.noise, self.sparsity = noise, sparsity
        self.lr_patience, self.lr_factor = lr_patience, lr_factor
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        if channels_last:
            self.model.to(memory_format=torch.channels_last)
        self._epoch_sums: dict[str, dict[str, Tensor]] = {}
        self._epoch_counts: dict[str, int] = {}

    def _shared_step(self, batch: tuple[Tensor, ...], stage: str, batch_idx: int = 0) -> Tensor:
        inputs, targets, *labels = batch  # labels: for systems that need them
        if stage == "train" and self.noise > 0:
            inputs = add_noise(targets, self.noise)
        model_inputs = labels if self.model.conditional else []  # a cvae takes the labels too
        out = self.model(inputs.contiguous(memory_format=self.memory_format), *model_inputs)
        loss, terms = self.compute_loss(out, targets, *labels)
        if self.sparsity > 0:
            loss = loss + self.sparsity * l1_activity(out.z)
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
                self.log(f"{stage}_{name}", total / count, prog_bar=name == "loss", sync_dist=self.trainer.world_size > 1)

    def compute_loss(self, out: AEOutput, targets: Tensor, labels: Tensor | None = None
                     ) -> tuple[Tensor, dict[str, Tensor]]:
        """The training objective and any named terms worth logging."""
        return reconstruction_loss(out.logits, targets, self.loss_name, self.model.output), {}

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        return self._shared_step(batch, "train", batch_idx)

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        return self._shared_step(batch, "val")

    def configure_optimizers(self):
        optimizer = make_optimizer(self.optimizer_name, self.model.parameters(), self.lr,
                                   **self.optimizer_options.get(self.optimizer_name, {}))
        if self.schedule == "cosine":
            epochs = self.trainer.max_epochs
            return {"optimizer": optimizer, "lr_scheduler": torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, epochs)}
        if self.lr_patience is None:
            return optimizer
        # seed 3's ReduceLROnPlateau: divide the learning rate by 10 when val_loss stalls
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=self.lr_factor,
                                                               patience=self.lr_patience)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "monitor": "val_loss"}}


class VAESystem(AutoencoderSystem):
    """Trains a VAE on the negative ELBO (or seed 3's formulation); logs its two terms."""

    honours = AutoencoderSystem.honours + ("kl_form", "kl_weight")

    @classmethod
    def check(cls, model_name: str, settings: TrainSettings, explicit: set[str]) -> None:
        super().check(model_name, settings, explicit)
        if settings.loss != "bce":
            raise AelabError(f"{model_name}: VAEs here use a Bernoulli decoder: train them with --loss bce")

    @classmethod
    def from_settings(cls, model, settings: TrainSettings, **extra):
        return super().from_settings(model, settings, kl_form=settings.kl_form, kl_weight=settings.kl_weight, **extra)

    def __init__(self, model: Autoencoder, kl_form: str = "elbo", kl_weight: float = 1.0, **kwargs) -> None:
        super().__init__(model, **kwargs)
        self.kl_form, self.kl_weight = kl_form, kl_weight

    def compute_loss(self, out: AEOutput, targets: Tensor, labels: Tensor | None = None
                     ) -> tuple[Tensor, dict[str, Tensor]]:
        loss, recon, kl = vae_loss(out.logits, targets, out.mean, out.logvar, self.kl_form, self.kl_weight)
        return loss, {"recon": recon, "kl": kl}


class CVAESystem(VAESystem):
    """Trains a conditional VAE: the VAE's loss, with each batch's labels as the model's second input."""

    needs_labels = True


class ClassifierSystem(AutoencoderSystem):
    """Trains an autoencoder with a classifier head (seed 3's several outputs): the weighted sum
    of the reconstruction loss and the cross-entropy of the head, the latter over the images
    that have a label (label -1: none). Logs each loss and the accuracy on its own."""

    needs_labels = True
    honours = AutoencoderSystem.honours + ("loss_weights", "labelled")
    LOSSES = ("recon", "label")

    @classmethod
    def check(cls, model_name: str, settings: TrainSettings, explicit: set[str]) -> None:
        super().check(model_name, settings, explicit)
        unknown = sorted(set(settings.loss_weights or {}) - set(cls.LOSSES))
        if unknown:
            raise AelabError(f"{model_name} has no loss {unknown[0]!r} to weigh; its losses are: {', '.join(cls.LOSSES)}")
        if not any((settings.loss_weights or {"recon": 1.0}).values()):
            raise AelabError(f"{model_name}: every loss weight is 0, so there is nothing to train; give one a weight > 0")

    @classmethod
    def from_settings(cls, model, settings: TrainSettings, **extra):
        return super().from_settings(model, settings, loss_weights=settings.loss_weights, **extra)

    def __init__(self, model: Autoencoder, loss_weights: dict[str, float] | None = None, **kwargs) -> None:
        super().__init__(model, **kwargs)
        self.weights = {name: 1.0 for name in self.LOSSES} | (loss_weights or {})

    def compute_loss(self, out: AEOutput, targets: Tensor, labels: Tensor | None = None
                     ) -> tuple[Tensor, dict[str, Tensor]]:
        recon = reconstruction_loss(out.logits, targets, self.loss_name, self.model.output)
        known = labels >= 0
        n_known = known.sum()
        # the label loss over the labelled images only; a batch without any adds nothing
        per_image = F.cross_entropy(out.class_logits.float(), labels.clamp_min(0), reduction="none")
        label = (per_image * known).sum() / n_known.clamp_min(1)
        correct = ((out.class_logits.argmax(-1) == labels) & known).sum() / n_known.clamp_min(1)
        loss = sum(self.weights[name] * term for name, term in (("recon", recon), ("label", label))
                   if self.weights[name])  # a weight of 0 leaves its head out of the gradient entirely
        return loss, {"recon": recon, "label": label, "accuracy": correct}


class TextSystem(AutoencoderSystem):
    """Trains a next-character model (seed 3's text generator) with categorical cross-entropy on
    the character after each window; logs the loss (nats per character) and the accuracy. RMSprop
    is Keras' (rho 0.9, epsilon 1e-7), as the seed's ``RMSprop(lr=0.01)`` was."""

    honours = ("epochs", "batch_size", "lr", "optimizer", "seed", "precision", "schedule",
               "reduce_lr", "lr_patience", "early_stopping", "patience", *LAUNCH)
    optimizer_options = {"rmsprop": {"alpha": 0.9, "eps": 1e-7}}

    @classmethod
    def from_settings(cls, model, settings: TrainSettings, **extra):
        return cls(model, optimizer=settings.optimizer, lr=settings.lr, schedule=settings.schedule,
                   lr_patience=settings.lr_patience if settings.reduce_lr else None)

    def _shared_step(self, batch: tuple[Tensor, Tensor], stage: str, batch_idx: int = 0) -> Tensor:
        inputs, targets = batch  # (B, maxlen) indices, (B,) the next characters
        logits = self.model(inputs).float()
        loss = F.cross_entropy(logits, targets)
        if stage == "train":
            check_finite(loss, self.current_epoch, batch_idx)
        self._accumulate(stage, len(inputs), loss=loss, accuracy=(logits.argmax(-1) == targets).float().mean())
        return loss


class GANSystem(SettingsCheck, L.LightningModule):
    """Adversarial training with Lightning's manual optimisation: one discriminator step, then one
    generator step, per batch (seed 3's loop).

    Discriminator: generated images labelled 1, real ones 0, each label moved toward the middle
    by ``label_noise`` x U(0, 1) (seed 3: "add random noise to the labels"; moving inward keeps the
    targets in [0, 1]). Generator: trained through the discriminator towards "real" on fresh
    latent points. RMSprop with rho 0.9 and gradients clipped at 1.0 by value, as Keras' was
    (torch's clip_grad_value_: exact for fp32/bf16; with fp16 loss scaling the clip acts on scaled
    gradients, which is why bf16 is the GPU default where the GPU has it).

    The model carries its recipe (``objective``, ``adam_betas``, ``clip_value``): `gan-sn` trains by
    the hinge loss without label noise or clipping, and updates its generator's moving average
    after each generator step.
    """

    monitor = None  # no validation loss to select a "best" epoch by: the last one is kept
    honours = COMMON + ("d_lr",)
    COLLAPSE_MARGIN = 0.05  # warn when the discriminator's loss is this close to its floor

    @classmethod
    def from_settings(cls, model, settings: TrainSettings):
        return cls(model, lr=settings.lr, d_lr=settings.d_lr, optimizer=settings.optimizer,
                   channels_last=bool(settings.channels_last))

    def __init__(self, model: DCGAN, lr: float = 4e-4, d_lr: float | None = None, label_noise: float = 0.05,
                 optimizer: str = "rmsprop", channels_last: bool = False) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.model = model
        self.lr, self.d_lr = lr, d_lr or 2 * lr
        self.optimizer_name = optimizer
        # the model carries its recipe: seed 3's noisy-label cross-entropy, or the hinge loss (gan-sn)
        self.hinge = getattr(model, "objective", "bce") == "hinge"
        self.label_noise = 0.0 if self.hinge else label_noise
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
            return F.relu(1 - logits[:len(fake)].float()).mean() + F.relu(1 + logits[len(fake):].float()).mean()
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
        if hasattr(self.model, "update_ema"):
            self.model.update_ema()
        return loss

    def _update(self, loss: Tensor, optimizer, backward, player: nn.Module) -> None:
        optimizer.zero_grad()
        backward(loss)
        clip = getattr(self.model, "clip_value", 1.0)
        if clip is not None:
            torch.nn.utils.clip_grad_value_(player.parameters(), clip)  # seed 3: Keras' clipvalue=1.0
        optimizer.step()

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        real = batch[1] * 2 - 1  # images in [-1, 1], the generator's tanh range
        opt_d, opt_g = self.optimizers()
        d_loss = self.discriminator_step(real, opt_d, self.manual_backward, batch_idx)
        g_loss = self.generator_step(len(real), opt_g, self.manual_backward, batch_idx)
        self.log_dict({"train_d_loss": d_loss, "train_g_loss": g_loss}, on_step=False, on_epoch=True, prog_bar=True,
                      batch_size=len(real), sync_dist=self.trainer.world_size > 1)

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        real = batch[1] * 2 - 1
        fake = self.model.generator(self._latent(len(real)))
        self.log_dict({"val_d_loss": self._d_loss(real, fake), "val_g_loss": self._g_loss(len(real))},
                      on_step=False, on_epoch=True, batch_size=len(real), sync_dist=self.trainer.world_size > 1)

    def on_train_epoch_end(self) -> None:
        d_loss = self.trainer.callback_metrics.get("train_d_loss")
        if d_loss is not None and float(d_loss) < self.loss_floor + self.COLLAPSE_MARGIN:
            log.warning("epoch %d: the discriminator's loss (%.4f; %.4f is the least its noisy labels allow) is "
                        "collapsing toward zero: it dominates the generator. Seed 3's remedy: lower the "
                        "discriminator's learning rate (--d-lr) and raise its dropout (--param dropout=0.6).",
                        self.current_epoch + 1, float(d_loss), self.loss_floor)

    def configure_optimizers(self):
        def make(params, lr):
            if self.optimizer_name == "rmsprop":  # the seed's Keras RMSprop: rho 0.9, eps 1e-7
                return torch.optim.RMSprop(params, lr=lr, alpha=0.9, eps=1e-7)
            if self.optimizer_name == "adam":  # the model's betas: the DCGAN paper's beta1 = 0.5, gan-sn's 0 / 0.9
                return make_optimizer("adam", params, lr, betas=getattr(self.model, "adam_betas", (0.5, 0.999)))
            return make_optimizer(self.optimizer_name, params, lr)

        return [make(self.model.discriminator.parameters(), self.d_lr), make(self.model.generator.parameters(), self.lr)]


SYSTEMS: dict[str, type[L.LightningModule]] = {"autoencoder": AutoencoderSystem, "vae": VAESystem,
                                               "cvae": CVAESystem, "classifier": ClassifierSystem, "gan": GANSystem,
                                               "text": TextSystem}
