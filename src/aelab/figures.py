"""Every PNG the CLI writes. Each function takes tensors in [0, 1] and a path, and returns the path."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from torch import Tensor  # noqa: E402


def _show(ax, image: Tensor | np.ndarray, cmap: str = "gray", vmin: float | None = 0.0, vmax: float | None = 1.0) -> None:
    array = image.detach().float().cpu().numpy() if isinstance(image, Tensor) else np.asarray(image)
    if array.ndim == 3:
        array = array[0] if array.shape[0] == 1 else np.clip(array.transpose(1, 2, 0), 0, 1)
    ax.imshow(array, cmap=cmap if array.ndim == 2 else None, vmin=vmin, vmax=vmax, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])


def _save(fig, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80, bbox_inches="tight")
    plt.close(fig)
    return path


def image_rows(rows: list[Tensor], labels: list[str], path: Path, title: str | None = None) -> Path:
    """A grid: one row per tensor (N, C, H, W), as the seeds' 2x10 and 3x10 comparison figures."""
    n = min(len(r) for r in rows)
    fig, axes = plt.subplots(len(rows), n, figsize=(1.6 * n, 1.7 * len(rows)), squeeze=False)
    for r, (images, label) in enumerate(zip(rows, labels)):
        for c in range(n):
            _show(axes[r, c], images[c])
        axes[r, 0].set_ylabel(label, fontsize=10)
    if title:
        fig.suptitle(title)
    fig.tight_layout(pad=0.2)
    return _save(fig, path)


def reconstructions(originals: Tensor, recons: Tensor, path: Path, title: str | None = None) -> Path:
    return image_rows([originals[:10], recons[:10]], ["original", "reconstruction"], path, title)


def denoising(originals: Tensor, noisy: Tensor, denoised: Tensor, path: Path, title: str | None = None) -> Path:
    return image_rows([originals[:10], noisy[:10], denoised[:10]], ["original", "noisy", "denoised"], path, title)


def _code_maps(code: Tensor) -> Tensor:
    """One image's code as a stack of 2-D maps: conv codes per channel, vectors as a near-square tile."""
    if code.ndim == 3:
        return code
    flat = code.flatten()
    width = math.ceil(math.sqrt(len(flat)))
    height = math.ceil(len(flat) / width)
    tile = flat.new_zeros(height * width)
    tile[: len(flat)] = flat
    return tile.view(1, height, width)


def codes(originals: Tensor, codes_: Tensor, recons: Tensor, path: Path, n: int = 5, max_maps: int = 16) -> Path:
    """The encoded representation drawn as images, as CNTK's deconvolution visualizer does (seed 4):
    each row an input, its code maps (one per channel; a vector code as one tile) and its reconstruction."""
    maps = [_code_maps(c)[:max_maps] for c in codes_[:n]]
    k = maps[0].shape[0]
    fig, axes = plt.subplots(n, k + 2, figsize=(1.4 * (k + 2), 1.5 * n), squeeze=False)
    top = max(float(m.max()) for m in maps) or 1.0
    for r in range(n):
        _show(axes[r, 0], originals[r])
        for j in range(k):
            _show(axes[r, 1 + j], maps[r][j], cmap="viridis", vmin=float(codes_.min().clamp(max=0)), vmax=top)
        _show(axes[r, k + 1], recons[r])
    axes[0, 0].set_title("input", fontsize=9)
    for j in range(k):
        axes[0, 1 + j].set_title(f"code {j}" if k > 1 else f"code {tuple(codes_.shape[1:])}", fontsize=9)
    axes[0, k + 1].set_title("output", fontsize=9)
    fig.tight_layout(pad=0.2)
    return _save(fig, path)


def curves(history: list[dict[str, float]], path: Path, title: str | None = None) -> Path:
    """Train and validation loss per epoch, with learning-rate drops marked."""
    fig, ax = plt.subplots(figsize=(6, 4))
    epochs = [row["epoch"] for row in history]
    for key, style in (("train_loss", "-o"), ("val_loss", "-s")):
        points = [(row["epoch"], row[key]) for row in history if key in row]
        if points:
            ax.plot(*zip(*points), style, label=key.replace("_", " "), markersize=3)
    for before, after in zip(history, history[1:]):
        if after.get("lr", 0) < before.get("lr", 0):
            ax.axvline(after["epoch"], color="gray", linestyle=":", linewidth=1)
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    if epochs:
        ax.set_xlim(min(epochs) - 0.5, max(epochs) + 0.5)
    ax.legend()
    ax.grid(alpha=0.3)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return _save(fig, path)
