"""Every PNG the CLI writes. Each function takes tensors in [0, 1] and a path, and returns the path.

One style for all (:data:`STYLE`: text at least 9 pt at the written size, light grids), and each
PNG says what it shows in its own metadata (``aelab:figure``: the titles, axis labels, colour
bars and legends of its panels), so a figure stands alone and a test can check it without pixels.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
from torch import Tensor  # noqa: E402

from .outputs import MARK, atomic_write  # noqa: E402

DPI = 100  # at this resolution a 9-point label is 12-13 pixels high
STYLE = {
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "legend.fontsize": 9,
    "legend.title_fontsize": 9,
    "figure.titlesize": 12,
    "grid.alpha": 0.3,
}
plt.rcParams.update(STYLE)


def _show(ax, image: Tensor | np.ndarray, cmap: str = "gray", vmin: float | None = 0.0, vmax: float | None = 1.0):
    array = image.detach().float().cpu().numpy() if isinstance(image, Tensor) else np.asarray(image)
    if array.ndim == 3:
        array = array[0] if array.shape[0] == 1 else np.clip(array.transpose(1, 2, 0), 0, 1)
    shown = ax.imshow(array, cmap=cmap if array.ndim == 2 else None, vmin=vmin, vmax=vmax, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    return shown


def described(fig) -> dict:
    """What the figure shows, as its PNG's ``aelab:figure`` entry: its title, per panel that has
    any, the panel's title, axis labels and legend entries, and each colour bar's label."""
    title = fig._suptitle.get_text() if fig._suptitle is not None else ""
    panels, bars = [], []
    for ax in fig.axes:
        if ax.get_label() == "<colorbar>":
            bars.append(ax.get_ylabel() or ax.get_xlabel())
            continue
        legend = ax.get_legend()
        panel = {
            "title": ax.get_title(),
            "x": ax.get_xlabel(),
            "y": ax.get_ylabel(),
            "legend": [t.get_text() for t in legend.get_texts()] if legend is not None else [],
        }
        if any(panel.values()):
            panels.append(panel)
    return {"title": title, "panels": panels, "colorbars": bars}


def _save(fig, path: Path) -> Path:
    """Write the figure as a PNG through a temporary sibling (:func:`aelab.outputs.atomic_write`),
    with what it shows in its metadata (:func:`described`)."""
    metadata = {"Software": MARK, "aelab:figure": json.dumps(described(fig))}
    try:
        return atomic_write(
            Path(path), lambda tmp: fig.savefig(tmp, format="png", dpi=DPI, bbox_inches="tight", metadata=metadata)
        )
    finally:
        plt.close(fig)


def _colorbar(fig, mappable, ax, label: str) -> None:
    """A colour bar for what the colour of ``mappable`` means, with its unit in ``label``."""
    bar = fig.colorbar(mappable, ax=ax, fraction=0.03, pad=0.02)
    bar.set_label(label)


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


def error_maps(
    images: Tensor,
    recons: Tensor,
    errors: Tensor,
    names: list[str],
    path: Path,
    title: str | None = None,
    scores: Sequence[float] | None = None,
) -> Path:
    """Anomaly evidence, a column per image: the input, its reconstruction, and the squared error
    per pixel as a heat map (one colour scale for all, so columns compare, with its colour bar);
    under each map the image's anomaly score (the detector's, as the table gives it)."""
    n = len(images)
    fig, axes = plt.subplots(3, n, figsize=(1.8 * n + 1.2, 5.8), squeeze=False)
    top = float(errors.max()) or 1.0
    heat = None
    for c in range(n):
        _show(axes[0, c], images[c])
        axes[0, c].set_title(names[c][:14], fontsize=9)
        _show(axes[1, c], recons[c])
        heat = _show(axes[2, c], errors[c], cmap="inferno", vmin=0.0, vmax=top)
        shown = float(errors[c].mean()) if scores is None else scores[c]
        axes[2, c].set_xlabel(f"{'score' if scores is not None else 'MSE'} {shown:.4g}", fontsize=9)
    for r, label in enumerate(("input", "reconstruction", "squared error")):
        axes[r, 0].set_ylabel(label)
    if title:
        fig.suptitle(title)
    fig.tight_layout(pad=0.2, rect=(0, 0, 0.92, 0.94))
    _colorbar(fig, heat, list(axes[2]), "squared error per pixel")
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
    n = min(n, len(codes_))
    maps = [_code_maps(c)[:max_maps] for c in codes_[:n]]
    k = maps[0].shape[0]
    fig, axes = plt.subplots(n, k + 2, figsize=(1.4 * (k + 2), 1.5 * n), squeeze=False)
    top = max(float(m.max()) for m in maps) or 1.0
    heat = None
    for r in range(n):
        _show(axes[r, 0], originals[r])
        for j in range(k):
            heat = _show(axes[r, 1 + j], maps[r][j], cmap="viridis", vmin=float(codes_.min().clamp(max=0)), vmax=top)
        _show(axes[r, k + 1], recons[r])
    axes[0, 0].set_title("input", fontsize=9)
    for j in range(k):
        axes[0, 1 + j].set_title(f"code {j}" if k > 1 else f"code {tuple(codes_.shape[1:])}", fontsize=9)
    axes[0, k + 1].set_title("output", fontsize=9)
    fig.suptitle(f"{n} test images, their codes and reconstructions")
    fig.tight_layout(pad=0.2, rect=(0, 0, 0.9, 0.95))
    _colorbar(fig, heat, axes.ravel().tolist(), "code value")  # at the right of every panel
    return _save(fig, path)


def curves(
    history: list[dict[str, float]],
    path: Path,
    title: str | None = None,
    references: Sequence[tuple[float, str]] = (),
    loss_label: str = "loss",
    parts: dict[str, str] | None = None,
) -> Path:
    """Train and validation losses per epoch (a GAN's: each player's; the loss's ``parts``, name ->
    label, e.g. a VAE's reconstruction and KL terms, dashed) against whole epochs, ``loss_label``
    naming the loss and its unit: a log scale where they span more than a decade, learning-rate
    drops as small marks on the top edge (not a line each), and ``references`` (value, label),
    e.g. the seed's published number and PCA's test loss, as dashed and dotted lines."""
    parts_named = {f"val_{name}": label for name, label in (parts or {}).items()}
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    epochs = [row["epoch"] for row in history]
    keys = list(
        dict.fromkeys(k for row in history for k in row if k.endswith("_loss") and k.startswith(("train_", "val_")))
    )
    parts = list(dict.fromkeys(k for row in history for k in row if k in parts_named))
    values = []
    for key in keys + parts:
        points = [(row["epoch"], row[key]) for row in history if row.get(key) is not None]
        if points:
            values += [v for _, v in points]
            part = parts_named.get(key)
            label = f"validation {part}" if part else key.replace("_", " ").replace("val ", "validation ")
            ax.plot(
                *zip(*points), ("--" if part else "-") + ("" if len(points) > 30 else "o"), label=label, markersize=3
            )
    for (value, label), style in zip(references, ("--", ":", "-.")):
        ax.axhline(value, color="black", linestyle=style, linewidth=1, label=label)
        values.append(value)
    positive = [v for v in values if v > 0]
    if positive and len(positive) == len(values) and max(positive) / min(positive) > 10:
        ax.set_yscale("log")
    drops = [after["epoch"] for before, after in zip(history, history[1:]) if after.get("lr", 0) < before.get("lr", 0)]
    if drops:
        ax.plot(
            drops,
            [1.0] * len(drops),
            "v",
            color="gray",
            markersize=5,
            transform=ax.get_xaxis_transform(),
            clip_on=False,
            label="learning rate lowered",
        )
    ax.set_xlabel("epoch")
    ax.set_ylabel(loss_label)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # whole epochs: no 0.5, 1.5
    if epochs:
        ax.set_xlim(min(epochs) - 0.5, max(epochs) + 0.5)
    if keys or references:
        ax.legend()
    ax.grid(axis="y", alpha=0.3)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return _save(fig, path)


def overlaid_curves(curves: dict[str, list[tuple[int, float]]], loss_label: str, title: str):
    """Several runs' validation loss per epoch on one axes (``curves``: run name -> (epoch, loss)
    points), for :func:`aelab.report`'s comparison; returns the figure (:func:`png_bytes` it)."""
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    values = []
    for name, points in curves.items():
        ax.plot(*zip(*points), "-" if len(points) > 30 else "-o", markersize=3, label=name)
        values += [v for _, v in points]
    if values and min(values) > 0 and max(values) / min(values) > 10:
        ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"validation {loss_label}")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(axis="y", alpha=0.3)
    ax.legend(title="run", fontsize=8)
    ax.set_title(title)
    fig.tight_layout()
    return fig


