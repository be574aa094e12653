"""Training from a config file (``aelab train --config``, ``aelab.train(config=...)``) and the
choice of loggers (``--logger``): each logger with its real package, offline."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli

import aelab
from aelab.errors import AelabError

TOML = """model = "dense"
data_dir = "{data}"
[train]
epochs = 2
batch_size = 100
seed = 3
threads = 2
[eval]
bounds = false
[params]
code_size = 12
"""


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_a_toml_file_trains_and_the_runs_config_json_trains_it_again(small_data, tmp_path, capsys):
    config = write(tmp_path / "run.toml", TOML.format(data=small_data))
    assert run_cli("train", "--config", config, "--out", tmp_path / "a", "--no-progress") == 0
    first = json.loads((tmp_path / "a" / "config.json").read_text())
    assert first["model"] == "dense" and first["params"]["code_size"] == 12
    assert first["train"]["epochs"] == 2 and first["train"]["batch_size"] == 100 and first["train"]["seed"] == 3
    # the thread count fixed (threads = 2), so the second run repeats the first bit for bit
    # the run's own config.json trains it again: the same settings, the same weights, the same numbers
    assert run_cli("train", "--config", tmp_path / "a" / "config.json", "--out", tmp_path / "b", "--no-progress") == 0
    second = json.loads((tmp_path / "b" / "config.json").read_text())
    assert {k: v for k, v in first.items() if k != "user_params"} == {
        k: v for k, v in second.items() if k != "user_params"
    }
    assert aelab.Run(tmp_path / "a").metrics["test_rmse"] == aelab.Run(tmp_path / "b").metrics["test_rmse"]


def test_flags_and_arguments_override_the_file(small_data, tmp_path):
    config = write(tmp_path / "run.toml", TOML.format(data=small_data))
    assert (
        run_cli(
            "train",
            "--config",
            config,
            "--epochs",
            "1",
            "--param",
            "code_size=8",
            "--out",
            tmp_path / "cli",
            "--no-progress",
        )
        == 0
    )
    written = aelab.Run(tmp_path / "cli").config
    assert written.train.epochs == 1 and written.params["code_size"] == 8 and written.train.batch_size == 100
    run = aelab.train(
        config={"model": "dense", "train": {"epochs": 2}},
        data=small_data,
        epochs=1,
        out=tmp_path / "api",
        progress=None,
    )
    assert run.config.train.epochs == 1 and len(run.history) == 1


def test_a_run_trained_on_arrays_trains_again_from_its_kept_arrays(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.random((120, 28, 28)).astype(np.float32)
    run = aelab.train("dense", data=(x[:100], x[100:]), epochs=1, out=tmp_path / "a", progress=None, threads=1)
    again = aelab.train(config=run.config_path, out=tmp_path / "b", progress=None)
    assert again.metrics["test_rmse"] == run.metrics["test_rmse"]


@pytest.mark.parametrize(
    "text, suffix, message",
    [
        ("model = 'dense'\n[train]\nepochs = 'ten'\n", ".toml", "train.epochs must be an integer"),
        ("model = 'dense'\nepochs = 2\n", ".toml", "unknown key 'epochs' (a training setting: put it under [train])"),
        ("model = 'dense'\n[train]\nlr = -1\n", ".toml", "train.lr must be positive"),
        ("model = 'dense'\n[train]\nlogger = ['tensorboard', 'neptune']\n", ".toml", "unknown train.logger 'neptune'"),
        ("model = 'dense'\n[eval]\nbound_samples = 0\n", ".toml", "eval: bound_samples must lie between"),
        ("model = 'dense'\n[train\n", ".toml", "is not valid TOML"),
        ('{"model": "dense",', ".json", "is not valid JSON"),
        ('["dense"]', ".json", "expected a table of sections"),
        ("model = 'dense'", ".yaml", "expected a .toml or .json file"),
        ("model = 3\n", ".toml", "model must be a string"),
        ("model = 'dense'\ndata_dir = '/no/such/folder'\n", ".toml", "its data_dir /no/such/folder does not exist"),
    ],
)
def test_a_bad_config_file_is_one_line_and_writes_nothing(tmp_path, capsys, text, suffix, message):
    config = write(tmp_path / f"run{suffix}", text)
    assert run_cli("train", "--config", config, "--out", tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert message in err and str(config) in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_config_file_errors_from_the_api(tmp_path):
    with pytest.raises(AelabError, match="does not exist"):
        aelab.train(config=tmp_path / "missing.toml", out=tmp_path / "out")
    with pytest.raises(AelabError, match="trains dense, not vae"):
        aelab.train("vae", config={"model": "dense"}, out=tmp_path / "out")
    with pytest.raises(AelabError, match="resume continues one with its own config.json"):
        aelab.train(config={"model": "dense"}, resume=True, out=tmp_path / "out")
    with pytest.raises(AelabError, match="no data.npz is beside it"):
        aelab.train(config={"model": "dense", "data": "arrays"}, out=tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_each_logger_writes_through_its_real_package_offline(small_data, tmp_path, monkeypatch, capsys):
    pytest.importorskip("mlflow")
    pytest.importorskip("wandb")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    out = tmp_path / "logged"
    assert (
        run_cli(
            "train",
            "dense",
            "--data-dir",
            small_data,
            "--epochs",
            "2",
            "--logger",
            "csv,mlflow,wandb",
            "--out",
            out,
            "--progress",
            "epoch",
        )
        == 0
    )
    printed = capsys.readouterr().out
    logs = out / "logs"
    assert not (logs / "tensorboard").exists() and (logs / "csv" / "metrics.csv").is_file()
    with sqlite3.connect(logs / "mlflow.db") as db:  # MLflow's own store: the run, its status and val_loss per epoch
        names = [row[0] for row in db.execute("select name from runs")]
        steps = db.execute("select count(*) from metrics where key = 'val_loss'").fetchone()[0]
        status = db.execute("select status from runs").fetchone()[0]
    assert names == ["logged"] and steps == 2 and status == "FINISHED"
    offline = sorted((logs / "wandb").glob("offline-run-*"))
    assert len(offline) == 1 and list(offline[0].glob("*.wandb")), "no offline W&B run"
    assert f"wandb sync {offline[0]}" in printed  # where it is, and how to upload it
    assert "mlflow.store" not in printed and "anonymous" not in printed  # the packages' set-up chatter kept out
    # a second training in the same process starts its own W&B run (the first was finished)
    assert (
        run_cli(
            "train",
            "dense",
            "--data-dir",
            small_data,
            "--epochs",
            "1",
            "--logger",
            "wandb",
            "--out",
            tmp_path / "second",
            "--no-progress",
        )
        == 0
    )
    assert len(list((tmp_path / "second" / "logs" / "wandb").glob("offline-run-*"))) == 1
    import csv

    with open(logs / "csv" / "metrics.csv", newline="") as file:  # the CSV log counts the same steps
        logged = max(int(row["step"]) for row in csv.DictReader(file)) + 1
    assert aelab.Run(out).steps_done() == logged == aelab.Run(out).history[-1]["step"]


def test_logger_none_and_tensorboard_settings_that_need_it(small_data, tmp_path, capsys):
    assert (
        run_cli(
            "train",
            "dense",
            "--data-dir",
            small_data,
            "--epochs",
            "1",
            "--logger",
            "none",
            "--out",
            tmp_path / "quiet",
            "--no-progress",
        )
        == 0
    )
    assert not (tmp_path / "quiet" / "logs").exists()
    assert aelab.Run(tmp_path / "quiet").steps_done() is not None  # history.json keeps the steps
    assert (
        run_cli(
            "train", "dense", "--data-dir", small_data, "--logger", "csv", "--log-embeddings", "--out", tmp_path / "out"
        )
        == 2
    )
    assert "log_embeddings writes to TensorBoard: add tensorboard to logger" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_a_logger_whose_package_is_missing_is_one_line(small_data, tmp_path, monkeypatch, capsys):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mlflow" else real(name, *a))
    assert run_cli("train", "dense", "--data-dir", small_data, "--logger", "mlflow", "--out", tmp_path / "out") == 2
    assert "logger mlflow needs the mlflow package: pip install 'aelab[mlflow]'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
