"""Datasets as the Python API gives them: :func:`load_data` (numpy arrays with labels and class
names, :class:`aelab.arrays.Dataset`), and the copy of its arrays a run trained on arrays keeps,
so the tools that read its data later need no ``data=``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from .arrays import Dataset
from .data import ImageData, array_images, array_labels, resolve_data
from .errors import AelabError
from .outputs import created


def load_data(name: str | Path = "mnist-sample") -> Dataset:
    """A dataset by name (``aelab.list_datasets()``) or a folder (IDX files, image files with
    class sub-folders, .npy/.npz arrays) as a :class:`Dataset` of numpy arrays, as Keras'
    ``load_data`` gives them (but channels-first floats, the layout every aelab function returns)."""
    if not isinstance(name, (str, Path)):
        raise AelabError(f"load_data takes a dataset name or a folder, got {type(name).__name__}")
    loaded = resolve_data(Path(name) if isinstance(name, Path) else name, stream=False)
    if not isinstance(loaded, ImageData):  # pragma: no cover - stream=False holds every source in memory
        raise AelabError(f"{name} could not be held in memory")
    labels = lambda t: None if t is None else t.numpy().astype(np.int64)  # noqa: E731
    return Dataset(
        loaded.train.numpy(),
        labels(loaded.train_labels),
        loaded.test.numpy(),
        labels(loaded.test_labels),
        loaded.classes,
        loaded.name,
    )


RUN_ARRAYS = "data.npz"  # a run trained on arrays keeps them here, for the tools that read its data later
RUN_ARRAYS_LIMIT = 256 * 2**20  # bytes; larger arrays are not copied (the tools then ask for data=)


def keep_run_arrays(folder: Path, data: Any) -> Path | None:
    """Write a run's arrays (an ImageData) to ``folder``/data.npz, as uint8 where they came from 8-bit
    images, when they fit in :data:`RUN_ARRAYS_LIMIT`; returns the file, or None."""
    splits = {"x_train": data.train, "x_test": data.test}
    levels = {k: (x * 255).round() for k, x in splits.items()}  # 8-bit images are exactly these levels / 255
    exact = all(torch.equal(levels[k] / 255, x) for k, x in splits.items())
    size = sum(x.numel() for x in splits.values()) * (1 if exact else 4)
    if size > RUN_ARRAYS_LIMIT:
        return None
    arrays = {k: levels[k].to(torch.uint8).numpy() if exact else x.numpy() for k, x in splits.items()}
    for key, labels in (("y_train", data.train_labels), ("y_test", data.test_labels)):
        if labels is not None:
            arrays[key] = labels.numpy()
    if data.classes is not None:
        arrays["classes"] = np.array(data.classes)
    arrays["name"] = np.array(data.name)
    path = folder / RUN_ARRAYS
    np.savez_compressed(path, **arrays)
    return created(path)


def read_run_arrays(path: Path):
    """The arrays :func:`keep_run_arrays` wrote, as an ImageData (one line if the file is damaged)."""
    try:
        # our own handle: numpy leaves the file it opened unclosed when a damaged zip fails to read
        with open(path, "rb") as file, np.load(file, allow_pickle=False) as stored:
            arrays = {k: stored[k] for k in stored.files}
        train, test = array_images(arrays["x_train"], path), array_images(arrays["x_test"], path)
        classes = tuple(str(c) for c in arrays["classes"]) if "classes" in arrays else None
        return ImageData(
            str(arrays["name"]),
            train,
            test,
            array_labels(arrays.get("y_train"), len(train), path),
            array_labels(arrays.get("y_test"), len(test), path),
            classes,
        )
    except AelabError:
        raise
    except Exception as error:  # numpy raises many kinds for a damaged file
        raise AelabError(
            f"{path} is damaged ({type(error).__name__}: {error}); pass the data again (data=...)"
        ) from None
