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


def test_the_explorer_reconstructs_scores_and_decodes_clicks(trained_run, denoising_run):
    explorer = Explorer(Run(trained_run), "plain")
    x = torch.rand(1, 28, 28)
    seen, recon, denoised, text, distribution = explorer.analyse(x, 0.3)
    assert seen.shape == recon.shape == (196, 196) and denoised is None  # not trained to denoise: no such panel
    assert "Anomaly score" in text and "threshold" in text and distribution.ndim == 3
    images, gallery = explorer.test_images()
    assert len(images) == len(gallery) == 24 and gallery[0][0].shape == (84, 84) and gallery[0][1].startswith("class ")
    picture = explorer.latent_picture()
    assert picture.ndim == 3 and picture.shape[2] == 3
    marked, image, where = explorer.decode_point(picture.shape[1] / 2, picture.shape[0] / 2)
    assert image.shape == (196, 196) and "decoded the point" in where
    assert marked.shape == picture.shape and not np.array_equal(marked, picture)  # the clicked point marked
    # the click maps through the figure's axes: the same pixel decodes to the same image
    assert np.array_equal(explorer.decode_point(picture.shape[1] / 2, picture.shape[0] / 2)[1], image)
    noisy, recon, denoised, _, _ = Explorer(Run(denoising_run), "denoise").analyse(x, 0.5)
    assert denoised.shape == (196, 196) and not np.array_equal(noisy, recon)


