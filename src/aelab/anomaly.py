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

**Methods.** ``method="reconstruction"`` (the fastest) scores the reconstruction error alone.
``method="neighbours"`` adds two feature-space distances to it: the mean distance to the
``NEIGHBOURS`` nearest normal images in pixels and in the autoencoder's codes (nearest-neighbour
anomaly detection on learned features: Bergman, Cohen and Hoshen, "Deep Nearest Neighbor Anomaly
Detection", 2020, who use pretrained features where aelab uses the autoencoder's own codes),
each of the three standardised by its mean and spread on the normal images, then summed. It
keeps the normal images as its reference (saved with it). ``method="transformations"`` scores
how badly a small network, trained on the normal images to tell which of 20 rotations and
translations an image went through, tells them on the image (GEOM: Golan & El-Yaniv, NeurIPS
2018; :mod:`aelab.transformations`). ``method="combined"``, the default of ``AnomalyDetector()``
and the most accurate, sums the neighbours' three standardised parts and the transformations'
score, standardised the same way (benchmarks/results/anomaly.md gives its accuracy and time a
class). A detector built from a trained run (``from_run``, ``aelab score``, ``aelab export``)
defaults to ``"reconstruction"``: the other methods train on the run's training images each time.

The rest of PyOD's detector API is here too: ``predict(X, return_confidence=True)``,
``predict_confidence`` and ``predict_with_rejection`` (ExCeeD, Perini et al., ECML PKDD 2020, and
its reject option, Perini et al., AAAI 2023), ``predict_proba(method="linear"|"unify")``, and
``get_params``/``set_params`` (``sklearn.base.clone`` works). Flat rows (N, D) are images when D
is a square (one channel) or three times one (RGB).

**The threshold rule.** The threshold is the ``1 - contamination`` quantile of the scores of the
images it is set on (the training images after ``fit``, a run's validation images with
``from_run``, or ``calibrate(X)``). Calibration images without anomalies, the usual case, are
what that rule expects: ``contamination`` is then the share of normal images flagged (the false
alarm rate you accept), never "everything above the lowest score". ``calibrate(X, y)`` with
labels holding both kinds instead takes the score that maximises F1 on them; labels holding only
anomalies are refused.

