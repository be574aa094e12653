"""The CLI end to end on real (embedded) data."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import run_cli
from PIL import Image

import aelab

EXPECTED_METRICS = {"test_rmse", "test_mse", "test_bce", "test_psnr", "test_ssim", "code_size", "pca_rmse"}


def test_train_writes_a_complete_run(trained_run, capsys):
    metrics = json.loads((trained_run / "metrics.json").read_text())
    assert EXPECTED_METRICS <= set(metrics)
    assert metrics["code_size"] == 128
    assert abs(metrics["test_rmse"] ** 2 - metrics["test_mse"]) < 1e-6
    assert 0 < metrics["pca_rmse"] < metrics["test_rmse"]  # two epochs on 320 images cannot beat PCA
    for name in ("reconstructions.png", "codes.png", "curves.png", "model.safetensors", "config.json"):
        assert (trained_run / name).is_file(), name
    assert (trained_run / "checkpoints" / "last.ckpt").is_file()
    assert list((trained_run / "logs" / "tensorboard").glob("events.out.tfevents.*"))
    assert (trained_run / "logs" / "csv" / "metrics.csv").is_file()
    history = json.loads((trained_run / "history.json").read_text())["epochs"]
    assert [row["epoch"] for row in history] == [1, 2]
    with Image.open(trained_run / "reconstructions.png") as img:
        assert img.size[0] > 2 * img.size[1]  # a 2x10 grid is wide


def test_denoising_run_has_its_figure_and_noisy_metrics(denoising_run):
    metrics = json.loads((denoising_run / "metrics.json").read_text())
    assert metrics["noise"] == 0.5 and metrics["noisy_input_rmse"] > 0.2
    assert (denoising_run / "denoising.png").is_file()


def test_eval_reproduces_metrics(trained_run, capsys):
    before = json.loads((trained_run / "metrics.json").read_text())
    assert run_cli("eval", trained_run) == 0
    after = json.loads((trained_run / "metrics.json").read_text())
    assert after["test_rmse"] == before["test_rmse"]
    assert "pca_rmse" in capsys.readouterr().out


def test_load_gives_encode_and_decode(trained_run):
    model = aelab.load(trained_run)
    x = torch.rand(3, 1, 28, 28)
    z = model.encode(x)
    assert z.shape == (3, 8, 4, 4)
    assert model.decode(z).shape == x.shape


def test_resume_continues_from_last_checkpoint(small_data, tmp_path):
    out = tmp_path / "run"
    assert (
        run_cli("train", "conv-resize", "--data-dir", small_data, "--epochs", "1", "--out", out, "--no-progress") == 0
    )
    assert run_cli("train", "--resume", "--epochs", "3", "--out", out, "--no-progress") == 0
    history = json.loads((out / "history.json").read_text())["epochs"]
    assert [row["epoch"] for row in history] == [1, 2, 3]


def test_reconstruct_and_denoise_image_files(trained_run, denoising_run, tmp_path):
    sources = []
    for i, mode in enumerate(["L", "RGB", "RGBA"]):
        path = tmp_path / f"digit{i}.png"
        Image.fromarray((np.random.default_rng(i).random((40, 32)) * 255).astype(np.uint8)).convert(mode).save(path)
        sources.append(path)
    assert run_cli("reconstruct", trained_run, *sources, "--out", tmp_path / "recon") == 0
    assert sorted(p.name for p in (tmp_path / "recon").iterdir()) == [
        "digit0_recon.png",
        "digit1_recon.png",
        "digit2_recon.png",
        "reconstruct.png",
    ]
    with Image.open(tmp_path / "recon" / "digit1_recon.png") as img:
        assert img.size == (28, 28)
    assert run_cli("denoise", denoising_run, *sources, "--noise", "0.3", "--out", tmp_path / "clean") == 0
    assert (tmp_path / "clean" / "digit0_denoised.png").is_file()


def test_encode_writes_codes(trained_run, small_data, tmp_path):
    out = tmp_path / "codes.npy"
    assert run_cli("encode", trained_run, "--data-dir", small_data, "--split", "all", "--out", out) == 0
    assert np.load(out).shape == (400, 128)
    # an existing file is replaced only with --overwrite (and left as it was without)
    before = out.read_bytes()
    assert run_cli("encode", trained_run, "--out", out) == 2 and out.read_bytes() == before
    # without --data: the run's own dataset (here its --data-dir), test split
    assert run_cli("encode", trained_run, "--out", out, "--overwrite") == 0
    from aelab.data import load_data

    assert np.load(out).shape[0] == len(load_data(None, str(small_data)).test) < 400


def test_models_summary_and_datasets(capsys):
    assert run_cli("models") == 0
    assert "conv-resize" in capsys.readouterr().out
    assert run_cli("summary", "conv-resize", "--param", "channels=32,32,16") == 0
    text = capsys.readouterr().out
    assert "16x4x4" in text.replace(" ", "") or "code: 16x4x4" in text
    assert run_cli("datasets") == 0
    assert "fashion-mnist" in capsys.readouterr().out


def test_console_script_runs():
    result = subprocess.run([sys.executable, "-m", "aelab.cli", "models"], capture_output=True, text=True)
    assert result.returncode == 0 and "conv-resize" in result.stdout


def test_ensemble_reports_members_and_mean(trained_run, small_data, tmp_path, capsys):
    other = tmp_path / "other"
    assert run_cli("train", "dense", "--data-dir", small_data, "--epochs", "2", "--out", other, "--no-progress") == 0
    capsys.readouterr()
    out = tmp_path / "ensemble.json"
    assert run_cli("ensemble", trained_run, other, "--out", out) == 0
    result = json.loads(out.read_text())
    assert [m["model"] for m in result["members"]] == ["conv-resize", "dense"]
    assert result["code_size"] == 128 + 64
    # averaging can never be worse than the worse member in MSE (convexity)
    assert result["test_mse"] <= max(m["test_mse"] for m in result["members"]) + 1e-9
    assert "ensemble" in capsys.readouterr().out


def test_sparsity_option_on_any_model(small_data, tmp_path):
    runs = {}
    for sparsity in ("0", "0.01"):
        out = tmp_path / f"s{sparsity}"
        assert (
            run_cli(
                "train",
                "dense",
                "--data-dir",
                small_data,
                "--epochs",
                "3",
                "--sparsity",
                sparsity,
                "--seed",
                "1",
                "--out",
                out,
                "--no-progress",
            )
            == 0
        )
        runs[sparsity] = json.loads((out / "metrics.json").read_text())["mean_code_activation"]
    assert runs["0.01"] < runs["0"]


def test_report_when_the_code_is_as_large_as_the_image(tmp_path, capsys):
    print(
        aelab.evaluation.run_report(
            tmp_path,
            {
                "model": "conv-transpose",
                "data": "mnist-sample",
                "test_images": 10,
                "test_rmse": 0.06,
                "pca_rmse": 0.0,
                "rmse_vs_pca": None,
                "code_size": 1568,
                "test_bce": 0.07,
                "test_psnr": 24.0,
                "test_ssim": 0.9,
            },
        )
    )
    assert "lossless" in capsys.readouterr().out


def test_seed_fixes_the_initial_weights(small_data, tmp_path):
    """--seed alone decides a run: the same seed after other random work in the process gives the
    same weights, another seed other weights."""
    weights = {}
    for name, seed in (("a", "3"), ("b", "3"), ("c", "4")):
        torch.rand(1000)  # whatever the process drew before must not matter
        out = tmp_path / name
        assert (
            run_cli(
                "train",
                "dense",
                "--data-dir",
                small_data,
                "--epochs",
                "1",
                "--seed",
                seed,
                "--precision",
                "32",
                "--out",
                out,
                "--no-progress",
            )
            == 0
        )
        weights[name] = aelab.load(out).state_dict()
    assert all(torch.allclose(weights["a"][k], weights["b"][k], atol=1e-6) for k in weights["a"])
    assert not all(torch.allclose(weights["a"][k], weights["c"][k]) for k in weights["a"])


def test_a_log_written_to_a_file_holds_one_line_per_epoch(small_data, tmp_path):
    """Output to a file (not a terminal): no progress-bar frames, a line per epoch and per
    evaluation stage, as Keras' verbose=2."""
    log = tmp_path / "train.log"
    with open(log, "w") as file:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "aelab",
                "train",
                "dense",
                "--data-dir",
                small_data,
                "--epochs",
                "3",
                "--out",
                tmp_path / "run",
            ],
            stdout=file,
            stderr=subprocess.STDOUT,
        )
    text = log.read_text()
    assert done.returncode == 0, text
    assert "\r" not in text
    epochs = [line for line in text.splitlines() if line.startswith("epoch ")]
    assert [line.split()[1] for line in epochs] == ["1/3", "2/3", "3/3"]
    assert all("val_loss" in line and "img/s" in line for line in epochs) and "ETA" in epochs[0]
    assert "evaluating dense on" in text and "PCA with 64 components, the floor to beat ..." in text


