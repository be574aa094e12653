"""Neural style transfer, as seed 3 (003_cc967e401ad40983.txt) builds it after Gatys et al.,
"A Neural Algorithm of Artistic Style" (https://arxiv.org/abs/1508.06576).

The image is optimised directly, from the content image, by L-BFGS in outer rounds of up to 20
loss evaluations each (the seed's ``fmin_l_bfgs_b(..., maxfun=20)``). The seed runs 20 rounds at
full size (``schedule="seed"``), a fresh L-BFGS each round. aelab's default schedule is a pyramid:
3 rounds at a quarter of the height, 3 at half, then 3 at full size, each level starting from
the coarser result upsampled; the coarse rounds cost a sixteenth and a quarter of a full one and
settle the image's large shapes, so the full-size rounds only refine. The pyramid keeps one
L-BFGS a level (``restart="level"``): its memory of the last 10 steps carries from round to
round, where a fresh one spends each round's first evaluations relearning the curvature. Both
measured on a 600x400 photo in benchmarks/results/style.md: the former default (10 coarse
rounds, restarting every round) ended below the seed schedule's final loss in a fifth of its
time; today's ends 6% lower again in two thirds of the former's. The loss, with the seed's
weights:

- content: the summed squared difference of VGG19 ``block5_conv2`` activations, x 0.025;
- style: per layer of ``block1_conv1`` ... ``block5_conv1``, the summed squared difference of Gram
  matrices / (4 x 3^2 x (H x W)^2) (the seed's normalisation, with 3 channels and the image's
  size), the layers averaged, x 1.0;
- total variation: sum((dx^2 + dy^2)^1.25) over the image, x 1e-4.

Two things make it work at the seed's 400 px on photo-sized images, where a plain port stalls
(the same loss after every round, the content image returned unchanged):

- the loss is summed in float64. At 400x600 the style loss is ~4e5 while a first L-BFGS step
  lowers it by ~0.05, under float32's resolution there (~0.03): the line search saw no decrease
  and every round ended where it began;
- the optimiser's variable is the image divided by ``c = ||g||_1 / ||g||_2`` (the first
  gradient's norms): torch's L-BFGS takes a first step of ``1/||g||_1``, which shrinks with the
  pixel count, where scipy's ``fmin_l_bfgs_b`` (the seed's) takes ``1/||g||_2``; in those units the
  two agree whatever the image's size, and later steps are unchanged (L-BFGS scales them itself).

VGG19 runs channels-last, in bf16 autocast where that pays: a GPU with bf16, or a CPU with AMX
(on a CPU with AVX512-BF16 alone it ran at 0.81x float32's speed: benchmarks/results/style.md).
Its features are read in float32 and the losses summed in float64; ``precision`` ("bf16", "32")
overrides the choice.

As in the seed, the image lives in VGG's "caffe" pixel space (BGR, 0-255, ImageNet mean
removed), which sets the scale the total-variation weight was chosen for; the features come from
torchvision's ``vgg19`` architecture, which gets the image converted to its own normalisation,
and are scaled by ``KERAS_SCALE`` to the magnitude Keras' 0-255 network gives, which the seed's
content and style weights were chosen for.

Weights: torchvision's ImageNet VGG19 weights from its cache (``download=True`` fetches them), or
a file in torchvision's state-dict layout (read weights-only; the ``features.*`` keys suffice).
Without them the filters are random: random convolution filters still capture texture statistics
(Ustyuzhaninov et al. 2016, https://arxiv.org/abs/1606.00021), so the result is a real, weaker
transfer. Which ran is said in a warning, the figure's title and RESULT.json.
"""

from __future__ import annotations

import contextlib
import logging
import math
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
from torch import Tensor

from .config import StyleSettings
from .data import image_to_tensor, read_image
from .errors import AelabError, opt
from .limits import STYLE_SIDES, check_count
from .outputs import atomic_write, check_targets
from .progress import Progress, duration, resolve
from .threads import current_job, job
from .vgg import VGGFeatures, from_caffe, layer_names, load_vgg19, to_caffe, vgg_precision

