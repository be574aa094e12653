"""Next-character models of text (seed 3's character-level LSTM): trained on the cross-entropy
of the character after each window; measured in bits per character beside an n-gram baseline."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor

from ..callbacks import TextSamples
from ..config import Dimension, EvalSettings, RunConfig, TrainSettings
from ..data.text import TextData, WindowBatches, load_text, ngram_baseline
from ..limits import INFERENCE_BATCH
from ..models import get_entry, resolve_params
from ..nets.base import TextModel
from ..progress import stage
from .base import Family, RunFolder, ScheduledSystem, ScheduleSettings, check_finite, printable

if TYPE_CHECKING:
    from ..registry import ModelEntry


@dataclass(frozen=True)
class TextSettings(ScheduleSettings):
    """How a text model trains: the common settings and the schedule (its data need no more)."""


class TextSystem(ScheduledSystem):
    """Trains a next-character model with categorical cross-entropy on the character after each
    window; logs the loss (nats per character) and the accuracy. RMSprop is Keras' (rho 0.9,
    epsilon 1e-7), as the seed's ``RMSprop(lr=0.01)`` was."""

    optimizer_options = {"rmsprop": {"alpha": 0.9, "eps": 1e-7}}

    def _shared_step(self, batch: tuple[Tensor, Tensor], stage: str, batch_idx: int = 0) -> Tensor:
        inputs, targets = batch  # (B, maxlen) indices, (B,) the next characters
        logits = self.model(inputs).float()
        loss = F.cross_entropy(logits, targets)
        if stage == "train":
            check_finite(loss, self.current_epoch, batch_idx)
        self._accumulate(stage, len(inputs), loss=loss, accuracy=(logits.argmax(-1) == targets).float().mean())
        return loss


class TextFamily(Family):
    """Text models: the data are a corpus name or a UTF-8 file; batches are windows of it."""

    name = "text"
    system = TextSystem
    settings = TextSettings
    headline = ("test_bits_per_char", "test_accuracy")
    val_metrics = ("val_loss", "val_accuracy")
    item = "windows"

    def loss_label(self, settings: TrainSettings) -> str:
        return "cross-entropy of the next character (nats)"

    def load_data(self, config: RunConfig, data: Any, params: dict[str, Any]) -> TextData:
        """Load the text (its size checked against the window length as it loads); the model's
        alphabet is the text's characters unless the user gave one."""
        maxlen = params.get("maxlen", get_entry(config.model).defaults()["maxlen"])
        loaded = load_text(data, alphabet=params.get("alphabet"), min_length=maxlen + 2)
        config.params = resolve_params(config.model, **{"alphabet": loaded.alphabet, **params})
        config.data = loaded.name  # the corpus's name (pydoc-topics by default) or the file's
        return loaded

    def check_data(self, config: RunConfig, data: TextData) -> None:
        """Nothing more to check: :func:`load_text` checked the text's size against the window."""

    def run_data(self, config: RunConfig, data: Any = None) -> TextData:
        source = data if data is not None else Path(config.data_dir) if config.data_dir else config.data
        return load_text(source, alphabet=config.params["alphabet"], min_length=config.params["maxlen"] + 2)

    def batches(
        self, data: TextData, model: TextModel, settings: TrainSettings, device: torch.device | None
    ) -> tuple[Any, Any]:
        train_text, val_text = (data.train.to(device), data.val.to(device)) if device else (data.train, data.val)
        return (
            WindowBatches(
                train_text, model.maxlen, model.step, settings.batch_size, shuffle=True, seed=settings.seed, split=True
            ),
            WindowBatches(val_text, model.maxlen, 1, max(settings.batch_size, INFERENCE_BATCH)),
        )

    def callbacks(
        self, run: RunFolder, model: TextModel, data: TextData, settings: TrainSettings, val_batches: Any
    ) -> list[L.Callback]:
        return [TextSamples(run.path / "samples.txt", data.val[: model.maxlen], seed=settings.seed)]

    @torch.no_grad()
    def evaluate(
        self,
        run: RunFolder,
        model: TextModel,
        data: TextData,
        write_figures: bool,
        options: EvalSettings,
        batch_size: int = INFERENCE_BATCH,
    ) -> dict[str, Any]:
        """Next-character loss (nats), bits per character and accuracy on every character of the
        validation and test texts that has ``maxlen`` characters before it, beside the n-gram
        baseline's bits per character on the same characters."""
        model.eval()
        metrics: dict[str, Any] = {"alphabet_size": len(data.alphabet)}
        for split, text in (("val", data.val), ("test", data.test)):
            loss, correct, count = 0.0, 0, 0
            batches = WindowBatches(text, model.maxlen, 1, batch_size)
            with stage(f"{split} bits per character ({len(text):,} characters)", total=len(batches)) as step:
                for inputs, targets in batches:
                    logits = model(inputs).float()
                    loss += F.cross_entropy(logits, targets, reduction="sum").item()
                    correct += int((logits.argmax(-1) == targets).sum())
                    count += len(targets)
                    step.advance()
            metrics.update(
                {
                    f"{split}_loss": loss / count,
                    f"{split}_bits_per_char": loss / count / math.log(2),
                    f"{split}_accuracy": correct / count,
                    f"{split}_characters": count,
                }
            )
        with stage("n-gram baseline"):
            metrics.update(ngram_baseline(data, model.maxlen))
        metrics["bits_vs_ngram"] = metrics["test_bits_per_char"] / metrics["ngram_test_bits_per_char"]
        return metrics

    def report(self, metrics: dict[str, Any]) -> list[str]:
        m = printable(metrics)
        return [
            f"{metrics['model']} on {metrics['data']} ({metrics['test_characters']} test characters, alphabet "
            f"{metrics['alphabet_size']}):",
            f"  test {m['test_bits_per_char']:.3f} bits/char ({m['test_loss']:.4f} nats), accuracy "
            f"{m['test_accuracy']:.3f}; {metrics['ngram_n']}-gram baseline {m['ngram_test_bits_per_char']:.3f} "
            f"bits/char ({m['bits_vs_ngram']:.2f}x)",
        ]

    def search_space(self, entry: ModelEntry) -> list[Dimension]:
        return super().search_space(entry) + [Dimension("units", choices=(64, 128, 256))]
