"""The Python API's arrays: datasets as numpy (:func:`load_data`), and the one type convention
every function that takes or returns images or codes keeps.

The convention (README, "Python API"):

- **Same kind out as in.** A numpy array in gives numpy out; a torch tensor in gives a tensor out
  (on the CPU). Functions that take no array (``sample``, ``encode_split``, ``latent``, ...)
  return numpy, as :func:`load_data` does.
- **Images out** are float32 ``(N, C, H, W)`` in [0, 1]. **Images in** may be ``(N, H, W)``,
  ``(N, C, H, W)`` or ``(N, H, W, C)``, uint8 0-255 or floats in [0, 1], as training takes them.
- **Figures**: every ``*_figure`` function returns the ``Path`` of the PNG it wrote.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor

from .errors import AelabError


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
        return (f"Dataset({self.name!r}: {len(self.x_train):,} training and {len(self.x_test):,} test images of "
                f"{c}x{h}x{w}, {classes})")


def load_data(name: str | Path = "mnist-sample") -> Dataset:
    """A dataset by name (``aelab.list_datasets()``) or a folder (IDX files, image files with
    class sub-folders, .npy/.npz arrays) as a :class:`Dataset` of numpy arrays, as Keras'
    ``load_data`` gives them (but channels-first floats, the layout every aelab function returns)."""
    from .data import ImageData, resolve_data

    if not isinstance(name, (str, Path)):
        raise AelabError(f"load_data takes a dataset name or a folder, got {type(name).__name__}")
    loaded = resolve_data(Path(name) if isinstance(name, Path) else name, stream=False)
    if not isinstance(loaded, ImageData):  # pragma: no cover - stream=False holds every source in memory
        raise AelabError(f"{name} could not be held in memory")
    labels = lambda t: None if t is None else t.numpy().astype(np.int64)  # noqa: E731
    return Dataset(loaded.train.numpy(), labels(loaded.train_labels), loaded.test.numpy(), labels(loaded.test_labels),
                   loaded.classes, loaded.name)


RUN_ARRAYS = "data.npz"  # a run trained on arrays keeps them here, for the tools that read its data later
RUN_ARRAYS_LIMIT = 256 * 2**20  # bytes; larger arrays are not copied (the tools then ask for data=)


def keep_run_arrays(folder: Path, data: Any) -> Path | None:
    """Write a run's arrays (an ImageData) to ``folder``/data.npz, as uint8 where they came from 8-bit
    images, when they fit in :data:`RUN_ARRAYS_LIMIT`; returns the file, or None."""
    splits = {"x_train": data.train, "x_test": data.test}
    exact = all(torch.equal((x * 255).round() / 255, x) for x in splits.values())
    size = sum(x.numel() for x in splits.values()) * (1 if exact else 4)
    if size > RUN_ARRAYS_LIMIT:
        return None
    arrays = {k: (x * 255).round().to(torch.uint8).numpy() if exact else x.numpy() for k, x in splits.items()}
    for key, labels in (("y_train", data.train_labels), ("y_test", data.test_labels)):
        if labels is not None:
            arrays[key] = labels.numpy()
    if data.classes is not None:
        arrays["classes"] = np.array(data.classes)
    arrays["name"] = np.array(data.name)
    path = folder / RUN_ARRAYS
    np.savez_compressed(path, **arrays)
    return path


def read_run_arrays(path: Path):
    """The arrays :func:`keep_run_arrays` wrote, as an ImageData (one line if the file is damaged)."""
    from .data import ImageData, _array_images, _labels

    try:
        with np.load(path, allow_pickle=False) as stored:
            arrays = {k: stored[k] for k in stored.files}
        train, test = _array_images(arrays["x_train"], path), _array_images(arrays["x_test"], path)
        classes = tuple(str(c) for c in arrays["classes"]) if "classes" in arrays else None
        return ImageData(str(arrays["name"]), train, test, _labels(arrays.get("y_train"), len(train), path),
                         _labels(arrays.get("y_test"), len(test), path), classes)
    except AelabError:
        raise
    except Exception as error:  # numpy raises many kinds for a damaged file
        raise AelabError(f"{path} is damaged ({type(error).__name__}: {error}); pass the data again (data=...)") from None


def as_tensor(x: Any, what: str = "x") -> tuple[Tensor, bool]:
    """``x`` (numpy, torch, or a list of numbers) as a CPU tensor, and whether the caller gave
    numpy (or a list), to answer in the same kind (:func:`like`)."""
    if isinstance(x, Tensor):
        return x.detach().cpu(), False
    if isinstance(x, np.ndarray):
        if x.dtype.kind not in "uif":
            raise AelabError(f"{what} must hold numbers, got an array of {x.dtype}")
        return torch.from_numpy(np.ascontiguousarray(x)), True
    if isinstance(x, (list, tuple)):
        try:
            return torch.as_tensor(np.asarray(x, dtype=np.float32)), True
        except (TypeError, ValueError):
            pass
    raise AelabError(f"{what} must be a numpy array or a torch tensor, got {type(x).__name__}")


def like(result: Tensor, numpy: bool) -> Tensor | np.ndarray:
    """``result`` in the kind the caller gave: numpy when ``numpy``, else a CPU tensor."""
    result = result.detach().cpu()
    return result.numpy() if numpy else result


def channels_first(x: Tensor, channels: int) -> Tensor:
    """Images (N, H, W, C) turned to (N, C, H, W) where the last axis is the model's channels and
    the second is not (the layout training accepts); others as they are."""
    if x.ndim == 4 and x.shape[-1] == channels and x.shape[1] != channels:
        return x.permute(0, 3, 1, 2)
    return x
