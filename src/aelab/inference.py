"""Using a trained run: every function takes the run (a :class:`~aelab.Run` or its folder) first,
loads its model once, and says ``labels=`` for a conditional model's classes. The functions that
end in ``_figure`` (and :func:`reconstruct_files`, :func:`encode_file`) write what the CLI
commands of the same names write, so the CLI, the Python API and the web page share them, and
return the file they wrote. Arrays keep :mod:`aelab.arrays`' convention: numpy in, numpy out;
a tensor in, a tensor out; numpy where nothing goes in.

    import aelab
    x_hat = aelab.reconstruct("runs/demo", x)     # x: (N, H, W), (N, C, H, W) or (N, H, W, C), uint8 or in [0, 1]
    z = aelab.encode("runs/demo", x); images = aelab.decode("runs/demo", z)
    aelab.sample_figure("runs/vae", n=100)        # runs/vae/samples.png
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn

from . import figures
from . import latent_space as latent_tools
from .accel import choose_precision
from .arrays import as_tensor, like
from .data import add_noise, read_images
from .data.text import decode as decode_text
from .data.text import encode as encode_text
from .errors import AelabError, opt
from .evaluation import run_data
from .latent_space import require
from .limits import (
    MAX_GRID,
    MAX_LENGTH,
    MAX_SAMPLES,
    MAX_STEPS,
    check_count,
    check_images,
    check_number,
    check_seed,
)
from .metrics import reconstruct as reconstruct_batches
from .nets.base import Autoencoder, Generative, TextModel
from .outputs import atomic_write, check_targets, first_free
from .runs import Run, write_json

RunLike = Run | str | Path
Split = Literal["train", "test", "all"]


def _model(run: RunLike) -> tuple[Run, nn.Module]:
    run = Run.of(run)
    return run, run.model


def _png(
    run: Run, out: str | Path | None, default: str, overwrite: bool, inputs: Iterable[Any] = (), data: Any = None
) -> Path:
    """The figure's target: ``out``, checked by the output policy, or the run's own ``default``
    figure: replaced with ``overwrite``, else (when it exists: the report shows it) the first free
    ``NAME-2.png``, ``NAME-3.png``, ...; never one of the command's ``inputs`` (paths), the run's
    files or the ``data`` it reads (:meth:`Run.sources`)."""
    inputs = [*run.sources(data), *(p for p in inputs if isinstance(p, (str, Path)))]
    if out is None:
        target = run.path / default if overwrite else first_free(run.path / default)
        return check_targets([target], overwrite=overwrite, inputs=inputs)[0]
    return check_targets([out], overwrite=overwrite, suffixes=(".png",), inputs=inputs)[0]


def _drawn(run: Run, path: Path) -> Path:
    """``path`` just written: on the run's record where it lies in the run folder."""
    if path.resolve().parent == run.path.resolve() or run.path.resolve() in path.resolve().parents:
        run.record([path.resolve().relative_to(run.path.resolve())])
    return path


# ------------------------------------------------------------------ autoencoders


def _through(run: RunLike, x: Any, precision: str, labels: Any) -> tuple[Tensor, Tensor]:
    run, model = _model(run)
    require(model, Autoencoder, "a gan has no encoder")
    x = model.check_images(x)
    if not len(x):
        raise AelabError("no images: give at least one")
    labels = model.check_labels(labels, len(x))
    return reconstruct_batches(
        model, x, precision=choose_precision(precision, "cpu"), labels=labels[0].cpu() if labels else None
    )


def reconstruct(run: RunLike, x: Any, labels: Any = None, precision: str = "32") -> Tensor | np.ndarray:
    """Reconstructions (N, C, H, W) in [0, 1] of images ``x``: (N, H, W), (N, C, H, W) or
    (N, H, W, C), uint8 or in [0, 1], numpy (numpy out) or torch (a tensor out); a conditional
    model, such as cvae, also takes their ``labels``: one int or one per image."""
    images, numpy = as_tensor(x, "images")
    return like(_through(run, images, precision, labels)[0], numpy)


def encode(run: RunLike, x: Any, labels: Any = None, precision: str = "32") -> Tensor | np.ndarray:
    """Codes of images ``x`` (see :func:`reconstruct`), in the kind ``x`` came in."""
    images, numpy = as_tensor(x, "images")
    return like(_through(run, images, precision, labels)[1], numpy)


