"""Image files: reading one (any format and mode) as a tensor, the files of a folder and how a
folder splits into training and test images. The lowest layer of the data code: :mod:`aelab.data`
(datasets in memory) and :mod:`aelab.data.streaming` (folders larger than memory) both read through it."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor

from ..errors import AelabError, check_file

TEST_FRACTION = 0.2  # held out, by a permutation seeded with SPLIT_SEED, when a source has no test split
SPLIT_SEED = 0
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


def seeded_split(n: int, fraction: float, seed: int) -> tuple[Tensor, Tensor]:
    """The indices of ``n`` items split in two by a permutation seeded with ``seed``: the kept ones
    and the ``fraction`` held out (at least one), the same on every machine. Every split aelab
    makes (train/test, training/validation, a streamed folder's) is this one."""
    order = torch.from_numpy(np.random.default_rng(seed).permutation(n))
    held = held_out(n, fraction)
    return order[held:], order[:held]


def held_out(n: int, fraction: float) -> int:
    """How many of ``n`` items :func:`seeded_split` holds out: ``fraction`` of them, at least one."""
    return max(1, int(round(n * fraction)))


def cache_dir() -> Path:
    """Where downloaded datasets live: ``$AELAB_DATA_HOME`` or ``~/.cache/aelab/datasets``."""
    return Path(os.environ.get("AELAB_DATA_HOME", Path.home() / ".cache" / "aelab" / "datasets"))


def image_files(folder: Path) -> list[Path]:
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))
    if not files:
        raise AelabError(f"no images (PNG, JPEG, ...), IDX files or .npy/.npz arrays in {folder}")
    return files


def folder_layout(folder: Path, files: list[Path]) -> tuple[Tensor, Tensor, Tensor | None]:
    """An image folder's split and labels: the indices of its training and test files, and every
    file's class label (None unless all files lie in class sub-folders). Sub-folders ``train`` and
    ``test`` are the split; without them, a fixed 20% is held out for test, as :func:`_split` does."""
    splits, classes = _folder_parts(folder, files)
    labels = None
    names = _class_names(classes)
    if names is not None:
        labels = torch.tensor([names.index(c) for c in classes])
    if all(s is not None for s in splits) and {"train", "test"} <= set(splits):
        train = torch.tensor([s == "train" for s in splits])
        return train.nonzero()[:, 0], (~train).nonzero()[:, 0], labels
    if len(files) < 2:
        raise AelabError(f"{folder.name}: need at least 2 images to make a train/test split, found {len(files)}")
    train, test = seeded_split(len(files), TEST_FRACTION, SPLIT_SEED)
    return train, test, labels


def _folder_parts(folder: Path, files: list[Path]) -> tuple[list[str | None], list[str | None]]:
    """Each file's split sub-folder (train/test, or None) and class sub-folder (or None)."""
    parts = [p.relative_to(folder).parts for p in files]
    splits = [ps[0] if len(ps) > 1 and ps[0] in ("train", "test") else None for ps in parts]
    return splits, [ps[-2] if len(ps) > 1 + (s is not None) else None for ps, s in zip(parts, splits)]


def folder_classes(folder: Path, files: list[Path]) -> tuple[str, ...] | None:
    """The class names of an image folder, by label number (its class sub-folders, sorted), or None."""
    return _class_names(_folder_parts(folder, files)[1])


def _class_names(classes: list[str | None]) -> tuple[str, ...] | None:
    """The sorted class names when every file lies in a class sub-folder, else None."""
    return tuple(sorted(set(classes))) if classes and all(c is not None for c in classes) else None


def read_image(path: str | Path) -> Image.Image:
    """Open an image file as 'L' (grayscale) or 'RGB'; alpha is composited onto black."""
    path = check_file(path, "image")
    try:
        with Image.open(path) as img:
            img.load()
    except Image.DecompressionBombError:
        raise AelabError(
            f"{path} has more pixels than PIL's safety limit ({Image.MAX_IMAGE_PIXELS:,}); resize it first"
        ) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as error:
        raise AelabError(f"{path} is not a readable image ({type(error).__name__})") from None
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        img = img.convert("RGBA")
        background = Image.new("RGBA", img.size, (0, 0, 0, 255))
        img = Image.alpha_composite(background, img).convert("RGB")
    if img.mode in ("1", "I", "I;16", "F"):
        img = img.convert("L")
    return img if img.mode in ("L", "RGB") else img.convert("RGB")


def image_to_tensor(img: Image.Image, channels: int, size: int | None) -> Tensor:
    """A PIL image as (channels, size, size) float32 in [0, 1] (its own size where ``size`` is None)."""
    img = img.convert("L" if channels == 1 else "RGB")
    if size is not None and img.size != (size, size):
        img = img.resize((size, size), Image.Resampling.BILINEAR, reducing_gap=3.0)
    x = torch.from_numpy(np.asarray(img, dtype=np.float32).copy() / 255.0)
    return x[None] if channels == 1 else x.permute(2, 0, 1)


def read_images(paths: list[str | Path], channels: int, size: int) -> Tensor:
    """Image files converted to one (N, channels, size, size) batch."""
    return torch.stack([image_to_tensor(read_image(p), channels, size) for p in paths])
