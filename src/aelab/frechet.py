"""Sample quality that works offline: a Fréchet distance on features of a small classifier.

FID (Heusel et al. 2017, https://arxiv.org/abs/1706.08500) compares Gaussian fits of Inception
features of real and generated images. Inception weights cannot be downloaded everywhere, so
aelab measures the same distance on the 128-d penultimate features of a small CNN classifier:
``fd_classifier``. It is comparable between models on the same dataset and the same classifier
(``fd_classifier_id`` in metrics.json names it), not to published FIDs.

Where the classifier comes from: aelab ships one for Fashion-MNIST (``aelab/classifiers/``,
made by ``benchmarks/feature_classifiers.py``), so every machine measures that dataset with the
same features, as FID measures every dataset with the same Inception, and the first generative
run on it trains no classifier. For any other labelled data, the first run trains one (3 epochs)
and caches it under the data cache. Both are keyed by the training images and labels themselves.
Standard Inception FID is computed too, through torchmetrics, when its weights are present locally.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor, nn
from torchmetrics.image.fid import FrechetInceptionDistance

from .accel import autocast, choose_precision
from .data import ImageData, cache_dir
from .errors import AelabError
from .limits import INFERENCE_BATCH
from .progress import say, stage

INCEPTION_WEIGHTS_ENV = "AELAB_INCEPTION_WEIGHTS"
SHIPPED = Path(__file__).resolve().parent / "classifiers"  # the feature classifiers aelab ships (Fashion-MNIST)


class SmallClassifier(nn.Module):
    """conv 32 - pool - conv 64 - pool - dense 128 (the features) - dense classes."""

    def __init__(self, in_channels: int, size: int, classes: int) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(64 * (size // 4) ** 2, 128),
            nn.ReLU(),
        )
        self.head = nn.Linear(128, classes)
        self.num_features = 128  # read by torchmetrics for a custom feature extractor

    def forward(self, x: Tensor) -> Tensor:  # (B, C, H, W) -> (B, 128)
        return self.features(x.float())

    @classmethod
    def for_data(cls, data: ImageData) -> SmallClassifier:
        """An untrained classifier for ``data``'s image shape and labels."""
        c, h, _ = data.shape
        return cls(c, h, int(max(data.train_labels.max(), data.test_labels.max())) + 1)


def classifier_key(data: ImageData) -> str:
    """The file stem of ``data``'s feature classifier: its image shape, training count and a digest
    of the training images and labels themselves (two folders both named "data" must not share one)."""
    c, h, _ = data.shape
    digest = hashlib.sha256(data.train.numpy().tobytes())
    digest.update(data.train_labels.numpy().tobytes())
    return f"{c}x{h}x{h}-{len(data.train)}-{digest.hexdigest()[:16]}"


def weights_id(weights: Path) -> str:
    """A stored classifier's name in metrics.json (``fd_classifier_id``): its weights' SHA-256, 12 digits."""
    return hashlib.sha256(weights.read_bytes()).hexdigest()[:12]


def store_classifier(model: SmallClassifier, info: dict, folder: Path, stem: str) -> str:
    """Write ``model``'s weights and ``info`` under ``folder``/``stem`` (.safetensors, .json) where
    :func:`classifier_for` looks; returns the weights' id."""
    folder.mkdir(parents=True, exist_ok=True)
    save_file(model.state_dict(), str(folder / f"{stem}.safetensors"))
    (folder / f"{stem}.json").write_text(json.dumps(info, indent=2) + "\n")
    return weights_id(folder / f"{stem}.safetensors")


def fd_floor(test: Tensor, train: Tensor, feature: nn.Module | int, count: int, **kwargs) -> float:
    """The distance of ``count`` training images (at most) to as many test images, on ``feature``
    (:func:`frechet_distance`'s): what real images score as samples, the floor beside a distance."""
    n = min(len(train), len(test), count)
    return frechet_distance(test[:n], train[:n], feature, **kwargs)


