"""What the image families share: loading image data, cutting batches (held in memory or
streamed from a folder), the callbacks that write into a run folder while it trains, and the
evaluation of models that draw new images (sample quality, sample grids, the 2-D manifold)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import lightning as L
import torch
from torch import Tensor

from .. import figures
from .. import latent_space as latent
from ..callbacks import SampleGrid
from ..config import EvalSettings, RunConfig, TrainSettings
from ..data import ARRAYS, ImageData, TrainingData, resolve_data
from ..errors import AelabError, opt
from ..frechet import sample_quality
from ..limits import INFERENCE_BATCH, MAX_SIDE, check_count
from ..models import get_entry, resolve_params
from ..nets.base import Conditional, Generative
from ..nets.blocks import initialise
from ..progress import stage
from ..values import setting
from .base import Family, RunFolder

InitName = Literal["torch", "glorot"]


@dataclass(frozen=True)
class ImageSettings(TrainSettings):
    """What every model of images has: its initial weights, the validation split, the memory
    format and how a folder is read."""

    init: InitName = setting(
        "torch",
        "initial weights: torch (PyTorch's layer defaults) or glorot (Glorot-uniform "
        "weights and zero biases: Keras' and CNTK's defaults, which the seeds trained "
        "with)",
    )
    val_fraction: float = setting(
        0.1, "fraction of the training images held out for validation", low=0, high=1, open_low=True, open_high=True
    )
    channels_last: bool | None = setting(None, "channels-last memory format (default: on for the CPU)")
    stream: bool | None = setting(
        None,
        "image folders (--data-dir): decode the images in worker processes as "
        "training reads them and cache them on disk as uint8 shards, for folders "
        "larger than memory (default: when the decoded images would pass 2 GiB)",
    )


class ImageFamily(Family):
    """Models of images: the data are a dataset name, a folder or arrays; batches are
    (inputs, targets[, labels]) slices of tensors in memory, or shards of a streamed folder."""

    settings = ImageSettings

    def load_data(self, config: RunConfig, data: Any, params: dict[str, Any]) -> TrainingData:
        """Load the data; the model's input shape follows it unless the user set in_channels/in_size."""
        defaults = get_entry(config.model).defaults()
        if "in_size" in params:  # before the images are resized to it
            check_count("in_size", params["in_size"], 1, MAX_SIDE)
        size = params.get("in_size") if "in_size" in params or config.data_dir else None
        loaded = resolve_data(data, channels=params.get("in_channels"), size=size, stream=config.train.stream)
        c, h, _ = loaded.shape
        if c not in (1, 3):
            raise AelabError(f"{config.data}: images with {c} channels; aelab takes gray (1) or colour (3) images")
        from_data = {"in_channels": c, "in_size": h}
        labels = loaded.all_train_labels
        if "classes" in defaults and labels is not None and len(labels):
            from_data["classes"] = int(labels.max()) + 1
        config.params = resolve_params(
            config.model, **params, **{k: v for k, v in from_data.items() if k in defaults and k not in params}
        )
        config.input_shape = (c, h, h)
        return loaded

    def check_data(self, config: RunConfig, data: TrainingData) -> None:
        """Enough images to train, validate and test on; labels where the family learns from them."""
        n_train, n_test = data.n_train, data.n_test
        n_val = max(1, int(round(n_train * config.train.val_fraction)))
        if n_train - n_val < 1 or n_test < 1:
            raise AelabError(
                f"{data.name} has {n_train} training and {n_test} test image(s); training "
                f"needs at least {n_val + 1} training images ({n_val} held out for validation) and 1 "
                "test image"
            )
        if self.needs_labels:
            self.check_labels(config, data)

    def check_labels(self, config: RunConfig, data: ImageData) -> None:
        """A model that learns from labels needs them, within its classes (one line if not)."""
        where = "labels come from a folder's class sub-folders, IDX label files or y_train/y_test arrays"
        if data.train_labels is None or data.test_labels is None:
            split = "training" if data.train_labels is None else "test"
            raise AelabError(
                f"{config.model} learns from class labels, and {data.name} has no {split} labels ({where})"
            )
        classes = config.params["classes"]
        for split, labels in (("training", data.train_labels), ("test", data.test_labels)):
            if len(labels) and int(labels.max()) >= classes:
                raise AelabError(
                    f"{data.name}: {split} label {int(labels.max())} is outside the model's {classes} "
                    f"classes (0 to {classes - 1}); set {opt('param', 'classes=N')}"
                )

    def run_data(self, config: RunConfig, data: Any = None) -> ImageData:
        if config.input_shape is None:
            raise AelabError("config.json has no input_shape: the run never started training")
        if data is None:
            if config.data == ARRAYS:
                raise AelabError(
                    "this run was trained on arrays handed to aelab.train, too large to keep a copy in "
                    "the run folder; pass the data to use (data=...)"
                )
            data = Path(config.data_dir) if config.data_dir else config.data
        stream = config.train.stream if isinstance(data, (str, Path)) and Path(data).is_dir() else None
        return resolve_data(data, channels=config.input_shape[0], size=config.input_shape[1], stream=stream)

    def on_device(self, settings: ImageSettings, device: str) -> ImageSettings:
        """Channels-last memory on the CPU unless the settings say (it pays for convolutions there)."""
        return settings if settings.channels_last is not None else settings.updated(channels_last=device == "cpu")

    def initialise(self, model: torch.nn.Module, settings: ImageSettings) -> None:
        """PyTorch's layer defaults, or Glorot-uniform weights (``init``)."""
        initialise(model, settings.init)

    def batches(
        self,
        data: TrainingData,
        model: torch.nn.Module,
        settings: TrainSettings,
        device: torch.device | None,
    ) -> tuple[Any, Any]:
        return data.batches(
            settings.batch_size, settings.val_fraction, settings.seed, device=device, **self.batch_options(settings)
        )

    def callbacks(
        self, run: RunFolder, model: torch.nn.Module, data: Any, settings: TrainSettings, val_batches: Any
    ) -> list[L.Callback]:
        """A sample grid per epoch for a generative model."""
        return [SampleGrid(run.path / "samples")] if isinstance(model, Generative) else []

    def evaluate(
        self, run: RunFolder, model: torch.nn.Module, data: ImageData, write_figures: bool, options: EvalSettings
    ) -> dict[str, Any]:
        return {"test_images": len(data.test)}

    def report(self, metrics: dict[str, Any]) -> list[str]:
        return [f"{metrics['model']} on {metrics['data']} ({metrics['test_images']} test images):"]


