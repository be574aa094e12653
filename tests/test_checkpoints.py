"""Checkpoints on a time interval (trainer.RunCheckpoint): short epochs do not each write two
files, yet the end of training, an early stop and an interruption write what a resume needs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import lightning as L
import pytest
import torch
from lightning.pytorch.strategies import SingleDeviceStrategy

import aelab


class Writes:
    def __init__(self) -> None:
        self.paths: list[str] = []


@pytest.fixture
def writes(monkeypatch) -> Writes:
    seen, real = Writes(), SingleDeviceStrategy.save_checkpoint

    def counted(self, checkpoint, filepath, storage_options=None):
        seen.paths.append(str(filepath))
        return real(self, checkpoint, filepath, storage_options)

    monkeypatch.setattr(SingleDeviceStrategy, "save_checkpoint", counted)
    return seen


def test_short_epochs_write_their_checkpoints_at_the_end_not_every_epoch(small_data, tmp_path, writes):
    run = aelab.train(
        "dense", data=small_data, epochs=6, out=tmp_path / "run", progress=None, early_stopping=False, logger=()
    )
    assert len(writes.paths) <= 3, writes.paths  # every epoch would write last.ckpt and (improving) best.ckpt: 12
    last = torch.load(run.last_checkpoint, weights_only=True)
    assert last["epoch"] == 5  # the 6th epoch, counted from 0
    best = torch.load(run.best_checkpoint, weights_only=True)
    val = [row["val_loss"] for row in run.history]
    assert best["epoch"] == val.index(min(val))  # the best epoch's own weights, though written later


class StopAt(L.Callback):
    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_train_epoch_end(self, trainer, module) -> None:
        if trainer.current_epoch + 1 == self.epoch:
            raise RuntimeError("the machine went away")  # a crash mid-run (Lightning turns Ctrl-C into exit 1)


def test_an_interrupted_run_keeps_its_finished_epochs_and_resumes(small_data, tmp_path):
    out = tmp_path / "run"
    with pytest.raises(RuntimeError, match="the machine went away"):
        aelab.train("dense", data=small_data, epochs=6, out=out, progress=None, logger=(), callbacks=[StopAt(3)])
    assert torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] == 1  # epochs 1 and 2 kept
    run = aelab.train(out=out, resume=True, epochs=4, progress=None)
    assert [row["epoch"] for row in run.history] == [1, 2, 3, 4]


def test_ctrl_c_is_one_line_exit_130_and_the_run_resumes(small_data, tmp_path):
    """A real SIGINT to `aelab train`: Lightning's handler keeps the finished epochs; aelab says how
    to go on (not Lightning's bare exit 1), and the run continues from there."""
    out = tmp_path / "run"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "aelab",
            "train",
            "dense",
            "--data-dir",
            str(small_data),
            "--epochs",
            "500",
            "--out",
            str(out),
            "--progress",
            "epoch",
            "--logger",
            "none",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    lines = []
    while len(lines) < 3:  # three epochs finished
        line = process.stdout.readline()
        assert line, process.stderr.read()
        lines += [line] if line.startswith("epoch") else []
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    message = stderr.strip().splitlines()[-1]
    assert message.startswith("aelab train: training interrupted in epoch ") and f"--resume --out {out}" in message
    done = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] + 1
    assert done >= 2 and f"in epoch {done + 1};" in message  # the epochs that finished are kept
    run = aelab.train(out=out, resume=True, epochs=done + 1, progress=None)
    assert [row["epoch"] for row in run.history][-1] == done + 1
