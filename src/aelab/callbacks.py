"""Lightning callbacks of aelab's own: the per-epoch history that ``curves.png`` draws."""

from __future__ import annotations

import logging
import time
from collections import Counter
from typing import Any

import lightning as L
import torch

from .outputs import created

log = logging.getLogger("aelab")


class History(L.Callback):
    """Records every epoch-level ``train_*``/``val_*`` metric, the learning rate and throughput.

    Throughput counts the training steps only (first batch start to last batch end), so it is
    the number the speed benchmark compares against a plain PyTorch loop. Place it before
    ModelCheckpoint (``save_on_train_epoch_end=True``) so ``last.ckpt`` holds the finished epoch
    and a resumed run keeps its whole curve.
    """

    def __init__(self) -> None:
        self.epochs: list[dict[str, float]] = []
        self._images = 0
        self._started = self._ended = 0.0
        self._threads: Counter[int] = Counter()  # steps at each thread count this epoch (they may adapt)

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
        if batch_idx == 0:
            self._started, self._images = time.perf_counter(), 0
            self._threads.clear()
        self._threads[torch.get_num_threads()] += 1

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        self._images += len(batch[0])
        # every batch moves the end: an epoch cut short (a time budget) ends at its last batch too
        if batch_idx == trainer.num_training_batches - 1 and module.device.type == "cuda":
            torch.cuda.synchronize()
        self._ended = time.perf_counter()

    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        row: dict[str, float] = {"epoch": trainer.current_epoch + 1, "step": trainer.global_step}
        for key, value in sorted(trainer.callback_metrics.items()):
            if key.startswith(("train_", "val_")):
                row[key] = float(value)
        row["lr"] = float(trainer.optimizers[0].param_groups[0]["lr"])
        row["train_seconds"] = self._ended - self._started
        # all processes together (each takes an equal share of the epoch)
        row["images_per_second"] = self._images * trainer.world_size / max(row["train_seconds"], 1e-9)
        # this process's, for most of the epoch's steps (several processes on a CPU share its cores)
        row["threads"] = self._threads.most_common(1)[0][0] if self._threads else torch.get_num_threads()
        self.epochs = [r for r in self.epochs if r["epoch"] != row["epoch"]] + [row]

    def state_dict(self) -> dict[str, Any]:
        return {"epochs": self.epochs}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.epochs = list(state_dict.get("epochs", []))


class EpochLines(L.Callback):
    """One line per epoch, as Keras' ``verbose=2`` prints it: the epoch, the optimiser steps so far,
    the epoch's losses and validation metrics (``history``'s row, which must run first), the
    training speed, the epoch's wall time and the time left. What a log captured to a file holds."""

    def __init__(self, history: History, unit: str = "img", cpu: bool = True) -> None:
        self.history, self.unit, self.cpu = history, unit, cpu
        self._started = 0.0
        self._seconds: list[float] = []

    def on_train_epoch_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self._started = time.perf_counter()

    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        from .progress import duration, say

        if not self.history.epochs:
            return
        row = self.history.epochs[-1]
        seconds = time.perf_counter() - self._started
        self._seconds.append(seconds)
        epoch, total = int(row["epoch"]), trainer.max_epochs or int(row["epoch"])
        values = [
            f"{key.removeprefix('train_')} {row[key]:.4g}"
            for key in row
            if key.startswith("train_") and key != "train_seconds"
        ]
        values += [f"{key} {row[key]:.4g}" for key in row if key.startswith("val_")]
        left = (total - epoch) * sum(self._seconds[-3:]) / len(self._seconds[-3:])
        count = int(row.get("threads") or 0)
        threads = f"  {count} thread{'s' if count != 1 else ''}" if self.cpu and count else ""
        say(
            f"epoch {epoch}/{total}  step {trainer.global_step:,}  "
            + "  ".join(values)
            + f"  {row['images_per_second']:,.0f} {self.unit}/s{threads}  {seconds:.1f}s"
            + (f"  ETA {duration(left)}" if epoch < total else "")
        )


class TextSamples(L.Callback):
    """After every epoch, ``length`` characters after a fixed prompt at each of seed 3's
    temperatures, as its training loop prints them: appended to ``path`` (RUN/samples.txt) and
    written to TensorBoard's text tab."""

    def __init__(
        self,
        path,
        prompt: torch.Tensor,
        length: int = 400,
        seed: int = 0,
        temperatures: tuple[float, ...] = (0.2, 0.5, 1.0, 1.2),
    ) -> None:
        self.path, self.prompt, self.length, self.seed, self.temperatures = path, prompt, length, seed, temperatures

    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        from .data.text import decode

        model = module.model
        was_training = model.training
        model.eval()
        alphabet = model.alphabet
        lines = [f"=== epoch {trainer.current_epoch + 1}, prompt {decode(self.prompt, alphabet)!r}"]
        for temperature in self.temperatures:
            generator = torch.Generator().manual_seed(self.seed)
            with torch.autocast(module.device.type, enabled=False):
                text = decode(model.generate(self.prompt, self.length, temperature, generator), alphabet)
            lines.append(f"--- temperature {temperature}\n{text}")
            for logger in trainer.loggers:
                if hasattr(logger.experiment, "add_text"):
                    logger.experiment.add_text(f"samples/temperature {temperature}", text, trainer.current_epoch + 1)
        model.train(was_training)
        with open(self.path, "a", encoding="utf-8") as file:
            file.write("\n".join(lines) + "\n\n")


