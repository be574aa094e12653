"""Any form of data aelab takes (a registered dataset's name, a folder, arrays, a dict of them,
an :class:`~aelab.data.memory.ImageData`) as images in memory, or a folder that streams."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from torch import Tensor

from ..arrays import Dataset
from ..errors import AelabError, opt
from .files import array_images, array_labels, load_arrays, load_idx_dir, load_image_folder
from .images import image_files
from .memory import ImageData, held_out_split
from .names import class_names, dataset_names, loader
from .streaming import STREAM_BYTES, decoded_bytes, folder_stream

DEFAULT_DATASET = "mnist-sample"


ARRAYS = "arrays"  # the data name recorded for a run trained on arrays handed to aelab.train


def describe_source(data) -> tuple[str, str | None]:
    """What config.json records for ``data`` (see :func:`resolve_data`): its name and, for a
    folder, the folder's absolute path. A folder is named after itself."""
    if data is None:
        return DEFAULT_DATASET, None
    if isinstance(data, ImageData):
        return data.name, None
    if isinstance(data, Path) or (isinstance(data, str) and data not in dataset_names() and Path(data).exists()):
        return Path(data).resolve().name, str(Path(data).resolve())
    if isinstance(data, str):
        return data, None
    return ARRAYS, None


def resolve_data(
    data=None, channels: int | None = None, size: int | None = None, stream: bool | None = None
) -> ImageData:
    """Any form of data aelab takes, as an :class:`ImageData`:

    - a dataset name (``aelab datasets``; default ``mnist-sample``);
    - a folder (a ``Path``, or a string naming an existing folder): IDX files, images or arrays;
    - arrays or tensors: ``x_train`` or ``(x_train, x_test)``, shaped (N, H, W) or (N, C, H, W)
      (or (N, H, W, C)), uint8 or float in [0, 1]; without ``x_test`` a fixed 20% is held out;
    - a dict of them with labels: ``{"x_train": ..., "y_train": ..., "x_test": ..., "y_test": ...}``
      (``x_test``/``y_test`` optional; label -1: an image without one);
    - an :class:`ImageData`.

    A folder of image files streams (:mod:`aelab.data.streaming`) with ``stream=True``, or with
    ``stream=None`` when its decoded images would not fit comfortably in memory; other sources
    are held in memory, and ``stream=True`` is refused for them.
    """
    if isinstance(data, Dataset):  # aelab.load_data's arrays, labels and class names with them
        loaded = resolve_data({k: v for k, v in data._asdict().items() if k.startswith(("x_", "y_")) and v is not None})
        loaded.name, loaded.classes = data.name, data.classes
        return resolve_data(loaded, channels, size)
    if isinstance(data, dict):
        unknown = sorted(set(data) - {"x_train", "y_train", "x_test", "y_test"})
        if unknown or "x_train" not in data:
            raise AelabError(
                "data as a dict: give x_train, and optionally y_train, x_test and y_test"
                + (f" (not {unknown[0]!r})" if unknown else "")
            )
        if ("x_test" in data) != ("y_test" in data) and "y_train" in data:
            raise AelabError("data as a dict: give y_test with x_test (or neither)")
        x = {key: array_images(as_numpy(data[key], key), key) for key in ("x_train", "x_test") if key in data}
        y = {
            key: array_labels(as_numpy(data[key], key), len(x["x" + key[1:]]), key)
            for key in ("y_train", "y_test")
            if key in data and "x" + key[1:] in x
        }
        if "x_test" not in x:
            loaded = held_out_split(ARRAYS, x["x_train"], y.get("y_train"))
        else:
            loaded = ImageData(ARRAYS, x["x_train"], x["x_test"], y.get("y_train"), y.get("y_test"))
        return resolve_data(loaded, channels, size)
    if isinstance(data, ImageData):
        return (
            data if channels is None and size is None else data.fit_to(channels or data.shape[0], size or data.shape[1])
        )
    if data is None or isinstance(data, str) and (data in dataset_names() or not Path(data).is_dir()):
        if stream:
            raise AelabError(
                f"{opt('stream')} reads a folder of image files ({opt('data_dir')}); "
                f"{data or DEFAULT_DATASET} is held in memory"
            )
        return load_data(data or DEFAULT_DATASET, None, channels, size)
    if isinstance(data, (str, Path)):
        return load_data(None, data, channels, size, stream)
    if stream:
        raise AelabError(
            f"{opt('stream')} reads a folder of image files ({opt('data_dir')}); arrays are held in memory"
        )
    arrays = tuple(data) if isinstance(data, (tuple, list)) else (data,)
    if len(arrays) not in (1, 2):
        raise AelabError(f"data as arrays: give x_train or (x_train, x_test), got {len(arrays)} arrays")
    images = [array_images(as_numpy(a, label), label) for a, label in zip(arrays, ("x_train", "x_test"))]
    loaded = held_out_split(ARRAYS, images[0], None) if len(images) == 1 else ImageData(ARRAYS, *images)
    return resolve_data(loaded, channels, size)


