"""`aelab report`: one self-contained HTML page about runs, checked as HTML and in real Chromium
(no network: every image must come from the page itself), and the seeds' published numbers."""

from __future__ import annotations

import json
import re

import pytest
from conftest import run_cli
from test_bad_input import error_line
from test_webapp import chromium

import aelab
from aelab.config import RunConfig, TrainSettings
from aelab.published import published_for, published_for_run


@pytest.fixture(scope="module")
def page(trained_run, denoising_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "report.html"
    assert run_cli("report", trained_run, denoising_run, "--out", out) == 0
    return out


def cells(text: str) -> list[tuple[int, str, float]]:
    return [(int(run), key, float(value)) for run, key, value in
            re.findall(r'data-run="(\d+)" data-key="([^"]+)" data-value="([^"]+)"', text)]


def test_the_page_holds_every_number_of_metrics_json_and_every_figure(page, trained_run, denoising_run):
    text = page.read_text()
    runs = [trained_run, denoising_run]
    for index, run in enumerate(runs):
        metrics = json.loads((run / "metrics.json").read_text())
        shown = {key: value for i, key, value in cells(text) if i == index}
        numeric = {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        assert shown == pytest.approx(numeric) and numeric  # every number, exactly (repr), in its row
    figures = sum(len(list(run.glob("*.png"))) for run in runs)
    assert text.count('<img src="data:image/png;base64,') == figures > 0
    assert "http://" not in text and "https://" not in text  # nothing to fetch
    assert "Comparison" in text  # two runs: a table of their headline metrics first


def test_the_page_in_chromium_without_a_network(page, trained_run, denoising_run):
    pytest.importorskip("playwright", reason="playwright is not installed (pip install -e .[dev])")
    if chromium() is None:
        pytest.skip("no Chromium for Playwright (apt-get install chromium, or set AELAB_CHROMIUM)")
    from playwright.sync_api import sync_playwright

    fetched = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
        view = browser.new_page()

        def refuse(route):  # only the page itself and its data: images may load
            url = route.request.url
            if url.startswith(("file:", "data:")):
                route.continue_()
            else:
                fetched.append(url)
                route.abort()

        view.route("**/*", refuse)
        view.goto(page.as_uri())
        view.wait_for_load_state("load")
        widths = view.eval_on_selector_all("img", "images => images.map(i => i.complete ? i.naturalWidth : 0)")
        values = view.eval_on_selector_all(
            "td[data-key]", "cells => cells.map(c => [+c.dataset.run, c.dataset.key, +c.dataset.value, c.textContent])")
        browser.close()
    assert widths and all(w > 0 for w in widths), widths  # every image rendered
    assert not fetched
    for index, run in enumerate([trained_run, denoising_run]):
        metrics = json.loads((run / "metrics.json").read_text())
        for run_index, key, value, shown in values:
            if run_index == index:
                assert value == pytest.approx(metrics[key]), key
                if isinstance(metrics[key], float):
                    assert shown == f"{metrics[key]:.4g}"


def test_an_existing_page_is_kept_without_overwrite(trained_run, tmp_path, capsys):
    out = tmp_path / "mine.html"
    out.write_text("my page")
    assert run_cli("report", trained_run, "--out", out) == 2
    assert "--overwrite" in error_line(capsys) and out.read_text() == "my page"
    assert run_cli("report", trained_run, "--out", out, "--overwrite") == 0
    assert "<!DOCTYPE html>" in out.read_text()


@pytest.mark.parametrize("case, why", [("missing", "does not exist"), ("not-a-run", "not an aelab run"),
                                       ("txt", "must name a .html file")])
def test_bad_input_is_one_line_and_writes_nothing(trained_run, tmp_path, capsys, case, why):
    folder = tmp_path / "plain-folder"
    folder.mkdir()
    run = {"missing": tmp_path / "nowhere", "not-a-run": folder}.get(case, trained_run)
    out = tmp_path / ("page.txt" if case == "txt" else "page.html")
    assert run_cli("report", run, "--out", out) == 2
    assert why in error_line(capsys) and not out.exists()


def test_a_page_in_a_run_folder_goes_on_its_record(trained_run, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    aelab.report([run], run / "report.html")
    assert "report.html" in aelab.Run(run).written() and not aelab.Run(run).foreign_files()


def published(model: str, data: str = "mnist-sample", **params):
    from aelab.models import get_entry

    defaults = get_entry(model).defaults()
    return published_for_run(RunConfig(model, {**defaults, **params}, TrainSettings(), data), defaults)


def test_the_published_number_belongs_to_its_exact_experiment():
    from aelab.models import get_entry

    assert published("conv-resize").value == 0.10
    assert published("conv-unpool").value == 0.223
    assert published("conv-unpool", pool=2).value == 0.131
    assert published("conv-unpool", channels=[3]).value == 0.196  # (JSON gives lists)
    assert published("conv-unpool", pool=2, channels=[3]) is None  # no such experiment
    assert published("conv-resize", data="fashion-mnist") is None  # MNIST's numbers only
    assert published("best") is None
    assert published_for("deep-32", {}, get_entry("deep-32").defaults()).value == 0.0885
