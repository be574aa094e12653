"""The page: the overview of the runs' metrics, a tab set per run (Gradio), and serving it."""

from __future__ import annotations

import errno
import logging
import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from ..errors import AelabError, opt
from ..families import FAMILIES
from ..nets.base import Generative, TextModel
from .explorer import Explorer, from_sketch, from_upload, shown

log = logging.getLogger("aelab")


# the overview table's columns: each family's headline metrics, once each, in the families' order
METRICS = tuple(dict.fromkeys(name for family in FAMILIES.values() for name in family.headline))


def check_port(host: str, port: int) -> None:
    """A one-line error when ``port`` cannot be listened on (in use, or not a port)."""
    if not isinstance(port, int) or not 0 < port < 65536:
        raise AelabError(f"{opt('port')} must be a number from 1 to 65535, got {port!r}")
    try:
        socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as error:
        raise AelabError(
            f"{opt('host')} {host!r} is not an address or a known host name "
            f"({getattr(error, 'strerror', None) or error})"
        ) from None
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError as error:
            why = (
                f"choose another {opt('port')}"
                if error.errno == errno.EADDRINUSE
                else f"{host} is not an address of this machine: choose one with {opt('host')}"
                if error.errno == errno.EADDRNOTAVAIL
                else f"check {opt('host')} and {opt('port')}"
            )
            raise AelabError(f"cannot serve on {host}:{port}: {error.strerror or error} ({why})") from None


def metrics_table(runs: list[tuple[str, Any, str | None]]) -> list[list[Any]]:
    rows = []
    for name, run, error in runs:
        if run is None:
            rows.append([name, "-", "-", *["-"] * len(METRICS), f"error: {error}"])
            continue
        try:
            metrics = run.metrics if run.metrics_path.is_file() else {}
        except AelabError as damaged:
            rows.append([name, run.config.model, run.config.data, *["-"] * len(METRICS), f"error: {damaged}"])
            continue
        cells = [f"{metrics[k]:.4g}" if isinstance(metrics.get(k), (int, float)) else "-" for k in METRICS]
        rows.append([name, run.config.model, run.config.data, *cells, ""])
    return rows


def load_runs(paths: list[str | Path]) -> list[tuple[str, Any, str | None]]:
    """(name, Run or None, error) for each folder: a folder that fails to load keeps its error."""
    from ..runs import Run

    loaded = []
    for path in paths:
        name = Path(path).name or str(path)
        try:
            run = Run(path)
            run.config  # noqa: B018 - validates config.json
            run.model  # noqa: B018 - loads the weights
            loaded.append((name, run, None))
        except (AelabError, OSError, RuntimeError, ValueError) as error:
            loaded.append(
                (name, None, str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__)
            )
    return loaded