**Saving.** ``save(path)`` writes one safetensors file (the weights, the normal images' errors
and scores, the threshold, and the run's config as text); ``AnomalyDetector.load(path,
device=...)`` rebuilds it on any device without executing code from the file, and reads files of
earlier aelab versions through the same config reader as a run folder.
"""

from __future__ import annotations

import copy
import csv
import json
import math
import typing
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from .data import read_images, split_validation
from .errors import AelabError, check_file, opt
from .evaluation import run_data
from .limits import check_number
from .metrics import reconstruct as reconstruct_batches
from .nets.base import Autoencoder, Conditional
from .outputs import atomic_write, check_targets, drawn_by_aelab
from .progress import Progress, resolve
from .runs import Run
from .threads import adaptive, chosen_threads
from .transformations import TransformationNet, fit_transformation_net, transformation_score, transformation_scores

Score = Literal["normalised", "mse"]
SCORES = typing.get_args(Score)
Method = Literal["reconstruction", "neighbours", "transformations", "combined"]
METHODS = typing.get_args(Method)
USES_NEIGHBOURS = ("neighbours", "combined")  # the methods that keep normal images as their reference
USES_TRANSFORMATIONS = ("transformations", "combined")  # those that train a TransformationNet
NEIGHBOURS = 5  # k of the nearest-neighbour distances (chosen on validation images: benchmarks/anomaly_validation.py)
EPOCHS = 10  # the default model's, unless given (validation: 10 epochs scored above 20 and 30, and the seed's 50 waits)
EPS = 1e-4  # added to each pixel's normal error before dividing by it (squared [0, 1] units)
FILE_FORMAT = 1  # the detector file's layout (save/load)


class AnomalyDetector:
    """An autoencoder as an outlier detector, PyOD-style.

    ``AnomalyDetector(model="dense", contamination=0.1, **settings).fit(X)`` trains ``model`` on
    the normal images ``X`` ((N, H, W) or (N, C, H, W), uint8 or floats in [0, 1]) with any
    training ``settings`` (``epochs=20``); ``out`` keeps the run folder (default: a temporary
    one). ``AnomalyDetector.from_run(RUN)`` uses a trained run instead, its threshold set on the
    run's validation images (held out from training, so their errors are honest). ``score``:
    ``"normalised"`` (default) or ``"mse"``; ``progress``: how ``fit`` reports its training
    (None, the default: quiet, as PyOD's ``verbose=0``; "epoch": a line per epoch; "bar");
    ``method``: ``"combined"`` (the default, the most accurate), ``"reconstruction"`` (the
    fastest), ``"neighbours"`` or ``"transformations"`` (see the module's text). The default model
    is seed 2's dense autoencoder, trained for :data:`EPOCHS` epochs unless ``epochs`` is given: on
    one-class Fashion-MNIST it scored the highest mean ROC-AUC of aelab's models, PCA and PyOD's
    AutoEncoder, and the fastest (benchmarks/results/anomaly.md).
    """

    def __init__(self, model: str = "dense", contamination: float = 0.1, out: str | Path | None = None,
                 score: str = "normalised", method: str = "combined", progress: Progress = None,
                 **settings: Any) -> None:
        check_contamination(contamination)
        resolve(progress)  # a wrong value fails here, not in fit
        check_choice("score", score, SCORES)
        check_choice("method", method, METHODS)
        self.model, self.contamination, self.out, self.settings = model, contamination, out, settings
        self.score, self.method, self.progress = score, method, progress
        self.references_: tuple[torch.Tensor, torch.Tensor] | None = None  # neighbours: normal pixels, codes
        self.transformer_: TransformationNet | None = None  # transformations: the trained network
        self.standard_: np.ndarray | None = None  # (parts, 2): each part's mean and spread on normal images
        self.run = None
        self.model_: torch.nn.Module | None = None  # the trained autoencoder (the run's, or a loaded file's)
        self.config_ = None  # its RunConfig
        self.pixel_errors_: np.ndarray | None = None  # (H, W): the normal images' mean squared error per pixel
        self.decision_scores_: np.ndarray | None = None
        self.threshold_: float | None = None
        self.labels_: np.ndarray | None = None

    # ----------------------------------------------------------------------- parameters

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor's arguments (scikit-learn's convention; ``deep`` has nothing to descend into)."""
        del deep
        return {"model": self.model, "contamination": self.contamination, "out": self.out, "score": self.score,
                "method": self.method, "progress": self.progress, **self.settings}

    def set_params(self, **params: Any) -> AnomalyDetector:
        """Change constructor arguments (any training setting included); they apply at the next ``fit``."""
        if "contamination" in params:
            check_contamination(params["contamination"])
        if "score" in params:
            check_choice("score", params["score"], SCORES)
        if "method" in params:
            check_choice("method", params["method"], METHODS)
        if "progress" in params:
            resolve(params["progress"])
        for name, value in params.items():
            if name in ("model", "contamination", "out", "score", "method", "progress"):
                setattr(self, name, value)
            else:
                self.settings[name] = value
        return self

    def __repr__(self) -> str:
        given = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"AnomalyDetector({given})"

    # ----------------------------------------------------------------------- fitting

    def fit(self, X: Any, y: Any = None) -> AnomalyDetector:
        """Train the autoencoder on ``X`` (normal images; ``y`` is ignored, as in PyOD) and set the
        threshold from the training scores."""
        from .training import train

        del y
        images = _images(X)
        # every image trains (less the validation hold-out); no test split to evaluate
        settings = {"epochs": EPOCHS, **self.settings} if self.model == "dense" else self.settings
        with chosen_threads():  # the fit's training chooses its own count; what follows, the job's
            self.run = train(self.model, data=(images, images[:1]), out=self.out, progress=self.progress,
                             evaluate_test=False, **settings)
            self._use(self.run)
            self._fit_normal(images)
        return self

    def _use(self, run: Run) -> None:
        _check_model(run)
        self.model_, self.config_ = run.model, run.config

    @classmethod
    def from_run(cls, run: Any, contamination: float = 0.1, data: Any = None, score: str = "normalised",
                 method: str = "reconstruction") -> AnomalyDetector:
        """A detector from a trained run, its threshold the ``1 - contamination`` quantile of the
        scores of the run's validation images (its dataset, or ``data`` for a run trained on
        arrays); the neighbours take the run's training images as their reference, and the
        transformations' network trains on them (seeded by the run's seed)."""
        run = Run.of(run)
        config = run.config
        detector = cls(config.model, contamination, score=score, method=method)
        detector.run = run
        detector._use(run)
        loaded = run_data(run, data)
        train, val = split_validation(loaded.train, config.train.val_fraction, seed=config.train.seed)
        detector._fit_normal(val, reference=train if method != "reconstruction" else None)
        return detector

    @chosen_threads()  # (from_run's fit: the network, the neighbours and the standardisation)
    def _fit_normal(self, images: Any, reference: Any = None) -> None:
        """The per-pixel errors, scores, threshold and labels of normal images; for the other
        methods also their reference (``reference``, or the images themselves, each then left out
        of its own neighbours): the neighbours' images and codes, the transformations' network
        trained on them; and each part's mean and spread on ``images``."""
        images, maps, codes = self._through(images)
        self.pixel_errors_ = maps.mean(axis=0)
        scores = self.score_maps(maps)
        if self.method != "reconstruction":
            if reference is None:
                ref_images, ref_codes = images, codes
            else:
                ref_images, _, ref_codes = self._through(reference)
            if self.method in USES_NEIGHBOURS:
                # clones: codes made in inference mode could not be a traced (exported) graph's constants
                self.references_ = (ref_images.flatten(1).clone(), ref_codes.flatten(1).clone())
            if self.method in USES_TRANSFORMATIONS:
                device = next(self.model_.parameters()).device
                self.transformer_ = fit_transformation_net(ref_images.to(device), seed=self.config_.train.seed)
            parts = self._parts(scores, images, codes, leave_out=reference is None)
            self.standard_ = np.stack([parts.mean(axis=1), parts.std(axis=1) + 1e-12], axis=1)
            scores = self._combined(parts)
        self.decision_scores_ = scores
        self.threshold_ = float(np.quantile(scores, 1 - self.contamination))
        self.labels_ = (scores > self.threshold_).astype(int)

    def calibrate(self, X: Any, y: Any = None) -> AnomalyDetector:
        """Set the threshold on calibration images ``X`` (see the module's threshold rule): with no
        labels, or labels that are all 0 (no anomalies), the ``1 - contamination`` quantile of their
        scores; with labels holding both 0 (normal) and 1 (anomaly), the score maximising F1 on them.
        ``decision_scores_`` and ``labels_`` become the calibration images' (the normal ones', for
        the confidence estimates). The normal images' per-pixel errors stay the training's."""
        self._fitted()
        scores = self.decision_function(X)
        if y is None:
            labels = np.zeros(len(scores), dtype=int)
        else:
            labels = np.asarray(y).reshape(-1)
            if labels.shape != scores.shape or not np.isin(labels, (0, 1)).all():
                raise AelabError(f"calibration labels must be {len(scores)} values of 0 (normal) or 1 (anomaly)")
            if labels.all():
                raise AelabError("the calibration images are all anomalies; the threshold needs normal images")
        normal = scores[labels == 0]
        if labels.any():  # both kinds: the threshold with the best F1 on them
            self.threshold_ = best_f1_threshold(scores, labels)
        else:  # no anomalies to learn from: the share of normal images flagged is contamination
            self.threshold_ = float(np.quantile(normal, 1 - self.contamination))
        self.decision_scores_ = normal
        self.labels_ = (normal > self.threshold_).astype(int)
        return self

    # ----------------------------------------------------------------------- scoring

    def decision_function(self, X: Any) -> np.ndarray:
        """Anomaly scores (N,), higher: more anomalous (``score``: normalised or plain mean squared
        error; ``method``: the reconstruction error alone, or the standardised sum of its parts)."""
        with chosen_threads():
            return self._scores(*self._through(X))

    def _scores(self, images: torch.Tensor, maps: np.ndarray, codes: torch.Tensor) -> np.ndarray:
        """:meth:`decision_function` of what :meth:`_through` returns."""
        scores = self.score_maps(maps)
        if self.method != "reconstruction":
            scores = self._combined(self._parts(scores, images, codes))
        return scores

    def _parts(self, recon: np.ndarray, images: torch.Tensor, codes: torch.Tensor,
               leave_out: bool = False) -> np.ndarray:
        """(parts, N): the neighbours' three (the reconstruction score and the distances in pixels
        and in codes), the transformations' score, or all four (``combined``)."""
        parts = []
        if self.method in USES_NEIGHBOURS:
            if self.references_ is None:
                raise AelabError(f"the {self.method} method needs its reference images: fit the detector first")
            pixels, ref_codes = self.references_
            parts += [recon, neighbour_distance(images.flatten(1), pixels, NEIGHBOURS, leave_out).numpy(),
                      neighbour_distance(codes.flatten(1), ref_codes, NEIGHBOURS, leave_out).numpy()]
        if self.method in USES_TRANSFORMATIONS:
            if self.transformer_ is None:
                raise AelabError(f"the {self.method} method needs its trained network: fit the detector first")
            parts.append(transformation_scores(self.transformer_, images).numpy())
        return np.stack(parts)

    def _standardised(self, parts: np.ndarray) -> np.ndarray:
        """Each part (a row) less its mean on normal images, over its spread there."""
        return (parts - self.standard_[:, :1]) / self.standard_[:, 1:]

    def _combined(self, parts: np.ndarray) -> np.ndarray:
        return self._standardised(parts).sum(axis=0)

    def _through(self, X: Any) -> tuple[torch.Tensor, np.ndarray, torch.Tensor]:
        """Images (N, C, H, W) as checked, their squared-error maps (N, H, W) and their codes."""
        model = self._fitted()
        images = model.check_images(_images(X))
        recon, codes = reconstruct_batches(model, images)
        images = images.to(recon.device)
        return images.cpu(), ((recon - images) ** 2).mean(dim=1).cpu().numpy(), codes.cpu()

    def score_maps(self, maps: np.ndarray) -> np.ndarray:
        """Scores (N,) of squared-error maps (N, H, W), as :meth:`decision_function` computes them."""
        if self.score == "normalised":
            if self.pixel_errors_ is None:
                raise AelabError("the normalised score needs the normal images' errors: fit the detector first")
            maps = maps / (self.pixel_errors_ + EPS)
        return maps.reshape(len(maps), -1).mean(axis=1)

    def error_maps(self, X: Any) -> np.ndarray:
        """Per-pixel squared reconstruction errors (N, H, W), averaged over the channels."""
        return self._through(X)[1]

    def reconstruct(self, X: Any) -> torch.Tensor:
        """The reconstructions (N, C, H, W) the scores compare against."""
        model = self._fitted()
        return reconstruct_batches(model, model.check_images(_images(X)))[0].cpu()

    def predict(self, X: Any, return_confidence: bool = False) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """1 for an outlier (score above ``threshold_``), 0 for an inlier; with ``return_confidence``
        also :meth:`predict_confidence`'s values."""
        self._fitted()
        scores = self.decision_function(X)
        labels = (scores > self.threshold_).astype(int)
        return (labels, self._confidence(scores)) if return_confidence else labels

    def predict_proba(self, X: Any, method: str = "linear", return_confidence: bool = False) -> Any:
        """(N, 2) probabilities of inlier and outlier. ``method="linear"``: the scores scaled by the
        fitted scores' range, clipped to [0, 1]; ``"unify"``: the Gaussian scaling of Kriegel et al.
        (SDM 2011), erf of the score's distance from the fitted scores' mean in their standard
        deviations, clipped to [0, 1]. With ``return_confidence`` also :meth:`predict_confidence`'s."""
        if method not in ("linear", "unify"):
            raise AelabError(f"unknown method {method!r}; choose linear or unify")
        self._fitted()
        scores = self.decision_function(X)
        fitted = self.decision_scores_
        if method == "linear":
            low, high = float(fitted.min()), float(fitted.max())
            outlier = np.clip((scores - low) / max(high - low, 1e-12), 0, 1)
        else:
            from scipy.special import erf

            outlier = np.clip(erf((scores - fitted.mean()) / (max(float(fitted.std()), 1e-12) * math.sqrt(2))), 0, 1)
        proba = np.stack([1 - outlier, outlier], axis=1)
        return (proba, self._confidence(scores)) if return_confidence else proba

    def predict_confidence(self, X: Any) -> np.ndarray:
        """How surely each prediction would stay the same had the detector seen another sample of
        normal images, in [0, 1] (ExCeeD: Perini, Vercruyssen and Davis, ECML PKDD 2020). A score's
        rank among the ``n`` fitted scores gives a Bayesian estimate ``p`` of the share of normal
        images scoring below it; the chance that it would land above the threshold is then the chance
        that more than ``n - n * contamination`` of ``n`` draws fall below it: 1 - Binomial(n, p)'s
        CDF there. That is the confidence of an outlier prediction; an inlier's is its complement."""
        self._fitted()
        return self._confidence(self.decision_function(X))

    def _outlier_probability(self, scores: np.ndarray) -> np.ndarray:
        from scipy.stats import binom

        fitted = np.sort(self.decision_scores_)
        n = len(fitted)
        below = np.searchsorted(fitted, scores, side="right")  # fitted scores <= each score
        p = (1 + below) / (2 + n)
        return 1 - binom.cdf(n - int(n * self.contamination), n, p)

    def _confidence(self, scores: np.ndarray) -> np.ndarray:
        outlier = self._outlier_probability(scores)
        return np.where(scores > self.threshold_, outlier, 1 - outlier)

    def predict_with_rejection(self, X: Any, T: float = 32, return_stats: bool = False, delta: float = 0.1,
                               c_fp: float = 1, c_fn: float = 1, c_r: float | None = None) -> Any:
        """:meth:`predict`, with -2 for the predictions the detector is not sure of: those whose
        ExCeeD outlier probability lies within ``exp(-T)`` of neither 0 nor 1 (the reject option of
        Perini, Buncak and Davis, AAAI 2023; a higher ``T`` rejects more). With ``return_stats``
        also :meth:`compute_rejection_stats`'s three numbers."""
        check_number("T", T, low=0)
        if T == 0:
            raise AelabError("T must be positive (a higher T rejects more), got 0")
        self._fitted()
        scores = self.decision_function(X)
        labels = (scores > self.threshold_).astype(int)
        stability = 2 * np.abs(self._outlier_probability(scores) - 0.5)
        labels[stability <= 1 - 2 * math.exp(-T)] = -2
        if return_stats:
            return (labels, *self.compute_rejection_stats(T, delta, c_fp, c_fn, c_r))
        return labels

    def compute_rejection_stats(self, T: float = 32, delta: float = 0.1, c_fp: float = 1, c_fn: float = 1,
                                c_r: float | None = None) -> tuple[float, float, float]:
        """The reject option's guarantees (Perini, Buncak and Davis, AAAI 2023, theorems 1-3): the
        expected share of rejected predictions, an upper bound on that share holding with
        probability ``1 - delta``, and an upper bound on the expected cost per prediction with costs
        ``c_fp`` (false alarm), ``c_fn`` (missed anomaly) and ``c_r`` (rejection; default:
        ``contamination``)."""
        from scipy.optimize import brentq
        from scipy.stats import binom

        self._fitted()
        if not 0 < delta < 1:
            raise AelabError(f"delta must be in (0, 1), got {delta!r}")
        gamma = self.contamination
        c_r = gamma if c_r is None else c_r
        n = len(self.decision_scores_)
        k = int(n * gamma) - 1

        def where_cdf(level: float) -> float:  # the p at which Binomial(n, p)'s CDF at k equals level
            return brentq(lambda p: binom.cdf(k, n, p) - level, 0, 1)

        low, high = where_cdf(1 - math.exp(-T)), where_cdf(math.exp(-T))
        expected = high - low
        right = min(1.0, (n + 1 - gamma * (n + 2)) / n + T * (n + 2) / math.sqrt(2 * n ** 3 * T))
        spread = 0.5 * n ** 5 * (2 * n * (-3 * gamma ** 2 - 2 * n * (1 - gamma) ** 2 + 4 * gamma - 3)
                                 + T * (n + 2) ** 2 - 8)
        left = max(0.0, (2 + n * (1 - gamma) * (n + 1)) / n ** 2 - math.sqrt(max(spread, 0.0)) / n ** 4)
        bound = right - left + 2 * math.sqrt(math.log(2 / delta) / (2 * n))
        cost = min(gamma, low) * c_fp + min(1 - high, gamma) * c_fn + expected * c_r
        return float(expected), float(bound), float(cost)

    def _fitted(self) -> torch.nn.Module:
        if self.model_ is None and self.run is not None:  # a run given by hand
            self._use(Run.of(self.run))
        if self.model_ is None:
            raise AelabError("the detector is not fitted yet: call fit(X) or use AnomalyDetector.from_run(RUN)")
        return self.model_

    # ----------------------------------------------------------------------- files

    def save(self, path: str | Path, overwrite: bool = False) -> Path:
        """Write the fitted detector to one safetensors file (see the module's text); an existing
        file is replaced only with ``overwrite``."""
        from safetensors.torch import save_file

        from .version import __version__

        model = self._fitted()
        path = check_targets([Path(path)], overwrite=overwrite, suffixes=(".safetensors",))[0]
        tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        tensors["decision_scores"] = torch.from_numpy(np.ascontiguousarray(self.decision_scores_, dtype=np.float64))
        if self.pixel_errors_ is not None:
            tensors["pixel_errors"] = torch.from_numpy(np.ascontiguousarray(self.pixel_errors_, dtype=np.float32))
        if self.method in USES_NEIGHBOURS:
            tensors["reference_pixels"], tensors["reference_codes"] = (t.contiguous() for t in self.references_)
        if self.method in USES_TRANSFORMATIONS:
            tensors.update({f"transformations.{k}": v.detach().cpu().contiguous()
                            for k, v in self.transformer_.state_dict().items()})
        if self.method != "reconstruction":
            tensors["standard"] = torch.from_numpy(np.ascontiguousarray(self.standard_, dtype=np.float64))
        header = {"format": FILE_FORMAT, "aelab_version": __version__, "config": self.config_.to_json(),
                  "contamination": self.contamination, "score": self.score, "threshold": self.threshold_,
                  "method": self.method}
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata={"aelab_detector": json.dumps(header)}))
        return path

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "cpu") -> AnomalyDetector:
        """A detector from :meth:`save`'s file, on ``device``; nothing in the file is executed."""
        from safetensors import SafetensorError, safe_open

        from .models import create_model
        from .runs import load_state, read_config

        path = check_file(Path(path), "detector file")
        try:
            with safe_open(str(path), framework="pt") as file:
                raw = (file.metadata() or {}).get("aelab_detector")
                tensors = {key: file.get_tensor(key) for key in file.keys()}
        except (SafetensorError, OSError, ValueError) as error:
            raise AelabError(f"detector file {path} is damaged ({error})") from None
        try:
            header = json.loads(raw)
            config = read_config(header["config"], path)
            contamination, score, threshold = header["contamination"], header["score"], float(header["threshold"])
            method = header.get("method", "reconstruction")
        except (TypeError, ValueError, KeyError) as error:
            raise AelabError(f"{path} is not an aelab detector file ({type(error).__name__}: {error})") from None
        if method not in METHODS:
            raise AelabError(f"{path} holds a detector of method {method!r}, which this aelab does not know "
                             f"({', '.join(METHODS)}): a newer aelab wrote it")
        _check_stored(path, threshold, contamination, score, tensors)
        needed = (["decision_scores"] + (["reference_pixels", "reference_codes"] if method in USES_NEIGHBOURS else [])
                  + (["standard"] if method != "reconstruction" else []))
        transformations = {k.removeprefix("transformations."): v for k, v in tensors.items()
                           if k.startswith("transformations.")}
        if any(key not in tensors for key in needed) or (method in USES_TRANSFORMATIONS and not transformations):
            raise AelabError(f"{path} is not a whole aelab detector file (it needs {', '.join(needed)}"
                             f"{' and the transformations network' if method in USES_TRANSFORMATIONS else ''})")
        detector = cls(config.model, contamination, score=score, method=method)
        if method in USES_NEIGHBOURS:
            detector.references_ = (tensors["reference_pixels"].float(), tensors["reference_codes"].float())
        if method != "reconstruction":
            detector.standard_ = tensors["standard"].numpy()
        model = create_model(config.model, **config.params)
        load_state(model, {k.removeprefix("model."): v for k, v in tensors.items() if k.startswith("model.")}, path)
        if not isinstance(model, Autoencoder) or isinstance(model, Conditional):
            raise AelabError(f"{path} holds {config.model}, which does not score anomalies")
        if method in USES_NEIGHBOURS and tensors["reference_pixels"].shape[1] != math.prod(model.input_shape):
            raise AelabError(f"{path} is damaged (reference_pixels: rows of {tensors['reference_pixels'].shape[1]} "
                             f"values, and the model takes {math.prod(model.input_shape)})")
        if method in USES_TRANSFORMATIONS:
            first = transformations.get("net.0.weight")  # (width, channels, 3, 3): the network's width
            net = TransformationNet(model.input_shape[0], first.shape[0] if first is not None and first.dim() else 1)
            load_state(net, transformations, path)
            detector.transformer_ = net.to(device, memory_format=torch.channels_last).eval()
        detector.model_, detector.config_ = model.to(device).eval(), config
        detector.decision_scores_ = tensors["decision_scores"].numpy()
        detector.pixel_errors_ = tensors["pixel_errors"].numpy() if "pixel_errors" in tensors else None
        detector.threshold_ = threshold
        detector.labels_ = (detector.decision_scores_ > threshold).astype(int)
        return detector

    def scoring_module(self) -> tuple[torch.nn.Module, dict[str, str]]:
        """The fitted detector as one module (float32 images (N, C, H, W) in [0, 1] -> anomaly scores
        (N,), as :meth:`decision_function`) and the metadata an exported file keeps with it (the
        threshold, contamination, score kind and model): what ``aelab.export(detector, "d.onnx",
        part="detector")`` writes."""
        model = self._fitted()
        pixel = None
        if self.score == "normalised":
            if self.pixel_errors_ is None:
                raise AelabError("the normalised score needs the normal images' errors: fit the detector first")
            pixel = torch.as_tensor(self.pixel_errors_, dtype=torch.float32)
        neighbours = self.references_ if self.method in USES_NEIGHBOURS else None
        transformer = copy.deepcopy(self.transformer_).cpu() if self.method in USES_TRANSFORMATIONS else None
        standard = None if self.standard_ is None else torch.as_tensor(self.standard_, dtype=torch.float64)
        module = DetectorScore(copy.deepcopy(model).cpu(), pixel, neighbours, transformer, standard).eval()
        metadata = {"aelab.threshold": repr(float(self.threshold_)), "aelab.contamination": repr(self.contamination),
                    "aelab.score": self.score, "aelab.method": self.method, "aelab.model": self.config_.model}
        return module, metadata


