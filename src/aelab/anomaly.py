"""Anomaly scores from an autoencoder's reconstruction error, with PyOD's detector API.

An autoencoder trained on normal images reconstructs them well and reconstructs what it has not
seen badly; an image's anomaly score measures its reconstruction error (higher: more anomalous),
and the per-pixel error shows where. The default score, ``"normalised"``, divides each pixel's
squared error by that pixel's mean squared error on the normal images before averaging: an
error where normal images are always reconstructed well (the background around a trouser)
counts more than one where they vary. ``"mse"`` is the plain mean squared error. :class:`AnomalyDetector` follows PyOD's
conventions (https://pyod.readthedocs.io): ``fit(X)``, ``decision_function(X)``, ``predict(X)``
(1 = outlier), ``predict_proba(X)``, and after fitting ``decision_scores_``, ``threshold_`` and
``labels_``, the threshold being the ``1 - contamination`` quantile of the fitted scores.
"""

from __future__ import annotations

import csv
import typing
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from .data import read_images, split_validation
from .errors import AelabError
from .evaluation import run_data
from .inference import reconstruct as reconstruct_images
from .nets.base import Autoencoder, Conditional
from .outputs import atomic_write, check_targets, drawn_by_aelab
from .runs import Run

Score = Literal["normalised", "mse"]
SCORES = typing.get_args(Score)
EPS = 1e-4  # added to each pixel's normal error before dividing by it (squared [0, 1] units)


