"""How the anomaly detector's neighbours method was chosen, on Fashion-MNIST's training split only
(no test image is scored): each class's last 600 training images are held out as normal
validation images, 600 training images of the other classes (a fixed draw) as anomalies, and
`dense` trains on the class's other 5,400. Mean validation ROC-AUC over the 10 classes for each
way of scoring tried.

    python benchmarks/anomaly_validation.py                          # the neighbours' rows, ~5 min on 2 cores
    python benchmarks/anomaly_validation.py --rows transformations   # the transformations' rows, ~17 min
    python benchmarks/anomaly_validation.py --rows fast              # the network's width, for speed, ~10 min
    python benchmarks/anomaly_validation.py --rows weights           # how much the network's part counts

Scores are sums of parts, each standardised by its mean and spread on the 5,400 training images
(each left out of its own neighbours), as AnomalyDetector(method="neighbours") does: ``r`` the
normalised reconstruction error; ``cK``/``pK`` the mean distance to the K nearest training images
in codes / pixels; ``m`` the Mahalanobis distance of the codes; ``b3`` the largest 3x3 mean of the
normalised error map; ``gE`` the transformations' score (GEOM: aelab.transformations) of a
network trained for E epochs on the same training images (``gEwW``: a network of width W);
``W*part``: that part counted W times in the sum. Writes its section on top of
benchmarks/results/anomaly.md.
"""

from __future__ import annotations

import datetime
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from anomaly import RESULTS, roc_auc
from speed_common import cpu_line, prepend_section

HELD, ANOMALIES = 600, 600
SECONDS: dict[str, list[float]] = {}  # each transformations network's fit and scoring, by "gEwW"
# (row, training settings, score parts, ensemble members)
VARIANTS = [
    ("reconstruction", {}, "r", 1),
    ("+ codes, k=5", {}, "r+c5", 1),
    ("+ pixels, k=5", {}, "r+p5", 1),
    ("+ codes and pixels, k=5 (the neighbours method)", {}, "r+c5+p5", 1),
    ("+ codes k=5 and pixels k=1", {}, "r+c5+p1", 1),
    ("+ codes, k=10", {}, "r+c10", 1),
    ("+ Mahalanobis distance of the codes", {}, "r+m", 1),
    ("+ codes, pixels and Mahalanobis", {}, "r+c5+p5+m", 1),
    ("blurred error map (3x3, its maximum)", {}, "r+b3", 1),
    ("reconstruction, 5 seeds averaged", {}, "r", 5),
    ("codes and pixels, 20 epochs", {"epochs": 20}, "r+c5+p5", 1),
    ("codes and pixels, 30 epochs", {"epochs": 30}, "r+c5+p5", 1),
    ("reconstruction, trained with noise 0.2", {"noise": 0.2}, "r", 1),
]
# the transformations network's size and epochs, for a combined method fast enough to be the default
FAST_VARIANTS = [
    ("+ codes and pixels, k=5 (the neighbours method)", {}, "r+c5+p5", 1),
    ("codes, pixels and transformations, 5 epochs, width 32", {}, "r+c5+p5+g5w32", 1),
    ("codes, pixels and transformations, 5 epochs, width 16", {}, "r+c5+p5+g5w16", 1),
    ("codes, pixels and transformations, 3 epochs, width 16", {}, "r+c5+p5+g3w16", 1),
    ("codes, pixels and transformations, 5 epochs, width 8", {}, "r+c5+p5+g5w8", 1),
    ("transformations alone, 5 epochs, width 16", {}, "g5w16", 1),
    ("transformations alone, 5 epochs, width 8", {}, "g5w8", 1),
]
# how much the transformations' part counts beside the autoencoder's three (the combined method sums them alike)
WEIGHT_VARIANTS = [
    ("+ codes and pixels, k=5 (the neighbours method)", {}, "r+c5+p5", 1),
    ("codes, pixels and transformations, width 8 (the combined method)", {}, "r+c5+p5+g5w8", 1),
    ("the combined method, transformations counted 1.5 times", {}, "r+c5+p5+1.5*g5w8", 1),
    ("the combined method, transformations counted 2 times", {}, "r+c5+p5+2*g5w8", 1),
    ("the combined method, transformations counted 3 times", {}, "r+c5+p5+3*g5w8", 1),
    ("codes, pixels and transformations, no reconstruction, width 8", {}, "c5+p5+g5w8", 1),
    ("no reconstruction, transformations counted 1.5 times", {}, "c5+p5+1.5*g5w8", 1),
    ("codes, pixels and transformations, reconstruction counted half", {}, "0.5*r+c5+p5+g5w8", 1),
    ("pixels and transformations, width 8", {}, "p5+g5w8", 1),
    ("codes and transformations, width 8", {}, "c5+g5w8", 1),
    ("codes, pixels and transformations, no reconstruction, width 16", {}, "c5+p5+g5w16", 1),
    ("codes, pixels and transformations, width 16", {}, "r+c5+p5+g5w16", 1),
    ("codes, pixels and transformations counted 2 times, width 16", {}, "r+c5+p5+2*g5w16", 1),
]
TITLES = {
    "neighbours": "the neighbours method",
    "transformations": "the transformations method",
    "fast": "the fast method",
    "weights": "what the combined method sums",
}
NETWORKS = {
    "neighbours": [],
    "transformations": [(3, 32), (5, 32)],
    "fast": [(5, 32), (5, 16), (3, 16), (5, 8)],
    "weights": [(5, 8), (5, 16)],
}  # (epochs, width) of the networks each set trains
TRANSFORMATION_VARIANTS = [
    ("+ codes and pixels, k=5 (the neighbours method)", {}, "r+c5+p5", 1),
    ("transformations alone, 3 epochs", {}, "g3", 1),
    ("transformations alone, 5 epochs", {}, "g5", 1),
    ("reconstruction + transformations, 5 epochs", {}, "r+g5", 1),
    ("codes, pixels and transformations, 3 epochs", {}, "r+c5+p5+g3", 1),
    ("codes, pixels and transformations, 5 epochs", {}, "r+c5+p5+g5", 1),
]


