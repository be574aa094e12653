"""Every figure stands alone: each PNG a command writes says, in its own metadata (figures.described),
that it has a title, axis labels with units where it has axes, and a colour bar wherever colour
carries a number. Checked on the written files, not on pixels."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from conftest import run_cli
from PIL import Image
from test_export import untrained_run


def shows(path: Path) -> dict:
    with Image.open(path) as image:
        return json.loads(image.info["aelab:figure"])


def titled(figure: dict) -> bool:
    return bool(figure["title"]) or any(panel["title"] for panel in figure["panels"])


def test_a_runs_figures_have_titles_units_and_colour_bars(trained_run, tmp_path):
    curves = shows(trained_run / "curves.png")
    (panel,) = curves["panels"]
    assert panel["x"] == "epoch" and panel["y"] == "binary cross-entropy (nats per pixel)"
    assert "validation loss" in panel["legend"] and panel["title"]
    pca = json.loads((trained_run / "metrics.json").read_text())["pca_bce"]
    assert f"PCA, 128 components (test): {pca:.4g}" in panel["legend"]  # the floor to beat, in the loss's terms
    codes = shows(trained_run / "codes.png")
    assert titled(codes) and codes["colorbars"] == ["code value"]
    rows = [panel["y"] for panel in shows(trained_run / "reconstructions.png")["panels"] if panel["y"]]
    assert rows == ["original", "reconstruction"]


def test_the_latent_commands_figures_say_what_they_show(tmp_path):
    vae = untrained_run("vae", tmp_path / "vae").path  # a 2-D latent
    assert run_cli("manifold", vae, "--grid", "5", "--out", tmp_path / "m.png") == 0
    (panel,) = shows(tmp_path / "m.png")["panels"]
    assert panel["x"].startswith("z[0]") and panel["y"] == "z[1]" and panel["title"]
    assert run_cli("sample", vae, "-n", "4", "--out", tmp_path / "s.png") == 0
    assert "4 samples" in shows(tmp_path / "s.png")["panels"][0]["title"]
    assert run_cli("interpolate", vae, "--steps", "4", "--out", tmp_path / "i.png") == 0
    assert "4 steps on the line between" in shows(tmp_path / "i.png")["panels"][0]["title"]


def test_the_error_maps_show_the_detectors_score_and_a_colour_bar(trained_run, tmp_path):
    image = tmp_path / "digit.png"
    Image.fromarray((np.random.default_rng(0).random((28, 28)) * 255).astype(np.uint8)).save(image)
    assert run_cli("score", trained_run, image, "--maps", tmp_path / "maps") == 0
    figure = shows(tmp_path / "maps" / "worst.png")
    assert "highest scores" in figure["title"] and figure["colorbars"] == ["squared error per pixel"]
    assert any(panel["x"].startswith("score ") for panel in figure["panels"])