def png_bytes(fig) -> bytes:
    """The figure as PNG bytes, with what it shows in its metadata (as :func:`_save` writes it), closed after."""
    import io

    buffer = io.BytesIO()
    try:
        fig.savefig(
            buffer,
            format="png",
            dpi=DPI,
            bbox_inches="tight",
            metadata={"Software": MARK, "aelab:figure": json.dumps(described(fig))},
        )
    finally:
        plt.close(fig)
    return buffer.getvalue()


def grid(
    images: Tensor,
    path: Path,
    nrow: int | None = None,
    title: str | None = None,
    row_labels: Sequence[str] | None = None,
) -> Path:
    """Images (N, C, H, W) in a grid of ``nrow`` columns, no gaps: samples, interpolations;
    ``row_labels`` name the rows (a conditional model's classes)."""
    from torchvision.utils import make_grid

    nrow = nrow or math.ceil(math.sqrt(len(images)))
    canvas = make_grid(images.detach().float().cpu().clamp(0, 1), nrow=nrow, padding=1, pad_value=1.0)
    rows = math.ceil(len(images) / nrow)
    fig, ax = plt.subplots(
        figsize=(
            max(3.0, 0.45 * nrow * images.shape[-1] / 28 + 0.6),
            max(1.2, 0.45 * rows * images.shape[-2] / 28 + (0.4 if title else 0.1)),
        )
    )
    _show(ax, canvas if images.shape[1] == 3 else canvas[:1])
    if row_labels is not None:
        tile = (canvas.shape[-2] - 1) / rows
        ax.set_yticks([tile * (r + 0.5) for r in range(rows)], list(row_labels)[:rows])
        ax.set_ylabel("class")
    if title:
        ax.set_title(title)
    fig.tight_layout(pad=0.2)
    return _save(fig, path)


