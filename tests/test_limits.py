"""The one limits check (aelab.limits): sizes and counts that would reach the allocator, or draw
nothing, are one line and exit 2 before anything is written."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import run_cli
from PIL import Image
from test_bad_input import error_line
from test_export import untrained_run

import aelab


@pytest.fixture(scope="module")
def vae(tmp_path_factory):
    return untrained_run("vae", tmp_path_factory.mktemp("limits") / "vae").path


@pytest.mark.parametrize(
    "args, says",
    [
        (["dense", "--param", "in_size=100000"], "in_size must be from 1 to 2,048"),
        (["best", "--param", "code_size=1000000000"], "GiB"),
        (["dense", "--devices", "64"], "CPU core"),
        (["dense", "--num-nodes", "2"], "launcher"),
        (["dense", "--seed", "-1"], "seed must lie between 0 and 4,294,967,295"),
        (["dense", "--seed", "99999999999999"], "seed must lie between 0 and 4,294,967,295"),
    ],
)
def test_training_sizes_and_launches_beyond_the_machine_are_refused(args, says, tmp_path, capsys):
    assert run_cli("train", *args, "--out", tmp_path / "r") == 2
    assert says in error_line(capsys)
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    "command, args, says",
    [
        ("sample", ["-n", "100000000"], "-n must be from 1 to 10,000"),
        ("sample", ["-n", "0"], "-n must be from 1"),
        ("manifold", ["--grid", "0"], "--grid must be from 1 to 100"),
        ("manifold", ["--grid", "5000"], "--grid must be from 1 to 100"),
        ("latent", ["--limit", "0", "--data", "mnist-sample"], "--limit must be at least 1"),
        ("interpolate", ["--steps", "1000000"], "--steps must be from 2 to 1,000"),
        ("sample", ["--seed", "-1"], "--seed must be from 0 to 4,294,967,295"),
        ("interpolate", ["--seed", "99999999999999"], "--seed must be from 0 to 4,294,967,295"),
    ],
)
def test_counts_beyond_their_bounds_are_one_line(vae, command, args, says, capsys):
    before = sorted(p.name for p in vae.iterdir())
    assert run_cli(command, vae, *args) == 2
    assert says in error_line(capsys)
    assert sorted(p.name for p in vae.iterdir()) == before


def test_encoding_no_images_is_one_line(vae):
    with pytest.raises(aelab.AelabError, match="no images"):
        aelab.encode(vae, np.zeros((0, 28, 28), np.uint8))


@pytest.mark.parametrize(
    "content_size, height, says",
    [
        ((40, 40), "8", "--height must be from 16"),
        ((40, 40), "100000", "--height must be from 16 to 4,096"),
        ((1, 30000), "400", "pixels wide"),
    ],
)
def test_style_sizes_are_checked_before_any_work(content_size, height, says, tmp_path, capsys):
    content, style = tmp_path / "c.png", tmp_path / "s.png"
    Image.fromarray(np.zeros((*content_size, 3), np.uint8)).save(content)
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(style)
    assert run_cli("style", content, style, "--out", tmp_path / "o.png", "--height", height) == 2
    assert says in error_line(capsys)
    assert not (tmp_path / "o.png").exists()


def test_a_one_pixel_image_is_styled(tmp_path):
    content, style = tmp_path / "c.png", tmp_path / "s.png"
    Image.fromarray(np.zeros((1, 1, 3), np.uint8)).save(content)
    Image.fromarray((np.random.default_rng(0).random((40, 40, 3)) * 255).astype(np.uint8)).save(style)
    assert (
        run_cli(
            "style",
            content,
            style,
            "--out",
            tmp_path / "o.png",
            "--height",
            "16",
            "--iterations",
            "1",
            "--evaluations",
            "2",
            "--no-progress",
        )
        == 0
    )
    assert Image.open(tmp_path / "o.png").size == (16, 16)


@pytest.mark.parametrize("stream", [["--stream"], []])
def test_an_image_over_pils_pixel_limit_is_one_line_streamed_or_not(stream, tmp_path, capsys):
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(6):
        Image.fromarray(np.full((28, 28), i * 40, np.uint8)).save(folder / f"{i}.png")
    Image.new("L", (13500, 13500)).save(folder / "huge.png")  # over twice PIL's 89,478,485 pixels: it refuses
    assert run_cli("train", "dense", "--data-dir", folder, *stream, "--out", tmp_path / "r", "--no-progress") == 2
    assert "huge.png has more pixels than PIL's safety limit" in error_line(capsys)
    assert not (tmp_path / "r").exists()


def test_text_generation_and_tuning_counts_are_bounded(tmp_path, capsys):
    text = untrained_run("char-lstm", tmp_path / "text").path
    for args, says in (
        (["--length", "100000000"], "--length must be from 1 to 100,000"),
        (["--seed", "-3"], "--seed must be from 0"),
        (["--temperature", "nan"], "--temperature must be a finite number >= 0"),
    ):
        assert run_cli("generate", text, "--prompt", "the", *args) == 2
        assert says in error_line(capsys)
    with pytest.raises(aelab.AelabError, match="temperature must be a finite number >= 0, got 'hot'"):
        aelab.generate(text, "the", temperature="hot")
    with pytest.raises(aelab.AelabError, match="seed must be a whole number, got 'x'"):
        aelab.sample(untrained_run("vae", tmp_path / "vae").path, seed="x")
    assert run_cli("tune", "dense", "--workers", "64", "--out", tmp_path / "study") == 2
    assert "--workers must be from 1 to" in error_line(capsys) and not (tmp_path / "study").exists()
