"""Each bad input: a one-line error naming the problem, a non-zero exit, nothing already written lost."""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import run_cli
from PIL import Image


def error_line(capsys) -> str:
    """The one line on stderr (the one-off Frechet classifier's progress notes aside: they come
    first where a test happens to be the first to train it, e.g. when run alone)."""
    err = capsys.readouterr().err.strip()
    lines = [line for line in err.splitlines() if ": fd_classifier: " not in line]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def test_unknown_model_lists_valid_names(tmp_path, capsys):
    assert run_cli("train", "no-such-model", "--out", tmp_path / "r") == 2
    assert "conv-resize" in error_line(capsys)
    assert not (tmp_path / "r").exists()


def test_unknown_dataset_lists_valid_names(tmp_path, capsys):
    assert run_cli("train", "conv-resize", "--data", "imagenet", "--out", tmp_path / "r") == 2
    line = error_line(capsys)
    assert "mnist-sample" in line and "fashion-mnist" in line
    assert not (tmp_path / "r").exists()


def test_offline_dataset_names_data_dir(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("AELAB_DATA_HOME", str(tmp_path / "cache"))
    import torchvision.datasets as tvd

    def refuse(*args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr(tvd.KMNIST, "download", refuse)
    assert run_cli("train", "conv-resize", "--data", "kmnist", "--out", tmp_path / "r") == 2
    assert "--data-dir" in error_line(capsys)


def test_missing_data_dir(tmp_path, capsys):
    assert run_cli("train", "conv-resize", "--data-dir", tmp_path / "nowhere", "--out", tmp_path / "r") == 2
    assert "does not exist" in error_line(capsys)


def test_empty_folder(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert run_cli("train", "conv-resize", "--data-dir", tmp_path / "empty", "--out", tmp_path / "r") == 2
    assert "no images" in error_line(capsys)


def test_broken_file_in_image_folder_is_named(tmp_path, capsys):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(3):
        Image.new("L", (28, 28), i * 40).save(folder / f"ok{i}.png")
    (folder / "broken.png").write_bytes(b"this is not a png")
    assert run_cli("train", "conv-resize", "--data-dir", folder, "--out", tmp_path / "r") == 2
    assert "broken.png" in error_line(capsys)


def test_corrupt_idx_file(tmp_path, capsys):
    folder = tmp_path / "idx"
    folder.mkdir()
    with gzip.open(folder / "train-images-idx3-ubyte.gz", "wb") as f:
        f.write(b"\x00\x00\x08\x03\x00\x00")  # header cut short
    assert run_cli("train", "conv-resize", "--data-dir", folder, "--out", tmp_path / "r") == 2
    assert "corrupt IDX file" in error_line(capsys)


def test_corrupt_array_file(tmp_path, capsys):
    folder = tmp_path / "arr"
    folder.mkdir()
    (folder / "x.npy").write_bytes(b"\x93NUMPY garbage")
    assert run_cli("train", "conv-resize", "--data-dir", folder, "--out", tmp_path / "r") == 2
    assert "x.npy" in error_line(capsys)


def test_wrong_array_shape(tmp_path, capsys):
    folder = tmp_path / "arr"
    folder.mkdir()
    np.save(folder / "x.npy", np.zeros((10, 5, 3, 2, 2), dtype=np.uint8))
    assert run_cli("train", "conv-resize", "--data-dir", folder, "--out", tmp_path / "r") == 2
    assert "expected images shaped" in error_line(capsys)


def test_image_that_is_not_an_image(trained_run, tmp_path, capsys):
    fake = tmp_path / "fake.png"
    fake.write_text("hello")
    assert run_cli("reconstruct", trained_run, fake, "--out", tmp_path / "o") == 2
    assert "fake.png is not a readable image" in error_line(capsys)
    assert run_cli("reconstruct", trained_run, tmp_path / "missing.png", "--out", tmp_path / "o") == 2
    assert "does not exist" in error_line(capsys)


def test_missing_run_folder(tmp_path, capsys):
    assert run_cli("eval", tmp_path / "nope") == 2
    assert "does not exist" in error_line(capsys)
    (tmp_path / "notarun").mkdir()
    assert run_cli("eval", tmp_path / "notarun") == 2
    assert "not an aelab run folder" in error_line(capsys)


@pytest.fixture
def run_copy(trained_run, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(trained_run, copy)
    return copy


def test_damaged_config(run_copy, capsys):
    (run_copy / "config.json").write_text("{ not json")
    assert run_cli("eval", run_copy) == 2
    assert "config.json is damaged" in error_line(capsys)


def test_damaged_weights(run_copy, capsys):
    (run_copy / "model.safetensors").write_bytes(b"\x00" * 20)
    assert run_cli("eval", run_copy) == 2
    assert "model.safetensors is damaged" in error_line(capsys)


@pytest.mark.parametrize(
    "text, says",
    [
        ('{"test_rmse": "NaN"}', "test_rmse: expected a number"),
        ("[1, 2]", "expected a JSON object"),
        ('{"test_rmse": 0.1', "damaged"),
    ],
)
def test_damaged_metrics_are_one_line_in_the_report_and_a_row_of_the_web_page(run_copy, tmp_path, text, says, capsys):
    (run_copy / "metrics.json").write_text(text)
    assert run_cli("report", run_copy, "--out", tmp_path / "report.html") == 2
    line = error_line(capsys)
    assert "metrics.json is damaged" in line and says in line
    assert not (tmp_path / "report.html").exists()
    from aelab.webapp import load_runs, metrics_table

    (row,) = metrics_table(load_runs([run_copy]))
    assert row[-1].startswith("error: ") and "metrics.json is damaged" in row[-1]


def test_weights_that_do_not_fit_the_config(run_copy, capsys):
    config = json.loads((run_copy / "config.json").read_text())
    config["params"]["channels"] = [4, 4, 4]
    (run_copy / "config.json").write_text(json.dumps(config))
    assert run_cli("eval", run_copy) == 2
    assert "does not fit" in error_line(capsys)


def test_missing_weights_suggest_resume(run_copy, capsys):
    (run_copy / "model.safetensors").unlink()
    assert run_cli("eval", run_copy) == 2
    assert "--resume" in error_line(capsys)


def test_damaged_checkpoint_on_resume(run_copy, capsys):
    (run_copy / "checkpoints" / "last.ckpt").write_bytes(b"garbage")
    assert run_cli("train", "--resume", "--epochs", "3", "--out", run_copy, "--no-progress") == 2
    assert "last.ckpt" in error_line(capsys)


def test_out_folder_holding_a_run_is_refused(run_copy, small_data, capsys):
    before = (run_copy / "model.safetensors").read_bytes()
    assert run_cli("train", "conv-resize", "--data-dir", small_data, "--out", run_copy) == 2
    assert "--overwrite" in error_line(capsys)
    assert (run_copy / "model.safetensors").read_bytes() == before


def test_failed_overwrite_keeps_the_old_run(run_copy, capsys):
    before = (run_copy / "model.safetensors").read_bytes()
    assert run_cli("train", "conv-resize", "--data", "nope", "--out", run_copy, "--overwrite") == 2
    error_line(capsys)
    assert (run_copy / "model.safetensors").read_bytes() == before


@pytest.mark.parametrize(
    "model, param, message",
    [
        ("conv-resize", "channels=0,8,8", "positive"),
        ("conv-resize", "act=swishy", "unknown activation"),
        ("conv-resize", "nonsense=3", "has no parameter"),
        ("conv-resize", "channels=a,b", "cannot read"),
        ("conv-resize", "channels", "key=value"),
        ("conv-resize", "block=fancy", "not one of"),
        ("dense", "code_size=0", "positive"),
        ("best", "code_size=0", "positive"),
        ("best", "norm_at=some", "not one of"),
        ("best", "batch_norm=all", "has no parameter"),
        ("tied", "act=nope", "unknown activation"),
        ("conv-unpool", "pool=3", "does not divide"),
        ("conv-transpose", "in_size=30", "divisible"),
        ("conv", "in_size=30", "cannot be rebuilt"),
    ],
)
def test_bad_model_parameters(model, param, message, capsys):
    assert run_cli("summary", model, "--param", param) == 2
    assert message in error_line(capsys)


@pytest.mark.parametrize(
    "flag, value, message",
    [
        ("--epochs", "0", "epochs"),
        ("--lr", "-1", "lr"),
        ("--noise", "-0.5", "noise"),
        ("--init", "he", "unknown init 'he'"),
    ],
)
def test_bad_training_values(flag, value, message, tmp_path, capsys):
    assert run_cli("train", "conv-resize", flag, value, "--out", tmp_path / "r") == 2
    assert message in error_line(capsys)
    assert not (tmp_path / "r").exists()


def test_unknown_loss_is_refused_before_training(tmp_path, capsys):
    assert run_cli("train", "conv-resize", "--loss", "hinge", "--out", tmp_path / "r") == 2
    assert "unknown loss" in error_line(capsys)


def test_encode_needs_npy_target(trained_run, tmp_path, capsys):
    assert run_cli("encode", trained_run, "--out", tmp_path / "codes.txt") == 2
    assert ".npy" in error_line(capsys)


def test_exit_code_from_the_console_script(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "aelab.cli", "eval", str(tmp_path / "none")], capture_output=True, text=True
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


def test_ensemble_needs_matching_members(trained_run, tmp_path, capsys):
    assert run_cli("ensemble", trained_run) == 2
    assert "at least two" in error_line(capsys)


def test_precision_that_needs_a_gpu_is_refused_on_cpu(tmp_path, capsys):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    assert run_cli("train", "conv-resize", "--precision", "16-mixed", "--out", tmp_path / "r") == 2
    assert "needs a GPU" in error_line(capsys)
    assert run_cli("train", "conv-resize", "--accelerator", "gpu", "--out", tmp_path / "r") == 2
    assert "no CUDA device" in error_line(capsys)
    assert not (tmp_path / "r").exists()
