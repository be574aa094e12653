"""One-class anomaly detection: each detector trains on one class's training images and scores the
whole test set, that class being normal and the nine others anomalies; ROC-AUC per class, the
mean of each seed, and each detector's wall time (fit and scoring).

    python benchmarks/anomaly.py                              # Fashion-MNIST, seeds 0 1 2 (~40 min on 2 cores)
    python benchmarks/anomaly.py --data mnist-sample          # the embedded digits (~400 training images a class)
    python benchmarks/anomaly.py --classes 0 7 --seeds 0      # a quick look

Detectors, with settings fixed before any test image was scored (the neighbours' k=5, the
transformations' 5 epochs and the parts the combined method sums were chosen on validation images
from the training split alone: benchmarks/anomaly_validation.py):
- aelab `AnomalyDetector()` at its defaults (seed 2's `dense`, 784-64-784, 10 epochs; the
  combined method, its transformations network of width 8), scored four ways from its parts: `combined` (the
  distances to the nearest normal images in pixels and in codes, and GEOM's score), `neighbours` (the normalised
  reconstruction error and the two distances),
  `reconstruction` (the error alone) and `transformations` (GEOM's score alone, from the
  transformations network the combined detector trains); each column's time counts what its
  method fits and scores (the autoencoder's, the network's, or both);
- PCA reconstruction error with 49 components;
- PyOD's AutoEncoder (its defaults: 784-64-32, 10 epochs) and PyOD's DeepSVDD (Ruff et al. 2018;
  10 epochs instead of its default 100, batch 32, else its defaults), the peers.
Published results of detectors trained from scratch on the same protocol sit in their own table,
with their sources. Each (data, seed, class) result is kept in --cache, so an interrupted run
goes on where it stopped. Writes its section on top of benchmarks/results/anomaly.md. Needs PyOD
and scikit-learn (`pip install pyod scikit-learn`), which aelab itself does not use.
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results" / "anomaly.md"
CLASSES = {
    "fashion-mnist": (
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ),
    "mnist-sample": tuple(str(i) for i in range(10)),
}
DETECTORS = (
    "aelab dense (combined, default)",
    "aelab dense (neighbours)",
    "aelab dense (reconstruction)",
    "aelab (transformations)",
    "PCA (49)",
    "PyOD AutoEncoder",
    "PyOD DeepSVDD",
)
EPOCHS = 10
# mean ROC-AUC over the 10 one-class problems, detectors trained from scratch, as published
PUBLISHED = {
    "fashion-mnist": [
        ("GEOM / GeoTrans", 0.935, "Golan & El-Yaniv, NeurIPS 2018"),
        ("ARNet", 0.939, "Fei et al., IEEE TMM 2020"),
    ],
    "mnist-sample": [
        ("Deep SVDD", 0.948, "Ruff et al., ICML 2018"),
        ("OCGAN", 0.975, "Perera et al., CVPR 2019"),
        ("ARNet", 0.983, "Fei et al., IEEE TMM 2020"),
    ],
}


def roc_auc(scores: np.ndarray, anomalous: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(anomalous, scores))


def aelab_detector(train: np.ndarray, test: np.ndarray, seed: int) -> dict[str, tuple[np.ndarray, float]]:
    """One `dense` fitted by the combined method, scored four ways from its standardised parts;
    each with the seconds its method takes (the transformations network's share timed apart)."""
    import aelab
    from aelab.anomaly import as_images, parts

    spent = {"network": 0.0}

    def timed(function):
        def run(*args, **kwargs):
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                spent["network"] += time.perf_counter() - started

        return run

    began = time.perf_counter()
    with (
        tempfile.TemporaryDirectory() as folder,
        mock.patch.multiple(
            parts,
            fit_transformation_net=timed(parts.fit_transformation_net),
            transformation_scores=timed(parts.transformation_scores),
        ),
    ):
        detector = aelab.AnomalyDetector(out=Path(folder) / "run", seed=seed).fit(train)  # the defaults
        assert detector.method == "combined" and detector.run.config.train.epochs == EPOCHS
        scorer = detector.scorer()
        assert [type(part).__name__ for part in scorer.parts] == [
            "PixelNeighbours",
            "CodeNeighbours",
            "Transformations",
        ]
        seen = scorer.see(scorer.model.check_images(as_images(test)))
        standard = scorer.standard
        # each part standardised on the normal images: the combined score is their sum
        z = ((scorer.part_scores(seen) - standard[:, :1]) / standard[:, 1:]).numpy()
        recon = scorer.score_errors(seen.errors).numpy()
    total = time.perf_counter() - began
    # the neighbours method's third part, the error (not in the combined sum), standardised on the
    # training images as that method does (their reconstructions: a fraction of a second, not counted)
    normal = scorer.score_errors(scorer.see(scorer.model.check_images(as_images(train))).errors).numpy()
    z_error = (recon - normal.mean()) / (normal.std() + 1e-12)
    autoencoder = total - spent["network"]
    return {
        "aelab dense (combined, default)": (z.sum(0), total),
        "aelab dense (neighbours)": (z_error + z[:2].sum(0), autoencoder),
        "aelab dense (reconstruction)": (recon, autoencoder),
        "aelab (transformations)": (z[2], spent["network"]),
    }


def pca_detector(train: np.ndarray, test: np.ndarray, components: int = 49) -> np.ndarray:
    from aelab.metrics import pca_fit

    x = torch.from_numpy(train).reshape(len(train), -1).double()
    mean, basis = pca_fit(x, components)
    t = torch.from_numpy(test).reshape(len(test), -1).double() - mean
    recon = (t @ basis.T @ basis).clamp(-mean, 1 - mean)  # reconstructions clipped to [0, 1], as aelab's PCA floor
    return ((recon - t) ** 2).mean(1).numpy()


def pyod_autoencoder(train: np.ndarray, test: np.ndarray, seed: int) -> np.ndarray:
    from pyod.models.auto_encoder import AutoEncoder

    detector = AutoEncoder(verbose=0, random_state=seed)
    detector.fit(train.reshape(len(train), -1))
    return detector.decision_function(test.reshape(len(test), -1))


def pyod_deep_svdd(train: np.ndarray, test: np.ndarray, seed: int) -> np.ndarray:
    from pyod.models.deep_svdd import DeepSVDD

    detector = DeepSVDD(n_features=train[0].size, epochs=EPOCHS, verbose=0, random_state=seed)
    detector.fit(train.reshape(len(train), -1))
    return detector.decision_function(test.reshape(len(test), -1))


def measure(k: int, data, seed: int, names: tuple[str, ...]) -> dict[str, dict[str, float]]:
    """Each detector's ROC-AUC and wall seconds for class ``k`` as the normal one."""
    train = (data.train[data.train_labels == k][:, 0].numpy() * 255).round().astype(np.uint8)
    test = (data.test[:, 0].numpy() * 255).round().astype(np.uint8)
    anomalous = (data.test_labels != k).numpy().astype(int)
    runs = {
        "aelab": lambda: aelab_detector(train, test, seed),
        "PCA (49)": lambda: pca_detector(train / 255.0, test / 255.0),
        "PyOD AutoEncoder": lambda: pyod_autoencoder(train / 255.0, test / 255.0, seed),
        "PyOD DeepSVDD": lambda: pyod_deep_svdd(train / 255.0, test / 255.0, seed),
    }
    result = {}
    for name, detect in runs.items():
        if name != "aelab" and name not in names:
            continue
        torch.manual_seed(seed)
        np.random.seed(seed)
        started = time.perf_counter()
        scores = detect()
        seconds = time.perf_counter() - started
        for key, (values, took) in scores.items() if isinstance(scores, dict) else [(name, (scores, seconds))]:
            result[key] = {"roc_auc": roc_auc(values, anomalous), "seconds": took}
            print(f"seed {seed} class {k}: {key}: ROC-AUC {result[key]['roc_auc']:.4f} ({took:.1f} s)", flush=True)
    return result


def main(argv: list[str] | None = None) -> int:
    from aelab.data import resolve_data

    sys.path.insert(0, str(ROOT))
    from speed_common import cpu_line, prepend_section

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="fashion-mnist", choices=list(CLASSES))
    parser.add_argument("--classes", type=int, nargs="+", default=list(range(10)))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--cache", type=Path, default=Path("runs") / "anomaly-benchmark.json")
    args = parser.parse_args(argv)
    cache = json.loads(args.cache.read_text()) if args.cache.is_file() else {}
    from aelab.transformations import EPOCHS as NETWORK_EPOCHS
    from aelab.transformations import WIDTH

    setup = {"detectors": list(DETECTORS), "epochs": EPOCHS, "network": [NETWORK_EPOCHS, WIDTH]}
    if any(cache.get(key) != value for key, value in setup.items()):
        cache = {}  # measured with other detectors or settings: start again
    cache.update(setup)
    data = resolve_data(args.data)
    for seed in args.seeds:
        for k in args.classes:
            key = f"{args.data}/{seed}/{k}"
            if key not in cache.setdefault("results", {}):
                cache["results"][key] = measure(k, data, seed, DETECTORS)
                args.cache.parent.mkdir(parents=True, exist_ok=True)
                args.cache.write_text(json.dumps(cache, indent=1))
    options = "".join(
        f" {flag} {' '.join(map(str, value))}"
        for flag, value, default in (
            ("--data", [args.data], ["fashion-mnist"]),
            ("--classes", args.classes, list(range(10))),
            ("--seeds", args.seeds, [0, 1, 2]),
        )
        if value != default
    )
    lines = report(
        cache["results"],
        args.data,
        args.classes,
        args.seeds,
        f"python benchmarks/anomaly.py{options}",
        cpu_line(),
        len(data.train),
    )
    prepend_section(lines, RESULTS)
    print("\n".join(lines))
    return 0


