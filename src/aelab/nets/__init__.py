"""Plain ``nn.Module`` networks, one file per family; importing this package registers them all."""

from . import conv, dense, gan, labelled, text, unpool, vae  # noqa: F401
from .base import AEOutput, Autoencoder

__all__ = ["AEOutput", "Autoencoder"]
