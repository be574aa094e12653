"""Fully connected autoencoders of seed 2 (002_47e7ec408257ba05.txt), and tied weights (seed 3)."""

from __future__ import annotations

import math

import torch.nn.functional as F
from torch import Tensor, nn

from ..registry import register_model, register_preset
from .base import Autoencoder
from .blocks import activation, check_positive

# Keras' layers start from Glorot-uniform weights and zero biases (init="glorot"), as in the seeds
KERAS_MSE = dict(loss="mse", optimizer="adam", lr=1e-3, batch_size=256, epochs=50, init="glorot")
# the seed's programme examples: optimizer='adadelta' (Keras 2 default lr 1.0), binary cross-entropy
KERAS_BLOG = dict(loss="bce", optimizer="adadelta", lr=1.0, batch_size=256, epochs=50, init="glorot")


@register_model(
    "dense", "seed-2 vanilla autoencoder: 784-64-784, ReLU code, sigmoid output, Adam, MSE", train=KERAS_MSE
)
class DenseAutoencoder(Autoencoder):
    """Flatten -> hidden layers -> code -> mirrored hidden layers -> sigmoid image.

    ``hidden=()`` is the seed's "vanilla" 784-64-784; ``hidden=(128,)`` its 784-128-64-128-784.
    Every layer uses ``act`` (ReLU in the seed, the code included).
    """

    def __init__(
        self,
        in_channels: int = 1,
        in_size: int = 28,
        code_size: int = 64,
        hidden: tuple[int, ...] = (),
        act: str = "relu",
    ) -> None:
        super().__init__()
        check_positive(in_channels=in_channels, in_size=in_size, code_size=code_size)
        if hidden:
            check_positive(hidden=hidden)
        self.input_shape = (in_channels, in_size, in_size)
        widths = [math.prod(self.input_shape), *hidden, code_size]
        self.encoder = self._stack(widths, act, last_act=True)
        self.decoder = self._stack(list(reversed(widths)), act, last_act=False)

    @staticmethod
    def _stack(widths: list[int], act: str, last_act: bool) -> nn.Sequential:
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(widths, widths[1:])):
            layers.append(nn.Linear(a, b))
            if i < len(widths) - 2 or last_act:
                layers.append(activation(act))
        return nn.Sequential(*layers)

    def _encode(self, x: Tensor) -> Tensor:  # (B, C, H, W) -> (B, code_size)
        return self.encoder(x.flatten(1))

    def _decode_logits(self, z: Tensor) -> Tensor:  # (B, code_size) -> (B, C, H, W)
        return self.decoder(z).view(-1, *self.input_shape)


register_preset(
    "dense-32",
    "dense",
    "seed-2 programme example: 784-32-784, Adadelta, BCE, 50 epochs, batch 256",
    train=KERAS_BLOG,
    code_size=32,
)
register_preset(
    "deep", "dense", "seed-2 multilayer autoencoder: 784-128-64-128-784, Adam, MSE", train=KERAS_MSE, hidden=(128,)
)
register_preset(
    "deep-32",
    "dense",
    "seed-2 deep example: 784-128-64-32-64-128-784 (the intended symmetric network), Adadelta, BCE",
    train=KERAS_BLOG,
    hidden=(128, 64),
    code_size=32,
)
register_preset(
    "sparse",
    "dense",
    "seed-2 sparse autoencoder: dense with an L1 activity penalty 1e-4 on the code",
    train={**KERAS_MSE, "sparsity": 1e-4},
)
register_preset(
    "sparse-32",
    "dense",
    "Keras-blog sparse autoencoder: 784-32-784, L1 1e-4, Adadelta, BCE, 100 epochs",
    train={**KERAS_BLOG, "sparsity": 1e-4, "epochs": 100},
    code_size=32,
)


@register_model(
    "tied", "dense autoencoder with tied weights: the decoder reuses the encoder's, transposed", train=KERAS_MSE
)
class TiedAutoencoder(DenseAutoencoder):
    """A dense autoencoder whose decoder reuses the encoder's weights, transposed (seed 3's shared
    weights: one layer object used twice). Only the decoder's biases are its own."""

    def __init__(
        self,
        in_channels: int = 1,
        in_size: int = 28,
        code_size: int = 64,
        hidden: tuple[int, ...] = (),
        act: str = "relu",
    ) -> None:
        super().__init__(in_channels, in_size, code_size, hidden, act)
        linears = [m for m in self.encoder if isinstance(m, nn.Linear)]
        self.decoder = nn.ParameterList(nn.Parameter(layer.weight.new_zeros(layer.in_features)) for layer in linears)
        self.linears = linears
        self.act_name = act

    def _decode_logits(self, z: Tensor) -> Tensor:  # (B, code_size) -> (B, C, H, W)
        act = activation(self.act_name)
        for i, (layer, bias) in enumerate(zip(reversed(self.linears), reversed(list(self.decoder)))):
            z = F.linear(z, layer.weight.t(), bias)
            if i < len(self.linears) - 1:
                z = act(z)
        return z.view(-1, *self.input_shape)