class AnomalyDetector:
    """An autoencoder as an outlier detector, PyOD-style.

    ``AnomalyDetector(model="dense", contamination=0.1, **settings).fit(X)`` trains ``model`` on
    the normal images ``X`` ((N, H, W) or (N, C, H, W), uint8 or floats in [0, 1]) with any
    training ``settings`` (``epochs=20``); ``out`` keeps the run folder (default: a temporary
    one). ``AnomalyDetector.from_run(RUN)`` uses a trained run instead, its threshold set on the
    run's validation images (held out from training, so their errors are honest). ``score``:
    ``"normalised"`` (default) or ``"mse"`` (see the module's text). The default model is seed
    2's dense autoencoder: on one-class Fashion-MNIST it scored the highest mean ROC-AUC of
    aelab's models, PCA and PyOD's AutoEncoder, and the fastest (benchmarks/results/anomaly.md).
    """

    def __init__(self, model: str = "dense", contamination: float = 0.1, out: str | Path | None = None,
                 score: str = "normalised", **settings: Any) -> None:
        check_contamination(contamination)
        if score not in SCORES:
            raise AelabError(f"unknown score {score!r}; choose {', '.join(SCORES)}")
        self.model, self.contamination, self.out, self.settings = model, contamination, out, settings
        self.score = score
        self.run = None
        self.pixel_errors_: np.ndarray | None = None  # (H, W): the normal images' mean squared error per pixel
        self.decision_scores_: np.ndarray | None = None
        self.threshold_: float | None = None
        self.labels_: np.ndarray | None = None

    # ----------------------------------------------------------------------- fitting

    def fit(self, X: Any, y: Any = None) -> "AnomalyDetector":
        """Train the autoencoder on ``X`` (normal images; ``y`` is ignored, as in PyOD) and set the
        threshold from the training scores."""
        from .training import train

        del y
        images = _images(X)
        # every image trains (less the validation hold-out); no test split to evaluate
        self.run = train(self.model, data=(images, images[:1]), out=self.out, progress=False, evaluate_test=False,
                         **self.settings)
        _check_model(self.run)
        self._fit_normal(images)
        return self

    @classmethod
    def from_run(cls, run: Any, contamination: float = 0.1, data: Any = None,
                 score: str = "normalised") -> "AnomalyDetector":
        """A detector from a trained run, its threshold the ``1 - contamination`` quantile of the
        scores of the run's validation images (its dataset, or ``data`` for a run trained on arrays)."""
        run = Run.of(run)
        config = run.config
        detector = cls(config.model, contamination, score=score)
        detector.run = run
        _check_model(run)
        loaded = run_data(run, data)
        _, val = split_validation(loaded.train, config.train.val_fraction, seed=config.train.seed)
        detector._fit_normal(val)
        return detector

    def _fit_normal(self, images: Any) -> None:
        """The per-pixel errors, scores, threshold and labels of normal images."""
        maps = self.error_maps(images)
        self.pixel_errors_ = maps.mean(axis=0)
        scores = self.score_maps(maps)
        self.decision_scores_ = scores
        self.threshold_ = float(np.quantile(scores, 1 - self.contamination))
        self.labels_ = (scores > self.threshold_).astype(int)

    # ----------------------------------------------------------------------- scoring

    def decision_function(self, X: Any) -> np.ndarray:
        """Anomaly scores (N,), higher: more anomalous (``score``: normalised or plain mean squared error)."""
        return self.score_maps(self.error_maps(X))

    def score_maps(self, maps: np.ndarray) -> np.ndarray:
        """Scores (N,) of squared-error maps (N, H, W), as :meth:`decision_function` computes them."""
        if self.score == "normalised":
            if self.pixel_errors_ is None:
                raise AelabError("the normalised score needs the normal images' errors: fit the detector first")
            maps = maps / (self.pixel_errors_ + EPS)
        return maps.reshape(len(maps), -1).mean(axis=1)

    def error_maps(self, X: Any) -> np.ndarray:
        """Per-pixel squared reconstruction errors (N, H, W), averaged over the channels."""
        run = self._fitted()
        images = run.model.check_images(_images(X))
        recon = reconstruct_images(run, images)
        return ((recon - images) ** 2).mean(dim=1).numpy()

    def reconstruct(self, X: Any) -> torch.Tensor:
        """The reconstructions (N, C, H, W) the scores compare against."""
        return reconstruct_images(self._fitted(), _images(X))

    def predict(self, X: Any) -> np.ndarray:
        """1 for an outlier (score above ``threshold_``), 0 for an inlier."""
        self._fitted()
        return (self.decision_function(X) > self.threshold_).astype(int)

    def predict_proba(self, X: Any, method: str = "linear") -> np.ndarray:
        """(N, 2) probabilities of inlier and outlier: the scores scaled linearly by the fitted
        scores' range and clipped to [0, 1] (PyOD's ``method="linear"``)."""
        if method != "linear":
            raise AelabError(f"unknown method {method!r}; aelab's detector has 'linear'")
        self._fitted()
        low, high = float(self.decision_scores_.min()), float(self.decision_scores_.max())
        outlier = np.clip((self.decision_function(X) - low) / max(high - low, 1e-12), 0, 1)
        return np.stack([1 - outlier, outlier], axis=1)

    def _fitted(self):
        if self.run is None:
            raise AelabError("the detector is not fitted yet: call fit(X) or use AnomalyDetector.from_run(RUN)")
        return self.run


def check_contamination(contamination: Any) -> None:
    if not isinstance(contamination, (int, float)) or isinstance(contamination, bool) or not 0 < contamination <= 0.5:
        raise AelabError(f"contamination must be a number in (0, 0.5], as in PyOD, got {contamination!r}")


def _images(X: Any) -> torch.Tensor:
    if isinstance(X, np.ndarray):
        X = torch.from_numpy(X)
    if not isinstance(X, torch.Tensor):
        raise AelabError(f"images come as a tensor or numpy array, got {type(X).__name__}")
    if len(X) == 0:
        raise AelabError("no images to score")
    return X


def _check_model(run) -> None:
    model = run.model
    if not isinstance(model, Autoencoder):
        raise AelabError(f"anomaly scores need an autoencoder; {run.config.model} is not one")
    if isinstance(model, Conditional):
        raise AelabError(f"{run.config.model} needs each image's label; anomaly scores take an autoencoder "
                         "without labels")


