"""Convolutional autoencoders: the seeds' models and our own ``conv-bottleneck`` (alias ``best``)."""

from __future__ import annotations

import math
from typing import Literal

import torch.nn.functional as F
from torch import Tensor, nn

from ..registry import register_alias, register_model, register_preset, validate_choice
from .base import Autoencoder
from .blocks import BlockKind, ImageConv2d, activation, check_positive, conv_block

NormPlacement = Literal["all", "coarse"]

# Keras 2's Adadelta default learning rate, which the seed's `optimizer='adadelta'` used
KERAS_ADADELTA = dict(loss="bce", optimizer="adadelta", lr=1.0, batch_size=256, epochs=50, init="glorot")


def pooled_sizes(size: int, levels: int) -> list[int]:
    """Sizes after each 2x2 max-pool with TF 'same' padding: 28 -> [28, 14, 7, 4]."""
    sizes = [size]
    for _ in range(levels):
        sizes.append(math.ceil(sizes[-1] / 2))
    return sizes


class PoolingAutoencoder(Autoencoder):
    """The encoder the seeds' conv models share: per entry of ``channels`` a 3x3 'same' conv block
    then a 2x2 max-pool ('same' padding, i.e. ``ceil_mode``, where ``ceil``). Subclasses add the decoder."""

    def __init__(
        self,
        in_channels: int,
        in_size: int,
        channels: tuple[int, ...],
        act: str,
        block: BlockKind,
        batch_norm: bool,
        ceil: bool = True,
    ) -> None:
        super().__init__()
        check_positive(in_channels=in_channels, in_size=in_size, channels=channels)
        self.input_shape = (in_channels, in_size, in_size)
        widths = [in_channels, *channels]
        self.encoder = nn.ModuleList(
            conv_block(a, b, act, block=block, batch_norm=batch_norm) for a, b in zip(widths, widths[1:])
        )
        self.pool = nn.MaxPool2d(2, ceil_mode=ceil)

    def _encode(self, x: Tensor) -> Tensor:  # (B, C, H, W) -> (B, c_last, h, w)
        for block in self.encoder:
            x = self.pool(block(x))
        return x


@register_model(
    "conv-resize",
    "seed-1 conv autoencoder: conv+max-pool 16-8-8, nearest resize+conv decoder, code 4x4x8",
    train=dict(loss="bce", optimizer="adam", lr=1e-3, batch_size=200, epochs=20, init="glorot"),
)
class ConvResizeAutoencoder(PoolingAutoencoder):
    """Seed 1 (001_002c14308da63b29.txt): conv + 'same' max-pool encoder, resize + conv decoder.

    Encoder: for each entry of ``channels`` a 3x3 conv, the activation and a 2x2 max-pool with
    TF 'same' padding (``ceil_mode``), so 28 -> 14 -> 7 -> 4 and the code is 4x4x8 = 128.
    Decoder: nearest-neighbour resize back through the encoder's sizes (7, 14, 28), each
    followed by a 3x3 conv and the activation with the channels reversed (8, 8, 16), then a
    3x3 conv to the input channels giving logits. Resizing instead of transposed convolution
    avoids checkerboard artefacts (Odena et al., https://distill.pub/2016/deconv-checkerboard/).
    """

    def __init__(
        self,
        in_channels: int = 1,
        in_size: int = 28,
        channels: tuple[int, ...] = (16, 8, 8),
        act: str = "relu",
        block: BlockKind = "plain",
        batch_norm: bool = False,
    ) -> None:
        super().__init__(in_channels, in_size, channels, act, block, batch_norm)
        self.sizes = pooled_sizes(in_size, len(channels))
        back = list(reversed(channels))
        self.decoder = nn.ModuleList(
            conv_block(a, b, act, block=block, batch_norm=batch_norm) for a, b in zip([channels[-1], *back], back)
        )
        self.head = ImageConv2d(back[-1], in_channels, 3, padding="same")

    def _decode_logits(self, z: Tensor) -> Tensor:  # (B, c_last, h, w) -> (B, C, H, W)
        for block, size in zip(self.decoder, reversed(self.sizes[:-1])):
            z = block(F.interpolate(z, size=(size, size), mode="nearest"))
        return self.head(z)


register_preset(
    "conv-resize-denoise",
    "conv-resize",
    "seed-1 denoising autoencoder: conv-resize with 32-32-16 channels, trained on noise 0.5",
    train=dict(loss="bce", optimizer="adam", lr=1e-3, batch_size=200, epochs=100, noise=0.5, init="glorot"),
    channels=(32, 32, 16),
)


