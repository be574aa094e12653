"""Several training processes (Lightning's DDP over gloo on this CPU): each process's share of the
data, the launcher's environment, and a real 2-process run against one process on the combined batch."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import aelab
from aelab import distributed
from aelab.data import TensorBatches
from aelab.data.text import WindowBatches
from aelab.errors import AelabError

LAUNCHER = (
    "RANK",
    "LOCAL_RANK",
    "NODE_RANK",
    "WORLD_SIZE",
    "SLURM_NTASKS",
    "SLURM_PROCID",
    "SLURM_NTASKS_PER_NODE",
    "SLURM_JOB_NAME",
)


def test_each_process_takes_its_share_of_the_same_shuffled_order(monkeypatch):
    images = torch.arange(50, dtype=torch.float32).reshape(50, 1, 1, 1)
    whole = TensorBatches(images, batch_size=8, shuffle=True, seed=3, split=True)
    first = next(iter(whole))[0].flatten()
    shares = []
    for rank in (0, 1):
        monkeypatch.setattr(distributed, "rank_and_world", lambda rank=rank: (rank, 2))
        half = TensorBatches(images, batch_size=4, shuffle=True, seed=3, split=True)
        assert len(half) == 7  # 25 images each: 6 batches of 4 and one of 1, on both processes
        batches = [b[0].flatten() for b in half]
        assert sum(len(b) for b in batches) == 25
        shares.append(torch.cat(batches))
    # batch k of the two processes together is batch k of one process at twice the batch size
    assert sorted(torch.cat([shares[0][:4], shares[1][:4]]).tolist()) == sorted(first.tolist())
    assert not set(shares[0].tolist()) & set(shares[1].tolist())  # no image twice in an epoch
    monkeypatch.setattr(distributed, "rank_and_world", lambda: (1, 3))  # 50 // 3: one image sits out
    assert sum(len(b[0]) for b in TensorBatches(images, batch_size=5, split=True)) == 16
    assert len(TensorBatches(images, batch_size=5)) == 10  # validation batches are not split


def test_text_windows_are_shared_out_too(monkeypatch):
    text = torch.arange(200) % 7
    everyone = WindowBatches(text, maxlen=10, step=3, batch_size=8, shuffle=True, split=True)
    seen = []
    for rank in (0, 1):
        monkeypatch.setattr(distributed, "rank_and_world", lambda rank=rank: (rank, 2))
        share = WindowBatches(text, maxlen=10, step=3, batch_size=8, shuffle=True, split=True)
        seen.append(sum(len(b[1]) for b in share))
    assert seen[0] == seen[1] == len(everyone.windows) // 2


@pytest.mark.parametrize(
    "env, rank",
    [
        ({}, 0),
        ({"RANK": "3"}, 3),
        ({"LOCAL_RANK": "1"}, 1),
        ({"NODE_RANK": "1", "LOCAL_RANK": "0"}, 1),
        ({"SLURM_NTASKS": "4", "SLURM_PROCID": "2"}, 2),
        ({"SLURM_NTASKS": "1", "SLURM_PROCID": "0"}, 0),
    ],
)
def test_the_launchers_environment_names_the_main_process(monkeypatch, env, rank):
    for name in LAUNCHER:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert distributed.process_rank() == rank
    assert aelab.distributed.is_main_process() == (rank == 0)


def test_a_launch_that_disagrees_with_the_settings_is_one_line(monkeypatch):
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "4")
    with pytest.raises(AelabError, match="started 4 processes, and devices=2 x num_nodes=1 = 2"):
        distributed.check_launch(2, 1, "cpu")
    distributed.check_launch(2, 2, "cpu")
    with pytest.raises(AelabError, match="must be at least 1"):
        aelab.TrainSettings(devices=0)


@pytest.mark.parametrize(
    "env, devices, nodes, message",
    [
        ({"RANK": "1"}, 1, 1, "this process 1 of a launch"),  # a stray RANK: not a helper of a one-process run
        ({"LOCAL_RANK": "x"}, 1, 1, "LOCAL_RANK='x' is not a whole number"),
        ({"WORLD_SIZE": "0", "RANK": "0"}, 1, 1, "WORLD_SIZE='0' is not a whole number >= 1"),
        ({"SLURM_NTASKS": "2"}, 1, 2, "without SLURM_NTASKS_PER_NODE"),
        ({"SLURM_NTASKS": "4", "SLURM_NTASKS_PER_NODE": "2", "SLURM_PROCID": "0"}, 1, 2, "SLURM started 4 tasks"),
    ],
)
def test_launcher_variables_that_cannot_work_are_one_line(monkeypatch, env, devices, nodes, message):
    for name in LAUNCHER:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(AelabError, match=message):
        distributed.check_launch(devices, nodes, "cpu")


def test_a_stray_rank_writes_nothing(small_data, tmp_path):
    out = tmp_path / "run"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "aelab",
            "train",
            "dense",
            "--data-dir",
            str(small_data),
            "--epochs",
            "1",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "RANK": "1"},
    )
    assert done.returncode == 2 and "this process 1 of a launch" in done.stderr.strip().splitlines()[-1]
    assert not out.exists()


def _aelab(*args: str) -> subprocess.CompletedProcess:
    """The CLI in its own process, as a user starts it: Lightning launches the second process by
    running the same command again."""
    return subprocess.run(
        [sys.executable, "-m", "aelab", *args, "--no-progress"], capture_output=True, text=True, timeout=300
    )


def test_two_processes_take_the_step_one_process_takes_on_the_combined_batch(tmp_path):
    rng = np.random.default_rng(0)
    images = (rng.random((50, 28, 28)) * 255).astype(np.uint8)
    (tmp_path / "data").mkdir()
    np.savez(tmp_path / "data" / "d.npz", x_train=images[:40], x_test=images[40:])  # 36 train, 4 validation
    common = [
        "dense",
        "--data-dir",
        str(tmp_path / "data"),
        "--epochs",
        "1",
        "--precision",
        "32",
        "--optimizer",
        "sgd",
        "--lr",
        "0.5",
    ]  # plain SGD: the step is the gradient itself, not only its sign as in Adam's first
    one = _aelab("train", *common, "--out", str(tmp_path / "one"), "--batch-size", "36")
    two = _aelab("train", *common, "--out", str(tmp_path / "two"), "--batch-size", "18", "--devices", "2")
    assert one.returncode == 0, one.stderr[-2000:]
    assert two.returncode == 0, two.stderr[-2000:]
    assert two.stdout.count("test_rmse") == 1  # only the main process reports
    a, b = load_file(tmp_path / "one" / "model.safetensors"), load_file(tmp_path / "two" / "model.safetensors")
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-5, atol=1e-6)
    run = aelab.Run(tmp_path / "two")
    assert run.config.train.devices == 2 and run.metrics["test_rmse"] > 0
    assert (run.path / "reconstructions.png").is_file() and run.history[0]["train_loss"] > 0
    # each of the two processes took its share of the cores, not all of them
    cores = distributed.cpu_cores()
    assert run.history[0]["threads"] == max(1, cores // 2)
    assert aelab.Run(tmp_path / "one").history[0]["threads"] >= run.history[0]["threads"]
    aelab.load(run.path)
    # a multi-process run resumes, in as many processes as it was set up with
    again = _aelab("train", "--resume", "--out", str(tmp_path / "two"), "--epochs", "2")
    assert again.returncode == 0, again.stderr[-2000:]
    assert len(aelab.Run(tmp_path / "two").history) == 2
