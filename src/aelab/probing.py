"""Linear probes: how good a run's codes are as features for a task it never saw.

A multinomial logistic regression is fitted on the training codes (standardised, full batch,
L-BFGS, a small L2 penalty) and scored on the test codes. The same probe on PCA codes of the
same size and on the raw pixels puts the number in context: codes worth using beat PCA's.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from .data import ImageData
from .errors import AelabError
from .metrics import pca_fit, reconstruct
from .nets.base import Autoencoder, Conditional


def linear_probe(
    train_x: Tensor,
    train_y: Tensor,
    test_x: Tensor,
    test_y: Tensor,
    classes: int | None = None,
    l2: float = 1e-4,
    iterations: int = 200,
) -> float:
    """Test accuracy of a logistic regression fitted on (``train_x``, ``train_y``): features
    (N, D), labels (N,) class numbers."""
    train_x, test_x = train_x.flatten(1).double(), test_x.flatten(1).double()
    mean, std = train_x.mean(0), train_x.std(0).clamp_min(1e-6)
    train_x, test_x = (train_x - mean) / std, (test_x - mean) / std
    classes = classes or int(max(train_y.max(), test_y.max())) + 1
    weight = torch.zeros(train_x.shape[1], classes, dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(classes, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS(
        [weight, bias], lr=1, max_iter=iterations, history_size=20, line_search_fn="strong_wolfe"
    )

    def closure() -> Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(train_x @ weight + bias, train_y) + l2 * weight.pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    with torch.no_grad():
        return ((test_x @ weight + bias).argmax(-1) == test_y).double().mean().item()


def probe_run(run, data: ImageData) -> dict[str, Any]:
    """The probe on ``run``'s codes of ``data``, on PCA codes of the same size and on the pixels."""
    model = run.model
    if not isinstance(model, Autoencoder):
        raise AelabError(f"{run.config.model} has no encoder whose codes a probe could test")
    if data.train_labels is None or data.test_labels is None:
        raise AelabError(
            f"{data.name} has no class labels to probe with (labels come from a folder's class "
            "sub-folders, IDX label files or y_train/y_test arrays)"
        )
    train_known, test_known = data.train_labels >= 0, data.test_labels >= 0
    train_x, train_y = data.train[train_known], data.train_labels[train_known]
    test_x, test_y = data.test[test_known], data.test_labels[test_known]
    if len(train_y.unique()) < 2:
        raise AelabError(f"{data.name}: a probe needs labelled training images of at least two classes")
    given = isinstance(model, Conditional)
    train_codes = reconstruct(model, train_x, labels=train_y if given else None)[1].flatten(1)
    test_codes = reconstruct(model, test_x, labels=test_y if given else None)[1].flatten(1)
    size = train_codes.shape[1]
    classes = int(max(train_y.max(), test_y.max())) + 1
    mean, basis = pca_fit(train_x, size)
    pca = [(x.flatten(1).double() - mean) @ basis.T for x in (train_x, test_x)]
    return {
        "probe_accuracy": linear_probe(train_codes, train_y, test_codes, test_y, classes),
        "probe_pca_accuracy": linear_probe(pca[0], train_y, pca[1], test_y, classes),
        "probe_pixels_accuracy": linear_probe(train_x, train_y, test_x, test_y, classes),
        "probe_code_size": size,
        "probe_pca_components": min(size, math.prod(train_x.shape[1:]), len(train_x)),
        "probe_images": [len(train_y), len(test_y)],
    }