@torch.no_grad()
def decode(run: RunLike, z: Any, labels: Any = None) -> Tensor | np.ndarray:
    """Images (N, C, H, W) in [0, 1] from codes ``z``, in the kind ``z`` came in."""
    run, model = _model(run)
    require(model, Autoencoder, "decoding needs an autoencoder (a gan generates from latent points: sample)")
    codes, numpy = as_tensor(z, "codes")
    if not codes.is_floating_point():
        raise AelabError(f"codes must be floating-point numbers, got {codes.dtype}")
    if not torch.isfinite(codes).all():
        raise AelabError("codes must be finite numbers (got NaN or infinity)")
    images = model.decode(codes.float(), labels)
    if not torch.isfinite(images).all():
        raise AelabError(
            f"the decoder's output is not finite for these codes (largest magnitude "
            f"{float(codes.abs().max()):.3g}): they lie far outside the codes it was trained on"
        )
    return like(images, numpy)


def encoder(run: RunLike) -> nn.Module:
    """The trained encoder as a plain module (images -> codes) to use in another network; it shares
    the run's weights."""
    run, model = _model(run)
    require(model, Autoencoder, "a gan has no encoder")
    return model.encoder_part()


def decoder(run: RunLike) -> nn.Module:
    """The trained decoder as a plain module (codes -> images in [0, 1])."""
    run, model = _model(run)
    require(model, Autoencoder, "a gan has no decoder: its generator is aelab.load(run).generator")
    return model.decoder_part()


def encode_split(run: RunLike, split: Split = "test", data: Any = None, precision: str = "32") -> np.ndarray:
    """Flattened codes (N, code_size) of the run's dataset (or ``data``): split test, train or all."""
    if split not in ("train", "test", "all"):
        raise AelabError(f"unknown split {split!r}; choose train, test or all")
    loaded = run_data(run, data)
    images = {"train": loaded.train, "test": loaded.test}.get(split)
    if images is None:
        images = torch.cat([loaded.train, loaded.test])
    return _through(run, images, precision, None)[1].flatten(1).numpy()


def encode_file(
    run: RunLike,
    out: str | Path,
    split: Split = "test",
    data: Any = None,
    precision: str = "32",
    overwrite: bool = False,
) -> tuple[Path, np.ndarray]:
    """Write :func:`encode_split`'s codes to the .npy file ``out`` (an existing one only with
    ``overwrite``); returns it and the codes."""
    out = check_targets([out], overwrite=overwrite, suffixes=(".npy",), inputs=Run.of(run).sources(data))[0]
    codes = encode_split(run, split, data, precision)

    def save(tmp: Path) -> None:
        with open(tmp, "wb") as file:
            np.save(file, codes)

    return atomic_write(out, save), codes


def reconstruct_files(
    run: RunLike,
    images: list[str | Path],
    out: str | Path,
    noise: float = 0.0,
    precision: str = "auto",
    mode: str = "reconstruct",
    labels: int | None = None,
    overwrite: bool = False,
) -> list[Path]:
    """Reconstruct image files (``mode="denoise"``: denoise them, after adding ``noise`` if given,
    to try the model). Writes ``out/NAME_recon.png`` (``NAME_denoised.png``) for each and
    ``out/reconstruct.png`` (``denoise.png``), inputs over outputs; returns the files. Existing
    files are replaced only with ``overwrite``, an input image never."""
    from torchvision.utils import save_image

    suffix = {"reconstruct": "recon", "denoise": "denoised"}.get(mode)
    if suffix is None:
        raise AelabError(f"unknown mode {mode!r}; choose reconstruct or denoise")
    if noise < 0 or not math.isfinite(noise):
        raise AelabError(f"{opt('noise')} must be a finite number >= 0, got {noise}")
    run, model = _model(run)
    require(model, Autoencoder, "a gan has no encoder")
    channels, size = model.input_shape[0], model.input_shape[1]
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise AelabError(f"{opt('out', out)} is a file; name the folder to write the images into")
    targets = check_targets(
        [out / f"{Path(source).stem}_{suffix}.png" for source in images] + [out / f"{mode}.png"],
        overwrite=overwrite,
        inputs=[*images, *run.sources()],
    )
    inputs = read_images(images, channels, size)  # every file checked before anything is written
    if noise:
        inputs = add_noise(inputs, noise, torch.Generator().manual_seed(0))
    outputs = _through(run, inputs, precision, labels)[0]
    for image, target in zip(outputs, targets):
        atomic_write(target, lambda tmp, image=image: save_image(image.clamp(0, 1), tmp, format="png"))
    shown = "denoised" if mode == "denoise" else "reconstruction"
    what = f", noise {noise:g} added" if noise else ""
    figures.image_rows(
        [inputs, outputs],
        ["input" + (" (noisy)" if noise else ""), shown],
        targets[-1],
        f"{run.config.model}: {len(outputs)} image{'s' if len(outputs) != 1 else ''}{what}",
    )
    return targets


