"""PyOD's predictions from a fitted detector's scores: labels, probabilities, confidence and the
reject option (:mod:`.confidence` holds the arithmetic). Mixed into :class:`AnomalyDetector`,
whose ``decision_function``, ``decision_scores_``, ``threshold_`` and ``contamination`` they read."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import AelabError
from ..limits import check_number
from . import confidence


class Predictions:
    """The predictions of a detector with ``decision_function(X)`` and fitted scores and threshold."""

    decision_scores_: np.ndarray | None
    threshold_: float | None
    contamination: float

    def decision_function(self, X: Any) -> np.ndarray:  # the detector's
        raise NotImplementedError

    def scorer(self) -> Any:  # the detector's: its fitted scoring module, or an error if unfitted
        raise NotImplementedError

    def predict(self, X: Any, return_confidence: bool = False) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """1 for an outlier (score above ``threshold_``), 0 for an inlier; with ``return_confidence``
        also :meth:`predict_confidence`'s values."""
        scores = self.decision_function(X)
        labels = (scores > self.threshold_).astype(int)
        return (labels, self._confidence(scores)) if return_confidence else labels

    def predict_proba(self, X: Any, method: str = "linear", return_confidence: bool = False) -> Any:
        """(N, 2) probabilities of inlier and outlier (``method``: "linear" or "unify", as PyOD's:
        :func:`aelab.anomaly.confidence.outlier_proba`); with ``return_confidence`` also
        :meth:`predict_confidence`'s."""
        confidence.check_proba_method(method)  # before the scores
        scores = self.decision_function(X)
        proba = confidence.outlier_proba(self.decision_scores_, scores, method)
        return (proba, self._confidence(scores)) if return_confidence else proba

    def predict_confidence(self, X: Any) -> np.ndarray:
        """How surely each prediction would stay the same had the detector seen another sample of
        normal images, in [0, 1] (ExCeeD: :func:`aelab.anomaly.confidence.outlier_probability`)."""
        return self._confidence(self.decision_function(X))

    def _confidence(self, scores: np.ndarray) -> np.ndarray:
        return confidence.confidence(self.decision_scores_, scores, self.contamination, self.threshold_)

    def predict_with_rejection(
        self,
        X: Any,
        T: float = 32,
        return_stats: bool = False,
        delta: float = 0.1,
        c_fp: float = 1,
        c_fn: float = 1,
        c_r: float | None = None,
    ) -> Any:
        """:meth:`predict`, with -2 for the predictions the detector is not sure of (the reject
        option of Perini, Buncak and Davis, AAAI 2023; a higher ``T`` rejects more). With
        ``return_stats`` also :meth:`compute_rejection_stats`'s three numbers."""
        check_number("T", T, low=0)
        if T == 0:
            raise AelabError("T must be positive (a higher T rejects more), got 0")
        scores = self.decision_function(X)
        labels = (scores > self.threshold_).astype(int)
        labels[confidence.rejected(self.decision_scores_, scores, self.contamination, T)] = -2
        return (labels, *self.compute_rejection_stats(T, delta, c_fp, c_fn, c_r)) if return_stats else labels

    def compute_rejection_stats(
        self, T: float = 32, delta: float = 0.1, c_fp: float = 1, c_fn: float = 1, c_r: float | None = None
    ) -> tuple[float, float, float]:
        """The reject option's guarantees: :func:`aelab.anomaly.confidence.rejection_stats`."""
        self.scorer()
        return confidence.rejection_stats(len(self.decision_scores_), self.contamination, T, delta, c_fp, c_fn, c_r)
