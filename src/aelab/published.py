"""The numbers the seeds and their sources published for their experiments (all on MNIST's
60,000 training digits), by registered model and the parameters that differ from its defaults:
what `aelab report` and benchmarks/reproduce.py put beside ours. Torch-free."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "Published",
    "PUBLISHED",
    "TOLERANCE",
    "published_for",
    "published_for_run",
]  # the public names of aelab.published

TOLERANCE = 0.10  # a published number is met by ours within 10% of it, or better


@dataclass(frozen=True)
class Published:
    model: str
    metric: str  # the metrics.json key it compares with
    value: float
    said: str  # as published
    source: str
    params: dict[str, Any] = field(default_factory=dict)  # the experiment's parameters beyond the model's defaults

    def met(self, ours: float) -> bool:
        """Whether ``ours`` meets the number: within ``TOLERANCE`` of it, or better (lower)."""
        return ours <= self.value * (1 + TOLERANCE)


PUBLISHED = [
    Published("conv-resize", "test_bce", 0.10, "loss curve only (BCE ~0.10 after 20 epochs, figure)", "seed 1"),
    Published("dense-32", "test_bce", 0.10, "BCE ~0.09-0.11", "seed 2 / Keras blog"),
    Published("deep-32", "test_bce", 0.0885, "BCE ~0.08-0.097", "seed 2 / Keras blog"),
    Published(
        "sparse-32",
        "test_bce",
        0.10,
        "BCE 0.11 train / 0.10 test; mean code activation 3.33 (7.30 without L1)",
        "seed 2 / Keras blog",
    ),
    Published("conv", "test_bce", 0.094, "BCE 0.094", "seed 2 / Keras blog"),
    Published("conv-transpose", "test_bce", 0.0622, "validation BCE 0.0622", "keras-io"),
    Published("conv-transpose-denoise", "test_bce", 0.0839, "validation BCE 0.0839", "keras-io"),
    Published("conv-unpool", "test_rmse", 0.223, "RMSE 0.225 train / 0.223 test", "seed 4 (CNTK)"),
    Published("conv-unpool", "test_rmse", 0.196, "RMSE 0.196", "seed 4 (CNTK)", {"channels": (3,)}),
    Published("conv-unpool", "test_rmse", 0.131, "RMSE 0.136 train / 0.131 test", "seed 4 (CNTK)", {"pool": 2}),
]


def published_for(model: str, params: dict[str, Any], defaults: dict[str, Any]) -> Published | None:
    """The published number for a run of ``model`` with ``params`` (``defaults``: the model's own),
    or None: an experiment matches when the run's parameters that differ from the defaults are
    exactly the experiment's."""
    differ = {k: v for k, v in params.items() if k in defaults and not _same(defaults[k], v)}
    for entry in PUBLISHED:
        if (
            entry.model == model
            and set(differ) == set(entry.params)
            and all(_same(differ[k], v) for k, v in entry.params.items())
        ):
            return entry
    return None


def _same(a: Any, b: Any) -> bool:
    as_key = lambda v: tuple(v) if isinstance(v, (list, tuple)) else v  # noqa: E731  (JSON reads tuples as lists)
    return as_key(a) == as_key(b)


SEED_DATA = ("mnist", "mnist-sample")  # the published numbers are MNIST's; other data are not judged by them
SEED_TRAINING_IMAGES = 60_000  # the seeds trained on all of MNIST's training images, no hold-out


def seed_steps(epochs: int, batch_size: int) -> int:
    """Optimiser steps of a seed's training: its ``epochs`` of ``batch_size`` on 60,000 images."""
    return epochs * -(-SEED_TRAINING_IMAGES // batch_size)


def epochs_for_steps(steps: int, n_train: int, batch_size: int) -> int:
    """Epochs over ``n_train`` images in batches of ``batch_size`` that make at least ``steps``."""
    return -(-steps // -(-n_train // batch_size))


def published_for_run(config, defaults: dict[str, Any]) -> Published | None:
    """The published number for a run's :class:`~aelab.config.RunConfig` (``defaults``: its model's
    parameters, ``models.get_entry(model).defaults()``), where its data are MNIST's (the digits
    the seeds trained on)."""
    if config.data not in SEED_DATA:
        return None
    return published_for(config.model, config.params, defaults)
