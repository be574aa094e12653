"""The Python API's arrays: the one type convention every function that takes or returns images
or codes keeps, and :class:`Dataset`, a dataset as numpy arrays.

The convention (README, "Python API"); :mod:`aelab.datasets` gives datasets in it:

- **Same kind out as in.** A numpy array in gives numpy out; a torch tensor in gives a tensor out
  (on the CPU). Functions that take no array (``sample``, ``encode_split``, ``latent``, ...)
  return numpy, as :func:`load_data` does.
- **Images out** are float32 ``(N, C, H, W)`` in [0, 1]. **Images in** may be ``(N, H, W)``,
  ``(N, C, H, W)`` or ``(N, H, W, C)``, uint8 0-255 or floats in [0, 1], as training takes them.
- **Figures**: every ``*_figure`` function returns the ``Path`` of the PNG it wrote.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor

from .errors import AelabError, InputError
from .limits import check_memory


class Dataset(NamedTuple):
    """A dataset as numpy arrays: images float32 (N, C, H, W) in [0, 1], labels int64 (N,) or
    None (-1: an image without one), the class names (or None) and the dataset's name.
    ``aelab.train(model, data=dataset)`` trains on it, labels and all."""

    x_train: np.ndarray
    y_train: np.ndarray | None
    x_test: np.ndarray
    y_test: np.ndarray | None
    classes: tuple[str, ...] | None
    name: str

    def __repr__(self) -> str:
        c, h, w = self.x_train.shape[1:]
        classes = "no labels" if self.classes is None else f"{len(self.classes)} classes"
        return (
            f"Dataset({self.name!r}: {len(self.x_train):,} training and {len(self.x_test):,} test images of "
            f"{c}x{h}x{w}, {classes})"
        )


def as_tensor(x: Any, what: str = "x") -> tuple[Tensor, bool]:
    """``x`` (numpy, torch, or a list of numbers) as a CPU tensor, and whether the caller gave
    numpy (or a list), to answer in the same kind (:func:`like`)."""
    if isinstance(x, Tensor):
        return x.detach().cpu(), False
    if isinstance(x, np.ndarray):
        if x.dtype.kind not in "uif":
            raise AelabError(f"{what} must hold numbers, got an array of {x.dtype}")
        # a broadcast view takes no memory until copied: its copy, and the float32 result beside it
        check_memory(f"{what} shaped {x.shape}", x.size * (x.itemsize * (not x.flags.c_contiguous) + 4))
        return torch.from_numpy(np.ascontiguousarray(x)), True
    if isinstance(x, (list, tuple)):
        try:
            return torch.as_tensor(np.asarray(x, dtype=np.float32)), True
        except (TypeError, ValueError):
            pass
    raise AelabError(f"{what} must be a numpy array or a torch tensor, got {type(x).__name__}")


def whole_number_pixels(x: Tensor, what: str) -> Tensor:
    """Whole-number pixels of any width as float32 in [0, 1]: uint8 divided by 255; other integers
    8-bit levels (0-255, divided by 255) or 0/1 (as they are); anything else one line naming ``what``."""
    if x.dtype == torch.uint8:
        return x.float() / 255.0
    low, high = (int(v) for v in torch.aminmax(x)) if x.numel() else (0, 0)
    if low < 0 or high > 255:
        raise InputError(
            f"{what}: whole-number pixel values must be 8-bit levels from 0 to 255, got {low} to {high} ({x.dtype})"
        )
    return x.float() / (255.0 if high > 1 else 1.0)


def like(result: Tensor, numpy: bool) -> Tensor | np.ndarray:
    """``result`` in the kind the caller gave: numpy when ``numpy``, else a CPU tensor."""
    result = result.detach().cpu()
    return result.numpy() if numpy else result