def _load(model: SmallClassifier, weights: Path, info_path: Path, fix: str) -> dict:
    """Load a stored classifier into ``model``; its info with ``id``. A damaged file is one line."""
    try:
        model.load_state_dict(load_file(str(weights)))
        info = json.loads(info_path.read_text())
    except (SafetensorError, RuntimeError, ValueError, OSError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise AelabError(f"the feature classifier {weights} (or its .json) is damaged ({first}); {fix}") from None
    return {**info, "id": weights_id(weights)}


def classifier_for(data: ImageData, epochs: int = 3, seed: int = 0) -> tuple[SmallClassifier, dict]:
    """The feature classifier for ``data`` and its info (test accuracy, training seconds, ``id``:
    the first 12 hex digits of its weights' SHA-256, ``source``: "shipped", "cache" or "trained",
    ``trained_now``). The one aelab ships comes first, then the cache; where neither holds one for
    these data it is trained now (the first generative run on a dataset pays for it, once) and cached."""
    if data.train_labels is None or data.test_labels is None:
        raise AelabError(f"{data.name} has no labels, so no classifier to measure Fréchet distance with")
    stem = classifier_key(data)
    model = SmallClassifier.for_data(data)
    folder = cache_dir() / "classifiers"
    for source, place in (("shipped", SHIPPED), ("cache", folder)):
        weights, info_path = place / f"{stem}.safetensors", place / f"{stem}.json"
        if weights.is_file() and info_path.is_file():
            fix = "reinstall aelab" if source == "shipped" else "remove both files and the next run trains it again"
            info = _load(model, weights, info_path, fix)
            where = "the one aelab ships" if source == "shipped" else "from the cache"
            say(f"  fd_classifier: the feature classifier for {data.name}, {where} ({weights})")
            return model.eval(), {**info, "source": source, "trained_now": False}
    say(
        f"  fd_classifier: training the feature classifier for {data.name}, once per dataset (later runs on "
        f"these data reuse it from {folder})"
    )
    info = train_classifier(model, data, epochs, seed)
    identity = store_classifier(model, info, folder, stem)
    say(
        f"  fd_classifier: cached the feature classifier (test accuracy {info['test_accuracy']:.4f}) in "
        f"{folder / stem}.safetensors"
    )
    return model, {**info, "id": identity, "source": "trained", "trained_now": True}


def train_classifier(
    model: SmallClassifier, data: ImageData, epochs: int = 3, seed: int = 0, precision: str = "auto"
) -> dict:
    """Train ``model`` (a :class:`SmallClassifier` for ``data``) in place on ``data``'s training
    images: Adam at 1e-3, batch 128, ``epochs`` epochs from ``seed``; returns its info (dataset,
    epochs, precision, test accuracy, training seconds). ``precision`` as training's (``auto``: bf16
    where it pays, float32 elsewhere; the weights stay float32)."""
    started = time.perf_counter()
    torch.manual_seed(seed)
    # channels-last, and bf16 where it pays (training's rule, accel.choose_precision): 2.8x the plain
    # float32 loop's images/s on an AMX CPU (benchmarks/results/first-hour.md); the weights stay float32
    precision = choose_precision(precision, "cpu")
    model.to(memory_format=torch.channels_last).train()
    images = data.train.contiguous(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    labels = data.train_labels.long()
    batches = -(-len(data.train) // 128)
    with stage(
        f"feature classifier, {epochs} epochs of {len(data.train):,} images", total=epochs * batches, unit="steps"
    ) as step:
        shuffled = (idx for _ in range(epochs) for idx in torch.randperm(len(data.train)).split(128))
        for idx in shuffled:
            with autocast(precision, "cpu"):
                loss = F.cross_entropy(model.head(model(images[idx])).float(), labels[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            step.advance()
    model.to(memory_format=torch.contiguous_format).eval()
    with torch.no_grad():
        predictions = torch.cat([model.head(model(x)).argmax(1) for x in data.test.split(INFERENCE_BATCH)])
    return {
        "dataset": data.name,
        "epochs": epochs,
        "precision": precision,
        "test_accuracy": (predictions == data.test_labels).float().mean().item(),
        "train_seconds": round(time.perf_counter() - started, 2),
    }


def frechet_distance(real: Tensor, fake: Tensor, feature: nn.Module | int = 2048, **kwargs) -> float:
    """torchmetrics' Fréchet distance between two image sets (N, C, H, W) in [0, 1]."""
    metric = FrechetInceptionDistance(feature=feature, normalize=True, **kwargs)
    metric.eval()
    with torch.no_grad():
        for batch, real_ in [(b, True) for b in real.split(INFERENCE_BATCH)] + [
            (b, False) for b in fake.split(INFERENCE_BATCH)
        ]:
            metric.update(batch, real=real_)
    return float(metric.compute())


def sample_quality(samples: Tensor, data: ImageData) -> dict:
    """``fd_classifier`` of ``samples`` against the test set, the train-vs-test floor, and Inception FID
    where its weights are present locally; a note says why anything is missing. The seconds it
    took are reported apart from the one-off cost of training the feature classifier
    (``fd_classifier_train_seconds``, 0 when it was shipped or cached)."""
    result: dict = {"fd_samples": len(samples)}
    try:
        classifier, info = classifier_for(data)
    except AelabError as error:
        return {**result, "fd_classifier": None, "fd_note": str(error)}
    started = time.perf_counter()
    with stage(
        f"fd_classifier: Fréchet distance of {len(samples):,} samples to {len(data.test):,} test images, and its floor"
    ):
        result["fd_classifier"] = frechet_distance(data.test, samples, classifier)
        result["fd_classifier_floor"] = fd_floor(data.test, data.train, classifier, len(samples))
    result["fd_classifier_accuracy"] = info["test_accuracy"]
    result["fd_classifier_id"] = info["id"]  # which classifier: distances compare only under the same one
    result["fd_classifier_train_seconds"] = info.get("train_seconds", 0.0) if info["trained_now"] else 0.0
    result["fd_seconds"] = round(time.perf_counter() - started, 2)
    weights = os.environ.get(INCEPTION_WEIGHTS_ENV)
    if not weights or not Path(weights).is_file():
        result["fid_inception"] = None
        result["fid_note"] = (
            f"Inception FID skipped: no local weights (set {INCEPTION_WEIGHTS_ENV} to the "
            "pt_inception-2015-12-05 weights file torch-fidelity uses)"
        )
        return result
    try:
        rgb = lambda x: x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x  # noqa: E731
        kw = {"feature_extractor_weights_path": weights}
        result["fid_inception"] = frechet_distance(rgb(data.test), rgb(samples), 2048, **kw)
        result["fid_inception_floor"] = fd_floor(rgb(data.test), rgb(data.train), 2048, len(samples), **kw)
    except (ImportError, ModuleNotFoundError, RuntimeError, OSError) as error:
        result["fid_inception"] = None
        result["fid_note"] = f"Inception FID skipped: {type(error).__name__}: {error}"
    return result