__all__ = [
    "StyleResult",
    "style_transfer",
    "style_transfer_files",
    "gram_matrix",
    "content_loss",
    "style_loss",
    "total_variation_loss",
]  # the public names of aelab.style

log = logging.getLogger("aelab")

# a bf16 round that lowers the loss by less than this fraction hands the rest to float32: bf16's
# rounding stalls L-BFGS's line search once steps get small (measured: no progress for 15 rounds)
BF16_STALL = 1e-2


@dataclass
class StyleResult:
    """What one transfer produced: the image (3, H, W) in [0, 1] and its record."""

    image: Tensor
    losses: list[float]  # the total loss after each outer iteration
    initial_loss: float  # the content image's loss, where L-BFGS starts
    weights: str  # "imagenet", "random" or the weights file
    settings: StyleSettings = field(default_factory=StyleSettings)
    seconds: list[float] = field(default_factory=list)  # each outer iteration's time
    precision: str = "32"  # what VGG19 ran in: "bf16" or "32"
    heights: list[int] = field(default_factory=list)  # each outer iteration's image height (the pyramid's levels)

    def rounds_by_height(self) -> str:
        """``10 at 100 px, 10 at 200 px, 3 at 400 px``: the rounds run at each size, coarse first."""
        return ", ".join(f"{self.heights.count(h)} at {h} px" for h in dict.fromkeys(self.heights))


def gram_matrix(features: Tensor) -> Tensor:
    """(C, H, W) -> (C, C): the features' inner products, the seed's ``gram_matrix``."""
    flat = features.flatten(1)
    return flat @ flat.T


def content_loss(base: Tensor, combination: Tensor) -> Tensor:
    """The summed squared difference, in float64 (see the module's note)."""
    return (combination.double() - base.double()).square().sum()


def style_loss(style: Tensor, combination: Tensor, size: int, channels: int = 3) -> Tensor:
    """The seed's normalisation: ``channels`` is 3 and ``size`` the image's height x width. The Gram
    matrices in float32, their difference summed in float64."""
    return (gram_matrix(style).double() - gram_matrix(combination).double()).square().sum() / (
        4.0 * channels**2 * size**2
    )


def total_variation_loss(image: Tensor) -> Tensor:
    """(1, C, H, W): sum over pixels of (dy^2 + dx^2)^1.25, the seed's ``total_variation_loss``, in float64."""
    image = image.double()
    a = (image[:, :, :-1, :-1] - image[:, :, 1:, :-1]).square()
    b = (image[:, :, :-1, :-1] - image[:, :, :-1, 1:]).square()
    return (a + b).pow(1.25).sum()


def style_transfer(
    content: Tensor | str | Path,
    style: Tensor | str | Path,
    settings: StyleSettings | None = None,
    weights: str | Path | None = None,
    download: bool = False,
    progress: Progress = None,
    on_iteration: Callable[[int, float], None] | None = None,
    **options,
) -> Tensor:
    """``aelab.style_transfer(content, style, ...)``: the content image painted in the style's
    manner, (3, H, W) in [0, 1]. Images are files or RGB tensors (3, H, W) in [0, 1]; ``options``
    are :class:`StyleSettings` fields (``iterations=2``, ``height=256``, ``style_weight=...``)."""
    return transfer(content, style, settings, weights, download, progress, on_iteration, **options).image


