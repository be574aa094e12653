"""What every use of a run shares: the run and its model loaded once, where a figure goes, and
the run's record of what was drawn in it."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

from torch import nn

from ..outputs import check_targets, first_free
from ..runs import Run

RunLike = Run | str | Path
Split = Literal["train", "test", "all"]


def model_of(run: RunLike) -> tuple[Run, nn.Module]:
    run = Run.of(run)
    return run, run.model


def figure_target(
    run: Run, out: str | Path | None, default: str, overwrite: bool, inputs: Iterable[Any] = (), data: Any = None
) -> Path:
    """The figure's target: ``out``, checked by the output policy, or the run's own ``default``
    figure: replaced with ``overwrite``, else (when it exists: the report shows it) the first free
    ``NAME-2.png``, ``NAME-3.png``, ...; never one of the command's ``inputs`` (paths), the run's
    files or the ``data`` it reads (:meth:`Run.sources`)."""
    inputs = [*run.sources(data), *(p for p in inputs if isinstance(p, (str, Path)))]
    if out is None:
        target = run.path / default if overwrite else first_free(run.path / default)
        return check_targets([target], overwrite=overwrite, inputs=inputs)[0]
    return check_targets([out], overwrite=overwrite, suffixes=(".png",), inputs=inputs)[0]


def drawn(run: Run, path: Path) -> Path:
    """``path`` just written: on the run's record where it lies in the run folder."""
    if path.resolve().parent == run.path.resolve() or run.path.resolve() in path.resolve().parents:
        run.record([path.resolve().relative_to(run.path.resolve())])
    return path