@register_model(
    "conv",
    "seed-2 Keras conv autoencoder: conv+max-pool 16-8-8, conv+UpSampling2D 8-8-16 (one unpadded conv 16->14)",
    train=KERAS_ADADELTA,
)
class UpsamplingAutoencoder(PoolingAutoencoder):
    """Seed 2's Keras UpSampling2D autoencoder (002_47e7ec408257ba05.txt).

    Encoder: 3x3 conv + activation + 2x2 'same' max-pool per entry of ``channels`` (16-8-8:
    28 -> 14 -> 7 -> 4). Decoder: per level a 3x3 conv then 2x upsampling, widths reversed
    (8-8-16), then a 3x3 conv to the input channels. Doubling 4 gives 8 -> 16, not 14, so the
    seed makes the last decoder conv unpadded (16 -> 14) before the final upsampling to 28; here
    that choice follows from the input size (no unpadded conv where doubling lands exactly).
    With ``channels=(32, 32)`` this is the seed's two-pool denoising autoencoder.
    """

    def __init__(
        self,
        in_channels: int = 1,
        in_size: int = 28,
        channels: tuple[int, ...] = (16, 8, 8),
        act: str = "relu",
        block: BlockKind = "plain",
        batch_norm: bool = False,
    ) -> None:
        super().__init__(in_channels, in_size, channels, act, block, batch_norm)
        sizes = pooled_sizes(in_size, len(channels))
        before_last_upsample = sizes[-1] * 2 ** (len(channels) - 1)
        if before_last_upsample * 2 == in_size:
            last_padding = "same"
        elif (before_last_upsample - 2) * 2 == in_size:
            last_padding = 0  # the seed's unpadded conv: 16x16 -> 14x14
        else:
            raise ValueError(
                f"input size {in_size} cannot be rebuilt by 2x upsampling from {sizes[-1]}; use a size such as 28 or 32"
            )
        if last_padding == 0 and block == "residual":
            raise ValueError(
                "residual blocks cannot make the seed's unpadded conv; use block=plain, separable or inception"
            )
        back = list(reversed(channels))
        paddings = ["same"] * (len(back) - 1) + [last_padding]
        self.decoder = nn.ModuleList(
            conv_block(a, b, act, padding=p, block=block, batch_norm=batch_norm)
            for a, b, p in zip([channels[-1], *back], back, paddings)
        )
        self.head = ImageConv2d(back[-1], in_channels, 3, padding="same")

    def _decode_logits(self, z: Tensor) -> Tensor:  # (B, c_last, h, w) -> (B, C, H, W)
        for block in self.decoder:
            z = F.interpolate(block(z), scale_factor=2, mode="nearest")
        return self.head(z)


register_preset(
    "conv-denoise",
    "conv",
    "seed-2 Keras denoising autoencoder: two pools, 32-32 conv, noise 0.5",
    train={**KERAS_ADADELTA, "epochs": 10, "noise": 0.5},
    channels=(32, 32),
)


@register_model(
    "conv-transpose",
    "keras-io conv autoencoder: conv+max-pool 32-32, strided Conv2DTranspose decoder",
    train=dict(loss="bce", optimizer="adam", lr=1e-3, batch_size=128, epochs=50, init="glorot"),
)
class TransposeAutoencoder(PoolingAutoencoder):
    """The keras-io convolutional autoencoder (https://keras.io/examples/vision/autoencoder/):
    3x3 conv + 2x2 max-pool per level (32-32), then strided 3x3 Conv2DTranspose per level and a
    3x3 conv to the input channels. 'same' padding with stride 2 is padding 1 plus output padding 1.
    """

    def __init__(
        self,
        in_channels: int = 1,
        in_size: int = 28,
        channels: tuple[int, ...] = (32, 32),
        act: str = "relu",
        block: BlockKind = "plain",
        batch_norm: bool = False,
    ) -> None:
        super().__init__(in_channels, in_size, channels, act, block, batch_norm, ceil=False)
        if in_size % 2 ** len(channels):
            raise ValueError(
                f"input size {in_size} must be divisible by {2 ** len(channels)} for {len(channels)} pooling levels"
            )
        back = list(reversed(channels))
        self.decoder = nn.ModuleList(
            nn.Sequential(nn.ConvTranspose2d(a, b, 3, stride=2, padding=1, output_padding=1), activation(act))
            for a, b in zip([channels[-1], *back], back)
        )
        self.head = ImageConv2d(back[-1], in_channels, 3, padding="same")

    def _decode_logits(self, z: Tensor) -> Tensor:  # (B, c_last, h, w) -> (B, C, H, W)
        for block in self.decoder:
            z = block(z)
        return self.head(z)


