"""The regularised autoencoder, RAE-L2 (Ghosh et al. 2020, "From variational to deterministic
autoencoders", https://arxiv.org/abs/1903.12436): a deterministic autoencoder whose code is
kept small (an L2 penalty) and whose decoder is kept smooth (L2 on its weights); it generates
through a Gaussian mixture fitted to its training codes (:mod:`aelab.samplers`)."""

from __future__ import annotations

from torch import Tensor

from ..registry import register_model
from .backbone import DenseCode


@register_model(
    "rae",
    "regularised autoencoder (RAE-L2): the zoo's conv net, 16-D code, L2 on the code and the decoder's "
    "weights; samples from a Gaussian mixture over its training codes",
    train=dict(loss="bce", optimizer="adam", lr=1e-3, batch_size=128, epochs=30),
    family="rae",
)
class RAE(DenseCode):
    """:class:`~aelab.nets.backbone.DenseCode` as it is; the family's system adds the penalties."""

    def decoder_weights(self) -> list[Tensor]:
        """The decoder's weight tensors (not its biases), which the penalty keeps small."""
        return [
            p for name, p in [*self.expand.named_parameters(), *self.decoder.named_parameters()] if "weight" in name
        ]
