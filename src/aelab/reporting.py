"""`aelab report`: one self-contained HTML page about one or more runs, to open in any browser.

For each run: its metrics (ours beside PCA's where the family measures it, and the seed's
published number where there is one for that model and its data), its curves, and every figure
its folder holds (reconstructions, denoising, samples, manifold, ...), or its text samples; with
several runs, a table comparing their headline metrics first. Images are embedded as data URIs:
no server, no network, nothing else to copy. Every number is metrics.json's, printed to four
significant digits, with the exact value in the cell's ``data-value``.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Iterable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from .errors import AelabError
from .outputs import atomic_write, check_targets
from .runs import Run

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; padding: 0 1em; color: #222; }
h1, h2, h3, p, figcaption { overflow-wrap: anywhere; }
img { max-width: 100%; height: auto; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; display: block; max-width: 100%; overflow-x: auto; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; overflow-wrap: break-word; }
td.what { color: #555; font-size: 0.9em; min-width: 12em; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.headline td { font-weight: bold; }
figure { display: inline-block; margin: 0.5em 1em 1em 0; vertical-align: top; max-width: 100%; }
figure img { border: 1px solid #eee; }
figcaption { font-size: 0.9em; color: #555; }
pre { background: #f6f6f6; padding: 0.8em; white-space: pre-wrap; overflow-wrap: anywhere; }
section { border-top: 2px solid #ddd; margin-top: 2em; }
.met { color: #1a7f37; } .missed { color: #b42318; }
@media (max-width: 600px) { body { margin: 1em auto; } td.what { min-width: 7em; } th, td { padding: 0.2em 0.4em; }
                            td:first-child { overflow-wrap: anywhere; } }
"""

# figure files and their captions, in the order a reader wants them; any other PNG follows
FIGURES = {
    "curves.png": "loss per epoch",
    "reconstructions.png": "test images (top) and their reconstructions",
    "denoising.png": "noisy test images, denoised, and the originals",
    "codes.png": "codes between images and reconstructions",
    "samples.png": "samples drawn from the model",
    "manifold.png": "the latent space decoded on a grid",
    "latent.png": "test images' codes",
    "interpolation.png": "walks between two test images",
}


# what each key of metrics.json means, with its unit: the report's third column (a key matches the
# entry it equals, else one ending in "_" that it starts with or one starting with "_" that it ends with)
GLOSSARY = {
    "model": "the model measured",
    "data": "the dataset it was measured on",
    "stopped": "why training stopped early",
    "test_rmse": "root mean squared error per pixel on the test images (pixels 0-1; lower is better)",
    "test_mse": "mean squared error per pixel on the test images",
    "test_bce": "binary cross-entropy per pixel on the test images (nats)",
    "test_psnr": "peak signal-to-noise ratio of the reconstructions (dB; higher is better)",
    "test_ssim": "structural similarity of the reconstructions (0-1; higher is better)",
    "train_rmse": "root mean squared error per pixel on training images (against test: overfitting)",
    "train_mse": "mean squared error per pixel on training images",
    "train_bce": "binary cross-entropy per pixel on training images (nats)",
    "pca_rmse": "PCA's error with as many components as the code has numbers: the floor to beat",
    "pca_bce": "the same PCA reconstruction's binary cross-entropy per pixel (nats)",
    "rmse_vs_pca": "test RMSE over PCA's (below 1: the model beats PCA)",
    "code_size": "numbers in one image's code",
    "image_pixels": "numbers in one image (channels x height x width)",
    "mean_code_activation": "mean absolute code value (sparsity: lower is sparser)",
    "test_elbo": "evidence lower bound on log p(x) (nats per image; higher is better)",
    "test_recon_nats": "the ELBO's reconstruction term (nats per image)",
    "test_kl_nats": "the ELBO's KL term (nats per image)",
    "test_iwae_": "importance-weighted bound on log p(x) with k samples (nats per image; higher is better)",
    "bound_images": "test images the bounds were measured on",
    "fd_classifier": "Fréchet distance of samples to the test images on a small classifier's features (lower is better)",
    "fd_floor": "the same distance between training and test images: the best a model can reach",
    "fd_classifier_id": "which classifier's features (its weights' SHA-256, 12 digits): distances compare under the same one",
    "fid": "Fréchet Inception distance (lower is better)",
    "sampler": "where the samples came from: the model's prior, or a Gaussian mixture over its training codes",
    "test_perplexity": "VQ-VAE: codebook entries the test codes use, in effect (exp of the usage entropy)",
    "codebook_used": "VQ-VAE: codebook entries chosen at least once on the test images",
    "test_prior_nats": "VQ-VAE: -log p(code grid) under the learned prior (nats per image; lower is better)",
    "test_bits_per_char": "bits per character on the test text (lower is better)",
    "test_accuracy": "share of test items predicted right",
    "test_images": "test images measured",
    "train_error_images": "training images the training error was measured on",
    "_seconds": "seconds",
    "_note": "why a measurement is missing or how it was made",
}