def parts_of(
    detector, train: np.ndarray, val: np.ndarray, networks: list[tuple[int, int]]
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Every part's (validation values, training values) for one trained detector, and those of
    the transformations' ``networks`` ((epochs, width) each; seed 0): ``gE`` at the default width,
    ``gEwW`` at width W, with the seconds each took to fit and score in ``seconds``."""
    from aelab.anomaly import as_images, neighbour_distance
    from aelab.transformations import WIDTH, fit_transformation_net, transformation_scores

    scorer = detector.scorer()
    tr_images, tr_maps, tr_codes = scorer.see(scorer.model.check_images(as_images(train)))
    va_images, va_maps, va_codes = scorer.see(scorer.model.check_images(as_images(val)))
    tr_maps, va_maps = tr_maps.numpy(), va_maps.numpy()
    tr_pixels, va_pixels = tr_images.flatten(1), va_images.flatten(1)
    tr_codes, va_codes = tr_codes.flatten(1).double(), va_codes.flatten(1).double()
    found = {"r": (detector.score_maps(va_maps), detector.score_maps(tr_maps))}
    for k in (5, 10):
        found[f"c{k}"] = (
            neighbour_distance(va_codes, tr_codes, k).numpy(),
            neighbour_distance(tr_codes, tr_codes, k, leave_out=True).numpy(),
        )
    for k in (1, 5):
        found[f"p{k}"] = (
            neighbour_distance(va_pixels, tr_pixels, k).numpy(),
            neighbour_distance(tr_pixels, tr_pixels, k, leave_out=True).numpy(),
        )
    mean = tr_codes.mean(0)
    inverse = torch.linalg.inv(torch.cov(tr_codes.T) + 1e-3 * torch.eye(tr_codes.shape[1], dtype=torch.float64))
    mahalanobis = lambda c: (((c - mean) @ inverse) * (c - mean)).sum(1).numpy()  # noqa: E731
    found["m"] = (mahalanobis(va_codes), mahalanobis(tr_codes))
    scale = 1 / (scorer.error.pixel_errors + 1e-4)
    blurred = lambda maps: F.avg_pool2d(torch.from_numpy(maps).float()[:, None] * scale, 3, 1, 1).flatten(1).amax(1)  # noqa: E731
    found["b3"] = (blurred(va_maps).numpy(), blurred(tr_maps).numpy())
    for epochs, width in networks:
        began = time.perf_counter()
        net = fit_transformation_net(tr_images, seed=0, epochs=epochs, width=width)
        values = (transformation_scores(net, va_images).numpy(), transformation_scores(net, tr_images).numpy())
        found[f"g{epochs}w{width}"] = values
        if width == WIDTH:
            found[f"g{epochs}"] = values
        SECONDS.setdefault(f"g{epochs}w{width}", []).append(time.perf_counter() - began)
    return found


def score(parts: dict[str, tuple[np.ndarray, np.ndarray]], recipe: str) -> np.ndarray:
    """The recipe's parts standardised on the training images and summed; ``W*name``: that part
    counted W times."""
    total = 0
    for term in recipe.split("+"):
        weight, _, name = term.rpartition("*")
        values, reference = parts[name]
        total = total + float(weight or 1) * (values - reference.mean()) / (reference.std() + 1e-12)
    return total


def main(argv: list[str] | None = None) -> int:
    import argparse

    import aelab
    from aelab.data import resolve_data

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rows",
        choices=["neighbours", "transformations", "fast", "weights"],
        default="neighbours",
        help="which choice's rows: the neighbours method's, the transformations', the "
        "transformations network's size for a fast combined method, or the weight of its part",
    )
    args = parser.parse_args(argv)
    variants = {
        "neighbours": VARIANTS,
        "transformations": TRANSFORMATION_VARIANTS,
        "fast": FAST_VARIANTS,
        "weights": WEIGHT_VARIANTS,
    }[args.rows]

    data = resolve_data("fashion-mnist")
    images = (data.train[:, 0].numpy() * 255).round().astype(np.uint8)
    labels = data.train_labels.numpy()
    rng = np.random.default_rng(0)
    found = {row: [] for row, *_ in variants}
    assert len(found) == len(variants), "two rows share a label (their results would mix)"
    for k in range(10):
        normal = images[labels == k]
        train, held = normal[:-HELD], normal[-HELD:]
        val = np.concatenate([held, images[rng.choice(np.flatnonzero(labels != k), ANOMALIES, replace=False)]])
        truth = np.r_[np.zeros(HELD), np.ones(ANOMALIES)]
        trained = {}
        for row, settings, recipe, members in variants:
            total = 0
            for seed in range(members):
                key = (tuple(sorted(settings.items())), seed)
                if key not in trained:
                    with tempfile.TemporaryDirectory() as folder:
                        detector = aelab.AnomalyDetector(
                            "dense", out=Path(folder) / "run", seed=seed, **{"epochs": 10, **settings}
                        ).fit(train)
                        trained[key] = parts_of(detector, train, val, NETWORKS[args.rows])
                total = total + score(trained[key], recipe)
            found[row].append(roc_auc(total, truth))
        print(f"class {k}: " + ", ".join(f"{row} {values[-1]:.4f}" for row, values in found.items()), flush=True)
    command = "python benchmarks/anomaly_validation.py" + ("" if args.rows == "neighbours" else f" --rows {args.rows}")
    lines = [
        f"## Choosing {TITLES[args.rows]} (validation only), {datetime.date.today()}: {cpu_line()}",
        "",
        f"`{command}`: Fashion-MNIST's training split; each class's last "
        f"{HELD} training images are normal validation images against {ANOMALIES} training images of the "
        "other classes; `dense` (10 epochs unless said, seed 0) trains on the class's other images. "
        "No test image is scored.",
        "",
        "| scoring | mean validation ROC-AUC |",
        "|---|---|",
    ]
    lines += [f"| {row} | {statistics.mean(values):.4f} |" for row, values in found.items()]
    if SECONDS:
        lines += [
            "",
            f"Each transformations network's mean seconds to fit on the {len(train):,}-odd training images "
            f"and score them and the {HELD + ANOMALIES:,} validation images ({torch.get_num_threads()} threads, "
            "float32):",
            "",
            "| epochs, width | seconds |",
            "|---|---|",
        ]
        lines += [
            f"| {key[1:].replace('w', ', ')} | {statistics.mean(values):.1f} |" for key, values in SECONDS.items()
        ]
    prepend_section(lines, RESULTS)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
