"""The CUDA path: data resident on the GPU, bf16/fp16 autocast chosen by the GPU. Skipped without CUDA."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import run_cli

from aelab.accel import choose_precision

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def test_auto_precision_on_gpu():
    expected = "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
    assert choose_precision("auto", "cuda") == expected


@pytest.mark.parametrize("model", ["conv-resize", "vae", "gan"])
def test_train_on_gpu(model, small_data, tmp_path):
    out = tmp_path / model
    assert (
        run_cli(
            "train",
            model,
            "--data-dir",
            small_data,
            "--epochs",
            "1",
            "--accelerator",
            "gpu",
            "--out",
            out,
            "--no-progress",
        )
        == 0
    )
    config = json.loads((out / "config.json").read_text())
    assert config["train"]["precision"] in ("bf16-mixed", "16-mixed") and config["train"]["channels_last"] is False
    assert (out / "metrics.json").is_file()


def test_training_batches_are_slices_of_data_on_the_gpu(small_data, tmp_path):
    from aelab.families import family_of
    from aelab.training import plan

    plan_ = plan("conv-resize", small_data, tmp_path / "run", False, False, "gpu", {})
    train_batches, val_batches = family_of("conv-resize").batches(
        plan_.data, plan_.model, plan_.config.train, torch.device("cuda", 0)
    )
    assert train_batches.inputs.device.type == "cuda" and val_batches.inputs.device.type == "cuda"
    assert next(iter(train_batches))[0].device.type == "cuda"  # no copy from the host per step


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs 2 GPUs")
def test_two_gpus_train_one_run(small_data, tmp_path):
    import subprocess
    import sys

    out = tmp_path / "ddp"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "aelab",
            "train",
            "conv-resize",
            "--data-dir",
            str(small_data),
            "--epochs",
            "2",
            "--accelerator",
            "gpu",
            "--devices",
            "2",
            "--out",
            str(out),
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads((out / "config.json").read_text())["train"]["devices"] == 2
    assert (out / "metrics.json").is_file() and proc.stdout.count("test_rmse") == 1
