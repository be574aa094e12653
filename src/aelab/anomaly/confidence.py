"""How sure a detector's predictions are: PyOD's probability, confidence and reject option as
functions of the fitted scores (numpy arrays), used by :class:`aelab.AnomalyDetector`."""

from __future__ import annotations

import math

import numpy as np

from ..errors import AelabError


def outlier_proba(fitted: np.ndarray, scores: np.ndarray, method: str = "linear") -> np.ndarray:
    """(N, 2) probabilities of inlier and outlier. ``linear``: the scores scaled by the fitted
    scores' range, clipped to [0, 1]; ``unify``: the Gaussian scaling of Kriegel et al. (SDM 2011),
    erf of the score's distance from the fitted scores' mean in their standard deviations, clipped."""
    check_proba_method(method)
    if method == "linear":
        low, high = float(fitted.min()), float(fitted.max())
        outlier = np.clip((scores - low) / max(high - low, 1e-12), 0, 1)
    else:
        from scipy.special import erf

        outlier = np.clip(erf((scores - fitted.mean()) / (max(float(fitted.std()), 1e-12) * math.sqrt(2))), 0, 1)
    return np.stack([1 - outlier, outlier], axis=1)


def check_proba_method(method: str) -> None:
    if method not in ("linear", "unify"):
        raise AelabError(f"unknown method {method!r}; choose linear or unify")


def outlier_probability(fitted: np.ndarray, scores: np.ndarray, contamination: float) -> np.ndarray:
    """ExCeeD (Perini, Vercruyssen and Davis, ECML PKDD 2020): a score's rank among the ``n``
    fitted scores gives a Bayesian estimate ``p`` of the share of normal images scoring below it;
    the chance that it would land above the threshold is the chance that more than
    ``n - n * contamination`` of ``n`` draws fall below it: 1 - Binomial(n, p)'s CDF there."""
    from scipy.stats import binom

    fitted = np.sort(fitted)
    n = len(fitted)
    below = np.searchsorted(fitted, scores, side="right")  # fitted scores <= each score
    p = (1 + below) / (2 + n)
    return 1 - binom.cdf(n - int(n * contamination), n, p)


def confidence(fitted: np.ndarray, scores: np.ndarray, contamination: float, threshold: float) -> np.ndarray:
    """The confidence of each prediction: an outlier's ExCeeD probability, an inlier's complement."""
    outlier = outlier_probability(fitted, scores, contamination)
    return np.where(scores > threshold, outlier, 1 - outlier)


def rejected(fitted: np.ndarray, scores: np.ndarray, contamination: float, T: float) -> np.ndarray:
    """Which predictions the reject option leaves out: those whose ExCeeD outlier probability lies
    within ``exp(-T)`` of neither 0 nor 1 (Perini, Buncak and Davis, AAAI 2023)."""
    stability = 2 * np.abs(outlier_probability(fitted, scores, contamination) - 0.5)
    return stability <= 1 - 2 * math.exp(-T)


def rejection_stats(
    n: int,
    contamination: float,
    T: float = 32,
    delta: float = 0.1,
    c_fp: float = 1,
    c_fn: float = 1,
    c_r: float | None = None,
) -> tuple[float, float, float]:
    """The reject option's guarantees for ``n`` fitted scores (Perini, Buncak and Davis, AAAI 2023,
    theorems 1-3): the expected share of rejected predictions, an upper bound on that share holding
    with probability ``1 - delta``, and an upper bound on the expected cost per prediction with
    costs ``c_fp`` (false alarm), ``c_fn`` (missed anomaly) and ``c_r`` (rejection; default:
    ``contamination``)."""
    from scipy.optimize import brentq
    from scipy.stats import binom

    if not 0 < delta < 1:
        raise AelabError(f"delta must be in (0, 1), got {delta!r}")
    gamma = contamination
    c_r = gamma if c_r is None else c_r
    k = int(n * gamma) - 1

    def where_cdf(level: float) -> float:  # the p at which Binomial(n, p)'s CDF at k equals level
        return brentq(lambda p: binom.cdf(k, n, p) - level, 0, 1)

    low, high = where_cdf(1 - math.exp(-T)), where_cdf(math.exp(-T))
    expected = high - low
    right = min(1.0, (n + 1 - gamma * (n + 2)) / n + T * (n + 2) / math.sqrt(2 * n**3 * T))
    spread = 0.5 * n**5 * (2 * n * (-3 * gamma**2 - 2 * n * (1 - gamma) ** 2 + 4 * gamma - 3) + T * (n + 2) ** 2 - 8)
    left = max(0.0, (2 + n * (1 - gamma) * (n + 1)) / n**2 - math.sqrt(max(spread, 0.0)) / n**4)
    bound = right - left + 2 * math.sqrt(math.log(2 / delta) / (2 * n))
    cost = min(gamma, low) * c_fp + min(1 - high, gamma) * c_fn + expected * c_r
    return float(expected), float(bound), float(cost)


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
