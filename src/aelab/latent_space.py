"""Latent-space tools on a model: samples, the 2-D manifold, codes scattered by label,
interpolations. Each asks the interface it needs (:mod:`aelab.nets.base`): ``Generative`` for
samples and the prior (VAE, GAN), ``Autoencoder`` for encoding (a VAE's code is its posterior mean).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .data import ImageData
from .errors import AelabError, opt
from .metrics import pca_fit, reconstruct
from .nets.base import Autoencoder, Conditional, Generative, TextModel, check_classes, refuse_labels

WHAT = {
    Autoencoder: "an autoencoder",
    Generative: "a generative model (vae, cvae, gan)",
    TextModel: "a text model (char-lstm)",
}


def require(model: nn.Module, interface: type, why: str) -> None:
    """A one-line error unless ``model`` declares ``interface``: ``why`` says what needed it."""
    if not isinstance(model, interface):
        raise AelabError(f"{model.model_name} is not {WHAT[interface]}: {why}")


def label_arguments(model: nn.Module, labels: int | None, needed_to: str | None = None) -> dict:
    """``{"labels": labels}`` for a conditional model (a class in range; required where it is
    ``needed_to`` do something), ``{}`` for the others (which must be given none)."""
    name = model.model_name
    if not isinstance(model, Conditional):
        refuse_labels(name, labels)
        return {}
    if labels is None:
        if needed_to:
            raise AelabError(f"{name} {needed_to}: give {opt('label')} (0 to {model.classes - 1})")
        return {}
    if isinstance(labels, bool) or not isinstance(labels, int):
        raise AelabError(f"{opt('label')} must be a class number of {name}, got {labels!r}")
    check_classes(name, model.classes, labels, labels, opt("label"))
    return {"labels": labels}


@torch.no_grad()
def samples(model: nn.Module, n: int, seed: int = 0, labels: int | None = None) -> Tensor:
    """``n`` new images from a generative model's prior (a conditional model's: of class
    ``labels``, or of random classes)."""
    if n < 1:
        raise AelabError(f"-n must be at least 1, got {n}")
    require(model, Generative, "only generative models draw new images")
    extra = label_arguments(model, labels)
    return model.eval().sample(n, torch.Generator().manual_seed(seed), **extra)


@torch.no_grad()
def class_samples(model: nn.Module, per_class: int = 10, seed: int = 0) -> Tensor:
    """A conditional model's samples, ``per_class`` of each class in turn: (classes x per_class, C, H, W)."""
    return torch.cat([samples(model, per_class, seed, label) for label in range(model.classes)])


@torch.no_grad()
def manifold(model: nn.Module, n: int = 15, low: float = 0.05, high: float = 0.95, labels: int | None = None) -> Tensor:
    """Decoded points of a 2-D latent on an ``n`` x ``n`` grid of the prior's quantiles (keras-io's
    VAE); a conditional model's for class ``labels``."""
    require(model, Generative, "the manifold is drawn from a generative model's prior")
    extra = label_arguments(model, labels, needed_to="draws one class's manifold")
    if model.latent_dim != 2:
        raise AelabError(
            f"the manifold needs a 2-D latent space; this model's has {model.latent_dim} dimensions "
            f"(train with {opt('param', 'latent_dim=2')})"
        )
    quantiles = quantile_grid(n, low, high)
    zy, zx = torch.meshgrid(quantiles.flip(0), quantiles, indexing="ij")
    z = torch.stack([zx.flatten(), zy.flatten()], dim=1)
    return model.decode_latent(z.to(next(model.parameters()).device), **extra).cpu()


def quantile_grid(n: int = 15, low: float = 0.05, high: float = 0.95) -> Tensor:
    """The latent values on each axis of :func:`manifold`'s grid: the standard normal prior's
    quantiles from ``low`` to ``high``."""
    return torch.distributions.Normal(0.0, 1.0).icdf(torch.linspace(low, high, n))


@torch.no_grad()
def codes_2d(model: nn.Module, data: ImageData, limit: int = 5000) -> tuple[Tensor, Tensor | None, tuple[str, str]]:
    """Test-set codes in 2-D: as they are for a 2-D code, else their first two principal components."""
    require(model, Autoencoder, "the latent plot needs an encoder (a gan has none)")
    images = data.test[:limit]
    given = isinstance(model, Conditional) and data.test_labels is not None
    _, codes = reconstruct(model, images, labels=data.test_labels[:limit] if given else None)
    codes = codes.flatten(1).double()
    labels = None if data.test_labels is None else data.test_labels[:limit]
    if codes.shape[1] < 2:
        raise AelabError("the code has a single dimension; nothing to scatter in 2-D")
    if codes.shape[1] > 2 and len(codes) < 3:  # two principal components need three points
        raise AelabError(
            f"the data's test split holds {len(codes)} image(s): too few to place {codes.shape[1]}-number "
            "codes in 2-D by principal components (give a folder of at least 15 images)"
        )
    points, _, _, names = on_a_plane(codes)
    return points.float(), labels, names


def on_a_plane(codes: Tensor) -> tuple[Tensor, Tensor, Tensor, tuple[str, str]]:
    """Flat codes (N, D), D >= 2, in 2-D: as they are for D = 2, else on their first two principal
    components (the largest first). Returns the points (float64), the projection's mean (D,) and
    basis (2, D) (``points = (codes - mean) @ basis.T``: a point maps back as ``mean + p @ basis``)
    and the axes' names."""
    codes = codes.double()
    if codes.shape[1] == 2:
        return codes, torch.zeros(2, dtype=torch.float64), torch.eye(2, dtype=torch.float64), ("z[0]", "z[1]")
    mean, basis = pca_fit(codes, 2)
    basis = basis.flip(0)
    return (codes - mean) @ basis.T, mean, basis, ("principal component 1", "principal component 2")


@torch.no_grad()
def interpolate(
    model: nn.Module,
    a: Tensor | None = None,
    b: Tensor | None = None,
    steps: int = 10,
    seed: int = 0,
    labels: int | None = None,
) -> Tensor:
    """Images decoded along the straight line between two codes: of images ``a`` and ``b`` (1, C, H, W)
    through the encoder, or of two random prior points for a generative model given no images (a
    conditional model's, all of class ``labels``)."""
    if steps < 2:
        raise AelabError(f"{opt('steps')} must be at least 2, got {steps}")
    extra = label_arguments(model, labels, needed_to="interpolates within one class")
    model.eval()
    if a is None or b is None:
        require(model, Generative, "give two images to interpolate between")
        generator = torch.Generator().manual_seed(seed)
        start, end = torch.randn(2, model.latent_dim, generator=generator)
        start, end = start[None], end[None]
    else:
        require(model, Autoencoder, "interpolating between images needs an encoder (a gan has none: give no images)")
        start, end = model.encode(a, **extra), model.encode(b, **extra)
    weights = torch.linspace(0, 1, steps).view(-1, *[1] * (start.dim() - 1))
    path = (1 - weights) * start + weights * end
    return model.decode(path, **extra) if isinstance(model, Autoencoder) else model.decode_latent(path, **extra)