def report(
    results: dict, data: str, classes: list[int], seeds: list[int], command: str, cpu: str, n_train: int
) -> list[str]:
    """The section: per class (mean over seeds), each seed's mean, time per class, the published table."""
    names = CLASSES[data]
    per = {d: {s: [results[f"{data}/{s}/{k}"][d]["roc_auc"] for k in classes] for s in seeds} for d in DETECTORS}
    lines = [
        f"## {data}, {datetime.date.today()}: {cpu}",
        "",
        f"`{command}`: {len(classes)} one-class problems x {len(seeds)} seeds; each trains on one class's "
        f"training images ({n_train // 10:,} a class, about; aelab holds 10% of them out) and scores every "
        "test image. ROC-AUC (1.0: every anomaly above every normal image).",
        "",
        "| class (mean of the seeds) | " + " | ".join(DETECTORS) + " |",
        "|---" * (len(DETECTORS) + 1) + "|",
    ]
    for i, k in enumerate(classes):
        values = {d: statistics.mean(per[d][s][i] for s in seeds) for d in DETECTORS}
        top = max(values.values())
        lines.append(
            f"| {k} {names[k]} | "
            + " | ".join(f"**{v:.4f}**" if v == top else f"{v:.4f}" for v in values.values())
            + " |"
        )
    means = {d: [statistics.mean(per[d][s]) for s in seeds] for d in DETECTORS}
    for s_index, s in enumerate(seeds):
        lines.append(f"| mean, seed {s} | " + " | ".join(f"{means[d][s_index]:.4f}" for d in DETECTORS) + " |")
    overall = {d: statistics.mean(means[d]) for d in DETECTORS}
    lines.append("| **mean of the seeds' means** | " + " | ".join(f"**{overall[d]:.4f}**" for d in DETECTORS) + " |")
    seconds = {
        d: statistics.mean(results[f"{data}/{s}/{k}"][d]["seconds"] for s in seeds for k in classes) for d in DETECTORS
    }
    lines.append("| wall s per class (fit + score) | " + " | ".join(f"{seconds[d]:.1f}" for d in DETECTORS) + " |")
    lines.append("")
    lines.append(
        "The aelab columns are one detector fitted by the combined method and scored four ways from its "
        "parts; each column's time is what its method fits and scores."
    )
    if len(classes) == 10:
        lines += [
            "",
            "Published means over the 10 classes (detectors trained from scratch, same protocol), beside "
            "aelab's best here:",
            "",
            "| method | mean ROC-AUC | source |",
            "|---|---|---|",
        ]
        lines += [f"| {name} | {value:.3f} | {source} |" for name, value, source in PUBLISHED[data]]
        best = max((d for d in DETECTORS if d.startswith("aelab")), key=overall.get)
        lines.append(f"| {best} (here) | {overall[best]:.3f} | this table |")
        if data == "mnist-sample":
            lines += [
                "",
                "The published MNIST numbers train on about 6,000 digits a class; the embedded sample "
                "has about 400, so this row is not the same experiment.",
            ]
    return lines


if __name__ == "__main__":
    sys.exit(main())
