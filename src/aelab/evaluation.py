"""`aelab eval`: a run's test metrics (its family's: :mod:`aelab.families`), the figures, the
lines the CLI prints about them, and seed 3's ensembling of several runs."""

from __future__ import annotations

import math
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch

from . import figures
from .config import EvalSettings, RunConfig
from .data import ImageData, noisy_copy
from .data.streaming import FolderStream
from .data.text import TextData
from .errors import AelabError
from .families import family_of
from .metrics import image_metrics, pca_rmse, reconstruct
from .models import get_entry
from .nets.base import Autoencoder
from .outputs import check_targets
from .progress import Progress, reporting, say
from .published import Published, published_for_run
from .runs import Run, write_json
from .threads import job

__all__ = ["evaluate", "ensemble", "run_data", "run_report"]  # the public names of aelab.evaluation

LOADED = (ImageData, FolderStream, TextData)  # data already loaded (by training): measured as they are


def run_data(run: Run | str | Path, data: Any = None) -> Any:
    """The dataset a run was trained on, or ``data`` instead (a name, folder or arrays), in its
    model's input shape (a text model's: in its alphabet)."""
    from .data import ARRAYS
    from .datasets import RUN_ARRAYS, read_run_arrays

    run = Run.of(run)
    config = run.config
    if data is None and config.data == ARRAYS and (run.path / RUN_ARRAYS).is_file():  # the arrays it kept
        data = read_run_arrays(run.path / RUN_ARRAYS)
    return family_of(config.model).run_data(config, data)


def evaluate(
    run: Run | str | Path,
    data: Any = None,
    write_figures: bool = True,
    stopped: str | None = None,
    write: bool = True,
    progress: Progress = "auto",
    **evaluation: Any,
) -> dict[str, Any]:
    """Measure a trained run on its test split (its family's metrics: reconstruction beside PCA,
    ELBO and IWAE bounds, sample quality, accuracy, bits per character); write ``metrics.json`` and
    the figures. ``data`` (a name, folder, arrays or loaded data) measures on other data instead,
    and then nothing is written, so the run's own record stays as it was (``write=False`` and
    ``write_figures=False`` say the same for the run's own data). ``stopped``: why training
    stopped early, recorded in the metrics. ``evaluation``: :class:`~aelab.EvalSettings` fields
    (``bounds=False``, ``bound_samples=``, ``bound_images=``, ``quality=False``,
    ``quality_samples=``). ``progress``: "bar", "epoch" (a line per stage), None or "auto".
    """
    options = EvalSettings.of(evaluation)
    run = Run.of(run)
    config = run.config
    with reporting(progress):
        if data is not None and not isinstance(data, LOADED):  # a name, folder or arrays: measure, write nothing
            data, write, write_figures = family_of(config.model).run_data(config, data), False, False
        model, data = run.load_model(), data if data is not None else run_data(run)
    return measure(run, config, model, data, write_figures, stopped, write, progress, options)


def measure(
    run: Run,
    config: RunConfig,
    model: torch.nn.Module,
    data: Any,
    write_figures: bool = True,
    stopped: str | None = None,
    write: bool = True,
    progress: Progress = "auto",
    options: EvalSettings | None = None,
) -> dict[str, Any]:
    """:func:`evaluate` with the run's ``config``, trained ``model`` and ``data`` in hand (training
    passes its own: nothing read again from the folder it has just written)."""
    family, options = family_of(config.model), options or EvalSettings()
    with reporting(progress), job():  # one thread count for the whole evaluation
        say(f"evaluating {config.model} on {data.name}")
        metrics: dict[str, Any] = {"model": config.model, "data": data.name}
        if stopped:
            metrics["stopped"] = stopped
        with run.recording() if write or write_figures else nullcontext():
            metrics.update(family.evaluate(run, model, data, write_figures, options))
            if write_figures and run.history:
                figures.curves(
                    run.history,
                    run.path / "curves.png",
                    f"{config.model} on {config.data}",
                    references=[*_reference_line(config), *family.curve_lines(config.train, metrics)],
                    loss_label=family.loss_label(config.train),
                    parts=family.loss_parts(config.train),
                )
            if write:
                write_json(run.metrics_path, metrics)
    return metrics


