"""The parts an anomaly score is made of, and the methods that sum them.

Each part is an ``nn.Module`` that learns from normal images (:meth:`Part.fit`), scores what an
autoencoder saw of other images (:meth:`Part.forward`: (N,) scores, higher: more anomalous) and
keeps its state in a detector file under its own keys (:meth:`Part.state`, :meth:`Part.load`).
What a part sees of N images is a :class:`Seen`: the images, their squared-error maps and the
autoencoder's codes. A method (:data:`METHODS`) is a named tuple of parts; with more than the
reconstruction error, each part is standardised by its mean and spread on the normal images and
the parts are summed. A new method is one :class:`Part` subclass in :data:`PARTS` and one line
in :data:`METHODS`.
"""

from __future__ import annotations

import typing
from typing import Literal, NamedTuple

import torch
from torch import Tensor, nn

from ..errors import AelabError
from ..transformations import TransformationNet, fit_transformation_net, transformation_score, transformation_scores

Score = Literal["normalised", "mse"]  # the reconstruction error divided by each pixel's normal error, or plain
SCORES = typing.get_args(Score)
CANDIDATES = 4  # rows kept beyond the k nearest found in float32, their distances then summed exactly
NEIGHBOURS = 5  # k of the nearest-neighbour distances (chosen on validation images: benchmarks/anomaly_validation.py)
EPS = 1e-4  # added to each pixel's normal error before dividing by it (squared [0, 1] units)


class Seen(NamedTuple):
    """What the autoencoder made of N images: the images (N, C, H, W), their squared errors
    averaged over the channels (N, H, W), and their codes (N, ...)."""

    images: Tensor
    errors: Tensor
    codes: Tensor


class Part(nn.Module):
    """One part of an anomaly score."""

    name = ""

    def fit(self, normal: Seen, reference: Seen, seed: int, device: torch.device) -> None:
        """Learn from ``normal`` images (those the threshold is set on) and a ``reference`` of
        normal images (the training images, or ``normal`` itself); ``device``: the autoencoder's."""

    def forward(self, seen: Seen, leave_out: bool = False) -> Tensor:
        """Scores (N,); ``leave_out``: the images are the reference itself, each left out of its own."""
        raise NotImplementedError

    def state(self) -> dict[str, Tensor]:
        """The tensors a detector file keeps of this part, under their keys in the file."""
        return {}

    def load(self, tensors: dict[str, Tensor], path: object) -> None:
        """This part from a detector file's tensors (:meth:`state`'s keys)."""

    def needs(self) -> list[str]:
        """The keys :meth:`load` cannot do without."""
        return list(self.state())

    def _fitted(self, *values: object) -> None:
        if any(value is None for value in values):
            raise AelabError(f"the {self.name} part of the score is not fitted yet: fit the detector first")


class Reconstruction(Part):
    """The mean squared reconstruction error; ``normalised``: each pixel's error divided by that
    pixel's mean error on the normal images (an error where normal images are always
    reconstructed well counts more than one where they vary)."""

    name = "reconstruction"

    def __init__(self, normalised: bool = True) -> None:
        super().__init__()
        self.normalised = normalised
        self.register_buffer("pixel_errors", None)  # (H, W): the normal images' mean squared error per pixel

    def fit(self, normal: Seen, reference: Seen, seed: int, device: torch.device) -> None:
        self.pixel_errors = normal.errors.mean(dim=0)

    def forward(self, seen: Seen, leave_out: bool = False) -> Tensor:
        errors = seen.errors
        if self.normalised:
            self._fitted(self.pixel_errors)
            errors = errors / (self.pixel_errors + EPS)
        return errors.flatten(1).mean(dim=1)

    def state(self) -> dict[str, Tensor]:
        return {} if self.pixel_errors is None else {"pixel_errors": self.pixel_errors.float()}

    def load(self, tensors: dict[str, Tensor], path: object) -> None:
        self.pixel_errors = tensors.get("pixel_errors")

    def needs(self) -> list[str]:
        return []  # (files of plain "mse" detectors may lack it)


class Neighbours(Part):
    """The mean distance to the :data:`NEIGHBOURS` nearest reference images, in one view of them
    (nearest-neighbour anomaly detection: Bergman, Cohen and Hoshen, 2020)."""

    key = ""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("reference", None)

    def view(self, seen: Seen) -> Tensor:
        raise NotImplementedError

    def fit(self, normal: Seen, reference: Seen, seed: int, device: torch.device) -> None:
        # a clone: codes made in inference mode could not be a traced (exported) graph's constants
        self.reference = self.view(reference).flatten(1).clone()

    def forward(self, seen: Seen, leave_out: bool = False) -> Tensor:
        self._fitted(self.reference)
        chunk = 0 if torch.jit.is_tracing() else 512  # an exported graph: all at once
        return neighbour_distance(self.view(seen).flatten(1), self.reference, NEIGHBOURS, leave_out, chunk)

    def state(self) -> dict[str, Tensor]:
        return {} if self.reference is None else {self.key: self.reference.contiguous()}

    def needs(self) -> list[str]:
        return [self.key]

    def load(self, tensors: dict[str, Tensor], path: object) -> None:
        self.reference = tensors[self.key].float()


