"""Data sources and conversions."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest
import torch
from PIL import Image

from aelab.data import TensorBatches, add_noise, fit_images, load_data, read_idx
from aelab.errors import AelabError


def write_idx(path, array: np.ndarray, compress: bool) -> None:
    header = struct.pack(">HBB", 0, 8, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    opener = gzip.open if compress else open
    with opener(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def test_mnist_sample_split_is_fixed():
    data = load_data("mnist-sample")
    assert data.train.shape == (4000, 1, 28, 28) and data.test.shape == (1000, 1, 28, 28)
    assert data.train.dtype == torch.float32 and 0 <= data.train.min() and data.train.max() <= 1
    assert torch.equal(load_data("mnist-sample").test, data.test)
    assert len(set(data.test_labels.tolist())) == 10


@pytest.mark.parametrize("compress", [True, False])
def test_idx_folder(tmp_path, compress):
    suffix = ".gz" if compress else ""
    rng = np.random.default_rng(0)
    write_idx(tmp_path / f"train-images-idx3-ubyte{suffix}", rng.integers(0, 256, (20, 28, 28)), compress)
    write_idx(tmp_path / f"train-labels-idx1-ubyte{suffix}", rng.integers(0, 10, 20), compress)
    write_idx(tmp_path / f"t10k-images-idx3-ubyte{suffix}", rng.integers(0, 256, (5, 28, 28)), compress)
    data = load_data(None, tmp_path)
    assert data.train.shape == (20, 1, 28, 28) and data.test.shape == (5, 1, 28, 28)
    assert data.train_labels.shape == (20,) and data.test_labels is None


def test_idx_header_must_be_bytes(tmp_path):
    path = tmp_path / "x-images-idx3-ubyte"
    path.write_bytes(struct.pack(">HBB", 0, 0x0D, 1) + struct.pack(">I", 1) + b"\0\0\0\0")
    with pytest.raises(AelabError, match="corrupt IDX"):
        read_idx(path)


def test_image_folder_mixed_sizes_and_modes(tmp_path):
    for i, (mode, size) in enumerate(
        [("L", (28, 28)), ("RGB", (64, 48)), ("RGBA", (10, 10)), ("P", (30, 30)), ("1", (20, 20))]
    ):
        Image.new(mode, size).save(tmp_path / f"img{i}.png")
    Image.new("RGB", (50, 50), (200, 10, 10)).save(tmp_path / "photo.jpg")
    (tmp_path / "notes.txt").write_text("ignored")
    data = load_data(None, tmp_path, size=32)
    assert data.shape == (3, 32, 32)
    assert len(data.train) + len(data.test) == 6


def test_image_folder_train_test_and_classes(tmp_path):
    for split, count in (("train", 4), ("test", 2)):
        for cls in ("cats", "dogs"):
            (tmp_path / split / cls).mkdir(parents=True)
            for i in range(count):
                Image.new("L", (28, 28), i * 30).save(tmp_path / split / cls / f"{i}.png")
    data = load_data(None, tmp_path)
    assert len(data.train) == 8 and len(data.test) == 4
    assert sorted(data.train_labels.tolist()) == [0] * 4 + [1] * 4


def test_npz_keras_layout(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(
        tmp_path / "mnist.npz",
        x_train=rng.integers(0, 256, (10, 28, 28), dtype=np.uint8),
        y_train=np.arange(10),
        x_test=rng.integers(0, 256, (4, 28, 28), dtype=np.uint8),
        y_test=np.arange(4),
    )
    data = load_data(None, tmp_path)
    assert data.train.shape == (10, 1, 28, 28) and data.test_labels.tolist() == [0, 1, 2, 3]


def test_npy_channels_last_colour_is_converted(tmp_path):
    np.save(tmp_path / "x.npy", np.random.default_rng(0).random((10, 16, 16, 3)).astype(np.float32))
    data = load_data(None, tmp_path, channels=1, size=28)
    assert data.shape == (1, 28, 28)


def test_npy_floats_outside_unit_range_are_refused(tmp_path):
    np.save(tmp_path / "x.npy", np.full((4, 28, 28), 7.0, dtype=np.float32))
    with pytest.raises(AelabError, match=r"\[0, 1\]"):
        load_data(None, tmp_path)


def test_fit_images_conversions():
    gray = torch.rand(2, 1, 28, 28)
    assert fit_images(gray, 3, 28).shape == (2, 3, 28, 28)
    rgb = torch.rand(2, 3, 40, 40)
    assert fit_images(rgb, 1, 28).shape == (2, 1, 28, 28)
    rgba = torch.ones(2, 4, 8, 8)
    rgba[:, 3] = 0  # fully transparent composites to black
    assert fit_images(rgba, 3, 8).abs().max() == 0
    with pytest.raises(AelabError, match="cannot convert"):
        fit_images(torch.rand(1, 5, 8, 8), 1, 8)


def test_noise_is_clipped_and_targets_untouched():
    x = torch.rand(100, 1, 28, 28)
    noisy = add_noise(x, 0.5, torch.Generator().manual_seed(0))
    assert noisy.min() >= 0 and noisy.max() <= 1 and not torch.equal(noisy, x)


def test_tensor_batches_cover_every_image_once():
    x = torch.arange(10.0).view(10, 1, 1, 1)
    batches = list(TensorBatches(x, batch_size=4, shuffle=True, seed=0))
    assert [len(b[0]) for b in batches] == [4, 4, 2]
    assert sorted(torch.cat([b[0] for b in batches]).flatten().tolist()) == list(range(10))
    assert all(torch.equal(i, t) for i, t in batches)


def test_the_dataset_registry_lists_without_torch_and_each_name_loads_through_it(monkeypatch):
    """Every name ``aelab datasets`` lists is one registered loader of its kind; listing them loads
    no torch; a dataset registered in a test is listed, loaded by name and refused twice."""
    import subprocess
    import sys

    import aelab
    from aelab.data import registry, resolve_data
    from aelab.data.names import dataset_names, list_datasets, loader
    from aelab.data.registry import register_dataset

    code = "import sys, aelab; aelab.list_datasets(); print('torch' in sys.modules)"
    assert (
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
        == "False"
    )
    assert list(list_datasets()) == [*dataset_names("images"), *dataset_names("text")]
    assert "mnist-sample" in dataset_names() and dataset_names("text") == ("pydoc-topics",)
    assert all(loader(name) is not None for name in dataset_names()) and loader("pydoc-topics") is None
    monkeypatch.setattr(registry, "_DATASETS", dict(registry._DATASETS))  # the test's registration undone after it
    x = torch.rand(10, 1, 8, 8)

    @register_dataset("tiny-test", "ten random 8x8 images", classes=("a", "b"))
    def tiny():
        return aelab.data.ImageData(
            "tiny-test", x[:8], x[8:], torch.zeros(8, dtype=torch.long), torch.ones(2, dtype=torch.long)
        )

    assert list_datasets()["tiny-test"] == "ten random 8x8 images"
    loaded = resolve_data("tiny-test")
    assert loaded.classes == ("a", "b") and torch.equal(loaded.test, x[8:])
    with pytest.raises(AelabError, match="registered twice"):
        register_dataset("tiny-test", "again")(lambda: None)
