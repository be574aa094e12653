"""`aelab report`: one self-contained HTML page about runs, checked as HTML and in real Chromium
(no network: every image must come from the page itself), and the seeds' published numbers."""

from __future__ import annotations

import base64
import io
import json
import re

import pytest
from conftest import run_cli
from PIL import Image
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
    return [
        (int(run), key, float(value))
        for run, key, value in re.findall(r'data-run="(\d+)" data-key="([^"]+)" data-value="([^"]+)"', text)
    ]


def test_the_page_holds_every_number_of_metrics_json_and_every_figure(page, trained_run, denoising_run):
    text = page.read_text()
    runs = [trained_run, denoising_run]
    for index, run in enumerate(runs):
        metrics = json.loads((run / "metrics.json").read_text())
        shown = {key: value for i, key, value in cells(text) if i == index}
        numeric = {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        assert shown == pytest.approx(numeric) and numeric  # every number, exactly (repr), in its row
    figures = sum(len(list(run.glob("*.png"))) for run in runs)
    assert text.count('<img src="data:image/png;base64,') == figures + 1 > 1  # and the runs' curves overlaid
    overlaid = re.search(r'<img src="data:image/png;base64,([^"]+)" alt="validation curves on ([^"]+)"', text)
    described = json.loads(Image.open(io.BytesIO(base64.b64decode(overlaid.group(1)))).text["aelab:figure"])
    (panel,) = described["panels"]
    assert panel["title"] == f"validation loss per epoch on {overlaid.group(2)}" and panel["x"] == "epoch"
    assert panel["y"].startswith("validation ") and panel["legend"] == ["plain", "denoise"]
    assert "http://" not in text and "https://" not in text  # nothing to fetch
    assert "Comparison" in text  # two runs: a table of their headline metrics first


@pytest.mark.parametrize("width", [1400, 400])
def test_the_page_in_chromium_without_a_network(page, trained_run, denoising_run, width, tmp_path):
    """Every image rendered from the page itself, every number as in metrics.json, and a layout
    that reads in a wide and a phone-sized window: no horizontal overflow, no console errors."""
    pytest.importorskip("playwright", reason="playwright is not installed (pip install -e .[dev])")
    if chromium() is None:
        pytest.skip("no Chromium for Playwright (apt-get install chromium, or set AELAB_CHROMIUM)")
    from playwright.sync_api import sync_playwright

    fetched = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
        view = browser.new_page(viewport={"width": width, "height": 900})
        errors = []
        view.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
        view.on("pageerror", lambda error: errors.append(str(error)))

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
            "td[data-key]", "cells => cells.map(c => [+c.dataset.run, c.dataset.key, +c.dataset.value, c.textContent])"
        )
        wider = view.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        view.screenshot(path=tmp_path / f"report-{width}.png", full_page=True)
        browser.close()
    assert wider <= 0, f"the page is {wider} px wider than a {width} px window"
    assert not errors, errors
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


@pytest.mark.parametrize(
    "case, why", [("missing", "does not exist"), ("not-a-run", "not an aelab run"), ("txt", "must name a .html file")]
)
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


def test_the_demo_trains_three_runs_and_prints_a_table_with_a_report(small_data, tmp_path, capsys):
    """`aelab demo --quick` (2 epochs a run, so that it is a test and not the demo): three runs beside
    each other, their page inside the first, a table with one row each; the seed-steps arithmetic."""
    from aelab.published import epochs_for_steps, seed_steps

    assert seed_steps(20, 200) == 6000 and epochs_for_steps(6000, 3600, 200) == 334  # seed 1 on mnist-sample
    out = tmp_path / "demo"
    assert run_cli("demo", "--out", out, "--data", small_data, "--quick", "--no-progress") == 0
    printed = capsys.readouterr().out
    table = [line for line in printed.splitlines() if line.startswith(("conv-resize", "best"))]
    assert [line.split()[0] for line in table] == ["conv-resize", "conv-resize-denoise", "best"]
    for folder in (out, tmp_path / "demo-denoise", tmp_path / "demo-best"):
        assert len(aelab.Run(folder).history) == 2 and (folder / "metrics.json").is_file()
    assert aelab.Run(out).steps_done() == 2 * 2  # 2 epochs of 2 batches of 200 (288 training digits)
    assert f"report: {out / 'report.html'}" in printed and (out / "report.html").is_file()
    assert "report.html" in (out / ".aelab-files.json").read_text()  # on the run's record
    # again: refused without --overwrite, before anything is trained; with it, replaced
    before = (out / "metrics.json").read_bytes()
    assert run_cli("demo", "--out", out, "--data", small_data, "--quick") == 2
    assert "already holds an aelab run" in error_line(capsys)
    assert (out / "metrics.json").read_bytes() == before


def test_the_demo_checks_every_folder_before_it_trains(small_data, tmp_path, capsys):
    theirs = tmp_path / "demo-best"
    theirs.mkdir()
    (theirs / "notes.txt").write_text("mine")
    assert run_cli("demo", "--out", tmp_path / "demo", "--data", small_data, "--quick", "--overwrite") == 2
    assert "not an aelab run" in error_line(capsys)
    assert not (tmp_path / "demo").exists() and not (tmp_path / "demo-denoise").exists()
    assert (theirs / "notes.txt").read_text() == "mine"


def test_runs_on_different_data_get_a_table_each_and_every_metric_its_meaning(trained_run, tmp_path):
    import shutil

    from aelab.reporting import meaning, render

    other = tmp_path / "other"
    shutil.copytree(trained_run, other)
    metrics = json.loads((other / "metrics.json").read_text())
    (other / "metrics.json").write_text(json.dumps({**metrics, "data": "fashion-mnist"}))
    text = render([aelab.Run(trained_run), aelab.Run(other)])
    assert text.count("<h3>on ") == 2 and "2 datasets: one table each" in text
    assert meaning("test_rmse").startswith("root mean squared error") and "nats per image" in meaning("test_iwae_k50")
    assert meaning("fd_classifier_train_seconds") == "seconds" and meaning("fid_note").startswith("why")
    for key in metrics:
        assert meaning(key), key  # every key the run wrote is in words


def test_the_glossary_in_the_docs_is_the_reports():
    from pathlib import Path

    from aelab.reporting import GLOSSARY

    docs = (Path(__file__).resolve().parent.parent / "docs" / "run-folder.md").read_text()
    for key, words in GLOSSARY.items():
        assert words in docs, key
