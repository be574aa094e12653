"""What the networks declare: the interfaces that every tool asks for, by type, never by probing.

- :class:`Network`: every registered model: ``example_inputs()`` (one blank input of the kind
  it takes) and ``layers(*inputs)``, its forward without the input checks (for summaries, graphs
  and ONNX export).
- :class:`Autoencoder`: ``encode``, ``decode``, ``reconstruct`` (and ``encoder_part``/``decoder_part``).
- :class:`Generative`: ``sample(n, generator=None, labels=None)`` and ``decode_latent(z, labels=None)``.
- :class:`Conditional`: the model takes each image's class label (``classes`` of them).
- :class:`Classifier`: ``classify(x)``, class probabilities from a classifier head.
- :class:`TextModel`: ``generate(prompt, length, temperature, generator)``, next characters.

One system per family (:mod:`aelab.families`) trains each kind, and one test sweeps them all.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
from torch import Tensor, nn

from ..arrays import whole_number_pixels
from ..errors import InputError


@dataclass
class AEOutput:
    """What every autoencoder's forward returns."""

    logits: Tensor  # (B, C, H, W) reconstruction before the output activation
    z: Tensor  # the code, (B, ...) as the model lays it out (a VAE's sampled z while training)
    mean: Tensor | None = None  # VAEs: the posterior's mean, (B, latent)
    logvar: Tensor | None = None  # VAEs: the posterior's log-variance, (B, latent)
    output: Literal["sigmoid", "linear"] = "sigmoid"  # the model's output activation
    class_logits: Tensor | None = None  # models with a classifier head: (B, classes)
    # loss terms the network itself adds (a VQ-VAE's commitment, its prior's likelihood): the
    # system adds each to the training loss and logs it by name, so a new kind of network needs
    # no new slot here
    terms: dict[str, Tensor] = field(default_factory=dict)
    stats: dict[str, Tensor] = field(default_factory=dict)  # logged per epoch, not trained on (codebook perplexity)

    @property
    def recon(self) -> Tensor:
        """(B, C, H, W) reconstruction in image space, computed when asked: training on BCE
        needs only the logits."""
        return torch.sigmoid(self.logits) if self.output == "sigmoid" else self.logits


class Network(nn.Module):
    """Every registered model. ``registry_name`` and ``params`` are set by ``create_model``."""

    registry_name: str
    params: dict

    def example_inputs(self) -> tuple[Tensor, ...]:
        """One blank input of the kind the model takes (batch of 1)."""
        raise NotImplementedError

    def layers(self, *inputs: Tensor):
        """The forward pass without the input checks, which would otherwise appear in graphs and
        exported files."""
        return self(*inputs)

    @property
    def model_name(self) -> str:
        return getattr(self, "registry_name", type(self).__name__)


class Conditional:
    """A model that takes each image's class label beside the image or code (``classes`` classes)."""

    classes: int


def refuse_labels(model_name: str, labels: object) -> None:
    """The one message for labels given to a model that takes none (its methods, the tools)."""
    if labels is not None:
        raise InputError(f"{model_name} takes no labels (only conditional models, such as cvae, do)")


def check_classes(model_name: str, classes: int, low: int, high: int, what: str = "") -> None:
    """The one message for labels from ``low`` to ``high`` outside a conditional model's classes
    0 to ``classes`` - 1; ``what`` names the option they came from."""
    if not 0 <= low <= high < classes:
        got = str(low) if low == high else f"labels from {low} to {high}"
        raise InputError(f"{what + ': ' if what else ''}{model_name} knows the classes 0 to {classes - 1}, got {got}")


class Classifier:
    """A model with a classifier head."""

    classes: int

    def classify(self, x: Tensor) -> Tensor:
        """Class probabilities (N, classes) of images ``x``."""
        raise NotImplementedError


class Generative:
    """A model that draws new images from a prior over a ``latent_dim``-dimensional space."""

    latent_dim: int

    def sample(self, n: int, generator: torch.Generator | None = None, labels: Tensor | int | None = None) -> Tensor:
        """``n`` new images (n, C, H, W) in [0, 1]; a conditional model's of class ``labels``."""
        raise NotImplementedError

    def decode_latent(self, z: Tensor, labels: Tensor | int | None = None) -> Tensor:
        """Images in [0, 1] from latent points (N, latent_dim)."""
        raise NotImplementedError