def manifold(images: Tensor, values: Tensor, path: Path, title: str | None = None) -> Path:
    """A 2-D latent's decoded grid (``len(values)`` x ``len(values)`` images, top row the highest
    z[1]) with the latent values on its axes."""
    from torchvision.utils import make_grid

    n = len(values)
    canvas = make_grid(images.detach().float().cpu().clamp(0, 1), nrow=n, padding=0)
    side = 0.42 * n * images.shape[-1] / 28 + 1.2
    fig, ax = plt.subplots(figsize=(side, side))
    array = canvas.numpy()
    ax.imshow(
        array[0] if images.shape[1] == 1 else array.transpose(1, 2, 0),
        cmap="gray",
        vmin=0,
        vmax=1,
        extent=(-0.5, n - 0.5, n - 0.5, -0.5),
        interpolation="nearest",
    )
    step = max(1, n // 7)
    ticks = list(range(0, n, step))
    ax.set_xticks(ticks, [f"{float(values[i]):.2g}" for i in ticks])
    ax.set_yticks(ticks, [f"{float(values.flip(0)[i]):.2g}" for i in ticks])
    ax.set_xlabel("z[0] (prior quantiles 5% to 95%)")
    ax.set_ylabel("z[1]")
    if title:
        ax.set_title(title)
    fig.tight_layout(pad=0.3)
    return _save(fig, path)


def style_panel(
    images: list[Tensor], losses: list[float], path: Path, title: str, heights: Sequence[int] | None = None
) -> Path:
    """Content, style and result side by side, and the loss after each L-BFGS round, a line a
    size (the pyramid's coarser levels first: their losses are of smaller images)."""
    fig, axes = plt.subplots(1, 4, figsize=(16, 4.2), gridspec_kw={"width_ratios": [1, 1, 1, 0.9]})
    for ax, image, label in zip(axes, images, ("content", "style", "result")):
        _show(ax, image)
        ax.set_title(label)
    heights = np.asarray(heights or [images[-1].shape[-2]] * len(losses))
    rounds = np.arange(1, len(losses) + 1)
    for height in dict.fromkeys(heights.tolist()):
        at = heights == height
        axes[3].plot(rounds[at], np.asarray(losses)[at], "-o", markersize=3, label=f"{height} px high")
    axes[3].set_yscale("log")
    axes[3].set_xlabel("L-BFGS round")
    axes[3].set_ylabel("total loss (content + style + variation)")
    axes[3].legend(title="image size")
    axes[3].grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)