class DetectorScore(torch.nn.Module):
    """Images -> anomaly scores, as :meth:`AnomalyDetector.decision_function` computes them (for export)."""

    def __init__(self, model: torch.nn.Module, pixel_errors: torch.Tensor | None,
                 neighbours: tuple[torch.Tensor, torch.Tensor] | None = None,
                 transformer: torch.nn.Module | None = None, standard: torch.Tensor | None = None) -> None:
        super().__init__()
        self.model, self.transformer = model, transformer
        self.register_buffer("scale", None if pixel_errors is None else 1 / (pixel_errors + EPS))
        pixels, codes = neighbours if neighbours is not None else (None, None)
        self.register_buffer("pixels", pixels)
        self.register_buffer("codes", codes)
        self.register_buffer("standard", standard)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model.layers(x)
        errors = (out.recon - x).square().mean(dim=1)
        if self.scale is not None:
            errors = errors * self.scale
        score = errors.flatten(1).mean(dim=1)
        if self.standard is None:
            return score
        parts = []
        if self.pixels is not None:
            parts += [score.double(), neighbour_distance(x.flatten(1), self.pixels, NEIGHBOURS, chunk=0),
                      neighbour_distance(out.z.flatten(1), self.codes, NEIGHBOURS, chunk=0)]
        if self.transformer is not None:
            parts.append(transformation_score(self.transformer, x))
        parts = torch.stack(parts)
        return ((parts - self.standard[:, :1]) / self.standard[:, 1:]).sum(dim=0).float()


