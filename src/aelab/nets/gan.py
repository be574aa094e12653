"""Seed 3's DCGAN (003_cc967e401ad40983.txt), sized for 28x28 images on a CPU, and `gan-sn`, the
same generator trained by a modern recipe (spectral norm, hinge loss, two timescales, EMA)."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from ..errors import InputError
from ..registry import register_model
from .base import Generative, Network, refuse_labels
from .blocks import ImageConv2d, check_positive


def leaky() -> nn.Module:
    return nn.LeakyReLU(0.2)


class Generator(nn.Module):
    """Latent point -> image: dense to (width, s, s), then stride-2 4x4 transposed convs (kernel
    divisible by the stride: no checkerboard) halving the width, then a 5x5 conv with tanh."""

    def __init__(
        self, latent_dim: int, out_channels: int, size: int, width: int, levels: int, batch_norm: bool
    ) -> None:
        super().__init__()
        self.start = (width, size // 2**levels, size // 2**levels)
        norm = nn.BatchNorm2d if batch_norm else (lambda c: nn.Identity())
        self.dense = nn.Sequential(
            nn.Linear(latent_dim, math.prod(self.start)), nn.Unflatten(1, self.start), norm(width), leaky()
        )
        layers: list[nn.Module] = []
        for level in range(levels):
            a, b = width // 2**level, width // 2 ** (level + 1)
            layers += [nn.ConvTranspose2d(a, b, 4, stride=2, padding=1), norm(b), leaky()]
        layers += [ImageConv2d(width // 2**levels, out_channels, 5, padding=2), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:  # (B, latent) -> (B, C, H, W) in [-1, 1]
        return self.net(self.dense(z))


class Discriminator(nn.Module):
    """Image -> one logit ("generated"): stride-2 4x4 convs doubling the width (no pooling, whose
    sparse gradients hurt GANs), LeakyReLU, flatten, dropout, dense; ``spectral``: every conv and
    the dense layer spectrally normalised (Miyato et al., https://arxiv.org/abs/1802.05957)."""

    def __init__(
        self,
        in_channels: int,
        size: int,
        width: int,
        levels: int,
        dropout: float,
        spectral: bool = False,
        depth: int = 1,
    ) -> None:
        super().__init__()
        norm = spectral_norm if spectral else (lambda layer: layer)
        layers: list[nn.Module] = []
        widths = [in_channels] + [width // 2 ** (levels - 1 - level) for level in range(levels)]
        for a, b in zip(widths, widths[1:]):
            layers += [norm(nn.Conv2d(a, b, 4, stride=2, padding=1)), leaky()]
            for _ in range(depth - 1):  # SNGAN's "standard CNN": 3x3 stride-1 convs between the downsamplings
                layers += [norm(nn.Conv2d(b, b, 3, padding=1)), leaky()]
        side = size // 2**levels
        self.net = nn.Sequential(
            *layers, nn.Flatten(), nn.Dropout(dropout), norm(nn.Linear(widths[-1] * side * side, 1))
        )

    def forward(self, x: Tensor) -> Tensor:  # (B, C, H, W) in [-1, 1] -> (B,)
        return self.net(x).squeeze(1)


@register_model(
    "gan",
    "seed-3 DCGAN: dense + strided 4x4 transposed convs, tanh; strided-conv discriminator with "
    "dropout; label noise; Adam 2e-4 (beta1 0.5); Glorot-uniform weights",
    family="gan",
    train=dict(optimizer="adam", lr=2e-4, d_lr=2e-4, batch_size=64, epochs=10, init="glorot"),
    renamed={"width": "max_channels"},
)
class DCGAN(Network, Generative):
    """Radford et al., DCGAN (https://arxiv.org/abs/1511.06434), with seed 3's tricks: tanh output,
    LeakyReLU, strided convs instead of pooling, kernel sizes divisible by the stride, latent points
    from a normal distribution, dropout in the discriminator; label noise lives in the system.

    The seed's network is for 32x32 colour images with 256-wide 5x5 convs; here the widths are a
    parameter (``max_channels``, 64 by default: the widest layer's; they halve level by level) so
    that a Fashion-MNIST run fits in minutes on a CPU. The generator
    has batch norm (``batch_norm``, as in the DCGAN paper): without it, and with the seed's RMSprop
    settings, a trial on MNIST collapsed to blank images within six epochs. It starts from
    Glorot-uniform weights and zero biases (``init="glorot"``), the Keras default the seed trained
    with: from PyTorch's layer defaults it trailed a Keras DCGAN of the same size at equal epochs
    (benchmarks/results/gan-keras-choices.md: the initial weights, not the label noise or batch
    norm's momentum, made the difference).
    """

    spectral = False  # spectrally normalised discriminator layers (gan-sn's)

    def __init__(
        self,
        in_channels: int = 1,
        in_size: int = 28,
        latent_dim: int = 32,
        max_channels: int = 64,
        levels: int = 2,
        dropout: float = 0.4,
        batch_norm: bool = True,
    ) -> None:
        super().__init__()
        check_positive(
            in_channels=in_channels, in_size=in_size, latent_dim=latent_dim, max_channels=max_channels, levels=levels
        )
        if in_size % 2**levels:
            raise ValueError(f"input size {in_size} must be divisible by {2**levels} for {levels} levels")
        if max_channels % 2**levels:
            raise ValueError(f"max_channels {max_channels} must be divisible by {2**levels}")
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must lie in [0, 1), got {dropout}")
        self.input_shape = (in_channels, in_size, in_size)
        self.latent_dim = latent_dim
        self.generator = Generator(latent_dim, in_channels, in_size, max_channels, levels, batch_norm)
        self.discriminator = Discriminator(in_channels, in_size, max_channels, levels, dropout, spectral=self.spectral)

    def decode_latent(self, z: Tensor, labels: None = None) -> Tensor:  # (B, latent) -> (B, C, H, W) in [0, 1]
        refuse_labels(self.model_name, labels)
        if z.dim() != 2 or z.shape[1] != self.latent_dim:
            raise InputError(
                f"{self.model_name} takes latent points shaped (N, {self.latent_dim}), got {tuple(z.shape)}"
            )
        return (self._generator_for_samples()(z) + 1) / 2

    def _generator_for_samples(self) -> nn.Module:
        return self.generator

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None, labels: None = None) -> Tensor:
        """``n`` new images from latent points drawn from N(0, I): (n, C, H, W) in [0, 1]."""
        device = next(self.parameters()).device
        return self.decode_latent(torch.randn(n, self.latent_dim, generator=generator).to(device), labels)

    def update_ema(self) -> None:
        """After each generator step: nothing to average here (gan-sn keeps a moving average)."""

    def forward(self, z: Tensor) -> Tensor:
        return self.decode_latent(z)

    def example_inputs(self) -> tuple[Tensor, ...]:
        return (torch.zeros(1, self.latent_dim),)

    def layers(self, z: Tensor) -> Tensor:
        return (self._generator_for_samples()(z) + 1) / 2


@register_model(
    "gan-sn",
    "gan's generator trained by a modern recipe: spectrally normalised discriminator, hinge "
    "loss, two-timescale Adam (G 4e-4, D 8e-4, betas 0/0.9), samples from an EMA of the generator",
    family="gan",
    train=dict(
        optimizer="adam",
        lr=4e-4,
        d_lr=8e-4,
        batch_size=64,
        epochs=10,
        objective="hinge",
        adam_betas=(0.0, 0.9),
        clip_value=None,
    ),
)
class SNGAN(DCGAN):
    """`gan`'s generator (same size) with the recipe that published comparisons find stabilises
    GAN training and improves FID (Kurach et al., https://arxiv.org/abs/1807.04720):

    - spectral normalisation of every discriminator layer (Miyato et al., 2018), no dropout;
    - the hinge loss (Lim & Ye 2017; Miyato et al.), without label noise;
    - two timescales (Heusel et al., https://arxiv.org/abs/1706.08500): the discriminator learns
      at 2x the generator's rate (8e-4 and 4e-4), Adam with betas (0, 0.9) (SAGAN's), no clipping;
    - sampling from an exponential moving average of the generator's weights and batch-norm
      statistics (Yazici et al., https://arxiv.org/abs/1806.04498), ``ema_decay`` per step.

    The generator's rate and the decay were chosen by short runs on Fashion-MNIST
    (benchmarks/results/gan-sn-recipe.md, `benchmarks/gan_sn_recipe.py`): SAGAN's generator rate
    of 1e-4 learned too slowly for a run of minutes, and an average over the last ~1,000 steps
    (decay 0.999) lagged a generator that was still improving fast; decay 0.99 (about 100 steps)
    keeps the average close behind. With the moving average smoothing the generator, both rates
    doubled (from 2e-4 and 4e-4) gave fd_classifier 19.37 against 28.25 after 5 minutes of training,
    while a wider or deeper discriminator or batch 128 did worse in the same time
    (benchmarks/results/gan-sn-discriminator.md, `benchmarks/gan_sn_discriminator.py`). The
    discriminator's size is a parameter (``d_channels``, its widest layer, default ``max_channels``;
    ``d_depth`` convolutions per level, the extra ones 3x3 stride 1 as in SNGAN's standard CNN).
    """

    spectral = True

    def __init__(
        self,
        in_channels: int = 1,
        in_size: int = 28,
        latent_dim: int = 32,
        max_channels: int = 64,
        levels: int = 2,
        dropout: float = 0.0,
        batch_norm: bool = True,
        ema_decay: float = 0.99,
        d_channels: int | None = None,
        d_depth: int = 1,
    ) -> None:
        super().__init__(in_channels, in_size, latent_dim, max_channels, levels, dropout, batch_norm)
        if not 0 <= ema_decay < 1:
            raise ValueError(f"ema_decay must lie in [0, 1), got {ema_decay}")
        d_channels = d_channels or max_channels
        check_positive(d_channels=d_channels, d_depth=d_depth)
        if d_channels % 2**levels:
            raise ValueError(f"d_channels {d_channels} must be divisible by {2**levels}")
        if (d_channels, d_depth) != (max_channels, 1):  # the discriminator's own size
            self.discriminator = Discriminator(
                in_channels, in_size, d_channels, levels, dropout, spectral=True, depth=d_depth
            )
        self.generator_ema = AveragedModel(
            self.generator, multi_avg_fn=get_ema_multi_avg_fn(ema_decay), use_buffers=True
        )

    @torch.no_grad()
    def update_ema(self) -> None:
        """Move the averaged generator toward the trained one (after each generator step)."""
        self.generator_ema.update_parameters(self.generator)

    def _generator_for_samples(self) -> nn.Module:  # samples come from the moving average
        return self.generator_ema.module
