"""Images held in memory: :class:`ImageData` (one float32 tensor per split, (N, C, H, W) in
[0, 1]), conversions, noise, the validation split, and :class:`TensorBatches` (batches by
slicing: no per-sample Python on the training hot path)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import NamedTuple, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..distributed import shard
from ..errors import AelabError
from ..limits import INFERENCE_BATCH, check_images
from .images import SPLIT_SEED, TEST_FRACTION, seeded_split

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
        return ImageData(
            self.name,
            fit_images(self.train, channels, size),
            fit_images(self.test, channels, size),
            self.train_labels,
            self.test_labels,
            self.classes,
        )

    # what training asks of any data it is given (a streamed folder answers the same)

    @property
    def n_train(self) -> int:
        return len(self.train)

    @property
    def n_test(self) -> int:
        return len(self.test)

    @property
    def all_train_labels(self) -> Tensor | None:
        return self.train_labels

    def batches(
        self,
        batch_size: int,
        val_fraction: float,
        seed: int,
        labelled: float | None = None,
        noise: float = 0.0,
        device: torch.device | None = None,
    ) -> tuple[TensorBatches, TensorBatches]:
        """Training and validation batches (:class:`TrainingData`): the images split by
        :func:`training_split`, the validation inputs noised by ``noise`` (their targets clean),
        on ``device``."""
        split = training_split(self.n_train, self.train_labels, val_fraction, seed, labelled)
        train_x, val_x = self.train[split.train].contiguous(), self.train[split.val].contiguous()
        train_y = split.train_labels
        if device:
            train_x = train_x.to(device)
            train_y = None if train_y is None else train_y.to(device)
        return (
            TensorBatches(train_x, batch_size=batch_size, shuffle=True, seed=seed, labels=train_y, split=True),
            validation_batches(val_x, split.val_labels, noise, batch_size, device),
        )


class TrainingData(Protocol):
    """What training reads of image data, whether held in memory (:class:`ImageData`) or streamed
    from a folder (:class:`~aelab.data.streaming.FolderStream`): one protocol, so the code that
    trains asks no question about the source, and the same seed gives the same split either way."""

    name: str
    classes: tuple[str, ...] | None

    @property
    def shape(self) -> tuple[int, int, int]: ...

    @property
    def n_train(self) -> int: ...

    @property
    def n_test(self) -> int: ...

    @property
    def all_train_labels(self) -> Tensor | None: ...

    def batches(
        self,
        batch_size: int,
        val_fraction: float,
        seed: int,
        labelled: float | None = None,
        noise: float = 0.0,
        device: torch.device | None = None,
    ) -> tuple[Iterable[tuple[Tensor, ...]], TensorBatches]: ...


class Split(NamedTuple):
    """Which training images train and which validate (indices), and the labels each side trains
    and validates with (None without ``labelled``)."""

    train: Tensor
    val: Tensor
    train_labels: Tensor | None
    val_labels: Tensor | None


def training_split(
    n: int, labels: Tensor | None, val_fraction: float, seed: int, labelled: float | None, most_val: int | None = None
) -> Split:
    """The one rule every source follows: a fixed ``val_fraction`` of the ``n`` training images
    held out for validation (by ``seed``; at most ``most_val`` of them), then, with ``labelled``,
    all but that share of the *training* images' labels hidden (:func:`hide_labels`, the same
    seed). Validation keeps every label, so its metrics measure the whole held-out set."""
    train, val = seeded_split(n, val_fraction, seed)
    val = val[:most_val]
    if labelled is None or labels is None:
        return Split(train, val, None, None)
    return Split(train, val, hide_labels(labels[train], labelled, seed), labels[val])


def validation_batches(
    images: Tensor, labels: Tensor | None, noise: float, batch_size: int, device: torch.device | None
) -> TensorBatches:
    """The validation images as batches of (noised inputs, clean targets[, labels]) on ``device``."""
    inputs = noisy_copy(images.cpu(), noise)
    if device:
        images, inputs = images.to(device), inputs.to(device)
        labels = None if labels is None else labels.to(device)
    return TensorBatches(inputs, images, batch_size=max(batch_size, INFERENCE_BATCH), labels=labels)


CHANNELS = (1, 2, 3, 4)  # gray, gray and alpha, colour, colour and alpha


def channels_first(images: Tensor | np.ndarray) -> Tensor | np.ndarray:
    """Images (N, H, W) as (N, 1, H, W), and (N, H, W, C) as (N, C, H, W) where the last axis holds
    the channels (1 to 4) and the second does not; anything else as it came (the caller checks)."""
    if images.ndim == 3:
        return images[:, None]
    if images.ndim == 4 and images.shape[-1] in CHANNELS and images.shape[1] not in CHANNELS:
        return images.movedim(-1, 1) if isinstance(images, Tensor) else np.moveaxis(images, -1, 1)
    return images


def to_float(images: Tensor | np.ndarray) -> Tensor:
    """Whole-number images (0-255) as float32 (N, C, H, W) in [0, 1]."""
    return channels_first(torch.as_tensor(images)).float().div_(255.0).contiguous()


def held_out_split(name: str, x: Tensor, labels: Tensor | None) -> ImageData:
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
        x = torch.cat(
            [
                F.interpolate(chunk, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
                for chunk in x.split(4096)
            ]
        ).clamp_(0, 1)
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

    def __init__(
        self,
        inputs: Tensor,
        targets: Tensor | None = None,
        batch_size: int = 200,
        shuffle: bool = False,
        seed: int = 0,
        labels: Tensor | None = None,
        split: bool = False,
    ) -> None:
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