def neighbour_distance(queries: torch.Tensor, reference: torch.Tensor, k: int, leave_out: bool = False,
                       chunk: int = 512) -> torch.Tensor:
    """Each query's mean Euclidean distance to its ``k`` nearest rows of ``reference`` (in float64,
    where the squared distances' expansion loses no digits that matter; in ``chunk``s of queries;
    0: all at once, as an exported graph does); ``leave_out``: the queries are the reference, each
    skipping itself."""
    k = min(k, len(reference) - int(leave_out))
    queries, reference = queries.double(), reference.double()
    squared = reference.square().sum(dim=1)
    means = []
    for part in adaptive(queries.split(chunk) if chunk else [queries]):
        d2 = part.square().sum(dim=1, keepdim=True) - 2 * part @ reference.T + squared
        nearest = (-d2).topk(k + int(leave_out), dim=1).values.neg().clamp(min=0).sqrt()
        means.append(nearest[:, int(leave_out):].mean(dim=1))
    return torch.cat(means)


def best_f1_threshold(scores: np.ndarray, labels: np.ndarray) -> float:
    """The score above which flagging maximises F1 on labelled scores (1 = anomaly)."""
    order = np.argsort(-scores, kind="stable")
    ranked, truth = scores[order], labels[order]
    flagged_true = np.cumsum(truth)  # flagging the top i+1
    f1 = 2 * flagged_true / (np.arange(1, len(truth) + 1) + truth.sum())
    last = len(ranked) - 1 - np.argmax(f1[::-1] == f1.max())  # the most flagged among the best
    # between this score and the next lower one, so that every flagged score lies above it
    below = ranked[last + 1] if last + 1 < len(ranked) else ranked[last] - 1e-12
    return float((ranked[last] + below) / 2)