class SampleGrid(L.Callback):
    """Writes a grid of samples from fixed latent points after every epoch (RUN/samples/epoch-NNN.png)
    and to TensorBoard, so a GAN's progress (or collapse) can be watched while it trains."""

    def __init__(self, folder, n: int = 64, seed: int = 0) -> None:
        self.folder, self.n, self.seed = folder, n, seed

    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        from torchvision.utils import make_grid, save_image

        model = module.model
        was_training = model.training
        model.eval()
        with torch.no_grad(), torch.autocast(module.device.type, enabled=False):
            images = model.sample(self.n, torch.Generator().manual_seed(self.seed)).float().cpu()
        model.train(was_training)
        grid = make_grid(images, nrow=8, padding=1, pad_value=1.0)
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"epoch-{trainer.current_epoch + 1:03d}.png"
        save_image(grid, path)
        created(path)
        for logger in trainer.loggers:
            if hasattr(logger.experiment, "add_image"):
                logger.experiment.add_image("samples", grid, trainer.current_epoch + 1)


def _tensorboard(trainer: L.Trainer):
    """The TensorBoard writer among the trainer's loggers, or None."""
    return next((logger.experiment for logger in trainer.loggers if hasattr(logger.experiment, "add_histogram")), None)


class ActivationLog(L.Callback):
    """Seed 3's custom callback: after every epoch, the output of every layer for a fixed batch of
    validation images, saved as ``folder/epoch_NNN.npz`` (one float16 array per layer, named by
    the layer's path in the model, plus ``inputs``), and each layer's histogram in TensorBoard
    (the seed's ``histogram_freq=1``)."""

    def __init__(self, folder, images: torch.Tensor, labels: torch.Tensor | None = None) -> None:
        self.folder, self.images, self.labels = folder, images, labels

    @torch.no_grad()
    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        import numpy as np

        model = module.model
        outputs = layer_outputs(model, self.images.to(module.device), self.labels)
        epoch = trainer.current_epoch + 1
        self.folder.mkdir(parents=True, exist_ok=True)
        arrays = {name: value.float().cpu().numpy().astype(np.float16) for name, value in outputs.items()}
        path = self.folder / f"epoch_{epoch:03d}.npz"
        np.savez_compressed(path, inputs=self.images.cpu().numpy(), **arrays)
        created(path)
        writer = _tensorboard(trainer)
        if writer is not None:
            for name, value in outputs.items():
                writer.add_histogram(f"activations/{name}", value.float().cpu(), epoch)


@torch.no_grad()
def layer_outputs(
    model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor | None = None
) -> dict[str, torch.Tensor]:
    """The output of every leaf layer of ``model`` (in eval mode) for ``images``, by layer name in
    call order (a layer called twice keeps its last output)."""
    names = {module: name for name, module in model.named_modules()}
    outputs: dict[str, torch.Tensor] = {}

    def record(module: torch.nn.Module, _inputs, output) -> None:
        if isinstance(output, torch.Tensor):
            outputs[names[module]] = output.detach().clone()  # in-place activations overwrite their input

    hooks = [m.register_forward_hook(record) for m in model.modules() if not list(m.children())]
    was_training = model.training
    model.eval()
    try:
        with torch.autocast(images.device.type, enabled=False):
            model(images, *(() if labels is None else (labels.to(images.device),)))
    finally:
        model.train(was_training)
        for hook in hooks:
            hook.remove()
    return outputs


class EmbeddingLog(L.Callback):
    """The codes of a fixed set of validation images, with their labels and thumbnails, written to
    TensorBoard's embedding projector after every epoch (the seed's ``embeddings_freq=1``)."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor | None = None, model_labels: bool = False) -> None:
        self.images, self.labels, self.model_labels = images, labels, model_labels

    @torch.no_grad()
    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        writer = _tensorboard(trainer)
        if writer is None:
            return
        model = module.model
        was_training = model.training
        model.eval()
        with torch.autocast(module.device.type, enabled=False):
            given = (self.labels.to(module.device),) if self.model_labels else ()
            codes = model.encode(self.images.to(module.device), *given).flatten(1).float().cpu()
        model.train(was_training)
        metadata = None if self.labels is None else [str(int(label)) for label in self.labels]
        writer.add_embedding(
            codes,
            metadata=metadata,
            label_img=self.images.float().cpu(),
            global_step=trainer.current_epoch + 1,
            tag="codes",
        )