def transfer(
    content,
    style,
    settings: StyleSettings | None = None,
    weights=None,
    download: bool = False,
    progress: Progress = None,
    on_iteration: Callable[[int, float], None] | None = None,
    **options,
) -> StyleResult:
    """:func:`style_transfer` with its record: losses per iteration and which weights ran."""
    settings = settings or StyleSettings()
    unknown = sorted(set(options) - set(StyleSettings.__dataclass_fields__))
    if unknown:
        raise AelabError(
            f"unknown style-transfer option {unknown[0]!r}; the options are: "
            f"{', '.join(StyleSettings.__dataclass_fields__)}"
        )
    settings = StyleSettings(**{**asdict(settings), **options})
    settings.check(layer_names())
    settings = replace(settings, iterations=settings.full_rounds)  # the record says how many ran
    content_image = _as_image(content, "content")
    height = check_count(opt("height"), settings.height, *STYLE_SIDES)
    width = round(content_image.shape[-1] * height / content_image.shape[-2])
    if not STYLE_SIDES[0] <= width <= STYLE_SIDES[1]:
        raise AelabError(
            f"at {opt('height', height)} the content image ({content_image.shape[-1]}x{content_image.shape[-2]}) "
            f"would be {width} pixels wide; VGG19 takes {STYLE_SIDES[0]} to {STYLE_SIDES[1]} "
            f"(choose another {opt('height')}, or crop the image)"
        )
    style_image = _as_image(style, "style")
    features, source = load_vgg19(weights, download, settings.seed)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    precision = vgg_precision(settings.precision, device)
    net = VGGFeatures(features, [settings.content_layer, *settings.style_layers]).to(device, memory_format=LAYOUT)
    levels = pyramid(settings, height, width)
    clock = RoundClock(levels)
    mode = resolve(progress)
    bar = None
    if mode == "bar":
        from tqdm.auto import tqdm

        bar = tqdm(
            total=clock.total, desc=f"style transfer ({precision})", unit="round", file=sys.stdout, dynamic_ncols=True
        )
    x, losses, seconds, sizes, initial_loss = None, [], [], [], math.nan

    def after_round(loss: float, spent: float) -> None:
        losses.append(loss)
        seconds.append(spent)
        sizes.append(h)
        left = clock.left(len(losses), seconds)
        if bar is not None:
            bar.update(1)
            bar.set_postfix_str(f"{w}x{h}, loss {loss:.4g}" + (f", about {duration(left)} left" if left else ""))
        elif mode is not None:
            print(
                f"style transfer: round {len(losses)}/{clock.total} at {w}x{h}: loss {loss:.4g}, {spent:.1f} s"
                + (f"; about {duration(left)} left" if left else ""),
                flush=True,
            )
        if on_iteration:
            on_iteration(len(losses), loss)

    with job():  # one thread count for the whole transfer, its targets and probes too
        for h, w, rounds in levels:
            contents = _resize(content_image, h, w).to(device)
            # the seed starts from the content image; a finer level from the coarser result, upsampled
            start = to_caffe(contents) if x is None else _resize_caffe(x, h, w)
            problem = StyleProblem(net, settings, contents, _resize(style_image, h, w).to(device), precision)
            result, start_loss = problem.optimise(start, rounds, after_round)
            if (h, w) == (height, width):  # the record's start: the content image's loss at full size
                initial_loss = start_loss if x is None else problem.loss_value(to_caffe(contents))
            x = result
    if bar is not None:
        bar.close()
    image = from_caffe(x.detach().cpu()).clamp(0, 1)[0]
    return StyleResult(image, losses, initial_loss, source, settings, seconds, precision, sizes)


LAYOUT = torch.channels_last  # faster for VGG19's convolutions in both precisions


def pyramid(settings: StyleSettings, height: int, width: int) -> list[tuple[int, int, int]]:
    """The levels a transfer runs, coarse to fine, as (height, width, rounds): the seed's schedule
    is its rounds at full size; the pyramid first runs ``coarse_iterations`` rounds at each of
    :data:`PYRAMID` x the size (levels under :data:`SMALLEST` pixels left out)."""
    full = [(height, width, settings.full_rounds)]
    if settings.schedule == "seed":
        return full
    coarse = [(round(height * f), round(width * f), settings.coarse_iterations) for f in PYRAMID]
    return [level for level in coarse if min(level[:2]) >= SMALLEST] + full


PYRAMID = (0.25, 0.5)  # the coarser levels' sides, as a fraction of the full one
SMALLEST = 32  # a level's shorter side at least this (VGG19 pools 4 times before block5)


class RoundClock:
    """How long the rounds left will take, from the seconds a pixel cost so far (a round's cost
    grows with its level's pixel count)."""

    def __init__(self, levels: list[tuple[int, int, int]]) -> None:
        self.pixels = [h * w for h, w, rounds in levels for _ in range(rounds)]
        self.total = len(self.pixels)

    def left(self, done: int, seconds: list[float]) -> float:
        """Seconds the rounds after the first ``done`` will take, at the latest round's rate a pixel."""
        if done >= self.total:
            return 0.0
        return seconds[done - 1] / self.pixels[done - 1] * sum(self.pixels[done:])


