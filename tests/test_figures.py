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


def test_every_figure_function_titles_labels_and_colour_bars(tmp_path):
    """Each figure function, as the commands call it: a title, row or axis labels, colour bars
    where colour is a number (feature maps: one scale per map, titled by channel)."""
    import torch

    from aelab import figures

    images = torch.rand(6, 1, 28, 28)
    figures.denoising(images, images, images, tmp_path / "d.png", "seed 1: denoising")
    shown = shows(tmp_path / "d.png")
    assert titled(shown) and [p["y"] for p in shown["panels"] if p["y"]] == ["original", "noisy", "denoised"]
    figures.image_rows([images, images], ["input", "reconstruction"], tmp_path / "r.png", "dense: 6 images")
    assert titled(shows(tmp_path / "r.png"))
    many = torch.randint(0, 30, (200,))
    figures.scatter(torch.randn(200, 2), many, tmp_path / "s.png", "codes", classes=None)
    shown = shows(tmp_path / "s.png")
    assert titled(shown) and shown["colorbars"] == ["label"] and shown["panels"][0]["x"] == "z[0]"
    names = [f"class {k}" for k in range(10)]
    figures.scatter(torch.randn(50, 2), torch.arange(50) % 10, tmp_path / "n.png", "codes", classes=names)
    assert "3: class 3" in shows(tmp_path / "n.png")["panels"][0]["legend"]
    figures.feature_maps(np.random.rand(28, 28), np.random.rand(4, 7, 7), tmp_path / "f.png", "layer conv1")
    figures.feature_maps(np.random.rand(28, 28), np.random.rand(16), tmp_path / "g.png", "layer dense")
    assert (
        shows(tmp_path / "f.png")["title"] == "layer conv1" and shows(tmp_path / "g.png")["panels"][-1]["x"] == "unit"
    )
    figures.style_panel(
        [torch.rand(3, 20, 20)] * 3, [3.0, 2.0, 1.0], tmp_path / "p.png", "style transfer", [10, 10, 20]
    )
    shown = shows(tmp_path / "p.png")
    assert shown["panels"][-1]["y"].startswith("total loss") and shown["panels"][-1]["legend"] == [
        "10 px high",
        "20 px high",
    ]
    figures.grid(
        images, tmp_path / "c.png", nrow=3, title="cvae: a row per class", row_labels=["0: T-shirt", "1: Trouser"]
    )
    assert titled(shows(tmp_path / "c.png"))