def as_numpy(array, label: str) -> np.ndarray:
    if isinstance(array, Tensor):
        return array.detach().cpu().numpy()
    if isinstance(array, np.ndarray):
        return array
    raise AelabError(f"{label} must be a numpy array or a torch tensor, got {type(array).__name__}")


def load_data(
    name: str | None = "mnist-sample",
    data_dir: str | Path | None = None,
    channels: int | None = None,
    size: int | None = None,
    stream: bool | None = None,
) -> ImageData:
    """Load a dataset by name, or local files from ``data_dir``; optionally convert its shape.

    ``data_dir`` may hold MNIST-style IDX files (gzipped or not), ``.npy``/``.npz`` arrays, or
    images (PNG/JPEG/..., any size or mode; sub-folders ``train``/``test`` are used as splits,
    other sub-folders as class labels). Images in a folder are resized to ``size`` (default 28).
    """
    if data_dir is not None:
        data = load_local(Path(data_dir), name or Path(data_dir).name, size or 28, channels, stream)
        if not isinstance(data, ImageData):
            return data  # a stream: decoded at the model's input shape already
    elif (load := loader(name)) is not None:
        data = load()
        data.classes = class_names(name)
    else:
        raise AelabError(
            f"unknown dataset {name!r}; choose one of: {', '.join(dataset_names())} (or pass {opt('data_dir', 'DIR')})"
        )
    if channels is not None or size is not None:
        c, h, w = data.shape
        data = data.fit_to(channels or c, size or h)
    elif data.shape[1] != data.shape[2]:
        data = data.fit_to(data.shape[0], max(data.shape[1:]))
    return data


def load_local(folder: Path, name: str, size: int, channels: int | None = None, stream: bool | None = None):
    """The data in ``folder``: an :class:`ImageData`, or for a folder of image files that streams
    (see :func:`resolve_data`) an :class:`aelab.data.streaming.FolderStream`."""
    if not folder.exists():
        raise AelabError(f"data folder {folder} does not exist")
    if not folder.is_dir():
        raise AelabError(f"{opt('data_dir')} must be a folder, got the file {folder}")
    packed = "IDX files" if any(folder.glob("*-idx3-ubyte*")) else None
    arrays = sorted(p for p in folder.iterdir() if p.suffix in (".npy", ".npz"))
    packed = packed or (".npy/.npz arrays" if arrays else None)
    if packed and stream:
        raise AelabError(
            f"{opt('stream')} reads a folder of image files; {folder} holds {packed}, which are held in memory"
        )
    if packed == "IDX files":
        return load_idx_dir(folder, name)
    if arrays:
        return load_arrays(arrays, name)
    files = image_files(folder)
    if stream or (stream is None and streaming_pays(len(files), channels or 3, size)):
        return folder_stream(name, files, folder, channels, size)
    return load_image_folder(folder, name, size)


def streaming_pays(n: int, channels: int, size: int) -> bool:
    """True where ``n`` images, decoded to float32, would exceed :data:`aelab.data.streaming.STREAM_BYTES`."""
    return decoded_bytes(n, channels, size) > STREAM_BYTES
