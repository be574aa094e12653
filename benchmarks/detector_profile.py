"""Where `AnomalyDetector()`'s time goes: one class of Fashion-MNIST, as benchmarks/anomaly.py fits
and scores it (the defaults: `dense`, the combined method), split by piece.

    python benchmarks/detector_profile.py                 # class 0, 3 repeats (~1 min on 2 cores)
    python benchmarks/detector_profile.py --classes 0 8 --repeats 1

Pieces, each timed where aelab calls it (wrapped, not copied): the autoencoder's training
(``aelab.training.train``), what it makes of the images (``DetectorScore.see``: reconstructions
and codes), the distances to the nearest normal images in pixels and in codes
(``PixelNeighbours`` / ``CodeNeighbours``), the transformations network's fit
(``fit_transformation_net``) and its scores (``transformation_scores``), each split into the fit
(scoring the training images for the standardisation and threshold) and the test images' scores;
"the rest" is the wall time less these. Of ``--repeats`` fits, the one whose wall time is the
median is shown (its pieces add up); the table names the CPU class. Writes a section on top of
benchmarks/results/anomaly.md.
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import sys
import time
from collections import defaultdict
from contextlib import ExitStack
from pathlib import Path
from unittest import mock

import numpy as np

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))

from anomaly import RESULTS, roc_auc  # noqa: E402
from speed_common import cpu_line, prepend_section  # noqa: E402

PIECES = (
    "autoencoder training",
    "reconstructions and codes",
    "pixel neighbours",
    "code neighbours",
    "transformations network: fit",
    "transformations network: scores",
)


def profile_once(train: np.ndarray, test: np.ndarray, seed: int) -> tuple[dict[str, float], np.ndarray]:
    """One default detector fitted on ``train`` and scoring ``test``: seconds by (phase, piece),
    with each phase's wall time under "wall"; the test scores."""
    import aelab
    import aelab.training
    from aelab.anomaly import parts, scorer

    spent: dict[str, float] = defaultdict(float)
    phase = ["fit"]

    def timed(piece: str, function):
        def run(*args, **kwargs):
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                spent[f"{phase[0]}: {piece}"] += time.perf_counter() - started

        return run

    wraps = [
        (aelab.training, "train", PIECES[0]),
        (scorer.DetectorScore, "see", PIECES[1]),
        (parts.PixelNeighbours, "forward", PIECES[2]),
        (parts.CodeNeighbours, "forward", PIECES[3]),
        (parts, "fit_transformation_net", PIECES[4]),
        (parts, "transformation_scores", PIECES[5]),
    ]
    with ExitStack() as stack:
        for owner, name, piece in wraps:
            stack.enter_context(mock.patch.object(owner, name, timed(piece, getattr(owner, name))))
        began = time.perf_counter()
        detector = aelab.AnomalyDetector(seed=seed).fit(train)
        spent["fit: wall"] = time.perf_counter() - began
        phase[0] = "test"
        began = time.perf_counter()
        scores = detector.decision_function(test)
        spent["test: wall"] = time.perf_counter() - began
    return dict(spent), scores


def main(argv: list[str] | None = None) -> int:
    import torch

    from aelab.data import resolve_data

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classes", type=int, nargs="+", default=[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    data = resolve_data("fashion-mnist")
    test = (data.test[:, 0].numpy() * 255).round().astype(np.uint8)
    runs: list[dict[str, float]] = []
    aucs = []
    for k in args.classes:
        train = (data.train[data.train_labels == k][:, 0].numpy() * 255).round().astype(np.uint8)
        for repeat in range(args.repeats):
            torch.manual_seed(args.seed)
            spent, scores = profile_once(train, test, args.seed)
            runs.append(spent)
            aucs.append(roc_auc(scores, (data.test_labels != k).numpy().astype(int)))
            print(
                f"class {k}, repeat {repeat + 1}: fit {spent['fit: wall']:.2f} s, test {spent['test: wall']:.2f} s, "
                f"ROC-AUC {aucs[-1]:.4f}; "
                + ", ".join(f"{key} {value:.2f}" for key, value in spent.items() if "wall" not in key),
                flush=True,
            )
    # the fit whose wall time is the median (the pieces of one run add up; medians of pieces would not)
    median = sorted(runs, key=lambda run: run["fit: wall"] + run["test: wall"])[len(runs) // 2]
    lines = [
        f"## Where the detector's time goes, {datetime.date.today()}: {cpu_line()}",
        "",
        f"`python benchmarks/detector_profile.py --classes {' '.join(map(str, args.classes))} "
        f"--repeats {args.repeats}`: `AnomalyDetector(seed={args.seed})` (its defaults) fitted on one class of "
        f"Fashion-MNIST's training images ({len(train):,} for the last class) and scoring the 10,000 test "
        f"images; the fit of median wall time of {len(runs)}, seconds. ROC-AUC {statistics.median(aucs):.4f} (median).",
        "",
        "| piece | fit (training images) | test images | both |",
        "|---|---|---|---|",
    ]
    total = {"fit": 0.0, "test": 0.0}
    for piece in PIECES:
        fit, scored = median.get(f"fit: {piece}", 0.0), median.get(f"test: {piece}", 0.0)
        total["fit"] += fit
        total["test"] += scored
        lines.append(f"| {piece} | {fit:.2f} | {scored:.2f} | {fit + scored:.2f} |")
    rest = {phase: median[f"{phase}: wall"] - total[phase] for phase in total}
    lines.append(f"| the rest | {rest['fit']:.2f} | {rest['test']:.2f} | {rest['fit'] + rest['test']:.2f} |")
    wall = median["fit: wall"] + median["test: wall"]
    lines.append(f"| **wall** | {median['fit: wall']:.2f} | {median['test: wall']:.2f} | **{wall:.2f}** |")
    lines.append("")
    print("\n".join(lines))
    if not args.no_write:
        prepend_section(lines, RESULTS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