class StyleProblem:
    """The seed's loss at one size (content, style and total variation against fixed targets) and
    its L-BFGS rounds."""

    def __init__(
        self, net: VGGFeatures, settings: StyleSettings, content: Tensor, style: Tensor, precision: str
    ) -> None:
        self.net, self.settings, self.arithmetic = net, settings, precision  # bf16 until it stalls, then float32
        self.size = content.shape[-2] * content.shape[-1]
        self.device = content.device.type
        with torch.no_grad():
            self.content_target = self.features_of(to_caffe(content))[settings.content_layer][0]
            self.style_targets = {
                k: v[0] for k, v in self.features_of(to_caffe(style)).items() if k in settings.style_layers
            }

    def features_of(self, caffe: Tensor) -> dict[str, Tensor]:
        """VGG19's activations in float32, computed in the round's arithmetic."""
        amp = (
            torch.autocast(self.device, dtype=torch.bfloat16) if self.arithmetic == "bf16" else contextlib.nullcontext()
        )
        with amp:
            outputs = self.net(caffe.contiguous(memory_format=LAYOUT))
        return {name: value.float() for name, value in outputs.items()}

    def loss(self, x: Tensor) -> Tensor:
        s = self.settings
        outputs = self.features_of(x)
        loss = s.content_weight * content_loss(self.content_target, outputs[s.content_layer][0])
        for layer in s.style_layers:
            loss = loss + s.style_weight / len(s.style_layers) * style_loss(
                self.style_targets[layer], outputs[layer][0], self.size
            )
        return loss + s.tv_weight * total_variation_loss(x)

    def loss_value(self, x: Tensor) -> float:
        with torch.no_grad():
            return float(self.loss(x))

    def optimise(self, start: Tensor, rounds: int, on_round: Callable[[float, float], object]) -> tuple[Tensor, float]:
        """``rounds`` rounds of L-BFGS from ``start`` (caffe space), and ``start``'s loss;
        ``on_round(loss, seconds)`` after each. L-BFGS moves z = x / scale (see the module's note)."""
        start = start.detach().contiguous()  # L-BFGS flattens z and its gradient with view()
        probe = start.clone().requires_grad_(True)
        start_loss = self.loss(probe)
        start_loss.backward()
        norm = float(probe.grad.norm())
        scale = float(probe.grad.abs().sum()) / norm if norm > 0 else 1.0
        z = (start / scale).contiguous().requires_grad_(True)
        self._before = float(start_loss.detach())
        threads = current_job()  # each evaluation a step of the transfer's job, timed per pixel

        def lbfgs() -> torch.optim.LBFGS:  # the memory of the seed's fmin_l_bfgs_b: 10 pairs
            s = self.settings
            return torch.optim.LBFGS(
                [z], max_iter=s.evaluations, max_eval=s.evaluations, history_size=10, line_search_fn="strong_wolfe"
            )

        optimizer = lbfgs()  # kept across this size's rounds unless each round restarts
        iteration = 0
        while iteration < rounds:
            began = time.perf_counter()
            if iteration and self.settings.restarts_each_round:  # as the seed calls fmin_l_bfgs_b anew
                optimizer = lbfgs()

            def closure() -> Tensor:
                started = time.perf_counter()
                optimizer.zero_grad()  # noqa: B023 - called by this round's optimizer.step only
                loss = self.loss(z * scale)
                loss.backward()
                if threads is not None:
                    threads.step(time.perf_counter() - started, self.size)
                return loss

            optimizer.step(closure)
            arithmetic = self.arithmetic
            loss = self._checked(self.loss_value(z * scale), iteration)
            if self.arithmetic != arithmetic:  # a bf16 round that stalled does not count: float32 does it again
                continue
            on_round(loss, time.perf_counter() - began)
            iteration += 1
        return (z * scale).detach(), float(start_loss.detach())

    def _checked(self, loss: float, iteration: int) -> float:
        """A round's final loss, checked; bf16 gives way to float32 once it stalls."""
        if not math.isfinite(loss):
            raise AelabError(f"the loss became {loss} at iteration {iteration + 1}; lower the weights")
        if self.arithmetic == "bf16" and self._before - loss < BF16_STALL * self._before:
            self.arithmetic = "32"
            log.info("style transfer: bf16 stalled at round %d; float32 does it again and goes on", iteration + 1)
        self._before = loss
        return loss


