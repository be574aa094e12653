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
and the most accurate, sums the two distances and the transformations' score, each standardised
the same way (the reconstruction error left out: with it the sum scored lower on validation
images; benchmarks/results/anomaly.md gives its accuracy and time a class). It is the one default
(:data:`DEFAULT_METHOD`) of every entry point: ``AnomalyDetector()``, ``from_run``, ``aelab
score`` and ``aelab export``; from a trained run, the parts that learn from reference images take
the run's training images (the transformations network trains on them first: seconds to tens of
seconds). ``method="reconstruction"`` needs nothing but the run.

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

**Modules.** :mod:`.parts` (the parts of a score and the methods, the registry), :mod:`.scorer`
(one torch scoring path for scores, ``aelab score`` and ONNX), :mod:`.detector` (the PyOD API),
:mod:`.predictions` and :mod:`.confidence` (labels, probabilities, confidence, reject option),
:mod:`.files` (save and load), :mod:`.command` (``aelab score``), :mod:`.checks`.
"""

from .checks import as_images, check_choice, check_contamination
from .command import score_files
from .confidence import best_f1_threshold
from .detector import EPOCHS, AnomalyDetector
from .files import FILE_FORMAT
from .parts import (
    DEFAULT_METHOD,
    EPS,
    METHODS,
    NEIGHBOURS,
    PARTS,
    SCORES,
    Method,
    MethodName,
    Part,
    Score,
    Seen,
    neighbour_distance,
)
from .scorer import DetectorScore

__all__ = [
    "AnomalyDetector",
    "DEFAULT_METHOD",
    "DetectorScore",
    "EPOCHS",
    "EPS",
    "FILE_FORMAT",
    "METHODS",
    "Method",
    "MethodName",
    "NEIGHBOURS",
    "PARTS",
    "Part",
    "SCORES",
    "Score",
    "Seen",
    "as_images",
    "best_f1_threshold",
    "check_choice",
    "check_contamination",
    "neighbour_distance",
    "score_files",
]
