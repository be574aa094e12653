"""One scoring path: an autoencoder and a method's parts, images in, anomaly scores out.

:class:`DetectorScore` serves :meth:`AnomalyDetector.decision_function` (images in batches,
:meth:`DetectorScore.see` then :meth:`DetectorScore.scores`), ``aelab score`` and an exported
detector (:meth:`DetectorScore.forward`, the graph ONNX traces): the same torch code for each.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..errors import AelabError
from ..metrics import reconstruct as reconstruct_batches
from .parts import METHODS, PARTS, Part, Reconstruction, Seen


class DetectorScore(nn.Module):
    """``model``'s anomaly scores by ``method`` (a name in :data:`~aelab.anomaly.parts.METHODS`);
    ``normalised``: the reconstruction error divided by each pixel's normal error (else the plain
    mean squared error). The reconstruction error is always fitted (:meth:`score_errors`), a part
    of the score or not."""

    def __init__(
        self, model: nn.Module, method: str, normalised: bool = True, parts: tuple[str, ...] | None = None
    ) -> None:
        super().__init__()
        self.model, self.method = model, METHODS[method]
        if parts is not None:  # a detector file's own list (a method's parts may have changed since)
            self.method = self.method._replace(parts=tuple(parts))
        self.error = Reconstruction(normalised)
        self.parts = nn.ModuleList(
            self.error if PARTS[name] is Reconstruction else PARTS[name]() for name in self.method.parts
        )
        self.register_buffer("standard", None)  # (parts, 2), float64: each part's mean and spread on normal images

    def see(self, images: Tensor) -> Seen:
        """What the autoencoder makes of checked images (N, C, H, W), in batches on its device; on the CPU."""
        recon, codes = reconstruct_batches(self.model, images)
        images = images.to(recon.device)
        return Seen(images.cpu(), ((recon - images) ** 2).mean(dim=1).cpu(), codes.cpu())

    def fit(self, normal: Seen, reference: Seen | None, seed: int) -> Tensor:
        """Fit every part on ``normal`` images and a ``reference`` (None: the normal images, each
        then left out of its own neighbours), then each part's mean and spread on the normal
        images; returns the normal images' scores."""
        device = next(self.model.parameters()).device
        self.error.fit(normal, normal, seed, device)
        for part in self._others():
            part.fit(normal, reference if reference is not None else normal, seed, device)
        if not self.method.standardised:
            return self.scores(normal)
        parts = self.part_scores(normal, leave_out=reference is None)
        self.standard = torch.stack([parts.mean(dim=1), parts.std(dim=1, correction=0) + 1e-12], dim=1)
        return self.combine(parts)

    def _others(self) -> list[Part]:
        """The method's parts besides the reconstruction error (fitted, kept and loaded always)."""
        return [part for part in self.parts if part is not self.error]

    def part_scores(self, seen: Seen, leave_out: bool = False) -> Tensor:
        """(parts, N), float64: each part's scores."""
        return torch.stack([part(seen, leave_out).double() for part in self.parts])

    def combine(self, parts: Tensor) -> Tensor:
        """The standardised parts (rows of :meth:`part_scores`) summed."""
        if self.standard is None or len(self.standard) != len(parts):
            raise AelabError("the parts of the score are not standardised yet: fit the detector first")
        return ((parts - self.standard[:, :1]) / self.standard[:, 1:]).sum(dim=0)

    def scores(self, seen: Seen, leave_out: bool = False) -> Tensor:
        """Anomaly scores (N,) of what the autoencoder made of N images."""
        if not self.method.standardised:
            return self.parts[0](seen, leave_out)
        return self.combine(self.part_scores(seen, leave_out))

    def score_errors(self, errors: Tensor) -> Tensor:
        """The reconstruction error's score (N,) of squared-error maps (N, H, W)."""
        return self.error(Seen(None, errors, None))

    def forward(self, x: Tensor) -> Tensor:
        """Float32 images (N, C, H, W) in [0, 1] -> float32 scores (N,): an exported detector's graph."""
        out = self.model.layers(x)
        return self.scores(Seen(x, (out.recon - x).square().mean(dim=1), out.z)).float()

    def state(self) -> dict[str, Tensor]:
        """The tensors a detector file keeps of the parts (the model's weights apart)."""
        tensors = self.error.state()
        for part in self._others():
            tensors.update(part.state())
        if self.standard is not None:
            tensors["standard"] = self.standard.double().contiguous()
        return tensors

    def needs(self) -> list[str]:
        """The keys a detector file of this method cannot do without."""
        return [key for part in self.parts for key in part.needs()] + (["standard"] if self.method.standardised else [])

    def load(self, tensors: dict[str, Tensor], path: object) -> None:
        """The parts from a detector file's tensors (:meth:`needs` checked first)."""
        self.error.load(tensors, path)
        for part in self._others():
            part.load(tensors, path)
        if self.method.standardised:
            standard = tensors["standard"]
            if standard.shape != (len(self.parts), 2):
                raise AelabError(
                    f"{path} is damaged (standard: expected a mean and a spread for each of the "
                    f"{len(self.parts)} parts, got {tuple(standard.shape)})"
                )
            self.standard = standard.double()

    def part(self, kind: type[Part]) -> Part | None:
        """This method's part of ``kind``, if it has one."""
        return next((part for part in self.parts if isinstance(part, kind)), None)