def meaning(key: str) -> str:
    """The glossary's words for a metrics.json key ("" when it has none)."""
    if key in GLOSSARY:
        return GLOSSARY[key]
    for name, words in GLOSSARY.items():
        if (name.endswith("_") and key.startswith(name)) or (name.startswith("_") and key.endswith(name)):
            return words
    return ""


def report(runs: Iterable[Run | str | Path], out: str | Path = "report.html", overwrite: bool = False) -> Path:
    """Write ``out``, one HTML page about ``runs`` (run folders; evaluated, so that they hold
    metrics.json), and return its path. An existing ``out`` is replaced only with ``overwrite``."""
    runs = [Run.of(r) for r in runs]
    if not runs:
        raise AelabError("name at least one run folder")
    for run in runs:
        if not run.path.is_dir():
            raise AelabError(f"run folder {run.path} does not exist")
        if not run.is_run():
            raise AelabError(f"{run.path} is not an aelab run (no config.json)")
        if not run.metrics_path.is_file():
            raise AelabError(f"{run.path} has no metrics.json yet; evaluate it first (aelab eval {run.path})")
    (out,) = check_targets(
        [Path(out)], overwrite=overwrite, suffixes=(".html",), inputs=[p for run in runs for p in run.path.iterdir()]
    )
    page = render(runs)
    home = Run(out.parent)  # a page written into a run folder goes on that run's record of its files
    with home.recording() if home.is_run() else nullcontext():
        atomic_write(out, lambda tmp: tmp.write_text(page, encoding="utf-8"))
    return out


def render(runs: list[Run]) -> str:
    """The page's HTML."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>aelab report: {html.escape(', '.join(r.path.name for r in runs))}</title>",
        f"<style>{STYLE}</style></head><body>",
        "<h1>aelab report</h1>",
    ]
    if len(runs) > 1:
        parts += ["<h2>Comparison</h2>", comparison(runs)]
    parts += [run_section(run, i) for i, run in enumerate(runs)]
    parts.append("</body></html>")
    return "\n".join(parts)


def number(key: str, value: Any, run_index: int) -> str:
    """A table cell for one metric: four significant digits shown, the exact value kept."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"<td>{html.escape(str(value))}</td>"
    shown = "-" if not math.isfinite(value) else f"{value:,}" if isinstance(value, int) else f"{value:.4g}"
    return f'<td class="num" data-run="{run_index}" data-key="{html.escape(key)}" data-value="{value!r}">{shown}</td>'


def headline(run: Run) -> tuple[str, ...]:
    from .families import family_of

    return family_of(run.config.model).headline


def comparison(runs: list[Run]) -> str:
    """A table of the runs' headline metrics per dataset: numbers of different data never side
    by side."""
    metrics = [run.metrics for run in runs]  # each file read once
    by_data: dict[str, list[int]] = {}
    for i, run in enumerate(runs):
        by_data.setdefault(str(metrics[i].get("data", run.config.data)), []).append(i)
    parts = (
        []
        if len(by_data) == 1
        else [
            f"<p>These runs were measured on {len(by_data)} datasets: one table each "
            "(their numbers do not compare across datasets).</p>"
        ]
    )
    for data, members in by_data.items():
        keys = list(dict.fromkeys(k for i in members for k in headline(runs[i])))
        rows = [
            f"<h3>on {html.escape(data)}</h3>",
            "<table><tr><th>run</th><th>model</th>"
            + "".join(f'<th title="{html.escape(meaning(k))}">{html.escape(k)}</th>' for k in keys)
            + "</tr>",
        ]
        for i in members:
            cells = "".join(number(k, metrics[i][k], i) if k in metrics[i] else "<td>-</td>" for k in keys)
            rows.append(
                f"<tr><td>{html.escape(runs[i].path.name)}</td><td>{html.escape(runs[i].config.model)}</td>{cells}</tr>"
            )
        parts.append("\n".join(rows) + "</table>")
        parts += curves_figures(data, [runs[i] for i in members])
    return "\n".join(parts)