def _check_stored(path: Path, threshold: float, contamination: Any, score: Any,
                  tensors: dict[str, torch.Tensor]) -> None:
    """A detector file's numbers, before they are used: a finite threshold, a contamination in its
    range, known choices, and each array of its expected shape with finite values (a NaN threshold
    would flag nothing, silently)."""
    if not math.isfinite(threshold):
        raise AelabError(f"{path} is damaged (its threshold is {threshold})")
    try:
        check_contamination(contamination)
        check_choice("score", score, SCORES)
    except AelabError as error:
        raise AelabError(f"{path} is damaged ({error})") from None
    shapes = {"decision_scores": 1, "standard": 2, "reference_pixels": 2, "reference_codes": 2, "pixel_errors": None}
    for key, dims in shapes.items():
        value = tensors.get(key)
        if value is None:
            continue
        if (dims is not None and value.dim() != dims) or value.numel() == 0 or not value.is_floating_point() \
                or not torch.isfinite(value).all():
            raise AelabError(f"{path} is damaged ({key}: expected finite numbers in {dims or 'any number of'} "
                             f"dimension(s), got {value.dtype} shaped {tuple(value.shape)})")
    if "standard" in tensors and tensors["standard"].shape[1] != 2:
        raise AelabError(f"{path} is damaged (standard: expected a mean and a spread per part, got "
                         f"{tuple(tensors['standard'].shape)})")


