"""The README's examples run as written, so the manual cannot rot: each Python block as a script,
and each line of the Quick start as a command, in a fresh folder. Only their sizes shrink
(``SMALLER``: fewer epochs, trials and rounds), as a user trying them would."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

README = Path(__file__).resolve().parents[1] / "README.md"
# the setting -> a smaller value, in Python (epochs=20) and shell (--epochs 20) spellings
SMALLER = {"epochs": 1, "trials": 2, "iterations": 1, "height": 48, "length": 20}


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README.read_text(), flags=re.S)


def section(title: str) -> str:
    text = README.read_text()
    start = text.index(f"## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end > 0 else None]


def smaller(code: str) -> str:
    for name, value in SMALLER.items():
        code = re.sub(rf"\b{name}=\d+", f"{name}={value}", code)
        code = re.sub(rf"--{name} \d+", f"--{name} {value}", code)
    return code


def run(args: list[str], cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{shlex.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, small_data) -> Path:
    """A user's folder: two photos and a short text for the blocks that read files."""
    folder = tmp_path_factory.mktemp("readme")
    rng = np.random.default_rng(0)
    for name in ("photo.jpg", "painting.png"):
        Image.fromarray(rng.integers(0, 255, (40, 60, 3), dtype=np.uint8)).save(folder / name)
    (folder / "text.txt").write_text("The object of the game is to write text. " * 200)
    return folder


def test_the_readme_has_the_blocks_this_test_runs():
    assert len(blocks("python")) >= 2 and "aelab train" in section("Quick start")


@pytest.mark.parametrize("index", range(len(blocks("python"))))
def test_each_python_block_runs(index, workdir):
    code = blocks("python")[index]
    if "runs/text" in code:  # a text run for aelab.generate to continue
        run(
            [
                sys.executable,
                "-m",
                "aelab",
                "train",
                "char-lstm",
                "--text",
                "text.txt",
                "--epochs",
                "1",
                "--out",
                "runs/text",
                "--overwrite",
                "--progress",
                "none",
            ],
            workdir,
        )
    script = workdir / f"block{index}.py"
    script.write_text(smaller(code))
    run([sys.executable, script.name], workdir)


def test_each_quick_start_line_runs(tmp_path):
    lines = [line.split("#")[0].strip() for line in blocks("bash")[1].splitlines()]
    assert blocks("bash")[1] in section("Quick start")
    for line in filter(None, lines):
        for command in line.split("&&"):
            args = shlex.split(smaller(command))
            assert args[0] == "aelab", line
            done = run([sys.executable, "-m", "aelab", *args[1:]], tmp_path)
            assert "error" not in done.stderr.lower(), done.stderr