def _as_image(image: Tensor | str | Path, what: str) -> Tensor:
    if isinstance(image, (str, Path)):
        return image_to_tensor(read_image(image), 3, None)[None]
    if not isinstance(image, Tensor) or image.dim() != 3 or image.shape[0] != 3:
        raise AelabError(
            f"the {what} image must be a file or an RGB tensor (3, H, W), "
            f"got {tuple(image.shape) if isinstance(image, Tensor) else type(image).__name__}"
        )
    if image.dtype == torch.uint8:
        image = image.float() / 255.0
    if not (0 <= float(image.min()) and float(image.max()) <= 1):
        raise AelabError(f"the {what} image's values must lie in [0, 1]")
    return image.float()[None]


def _resize_caffe(image: Tensor, height: int, width: int) -> Tensor:
    """A coarser level's result (caffe space), upsampled bilinearly to the next level's size."""
    return torch.nn.functional.interpolate(image, size=(height, width), mode="bilinear", align_corners=False)


def _resize(image: Tensor, height: int, width: int) -> Tensor:
    """(1, 3, h, w) -> (1, 3, height, width), bilinear with antialiasing (the seed's load_img(target_size))."""
    return torch.nn.functional.interpolate(
        image, size=(height, width), mode="bilinear", antialias=True, align_corners=False
    ).clamp(0, 1)


def style_transfer_files(
    content: str | Path,
    style: str | Path,
    out: str | Path,
    weights=None,
    download: bool = False,
    progress: bool = True,
    overwrite: bool = False,
    **options,
) -> tuple[StyleResult, list[Path]]:
    """`aelab style`: write ``out`` (PNG), ``out``-panel.png (content, style, result and the loss per
    iteration) and ``out``.json (the settings, the weights that ran, the losses). All three are
    checked before the transfer: none may be an input, and an existing one is replaced only with
    ``overwrite``."""
    from torchvision.utils import save_image

    from . import figures
    from .runs import write_json

    out = Path(out)
    if out.suffix.lower() != ".png":
        raise AelabError(f"{opt('out')} must name a .png file, got {out}")
    out, panel_path, record = check_targets(
        [out, out.with_name(f"{out.stem}-panel.png"), out.with_suffix(".json")],
        overwrite=overwrite,
        inputs=[content, style, *([weights] if weights else [])],
    )
    # each file read once: a missing or unreadable image fails here, before any work
    images = [_as_image(path, what)[0] for path, what in ((content, "content"), (style, "style"))]
    result = transfer(*images, None, weights, download, progress, **options)
    atomic_write(out, lambda tmp: save_image(result.image, tmp, format="png"))
    h, w = result.image.shape[-2:]
    inputs = [_resize(image[None], h, w)[0] for image in images]
    what = (
        "ImageNet VGG19"
        if result.weights == "imagenet"
        else (
            "random VGG19 filters (no pretrained weights)"
            if result.weights == "random"
            else f"VGG19 from {result.weights}"
        )
    )
    panel = figures.style_panel(
        [*inputs, result.image], result.losses, panel_path, f"style transfer, {what}", result.heights
    )
    write_json(
        record,
        {
            "content": str(content),
            "style": str(style),
            "result": str(out),
            "weights": result.weights,
            "settings": {**asdict(result.settings), "style_layers": list(result.settings.style_layers)},
            "initial_loss": result.initial_loss,
            "losses": result.losses,
            "seconds": [round(t, 3) for t in result.seconds],
            "heights": result.heights,
            "precision": result.precision,
        },
    )
    return result, [out, panel, record]
