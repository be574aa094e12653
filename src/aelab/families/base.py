"""What every family shares: the :class:`Family` object, and the pieces its LightningModule
systems use (the settings check, the non-finite-loss stop, optimisers by name).

A family says, in one place, everything aelab does differently for one kind of model: which
system trains it and its settings class, whether it needs labels, what data it
reads and how batches are made, its callbacks, its evaluation and figures, the lines the CLI
prints after training, the metrics the web page and tuning tables show, and its default search
space. Nothing outside ``families/`` branches on the kind of model.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol

import lightning as L
import torch
from lightning.pytorch.callbacks import EarlyStopping
from torch import Tensor

from ..config import Dimension, EvalSettings, RunConfig, TrainSettings
from ..errors import AelabError, opt
from ..values import setting

if TYPE_CHECKING:
    from ..registry import ModelEntry

OPTIMIZERS = {
    "adam": torch.optim.Adam,
    "adadelta": torch.optim.Adadelta,
    "rmsprop": torch.optim.RMSprop,
    "sgd": torch.optim.SGD,
}

ScheduleName = Literal["plateau", "cosine"]


@dataclass(frozen=True)
class ScheduleSettings(TrainSettings):
    """The learning-rate schedule and early stopping, for the families whose systems watch a
    validation loss (autoencoders, VAEs, the classifier, text models)."""

    schedule: ScheduleName = setting("plateau", "learning-rate schedule: plateau (reduce on plateau) or cosine")
    reduce_lr: bool = setting(True, "plateau schedule: divide the learning rate by 10 when val_loss stalls")
    lr_patience: int = setting(5, "plateau schedule: epochs without improvement before the learning rate drops", low=1)
    early_stopping: bool = setting(True, "stop when val_loss has not improved for --patience epochs")
    patience: int = setting(10, "early-stopping patience in epochs", low=1)


class RunFolder(Protocol):
    """What a family reads of a run folder (:class:`aelab.Run` is one): where it is and its
    config.json. (A protocol, so the families need not import the run folder's module, which
    reads their settings.)"""

    path: Path

    @property
    def config(self) -> RunConfig: ...


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
    """What a system checks of its settings beyond each value's type and range (``check``: one
    line, before anything is written); a system is built from the run's settings alone."""

    monitor: ClassVar[str | None] = "val_loss"  # what checkpoints, early stopping and the plateau schedule watch

    @classmethod
    def check(cls, model_name: str, settings: TrainSettings, explicit: set[str]) -> None:
        """Nothing beyond each value's type and range, which the settings class checks."""


class ScheduledSystem(SettingsCheck, L.LightningModule):
    """What the systems trained on one loss with a validation loss share (autoencoders and text
    models): the optimiser by name, the plateau or cosine schedule, and the epoch's losses summed
    as tensors and logged once per epoch. Subclasses write ``_shared_step``."""

    optimizer_options: dict[str, dict] = {}  # per optimiser name, options other than the learning rate
    LR_FACTOR = 0.1  # seed 3's ReduceLROnPlateau: divide the learning rate by 10 when val_loss stalls

    @classmethod
    def check(cls, model_name: str, settings: ScheduleSettings, explicit: set[str]) -> None:
        super().check(model_name, settings, explicit)
        if "lr_patience" in explicit and not (settings.schedule == "plateau" and settings.reduce_lr):
            why = opt("schedule", "cosine") if settings.schedule != "plateau" else opt("reduce_lr", False)
            raise AelabError(f"{model_name}: {opt('lr_patience')} is for the plateau schedule, which {why} turns off")

    def __init__(self, model: torch.nn.Module, settings: ScheduleSettings) -> None:
        super().__init__()
        self.model, self.settings = model, settings
        self.lr_patience = settings.lr_patience if settings.reduce_lr else None
        self._epoch_sums: dict[str, dict[str, Tensor]] = {}
        self._epoch_counts: dict[str, int] = {}

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
                self.log(
                    f"{stage}_{name}", total / count, prog_bar=name == "loss", sync_dist=self.trainer.world_size > 1
                )

    def configure_callbacks(self) -> list[L.Callback]:
        """Early stopping on the validation loss (Lightning adds a system's own callbacks)."""
        if not (self.settings.early_stopping and self.monitor):
            return []
        return [EarlyStopping(monitor=self.monitor, patience=self.settings.patience)]

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        return self._shared_step(batch, "train", batch_idx)

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        return self._shared_step(batch, "val")

    def configure_optimizers(self):
        name = self.settings.optimizer
        optimizer = make_optimizer(
            name, self.model.parameters(), self.settings.lr, **self.optimizer_options.get(name, {})
        )
        if self.settings.schedule == "cosine":
            epochs = self.trainer.max_epochs
            return {
                "optimizer": optimizer,
                "lr_scheduler": torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, epochs),
            }
        if self.lr_patience is None:
            return optimizer
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, factor=self.LR_FACTOR, patience=self.lr_patience
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "monitor": "val_loss"}}


