"""Seed 4: the CNTK deconvolution and unpooling autoencoder (004_e590e217627c08ab.txt)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..registry import register_model, register_preset
from .base import AEOutput, Autoencoder
from .blocks import check_positive

CNTK = dict(loss="mse", optimizer="adam", lr=1e-3, batch_size=64, epochs=20, init="glorot")  # CNTK's default init


@register_model(
    "conv-unpool",
    "seed-4 CNTK autoencoder: 5x5 conv, 4x4 max-pool, max-unpool with the pool's switches, 5x5 deconv; code 7x7x1",
    train=CNTK,
    renamed={"maps": "channels"},
)
class UnpoolAutoencoder(Autoencoder):
    """CNTK's 07_Deconvolution example: conv -> max-pool; max-unpool -> deconv, per layer.

    Each encoder layer is a 5x5 'same' conv with ``channels[i]`` feature maps and ReLU, then a
    ``pool`` x ``pool`` max-pool with stride ``pool``. The decoder undoes them in reverse: max-
    unpooling that puts each value back where its pool found it (the pool's own indices, CNTK's
    "switches"), then a 5x5 transposed conv back to the layer's input width. The last transposed
    conv has no bias, as in the example; the output is linear and trained on squared error (the
    example's RMSE criterion). ``channels=(1,)``, ``pool=4`` gives the 7x7x1 code of the example;
    ``channels=(5, 1)``, ``pool=2`` its two-layer variant.

    Without the encoder's switches (``decode`` of a code from elsewhere) each value goes to the
    top-left of its window: a documented approximation, since the switches are part of the code.
    """

    def __init__(
        self, in_channels: int = 1, in_size: int = 28, channels: tuple[int, ...] = (1,), pool: int = 4
    ) -> None:
        super().__init__()
        check_positive(in_channels=in_channels, in_size=in_size, channels=channels, pool=pool)
        if in_size % pool ** len(channels):
            raise ValueError(
                f"pool {pool} does not divide the input size {in_size} "
                f"{len(channels)} time(s); choose a pool such that {in_size} % pool**{len(channels)} == 0"
            )
        self.input_shape = (in_channels, in_size, in_size)
        self.output = "linear"
        self.decodes_from_code_alone = False
        self.pool = pool
        widths = [in_channels, *channels]
        self.convs = nn.ModuleList(nn.Conv2d(a, b, 5, padding=2) for a, b in zip(widths, widths[1:]))
        self.deconvs = nn.ModuleList(
            nn.ConvTranspose2d(b, a, 5, padding=2, bias=i > 0) for i, (a, b) in enumerate(zip(widths, widths[1:]))
        )

    def encode_with_switches(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        switches = []
        for conv in self.convs:
            x, indices = F.max_pool2d(torch.relu(conv(x)), self.pool, self.pool, return_indices=True)
            switches.append(indices)
        return x, switches

    def _encode(self, x: Tensor) -> Tensor:  # (B, C, H, W) -> (B, channels[-1], H/pool^n, W/pool^n)
        return self.encode_with_switches(x)[0]

    def _decode_logits(self, z: Tensor, switches: list[Tensor] | None = None) -> Tensor:
        for level in reversed(range(len(self.convs))):
            if switches is None:
                z = F.interpolate(z, scale_factor=self.pool, mode="nearest")
                corner = torch.zeros_like(z)
                corner[..., :: self.pool, :: self.pool] = 1
                z = z * corner
            else:
                size = switches[level].shape[-1] * self.pool
                z = F.max_unpool2d(z, switches[level], self.pool, self.pool, output_size=(size, size))
            z = self.deconvs[level](z)
        return z

    def _forward(self, x: Tensor) -> AEOutput:
        z, switches = self.encode_with_switches(x)
        logits = self._decode_logits(z, switches)
        return AEOutput(logits=logits, z=z, output=self.output)


register_preset(
    "conv-unpool-2",
    "conv-unpool",
    "seed-4 two-layer variant: 5 then 1 channels, 2x2 pools (code 7x7x1)",
    channels=(5, 1),
    pool=2,
)
