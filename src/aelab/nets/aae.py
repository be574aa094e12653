"""The adversarial autoencoder (Makhzani et al. 2016, https://arxiv.org/abs/1511.05644): a
deterministic encoder whose codes a discriminator tells from draws of the prior N(0, I), and
which learns to fool it; new images are decoded prior draws."""

from __future__ import annotations

from torch import Tensor, nn

from ..registry import register_model
from .backbone import DenseCode, NormalPrior
from .blocks import check_positive


@register_model(
    "aae",
    "adversarial autoencoder: the zoo's conv net, 16-D code; a discriminator on the codes "
    "(dense 256-256) pulls them to N(0, I); samples from the prior",
    train=dict(loss="bce", optimizer="adam", lr=1e-3, batch_size=128, epochs=30),
    family="aae",
)
class AAE(DenseCode, NormalPrior):
    """:class:`~aelab.nets.backbone.DenseCode` and ``critic``: codes (B, latent) -> logits (B,)
    that they came from the prior (two dense layers of ``critic_width``, leaky ReLU, as the paper's
    MNIST discriminator of 1,000 units, narrowed for the CPU)."""

    def __init__(
        self,
        in_channels: int = 1,
        in_size: int = 28,
        latent_dim: int = 16,
        channels: tuple[int, ...] = (32, 64),
        act: str = "relu",
        critic_width: int = 256,
    ) -> None:
        super().__init__(in_channels, in_size, latent_dim, channels, act)
        check_positive(critic_width=critic_width)
        self.critic = nn.Sequential(
            nn.Linear(latent_dim, critic_width),
            nn.LeakyReLU(0.2),
            nn.Linear(critic_width, critic_width),
            nn.LeakyReLU(0.2),
            nn.Linear(critic_width, 1),
        )

    def judge(self, z: Tensor) -> Tensor:  # (B, latent) -> (B,)
        return self.critic(z).squeeze(-1)