class Family(ABC):
    """One family of models: every hook aelab calls on a family is declared here, abstract where
    a family must write it (its data, batches and evaluation); the rest have defaults. Subclasses
    fill in the class attributes and override what differs. Nothing outside ``families/`` reads a
    family's own settings: it asks the family (``input_noise``, ``report``, ...)."""

    name: ClassVar[str]
    system: ClassVar[type[L.LightningModule]]
    settings: ClassVar[type[TrainSettings]] = TrainSettings  # its settings: TrainSettings and its own
    needs_labels: ClassVar[bool] = False  # batches carry each image's class label
    headline: ClassVar[tuple[str, ...]] = ()  # the metrics a table of runs shows (web page, tuning)
    val_metrics: ClassVar[tuple[str, ...]] = ("val_loss",)  # what its system logs each epoch (tuning's --metric)
    item: ClassVar[str] = "img"  # what a training step counts, for the per-epoch line's speed
    registered: ClassVar[dict[str, type[Family]]] = {}  # every family class naming itself, by name

    def __init_subclass__(cls, **options: Any) -> None:
        """A subclass that sets its own ``name`` is a family: importing its module registers it
        (``families/__init__.py`` imports each family's module, one line)."""
        super().__init_subclass__(**options)
        if "name" in cls.__dict__:
            Family.registered[cls.name] = cls

    # ------------------------------------------------------------------ training

    def default_settings(self, entry: ModelEntry) -> TrainSettings:
        """A registered model's training defaults (``register_model(..., train={...})``) as this
        family's settings; a registration naming a setting the family lacks, or a parameter named
        as one of its settings, is a bug in the registration."""
        names = self.settings.names()
        unknown = sorted(set(entry.train) - set(names))
        if unknown:
            raise ValueError(f"model {entry.name}: {self.settings.__name__} has no setting {unknown[0]!r}")
        clash = sorted(set(entry.defaults()) & set(names))  # aelab.train(**kwargs) takes both by name
        if clash:
            raise ValueError(
                f"model {entry.name}: parameter {clash[0]!r} is also a setting of {self.settings.__name__}"
            )
        return self.settings(**entry.train)

    def check(self, model_name: str, settings: TrainSettings, explicit: set[str]) -> None:
        """Refuse a setting the family's system does not use (one line), before anything is read."""
        self.system.check(model_name, settings, explicit)

    def on_device(self, settings: TrainSettings, device: str) -> TrainSettings:
        """``settings`` with what follows from the device they train on settled (recorded so)."""
        return settings

    def initialise(self, model: torch.nn.Module, settings: TrainSettings) -> None:
        """Set a new model's initial weights where the family's settings choose them (nothing by
        default: PyTorch's layer defaults)."""
        return None

    def build_system(self, model: torch.nn.Module, settings: TrainSettings) -> L.LightningModule:
        return self.system(model, settings)

    @abstractmethod
    def load_data(self, config: RunConfig, data: Any, params: dict[str, Any]) -> Any:
        """Load the training data; set the parameters that follow from it in ``config.params``."""

    @abstractmethod
    def run_data(self, config: RunConfig, data: Any = None) -> Any:
        """The data a run was trained on (or ``data`` instead), in the run's model's input shape."""

    @abstractmethod
    def check_data(self, config: RunConfig, data: Any) -> None:
        """Refuse data training cannot use (too few items, labels missing or out of range: one
        line), before anything is written."""

    def check_labels(self, config: RunConfig, data: Any) -> None:
        """Refuse labels the family's models cannot learn from (one line); nothing to check by default."""
        return None

    @abstractmethod
    def batches(
        self, data: Any, model: torch.nn.Module, settings: TrainSettings, device: torch.device | None
    ) -> tuple[Any, Any]:
        """The training and validation batches (on ``device`` where not None)."""

    def batch_options(self, settings: TrainSettings) -> dict[str, Any]:
        """What the family's batches hold beside the items: ``data.batches``' ``noise`` (noised
        inputs) and ``labelled`` (labels, and which fraction of them is used)."""
        return {}

    def input_noise(self, settings: TrainSettings) -> float:
        """The noise the family's models see on their inputs in training (a denoiser's; 0.0: none):
        what evaluation, ensembles and the web page add to the images they show a model."""
        return float(self.batch_options(settings).get("noise", 0.0))

    def callbacks(
        self, run: RunFolder, model: torch.nn.Module, data: Any, settings: TrainSettings, val_batches: Any
    ) -> list[L.Callback]:
        """The callbacks that write into the run folder while it trains (the main process only)."""
        return []

    # ------------------------------------------------------------------ evaluation and reports

    @abstractmethod
    def evaluate(
        self, run: RunFolder, model: torch.nn.Module, data: Any, write_figures: bool, options: EvalSettings
    ) -> dict[str, Any]:
        """The family's test metrics (and figures, with ``write_figures``); ``options`` says which
        of the costly extras to measure. Each stage reports through :func:`aelab.progress.stage`."""

    def report(self, metrics: dict[str, Any]) -> list[str]:
        """The lines ``aelab train`` and ``aelab eval`` print about these metrics."""
        return []

    def head_report(self, metrics: dict[str, Any], m: dict[str, Any]) -> list[str]:
        """Lines ``report`` adds for a model with a head beside its decoder (a classifier's
        accuracy); ``m``: the metrics as printable numbers. None by default."""
        return []

    def loss_label(self, settings: TrainSettings) -> str:
        """What the training loss is, with its unit: curves.png's y-axis."""
        return "loss"

    def loss_parts(self, settings: TrainSettings) -> dict[str, str]:
        """The terms of the loss its system logs (``val_NAME``), each with its label: curves.png
        draws them dashed beside the loss. By default the usual reconstruction and KL terms."""
        return {"recon": "reconstruction term", "kl": "KL term"}

    def loss_metric(self, settings: TrainSettings) -> str | None:
        """The test metric the training loss is, where it is one (curves.png draws a published
        number of that metric beside the loss)."""
        return None

    def curve_lines(self, settings: TrainSettings, metrics: dict) -> list[tuple[float, str]]:
        """Reference lines for curves.png, in the loss's terms, from the run's metrics: (value, label)."""
        return []

    # ------------------------------------------------------------------ tuning

    def search_space(self, entry: ModelEntry) -> list[Dimension]:
        """A sensible default search space: the learning rate (log-uniform around its default) and
        the batch size; families add what they have free."""
        lr = self.default_settings(entry).lr
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
