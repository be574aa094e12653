"""The CUDA path: data resident on the GPU, bf16/fp16 autocast chosen by the GPU. Skipped without CUDA."""

from __future__ import annotations

import json

import pytest
import torch

from aelab.accel import choose_precision
from conftest import run_cli

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def test_auto_precision_on_gpu():
    expected = "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
    assert choose_precision("auto", "cuda") == expected


@pytest.mark.parametrize("model", ["conv-resize", "vae", "gan"])
def test_train_on_gpu(model, small_data, tmp_path):
    out = tmp_path / model
    assert run_cli("train", model, "--data-dir", small_data, "--epochs", "1", "--accelerator", "gpu",
                   "--out", out, "--no-progress") == 0
    config = json.loads((out / "config.json").read_text())
    assert config["precision"] in ("bf16-mixed", "16-mixed") and config["channels_last"] is False
    assert (out / "metrics.json").is_file()

