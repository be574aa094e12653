"""One-class anomaly detection on Fashion-MNIST: each detector trains on one class's training
images and scores the whole test set, that class being normal and the nine others anomalies;
ROC-AUC per class and the mean, with each detector's wall time (fit and scoring).

    python benchmarks/anomaly.py                  # all 10 classes (about 30 min on 2 cores)
    python benchmarks/anomaly.py --classes 0 7    # a quick look

Detectors: aelab.AnomalyDetector with the seed-1 model (`conv-resize`), seed 2's `dense`
(784-64-784) and `best` (code 49);
PCA reconstruction error with 49 components; PyOD's AutoEncoder (its defaults) as the peer.
Each class's results are kept in --cache, so an interrupted run goes on where it stopped.
Writes benchmarks/results/anomaly.md. Needs PyOD and scikit-learn (`pip install pyod`), which
aelab itself does not use.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent
CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
DETECTORS = ("aelab conv-resize", "aelab dense", "aelab best", "aelab best (plain MSE)", "PCA (49)",
             "PyOD AutoEncoder")


def roc_auc(scores: np.ndarray, anomalous: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(anomalous, scores))


def aelab_detector(model: str, epochs: int, plain: str | None = None):
    """aelab's detector (its default, normalised score); ``plain``: also the plain-MSE score of the
    same trained model, under that name."""
    def run(train: np.ndarray, test: np.ndarray) -> np.ndarray | dict[str, np.ndarray]:
        import aelab

        with tempfile.TemporaryDirectory() as folder:
            detector = aelab.AnomalyDetector(model, out=Path(folder) / "run", epochs=epochs, seed=0).fit(train)
            maps = detector.error_maps(test)
            scores = detector.score_maps(maps)
            return {None: scores, plain: maps.reshape(len(maps), -1).mean(1)} if plain else scores
    return run


def pca_detector(train: np.ndarray, test: np.ndarray, components: int = 49) -> np.ndarray:
    from aelab.metrics import pca_fit

    x = torch.from_numpy(train).reshape(len(train), -1).double()
    mean, basis = pca_fit(x, components)
    t = torch.from_numpy(test).reshape(len(test), -1).double() - mean
    recon = (t @ basis.T @ basis).clamp(-mean, 1 - mean)  # reconstructions clipped to [0, 1], as aelab's PCA floor
    return ((recon - t) ** 2).mean(1).numpy()


def pyod_detector(train: np.ndarray, test: np.ndarray) -> np.ndarray:
    from pyod.models.auto_encoder import AutoEncoder

    detector = AutoEncoder(verbose=0, random_state=0)
    detector.fit(train.reshape(len(train), -1))
    return detector.decision_function(test.reshape(len(test), -1))


def measure(k: int, data, epochs: dict[str, int]) -> dict[str, dict[str, float]]:
    train = (data.train[data.train_labels == k][:, 0].numpy() * 255).round().astype(np.uint8)
    test_u8 = (data.test[:, 0].numpy() * 255).round().astype(np.uint8)
    anomalous = (data.test_labels != k).numpy().astype(int)
    runs = {"aelab conv-resize": aelab_detector("conv-resize", epochs["conv-resize"]),
            "aelab dense": aelab_detector("dense", epochs["dense"]),
            "aelab best": aelab_detector("best", epochs["best"], plain="aelab best (plain MSE)"),
            "PCA (49)": lambda tr, te: pca_detector(tr / 255.0, te / 255.0),
            "PyOD AutoEncoder": lambda tr, te: pyod_detector(tr / 255.0, te / 255.0)}
    result = {}
    for name, detect in runs.items():
        torch.manual_seed(0)
        started = time.perf_counter()
        scores = detect(train, test_u8)
        seconds = time.perf_counter() - started
        for key, values in (scores.items() if isinstance(scores, dict) else [(None, scores)]):
            result[key or name] = {"roc_auc": roc_auc(values, anomalous), "seconds": seconds}
            print(f"class {k} ({CLASSES[k]}): {key or name}: ROC-AUC {result[key or name]['roc_auc']:.4f} "
                  f"({seconds:.0f} s)", flush=True)
    return result


def main(argv: list[str] | None = None) -> int:
    from aelab.data import resolve_data

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classes", type=int, nargs="+", default=list(range(10)))
    parser.add_argument("--epochs-conv-resize", type=int, default=10)
    parser.add_argument("--epochs-dense", type=int, default=10)
    parser.add_argument("--epochs-best", type=int, default=10)
    parser.add_argument("--cache", type=Path, default=Path("runs") / "anomaly-benchmark.json")
    parser.add_argument("--results", type=Path, default=ROOT / "results" / "anomaly.md")
    args = parser.parse_args(argv)
    epochs = {"conv-resize": args.epochs_conv_resize, "dense": args.epochs_dense, "best": args.epochs_best}
    cache = json.loads(args.cache.read_text()) if args.cache.is_file() else {}
    if cache.get("epochs", epochs) != epochs or cache.get("detectors") != list(DETECTORS):
        cache = {}  # measured with other settings or detectors: start again
    cache["epochs"], cache["detectors"] = epochs, list(DETECTORS)
    data = resolve_data("fashion-mnist")
    for k in args.classes:
        if str(k) not in cache.get("classes", {}):
            cache.setdefault("classes", {})[str(k)] = measure(k, data, epochs)
            args.cache.parent.mkdir(parents=True, exist_ok=True)
            args.cache.write_text(json.dumps(cache, indent=1))
    args.results.write_text(report(cache, epochs))
    print(args.results.read_text())
    return 0


def report(cache: dict, epochs: dict[str, int]) -> str:
    classes = sorted(cache.get("classes", {}), key=int)
    lines = ["# One-class anomaly detection on Fashion-MNIST", "",
             f"Produced by `python benchmarks/anomaly.py` ({datetime.date.today()}), 2 CPU cores. Each detector "
             "trains on the training images of one class (6,000, of which aelab holds 10% out for validation) and "
             "scores all 10,000 test images; that class is normal, the other nine are anomalies. ROC-AUC of the "
             "scores (1.0: every anomaly scored above every normal image; 0.5: chance).", "",
             f"- aelab: `AnomalyDetector(model).fit(X)` with its default score (each pixel's squared "
             "reconstruction error divided by its mean over the training images, then averaged); `conv-resize` "
             f"(seed 1) for {epochs['conv-resize']} epochs, `dense` (seed 2, 784-64-784) for {epochs['dense']}, "
             f"`best` (code 49) for {epochs['best']}, each with its registered settings otherwise. \"plain MSE\": "
             "the same trained `best`, scored by the plain mean squared error.",
             "- PCA: reconstruction error with 49 components (best's code size), fitted on the same images.",
             "- PyOD: `pyod.models.auto_encoder.AutoEncoder` with its defaults (784-64-32 MLP, 10 epochs, "
             "batch 32, standardised features).", "",
             "| class | " + " | ".join(DETECTORS) + " |", "|---" * (len(DETECTORS) + 1) + "|"]
    for k in classes:
        row = cache["classes"][k]
        best = max(row[d]["roc_auc"] for d in DETECTORS)
        cells = [f"**{row[d]['roc_auc']:.4f}**" if row[d]["roc_auc"] == best else f"{row[d]['roc_auc']:.4f}"
                 for d in DETECTORS]
        lines.append(f"| {k} {CLASSES[int(k)]} | " + " | ".join(cells) + " |")
    if classes:
        means = {d: np.mean([cache["classes"][k][d]["roc_auc"] for k in classes]) for d in DETECTORS}
        seconds = {d: np.mean([cache["classes"][k][d]["seconds"] for k in classes]) for d in DETECTORS}
        lines.append("| **mean** | " + " | ".join(f"**{means[d]:.4f}**" for d in DETECTORS) + " |")
        lines.append("| wall time per class (fit + score) | " + " | ".join((f"{seconds[d]:.0f} s" if seconds[d] >= 10 else f"{seconds[d]:.1f} s") for d in DETECTORS)
                     + " |")
        top = max(means, key=means.get)
        aelab_best = max((d for d in DETECTORS if d.startswith("aelab")), key=means.get)
        lines += ["", f"Highest mean ROC-AUC: {top} ({means[top]:.4f}), over {len(classes)} classes. aelab's best "
                      f"detector, {aelab_best}, {'has' if top == aelab_best else 'does not have'} the highest mean; "
                      f"it takes {seconds[aelab_best]:.0f} s a class against PyOD AutoEncoder's "
                      f"{seconds['PyOD AutoEncoder']:.0f} s."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