# ------------------------------------------------------------------ the latent space


def sample(run: RunLike, n: int = 100, seed: int = 0, labels: int | None = None) -> np.ndarray:
    """``n`` new images (N, C, H, W) in [0, 1] from a generative run's prior (a cvae's: of class
    ``labels``), as numpy."""
    return _samples(run, n, seed, labels).numpy()


def _samples(run: RunLike, n: int, seed: int, labels: int | None) -> Tensor:
    check_count("-n", n, 1, MAX_SAMPLES)
    check_seed(opt("seed"), seed)
    run, model = _model(run)
    if isinstance(model, Generative):
        check_images(f"{n:,} samples", n, model.input_shape)
    return latent_tools.samples(model, n, seed, labels)


def sample_figure(
    run: RunLike,
    out: str | Path | None = None,
    n: int = 100,
    seed: int = 0,
    labels: int | None = None,
    overwrite: bool = False,
) -> Path:
    """:func:`sample`'s images as a square grid in ``out`` (default RUN/samples.png; when it exists and ``overwrite`` is
    False, RUN/samples-2.png, -3, ...)."""
    run = Run.of(run)
    out = _png(run, out, "samples.png", overwrite)
    images = _samples(run, n, seed, labels)
    which = "" if labels is None else f" of class {labels}"
    return _drawn(
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
    run, model = _model(run)
    return latent_tools.manifold(model, grid, labels=labels)


def manifold_figure(
    run: RunLike, out: str | Path | None = None, grid: int = 15, labels: int | None = None, overwrite: bool = False
) -> Path:
    """:func:`manifold` as a grid in ``out`` (default RUN/manifold.png)."""
    run = Run.of(run)
    out = _png(run, out, "manifold.png", overwrite)
    return _drawn(
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
    run, model = _model(run)
    require(model, Autoencoder, "the latent plot needs an encoder (a gan has none)")
    data = run_data(run, data)
    return (*latent_tools.codes_2d(model, data, limit), data.classes)


def latent_figure(
    run: RunLike, out: str | Path | None = None, data: Any = None, limit: int = 5000, overwrite: bool = False
) -> Path:
    """:func:`latent`'s scatter, coloured by label, in ``out`` (default RUN/latent.png); returns the file."""
    run = Run.of(run)
    out = _png(run, out, "latent.png", overwrite, data=data)
    points, labels, axes, classes = _latent(run, data, limit)
    return _drawn(
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
    run, model = _model(run)
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
    out = _png(run, out, "interpolation.png", overwrite, inputs=(a, b))
    path = _interpolate(run, a, b, steps, seed, labels)
    ends = "the two images" if a is not None else f"two prior points (seed {seed})"
    return _drawn(
        run,
        figures.grid(path, out, nrow=len(path), title=f"{run.config.model}: {steps} steps on the line between {ends}"),
    )


# ------------------------------------------------------------------ text


def generate(run: RunLike, prompt: str, length: int = 400, temperature: float = 1.0, seed: int = 0) -> str:
    """A text run's continuation of ``prompt``: ``length`` characters drawn at ``temperature``
    (0: always the likeliest; higher: more surprising). A fixed ``seed`` repeats the text."""
    run, model = _model(run)
    require(model, TextModel, "only text models generate text")
    if not isinstance(prompt, str) or not prompt:
        raise AelabError("give a prompt: at least one character of the model's alphabet")
    check_count(opt("length"), length, 1, MAX_LENGTH)
    temperature = check_number(opt("temperature"), temperature)
    check_seed(opt("seed"), seed)
    indices = encode_text(prompt, model.alphabet)
    drawn = model.generate(indices, length, temperature, torch.Generator().manual_seed(seed))
    return decode_text(drawn, model.alphabet)


# ------------------------------------------------------------------ features and looking inside


def probe(run: RunLike, data: Any = None, write: bool = True) -> dict[str, Any]:
    """How good the run's codes are as features: a linear classifier fitted on the training codes,
    scored on the test codes, beside the same probe on PCA codes of the same size and on raw
    pixels (:func:`aelab.probing.probe_run`). Adds the numbers to metrics.json (``write``, for the
    run's own data only)."""
    from .probing import probe_run

    run = Run.of(run)
    result = probe_run(run, run_data(run, data))
    if write and data is None and run.metrics_path.is_file():
        write_json(run.metrics_path, {**run.metrics, **result})
    return result


def activation_epochs(run: RunLike) -> list[int]:
    """The epochs whose layer outputs ``log_activations`` saved (RUN/activations/epoch_NNN.npz)."""
    run = Run.of(run)
    stems = (p.stem.removeprefix("epoch_") for p in (run.path / "activations").glob("epoch_*.npz"))
    return sorted(int(stem) for stem in stems if stem.isdigit())


def activations(run: RunLike, epoch: int | None = None) -> dict[str, np.ndarray]:
    """The layer outputs saved by ``log_activations`` after ``epoch`` (default: the last saved):
    ``inputs`` (the fixed validation images) and one array per layer, by its name in the model."""
    run = Run.of(run)
    epochs = activation_epochs(run)
    if not epochs:
        raise AelabError(f"{run.path} has no saved activations: train it with {opt('log_activations', True)}")
    epoch = max(epochs) if epoch is None else epoch
    if epoch not in epochs:
        raise AelabError(f"no activations saved for epoch {epoch}; saved: epochs {min(epochs)} to {max(epochs)}")
    path = run.path / "activations" / f"epoch_{epoch:03d}.npz"
    try:
        with np.load(path, allow_pickle=False) as arrays:
            return {name: arrays[name] for name in arrays.files}
    except (OSError, ValueError, EOFError) as error:
        raise AelabError(f"{path} is damaged ({error})") from None


def activation_figure(
    run: RunLike,
    out: str | Path | None = None,
    epoch: int | None = None,
    layer: str | None = None,
    image: int = 0,
    overwrite: bool = False,
) -> Path:
    """Draw one layer's saved output for one of the fixed images as a PNG (default layer: the first
    convolutional one; default ``out``: RUN/activations/epoch_NNN_LAYER.png, redrawn each time)."""
    run = Run.of(run)
    if out is not None:
        out = check_targets([out], overwrite=overwrite, suffixes=(".png",))[0]
    arrays = activations(run, epoch)
    epoch = max(activation_epochs(run)) if epoch is None else epoch
    out = out if out is not None else run.path / "activations" / f"epoch_{epoch:03d}_{layer or 'first-conv'}.png"
    layers = [name for name in arrays if name != "inputs"]
    if layer is None:
        layer = next((n for n in layers if arrays[n].ndim == 4 and arrays[n].shape[1] > 1), layers[0])
    if layer not in arrays or layer == "inputs":
        raise AelabError(f"no layer {layer!r} among the saved activations; the layers: {', '.join(layers)}"[:400])
    count = len(arrays["inputs"])
    if not 0 <= image < count:
        raise AelabError(f"{opt('image')} must be 0 to {count - 1} (the saved batch has {count} images), got {image}")
    return _drawn(
        run,
        figures.feature_maps(
            arrays["inputs"][image],
            arrays[layer][image],
            out,
            f"{run.config.model}, epoch {epoch}: {layer} {tuple(arrays[layer].shape[1:])}",
        ),
    )


__all__ = [
    "activation_epochs",
    "activation_figure",
    "activations",
    "decode",
    "decoder",
    "encode",
    "encode_file",
    "encode_split",
    "encoder",
    "generate",
    "interpolate",
    "interpolate_figure",
    "latent",
    "latent_figure",
    "manifold",
    "manifold_figure",
    "probe",
    "reconstruct",
    "reconstruct_files",
    "sample",
    "sample_figure",
]
