"""Lightning callbacks of aelab's own: the per-epoch history that ``curves.png`` draws."""

from __future__ import annotations

import time
from typing import Any

import lightning as L
import torch


class History(L.Callback):
    """Records mean train loss, val loss, learning rate and training throughput per epoch.

    Throughput counts the training steps only (first batch start to last batch end), so it is
    the number the speed benchmark compares against a plain PyTorch loop.

    It records at the end of validation, which Lightning runs before ModelCheckpoint saves, so the
    state that rides in ``last.ckpt`` already holds the epoch and a resumed run keeps its curve.
    """

    def __init__(self) -> None:
        self.epochs: list[dict[str, float]] = []
        self._loss_sum: torch.Tensor | None = None
        self._steps = self._images = 0
        self._started = self._ended = 0.0

    def on_train_epoch_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self._loss_sum, self._steps, self._images = None, 0, 0

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
        if batch_idx == 0:
            self._started = time.perf_counter()

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        if outputs is not None:
            loss = outputs["loss"].detach() if isinstance(outputs, dict) else outputs.detach()
            self._loss_sum = loss if self._loss_sum is None else self._loss_sum + loss  # no sync per step
        self._steps += 1
        self._images += len(batch[0])
        if batch_idx == trainer.num_training_batches - 1:
            if torch.cuda.is_available() and module.device.type == "cuda":
                torch.cuda.synchronize()
            self._ended = time.perf_counter()

    def on_validation_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if trainer.sanity_checking or self._steps == 0:
            return
        row = {"epoch": trainer.current_epoch + 1}
        if self._loss_sum is not None:
            row["train_loss"] = float(self._loss_sum) / self._steps
        if "val_loss" in trainer.callback_metrics:
            row["val_loss"] = float(trainer.callback_metrics["val_loss"])
        row["lr"] = float(trainer.optimizers[0].param_groups[0]["lr"])
        row["train_seconds"] = self._ended - self._started
        row["images_per_second"] = self._images / max(row["train_seconds"], 1e-9)
        self.epochs = [r for r in self.epochs if r["epoch"] != row["epoch"]] + [row]

    def state_dict(self) -> dict[str, Any]:
        return {"epochs": self.epochs}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.epochs = list(state_dict.get("epochs", []))