class PixelNeighbours(Neighbours):
    """Distances between the images' pixels."""

    name, key = "pixel neighbours", "reference_pixels"

    def view(self, seen: Seen) -> Tensor:
        return seen.images


class CodeNeighbours(Neighbours):
    """Distances between the autoencoder's codes of the images."""

    name, key = "code neighbours", "reference_codes"

    def view(self, seen: Seen) -> Tensor:
        return seen.codes


class Transformations(Part):
    """How badly a small network, trained on the reference images to tell which of 20 rotations and
    translations an image went through, tells them on each image (GEOM: :mod:`aelab.transformations`)."""

    name = "transformations"
    prefix = "transformations."

    def __init__(self) -> None:
        super().__init__()
        self.net: nn.Module | None = None

    def fit(self, normal: Seen, reference: Seen, seed: int, device: torch.device) -> None:
        self.net = fit_transformation_net(reference.images.to(device), seed=seed)

    def forward(self, seen: Seen, leave_out: bool = False) -> Tensor:
        self._fitted(self.net)
        if torch.jit.is_tracing():
            return transformation_score(self.net, seen.images)
        return transformation_scores(self.net, seen.images)

    def state(self) -> dict[str, Tensor]:
        if self.net is None:
            return {}
        return {self.prefix + k: v.detach().cpu().contiguous() for k, v in self.net.state_dict().items()}

    def needs(self) -> list[str]:
        return [self.prefix + "net.0.weight"]

    def load(self, tensors: dict[str, Tensor], path: object) -> None:
        from ..runs import load_state

        weights = {k.removeprefix(self.prefix): v for k, v in tensors.items() if k.startswith(self.prefix)}
        first = weights["net.0.weight"]  # (width, channels, 3, 3): the network's width and channels
        net = TransformationNet(first.shape[1] if first.dim() == 4 else 1, first.shape[0] if first.dim() else 1)
        load_state(net, weights, path)
        self.net = net.to(memory_format=torch.channels_last).eval()


PARTS: dict[str, type[Part]] = {
    "reconstruction": Reconstruction,
    "pixels": PixelNeighbours,
    "codes": CodeNeighbours,
    "transformations": Transformations,
}


class Method(NamedTuple):
    """A method: its parts (names in :data:`PARTS`), standardised and summed unless it is the
    reconstruction error alone."""

    parts: tuple[str, ...]
    standardised: bool = True

    @property
    def uses_reference(self) -> bool:
        """Whether it learns from reference images beyond the normal images' reconstruction errors."""
        return any(PARTS[name] is not Reconstruction for name in self.parts)


METHODS: dict[str, Method] = {
    "reconstruction": Method(("reconstruction",), standardised=False),
    "neighbours": Method(("reconstruction", "pixels", "codes")),
    "transformations": Method(("transformations",)),
    # the reconstruction error left out: it adds nothing the two distances do not measure, and
    # summed with them it scored lower on validation images (benchmarks/results/anomaly.md)
    "combined": Method(("pixels", "codes", "transformations")),
}
# the parts a method summed in detector files that do not list their own (written before it changed)
FORMER_PARTS: dict[str, tuple[str, ...]] = {"combined": ("reconstruction", "pixels", "codes", "transformations")}
DEFAULT_METHOD = (
    "combined"  # the most accurate at its cost (benchmarks/results/anomaly.md); every entry point's default
)
MethodName = Literal[tuple(METHODS)]  # the registry's names, for signatures (and the CLI's choices)


def neighbour_distance(queries: Tensor, reference: Tensor, k: int, leave_out: bool = False, chunk: int = 512) -> Tensor:
    """Each query's mean Euclidean distance to its ``k`` nearest rows of ``reference``, in float64
    (in ``chunk``s of queries; 0: all at once, as an exported graph does); ``leave_out``: the
    queries are the reference, each skipping itself.

    The nearest rows are found in float32 by the squared distances' expansion about the reference's
    mean (|q|^2 - 2 q.r + |r|^2: one matrix product, where centring cancels least), keeping a few
    more than needed; their distances are then summed from the differences themselves, which lose
    nothing to cancellation (an image's distance to itself is exactly 0)."""
    k = min(k, len(reference) - int(leave_out))
    keep = min(len(reference), k + int(leave_out) + CANDIDATES)
    queries, reference = queries.float(), reference.float()
    centre = reference.mean(dim=0)
    centred = reference - centre
    squared = centred.square().sum(dim=1)
    means = []
    for part in queries.split(chunk) if chunk else [queries]:
        near = part - centre
        d2 = near.square().sum(dim=1, keepdim=True) - 2 * near @ centred.T + squared
        candidates = (-d2).topk(keep, dim=1).indices  # (n, keep): the nearest, and a few beyond
        distances = (part[:, None, :] - reference[candidates]).square().sum(dim=2).double().sqrt()
        nearest = distances.topk(k + int(leave_out), dim=1, largest=False).values
        means.append(nearest[:, int(leave_out) :].mean(dim=1))
    return torch.cat(means)
