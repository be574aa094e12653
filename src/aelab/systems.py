"""LightningModules: they own losses, optimisers and logging; the networks stay plain nn.Modules."""

from __future__ import annotations

import lightning as L
import torch
from torch import Tensor

from .data import add_noise
from .losses import l1_activity, reconstruction_loss
from .nets.base import Autoencoder

OPTIMIZERS = {
    "adam": torch.optim.Adam,
    "adadelta": torch.optim.Adadelta,
    "rmsprop": torch.optim.RMSprop,
    "sgd": torch.optim.SGD,
}


class AutoencoderSystem(L.LightningModule):
    """Trains any :class:`Autoencoder` on reconstruction, optionally denoising and/or sparse.

    Denoising (seeds 1 and 2): training inputs get fresh Gaussian noise every step, targets stay
    clean; validation batches arrive already noised with a fixed seed, so ``val_loss`` is
    comparable across epochs. Sparsity (seed 2): ``sparsity`` times the L1 norm of the code.
    """

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

    def _shared_step(self, batch: tuple[Tensor, Tensor], stage: str) -> Tensor:
        inputs, targets = batch
        if stage == "train" and self.noise > 0:
            inputs = add_noise(targets, self.noise)
        out = self.model(inputs.contiguous(memory_format=self.memory_format))
        loss = reconstruction_loss(out.logits, targets, self.loss_name, self.model.output)
        if self.sparsity > 0:
            loss = loss + self.sparsity * l1_activity(out.z)
        self.log(f"{stage}_loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=len(inputs))
        return loss

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        return self._shared_step(batch, "train")

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        return self._shared_step(batch, "val")

    def configure_optimizers(self):
        optimizer = OPTIMIZERS[self.optimizer_name](self.model.parameters(), lr=self.lr)
        if self.schedule == "cosine":
            epochs = self.trainer.max_epochs
            return {"optimizer": optimizer, "lr_scheduler": torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, epochs)}
        if self.lr_patience is None:
            return optimizer
        # seed 3's ReduceLROnPlateau: divide the learning rate by 10 when val_loss stalls
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=self.lr_factor,
                                                               patience=self.lr_patience)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "monitor": "val_loss"}}
