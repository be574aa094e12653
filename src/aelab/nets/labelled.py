"""Seed 3's functional-API patterns on images (003_cc967e401ad40983.txt): a model with several
inputs (the image and its label: ``cvae``) and one with several outputs, each with its own loss
and loss weight (the reconstruction and a class: ``ae-classifier``)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..registry import register_model
from .base import AEOutput, Classifier, Conditional
from .blocks import activation, check_positive
from .conv import BottleneckAutoencoder, NormPlacement
from .vae import ConvVAE


@register_model(
    "cvae",
    "seed-3 VAE with two inputs: the image and its label (one-hot, joined to the encoder's "
    "features and to the code); draws a chosen class",
    train=dict(loss="bce", optimizer="adam", lr=1e-3, batch_size=128, epochs=30),
    family="cvae",
)
class ConditionalVAE(Conditional, ConvVAE):
    """A conditional VAE (Sohn et al. 2015, https://papers.nips.cc/paper/5775) built on seed 3's
    VAE: the same convolutions, dense layer and heads, with the label's one-hot vector joined to
    the flattened conv features before the dense layer and to the latent code before the
    decoder. The code then holds what the label does not say (style, thickness, slant), and
    ``sample(n, labels=k)`` draws class ``k``.
    """

    def __init__(
        self,
        in_channels: int = 1,
        in_size: int = 28,
        latent_dim: int = 2,
        hidden: tuple[int, ...] = (32,),
        act: str = "relu",
        classes: int = 10,
    ) -> None:
        check_positive(classes=classes)
        super().__init__(in_channels, in_size, latent_dim, hidden, act)
        self.classes = classes
        convs = list(self.features)[:9]  # seed 3's four convs and the flatten, without its dense layers
        widths = [math.prod(self.inner) + classes, *hidden]
        self.features = nn.Sequential(*convs)
        self.joint = nn.Sequential(
            *(layer for a, b in zip(widths, widths[1:]) for layer in (nn.Linear(a, b), activation(act)))
        )
        self.expand = nn.Sequential(nn.Linear(latent_dim + classes, math.prod(self.inner)), activation(act))

    def _one_hot(self, labels: Tensor, like: Tensor) -> Tensor:
        return F.one_hot(labels, self.classes).to(like.dtype)

    def posterior(self, x: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:  # -> 2 x (B, latent)
        h = self.features(x)
        h = self.joint(torch.cat([h, self._one_hot(labels, h)], dim=1))
        return self.to_mean(h), self.to_logvar(h)

    def _encode(self, x: Tensor, labels: Tensor) -> Tensor:
        return self.posterior(x, labels)[0]

    def _decode_logits(self, z: Tensor, labels: Tensor) -> Tensor:
        h = self.expand(torch.cat([z, self._one_hot(labels, z)], dim=1))
        return self.decoder(h.view(-1, *self.inner))

    def _forward(self, x: Tensor, labels: Tensor) -> AEOutput:
        mean, logvar = self.posterior(x, labels)
        z = mean + torch.exp(0.5 * logvar) * torch.randn_like(mean) if self.training else mean
        return AEOutput(logits=self._decode_logits(z, labels), z=z, mean=mean, logvar=logvar)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None, labels: Tensor | int | None = None) -> Tensor:
        """``n`` new images of class ``labels`` (an int, or one per image); without labels, of
        classes drawn uniformly."""
        if labels is None:
            labels = torch.randint(self.classes, (n,), generator=generator)
        device = next(self.parameters()).device
        z = torch.randn(n, self.latent_dim, generator=generator).to(device)
        return self.decode(z, labels)


@register_model(
    "ae-classifier",
    "two outputs from one code: aelab's best autoencoder plus a classifier head; "
    "reconstruction and cross-entropy losses with their own weights; semi-supervised",
    train=dict(
        loss="mse",
        optimizer="adam",
        lr=3e-3,
        batch_size=128,
        epochs=30,
        schedule="cosine",
        loss_weights={"recon": 1.0, "label": 0.01},
    ),
    family="classifier",
)
class AEClassifier(Classifier, BottleneckAutoencoder):
    """Seed 3's several-outputs model (its age / income / gender network) as an autoencoder: the
    code of ``best`` (the conv-bottleneck autoencoder) feeds both the decoder and a classifier
    head (dense ``head_width`` + ReLU + dropout, then one logit per class). Two losses, each with
    its weight (``--loss-weights recon=1,label=0.01``): the reconstruction's and the
    cross-entropy, the latter only on images that have a label, so part of the data may come
    without (``--labelled 0.1`` keeps 10% of the training labels).
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
        classes: int = 10,
        head_width: int = 128,
        dropout: float = 0.25,
    ) -> None:
        super().__init__(in_channels, in_size, code_size, channels, act, blocks_per_level, norm_at)
        check_positive(classes=classes, head_width=head_width)
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must lie in [0, 1), got {dropout!r}")
        self.classes = classes
        self.classifier = nn.Sequential(
            nn.Linear(code_size, head_width), activation(act), nn.Dropout(dropout), nn.Linear(head_width, classes)
        )

    def _forward(self, x: Tensor) -> AEOutput:
        z = self._encode(x)
        return AEOutput(logits=self._decode_logits(z), z=z, class_logits=self.classifier(z))

    @torch.no_grad()
    def classify(self, x: Tensor) -> Tensor:
        """Class probabilities (N, classes) of images ``x``."""
        return torch.softmax(self.classifier(self.encode(x)), dim=-1)
