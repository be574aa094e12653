"""The README's style-transfer figure, from two images this script draws (nothing copyrighted).

    python benchmarks/style_example.py                    # docs/style-random-filters.png
    python benchmarks/style_example.py --weights vgg19.pth --out docs/style-imagenet.png

Content: a landscape (sky, sun, two hills). Style: swirling colour bands. With no weights given
and none in torchvision's cache, VGG19's filters are random (the command says so).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from aelab.style import style_transfer_files

DOCS = Path(__file__).resolve().parent.parent / "docs"


def landscape(width: int = 240, height: int = 160) -> Image.Image:
    sky = np.linspace([90, 150, 235], [200, 225, 250], height).astype(np.uint8)
    image = Image.fromarray(np.repeat(sky[:, None, :], width, axis=1))
    draw = ImageDraw.Draw(image)
    draw.ellipse((160, 20, 200, 60), fill=(250, 210, 60))
    draw.ellipse((-60, 90, 150, 260), fill=(60, 140, 60))
    draw.ellipse((90, 110, 320, 300), fill=(40, 110, 50))
    return image


def swirls(size: int = 160) -> Image.Image:
    y, x = np.mgrid[0:size, 0:size] / size - 0.5
    angle = np.arctan2(y, x) + 12 * np.hypot(x, y)
    bands = (np.sin(6 * angle) + 1) / 2
    palette = np.array([[30, 40, 120], [240, 180, 40], [200, 60, 50]], dtype=float)
    mix = np.stack([bands, 1 - bands, (np.cos(9 * angle) + 1) / 4], -1)
    colours = mix @ palette / mix.sum(-1, keepdims=True)
    return Image.fromarray(colours.clip(0, 255).astype(np.uint8))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DOCS / "style-random-filters.png", help="the panel to write")
    parser.add_argument("--weights", help="a torchvision vgg19 state dict")
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--height", type=int, default=160)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        content, style = Path(tmp) / "landscape.png", Path(tmp) / "swirls.png"
        landscape().save(content)
        swirls().save(style)
        result, written = style_transfer_files(
            content,
            style,
            Path(tmp) / "result.png",
            weights=args.weights,
            iterations=args.iterations,
            height=args.height,
        )
        args.out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(written[1], args.out)
    print(
        f"{result.weights} weights: loss {result.losses[0]:.4g} -> {result.losses[-1]:.4g} in "
        f"{len(result.losses)} iterations; wrote {args.out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
