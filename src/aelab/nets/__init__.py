"""Plain ``nn.Module`` networks, one file per family; importing this package registers them all."""

from . import aae, betavae, conv, dense, gan, labelled, rae, text, unpool, vae, vqvae, wae  # noqa: F401  # noqa: F401  (the zoo: one name each)
from .base import AEOutput, Autoencoder

__all__ = ["AEOutput", "Autoencoder"]