def sample_metrics(
    run: RunFolder,
    model: Generative,
    data: ImageData,
    write_figures: bool,
    options: EvalSettings,
    draw: Callable[[int, torch.Generator], Tensor] | None = None,
) -> dict[str, Any]:
    """Sample quality (:mod:`aelab.frechet`) of ``options.quality_samples`` samples (unless
    ``options.quality`` is off), and the sample grid (a row per class for a conditional model; the
    decoded prior quantiles too for a 2-D latent). ``draw(n, generator)`` draws them (default: the
    model's prior; a mixture's for a model without one)."""
    name = run.config.model
    draw = draw or model.sample
    count = options.quality_samples if options.quality else 100
    started = time.perf_counter()
    with stage(f"drawing {count:,} samples", total=-(-count // INFERENCE_BATCH)) as step:
        generated = []
        starts = enumerate(range(0, count, INFERENCE_BATCH))
        for i, start in starts:  # seeded per thousand: the same samples at any count
            generated.append(draw(min(INFERENCE_BATCH, count - start), torch.Generator().manual_seed(i)))
            step.advance()
        generated = torch.cat(generated)
    sampled = time.perf_counter() - started
    if options.quality:
        metrics = sample_quality(generated, data)
        metrics["fd_seconds"] = round(metrics.get("fd_seconds", 0.0) + sampled, 2)  # drawing the samples too
    else:
        metrics = {"fd_classifier": None, "fd_note": "sample quality not measured (quality off)"}
    if write_figures and isinstance(model, Conditional):  # a row of samples per class
        names = [figures.class_label(k, data.classes) for k in range(len(data.classes))] if data.classes else None
        figures.grid(
            latent.class_samples(model, per_class=10),
            run.path / "samples.png",
            nrow=10,
            row_labels=names,
            title=f"{name}: samples, a row per class",
        )
    elif write_figures:
        figures.grid(generated[:100], run.path / "samples.png", nrow=10, title=f"{name}: samples")
        if isinstance(model, Generative) and model.latent_dim == 2:
            figures.manifold(
                latent.manifold(model),
                latent.quantile_grid(15),
                run.path / "manifold.png",
                title=f"{name}: the decoded latent grid",
            )
    return metrics


def sample_report(metrics: dict[str, Any], m: dict[str, Any]) -> list[str]:
    """The sample-quality lines: the Fréchet distance beside its floor, and what evaluation cost."""
    if metrics.get("fd_classifier") is None:
        return []
    lines = [f"  fd_classifier {m['fd_classifier']:.2f} (floor, train vs test: {m['fd_classifier_floor']:.2f})"]
    spent = [
        f"{name} {metrics[key]:.1f} s"
        for key, name in (("bounds_seconds", "ELBO/IWAE bounds"), ("fd_seconds", "10,000 samples and their distance"))
        if metrics.get(key) is not None
    ]
    lines.append(f"  evaluation time: {', '.join(spent)}")
    if metrics.get("fd_classifier_train_seconds"):
        lines.append(
            f"  (plus {metrics['fd_classifier_train_seconds']:.1f} s, once per dataset: training the "
            "feature classifier behind fd_classifier; later runs reuse it)"
        )
    return lines
