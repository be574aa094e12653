"""`aelab demo` (and `make demo`): the seeds reproduced in front of the user, offline, in one command.

Three runs on the embedded MNIST digits, then one page and one table:

- ``runs/demo``: seed 1's ``conv-resize`` trained for the seed's number of optimiser steps (its 20
  epochs of batch 200 on 60,000 digits are 6,000 steps: 334 epochs of the 3,600 embedded training
  digits), as the seed trained (every step at its learning rate, no early stop), its test BCE
  beside the seed's published ~0.10;
- ``runs/demo-denoise``: seed 1's own denoiser, ``conv-resize-denoise`` (32-32-16 channels,
  noise factor 0.5), its error on noisy test digits beside PCA's on the same noisy inputs;
- ``runs/demo-best``: aelab's ``best`` at a code of 32 values, beside PCA with 32 components.

Every run folder and the page are checked before the first run trains; the page is
``runs/demo/report.html``. :func:`demo` returns the table's rows; the CLI prints them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .data.images import held_out
from .overwrite import check_out_folder
from .progress import Progress
from .published import epochs_for_steps, seed_steps
from .runs import Run


@dataclass(frozen=True)
class DemoRun:
    folder: str  # beside the demo's folder: "" is the folder itself
    model: str
    what: str
    settings: dict[str, Any] = field(default_factory=dict)
    seed_steps: bool = False  # train for the seed's number of optimiser steps (else settings' epochs)


RUNS = (
    DemoRun("", "conv-resize", "seed 1's conv autoencoder, at the seed's optimiser steps", seed_steps=True),
    DemoRun("-denoise", "conv-resize-denoise", "seed 1's denoiser (noise 0.5), on noisy test digits", {"epochs": 30}),
    DemoRun("-best", "best", "aelab's best, code of 32 values", {"code_size": 32, "epochs": 30}),
)


@dataclass
class DemoRow:
    model: str
    what: str
    published: str  # the seed's number and its source, or "-"
    ours: str
    pca: str
    beats_pca: bool
    met: bool | None  # the published number met (None: there is none)
    steps: int | None
    seconds: float
    run: Path


def demo(
    out: str | Path = "runs/demo",
    data: str = "mnist-sample",
    overwrite: bool = False,
    progress: Progress = "auto",
    quick: bool = False,
) -> tuple[list[DemoRow], Path]:
    """Train the demo's three runs (``out``, ``out``-denoise, ``out``-best) and write
    ``out/report.html``; returns the table's rows and the page. ``overwrite`` replaces runs a
    previous demo left (only aelab runs, as ``aelab train --overwrite``) and its page.
    ``quick`` trains each run for 2 epochs (to try the command, not to reproduce anything)."""
    from .families import model_settings
    from .models import get_entry
    from .reporting import report
    from .training import train

    out = Path(out)
    if isinstance(data, str) and Path(data).is_dir():  # a folder of the user's
        data = Path(data)
    folders = [out.with_name(out.name + r.folder) for r in RUNS]
    for folder in folders:  # every folder, then the page, before the first run trains
        check_out_folder(folder, resume=False, overwrite=overwrite)
    page = out / "report.html"  # inside the first run's folder, which the check above covered
    rows = []
    for spec, folder in zip(RUNS, folders):
        entry = get_entry(spec.model)
        settings = dict(spec.settings)
        if spec.seed_steps:
            from .data import resolve_data

            n = len(resolve_data(data).train)
            defaults = model_settings(entry.name)
            steps = seed_steps(defaults.epochs, defaults.batch_size)
            settings.update(
                epochs=epochs_for_steps(steps, n - held_out(n, defaults.val_fraction), defaults.batch_size),
                early_stopping=False,
                reduce_lr=False,
            )
        if quick:
            settings["epochs"] = 2
        began = time.perf_counter()
        run = train(spec.model, data=data, out=folder, overwrite=overwrite, progress=progress, **settings)
        rows.append(_row(spec, run, time.perf_counter() - began))
    report([r.run for r in rows], page)  # the first run's folder is new: no page there yet
    return rows, page


def _row(spec: DemoRun, run: Run, seconds: float) -> DemoRow:
    from .evaluation import published_number

    m = run.metrics
    found = published_number(run.config)
    noisy = " (noisy inputs)" if m.get("noise") else ""
    ours = f"RMSE {m['test_rmse']:.4f}{noisy}"
    met = None
    if found is not None:
        ours = f"{found.metric.removeprefix('test_').upper()} {m[found.metric]:.4f}, {ours}"
        met = found.met(m[found.metric])
    published = (
        "-" if found is None else f"{found.metric.removeprefix('test_').upper()} ~{found.value:g} ({found.source})"
    )
    return DemoRow(
        spec.model,
        spec.what,
        published,
        ours,
        f"RMSE {m['pca_rmse']:.4f} ({m['code_size']} components)",
        m["test_rmse"] < m["pca_rmse"],
        met,
        run.steps_done(),
        seconds,
        run.path,
    )