def test_progress_from_the_api_is_a_line_per_epoch_or_nothing(small_data, tmp_path, capsys):
    x = np.load(small_data / "digits.npz")["x"]
    aelab.train("dense", data=(x[:300], x[300:]), epochs=2, out=tmp_path / "quiet", progress=None)
    assert capsys.readouterr().out == ""
    aelab.train("dense", data=(x[:300], x[300:]), epochs=2, out=tmp_path / "lines", progress="epoch")
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[1] for line in lines if line.startswith("epoch ")] == ["1/2", "2/2"]
    with pytest.raises(aelab.AelabError, match="progress must be one of auto, bar, epoch"):
        aelab.train("dense", data=x, epochs=1, progress="verbose")
    detector = aelab.AnomalyDetector("dense", progress=False, epochs=1).fit(x[:200])  # quiet, as PyOD's verbose=0
    assert detector.threshold_ is not None and capsys.readouterr().out == ""


def test_train_model_help_shows_that_models_defaults(capsys):
    with pytest.raises(SystemExit):
        run_cli("train", "vae", "--help")
    shown = " ".join(capsys.readouterr().out.split())
    epochs = aelab.model_info("vae")["train"]["epochs"]
    assert f"number of epochs [vae: {epochs}]" in shown
    # its family's settings under their own heading, with its defaults; other families' not shown
    assert "vae settings (VAESettings: vae's defaults in brackets): --schedule" in shown
    assert "--kl-weight KL_WEIGHT VAEs: weight of the KL term" in shown and "--d-lr" not in shown
    assert "vae's: in_channels=1" in shown and "latent_dim=2" in shown  # its parameters with their defaults
    with pytest.raises(SystemExit):
        run_cli("train", "--help")
    assert "`aelab train MODEL --help` shows them" in " ".join(capsys.readouterr().out.split())
