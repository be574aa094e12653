"""Convolutional autoencoders."""

from __future__ import annotations

import math

import torch.nn.functional as F
from torch import Tensor, nn

from ..registry import TrainDefaults, register_model, register_preset
from .base import Autoencoder
from .blocks import check_positive, conv_block


class ConvResizeAutoencoder(Autoencoder):
    """Seed 1 (001_002c14308da63b29.txt): conv + 'same' max-pool encoder, resize + conv decoder.

    Encoder: for each entry of ``channels`` a 3x3 conv, the activation and a 2x2 max-pool with
    TF 'same' padding (``ceil_mode``), so 28 -> 14 -> 7 -> 4 and the code is 4x4x8 = 128.
    Decoder: nearest-neighbour resize back through the encoder's sizes (7, 14, 28), each
    followed by a 3x3 conv and the activation with the channels reversed (8, 8, 16), then a
    3x3 conv to the input channels giving logits. Resizing instead of transposed convolution
    avoids checkerboard artefacts (Odena et al., https://distill.pub/2016/deconv-checkerboard/).
    """

    def __init__(self, in_channels: int = 1, in_size: int = 28, channels: tuple[int, ...] = (16, 8, 8),
                 act: str = "relu") -> None:
        super().__init__()
        check_positive(in_channels=in_channels, in_size=in_size, channels=channels)
        self.input_shape = (in_channels, in_size, in_size)
        self.sizes = [in_size]
        for _ in channels:
            self.sizes.append(math.ceil(self.sizes[-1] / 2))
        widths = [in_channels, *channels]
        self.encoder = nn.ModuleList(conv_block(a, b, act) for a, b in zip(widths, widths[1:]))
        self.pool = nn.MaxPool2d(2, ceil_mode=True)
        back = list(reversed(channels))
        self.decoder = nn.ModuleList(conv_block(a, b, act) for a, b in zip([channels[-1], *back], back))
        self.head = nn.Conv2d(back[-1], in_channels, 3, padding="same")

    def encode(self, x: Tensor) -> Tensor:  # (B, C, H, W) -> (B, c_last, h, w)
        for block in self.encoder:
            x = self.pool(block(x))
        return x

    def decode_logits(self, z: Tensor) -> Tensor:  # (B, c_last, h, w) -> (B, C, H, W)
        for block, size in zip(self.decoder, reversed(self.sizes[:-1])):
            z = block(F.interpolate(z, size=(size, size), mode="nearest"))
        return self.head(z)


@register_model("conv-resize", "seed-1 conv autoencoder: conv+max-pool 16-8-8, nearest resize+conv decoder, "
                "code 4x4x8", train=TrainDefaults(loss="bce", optimizer="adam", lr=1e-3, batch_size=200, epochs=20))
def conv_resize(in_channels: int = 1, in_size: int = 28, channels: tuple[int, ...] = (16, 8, 8),
                act: str = "relu") -> ConvResizeAutoencoder:
    return ConvResizeAutoencoder(in_channels, in_size, channels, act)


register_preset("conv-resize-denoise", "conv-resize",
                "seed-1 denoising autoencoder: conv-resize with 32-32-16 channels, trained on noise 0.5",
                train=TrainDefaults(loss="bce", optimizer="adam", lr=1e-3, batch_size=200, epochs=100, noise=0.5),
                channels=(32, 32, 16))
