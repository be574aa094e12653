"""Local files as :class:`~aelab.data.memory.ImageData`: IDX files (the MNIST format), ``.npy``/
``.npz`` arrays, and folders of image files read whole (a folder too large streams instead:
:mod:`aelab.data.streaming`)."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..arrays import whole_number_pixels
from ..errors import AelabError
from .images import folder_classes, folder_layout, image_files, image_to_tensor, read_image
from .memory import CHANNELS, UNLABELLED, ImageData, channels_first, held_out_split, to_float


def read_idx(path: Path) -> Tensor:
    """An IDX file (the MNIST format, http://yann.lecun.com/exdb/mnist/), gzipped or not, as a uint8 tensor."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
        zero, dtype, ndim = struct.unpack(">HBB", raw[:4])
        dims = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
        if zero != 0 or dtype != 0x08:
            raise ValueError("not an unsigned-byte IDX file")
        body = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
        return torch.from_numpy(body.reshape(dims).copy())
    except (OSError, EOFError, struct.error, ValueError) as error:
        raise AelabError(f"corrupt IDX file {path}: {error}") from None


def load_idx_dir(folder: Path, name: str) -> ImageData:
    def find(kind: str, split: str) -> Path | None:
        hits = sorted(folder.glob(f"*{split}*-{kind}-idx*-ubyte*"))
        return hits[0] if hits else None

    train_path, test_path = find("images", "train"), find("images", "t10k") or find("images", "test")
    if train_path is None:
        images = sorted(folder.glob("*-images-idx3-ubyte*"))
        x = to_float(read_idx(images[0]))
        return held_out_split(name, x, None)
    labels = [find("labels", "train"), find("labels", "t10k") or find("labels", "test")]
    train, test = to_float(read_idx(train_path)), None
    if test_path is None:
        y = read_idx(labels[0]).long() if labels[0] else None
        return held_out_split(name, train, y)
    test = to_float(read_idx(test_path))
    train_y, test_y = (read_idx(p).long() if p else None for p in labels)
    return ImageData(name, train, test, train_y, test_y)


def load_arrays(paths: list[Path], name: str) -> ImageData:
    """``.npz`` with x_train/x_test (and y_train/y_test), as keras' mnist.npz; or one image array."""
    path = paths[0]
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as loaded:
                arrays = {k: loaded[k] for k in loaded.files}
        else:
            arrays = {"x": np.load(path, allow_pickle=False)}
    except Exception as error:  # numpy raises many types for a damaged file
        raise AelabError(f"cannot read array file {path}: {error}") from None
    if "x_train" in arrays and "x_test" in arrays:
        train, test = array_images(arrays["x_train"], path), array_images(arrays["x_test"], path)
        return ImageData(
            name,
            train,
            test,
            array_labels(arrays.get("y_train"), len(train), path),
            array_labels(arrays.get("y_test"), len(test), path),
        )
    key = next((k for k in ("x", "images", "arr_0", "x_train") if k in arrays), None)
    if key is None:
        raise AelabError(f"{path} holds {sorted(arrays)}; expected x_train/x_test or one array named x or images")
    x = array_images(arrays[key], path)
    labels = next((arrays[k] for k in ("y", "labels", "y_train") if k in arrays), None)
    return held_out_split(name, x, array_labels(labels, len(x), path))  # a fixed 20% held out for test


def array_labels(y: np.ndarray | None, n: int, path: Path) -> Tensor | None:
    """Class labels: one integer per image, or a one-line error."""
    if y is None:
        return None
    if y.ndim != 1 or len(y) != n or y.dtype.kind not in "ui":
        raise AelabError(f"{path}: labels must be {n} integers, one per image; got {y.dtype} shaped {y.shape}")
    if len(y) and y.min() < UNLABELLED:
        raise AelabError(
            f"{path}: labels must be class numbers from 0, or {UNLABELLED} for an image without one; got {y.min()}"
        )
    return torch.from_numpy(y.astype(np.int64))


def array_images(array: np.ndarray, path: Path | str) -> Tensor:
    if array.size == 0:
        raise AelabError(f"{path}: the image array is empty, shaped {array.shape}")
    if array.ndim == 2 and int(np.sqrt(array.shape[1])) ** 2 == array.shape[1]:
        side = int(np.sqrt(array.shape[1]))
        array = array.reshape(-1, side, side)
    array = channels_first(array)
    if array.ndim != 4 or array.shape[0] == 0 or min(array.shape) == 0:
        raise AelabError(f"{path}: expected images shaped (N, H, W), (N, H, W, C) or (N, C, H, W), got {array.shape}")
    if array.shape[1] not in CHANNELS:
        raise AelabError(
            f"{path}: images need 1 (gray), 3 (colour) or 2/4 (with alpha) channels, "
            f"got {array.shape[1]} in {array.shape}"
        )
    if array.dtype.kind not in "uif":
        raise AelabError(f"{path}: expected numeric pixel values, got {array.dtype}")
    if array.dtype.kind in "ui":  # whole numbers of any width: 8-bit levels (0-255), or 0/1
        return whole_number_pixels(torch.from_numpy(np.ascontiguousarray(array)), str(path))
    x = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
    if not torch.isfinite(x).all():
        raise AelabError(f"{path}: the images hold NaN or infinite values")
    if x.min() < 0 or x.max() > 1:
        raise AelabError(
            f"{path}: {array.dtype} pixel values must lie in [0, 1], got {float(x.min()):.4g} to "
            f"{float(x.max()):.4g} (8-bit levels: give whole numbers 0-255)"
        )
    return x


def load_image_folder(folder: Path, name: str, size: int) -> ImageData:
    files = image_files(folder)
    images = [read_image(p) for p in files]
    channels = 3 if any(img.mode != "L" for img in images) else 1
    x = torch.stack([image_to_tensor(img, channels, size) for img in images])
    train, test, labels = folder_layout(folder, files)

    def pick(t, i):
        return None if t is None else t[i]

    return ImageData(
        name,
        x[train].contiguous(),
        x[test].contiguous(),
        pick(labels, train),
        pick(labels, test),
        folder_classes(folder, files) if labels is not None else None,
    )
