"""One run on the web page: :class:`Explorer` answers each tab (reconstruct, denoise, score,
the latent scatter and its clicks, a path, samples, text), and the images going in and out."""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from PIL import Image

from .. import inference
from ..errors import AelabError
from ..evaluation import run_data
from ..families import family_of
from ..nets.base import Autoencoder, Conditional, Generative

log = logging.getLogger("aelab")


SHOWN = 196  # images are drawn at this many pixels a side (nearest neighbour: the pixels stay visible)


GRID_SHOWN = 560  # a grid of samples or a gallery picture


GALLERY = 24  # test images to pick from


def shown(image: torch.Tensor, side: int = SHOWN) -> np.ndarray:
    """(C, H, W) in [0, 1] as a uint8 picture about ``side`` pixels wide, each pixel a block
    (nearest neighbour: a 28-pixel digit is drawn at 196 pixels, not blurred, not as a thumbnail)."""
    array = (image.detach().float().clamp(0, 1).cpu().numpy() * 255).round().astype(np.uint8)
    picture = Image.fromarray(array[0] if array.shape[0] == 1 else array.transpose(1, 2, 0))
    scale = max(1, side // max(picture.size))
    return np.asarray(picture.resize((picture.width * scale, picture.height * scale), Image.Resampling.NEAREST))


def from_sketch(value: Any, channels: int, size: int) -> torch.Tensor | None:
    """A drawing (Gradio's sketchpad value) as the model's input, prepared as MNIST's digits were:
    strokes light on dark, cropped to their box, scaled to fit 20/28 of the side, centred."""
    array = value.get("composite") if isinstance(value, dict) else value
    if array is None:
        return None
    array = np.asarray(array, dtype=np.float32) / 255.0
    if array.ndim == 2:
        ink = 1 - array
    else:
        ink = 1 - array[..., :3].mean(axis=-1)
        if array.shape[-1] == 4:  # a transparent canvas: the strokes are what is opaque
            ink = ink * array[..., 3]
    if ink.max() < 0.05:
        return None  # nothing drawn yet
    rows, cols = np.nonzero(ink > 0.05)
    crop = ink[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    side = round(size * 20 / 28)
    scale = side / max(crop.shape)
    small = Image.fromarray((crop * 255).astype(np.uint8)).resize(
        (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale))), Image.Resampling.LANCZOS
    )
    canvas = Image.new("L", (size, size), 0)
    canvas.paste(small, ((size - small.width) // 2, (size - small.height) // 2))
    x = torch.from_numpy(np.asarray(canvas, dtype=np.float32) / 255.0)[None]
    return x.expand(channels, -1, -1).clone()


def from_upload(array: Any, channels: int, size: int) -> torch.Tensor | None:
    """An uploaded picture as the model's input (converted and resized as `aelab reconstruct` does)."""
    from ..data import image_to_tensor

    if array is None:
        return None
    return image_to_tensor(Image.fromarray(np.asarray(array).astype(np.uint8)), channels, size)


@dataclass
class Explorer:
    """What the page does with one run: each method takes and returns what Gradio passes."""

    run: Any
    name: str
    _detector: Any = None
    _latent: dict = field(default_factory=dict)  # the scatter's figure and its mapping back to codes
    _data: Any = None  # the run's data, read once (AelabError: a run without data to read)
    _gallery: tuple[torch.Tensor, list[tuple[np.ndarray, str]]] | None = None

    @property
    def model(self):
        return self.run.model

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.model.input_shape) if isinstance(self.model, (Autoencoder, Generative)) else (1, 28, 28)

    def is_autoencoder(self) -> bool:
        return isinstance(self.model, Autoencoder)

    @property
    def conditional(self) -> bool:
        return isinstance(self.model, Conditional)

    def label_argument(self, label: Any) -> dict:
        if not self.conditional:
            return {}
        return {"labels": int(label or 0)}

    @property
    def denoising(self) -> bool:
        """Trained to denoise (noise added to its inputs): only then does a denoised panel mean something."""
        return isinstance(self.model, Autoencoder) and self.noise > 0

    @property
    def noise(self) -> float:
        """The noise the run's model trained with (its family's answer; 0.0: none)."""
        return family_of(self.run.config.model).input_noise(self.run.config.train)

    def data(self):
        """The run's data (:func:`~aelab.evaluation.run_data`), read once for the gallery and the scatter."""
        if self._data is None:
            try:
                self._data = run_data(self.run)
            except AelabError as error:  # e.g. a run trained on arrays it did not keep
                self._data = error
        if isinstance(self._data, AelabError):
            raise self._data
        return self._data

    @property
    def classes(self) -> tuple[str, ...] | None:
        """The data's class names (None: unnamed, or no data to read)."""
        try:
            return self.data().classes
        except AelabError:
            return None

    def test_images(self) -> tuple[torch.Tensor, list[tuple[np.ndarray, str]]]:
        """The first GALLERY test images of the run's data and the gallery's (picture, caption) pairs,
        captioned with their class; an empty gallery when the run has no dataset to read."""
        if self._gallery is None:
            try:
                data = self.data()
            except AelabError:
                self._gallery = (torch.zeros(0, *self.shape), [])
                return self._gallery
            images = data.test[:GALLERY]
            labels = data.test_labels[:GALLERY].tolist() if data.test_labels is not None else [None] * len(images)
            captions = [
                data.classes[k]
                if data.classes and k is not None and k < len(data.classes)
                else ""
                if k is None
                else f"class {k}"
                for k in labels
            ]
            self._gallery = (images, [(shown(image, 84), caption) for image, caption in zip(images, captions)])
        return self._gallery

    def analyse(self, x: torch.Tensor | None, noise: float, label: Any = None) -> tuple[Any, Any, Any, str, Any]:
        """The input as the model sees it (with the noise added, for a denoising run), its
        reconstruction, the denoised copy (a denoising run only, else None), the anomaly score's
        sentence and the validation scores' distribution with this image's score marked."""
        from ..data import add_noise

        if x is None:
            return None, None, None, "Pick a test image, draw a digit or upload an image.", None
        x = x[None]
        extra = self.label_argument(label)
        recon = inference.reconstruct(self.run, x, **extra)[0]
        if not self.denoising:
            return (shown(x[0]), shown(recon), None, *self.score(x, recon))
        noisy = add_noise(x, float(noise), torch.Generator().manual_seed(0)) if noise else x
        denoised = inference.reconstruct(self.run, noisy, **extra)[0]
        return (shown(noisy[0]), shown(recon), shown(denoised), *self.score(x, recon))

    def score(self, x: torch.Tensor, recon: torch.Tensor) -> tuple[str, np.ndarray | None]:
        """The anomaly score's sentence and the picture of where it falls among the validation
        images' scores (None where the run has no detector: a conditional model)."""
        mse = float(((recon - x[0]) ** 2).mean())
        if self.conditional:
            return f"Mean squared reconstruction error: {mse:.5f}", None
        try:
            if self._detector is None:
                from ..anomaly import AnomalyDetector

                self._detector = AnomalyDetector.from_run(self.run, method="reconstruction")  # the error the page maps
        except AelabError as error:
            return f"Mean squared reconstruction error: {mse:.5f} (no anomaly threshold: {error})", None
        score = float(self._detector.score_maps(((recon - x[0]) ** 2).mean(dim=0, keepdim=True).numpy())[0])
        threshold = self._detector.threshold_
        verdict = "**unusual**" if score > threshold else "normal"
        text = (
            f"Anomaly score: {score:.5f}, {verdict} (threshold {threshold:.5f}, the "
            f"{1 - self._detector.contamination:.0%} quantile of the validation images' scores)"
        )
        return text, self.score_picture(score)

    def score_picture(self, score: float) -> np.ndarray:
        """The validation images' anomaly scores as a histogram, the threshold and ``score`` as lines."""
        import matplotlib.pyplot as plt

        from .. import figures  # noqa: F401 - its backend (Agg) and style for every figure

        scores = np.asarray(self._detector.decision_scores_, dtype=np.float64)
        fig, ax = plt.subplots(figsize=(7.5, 2.8), dpi=100)
        ax.hist(scores, bins=40, color="#9bb7d4", label=f"validation images ({len(scores):,})")
        ax.axvline(self._detector.threshold_, color="black", linestyle="--", label="threshold")
        ax.axvline(score, color="#d62728", linewidth=2, label=f"this image: {score:.3g}")
        ax.set_xlabel("anomaly score (higher: more unusual)")
        ax.set_ylabel("images")
        ax.set_title("where this image falls among the validation images")
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
        fig.tight_layout()
        return _picture(fig)

    # the latent scatter: drawn once, a click maps back to a code through the figure's axes and is marked
    def latent_picture(self) -> np.ndarray:
        import matplotlib.pyplot as plt

        from ..figures import labelled_dots
        from ..latent_space import on_a_plane
        from ..metrics import reconstruct

        data = self.data()
        images = data.test[:2000]
        labels = data.test_labels[:2000] if data.test_labels is not None else None
        given = {"labels": labels} if self.conditional and labels is not None else {}
        _, codes = reconstruct(self.model, images, labels=given.get("labels"))
        points, mean, basis, axes = on_a_plane(codes.flatten(1))
        axes_names = tuple(f"{name} (code value)" if name.startswith("z[") else f"{name} of the codes" for name in axes)
        fig, ax = plt.subplots(figsize=(7.5, 5), dpi=100)
        labelled_dots(ax, points.numpy(), None if labels is None else labels.numpy(), data.classes, size=4)
        ax.set_xlabel(axes_names[0])
        ax.set_ylabel(axes_names[1])
        ax.set_title(f"{len(points):,} test images' codes: click a point to decode it")
        fig.tight_layout()
        fig.canvas.draw()
        height = fig.canvas.get_width_height()[1]
        to_data = ax.transData.inverted()
        (marker,) = ax.plot([], [], "x", color="black", markersize=14, markeredgewidth=3, zorder=5)
        self._latent.update(
            mean=mean,
            basis=basis,
            code_shape=tuple(codes.shape[1:]),
            figure=fig,
            marker=marker,
            to_data=lambda px, py: to_data.transform((px, height - py)),
        )
        return _picture(fig, close=False)

    def decode_point(self, px: float, py: float, label: Any = None) -> tuple[np.ndarray, np.ndarray, str]:
        """The scatter with the point under pixel (px, py) of its picture marked, that point's
        decoding, and where it is."""
        if "figure" not in self._latent:
            self.latent_picture()
        x, y = self._latent["to_data"](px, py)
        flat = self._latent["mean"] + torch.tensor([x, y], dtype=torch.float64) @ self._latent["basis"]
        z = flat.float().reshape(1, *self._latent["code_shape"])
        image = inference.decode(self.run, z, **self.label_argument(label))[0]
        self._latent["marker"].set_data([x], [y])
        return (
            _picture(self._latent["figure"], close=False),
            shown(image),
            f"decoded the point ({x:.3g}, {y:.3g}), marked x",
        )

    def path(self, a: Any, b: Any, steps: int, label: Any = None) -> np.ndarray | None:
        if a is None or b is None:
            return None
        c, size, _ = self.shape
        ends = [from_upload(end, c, size)[None] for end in (a, b)]
        extra = {} if not self.conditional else {"labels": int(label or 0)}
        strip = inference.interpolate(self.run, ends[0], ends[1], steps=int(steps), **extra)
        return np.concatenate([shown(image) for image in strip], axis=1)

    def samples(self, n: int, seed: int, label: Any = None) -> np.ndarray:
        from torchvision.utils import make_grid

        extra = {"labels": int(label)} if self.conditional and label is not None else {}
        images = torch.from_numpy(inference.sample(self.run, int(n), seed=int(seed), **extra))
        grid = make_grid(images.float().clamp(0, 1), nrow=int(np.ceil(np.sqrt(len(images)))), padding=1, pad_value=1)
        return shown(grid, GRID_SHOWN)

    def generate(self, prompt: str, temperature: float, length: int, seed: int) -> str:
        try:
            return inference.generate(
                self.run, prompt, length=int(length), temperature=float(temperature), seed=int(seed)
            )
        except AelabError as error:
            return f"error: {error}"


def _picture(fig, close: bool = True) -> np.ndarray:
    """A matplotlib figure as an RGB array (closed after, unless ``close`` is False: the scatter is drawn again)."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    if close:
        plt.close(fig)
    return np.asarray(Image.open(buffer).convert("RGB"))