register_preset(
    "conv-transpose-denoise",
    "conv-transpose",
    "keras-io denoising autoencoder: noise 0.4, 100 epochs",
    train=dict(loss="bce", optimizer="adam", lr=1e-3, batch_size=128, epochs=100, noise=0.4, init="glorot"),
)


@register_model(
    "conv-bottleneck",
    "aelab's own (alias best): residual conv encoder/decoder around a dense code of "
    "any size (--param code_size=N); beats PCA",
    train=dict(loss="mse", optimizer="adam", lr=3e-3, batch_size=128, epochs=30, schedule="cosine"),
    renamed={"batch_norm": "norm_at"},
    added_later={"norm_at": "all"},
)
class BottleneckAutoencoder(Autoencoder):
    """aelab's own: a residual conv encoder to a dense code of any size, and its mirror.

    Stride-2 convs downsample 28 -> 14 -> 7 (no pooling: the network learns what to keep), with
    ``blocks_per_level`` residual blocks per level, then a linear map to ``code_size`` values.
    The decoder mirrors it with nearest-neighbour upsampling + conv (no checkerboard artefacts)
    and ends in a sub-pixel convolution (Shi et al. 2016, https://arxiv.org/abs/1609.05158): the
    last conv runs at half resolution and a pixel shuffle lays its 4 outputs per position out as
    2x2 pixels, which saves the costliest full-size conv. Trained on MSE, which is what RMSE
    against PCA measures.

    ``norm_at`` says where batch normalisation goes. ``"all"``: after every conv. ``"coarse"``
    (the default): at the innermost, 7x7 level, and after the decoder's upsampling convs, which
    set the scale of the decoder's finer levels; in trials without those, the decoder's
    activations grew until the output sigmoid saturated and training stalled at a constant
    image. ``benchmarks/speed.py`` prints the time to quality of ``"coarse"`` beside ``"all"``.

    Widths 16-48 (and, in ``best``'s training defaults, Adam at 3e-3) for time to quality on a
    2-core CPU (benchmarks/speed.py): the 14x14 level is the narrow one, as a 3x3 conv's cost
    grows with the square of its width. ``--param channels=32,64`` is wider and slower an epoch.
    """

    def __init__(
        self,
        in_channels: int = 1,
        in_size: int = 28,
        code_size: int = 49,
        channels: tuple[int, ...] = (16, 48),
        act: str = "relu",
        blocks_per_level: int = 1,
        norm_at: NormPlacement = "coarse",
    ) -> None:
        super().__init__()
        check_positive(in_channels=in_channels, in_size=in_size, code_size=code_size, channels=channels)
        if in_size % 2 ** len(channels):
            raise ValueError(f"input size {in_size} must be divisible by {2 ** len(channels)}")
        validate_choice("norm_at", norm_at, NormPlacement)
        self.input_shape = (in_channels, in_size, in_size)
        side = in_size // 2 ** len(channels)
        self.inner = (channels[-1], side, side)
        # level i works on maps of side in_size / 2**(i + 1); the last level is the coarsest
        normed = [norm_at == "all" or i == len(channels) - 1 for i in range(len(channels))]

        def level(i: int) -> list[nn.Module]:
            return [
                conv_block(channels[i], channels[i], act, block="residual", batch_norm=normed[i])
                for _ in range(blocks_per_level)
            ]

        def conv_norm(a: int, i: int, norm: bool, stride: int = 1) -> list[nn.Module]:  # a channels to level i
            bn = [nn.BatchNorm2d(channels[i])] if norm else []
            return [nn.Conv2d(a, channels[i], 3, stride=stride, padding=1, bias=not norm), *bn, activation(act)]

        down: list[nn.Module] = []
        for i, a in enumerate([in_channels, *channels[:-1]]):
            down += conv_norm(a, i, normed[i], stride=2) + level(i)
        self.encoder = nn.Sequential(*down, nn.Flatten(), nn.Linear(math.prod(self.inner), code_size))
        self.expand = nn.Sequential(nn.Linear(code_size, math.prod(self.inner)), activation(act))
        up: list[nn.Module] = []
        for i in reversed(range(1, len(channels))):
            up += level(i) + [nn.Upsample(scale_factor=2, mode="nearest")] + conv_norm(channels[i], i - 1, True)
        up += level(0) + [nn.Conv2d(channels[0], in_channels * 4, 3, padding=1), nn.PixelShuffle(2)]
        self.decoder = nn.Sequential(*up)

    def _encode(self, x: Tensor) -> Tensor:  # (B, C, H, W) -> (B, code_size)
        return self.encoder(x)

    def _decode_logits(self, z: Tensor) -> Tensor:  # (B, code_size) -> (B, C, H, W)
        return self.decoder(self.expand(z).view(-1, *self.inner))


register_alias("best", "conv-bottleneck")