def published_number(config) -> Published | None:
    """The seed's published number for a run's config, where there is one (MNIST runs only)."""
    return published_for_run(config, get_entry(config.model).defaults())


def _reference_line(config) -> list[tuple[float, str]]:
    """The seed's published BCE as a line on the loss curves, where the run's loss is that BCE."""
    published = published_number(config)
    if published is None or published.metric != family_of(config.model).loss_metric(config.train):
        return []
    return [(published.value, f"published ({published.source}): {published.value:g}")]


def run_report(run: Run | str | Path, metrics: dict[str, Any] | None = None) -> str:
    """What ``aelab train`` and ``aelab eval`` print about a run: its family's lines about the
    metrics (our error beside the PCA floor, bounds, sample quality, ...) and where things are."""
    run = Run.of(run)
    metrics = run.metrics if metrics is None else metrics
    lines = ["", *family_of(metrics.get("model") or run.config.model).report(metrics)]
    for note in ("fd_note", "fid_note", "stopped"):
        if metrics.get(note):
            lines.append(f"  {'stopped early: ' if note == 'stopped' else ''}{metrics[note]}")
    pngs = ", ".join(sorted(p.name for p in run.path.glob("*.png")))
    lines += [f"  metrics: {run.path / 'metrics.json'}", f"  figures: {run.path}/ ({pngs})"]
    return "\n".join(lines)


def ensemble(
    run_dirs: list[str | Path], data: Any = None, out: str | Path | None = None, overwrite: bool = False
) -> dict[str, Any]:
    """Seed 3's model ensembling: average the members' reconstructions of the same test inputs
    (and write the result as JSON to ``out``, if given; an existing file only with ``overwrite``).

    Members must take the same input shape and noise. The ensemble's PCA floor uses as many
    components as the members' codes have values together (what the ensemble stores per image).
    """
    if len(run_dirs) < 2:
        raise AelabError("an ensemble needs at least two run folders")
    runs = [Run(path) for path in run_dirs]
    if out is not None:
        check_targets(
            [out], overwrite=overwrite, suffixes=(".json",), inputs=[path for run in runs for path in run.sources(data)]
        )
    configs = [run.config for run in runs]
    for run, config in zip(runs, configs):
        if not isinstance(run.model, Autoencoder):
            raise AelabError(
                f"{run.path} holds {config.model}, which does not reconstruct images; an ensemble "
                "averages autoencoders' reconstructions"
            )
    shapes = {c.input_shape for c in configs}
    noises = {family_of(c.model).input_noise(c.train) for c in configs}
    if len(shapes) > 1:
        raise AelabError(f"ensemble members take different input shapes: {sorted(shapes)}")
    if len(noises) > 1:
        raise AelabError(f"ensemble members were trained with different noise: {sorted(noises)}")
    data = run_data(runs[0], data)
    noise = noises.pop()
    test_inputs = noisy_copy(data.test, noise)
    members, recons, total_code = [], [], 0
    for run, config in zip(runs, configs):
        recon, codes = reconstruct(run.model, test_inputs)
        code_size = int(math.prod(codes.shape[1:]))
        total_code += code_size
        row = {"run": str(run.path), "model": config.model, "code_size": code_size}
        row.update({f"test_{k}": v for k, v in image_metrics(recon, data.test).items()})
        row["pca_rmse"] = pca_rmse(data.train, test_inputs, data.test, code_size)
        members.append(row)
        recons.append(recon)
    mean = torch.stack(recons).mean(0)
    result: dict[str, Any] = {
        "data": data.name,
        "test_images": len(data.test),
        "members": members,
        "code_size": total_code,
    }
    result.update({f"test_{k}": v for k, v in image_metrics(mean, data.test).items()})
    result["pca_rmse"] = pca_rmse(data.train, test_inputs, data.test, total_code)
    if out is not None:
        write_json(Path(out), result)
    return result