def curves_figures(data: str, runs: list[Run]) -> list[str]:
    """The runs' validation curves on one dataset, overlaid: one figure per kind of loss (a VAE's
    nats and an autoencoder's BCE never share an axis), for runs that record a validation loss."""
    from . import figures
    from .families import family_of

    by_loss: dict[str, dict[str, list[tuple[int, float]]]] = {}
    for run in runs:
        points = [(row["epoch"], row["val_loss"]) for row in run.history if isinstance(row.get("val_loss"), float)]
        if points:
            label = family_of(run.config.model).loss_label(run.config.train)
            by_loss.setdefault(label, {})[run.path.name] = points
    parts = []
    for label, curves in by_loss.items():
        png = figures.png_bytes(figures.overlaid_curves(curves, label, f"validation loss per epoch on {data}"))
        encoded = base64.b64encode(png).decode("ascii")
        parts.append(
            f'<figure><img src="data:image/png;base64,{encoded}" '
            f'alt="validation curves on {html.escape(data)}"><figcaption>validation {html.escape(label)} '
            f"per epoch, {len(curves)} run{'s' if len(curves) > 1 else ''} on {html.escape(data)}"
            "</figcaption></figure>"
        )
    return parts


def published_row(run: Run) -> str:
    """The seed's published number beside ours, met when ours is within 10% of it or better."""
    from .evaluation import published_number
    from .published import SEED_DATA

    published = published_number(run.config)
    if published is None:
        note = (
            ""
            if run.config.data in SEED_DATA
            else " (the seeds published MNIST's numbers; this run is on another dataset)"
        )
        return f"<p>Published number: none for this model and its parameters{note}.</p>"
    ours = run.metrics.get(published.metric)
    verdict = ""
    if isinstance(ours, (int, float)):
        met = published.met(ours)
        verdict = (
            f' <span class="{"met" if met else "missed"}">{"met" if met else "missed"}: ours '
            f"{ours:.4g} against {published.value:g} (within 10% or better counts)</span>"
        )
    return (
        f"<p>Published ({html.escape(published.source)}): {html.escape(published.said)}; "
        f"{html.escape(published.metric)} {published.value:g}.{verdict}</p>"
    )


def run_section(run: Run, index: int) -> str:
    config, metrics = run.config, run.metrics
    shown = headline(run)
    rows = []
    for key, value in metrics.items():
        if isinstance(value, (list, dict)):
            continue
        css = ' class="headline"' if key in shown else ""
        rows.append(
            f"<tr{css}><td>{html.escape(key)}</td>{number(key, value, index)}"
            f'<td class="what">{html.escape(meaning(key))}</td></tr>'
        )
    parts = [
        f"<section><h2>{html.escape(run.path.name)}: {html.escape(config.model)} on "
        f"{html.escape(str(metrics.get('data', config.data)))}</h2>",
        f"<p>{html.escape(str(run.path))}; {len(run.history)} epochs.</p>",
        published_row(run),
        "<table><tr><th>metric</th><th>value</th><th>meaning</th></tr>",
        *rows,
        "</table>",
    ]
    pngs = sorted(
        run.path.glob("*.png"),
        key=lambda p: (list(FIGURES).index(p.name) if p.name in FIGURES else len(FIGURES), p.name),
    )
    for png in pngs:
        caption = FIGURES.get(png.name, png.stem.replace("_", " "))
        if png.name == "reconstructions.png" and "test_rmse" in metrics:
            pca = f", PCA {metrics['pca_rmse']:.4g}" if isinstance(metrics.get("pca_rmse"), float) else ""
            caption += f": test RMSE {metrics['test_rmse']:.4g}{pca}"
        data = base64.b64encode(png.read_bytes()).decode("ascii")
        parts.append(
            f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(png.name)}">'
            f"<figcaption>{html.escape(png.name)}: {html.escape(caption)}</figcaption></figure>"
        )
    samples = run.path / "samples.txt"
    if samples.is_file():
        parts.append(f"<h3>Text samples</h3><pre>{html.escape(samples.read_text(errors='replace')[:20_000])}</pre>")
    parts.append("</section>")
    return "\n".join(parts)
