"""What every family shares: the :class:`Family` object, and the pieces its LightningModule
systems use (the settings check, the non-finite-loss stop, optimisers by name).

A family says, in one place, everything aelab does differently for one kind of model: which
system trains it and which settings that system honours, whether it needs labels, what data it
reads and how batches are made, its callbacks, its evaluation and figures, the lines the CLI
prints after training, the metrics the web page and tuning tables show, and its default search
space. Nothing outside ``families/`` branches on the kind of model.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import Tensor

from ..config import LAUNCH, Dimension, EvalSettings, RunConfig, TrainSettings
from ..errors import AelabError, opt

if TYPE_CHECKING:
    import lightning as L

    from ..registry import ModelEntry
    from ..runs import Run

OPTIMIZERS = {
    "adam": torch.optim.Adam,
    "adadelta": torch.optim.Adadelta,
    "rmsprop": torch.optim.RMSprop,
    "sgd": torch.optim.SGD,
}

# the settings every system honours; each system adds its own in ``honours``
COMMON = (
    "epochs",
    "batch_size",
    "lr",
    "optimizer",
    "seed",
    "init",
    "val_fraction",
    "precision",
    "channels_last",
    "stream",
    *LAUNCH,
)


class NonFiniteLoss(AelabError):
    """The loss became NaN or infinite: training stops here (the weights are not updated with it)."""

    def __init__(self, epoch: int, step: int | str, value: float) -> None:
        where = f"step {step}" if isinstance(step, int) else step
        super().__init__(f"the loss became {value} at epoch {epoch}, {where}")


def check_finite(loss: Tensor, epoch: int, step: int | str) -> None:
    if not torch.isfinite(loss):
        raise NonFiniteLoss(epoch + 1, step if isinstance(step, str) else step + 1, float(loss.detach()))


def make_optimizer(name: str, params, lr: float, **options) -> torch.optim.Optimizer:
    """The optimiser by name; Adam uses PyTorch's fused kernel (one pass over all weights)."""
    if name == "adam":
        options.setdefault("fused", True)
    return OPTIMIZERS[name](params, lr=lr, **options)


class SettingsCheck:
    """Each system declares the settings it honours; one it does not is refused, in one line, before
    anything is written (``check``). A system is built from the run's :class:`TrainSettings` alone."""

    honours: ClassVar[tuple[str, ...]] = COMMON
    monitor: ClassVar[str | None] = "val_loss"  # what checkpoints, early stopping and the plateau schedule watch

    @classmethod
    def check(cls, model_name: str, settings: TrainSettings, explicit: set[str]) -> None:
        ignored = [name for name in explicit if name not in cls.honours]
        if ignored:
            raise AelabError(
                f"{model_name} does not use the setting {ignored[0]} (--{ignored[0].replace('_', '-')}); "
                f"it uses: {', '.join(cls.honours)}"
            )
        if "lr_patience" in explicit and not (settings.schedule == "plateau" and settings.reduce_lr):
            why = opt("schedule", "cosine") if settings.schedule != "plateau" else opt("reduce_lr", False)
            raise AelabError(f"{model_name}: {opt('lr_patience')} is for the plateau schedule, which {why} turns off")


class Family:
    """One family of models. Subclasses fill in the class attributes and override what differs."""

    name: ClassVar[str]
    system: ClassVar[type[L.LightningModule]]
    needs_labels: ClassVar[bool] = False  # batches carry each image's class label
    headline: ClassVar[tuple[str, ...]] = ()  # the metrics a table of runs shows (web page, tuning)
    val_metrics: ClassVar[tuple[str, ...]] = ("val_loss",)  # what its system logs each epoch (tuning's --metric)
    item: ClassVar[str] = "img"  # what a training step counts, for the per-epoch line's speed

    # ------------------------------------------------------------------ training

    def honours(self) -> tuple[str, ...]:
        return self.system.honours

    def check(self, model_name: str, settings: TrainSettings, explicit: set[str]) -> None:
        """Refuse a setting the family's system does not use (one line), before anything is read."""
        self.system.check(model_name, settings, explicit)

    def build_system(self, model: torch.nn.Module, settings: TrainSettings) -> L.LightningModule:
        return self.system(model, settings)

    def load_data(self, config: RunConfig, data: Any, params: dict[str, Any]) -> Any:
        """Load the training data; set the parameters that follow from it in ``config.params``."""
        raise NotImplementedError

    def run_data(self, config: RunConfig, data: Any = None) -> Any:
        """The data a run was trained on (or ``data`` instead), in the run's model's input shape."""
        raise NotImplementedError

    def batches(
        self, data: Any, model: torch.nn.Module, settings: TrainSettings, device: torch.device | None
    ) -> tuple[Any, Any]:
        """The training and validation batches (on ``device`` where not None)."""
        raise NotImplementedError

    def callbacks(
        self, run: Run, model: torch.nn.Module, data: Any, settings: TrainSettings, val_batches: Any
    ) -> list[L.Callback]:
        """The callbacks that write into the run folder while it trains (the main process only)."""
        return []

    # ------------------------------------------------------------------ evaluation and reports

    def evaluate(
        self, run: Run, model: torch.nn.Module, data: Any, write_figures: bool, options: EvalSettings
    ) -> dict[str, Any]:
        """The family's test metrics (and figures, with ``write_figures``); ``options`` says which
        of the costly extras to measure. Each stage reports through :func:`aelab.progress.stage`."""
        raise NotImplementedError

    def report(self, metrics: dict[str, Any]) -> list[str]:
        """The lines ``aelab train`` and ``aelab eval`` print about these metrics."""
        return []

    def loss_label(self, settings: TrainSettings) -> str:
        """What the training loss is, with its unit: curves.png's y-axis."""
        return "loss"

    def curve_lines(self, settings: TrainSettings, metrics: dict) -> list[tuple[float, str]]:
        """Reference lines for curves.png, in the loss's terms, from the run's metrics: (value, label)."""
        return []

    # ------------------------------------------------------------------ tuning

    def search_space(self, entry: ModelEntry) -> list[Dimension]:
        """A sensible default search space: the learning rate (log-uniform around its default) and
        the batch size; families add what they have free."""
        lr = entry.train.lr
        return [
            Dimension("lr", lr / 10, min(lr * 10, 1.0) if lr < 1 else lr * 3, log=True),
            Dimension("batch_size", choices=(64, 128, 256)),
        ]


class Number:
    """A metric for printing: metrics.json writes a value that was not finite as null."""

    def __init__(self, value: float | None) -> None:
        self.value = value

    def __format__(self, spec: str) -> str:
        return "n/a" if self.value is None else format(self.value, spec)


def printable(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: Number(v) if isinstance(v, (int, float)) or v is None else v for k, v in metrics.items()}
