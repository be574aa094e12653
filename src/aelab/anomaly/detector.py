""":class:`AnomalyDetector`: an autoencoder as an outlier detector with PyOD's API (see
:mod:`aelab.anomaly` for the methods, the threshold rule and the file)."""

from __future__ import annotations

import tempfile
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..arrays import like
from ..data import split_validation
from ..errors import AelabError
from ..evaluation import run_data
from ..metrics import reconstruct as reconstruct_batches
from ..progress import Progress, resolve
from ..runs import Run
from ..threads import job
from . import confidence
from .checks import as_images, check_choice, check_contamination, check_detector_model
from .parts import DEFAULT_METHOD, METHODS, SCORES
from .predictions import Predictions
from .scorer import DetectorScore

LONG_JOB = 2_000  # images scored at once from which a look at the CPU (50 ms) pays for itself
EPOCHS = 10  # the default model's, unless given (validation: 10 epochs scored above 20 and 30, and the seed's 50 waits)
OWN = ("model", "contamination", "out", "score", "method", "progress")  # the constructor's own arguments


class AnomalyDetector(Predictions):
    """An autoencoder as an outlier detector, PyOD-style.

    ``AnomalyDetector(model="dense", contamination=0.1, **settings).fit(X)`` trains ``model`` on
    the normal images ``X`` ((N, H, W) or (N, C, H, W), uint8 or floats in [0, 1]) with any
    training ``settings`` (``epochs=20``); ``out`` keeps the run folder (default: a temporary
    one). ``AnomalyDetector.from_run(RUN)`` uses a trained run instead, its threshold set on the
    run's validation images (held out from training, so their errors are honest). ``score``:
    ``"normalised"`` (default) or ``"mse"``; ``progress``: how ``fit`` reports its training
    (None, the default: quiet, as PyOD's ``verbose=0``; "epoch": a line per epoch; "bar");
    ``method``: ``"combined"`` (the default here and in ``from_run``, ``aelab score`` and
    ``aelab export``: the most accurate), ``"reconstruction"`` (the fastest), ``"neighbours"`` or
    ``"transformations"`` (see :mod:`aelab.anomaly`). Without ``out``, ``fit`` trains in a
    temporary folder, without loggers, and removes it: nothing outlives the call. The default
    model is seed 2's dense autoencoder, trained for :data:`EPOCHS` epochs unless ``epochs`` is
    given: on one-class Fashion-MNIST it scored the highest mean ROC-AUC of aelab's models, PCA
    and PyOD's AutoEncoder, and the fastest (benchmarks/results/anomaly.md).
    """

    def __init__(
        self,
        model: str = "dense",
        contamination: float = 0.1,
        out: str | Path | None = None,
        score: str = "normalised",
        method: str = DEFAULT_METHOD,
        progress: Progress = None,
        **settings: Any,
    ) -> None:
        self.settings: dict[str, Any] = {}
        self.set_params(
            model=model, contamination=contamination, out=out, score=score, method=method, progress=progress, **settings
        )
        self.run = None
        self.scorer_: DetectorScore | None = None  # the autoencoder and the method's fitted parts
        self.config_ = None  # the autoencoder's RunConfig
        self.decision_scores_: np.ndarray | None = None
        self.threshold_: float | None = None
        self.labels_: np.ndarray | None = None

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor's arguments (scikit-learn's convention; ``deep`` has nothing to descend into)."""
        del deep
        return {name: getattr(self, name) for name in OWN} | self.settings

    def set_params(self, **params: Any) -> AnomalyDetector:
        """Change constructor arguments (any training setting included); they apply at the next ``fit``."""
        if "contamination" in params:
            check_contamination(params["contamination"])
        if "score" in params:
            check_choice("score", params["score"], SCORES)
        if "method" in params:
            check_choice("method", params["method"], METHODS)
        if "progress" in params:
            resolve(params["progress"])  # a wrong value fails here, not in fit
        for name, value in params.items():
            if name in OWN:
                setattr(self, name, value)
            else:
                self.settings[name] = value
        return self

    def __repr__(self) -> str:
        return f"AnomalyDetector({', '.join(f'{k}={v!r}' for k, v in self.get_params().items())})"

    @property
    def model_(self) -> torch.nn.Module | None:
        """The trained autoencoder (the run's, or a loaded file's)."""
        return None if self.scorer_ is None else self.scorer_.model

    def fit(self, X: Any, y: Any = None) -> AnomalyDetector:
        """Train the autoencoder on ``X`` (normal images; ``y`` is ignored, as in PyOD) and set the
        threshold from the training scores. The run folder is ``out``'s, or a temporary one removed
        before ``fit`` returns (the detector keeps the trained model in memory; ``run`` is then None)."""
        from ..training import train

        del y
        images = as_images(X)
        # every image trains (less the validation hold-out); no test split to evaluate
        settings = {"epochs": EPOCHS, **self.settings} if self.model == "dense" else dict(self.settings)
        if self.out is None:
            settings.setdefault("logger", ())  # no loggers: nothing to keep them for
        temporary = tempfile.TemporaryDirectory(prefix="aelab-detector-") if self.out is None else nullcontext()
        with job(), temporary as folder:
            run = train(
                self.model,
                data=(images, images[:1]),
                out=self.out if folder is None else Path(folder) / "run",
                progress=self.progress,
                evaluate_test=False,
                **settings,
            )
            self.use(run)
            self._fit_normal(images)
        self.run = run if self.out is not None else None
        return self

    def use(self, run: Run) -> AnomalyDetector:
        """Score with ``run``'s autoencoder (its parts not fitted yet)."""
        check_detector_model(run.model, run.config.model)
        self.run, self.config_ = run, run.config
        self.scorer_ = DetectorScore(run.model, self.method, normalised=self.score == "normalised")
        return self

    @classmethod
    def from_run(
        cls,
        run: Any,
        contamination: float = 0.1,
        data: Any = None,
        score: str = "normalised",
        method: str = DEFAULT_METHOD,
    ) -> AnomalyDetector:
        """A detector from a trained run, its threshold the ``1 - contamination`` quantile of the
        scores of the run's validation images (its dataset, or ``data`` for a run trained on
        arrays); the parts that learn from reference images (neighbours, transformations) take the
        run's training images (seeded by the run's seed)."""
        run = Run.of(run)
        detector = cls(run.config.model, contamination, score=score, method=method).use(run)
        train, val = split_validation(
            run_data(run, data).train, run.config.train.val_fraction, seed=run.config.train.seed
        )
        detector._fit_normal(val, reference=train if METHODS[method].uses_reference else None)
        return detector

    @job()  # (from_run's fit: the network, the neighbours and the standardisation)
    def _fit_normal(self, images: Any, reference: Any = None) -> None:
        """Fit the parts on normal images and a reference (None: the images themselves, each left
        out of its own neighbours); their scores, the threshold and the labels."""
        scorer = self.scorer()
        normal = scorer.see(scorer.model.check_images(as_images(images)))
        seen = None if reference is None else scorer.see(scorer.model.check_images(as_images(reference)))
        scores = scorer.fit(normal, seen, self.config_.train.seed).numpy()
        self._set_threshold(scores, float(np.quantile(scores, 1 - self.contamination)))

    def _set_threshold(self, scores: np.ndarray, threshold: float) -> None:
        self.decision_scores_, self.threshold_ = scores, threshold
        self.labels_ = (scores > threshold).astype(int)

    def calibrate(self, X: Any, y: Any = None) -> AnomalyDetector:
        """Set the threshold on calibration images ``X`` (see the module's threshold rule): with no
        labels, or labels that are all 0 (no anomalies), the ``1 - contamination`` quantile of their
        scores; with labels holding both 0 (normal) and 1 (anomaly), the score maximising F1 on them.
        ``decision_scores_`` and ``labels_`` become the calibration images' (the normal ones', for
        the confidence estimates). The normal images' per-pixel errors stay the training's."""
        scores = self.decision_function(X)
        labels = np.zeros(len(scores), dtype=int) if y is None else np.asarray(y).reshape(-1)
        if labels.shape != scores.shape or not np.isin(labels, (0, 1)).all():
            raise AelabError(f"calibration labels must be {len(scores)} values of 0 (normal) or 1 (anomaly)")
        if labels.all():
            raise AelabError("the calibration images are all anomalies; the threshold needs normal images")
        normal = scores[labels == 0]
        # both kinds: the threshold with the best F1 on them; no anomalies: the share of normal images flagged
        self._set_threshold(
            normal,
            confidence.best_f1_threshold(scores, labels)
            if labels.any()
            else float(np.quantile(normal, 1 - self.contamination)),
        )
        return self

    def decision_function(self, X: Any) -> np.ndarray:
        """Anomaly scores (N,), higher: more anomalous (``score``: normalised or plain mean squared
        error; ``method``: the reconstruction error alone, or the standardised sum of its parts)."""
        scorer = self.scorer()
        images = as_images(X)
        with job(look=len(images) >= LONG_JOB):  # a look at the CPU pays only for many images
            return scorer.scores(scorer.see(scorer.model.check_images(images))).numpy()

    def score_maps(self, maps: np.ndarray) -> np.ndarray:
        """The reconstruction error's scores (N,) of squared-error maps (N, H, W)."""
        return self.scorer().score_errors(torch.as_tensor(maps)).numpy()

    def error_maps(self, X: Any) -> np.ndarray:
        """Per-pixel squared reconstruction errors (N, H, W), averaged over the channels."""
        scorer = self.scorer()
        return scorer.see(scorer.model.check_images(as_images(X))).errors.numpy()

    def reconstruct(self, X: Any) -> np.ndarray | torch.Tensor:
        """The reconstructions (N, C, H, W) the scores compare against, in the kind ``X`` came in
        (numpy in, numpy out; a tensor in, a tensor out)."""
        model = self.scorer().model
        return like(reconstruct_batches(model, model.check_images(as_images(X)))[0], not isinstance(X, torch.Tensor))

    def scorer(self) -> DetectorScore:
        """The fitted scoring module (an error if the detector is not fitted)."""
        if self.scorer_ is None and self.run is not None:  # a run given by hand
            self.use(Run.of(self.run))
        if self.scorer_ is None:
            raise AelabError("the detector is not fitted yet: call fit(X) or use AnomalyDetector.from_run(RUN)")
        return self.scorer_

    def save(self, path: str | Path, overwrite: bool = False) -> Path:
        """Write the fitted detector to one safetensors file (:mod:`aelab.anomaly.files`); an
        existing file is replaced only with ``overwrite``."""
        from .files import save_detector

        return save_detector(self, path, overwrite)

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "cpu") -> AnomalyDetector:
        """A detector from :meth:`save`'s file, on ``device``; nothing in the file is executed."""
        from .files import load_detector

        return load_detector(cls, path, device)

    def scoring_module(self) -> tuple[torch.nn.Module, dict[str, str]]:
        """The fitted detector as one module on the CPU (float32 images (N, C, H, W) in [0, 1] ->
        anomaly scores (N,), as :meth:`decision_function`) and the metadata an exported file keeps
        with it: what ``aelab.export(detector, "d.onnx", part="detector")`` writes."""
        import copy

        module = copy.deepcopy(self.scorer()).cpu().eval()
        metadata = {
            "aelab.threshold": repr(float(self.threshold_)),
            "aelab.contamination": repr(self.contamination),
            "aelab.score": self.score,
            "aelab.method": self.method,
            "aelab.model": self.config_.model,
        }
        return module, metadata