def scatter(
    points: Tensor,
    labels: Tensor | None,
    path: Path,
    title: str | None = None,
    axis_names: tuple[str, str] = ("z[0]", "z[1]"),
    classes: Sequence[str] | None = None,
) -> Path:
    """2-D codes as dots, coloured by class where labels are known (the keras-io VAE's latent plot),
    with a legend naming the classes."""
    fig, ax = plt.subplots(figsize=(8, 6))
    labelled_dots(ax, points.detach().float().cpu().numpy(), None if labels is None else labels.cpu().numpy(), classes)
    ax.set_xlabel(axis_names[0])
    ax.set_ylabel(axis_names[1])
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return _save(fig, path)


def class_label(k: int, classes: Sequence[str] | None) -> str:
    """Class ``k`` as figures and the web page name it: "3: Dress" where the data name their
    classes, else "3"."""
    return f"{k}: {classes[k]}" if classes is not None and k < len(classes) else str(k)


def labelled_dots(
    ax, xy: np.ndarray, labels: np.ndarray | None, classes: Sequence[str] | None = None, size: float = 3
) -> None:
    """Dots coloured by class with a legend beside the axes naming each class ("3: Dress" where the
    data have class names, else the label); past 20 classes, a colour bar of the label instead."""
    if labels is None:
        ax.scatter(xy[:, 0], xy[:, 1], s=size, alpha=0.6)
        return
    present = [int(k) for k in np.unique(labels) if k >= 0]
    if len(present) > 20:
        dots = ax.scatter(xy[:, 0], xy[:, 1], c=labels, cmap="viridis", s=size, alpha=0.7)
        ax.figure.colorbar(dots, ax=ax, label="label")
        return
    palette = plt.get_cmap("tab10" if max(present, default=0) < 10 else "tab20")
    for k in present:
        ax.scatter(
            xy[labels == k, 0],
            xy[labels == k, 1],
            s=size,
            alpha=0.7,
            color=palette(k % palette.N),
            label=class_label(k, classes),
        )
    ax.legend(
        title="class",
        markerscale=12 / max(size, 1),
        fontsize=8,
        title_fontsize=9,
        loc="center left",
        bbox_to_anchor=(1.01, 0.5),
        frameon=False,
    )


def feature_maps(image: np.ndarray, activation: np.ndarray, path: Path, title: str, max_maps: int = 64) -> Path:
    """One layer's output for one image: the input, then each channel's feature map (own colour
    scale each, as Keras' visualisation examples draw them); a dense layer's values as a bar chart."""
    if activation.ndim == 3:
        maps = activation[:max_maps].astype(np.float32)
        cols = min(8, len(maps))
        rows = 1 + math.ceil(len(maps) / cols)
        fig, axes = plt.subplots(rows, cols, figsize=(1.5 * cols, 1.55 * rows), squeeze=False)
        for ax in axes.flat:
            ax.axis("off")
        _show(axes[0, 0], image)
        axes[0, 0].set_title("input", fontsize=9)
        for i, fmap in enumerate(maps):
            ax = axes[1 + i // cols, i % cols]
            _show(ax, fmap, cmap="viridis", vmin=None, vmax=None)
            ax.set_title(str(i), fontsize=8)
    else:
        values = activation.reshape(-1).astype(np.float32)
        fig, axes = plt.subplots(1, 2, figsize=(10, 2.4), gridspec_kw={"width_ratios": [1, 5]})
        _show(axes[0], image)
        axes[0].set_title("input", fontsize=9)
        axes[1].bar(np.arange(len(values)), values, width=1.0)
        axes[1].set_xlabel("unit")
    fig.suptitle(title)
    return _save(fig, path)
