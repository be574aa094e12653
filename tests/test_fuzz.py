"""Every command that uses a trained run, driven with generated arguments (sizes, counts, seeds,
paths: new, existing, inputs, folders, the run itself, links and hard links to inputs, paths
inside the run and inside the data folder): never a traceback, exit code 0 or 2 only, no input
(the runs' config and weights, the data, the images) changed even with --overwrite, and no file
outside the test's folder changed, nor any file it did not create inside it unless --overwrite
asked for it. Bounded to about a minute in `make test`; AELAB_FUZZ_EXAMPLES=N runs N
examples of each command."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from test_export import untrained_run

from aelab.cli import main

EXAMPLES = int(os.environ.get("AELAB_FUZZ_EXAMPLES", "40"))
NUMBERS = st.one_of(st.integers(-3, 3), st.sampled_from([0, 1, 2, 7, 100, 10**5, 10**9, -(10**9)]))
FLOATS = st.sampled_from(["0", "0.5", "-1", "1e308", "nan", "inf", "abc", "1e-9"])


@pytest.fixture(scope="module")
def place(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("fuzz")
    paths = {
        "ae": untrained_run("conv-resize", root / "ae").path,
        "vae": untrained_run("vae", root / "vae").path,
        "gan": untrained_run("gan", root / "gan").path,
    }
    rng = np.random.default_rng(0)
    Image.fromarray((rng.random((28, 28)) * 255).astype(np.uint8)).save(root / "digit.png")
    Image.fromarray((rng.random((30, 20, 3)) * 255).astype(np.uint8)).save(root / "colour.jpg")
    (root / "notes.txt").write_text("not an image")
    (root / "mine.png").write_bytes(b"the user's file")
    (root / "mine.csv").write_text("a,b\n")
    (root / "folder").mkdir()
    (root / "data").mkdir()
    np.savez(root / "data" / "digits.npz", x=(rng.random((60, 28, 28)) * 255).astype(np.uint8))
    (root / "link.png").symlink_to(root / "digit.png")
    os.link(root / "ae" / "model.safetensors", root / "hard.npy")  # the run's weights under another name
    paths.update(
        {
            name: root / name
            for name in (
                "digit.png",
                "colour.jpg",
                "notes.txt",
                "mine.png",
                "mine.csv",
                "folder",
                "new.png",
                "new.npy",
                "new.csv",
                "new.onnx",
                "new",
                "data",
                "link.png",
                "hard.npy",
                "data/new.npy",
                "data/new.png",
                "ae/config.json",
                "ae/new.png",
                "ae/checkpoints/new.png",
            )
        }
    )
    paths["root"] = root
    return paths


def run(args: list[str]) -> int:
    try:
        return main([str(a) for a in args])
    except SystemExit as stop:  # argparse's own refusals
        return stop.code


INPUTS = (
    "digit.png",
    "colour.jpg",
    "data/digits.npz",
    "ae/config.json",
    "ae/model.safetensors",
    "vae/config.json",
    "vae/model.safetensors",
    "gan/model.safetensors",
)


def check(place: dict[str, Path], args: list, capsys) -> None:
    root = place["root"]
    users = {
        name: (root / name).read_bytes() for name in ("digit.png", "colour.jpg", "notes.txt", "mine.png", "mine.csv")
    }
    inputs = {name: (root / name).read_bytes() for name in INPUTS}
    here = sorted(os.listdir("."))  # the only folder a command could reach besides ours: where it runs
    code = run(args)
    err = capsys.readouterr().err
    assert code in (0, 2), (args, code, err[-2000:])
    assert "Traceback" not in err, (args, err[-2000:])
    if "--overwrite" not in map(str, args):
        for name, content in users.items():
            assert (root / name).read_bytes() == content, (args, name)
    for name, content in inputs.items():  # never, whatever the flags
        assert (root / name).read_bytes() == content, (args, name)
    assert sorted(os.listdir(".")) == here, args
    assert not [p for p in root.rglob("*") if p.name.endswith((".tmp", ".partial"))], args  # no half-written file


PATH_NAMES = [
    "digit.png",
    "colour.jpg",
    "notes.txt",
    "mine.png",
    "mine.csv",
    "folder",
    "new.png",
    "new.npy",
    "new.csv",
    "new.onnx",
    "new",
    "ae",
    "vae",
    "link.png",
    "hard.npy",
    "data/new.npy",
    "data/new.png",
    "ae/config.json",
    "ae/new.png",
    "ae/checkpoints/new.png",
]


def paths(place: dict[str, Path]):
    return st.sampled_from(PATH_NAMES).map(lambda name: place[name])


SETTINGS = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)


@pytest.mark.parametrize("command", ["sample", "manifold", "interpolate", "latent"])
def test_latent_commands(place, capsys, command):
    @SETTINGS
    @given(
        run_name=st.sampled_from(["ae", "vae", "gan"]),
        number=NUMBERS,
        out=st.one_of(st.none(), paths(place)),
        label=st.one_of(st.none(), NUMBERS),
        overwrite=st.booleans(),
    )
    def one(run_name, number, out, label, overwrite):
        flag = {"sample": "-n", "manifold": "--grid", "interpolate": "--steps", "latent": "--limit"}[command]
        args = [command, place[run_name], flag, number]
        if command == "latent":
            args += ["--data-dir", place["data"]]
        args += [] if out is None else ["--out", out]
        args += [] if label is None else ["--label", label]
        check(place, args + (["--overwrite"] if overwrite else []), capsys)

    one()


def test_image_commands(place, capsys):
    @SETTINGS
    @given(
        command=st.sampled_from(["reconstruct", "denoise", "score"]),
        run_name=st.sampled_from(["ae", "gan", "vae"]),
        images=st.lists(paths(place), min_size=1, max_size=3),
        out=paths(place),
        noise=FLOATS,
        overwrite=st.booleans(),
    )
    def one(command, run_name, images, out, noise, overwrite):
        args = [command, place[run_name], *images, "--out", out]
        if command == "denoise":
            args += ["--noise", noise]
        if command == "score":
            args += ["--threshold", noise, "--score", "mse", "--maps", place["new"]]
        check(place, args + (["--overwrite"] if overwrite else []), capsys)

    one()


def test_file_commands(place, capsys):
    @SETTINGS
    @given(
        command=st.sampled_from(["encode", "export", "ensemble", "activations"]),
        run_name=st.sampled_from(["ae", "gan", "vae"]),
        out=paths(place),
        overwrite=st.booleans(),
        number=NUMBERS,
    )
    def one(command, run_name, out, overwrite, number):
        args = {
            "encode": ["encode", place[run_name], "--data-dir", place["data"], "--out", out],
            "export": ["export", place[run_name], "--out", out],
            "ensemble": ["ensemble", place[run_name], place["ae"], "--data", "mnist-sample", "--out", out],
            "activations": ["activations", place[run_name], "--epoch", number, "--out", out],
        }[command]
        check(place, args + (["--overwrite"] if overwrite else []), capsys)

    one()
