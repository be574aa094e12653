"""A generative run's uses: samples, the 2-D manifold, the latent space drawn with its classes,
paths between two images, and a text model's continuation of a prompt."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .. import figures
from .. import latent_space as latent_tools
from ..arrays import as_tensor, like
from ..data import read_images
from ..data.text import decode as decode_text
from ..data.text import encode as encode_text
from ..errors import AelabError, opt
from ..evaluation import run_data
from ..latent_space import require
from ..limits import (
    MAX_GRID,
    MAX_LENGTH,
    MAX_SAMPLES,
    MAX_STEPS,
    check_count,
    check_images,
    check_number,
    check_seed,
)
from ..nets.base import Autoencoder, Generative, TextModel
from ..runs import Run
from ..samplers import COMPONENTS, check_sampler, kept_components, mixture_file, mixture_of
from .common import RunLike, drawn, figure_target, model_of

# ------------------------------------------------------------------ the latent space


def sample(
    run: RunLike,
    n: int = 100,
    seed: int = 0,
    labels: int | None = None,
    sampler: str | None = None,
    components: int = COMPONENTS,
) -> np.ndarray:
    """``n`` new images (N, C, H, W) in [0, 1], as numpy: from a generative run's prior (a cvae's:
    of class ``labels``), or (``sampler="gmm"``, the default for an autoencoder without a prior)
    decoded draws of a Gaussian mixture of ``components`` fitted to the run's training codes,
    kept in the run folder (``sampler-gmm-K.safetensors``) and reused."""
    return _samples(run, n, seed, labels, sampler, components).numpy()


def _samples(
    run: RunLike, n: int, seed: int, labels: int | None, sampler: str | None = None, components: int = COMPONENTS
) -> Tensor:
    check_count("-n", n, 1, MAX_SAMPLES)
    check_seed(opt("seed"), seed)
    check_count(opt("components"), components, 1, 100)
    run, model = model_of(run)
    kept = kept_components(run.path)
    chosen = check_sampler(model, sampler, run.config.model, fitted=bool(kept))
    if sampler is None and chosen == "gmm" and components not in kept:
        components = kept[0]  # the mixture the run keeps
    if isinstance(model, (Generative, Autoencoder)):
        check_images(f"{n:,} samples", n, model.input_shape)
    if chosen == "prior":
        return latent_tools.samples(model, n, seed, labels)
    if labels is not None:
        raise AelabError(
            f"{opt('label')}: the gmm sampler draws codes of every class alike ({run.config.model} takes no labels)"
        )
    mixture, fitted = mixture_of(model, run.path, lambda: run_data(run).train, components)
    if fitted:
        drawn(run, mixture_file(run.path, components))  # on the run's record: the run's own file from now on
    return mixture.sample(model, n, torch.Generator().manual_seed(seed))


def sample_figure(
    run: RunLike,
    out: str | Path | None = None,
    n: int = 100,
    seed: int = 0,
    labels: int | None = None,
    overwrite: bool = False,
    sampler: str | None = None,
    components: int = COMPONENTS,
) -> Path:
    """:func:`sample`'s images as a square grid in ``out`` (default RUN/samples.png; when it exists and ``overwrite`` is
    False, RUN/samples-2.png, -3, ...)."""
    run = Run.of(run)
    out = figure_target(run, out, "samples.png", overwrite)
    images = _samples(run, n, seed, labels, sampler, components)
    which = "" if labels is None else f" of class {labels}"
    return drawn(
        run,
        figures.grid(
            images, out, nrow=math.ceil(math.sqrt(n)), title=f"{run.config.model}: {n} samples{which} (seed {seed})"
        ),
    )


def manifold(run: RunLike, grid: int = 15, labels: int | None = None) -> np.ndarray:
    """A 2-D generative run's decoded prior quantiles, ``grid`` x ``grid`` images (a cvae's, of
    class ``labels``), as numpy."""
    return _manifold(run, grid, labels).numpy()


def _manifold(run: RunLike, grid: int, labels: int | None) -> Tensor:
    check_count(opt("grid"), grid, 1, MAX_GRID)
    run, model = model_of(run)
    return latent_tools.manifold(model, grid, labels=labels)


def manifold_figure(
    run: RunLike, out: str | Path | None = None, grid: int = 15, labels: int | None = None, overwrite: bool = False
) -> Path:
    """:func:`manifold` as a grid in ``out`` (default RUN/manifold.png)."""
    run = Run.of(run)
    out = figure_target(run, out, "manifold.png", overwrite)
    return drawn(
        run,
        figures.manifold(
            _manifold(run, grid, labels),
            latent_tools.quantile_grid(grid),
            out,
            title=f"{run.config.model}: the decoded latent grid" + ("" if labels is None else f", class {labels}"),
        ),
    )


def latent(run: RunLike, data: Any = None, limit: int = 5000) -> tuple[np.ndarray, np.ndarray | None, tuple[str, str]]:
    """Test-set codes in 2-D (principal components where the code is larger), their labels (or
    None) and the axes' names, as numpy."""
    points, labels, axes, _ = _latent(run, data, limit)
    return points.numpy(), None if labels is None else labels.numpy(), axes