def check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise AelabError(f"unknown {name} {value!r}; choose {', '.join(choices)}")


def check_contamination(contamination: Any) -> None:
    if not isinstance(contamination, (int, float)) or isinstance(contamination, bool) or not 0 < contamination <= 0.5:
        raise AelabError(f"contamination must be a number in (0, 0.5], as in PyOD, got {contamination!r}")


def _images(X: Any) -> torch.Tensor:
    """Images as a tensor; flat rows (N, D) become (N, 1, s, s) where D = s * s, (N, 3, s, s)
    where D = 3 * s * s."""
    if isinstance(X, np.ndarray):
        X = torch.from_numpy(X)
    if not isinstance(X, torch.Tensor):
        raise AelabError(f"images come as a tensor or numpy array, got {type(X).__name__}")
    if len(X) == 0:
        raise AelabError("no images to score")
    if X.dim() == 2:
        width = X.shape[1]
        for channels in (1, 3):
            side = math.isqrt(width // channels)
            if channels * side * side == width:
                return X.reshape(len(X), channels, side, side)
        raise AelabError(f"flat rows of {width} values are not square images (one channel: s*s values; RGB: "
                         "3*s*s); pass images shaped (N, H, W) or (N, C, H, W)")
    return X


def _check_model(run) -> None:
    model = run.model
    if not isinstance(model, Autoencoder):
        raise AelabError(f"anomaly scores need an autoencoder; {run.config.model} is not one")
    if isinstance(model, Conditional):
        raise AelabError(f"{run.config.model} needs each image's label; anomaly scores take an autoencoder "
                         "without labels")


@chosen_threads()  # one thread count for the job (the detector's fit on the run's data, the scores)
def score_files(run_dir: str | Path, images: list[str | Path], threshold: float | None = None,
                contamination: float = 0.1, maps: str | Path | None = None, worst: int = 8,
                csv_out: str | Path | None = None, score: Score = "normalised", overwrite: bool = False,
                method: Method = "reconstruction") -> dict[str, Any]:
    """`aelab score`: the score of each image file, whether it is an outlier, the threshold (given,
    or from the run's validation images at ``contamination``), and the error maps of the ``worst``
    images drawn to ``maps/worst.png`` (default folder: ``RUN/anomaly``). Every input is checked
    before anything is written; ``csv_out`` gets one row per image (a table or figure this command
    wrote may be written again; another existing file only with ``overwrite``). The normalised
    ``score`` needs the run's validation images; ``score="mse"`` with a ``threshold`` needs no data.
    The other methods (see :class:`AnomalyDetector`) take the run's training images as their
    reference: ``neighbours`` their distances, ``transformations`` a network trained on them
    first (the slower: tens of seconds for a few thousand images on 2 cores), ``combined`` both."""
    from . import figures

    run = Run(run_dir)
    check_contamination(contamination)
    check_choice("score", score, SCORES)
    check_choice("method", method, METHODS)
    if threshold is not None and not (isinstance(threshold, (int, float)) and np.isfinite(threshold) and threshold >= 0):
        raise AelabError(f"{opt('threshold')} must be a finite number >= 0, got {threshold!r}")
    if worst < 1:
        raise AelabError(f"{opt('worst')} must be at least 1, got {worst}")
    csv_path = Path(csv_out) if csv_out is not None else None
    folder = Path(maps) if maps is not None else run.path / "anomaly"
    sources = [*images, *run.sources()]
    if csv_path is not None:  # an existing table is replaced only with overwrite, whatever its first line says
        check_targets([csv_path], overwrite=overwrite, inputs=sources, suffixes=(".csv",))
    figure_path = check_targets([folder / "worst.png"], overwrite=overwrite, inputs=sources, what=opt("maps"),
                                replaceable=drawn_by_aelab)[0]
    _check_model(run)
    shape = run.model.input_shape
    x = read_images(list(images), shape[0], shape[1])  # every file checked before anything is written
    if threshold is None or score == "normalised" or method != "reconstruction":
        detector = AnomalyDetector.from_run(run, contamination, score=score, method=method)
        source = f"the {len(detector.decision_scores_)} validation images' {1 - contamination:.0%} quantile"
    else:  # a plain error against a given threshold: nothing to learn from the run's data
        detector = AnomalyDetector(run.config.model, contamination, score=score, method="reconstruction")
        detector.run = run
        detector._use(run)
    if threshold is not None:
        detector.threshold_, source = float(threshold), "given"
    checked, errors, codes = detector._through(x)  # one pass: the scores and the error maps drawn below
    scores = detector._scores(checked, errors, codes)
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
                                          f"(threshold {detector.threshold_:.4g})",
                                    scores=[float(scores[i]) for i in order])
    return {"rows": rows, "threshold": detector.threshold_, "threshold_source": source, "figure": figure,
            "csv": csv_path}


CSV_HEADER = "file,score,outlier\n"


def _write_table(path: Path, rows: list[tuple[str, float, bool]]) -> None:
    """The score table, quoted as CSV (a file named ``a, b.png`` stays one cell)."""
    with open(path, "w", newline="") as file:  # (the caller writes it through atomic_write)
        table = csv.writer(file, lineterminator="\n")
        table.writerow(CSV_HEADER.strip().split(","))
        table.writerows((p, f"{s:.6g}", int(f)) for p, s, f in rows)
