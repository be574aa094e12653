"""`aelab score`: anomaly scores of image files against a trained run, a table and a figure."""

from __future__ import annotations

import csv
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np

from ..data import read_images
from ..errors import AelabError, opt
from ..outputs import atomic_write, check_targets, drawn_by_aelab
from ..runs import Run
from ..threads import job
from .checks import check_choice, check_contamination, check_detector_model
from .detector import AnomalyDetector
from .parts import DEFAULT_METHOD, METHODS, SCORES, MethodName, Score


@job()  # one thread count for the job (the detector's fit on the run's data, the scores)
def score_files(
    run_dir: str | Path,
    images: list[str | Path],
    threshold: float | None = None,
    contamination: float = 0.1,
    maps: str | Path | None = None,
    worst: int = 8,
    csv_out: str | Path | None = None,
    score: Score = "normalised",
    overwrite: bool = False,
    method: MethodName = DEFAULT_METHOD,
) -> dict[str, Any]:
    """`aelab score`: the score of each image file, whether it is an outlier, the threshold (given,
    or from the run's validation images at ``contamination``), and the error maps of the ``worst``
    images drawn to ``maps/worst.png`` (default folder: ``RUN/anomaly``). Every input is checked
    before anything is written; ``csv_out`` gets one row per image (a table or figure this command
    wrote may be written again; another existing file only with ``overwrite``). The normalised
    ``score`` needs the run's validation images; ``score="mse"`` with a ``threshold`` needs no data.
    The other methods (see :class:`AnomalyDetector`) take the run's training images as their
    reference: ``neighbours`` their distances, ``transformations`` a network trained on them
    first (the slower: tens of seconds for a few thousand images on 2 cores), ``combined`` both."""
    from .. import figures

    run = Run(run_dir)
    check_contamination(contamination)
    check_choice("score", score, SCORES)
    check_choice("method", method, METHODS)
    if threshold is not None and not (
        isinstance(threshold, (int, float)) and np.isfinite(threshold) and threshold >= 0
    ):
        raise AelabError(f"{opt('threshold')} must be a finite number >= 0, got {threshold!r}")
    if worst < 1:
        raise AelabError(f"{opt('worst')} must be at least 1, got {worst}")
    csv_path = Path(csv_out) if csv_out is not None else None
    folder = Path(maps) if maps is not None else run.path / "anomaly"
    sources = [*images, *run.sources()]
    if csv_path is not None:  # an existing table is replaced only with overwrite, whatever its first line says
        check_targets([csv_path], overwrite=overwrite, inputs=sources, suffixes=(".csv",))
    figure_path = check_targets(
        [folder / "worst.png"], overwrite=overwrite, inputs=sources, what=opt("maps"), replaceable=drawn_by_aelab
    )[0]
    check_detector_model(run.model, run.config.model)
    shape = run.model.input_shape
    x = read_images(list(images), shape[0], shape[1])  # every file checked before anything is written
    if threshold is None or score == "normalised" or METHODS[method].uses_reference:
        detector = AnomalyDetector.from_run(run, contamination, score=score, method=method)
        source = f"the {len(detector.decision_scores_)} validation images' {1 - contamination:.0%} quantile"
    else:  # a plain error against a given threshold: nothing to learn from the run's data
        detector = AnomalyDetector(run.config.model, contamination, score=score, method="reconstruction").use(run)
    if threshold is not None:
        detector.threshold_, source = float(threshold), "given"
    scorer = detector.scorer()
    seen = scorer.see(scorer.model.check_images(x))  # one pass: the scores and the error maps drawn below
    scores, errors = scorer.scores(seen).numpy(), seen.errors
    outlier = scores > detector.threshold_
    rows = [(str(path), float(score), bool(flag)) for path, score, flag in zip(images, scores, outlier)]
    if csv_path is not None:
        atomic_write(csv_path, lambda tmp: _write_table(tmp, rows))
    order = np.argsort(-scores)[:worst]
    recon = detector.reconstruct(x[order])
    with run.recording() if maps is None else nullcontext():  # the default folder is in the run
        figure = figures.error_maps(
            x[order],
            recon,
            errors[order],
            [Path(images[i]).name for i in order],
            figure_path,
            title=f"{run.config.model}: the {len(order)} highest scores (threshold {detector.threshold_:.4g})",
            scores=[float(scores[i]) for i in order],
        )
    return {
        "rows": rows,
        "threshold": detector.threshold_,
        "threshold_source": source,
        "figure": figure,
        "csv": csv_path,
    }


CSV_HEADER = "file,score,outlier\n"


def _write_table(path: Path, rows: list[tuple[str, float, bool]]) -> None:
    """The score table, quoted as CSV (a file named ``a, b.png`` stays one cell)."""
    with open(path, "w", newline="") as file:  # (the caller writes it through atomic_write)
        table = csv.writer(file, lineterminator="\n")
        table.writerow(CSV_HEADER.strip().split(","))
        table.writerows((p, f"{s:.6g}", int(f)) for p, s, f in rows)
