"""Samplers that make any autoencoder generative: a Gaussian mixture fitted to the codes of its
training images, decoded (Ghosh et al. 2020, "From variational to deterministic autoencoders",
https://arxiv.org/abs/1903.12436, section 4's ex-post density estimation; the finding that
pythae's benchmark repeats: a plain or regularised autoencoder sampled so does as well as most
VAEs). scikit-learn fits the mixture; it is kept as plain arrays in a safetensors file, so
loading it runs no code.

    mixture = Mixture.fit(model, train_images, components=10)
    images = mixture.sample(model, 64, torch.Generator().manual_seed(0))
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import Tensor

from .errors import AelabError, opt
from .limits import INFERENCE_BATCH
from .nets.base import Autoencoder, Conditional, Generative
from .outputs import atomic_write

SAMPLERS = ("prior", "gmm")  # the model's own prior; a Gaussian mixture over its training codes
COMPONENTS = 10  # pythae's GaussianMixtureSampler default
FIT_IMAGES = 20_000  # the first this many training images' codes fit the mixture


def mixture_file(folder: Path, components: int) -> Path:
    """Where a run keeps its fitted mixture of ``components`` components."""
    return folder / f"sampler-gmm-{components}.safetensors"


def kept_components(folder: Path) -> list[int]:
    """The component counts of the mixtures a run keeps (an RAE's evaluation fits one), smallest first."""
    counts = (p.stem.rsplit("-", 1)[1] for p in folder.glob("sampler-gmm-*.safetensors"))
    return sorted(int(c) for c in counts if c.isdigit())


def check_sampler(model: torch.nn.Module, sampler: str | None, name: str, fitted: bool = False) -> str:
    """The sampler to use for ``model`` (``None``: its prior, or the mixture already ``fitted`` to
    its run where it has no prior), or a one-line error naming the samplers it has."""
    has = [s for s, ok in (("prior", isinstance(model, Generative)), ("gmm", can_mix(model))) if ok]
    if sampler is None:
        if "prior" in has or (fitted and has):
            return has[0]
        if has:
            raise AelabError(
                f"{name} is not generative (it has no prior of its own): {opt('sampler', 'gmm')} draws from a Gaussian "
                "mixture fitted to its training codes"
            )
        raise AelabError(f"{name} draws no new images: it has neither a prior nor an encoder to fit a mixture to")
    if sampler not in SAMPLERS:
        raise AelabError(f"{opt('sampler')} must be one of {', '.join(SAMPLERS)}, got {sampler!r}")
    if sampler not in has:
        why = "no prior of its own" if sampler == "prior" else "no encoder whose codes a mixture could fit"
        other = f"; its sampler: {has[0]}" if has else ""
        raise AelabError(f"{name} has {why} ({opt('sampler', sampler)}){other}")
    return sampler


def can_mix(model: torch.nn.Module) -> bool:
    """A mixture needs codes from an encoder and a decoder of codes alone (not a cvae's labels)."""
    return isinstance(model, Autoencoder) and model.decodes_from_code_alone and not isinstance(model, Conditional)


@dataclass
class Mixture:
    """A Gaussian mixture over an autoencoder's codes: component ``weights`` (K,), ``means`` (K, D)
    and the Cholesky factors ``scales`` (K, D, D) of full covariances; codes are ``code_shape``."""

    weights: Tensor
    means: Tensor
    scales: Tensor
    code_shape: tuple[int, ...]
    weights_digest: str = ""  # the model's weights it was fitted to (:func:`weights_digest`)

    @classmethod
    def fit(cls, model: Autoencoder, images: Tensor, components: int = COMPONENTS, seed: int = 0) -> Mixture:
        """Fit to the codes of (up to :data:`FIT_IMAGES`) ``images`` (scikit-learn's EM, full covariances)."""
        from sklearn.mixture import GaussianMixture

        if components < 1:
            raise AelabError(f"{opt('components')} must be at least 1, got {components}")
        codes = encode_all(model, images[:FIT_IMAGES])
        flat = codes.flatten(1).double().numpy()
        if len(flat) < components:
            raise AelabError(f"a mixture of {components} components needs at least as many images, got {len(flat)}")
        fitted = GaussianMixture(components, covariance_type="full", reg_covar=1e-5, random_state=seed).fit(flat)
        scales = np.linalg.cholesky(fitted.covariances_)
        as_tensor = lambda a: torch.from_numpy(np.ascontiguousarray(a)).float()  # noqa: E731
        return cls(as_tensor(fitted.weights_), as_tensor(fitted.means_), as_tensor(scales), tuple(codes.shape[1:]))

    @property
    def components(self) -> int:
        return len(self.weights)

    def draw(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` codes (n, *code_shape) from the mixture."""
        which = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        noise = torch.randn(n, self.means.shape[1], 1, generator=generator)
        return (self.means[which] + (self.scales[which] @ noise).squeeze(-1)).view(n, *self.code_shape)

    @torch.no_grad()
    def sample(self, model: Autoencoder, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` new images (n, C, H, W) in [0, 1]: drawn codes, decoded by ``model``."""
        model.eval()
        codes = self.draw(n, generator)
        device = next(model.parameters()).device
        return torch.cat(
            [model.decode(codes[i : i + INFERENCE_BATCH].to(device)).cpu() for i in range(0, n, INFERENCE_BATCH)]
        ).clamp(0, 1)

    def save(self, path: Path) -> Path:
        tensors = {"weights": self.weights, "means": self.means, "scales": self.scales}
        metadata = {"code_shape": ",".join(map(str, self.code_shape)), "weights": self.weights_digest}
        return atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata=metadata))

    @classmethod
    def load(cls, path: Path) -> Mixture:
        try:
            with safe_open(str(path), "pt") as f:  # the code shape is in the header's metadata
                tensors = {key: f.get_tensor(key) for key in f.keys()}
                metadata = f.metadata() or {}
                shape = tuple(int(s) for s in metadata["code_shape"].split(","))
            return cls(tensors["weights"], tensors["means"], tensors["scales"], shape, metadata.get("weights", ""))
        except (SafetensorError, OSError, KeyError, ValueError) as error:
            raise AelabError(f"{path}: not a fitted mixture aelab can read ({error})") from None


@torch.no_grad()
def encode_all(model: Autoencoder, images: Tensor) -> Tensor:
    """The codes of ``images`` in batches, in eval mode, on the CPU."""
    model.eval()
    device = next(model.parameters()).device
    return torch.cat(
        [model.encode(images[i : i + INFERENCE_BATCH].to(device)).cpu() for i in range(0, len(images), INFERENCE_BATCH)]
    )


def weights_digest(model: torch.nn.Module) -> str:
    """A fingerprint of the model's weights: a kept mixture fits only the model it was fitted to."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


def mixture_of(
    model: Autoencoder,
    folder: Path,
    images: Callable[[], Tensor],
    components: int = COMPONENTS,
    keep: bool = True,
) -> tuple[Mixture, bool]:
    """The mixture kept in ``folder`` for this many components and these weights, or one fitted
    to ``images()`` (read only then; kept there with ``keep``, written whole or not at all; a
    mixture kept for weights the run no longer has, after ``--resume``, is fitted again and
    replaced); and whether it was fitted now."""
    path, digest = mixture_file(folder, components), weights_digest(model)
    if path.exists():
        kept = Mixture.load(path)
        if kept.weights_digest == digest:
            return kept, False
    mixture = Mixture.fit(model, images(), components)
    mixture.weights_digest = digest
    if keep:
        mixture.save(path)
    return mixture, True