def _latent(run: RunLike, data: Any, limit: int) -> tuple[Tensor, Tensor | None, tuple[str, str], tuple | None]:
    """:func:`latent`'s points, labels and axes' names, and the data's class names."""
    check_count(opt("limit"), limit, 1)
    run, model = model_of(run)
    require(model, Autoencoder, "the latent plot needs an encoder (a gan has none)")
    data = run_data(run, data)
    return (*latent_tools.codes_2d(model, data, limit), data.classes)


def latent_figure(
    run: RunLike, out: str | Path | None = None, data: Any = None, limit: int = 5000, overwrite: bool = False
) -> Path:
    """:func:`latent`'s scatter, coloured by label, in ``out`` (default RUN/latent.png); returns the file."""
    run = Run.of(run)
    out = figure_target(run, out, "latent.png", overwrite, data=data)
    points, labels, axes, classes = _latent(run, data, limit)
    return drawn(
        run, figures.scatter(points, labels, out, f"{run.config.model}: {len(points):,} test codes", axes, classes)
    )


def interpolate(
    run: RunLike, a: Any = None, b: Any = None, steps: int = 10, seed: int = 0, labels: int | None = None
) -> Tensor | np.ndarray:
    """Decoded points on the straight line between the codes of images ``a`` and ``b`` (files, or
    one image each as an array or tensor), framed by the two inputs; with no images, between two
    prior points. A tensor when the images came as tensors, else numpy."""
    tensors = isinstance(a, Tensor) and isinstance(b, Tensor)
    return like(_interpolate(run, a, b, steps, seed, labels), numpy=not tensors)


def _interpolate(run: RunLike, a: Any, b: Any, steps: int, seed: int, labels: int | None) -> Tensor:
    check_count(opt("steps"), steps, 2, MAX_STEPS)
    check_seed(opt("seed"), seed)
    run, model = model_of(run)
    if (a is None) != (b is None):
        raise AelabError("give two images to interpolate between (or none, for a generative model)")
    if a is None:
        return latent_tools.interpolate(model, steps=steps, seed=seed, labels=labels)
    require(model, Autoencoder, "interpolating between images needs an encoder (a gan has none: give no images)")
    ends = []
    for end in (a, b):
        if isinstance(end, (str, Path)):
            end = read_images([end], model.input_shape[0], model.input_shape[1])
        ends.append(model.check_images(as_tensor(end, "image")[0]))
    return torch.cat(
        [ends[0], latent_tools.interpolate(model, ends[0], ends[1], steps=steps, seed=seed, labels=labels), ends[1]]
    )


def interpolate_figure(
    run: RunLike,
    a: Any = None,
    b: Any = None,
    out: str | Path | None = None,
    steps: int = 10,
    seed: int = 0,
    labels: int | None = None,
    overwrite: bool = False,
) -> Path:
    """:func:`interpolate`'s path as one row in ``out`` (default RUN/interpolation.png); the two
    images are inputs, never targets."""
    run = Run.of(run)
    out = figure_target(run, out, "interpolation.png", overwrite, inputs=(a, b))
    path = _interpolate(run, a, b, steps, seed, labels)
    ends = "the two images" if a is not None else f"two prior points (seed {seed})"
    return drawn(
        run,
        figures.grid(path, out, nrow=len(path), title=f"{run.config.model}: {steps} steps on the line between {ends}"),
    )


# ------------------------------------------------------------------ text


def generate(run: RunLike, prompt: str, length: int = 400, temperature: float = 1.0, seed: int = 0) -> str:
    """A text run's continuation of ``prompt``: ``length`` characters drawn at ``temperature``
    (0: always the likeliest; higher: more surprising). A fixed ``seed`` repeats the text."""
    run, model = model_of(run)
    require(model, TextModel, "only text models generate text")
    if not isinstance(prompt, str) or not prompt:
        raise AelabError("give a prompt: at least one character of the model's alphabet")
    check_count(opt("length"), length, 1, MAX_LENGTH)
    temperature = check_number(opt("temperature"), temperature)
    check_seed(opt("seed"), seed)
    indices = encode_text(prompt, model.alphabet)
    drawn = model.generate(indices, length, temperature, torch.Generator().manual_seed(seed))
    return decode_text(drawn, model.alphabet)