def score_files(run_dir: str | Path, images: list[str | Path], threshold: float | None = None,
                contamination: float = 0.1, maps: str | Path | None = None, worst: int = 8,
                csv_out: str | Path | None = None, score: Score = "normalised", overwrite: bool = False) -> dict[str, Any]:
    """`aelab score`: the score of each image file, whether it is an outlier, the threshold (given,
    or from the run's validation images at ``contamination``), and the error maps of the ``worst``
    images drawn to ``maps/worst.png`` (default folder: ``RUN/anomaly``). Every input is checked
    before anything is written; ``csv_out`` gets one row per image (a table or figure this command
    wrote may be written again; another existing file only with ``overwrite``). The normalised
    ``score`` needs the run's validation images; ``score="mse"`` with a ``threshold`` needs no data."""
    from . import figures

    run = Run(run_dir)
    check_contamination(contamination)
    if score not in SCORES:
        raise AelabError(f"unknown score {score!r}; choose {', '.join(SCORES)}")
    if threshold is not None and not (isinstance(threshold, (int, float)) and np.isfinite(threshold) and threshold >= 0):
        raise AelabError(f"--threshold must be a finite number >= 0, got {threshold!r}")
    if worst < 1:
        raise AelabError(f"--worst must be at least 1, got {worst}")
    csv_path = Path(csv_out) if csv_out is not None else None
    folder = Path(maps) if maps is not None else run.path / "anomaly"
    if csv_path is not None:
        if csv_path.is_file() and not overwrite and not _score_table(csv_path):
            raise AelabError(f"{csv_path} exists and is not an aelab score table; choose another name or pass "
                             "--overwrite to replace it")
        check_targets([csv_path], overwrite=overwrite, inputs=images, suffixes=(".csv",), replaceable=_score_table)
    figure_path = check_targets([folder / "worst.png"], overwrite=overwrite, inputs=images, what="--maps",
                                replaceable=drawn_by_aelab)[0]
    _check_model(run)
    shape = run.model.input_shape
    x = read_images(list(images), shape[0], shape[1])  # every file checked before anything is written
    if threshold is None or score == "normalised":
        detector = AnomalyDetector.from_run(run, contamination, score=score)
        source = f"the {len(detector.decision_scores_)} validation images' {1 - contamination:.0%} quantile"
    else:  # a plain error against a given threshold: nothing to learn from the run's data
        detector = AnomalyDetector(run.config.model, contamination, score=score)
        detector.run = run
    if threshold is not None:
        detector.threshold_, source = float(threshold), "given"
    errors = detector.error_maps(x)
    scores = detector.score_maps(errors)
    outlier = scores > detector.threshold_
    rows = [(str(path), float(score), bool(flag)) for path, score, flag in zip(images, scores, outlier)]
    if csv_path is not None:
        atomic_write(csv_path, lambda tmp: _write_table(tmp, rows))
    order = np.argsort(-scores)[:worst]
    recon = detector.reconstruct(x[order])
    with run.recording() if maps is None else nullcontext():  # the default folder is in the run
        figure = figures.error_maps(x[order], recon, torch.from_numpy(errors[order]),
                                    [Path(images[i]).name for i in order], figure_path,
                                    title=f"{run.config.model}: the {len(order)} highest scores "
                                          f"(threshold {detector.threshold_:.4g})")
    return {"rows": rows, "threshold": detector.threshold_, "threshold_source": source, "figure": figure,
            "csv": csv_path}


CSV_HEADER = "file,score,outlier\n"


def _score_table(path: Path) -> bool:
    """Whether ``path`` is a score table this command wrote (its header), which it may write again."""
    try:
        with open(path, errors="replace") as file:
            return file.readline() == CSV_HEADER
    except OSError:
        return False


def _write_table(path: Path, rows: list[tuple[str, float, bool]]) -> None:
    """The score table, quoted as CSV (a file named ``a, b.png`` stays one cell)."""
    with open(path, "w", newline="") as file:
        table = csv.writer(file, lineterminator="\n")
        table.writerow(CSV_HEADER.strip().split(","))
        table.writerows((p, f"{s:.6g}", int(f)) for p, s, f in rows)
