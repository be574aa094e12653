"""The anomaly package's checks of what it is given: choices, contamination, images, models."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from ..errors import AelabError
from ..nets.base import Autoencoder, Conditional


def check_choice(name: str, value: Any, choices: Any) -> None:
    if value not in choices:
        raise AelabError(f"unknown {name} {value!r}; choose {', '.join(choices)}")


def check_contamination(contamination: Any) -> None:
    if not isinstance(contamination, (int, float)) or isinstance(contamination, bool) or not 0 < contamination <= 0.5:
        raise AelabError(f"contamination must be a number in (0, 0.5], as in PyOD, got {contamination!r}")


def check_detector_model(model: torch.nn.Module, name: str) -> None:
    """An autoencoder without labels, which anomaly scores need."""
    if not isinstance(model, Autoencoder):
        raise AelabError(f"anomaly scores need an autoencoder; {name} is not one")
    if isinstance(model, Conditional):
        raise AelabError(f"{name} needs each image's label; anomaly scores take an autoencoder without labels")


def as_images(X: Any) -> torch.Tensor:
    """Images as a tensor; flat rows (N, D) become (N, 1, s, s) where D = s * s, (N, 3, s, s)
    where D = 3 * s * s."""
    if isinstance(X, np.ndarray):
        X = torch.from_numpy(X)
    if not isinstance(X, torch.Tensor):
        raise AelabError(f"images come as a tensor or numpy array, got {type(X).__name__}")
    if len(X) == 0:
        raise AelabError("no images to score")
    if X.dim() == 2:
        width = X.shape[1]
        for channels in (1, 3):
            side = math.isqrt(width // channels)
            if channels * side * side == width:
                return X.reshape(len(X), channels, side, side)
        raise AelabError(
            f"flat rows of {width} values are not square images (one channel: s*s values; RGB: "
            "3*s*s); pass images shaped (N, H, W) or (N, C, H, W)"
        )
    return X
