"""Layers the convolutional models share: activations by name and conv blocks."""

from __future__ import annotations

from torch import nn

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "identity": nn.Identity,
}


def activation(name: str) -> nn.Module:
    """A fresh activation module by name; unknown names raise ``ValueError`` listing the valid ones."""
    try:
        return ACTIVATIONS[name]()
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; choose one of: {', '.join(ACTIVATIONS)}") from None


def conv_block(in_channels: int, out_channels: int, act: str = "relu", kernel_size: int = 3,
               padding: int | str = "same") -> nn.Sequential:
    """Conv (Keras/TF 'same' padding by default) followed by an activation."""
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, kernel_size, padding=padding), activation(act))


def check_positive(**values: int | tuple[int, ...]) -> None:
    """Raise ``ValueError`` naming the first size that is not a positive integer."""
    for name, value in values.items():
        items = value if isinstance(value, tuple) else (value,)
        if not items or any(not isinstance(v, int) or v < 1 for v in items):
            raise ValueError(f"{name} must be positive integer(s), got {value!r}")