def test_two_requests_at_once_each_get_their_own_answer(trained_run):
    """The page's handlers run in Gradio's worker threads, several at once: each answers as it
    would alone (no thread count or state of one request leaks into the other)."""
    import threading

    explorer = Explorer(Run(trained_run), "plain")
    inputs = [torch.rand(1, 28, 28, generator=torch.Generator().manual_seed(seed)) for seed in (1, 2)]
    alone = [explorer.analyse(x, 0.3)[:2] for x in inputs]  # the drawing as seen, its reconstruction
    together, ready = [None, None], threading.Barrier(2)

    def request(i: int) -> None:
        ready.wait(timeout=30)
        together[i] = explorer.analyse(inputs[i], 0.3)[:2]

    workers = [threading.Thread(target=request, args=(i,)) for i in (0, 1)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    for one, other in zip(alone, together):
        assert other is not None and all(np.array_equal(a, b) for a, b in zip(one, other))


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
    return next(
        (
            path
            for path in (os.environ.get("AELAB_CHROMIUM"), shutil.which("chromium"), shutil.which("chromium-browser"))
            if path
        ),
        None,
    )


@pytest.fixture(scope="module")
def page_server(trained_run, denoising_run, tmp_path_factory):
    """`aelab serve` on the tiny trained runs (plain, denoising) and a broken folder, in its own process."""
    pytest.importorskip("playwright", reason="playwright is not installed (pip install -e .[dev])")
    if chromium() is None:
        pytest.skip("no Chromium for Playwright (apt-get install chromium, or set AELAB_CHROMIUM)")
    from test_export import untrained_run

    folder = tmp_path_factory.mktemp("serve")
    broken = folder / "broken"
    broken.mkdir()
    cvae = untrained_run("cvae", folder / "cvae").path  # a generative, conditional model: samples per class
    text = untrained_run("char-lstm", folder / "text").path  # a character model: text
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "aelab.cli",
            "serve",
            str(trained_run),
            str(denoising_run),
            str(broken),
            str(cvae),
            str(text),
            "--port",
            str(port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
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


def overflow(page) -> int:
    """How many pixels the page is wider than the window (0: no horizontal scrolling)."""
    return page.evaluate("document.documentElement.scrollWidth - window.innerWidth")


def open_tab(page, name: str) -> None:
    """Click the tab ``name`` (a run's, or one of a run's own), through its tab bar's overflow
    menu ("...") where a narrow window has put it there."""
    tabs = page.get_by_role("tab", name=name, exact=True)
    for i in range(tabs.count()):
        if tabs.nth(i).is_visible():
            tabs.nth(i).click()
            return
    menus = page.locator(".overflow-menu")
    for i in range(menus.count()):
        if not menus.nth(i).is_visible():
            continue
        menus.nth(i).locator("button").first.click()
        item = menus.nth(i).locator(".overflow-dropdown button", has_text=name)
        if item.count() and item.first.is_visible():
            item.first.click()
            return
        menus.nth(i).locator("button").first.click()  # closed again
    raise AssertionError(f"no tab {name!r} on the page")


@pytest.mark.parametrize("width", [1400, 400])
def test_the_page_in_a_browser(page_server, small_data, tmp_path, width):
    """Each tab's elements at a wide and a phone-sized window: no horizontal overflow, no console
    errors, a screenshot per tab in the test's folder (tab-*.png)."""
    from playwright.sync_api import expect, sync_playwright

    digit = tmp_path / "digit.png"
    Image.fromarray(np.load(small_data / "digits.npz")["x"][0]).save(digit)
    errors, shots = [], []

    def shot(page, name):
        page.wait_for_function("() => !document.body.innerText.includes('processing |')", timeout=60_000)  # all drawn
        assert overflow(page) <= 0, f"{name}: the page is {overflow(page)} px wider than a {width} px window"
        shots.append(tmp_path / f"tab-{width}-{name}.png")
        page.screenshot(path=shots[-1], full_page=True)

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": width, "height": 1000})
        page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(page_server)
        expect(page.locator("#overview")).to_contain_text("conv-resize", timeout=60_000)
        shot(page, "overview")
        open_tab(page, "broken")
        expect(page.locator("#error-2")).to_contain_text("Could not load this run")
        shot(page, "broken")

        open_tab(page, "plain")  # a plain autoencoder: no denoising panels
        gallery = page.locator("#gallery-0 img")
        expect(gallery.first).to_be_visible(timeout=60_000)
        assert gallery.count() == 24  # the run's own test images to pick from
        gallery.nth(3).click()
        expect(page.locator("#recon-0 img")).to_be_visible(timeout=60_000)
        expect(page.locator("#input-0 img")).to_be_visible()
        expect(page.locator("#score-0")).to_contain_text("Anomaly score", timeout=60_000)
        expect(page.locator("#distribution-0 img")).to_be_visible()  # the scores' histogram, threshold marked
        assert not page.locator("#denoised-0 img").is_visible()
        assert page.locator("#recon-0 img").bounding_box()["width"] >= min(150, width / 3)  # not a thumbnail
        picked = page.locator("#score-0").inner_text()
        page.locator("#upload-0 input[type=file]").set_input_files(str(digit))
        expect(page.locator("#score-0")).not_to_have_text(picked, timeout=60_000)  # the upload's own score
        expect(page.locator("#distribution-0 img")).to_be_visible()
        assert page.locator("#upload-0 img").bounding_box()["height"] >= 150  # the 28-pixel upload drawn large
        shot(page, "reconstruct")

        open_tab(page, "Latent space")
        scatter = page.locator("#latent-0 img")
        expect(scatter).to_be_visible()
        first = scatter.get_attribute("src")
        box = scatter.bounding_box()
        scatter.click(position={"x": box["width"] * 0.45, "y": box["height"] / 2})
        expect(page.locator("#decoded-0 img")).to_be_visible(timeout=60_000)
        expect(page.locator("#where-0")).to_contain_text("decoded the point")
        expect(scatter).not_to_have_attribute("src", first, timeout=30_000)  # redrawn with the point marked
        shot(page, "latent")

        open_tab(page, "Path")
        expect(page.locator("#from-0 img")).to_be_visible()  # two test images to start from
        assert page.locator("#from-0 img").bounding_box()["height"] > 100  # not a thin strip
        page.locator("#interpolate-0").click()
        expect(page.locator("#path-0 img")).to_be_visible(timeout=60_000)
        shot(page, "path")

        open_tab(page, "denoise")  # a denoising run: its panels
        page.locator("#gallery-1 img").nth(0).click()
        expect(page.locator("#denoised-1 img")).to_be_visible(timeout=60_000)
        shot(page, "denoise")

        open_tab(page, "cvae")  # a conditional VAE: its samples, a class to pick
        open_tab(page, "Samples")
        page.locator("#draw-3").click()
        expect(page.locator("#samples-3 img")).to_be_visible(timeout=60_000)
        assert page.locator("#samples-3 img").bounding_box()["width"] >= min(300, width - 80)  # not a thumbnail
        shot(page, "samples")

        open_tab(page, "text")  # a character model: text from a prompt
        page.locator("#generate-4").click()
        expect(page.locator("#text-4 textarea")).not_to_have_value("", timeout=60_000)
        shot(page, "text")
        if os.environ.get("AELAB_SCREENSHOT"):
            page.screenshot(path=os.environ["AELAB_SCREENSHOT"], full_page=True)
        browser.close()
    assert not errors, errors
    assert all(path.stat().st_size > 0 for path in shots) and len(shots) == 8
