"""`aelab serve`: the page's workings, and the page itself in a real browser (headless Chromium)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from conftest import run_cli
from PIL import Image

from aelab.errors import AelabError
from aelab.runs import Run
from aelab.webapp import Explorer, check_port, from_sketch, load_runs


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_drawing_becomes_a_centred_digit():
    canvas = np.zeros((280, 280, 4), dtype=np.uint8)  # a transparent canvas, black strokes
    canvas[40:120, 200:220, 3] = 255  # a bar in the top-right corner
    x = from_sketch({"composite": canvas}, 1, 28)
    assert x.shape == (1, 28, 28) and x.max() > 0.9 and x[0, 0, 0] == 0
    rows, cols = torch.nonzero(x[0] > 0.5, as_tuple=True)
    assert 10 <= rows.float().mean() <= 17 and 10 <= cols.float().mean() <= 17  # centred, as MNIST's digits
    assert rows.max() - rows.min() + 1 == 20  # scaled to 20 of the 28 pixels
    assert from_sketch({"composite": np.zeros((280, 280, 4), dtype=np.uint8)}, 1, 28) is None  # nothing drawn
    white = np.full((280, 280, 3), 255, dtype=np.uint8)  # an opaque white canvas
    white[100:180, 130:150] = 0
    assert from_sketch({"composite": white}, 1, 28).max() > 0.9


def test_the_explorer_reconstructs_scores_and_decodes_clicks(trained_run):
    explorer = Explorer(Run(trained_run), "plain")
    x = torch.rand(1, 28, 28)
    noisy, recon, denoised, text = explorer.analyse(x, 0.3)
    assert recon.shape == (196, 196) and denoised.shape == (196, 196)
    assert "Anomaly score" in text and "threshold" in text
    picture = explorer.latent_picture()
    assert picture.ndim == 3 and picture.shape[2] == 3
    image, where = explorer.decode_point(picture.shape[1] / 2, picture.shape[0] / 2)
    assert image.shape == (196, 196) and "decoded the point" in where
    # the click maps through the figure's axes: the same pixel decodes to the same image
    assert np.array_equal(explorer.decode_point(picture.shape[1] / 2, picture.shape[0] / 2)[0], image)


def test_runs_that_fail_to_load_and_ports_in_use_are_one_line(trained_run, tmp_path, capsys):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    loaded = load_runs([trained_run, broken, tmp_path / "missing"])
    assert loaded[0][2] is None
    assert loaded[1][1] is None and "config.json" in loaded[1][2]
    assert loaded[2][1] is None and "does not exist" in loaded[2][2]
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(AelabError, match=f"cannot serve on 127.0.0.1:{port}"):
            check_port("127.0.0.1", port)
        assert run_cli("serve", trained_run, "--port", port) == 2
        err = capsys.readouterr().err.strip()
        assert "choose another --port" in err and len(err.splitlines()) == 1


def chromium() -> str | None:
    return next((path for path in (os.environ.get("AELAB_CHROMIUM"), shutil.which("chromium"),
                                   shutil.which("chromium-browser")) if path), None)


@pytest.fixture(scope="module")
def page_server(trained_run, tmp_path_factory):
    """`aelab serve` on the tiny trained run and a broken folder, in its own process."""
    pytest.importorskip("playwright", reason="playwright is not installed (pip install -e .[dev])")
    if chromium() is None:
        pytest.skip("no Chromium for Playwright (apt-get install chromium, or set AELAB_CHROMIUM)")
    broken = tmp_path_factory.mktemp("serve") / "broken"
    broken.mkdir()
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "aelab.cli", "serve", str(trained_run), str(broken),
                                "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"aelab serve exited: {process.stdout.read()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            time.sleep(1)
    else:
        process.kill()
        pytest.fail("aelab serve did not start listening within 300 s")
    yield f"http://127.0.0.1:{port}"
    process.terminate()
    process.wait(timeout=30)


def test_the_page_in_a_browser(page_server, small_data, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    digit = tmp_path / "digit.png"
    Image.fromarray(np.load(small_data / "digits.npz")["x"][0]).save(digit)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1300, "height": 1000})
        page.goto(page_server)
        expect(page.locator("#overview")).to_contain_text("conv-resize", timeout=60_000)
        page.get_by_role("tab", name="broken").click()
        expect(page.locator("#error-1")).to_contain_text("Could not load this run")
        page.get_by_role("tab", name="plain").click()
        page.locator("#upload-0 input[type=file]").set_input_files(str(digit))
        expect(page.locator("#recon-0 img")).to_be_visible(timeout=60_000)
        expect(page.locator("#denoised-0 img")).to_be_visible()
        expect(page.locator("#score-0")).to_contain_text("Anomaly score", timeout=60_000)
        if os.environ.get("AELAB_SCREENSHOT"):
            page.screenshot(path=os.environ["AELAB_SCREENSHOT"], full_page=True)
        page.get_by_role("tab", name="Latent space").click()
        scatter = page.locator("#latent-0 img")
        expect(scatter).to_be_visible()
        box = scatter.bounding_box()
        scatter.click(position={"x": box["width"] / 2, "y": box["height"] / 2})
        expect(page.locator("#decoded-0 img")).to_be_visible(timeout=60_000)
        expect(page.locator("#where-0")).to_contain_text("decoded the point")
        browser.close()
