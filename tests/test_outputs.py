"""The one output policy (aelab.outputs): an existing file is replaced only with --overwrite, an
input never, every target is checked before the first write, and a refused command writes
nothing. One test per case the careless-user review found."""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli
from PIL import Image
from test_bad_input import error_line
from test_export import untrained_run

import aelab
from aelab.outputs import atomic_write, check_targets, drawn_by_aelab

FAST_STYLE = ("--height", "24", "--evaluations", "2", "--iterations", "1", "--no-progress")


def digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture()
def picture(tmp_path) -> Path:
    path = tmp_path / "digit.png"
    Image.fromarray((np.random.default_rng(0).random((28, 28)) * 255).astype(np.uint8)).save(path)
    return path


@pytest.fixture()
def vae(tmp_path) -> Path:
    return untrained_run("vae", tmp_path / "vae").path


def test_an_existing_target_is_refused_without_overwrite_and_left_as_it_was(vae, tmp_path, capsys):
    mine = tmp_path / "mine.png"
    mine.write_bytes(b"my painting")
    assert run_cli("sample", vae, "-n", "4", "--out", mine) == 2
    assert "--overwrite" in error_line(capsys) and mine.read_bytes() == b"my painting"
    assert run_cli("sample", vae, "-n", "4", "--out", mine, "--overwrite") == 0
    assert mine.read_bytes()[:4] == b"\x89PNG" and drawn_by_aelab(mine)
    # the run's own figure is aelab's to redraw
    assert run_cli("sample", vae, "-n", "4") == 0 and run_cli("sample", vae, "-n", "4") == 0
    assert drawn_by_aelab(vae / "samples.png")


@pytest.mark.parametrize("command", ["manifold", "latent"])
def test_every_figure_command_follows_the_policy(command, vae, tmp_path, capsys):
    mine = tmp_path / "mine.png"
    mine.write_bytes(b"mine")
    extra = ["--data", "mnist-sample", "--limit", "50"] if command == "latent" else ["--grid", "3"]
    assert run_cli(command, vae, "--out", mine, *extra) == 2
    assert "exists" in error_line(capsys) and mine.read_bytes() == b"mine"


def test_ensemble_writes_json_only_and_never_over_a_users_file(trained_run, denoising_run, tmp_path, capsys):
    thesis = tmp_path / "thesis.tex"
    thesis.write_text("\\chapter{mine}")
    assert run_cli("ensemble", trained_run, trained_run, "--out", thesis) == 2
    assert ".json" in error_line(capsys) and thesis.read_text() == "\\chapter{mine}"
    result = tmp_path / "result.json"
    result.write_text("{}")
    assert run_cli("ensemble", trained_run, trained_run, "--out", result) == 2
    assert "--overwrite" in error_line(capsys) and result.read_text() == "{}"


def test_encode_never_replaces_a_file_without_overwrite(trained_run, tmp_path, capsys):
    codes = tmp_path / "codes.npy"
    np.save(codes, np.zeros(3))
    before = codes.read_bytes()
    assert run_cli("encode", trained_run, "--out", codes) == 2
    assert "--overwrite" in error_line(capsys) and codes.read_bytes() == before
    (tmp_path / "alias.npy").symlink_to(codes)
    assert run_cli("encode", trained_run, "--out", tmp_path / "alias.npy", "--overwrite") == 2
    assert "link" in error_line(capsys) and codes.read_bytes() == before


def test_style_never_writes_over_its_inputs(tmp_path, capsys):
    content, style = tmp_path / "photo.png", tmp_path / "painting.png"
    rng = np.random.default_rng(1)
    for path in (content, style):
        Image.fromarray((rng.random((30, 30, 3)) * 255).astype(np.uint8)).save(path)
    before = digest(tmp_path)
    for extra in ([], ["--overwrite"]):
        assert run_cli("style", content, style, "--out", style, *extra, *FAST_STYLE) == 2
        assert "inputs" in error_line(capsys)
    # the JSON beside the result is a target too: checked before any work
    (tmp_path / "result.json").write_text("my notes")
    assert run_cli("style", content, style, "--out", tmp_path / "result.png", *FAST_STYLE) == 2
    assert "result.json exists" in error_line(capsys)
    assert digest(tmp_path) == {**before, "result.json": hashlib.sha256(b"my notes").hexdigest()}