def build_app(paths: list[str | Path]):
    """The Gradio page for the runs in ``paths`` (not started: ``.launch()`` it, or use :func:`serve`)."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # nothing leaves the machine
    try:
        import gradio as gr
    except ImportError:
        raise AelabError('aelab serve needs Gradio: pip install "aelab[ui]"') from None

    runs = load_runs(paths)
    with gr.Blocks(title="aelab") as app:
        gr.Markdown("# aelab: explore trained runs")
        with gr.Tabs():
            with gr.Tab("Overview"):
                gr.Dataframe(
                    value=metrics_table(runs),
                    headers=["run", "model", "data", *METRICS, "note"],
                    interactive=False,
                    elem_id="overview",
                )
            for index, (name, run, error) in enumerate(runs):
                with gr.Tab(name, elem_id=f"run-{index}"):
                    if run is None:
                        gr.Markdown(f"**Could not load this run:** {error}", elem_id=f"error-{index}")
                        continue
                    _run_tabs(gr, Explorer(run, name), index)
    return app


def _run_tabs(gr, explorer: Explorer, index: int) -> None:
    from ..figures import class_label

    model, config = explorer.model, explorer.run.config
    gr.Markdown(
        f"`{config.model}` trained on {config.data}"
        + (f", to denoise (noise {explorer.noise:g})" if explorer.denoising else "")
    )
    conditional = explorer.conditional
    images, pictures = explorer.test_images() if explorer.is_autoencoder() else ([], [])
    if conditional:
        names = [class_label(k, explorer.classes) for k in range(model.classes)]
        label = gr.Dropdown(list(zip(names, range(model.classes))), value=0, label="class")
    else:
        label = gr.State(None)
    c, size, _ = explorer.shape
    pixelated, upscaled = ["pixelated"], ["pixelated", "upscaled"]  # (an upload of 28 pixels shown at 196 and more)
    if explorer.is_autoencoder():
        with gr.Tab("Reconstruct"):
            if pictures:
                gallery = gr.Gallery(
                    pictures,
                    label="the run's own test images: click one",
                    columns=8,
                    rows=3,
                    height=300,
                    allow_preview=False,
                    object_fit="contain",
                    elem_id=f"gallery-{index}",
                    elem_classes=pixelated,
                )
            with gr.Row():
                sketch = gr.Sketchpad(label="or draw", type="numpy", canvas_size=(280, 280), elem_id=f"sketch-{index}")
                upload = gr.Image(
                    label="or upload an image",
                    type="numpy",
                    sources=["upload", "clipboard"],
                    height=300,
                    elem_id=f"upload-{index}",
                    elem_classes=upscaled,
                )
            noise = (
                gr.Slider(0, 1, value=explorer.noise, step=0.05, label="noise added before denoising")
                if explorer.denoising
                else gr.State(0.0)
            )
            current = gr.State(None)
            with gr.Row():
                seen = gr.Image(
                    label="noisy input" if explorer.denoising else "input, as the model sees it",
                    interactive=False,
                    elem_id=f"input-{index}",
                    elem_classes=pixelated,
                )
                recon = gr.Image(
                    label="reconstruction", interactive=False, elem_id=f"recon-{index}", elem_classes=pixelated
                )
                denoised = gr.Image(
                    label="denoised",
                    interactive=False,
                    visible=explorer.denoising,
                    elem_id=f"denoised-{index}",
                    elem_classes=pixelated,
                )
            score = gr.Markdown(elem_id=f"score-{index}")
            distribution = gr.Image(
                label="anomaly score", interactive=False, visible=not conditional, elem_id=f"distribution-{index}"
            )
            outputs = [seen, recon, denoised, score, distribution]

            def use(convert: Callable) -> Callable:
                def handler(value, level, lab):
                    x = convert(value, c, size)
                    return (x, *explorer.analyse(x, level, lab))

                return handler

            def pick(level, lab, event):
                x = images[event.index]
                return (x, *explorer.analyse(x, level, lab))

            pick.__annotations__["event"] = gr.SelectData  # Gradio injects the click by this type
            if pictures:
                gallery.select(pick, [noise, label], [current, *outputs])
            sketch.change(use(from_sketch), [sketch, noise, label], [current, *outputs])
            upload.change(use(from_upload), [upload, noise, label], [current, *outputs])
            if explorer.denoising:
                noise.release(lambda x, level, lab: explorer.analyse(x, level, lab), [current, noise, label], outputs)
        if model.decodes_from_code_alone:
            with gr.Tab("Latent space"):
                try:
                    picture, why = explorer.latent_picture(), None
                except AelabError as error:  # e.g. a run trained on arrays: no dataset to encode
                    picture, why = None, str(error)
                if why:
                    gr.Markdown(f"No latent view: {why}")
                with gr.Row():
                    scatter = gr.Image(
                        picture,
                        label="test codes, coloured by class",
                        interactive=False,
                        scale=3,
                        elem_id=f"latent-{index}",
                    )
                    with gr.Column(scale=1, min_width=200):
                        decoded = gr.Image(
                            label="decoded", interactive=False, elem_id=f"decoded-{index}", elem_classes=pixelated
                        )
                        where = gr.Markdown(elem_id=f"where-{index}")

                def click(lab, event):
                    return explorer.decode_point(event.index[0], event.index[1], lab)

                click.__annotations__["event"] = gr.SelectData

                scatter.select(click, [label], [scatter, decoded, where])
        with gr.Tab("Path"):
            gr.Markdown("The decodings along a straight path between two images' codes.")
            ends = (
                [images[0], next((image for image in images[1:] if not torch.equal(image, images[0])), images[0])]
                if len(images)
                else [None, None]
            )
            with gr.Row():
                a = gr.Image(
                    None if ends[0] is None else shown(ends[0]),
                    label="from",
                    type="numpy",
                    sources=["upload"],
                    height=220,
                    elem_id=f"from-{index}",
                    elem_classes=upscaled,
                )
                b = gr.Image(
                    None if ends[1] is None else shown(ends[1]),
                    label="to",
                    type="numpy",
                    sources=["upload"],
                    height=220,
                    elem_id=f"to-{index}",
                    elem_classes=upscaled,
                )
            steps = gr.Slider(2, 16, value=8, step=1, label="steps")
            strip = gr.Image(label="path", interactive=False, elem_id=f"path-{index}", elem_classes=pixelated)
            gr.Button("Interpolate", elem_id=f"interpolate-{index}").click(explorer.path, [a, b, steps, label], strip)
    if isinstance(model, Generative):
        with gr.Tab("Samples"):
            with gr.Row():
                n = gr.Slider(1, 100, value=36, step=1, label="samples")
                seed = gr.Number(0, precision=0, label="seed")
            gallery = gr.Image(label="samples", interactive=False, elem_id=f"samples-{index}", elem_classes=pixelated)
            gr.Button("Draw samples", elem_id=f"draw-{index}").click(explorer.samples, [n, seed, label], gallery)
    if isinstance(model, TextModel):
        with gr.Tab("Generate text"):
            prompt = gr.Textbox("The object ", label="prompt")
            with gr.Row():
                temperature = gr.Slider(0.1, 1.5, value=0.5, step=0.1, label="temperature")
                length = gr.Slider(20, 1000, value=300, step=10, label="characters")
                seed_t = gr.Number(0, precision=0, label="seed")
            text = gr.Textbox(label="generated", lines=8, elem_id=f"text-{index}")
            gr.Button("Generate", elem_id=f"generate-{index}").click(
                explorer.generate, [prompt, temperature, length, seed_t], text
            )


# pixels drawn as blocks (a 28-pixel digit scaled up stays sharp); images never wider than the page
CSS = """.pixelated img, .pixelated canvas { image-rendering: pixelated; }
.upscaled img { min-width: min(196px, 100%); min-height: 196px; object-fit: contain; }
img { max-width: 100%; }"""


def serve(paths: list[str | Path], host: str = "127.0.0.1", port: int = 7860, block: bool = True):
    """Start the page for the runs in ``paths`` on ``host:port`` (127.0.0.1: this machine only);
    with ``block=False`` return the running app (``.close()`` it)."""
    if not paths:
        raise AelabError("give at least one run folder to serve")
    check_port(host, port)
    app = build_app(paths)
    app.launch(
        server_name=host,
        server_port=port,
        prevent_thread_lock=not block,
        show_error=True,
        quiet=True,
        ssr_mode=False,
        inbrowser=False,
        css=CSS,
    )
    return app