class TextModel:
    """A next-character model over ``alphabet``, reading windows of ``maxlen`` characters."""

    alphabet: str
    maxlen: int
    step: int

    def generate(
        self, prompt: Tensor, length: int, temperature: float, generator: torch.Generator | None = None
    ) -> list[int]:
        """``length`` character indices drawn after ``prompt`` at ``temperature``."""
        raise NotImplementedError


class Autoencoder(Network):
    """An encoder and a decoder around a code.

    Subclasses set ``input_shape`` (C, H, W) and implement ``_encode`` and ``_decode_logits``
    (and ``_forward`` where the decoder needs more than the code). The public ``encode``,
    ``decode``, ``forward`` and ``reconstruct`` check what they are given first: images must be
    (N, C, H, W) (or (N, H, W) for one channel) in the model's shape, float in [0, 1] or uint8
    (divided by 255); anything else is an :class:`InputError` naming the problem. The value range
    is checked outside training only (the data loaders have checked the training data).

    ``output`` is ``"sigmoid"`` for models whose outputs are probabilities per pixel (trained
    with BCE on the logits or MSE on the probabilities), ``"linear"`` for models that regress
    pixel values directly (the CNTK deconvolution example, trained on squared error).
    """

    input_shape: tuple[int, int, int]
    output: Literal["sigmoid", "linear"] = "sigmoid"
    # False where forward passes the decoder more than the code (the unpooling model's switches)
    decodes_from_code_alone: bool = True
    classes: int = 0

    @property
    def conditional(self) -> bool:
        """True where the encoder and the decoder also take each image's class label (cvae): the
        public methods then need ``labels`` and hand them to ``_encode``/``_decode_logits``/``_forward``."""
        return isinstance(self, Conditional)

    def _encode(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def _decode_logits(self, z: Tensor) -> Tensor:
        raise NotImplementedError

    def _forward(self, x: Tensor) -> AEOutput:
        z = self._encode(x)
        return AEOutput(logits=self._decode_logits(z), z=z, output=self.output)

    # ------------------------------------------------------------------ the checked interface

    def encode(self, x: Tensor, labels: Tensor | int | None = None) -> Tensor:
        """Codes of images (N, C, H, W) in [0, 1] (and, for a conditional model, their labels)."""
        x = self.check_images(x)
        return self._encode(x, *self.check_labels(labels, len(x)))

    def decode_logits(self, z: Tensor, labels: Tensor | int | None = None) -> Tensor:
        z = self.check_code(z)
        return self._decode_logits(z, *self.check_labels(labels, len(z)))

    def decode(self, z: Tensor, labels: Tensor | int | None = None) -> Tensor:
        """Images in [0, 1] (linear-output models may overshoot slightly) from codes."""
        return self.to_image(self.decode_logits(z, labels))

    def forward(self, x: Tensor, labels: Tensor | int | None = None) -> AEOutput:
        x = self.check_images(x)
        return self._forward(x, *self.check_labels(labels, len(x)))

    def reconstruct(self, x: Tensor, labels: Tensor | int | None = None) -> Tensor:
        """(N, C, H, W) reconstructions of images in [0, 1]."""
        return self.forward(x, labels).recon

    def check_labels(self, labels: Tensor | int | None, n: int) -> tuple[Tensor, ...]:
        """What a conditional model's inner methods take besides the images or codes: ``(labels,)``
        as (n,) class numbers (one int stands for all n); ``()`` for the other models."""
        if not self.conditional:
            refuse_labels(self.model_name, labels)
            return ()
        if labels is None:
            raise InputError(f"{self.model_name} needs each image's class label (0 to {self.classes - 1})")
        device = next(self.parameters()).device
        if isinstance(labels, int) and not isinstance(labels, bool):
            labels = torch.full((n,), labels, dtype=torch.long)
        if isinstance(labels, np.ndarray):
            labels = torch.from_numpy(labels)
        if not isinstance(labels, Tensor) or labels.shape != (n,) or labels.is_floating_point():
            shape = tuple(labels.shape) if isinstance(labels, Tensor) else type(labels).__name__
            raise InputError(f"{self.model_name} takes one integer label per image, shaped ({n},), got {shape}")
        if n:
            check_classes(self.model_name, self.classes, int(labels.min()), int(labels.max()))
        return (labels.long().to(device),)

    def encoder_part(self) -> EncoderPart:
        """The encoder as a module of its own (images -> codes), sharing this model's weights: a
        layer to put in another network."""
        return EncoderPart(self)

    def decoder_part(self) -> DecoderPart:
        """The decoder as a module of its own (codes -> images in [0, 1]), sharing the weights."""
        if not self.decodes_from_code_alone:
            raise InputError(f"{self.model_name}'s decoder needs more than the code (the encoder's pooling switches)")
        return DecoderPart(self)

    def to_image(self, logits: Tensor) -> Tensor:
        return torch.sigmoid(logits) if self.output == "sigmoid" else logits

    def check_images(self, x: Tensor | np.ndarray) -> Tensor:
        """``x`` as float images this model takes, or an :class:`InputError` saying what is wrong."""
        if isinstance(x, np.ndarray):
            x = torch.from_numpy(x)
        if not isinstance(x, Tensor):
            raise InputError(f"{self.model_name} takes images as a tensor or numpy array, got {type(x).__name__}")
        if not x.is_floating_point() and x.dtype != torch.bool:  # whole numbers of any width
            x = whole_number_pixels(x, self.model_name)
        c, h, w = self.input_shape
        if x.dim() == 3 and c == 1:
            x = x.unsqueeze(1)
        if x.dim() == 4 and x.shape[-1] == c and x.shape[1] != c:  # (N, H, W, C), as training takes it
            x = x.permute(0, 3, 1, 2)
        if x.dim() != 4 or tuple(x.shape[1:]) != self.input_shape:
            raise InputError(
                f"{self.model_name} takes images shaped (N, {c}, {h}, {w}) or (N, {h}, {w}, {c}), got {tuple(x.shape)}"
            )
        if not x.is_floating_point():
            raise InputError(
                f"{self.model_name} takes images as numbers: floats in [0, 1] or whole numbers 0-255, got {x.dtype}"
            )
        if x.dtype != torch.float32:  # numpy's float64, half precision: the weights are float32
            x = x.float()
        if not self.training and x.numel():
            low, high = torch.aminmax(x.detach())
            if not (0 <= float(low) and float(high) <= 1):  # also refuses NaN
                raise InputError(
                    f"{self.model_name} takes pixel values in [0, 1], got values from {float(low):g} to "
                    f"{float(high):g} (divide 0-255 images by 255, or pass them as uint8)"
                )
        return x

    def check_code(self, z: Tensor) -> Tensor:
        if not isinstance(z, Tensor) or z.dim() < 2 or tuple(z.shape[1:]) != self.code_shape():
            shape = tuple(z.shape) if isinstance(z, Tensor) else type(z).__name__
            raise InputError(
                f"{self.model_name} decodes codes shaped (N, {', '.join(map(str, self.code_shape()))}), got {shape}"
            )
        return z

    def example_inputs(self) -> tuple[Tensor, ...]:
        labels = (torch.zeros(1, dtype=torch.long),) if self.conditional else ()
        return (torch.zeros(1, *self.input_shape), *labels)

    def layers(self, *inputs: Tensor) -> AEOutput:
        return self._forward(*inputs)

    def layers_encode(self, x: Tensor, *labels: Tensor) -> Tensor:
        """The encoder without the input checks (what an exporter traces)."""
        return self._encode(x, *labels)

    def layers_decode(self, z: Tensor, *labels: Tensor) -> Tensor:
        """The decoder, to images, without the input checks."""
        return self.to_image(self._decode_logits(z, *labels))

    def code_shape(self) -> tuple[int, ...]:
        """Shape of one image's code, found once by encoding a blank input in eval mode."""
        if getattr(self, "_code_shape", None) is None:
            parameter = next(self.parameters())
            was_training = self.training
            self.eval()  # a probe must not move batch-norm statistics
            with torch.no_grad():
                probe = torch.zeros(1, *self.input_shape, device=parameter.device)
                extra = (torch.zeros(1, dtype=torch.long, device=parameter.device),) if self.conditional else ()
                self._code_shape = tuple(self._encode(probe, *extra).shape[1:])
            self.train(was_training)
        return self._code_shape

    def code_size(self) -> int:
        return math.prod(self.code_shape())


class EncoderPart(nn.Module):
    """An autoencoder's encoder as a plain module: ``forward(images[, labels]) -> codes``. Its
    parameters are the autoencoder's own (training it trains them)."""

    def __init__(self, model: Autoencoder) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor, labels: Tensor | int | None = None) -> Tensor:
        return self.model.encode(x, labels)


class DecoderPart(nn.Module):
    """An autoencoder's decoder as a plain module: ``forward(codes[, labels]) -> images``."""

    def __init__(self, model: Autoencoder) -> None:
        super().__init__()
        self.model = model

    def forward(self, z: Tensor, labels: Tensor | int | None = None) -> Tensor:
        return self.model.decode(z, labels)
