"""An autoencoder's uses: reconstruct, encode and decode arrays or image files, its encoder and
decoder as modules, the codes of a whole split."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from .. import figures
from ..accel import choose_precision
from ..arrays import as_tensor, like
from ..data import add_noise, read_images
from ..errors import AelabError, opt
from ..evaluation import run_data
from ..latent_space import require
from ..metrics import reconstruct as reconstruct_batches
from ..nets.base import Autoencoder
from ..outputs import atomic_write, check_targets
from ..runs import Run
from .common import RunLike, Split, model_of

# ------------------------------------------------------------------ autoencoders


def _through(run: RunLike, x: Any, precision: str, labels: Any) -> tuple[Tensor, Tensor]:
    run, model = model_of(run)
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
    run, model = model_of(run)
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
    run, model = model_of(run)
    require(model, Autoencoder, "a gan has no encoder")
    return model.encoder_part()


def decoder(run: RunLike) -> nn.Module:
    """The trained decoder as a plain module (codes -> images in [0, 1])."""
    run, model = model_of(run)
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
    run, model = model_of(run)
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