def test_score_checks_every_target_before_writing_any(trained_run, picture, tmp_path, capsys):
    maps = tmp_path / "maps"
    maps.write_text("a file, not a folder")
    table = tmp_path / "new.csv"
    assert run_cli("score", trained_run, picture, "--maps", maps, "--out", table) == 2
    assert "not a folder" in error_line(capsys)
    assert not table.exists() and maps.read_text() == "a file, not a folder"


def test_score_table_is_quoted_csv(trained_run, tmp_path):
    odd = tmp_path / "a, b.png"
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(odd)
    table = tmp_path / "scores.csv"
    assert (
        run_cli(
            "score",
            trained_run,
            odd,
            "--out",
            table,
            "--maps",
            tmp_path / "maps",
            "--threshold",
            "0.1",
            "--score",
            "mse",
        )
        == 0
    )
    rows = list(csv.reader(table.open()))
    assert rows[0] == ["file", "score", "outlier"] and rows[1][0] == str(odd) and len(rows[1]) == 3


def test_reconstruct_refuses_existing_outputs_and_its_inputs(trained_run, picture, tmp_path, capsys):
    out = tmp_path / "recon"
    assert run_cli("reconstruct", trained_run, picture, "--out", out) == 0
    written = digest(out)
    assert run_cli("reconstruct", trained_run, picture, "--out", out) == 2
    assert "--overwrite" in error_line(capsys) and digest(out) == written
    assert run_cli("reconstruct", trained_run, picture, "--out", out, "--overwrite") == 0
    # an input named as its own output is never replaced
    own = out / "digit_recon.png"
    before = own.read_bytes()
    assert run_cli("reconstruct", trained_run, own, picture, "--out", out, "--overwrite") == 2
    assert "inputs" in error_line(capsys) and own.read_bytes() == before


def test_interpolate_never_writes_over_an_input(trained_run, picture, tmp_path, capsys):
    other = tmp_path / "other.png"
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(other)
    before = picture.read_bytes()
    assert run_cli("interpolate", trained_run, picture, other, "--out", picture, "--overwrite") == 2
    assert "inputs" in error_line(capsys) and picture.read_bytes() == before


def test_check_targets_refuses_duplicates_and_wrong_kinds(tmp_path):
    with pytest.raises(aelab.AelabError, match="twice"):
        check_targets([tmp_path / "a.png", tmp_path / "." / "a.png"])
    with pytest.raises(aelab.AelabError, match=r"\.png"):
        check_targets([tmp_path / "a.jpg"], suffixes=(".png",))
    with pytest.raises(aelab.AelabError, match="folder"):
        check_targets([tmp_path])


def test_atomic_write_leaves_the_old_file_when_the_writer_fails(tmp_path):
    target = tmp_path / "result.txt"
    target.write_text("old")

    def fails(tmp: Path) -> None:
        tmp.write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(target, fails)
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["result.txt"]


def test_no_output_is_or_lies_inside_what_the_command_reads(trained_run, small_data, tmp_path, capsys):
    """The data folder, the run's own files (config, weights, checkpoints), and hard links to them:
    refused even with --overwrite, nothing written."""
    import os
    import shutil

    data = tmp_path / "data"
    shutil.copytree(small_data, data)
    other = tmp_path / "other"
    shutil.copytree(trained_run, other)
    linked = tmp_path / "weights.npy"
    os.link(trained_run / "model.safetensors", linked)  # the run's weights under another name
    before = {
        **digest(data),
        **{f"other/{k}": v for k, v in digest(other).items()},
        "linked": digest(tmp_path)["weights.npy"],
    }
    cases = [
        (("encode", trained_run, "--data-dir", data, "--out", data / "codes.npy"), "lies inside"),
        (("latent", trained_run, "--data-dir", data, "--out", data / "latent.png"), "lies inside"),
        (("ensemble", trained_run, other, "--out", other / "config.json"), "inputs"),
        (("encode", trained_run, "--out", linked), "inputs"),
        (("manifold", trained_run, "--out", trained_run / "checkpoints" / "grid.png"), "lies inside"),
    ]
    for args, why in cases:
        assert run_cli(*args, "--overwrite") == 2, args
        assert why in error_line(capsys), args
    after = {
        **digest(data),
        **{f"other/{k}": v for k, v in digest(other).items()},
        "linked": digest(tmp_path)["weights.npy"],
    }
    assert after == before and not (trained_run / "checkpoints" / "grid.png").exists()
