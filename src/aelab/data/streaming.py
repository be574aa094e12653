"""Image folders larger than memory: decoded lazily in DataLoader workers, cached as uint8 shards.

A folder streams with ``--stream`` (``stream=True``), or by default when its images, decoded to
float32 at the model's input size, would take more than :data:`STREAM_BYTES`. Then:

- the training images are read in shards of :data:`SHARD_SIZE` files: a DataLoader's worker
  processes decode and resize a shard's files and write it to a cache of memory-mapped uint8
  ``.npy`` files (``$AELAB_DATA_HOME/../streams/KEY/``, KEY naming the files, their sizes and
  times, and the input shape), so every later epoch (and every later run on the same folder)
  reads the cache instead of decoding;
- each epoch shuffles the order of the shards and the images inside each shard (the files were
  dealt to shards in a fixed random order, so a shard is a random mix of the folder);
- validation, test and the training images that evaluation uses (the PCA floor, the training
  error) are at most :data:`HELD_IN_MEMORY` images each, a fixed random choice, held in memory.

Memory stays flat as the folder grows: the workers hold a few shards, not the dataset.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Iterator
from functools import cached_property
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..distributed import rank_and_world
from ..errors import AelabError
from .images import cache_dir, folder_classes, folder_layout, image_to_tensor, read_image
from .memory import TensorBatches, training_split, validation_batches

STREAM_BYTES = 2 * 1024**3  # float32 bytes of decoded images above which a folder streams by default
SHARD_SIZE = 1024  # images per cached shard
HELD_IN_MEMORY = 10_000  # the most validation, test or evaluation-sample images held in memory


def stream_cache_root() -> Path:
    """Where decoded shards are kept: beside the dataset cache (``$AELAB_DATA_HOME``)."""

    return cache_dir().parent / "streams"


def decoded_bytes(n: int, channels: int, size: int) -> int:
    return n * channels * size * size * 4


def decode(files: list[Path], channels: int, size: int) -> np.ndarray:
    """Image files as one uint8 array (N, C, size, size); a file that is not an image is one line."""

    out = np.empty((len(files), channels, size, size), dtype=np.uint8)
    for i, path in enumerate(files):
        out[i] = (image_to_tensor(read_image(path), channels, size) * 255).round_().to(torch.uint8).numpy()
    return out


class ShardedImages(torch.utils.data.Dataset):
    """A list of image files as shards of :data:`SHARD_SIZE`: item k is (images uint8 (n, C, H, W),
    their indices in the list), decoded on first use and read from the cache after."""

    def __init__(
        self, files: list[Path], channels: int, size: int, shard_size: int | None = None, root: Path | None = None
    ) -> None:
        self.files, self.channels, self.size = files, channels, size
        shard_size = self.shard_size = shard_size or SHARD_SIZE
        key = hashlib.sha1(f"{channels}x{size}/{shard_size}".encode())
        for path in files:
            stat = path.stat()
            key.update(f"\0{path.resolve()}\0{stat.st_size}\0{stat.st_mtime_ns}".encode())
        self.cache = (root or stream_cache_root()) / key.hexdigest()[:20]

    def __len__(self) -> int:
        return -(-len(self.files) // self.shard_size)

    def shard_path(self, k: int) -> Path:
        return self.cache / f"shard_{k:06d}.npy"

    def __getitem__(self, k: int) -> tuple[Tensor, Tensor]:
        start = k * self.shard_size
        indices = torch.arange(start, min(start + self.shard_size, len(self.files)))
        path = self.shard_path(k)
        if path.is_file():
            try:
                return torch.from_numpy(np.array(np.load(path, mmap_mode="r"))), indices
            except (OSError, ValueError):
                pass  # a damaged shard (a disk filled up?) is decoded again and replaced
        images = decode(self.files[start : start + self.shard_size], self.channels, self.size)
        self.cache.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.npy")  # written whole, then renamed
        np.save(partial, images)
        os.replace(partial, path)
        return torch.from_numpy(images), indices

    def cached(self) -> int:
        """How many shards the cache holds."""
        return sum(self.shard_path(k).is_file() for k in range(len(self)))


class StreamBatches:
    """Training batches (inputs, targets[, labels]) from :class:`ShardedImages`, float32 in [0, 1].

    A sized iterable, as Lightning takes it. Each epoch: shards in a new order, read by
    ``workers`` DataLoader processes, images shuffled inside each shard. In a multi-process run,
    each process reads its share of the full shards (the same order on every process, dealt by
    rank) and takes the same number of steps; the images of the last, partial shard then sit out.
    """

    def __init__(
        self, shards: ShardedImages, batch_size: int, seed: int = 0, workers: int = 1, labels: Tensor | None = None
    ) -> None:
        self.shards, self.batch_size, self.seed, self.workers = shards, batch_size, seed, workers
        self.labels = labels
        self.epoch = 0

    def _steps(self, world: int) -> int | None:
        """Each process's steps an epoch in a run of ``world`` processes (None for one process:
        every image, the last batch partial)."""
        if world == 1:
            return None
        each = len(self.shards.files) // self.shards.shard_size // world  # full shards per process
        if each == 0:
            raise AelabError(
                f"{len(self.shards.files)} streamed images make fewer full shards of "
                f"{self.shards.shard_size} than there are processes ({world})"
            )
        return each * self.shards.shard_size // self.batch_size

    def _plan(self) -> tuple[list[int], int | None]:
        """This process's shards this epoch, and its number of steps (None: all its images)."""
        order = torch.randperm(
            len(self.shards), generator=torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        ).tolist()
        rank, world = rank_and_world()
        steps = self._steps(world)
        if steps is None:
            return order, None
        full = [k for k in order if (k + 1) * self.shards.shard_size <= len(self.shards.files)]
        return full[rank::world][: len(full) // world], steps

    def __len__(self) -> int:
        steps = self._steps(rank_and_world()[1])
        return -(-len(self.shards.files) // self.batch_size) if steps is None else steps

    def __iter__(self) -> Iterator[tuple[Tensor, ...]]:
        order, steps = self._plan()
        generator = torch.Generator().manual_seed(self.seed * 7_919 + self.epoch)
        self.epoch += 1
        loader = torch.utils.data.DataLoader(
            torch.utils.data.Subset(self.shards, order),
            batch_size=None,
            num_workers=self.workers,
            prefetch_factor=2 if self.workers else None,
        )
        try:
            yield from self._batches(loader, generator, steps)
        except AelabError as error:  # raised in a worker: torch wraps it with the worker's traceback
            raise AelabError(str(error).strip().splitlines()[-1].removeprefix("aelab.errors.AelabError: ")) from None

    def _batches(self, loader, generator: torch.Generator, steps: int | None) -> Iterator[tuple[Tensor, ...]]:
        shards = self.shards
        left = torch.empty((0, shards.channels, shards.size, shards.size), dtype=torch.uint8)  # last shard's rest
        left_at = torch.empty(0, dtype=torch.long)  # their indices in the file list
        taken = 0
        for images, indices in loader:
            mix = torch.randperm(len(images), generator=generator)
            pool, at = torch.cat([left, images[mix]]), torch.cat([left_at, indices[mix]])
            full = len(pool) // self.batch_size * self.batch_size
            for start in range(0, full, self.batch_size):
                if steps is not None and taken == steps:
                    return
                yield self._batch(pool[start : start + self.batch_size], at[start : start + self.batch_size])
                taken += 1
            left, left_at = pool[full:], at[full:]
        if len(left) and steps is None:
            yield self._batch(left, left_at)

    def _batch(self, images: Tensor, indices: Tensor) -> tuple[Tensor, ...]:
        x = images.float().div_(255.0)
        return (x, x) if self.labels is None else (x, x, self.labels[indices])


class FolderStream:
    """An image folder's files, split as :func:`aelab.data.load_image_folder` splits them
    (``train``/``test`` sub-folders, else a fixed 20% for test; class sub-folders give labels),
    with the images decoded only when used. Quacks like :class:`~aelab.data.ImageData` for the
    code that evaluates a run: ``train`` and ``test`` are held-in-memory samples of at most
    :data:`HELD_IN_MEMORY` images."""

    def __init__(
        self,
        name: str,
        train_files: list[Path],
        test_files: list[Path],
        channels: int,
        size: int,
        train_labels: Tensor | None,
        test_labels: Tensor | None,
        classes: tuple[str, ...] | None = None,
    ) -> None:
        self.name, self.train_files, self.test_files = name, train_files, test_files
        self.channels, self.size = channels, size
        self.all_train_labels, self.all_test_labels = train_labels, test_labels
        self.classes = classes  # the class sub-folders' names by label number, as ImageData's

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.channels, self.size, self.size

    def __len__(self) -> int:
        return len(self.train_files)

    def _decode(self, files: list[Path]) -> Tensor:
        return torch.from_numpy(decode(files, self.channels, self.size)).float().div_(255.0)

    @staticmethod
    def _held(n: int) -> Tensor:
        """Which of ``n`` files are held in memory: all of them, or a fixed random choice of
        :data:`HELD_IN_MEMORY` in their order."""
        if n <= HELD_IN_MEMORY:
            return torch.arange(n)
        return torch.from_numpy(np.sort(np.random.default_rng(0).choice(n, HELD_IN_MEMORY, replace=False)))

    def _held_images(self, files: list[Path]) -> Tensor:
        return self._decode([files[i] for i in self._held(len(files))])

    def _held_labels(self, labels: Tensor | None) -> Tensor | None:
        return None if labels is None else labels[self._held(len(labels))]

    @cached_property
    def train(self) -> Tensor:
        """A fixed sample of the training images, for evaluation (the PCA floor, the training error)."""
        return self._held_images(self.train_files)

    @cached_property
    def test(self) -> Tensor:
        return self._held_images(self.test_files)

    train_labels = property(lambda self: self._held_labels(self.all_train_labels))
    test_labels = property(lambda self: self._held_labels(self.all_test_labels))

    @property
    def n_train(self) -> int:
        return len(self.train_files)

    @property
    def n_test(self) -> int:
        return len(self.test_files)

    def batches(
        self,
        batch_size: int,
        val_fraction: float,
        seed: int,
        labelled: float | None = None,
        noise: float = 0.0,
        device: torch.device | None = None,
    ) -> tuple[StreamBatches, TensorBatches]:
        """As :meth:`aelab.data.memory.ImageData.batches` (the same :func:`training_split`): the
        training files' shards read lazily (on ``workers`` processes), the validation images (at
        most :data:`HELD_IN_MEMORY`) decoded and held in memory."""
        split = training_split(self.n_train, self.all_train_labels, val_fraction, seed, labelled, HELD_IN_MEMORY)
        shards = ShardedImages([self.train_files[i] for i in split.train.tolist()], self.channels, self.size)
        val_x = self._decode([self.train_files[i] for i in split.val.tolist()])
        return (
            StreamBatches(shards, batch_size, seed=seed, workers=default_workers(), labels=split.train_labels),
            validation_batches(val_x, split.val_labels, noise, batch_size, device),
        )


def folder_stream(name: str, files: list[Path], folder: Path, channels: int | None, size: int) -> FolderStream:
    """The files of an image folder as a :class:`FolderStream`, each file's header checked.
    Channels: the model's, or colour where any file is not grayscale (as in memory)."""
    from PIL import Image

    colour = False
    for path in files:  # every file's header (not its pixels): a file that is no image fails here, not mid-run
        try:
            with Image.open(path) as img:
                colour = colour or img.mode not in ("L", "1", "I", "I;16", "F")
        except Image.DecompressionBombError:  # as read_image says it, for a folder held in memory
            raise AelabError(
                f"{path} has more pixels than PIL's safety limit ({Image.MAX_IMAGE_PIXELS:,}); resize it first"
            ) from None
        except (OSError, SyntaxError, ValueError) as error:
            raise AelabError(f"{path} is not a readable image ({type(error).__name__})") from None
    if channels is None:
        channels = 3 if colour else 1
    train, test, labels = folder_layout(folder, files)

    def pick(idx):
        return None if labels is None else labels[idx]

    return FolderStream(
        name,
        [files[i] for i in train],
        [files[i] for i in test],
        channels,
        size,
        pick(train),
        pick(test),
        folder_classes(folder, files) if labels is not None else None,
    )


def default_workers() -> int:
    """DataLoader worker processes for a stream: half the CPUs (the rest train), 1 to 4."""
    return max(1, min(4, (os.cpu_count() or 2) // 2))
