"""The Wasserstein autoencoder, WAE-MMD (Tolstikhin et al. 2018, https://arxiv.org/abs/1711.01558):
a deterministic encoder whose codes, as a whole, are pulled to the prior N(0, I) by a maximum
mean discrepancy; new images are decoded prior draws."""

from __future__ import annotations

from ..registry import register_model
from .backbone import DenseCode, NormalPrior


@register_model(
    "wae",
    "Wasserstein autoencoder (WAE-MMD, inverse multiquadratic kernel): the zoo's conv net, 16-D code "
    "pulled to N(0, I); samples from the prior",
    train=dict(loss="bce", optimizer="adam", lr=1e-3, batch_size=128, epochs=30),
    family="wae",
)
class WAE(DenseCode, NormalPrior):
    """:class:`~aelab.nets.backbone.DenseCode` with the prior N(0, I); the family's system adds the MMD."""
