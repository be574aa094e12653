"""Style transfer's speed and quality by VGG19 arithmetic, on this machine, in one run.

    python benchmarks/style_speed.py                 # per-evaluation times and a few rounds of each
    python benchmarks/style_speed.py --full          # also `aelab style` at the seed's defaults

Inputs: a smooth 600x400 'photo' (colour ramps) and a blurred-noise texture (300x300), drawn
here; VGG19's filters are random unless torchvision's ImageNet weights are cached (offline
machines have none), which changes the loss's values but not the arithmetic's cost.
Measured: one loss evaluation (VGG19 forward and backward through the image, the seed's losses)
at 400x600, in float32 contiguous, float32 channels-last and bf16 autocast channels-last; then
``--rounds`` rounds of 20 evaluations in each precision from the same start, the loss after
each. Writes benchmarks/results/style.md.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from torchvision.utils import save_image

from aelab.config import StyleSettings
from aelab.style import VGGFeatures, load_vgg19, style_loss, to_caffe, total_variation_loss, transfer
from speed_common import cpu_line

RESULTS = Path(__file__).resolve().parent / "results" / "style.md"


def inputs() -> tuple[torch.Tensor, torch.Tensor]:
    rows, cols = torch.meshgrid(torch.linspace(0, 1, 400), torch.linspace(0, 1, 600), indexing="ij")
    photo = torch.stack([cols, rows, (rows + cols) / 2])
    noise = torch.nn.functional.avg_pool2d(torch.rand(1, 3, 300, 300, generator=torch.Generator().manual_seed(0)),
                                           9, 1, 4)[0]
    return photo, (noise - noise.min()) / (noise.max() - noise.min())


def evaluation_seconds(layout, bf16: bool, repeats: int) -> float:
    """The median time of one loss evaluation with its backward, at 400x600."""
    settings = StyleSettings()
    features, _ = load_vgg19(None, False, 0)
    net = VGGFeatures(features, [settings.content_layer, *settings.style_layers]).to(memory_format=layout)
    photo, _ = inputs()
    start = to_caffe(photo[None])
    times = []
    for _ in range(repeats + 1):
        x = start.clone().requires_grad_(True)
        began = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext():
            outputs = net(x.contiguous(memory_format=layout))
        loss = sum(style_loss(v[0].float().detach() * 0.9, v[0].float(), 240_000) for v in outputs.values())
        (loss + total_variation_loss(x)).backward()
        times.append(time.perf_counter() - began)
    return statistics.median(times[1:])  # the first pays for oneDNN's kernel choice


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3, help="rounds of 20 evaluations per precision")
    parser.add_argument("--full", action="store_true", help="also `aelab style` at the seed's defaults (20 rounds)")
    args = parser.parse_args(argv)
    cpu = cpu_line()
    print(cpu, flush=True)
    lines = [f"## {datetime.date.today()}: {cpu}", "", "One loss evaluation (forward and backward) at 400x600:", "",
             "| VGG19 arithmetic | seconds | vs float32 contiguous |", "|---|---|---|"]
    base = None
    for name, layout, bf16 in (("float32, contiguous", torch.contiguous_format, False),
                               ("float32, channels-last", torch.channels_last, False),
                               ("bf16 autocast, channels-last", torch.channels_last, True)):
        seconds = evaluation_seconds(layout, bf16, args.repeats)
        base = base or seconds
        lines.append(f"| {name} | {seconds:.2f} | {base / seconds:.2f}x |")
        print(lines[-1], flush=True)
    photo, texture = inputs()
    lines += ["", f"{args.rounds} rounds of 20 evaluations at 400x600 from the content image (the loss after each):",
              "", "| precision | start | after each round | seconds a round |", "|---|---|---|---|"]
    for precision in ("32", "bf16"):
        result = transfer(photo, texture, iterations=args.rounds, precision=precision)
        lines.append(f"| {precision} | {result.initial_loss:.4g} | {', '.join(f'{v:.4g}' for v in result.losses)} | "
                     f"{statistics.mean(result.seconds):.1f} |")
        print(lines[-1], flush=True)
    if args.full:
        with tempfile.TemporaryDirectory() as folder:
            content, style = Path(folder) / "photo.png", Path(folder) / "texture.png"
            save_image(photo, content)
            save_image(texture, style)
            command = [sys.executable, "-m", "aelab.cli", "style", str(content), str(style), "--out",
                       str(Path(folder) / "result.png"), "--no-progress"]
            began = time.perf_counter()
            done = subprocess.run(command, capture_output=True, text=True)
            wall = time.perf_counter() - began
        said = done.stdout.strip().splitlines()[0] if done.returncode == 0 else done.stderr.strip()[-300:]
        lines += ["", "`aelab style photo.png texture.png --out result.png` at the seed's defaults (400 px, 20 rounds "
                  f"of 20 evaluations, precision auto): {wall:.0f} s in all; it said: {said}"]
        print(lines[-1], flush=True)
    lines += ["", "Made by `python benchmarks/style_speed.py" + (f" --rounds {args.rounds}" if args.rounds != 3 else "")
              + (" --full" if args.full else "") + "`.", ""]
    old = RESULTS.read_text().split("\n", 2)[2] if RESULTS.is_file() else ""
    RESULTS.write_text("# Style transfer: speed and quality by arithmetic\n\n" + "\n".join(lines) + "\n" + old)
    return 0


if __name__ == "__main__":
    sys.exit(main())
