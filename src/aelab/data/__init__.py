"""Data: registered datasets, local files, arrays and text, as what training reads.

Every image dataset becomes one float32 tensor per split, (N, C, H, W) in [0, 1], held in memory
and batched by slicing (:mod:`.memory`); a folder of image files larger than memory is read
lazily instead (:mod:`.streaming`). Both give their batches through the same method
(``data.batches(...)``), so the code that trains asks no question about the source.

- :mod:`.registry`, :mod:`.sources` and :mod:`.names`: the names ``data=`` accepts, each one
  ``@register_dataset`` in sources, looked up in names (torch-free: ``aelab datasets`` needs no torch);
- :mod:`.resolve`: any form of data (a name, a folder, arrays, a dict, an ImageData) as images;
- :mod:`.files` (IDX, arrays, image folders read whole), :mod:`.images` (reading one image file,
  folder layouts), :mod:`.streaming` (folders read lazily), :mod:`.memory` (ImageData, noise,
  splits, TensorBatches), :mod:`.text` (corpora and character windows).

The names below are importable from ``aelab.data`` itself, each loaded on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy import lazy_exports

# name -> the submodule that defines it
_EXPORTS = {
    **dict.fromkeys(("DatasetEntry", "register_dataset"), "registry"),
    **dict.fromkeys(("dataset_names", "loader", "class_names", "list_datasets"), "names"),
    **dict.fromkeys(("DEBIAN_FASHION_MNIST", "DIGITS", "FASHION", "torchvision_dataset"), "sources"),
    **dict.fromkeys(
        (
            "DEFAULT_DATASET",
            "ARRAYS",
            "describe_source",
            "resolve_data",
            "as_numpy",
            "load_data",
            "load_local",
            "streaming_pays",
        ),
        "resolve",
    ),
    **dict.fromkeys(
        ("read_idx", "load_idx_dir", "load_arrays", "array_labels", "array_images", "load_image_folder"), "files"
    ),
    **dict.fromkeys(
        (
            "UNLABELLED",
            "ImageData",
            "to_float",
            "held_out_split",
            "fit_images",
            "add_noise",
            "EVAL_NOISE_SEED",
            "noisy_copy",
            "split_validation",
            "hide_labels",
            "TensorBatches",
            "TrainingData",
            "Split",
            "training_split",
        ),
        "memory",
    ),
    **dict.fromkeys(
        (
            "IMAGE_SUFFIXES",
            "SPLIT_SEED",
            "TEST_FRACTION",
            "cache_dir",
            "folder_classes",
            "folder_layout",
            "image_files",
            "image_to_tensor",
            "read_image",
            "read_images",
            "seeded_split",
        ),
        "images",
    ),
}

if TYPE_CHECKING:  # for editors and type checkers
    from .files import array_images, array_labels, load_arrays, load_idx_dir, load_image_folder, read_idx
    from .images import (
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
    from .memory import (
        EVAL_NOISE_SEED,
        UNLABELLED,
        ImageData,
        Split,
        TensorBatches,
        TrainingData,
        add_noise,
        fit_images,
        held_out_split,
        hide_labels,
        noisy_copy,
        split_validation,
        to_float,
        training_split,
    )
    from .names import class_names, dataset_names, list_datasets, loader
    from .registry import DatasetEntry, register_dataset
    from .resolve import (
        ARRAYS,
        DEFAULT_DATASET,
        as_numpy,
        describe_source,
        load_data,
        load_local,
        resolve_data,
        streaming_pays,
    )
    from .sources import DEBIAN_FASHION_MNIST, DIGITS, FASHION, torchvision_dataset

__all__ = sorted(_EXPORTS)


__getattr__ = lazy_exports(__name__, _EXPORTS, globals())
