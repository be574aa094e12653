"""Style transfer's speed and quality by VGG19 arithmetic, on this machine, in one run.

    python benchmarks/style_speed.py                 # per-evaluation times and a few rounds of each
    python benchmarks/style_speed.py --full          # also `aelab style` at its defaults
    python benchmarks/style_speed.py --command 3     # only `aelab style` at its defaults, 3 times
    python benchmarks/style_speed.py --command 3 --precisions auto 32   # and at --precision 32, alternated
    python benchmarks/style_speed.py --schedules     # the seed's schedule against the pyramid, ~13 min
    python benchmarks/style_speed.py --candidates 10/3/round 5/2   # other pyramids against the default

Inputs: a smooth 600x400 'photo' (colour ramps) and a blurred-noise texture (300x300), drawn
here; VGG19's filters are random unless torchvision's ImageNet weights are cached (offline
machines have none), which changes the loss's values but not the arithmetic's cost.
Measured: one loss evaluation (VGG19 forward and backward through the image, the seed's losses)
at 400x600, in float32 contiguous, float32 channels-last and bf16 autocast channels-last; then
``--rounds`` rounds of 20 evaluations in each precision from the same start, the loss after
each. ``--schedules`` instead runs the seed's schedule (20 rounds at full size) and the pyramid
(aelab's default: rounds at 1/4 and 1/2 of the height first) at 400x600 with the same filters,
and reports the loss at full size against seconds for each, how soon the pyramid reaches the
seed's final loss, and both results side by side (results/figures/style-schedules.png).
``--candidates C/F[/R] ...`` runs the default pyramid, then each candidate (C rounds at each
coarser level, F at full size; R: L-BFGS restarted every ``round`` or once a ``level``) from the
same start, and reports each one's seconds and final loss at full size against the default's: a
faster schedule may replace the default only where its final loss is no higher.
Writes benchmarks/results/style.md.
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
from speed_common import cpu_line
from torchvision.utils import save_image

from aelab.config import StyleSettings
from aelab.style import style_loss, total_variation_loss, transfer
from aelab.vgg import VGGFeatures, load_vgg19, to_caffe

RESULTS = Path(__file__).resolve().parent / "results" / "style.md"
FIGURE = RESULTS.parent / "figures" / "style-schedules.png"


def schedules() -> list[str]:
    """The seed's schedule against the pyramid, at the defaults otherwise: the table's lines, and
    the figure (the loss at full size against seconds; the two results beside the inputs)."""
    photo, texture = inputs()
    results = {name: transfer(photo, texture, schedule=name) for name in ("seed", "pyramid")}
    curves = {}
    for name, result in results.items():
        clock, curve = 0.0, [(0.0, result.initial_loss)]
        for loss, seconds, height in zip(result.losses, result.seconds, result.heights):
            clock += seconds
            if height == 400:  # the coarser levels' losses are of smaller images
                curve.append((clock, loss))
        curves[name] = curve
    seed_end, seed_time = curves["seed"][-1][1], curves["seed"][-1][0]
    reached = next((t for t, loss in curves["pyramid"][1:] if loss <= seed_end), None)
    pyramid = results["pyramid"]
    levels = pyramid.rounds_by_height()
    lines = [
        "The seed's schedule against the pyramid at 400x600 (the same inputs and filters; the loss at full size):",
        "",
        "| schedule | rounds | seconds | final loss | seconds to the seed's final loss |",
        "|---|---|---|---|---|",
        f"| seed | 20 at 400 px | {seed_time:.0f} | {seed_end:.5g} | {seed_time:.0f} (1.00) |",
        f"| pyramid (default) | {levels} | {curves['pyramid'][-1][0]:.0f} | {curves['pyramid'][-1][1]:.5g} | "
        + (f"{reached:.0f} ({reached / seed_time:.2f})" if reached is not None else "not reached")
        + " |",
        "",
        "Loss at full size after each round, against seconds:",
        "",
        "| schedule | (seconds, loss) |",
        "|---|---|",
    ]
    lines += [
        f"| {name} | " + ", ".join(f"({t:.0f}, {loss:.4g})" for t, loss in curve) + " |"
        for name, curve in curves.items()
    ]
    lines += ["", f"![the two schedules](figures/{FIGURE.name})"]
    draw(curves, [photo, texture, results["seed"].image, pyramid.image])
    return lines


def candidates(specs: list[str], photo=None, texture=None, **options) -> list[str]:
    """The default pyramid against other schedules (``C/F/R``, see the module's note), the same inputs
    and filters: seconds and the final loss at full size, one line each. ``options``
    (StyleSettings fields) apply to every run (tests use a small ``height``)."""
    photo, texture = (photo, texture) if photo is not None else inputs()
    settings = StyleSettings(**options)
    height = settings.height
    restart = "round" if settings.restarts_each_round else "level"
    default = f"default ({settings.coarse_iterations}/{settings.full_rounds}/{restart})"
    runs = [(default, {})] + [(spec, _schedule(spec)) for spec in specs]
    width = round(photo.shape[-1] * height / photo.shape[-2])
    lines = [
        f"The default pyramid against other schedules at {height}x{width} (the same inputs and filters; "
        "C/F/R: C rounds at each coarser level, F at full size, L-BFGS restarted every round or once a "
        "level; one run each, in this order):",
        "",
        "| schedule | rounds | seconds | seconds at full size | final loss | loss / the default's |",
        "|---|---|---|---|---|---|",
    ]
    base = None
    for name, schedule in runs:
        began = time.perf_counter()
        result = transfer(photo, texture, **{**options, **schedule})
        wall = time.perf_counter() - began
        full = sum(s for s, h in zip(result.seconds, result.heights) if h == height)
        final = result.losses[-1]
        base = base or final
        lines.append(
            f"| {name} | {result.rounds_by_height()} | {wall:.0f} | {full:.0f} | {final:.5g} | {final / base:.3f} |"
        )
        print(lines[-1], flush=True)
    return lines


def draw(curves: dict[str, list[tuple[float, float]]], images: list[torch.Tensor]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 5, figsize=(20, 4), gridspec_kw={"width_ratios": [1.3, 1, 1, 1, 1]})
    for name, curve in curves.items():
        axes[0].plot(*zip(*curve), "-o", markersize=3, label=f"{name} schedule")
    axes[0].set_yscale("log")
    axes[0].set_xlabel("seconds")
    axes[0].set_ylabel("total loss at 400x600")
    axes[0].legend()
    axes[0].grid(alpha=0.3)
    for ax, image, title in zip(axes[1:], images, ("content", "style", "seed schedule", "pyramid")):
        ax.imshow(image.permute(1, 2, 0).clamp(0, 1).numpy())
        ax.set_title(title)
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(FIGURE, dpi=80)
    plt.close(fig)


def inputs() -> tuple[torch.Tensor, torch.Tensor]:
    rows, cols = torch.meshgrid(torch.linspace(0, 1, 400), torch.linspace(0, 1, 600), indexing="ij")
    photo = torch.stack([cols, rows, (rows + cols) / 2])
    noise = torch.nn.functional.avg_pool2d(
        torch.rand(1, 3, 300, 300, generator=torch.Generator().manual_seed(0)), 9, 1, 4
    )[0]
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
    parser.add_argument("--full", action="store_true", help="also `aelab style` at its defaults")
    parser.add_argument("--schedules", action="store_true", help="only the seed's schedule against the pyramid")
    parser.add_argument(
        "--command", type=int, metavar="N", help="only `aelab style` at its defaults, timed whole N times"
    )
    parser.add_argument(
        "--precisions",
        nargs="+",
        choices=["auto", "bf16", "32"],
        default=["auto"],
        help="with --command: the command at each --precision in turn, every round",
    )
    parser.add_argument(
        "--candidates", nargs="+", metavar="C/F[/R]", help="only the default pyramid against these schedules"
    )
    args = parser.parse_args(argv)
    if args.candidates and None in map(_schedule, args.candidates):
        parser.error("--candidates takes C/F or C/F/R: whole numbers from 1, R round or level (e.g. 10/3/round)")
    cpu = cpu_line()
    print(cpu, flush=True)
    if args.command:
        lines = [
            f"## The command, {datetime.date.today()}: {cpu}",
            "",
            *command_lines(args.command, args.precisions),
            "",
            f"Made by `python benchmarks/style_speed.py {' '.join(sys.argv[1:] if argv is None else argv)}`.",
            "",
        ]
        write(lines)
        return 0
    if args.candidates:
        lines = [
            f"## Schedules against the default, {datetime.date.today()}: {cpu}",
            "",
            *candidates(args.candidates),
            "",
            f"Made by `python benchmarks/style_speed.py --candidates {' '.join(args.candidates)}`.",
            "",
        ]
        write(lines)
        return 0
    if args.schedules:
        lines = [
            f"## Schedules, {datetime.date.today()}: {cpu}",
            "",
            *schedules(),
            "",
            "Made by `python benchmarks/style_speed.py --schedules`.",
            "",
        ]
        print("\n".join(lines), flush=True)
        write(lines)
        return 0
    lines = [
        f"## {datetime.date.today()}: {cpu}",
        "",
        "One loss evaluation (forward and backward) at 400x600:",
        "",
        "| VGG19 arithmetic | seconds | vs float32 contiguous |",
        "|---|---|---|",
    ]
    base = None
    for name, layout, bf16 in (
        ("float32, contiguous", torch.contiguous_format, False),
        ("float32, channels-last", torch.channels_last, False),
        ("bf16 autocast, channels-last", torch.channels_last, True),
    ):
        seconds = evaluation_seconds(layout, bf16, args.repeats)
        base = base or seconds
        lines.append(f"| {name} | {seconds:.2f} | {base / seconds:.2f}x |")
        print(lines[-1], flush=True)
    photo, texture = inputs()
    lines += [
        "",
        f"{args.rounds} rounds of 20 evaluations at 400x600 from the content image (the loss after each):",
        "",
        "| precision | start | after each round | seconds a round |",
        "|---|---|---|---|",
    ]
    for precision in ("32", "bf16"):
        result = transfer(photo, texture, schedule="seed", iterations=args.rounds, precision=precision)
        lines.append(
            f"| {precision} | {result.initial_loss:.4g} | {', '.join(f'{v:.4g}' for v in result.losses)} | "
            f"{statistics.mean(result.seconds):.1f} |"
        )
        print(lines[-1], flush=True)
    if args.full:
        lines += ["", *command_lines(1)]
        print(lines[-1], flush=True)
    lines += [
        "",
        "Made by `python benchmarks/style_speed.py"
        + (f" --rounds {args.rounds}" if args.rounds != 3 else "")
        + (" --full" if args.full else "")
        + "`.",
        "",
    ]
    write(lines)
    return 0


def command_lines(rounds: int, precisions: list[str] | tuple[str, ...] = ("auto",)) -> list[str]:
    """`aelab style photo.png texture.png` at its defaults as a user runs it, timed whole
    ``rounds`` times (the inputs of :func:`inputs` as PNG files), at each of ``precisions`` in turn
    every round: for each precision, the median and what the command said."""
    photo, texture = inputs()
    walls: dict[str, list[float]] = {precision: [] for precision in precisions}
    said: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as folder:
        content, style = Path(folder) / "photo.png", Path(folder) / "texture.png"
        save_image(photo, content)
        save_image(texture, style)
        for i in range(rounds):
            for precision in precisions:
                out = Path(folder) / f"result-{i}-{precision}.png"
                command = [sys.executable, "-m", "aelab.cli", "style", str(content), str(style), "--out", str(out)]
                began = time.perf_counter()
                done = subprocess.run(
                    [*command, "--precision", precision, "--no-progress"], capture_output=True, text=True
                )
                walls[precision].append(time.perf_counter() - began)
                if done.returncode != 0:
                    raise SystemExit(f"aelab style failed: {done.stderr.strip()[-300:]}")
                said[precision] = done.stdout.strip().splitlines()[0]
                print(f"aelab style --precision {precision}: {walls[precision][-1]:.0f} s", flush=True)
    lines = []
    for precision, times in walls.items():
        each = "" if rounds == 1 else f" (median of {rounds}: {', '.join(f'{w:.0f}' for w in times)})"
        lines.append(
            "`aelab style photo.png texture.png --out result.png` at its defaults (400 px, the pyramid, "
            f"precision {precision}): {statistics.median(times):.0f} s in all{each}; it said: {said[precision]}"
        )
    return [part for line in lines for part in ("", line)][1:]  # a paragraph each


def _schedule(spec: str) -> dict | None:
    """``10/3/round`` -> the StyleSettings fields it names (the restart left at auto without a third
    part); None where ``spec`` is not C/F or C/F/R (whole numbers from 1, R round or level)."""
    parts = spec.split("/")
    rounds, restart = parts[:2], parts[2:]
    if (
        len(rounds) != 2
        or not all(p.isdigit() and int(p) >= 1 for p in rounds)
        or restart not in ([], ["round"], ["level"])
    ):
        return None
    return {
        "coarse_iterations": int(rounds[0]),
        "iterations": int(rounds[1]),
        **({"restart": restart[0]} if restart else {}),
    }


def write(lines: list[str]) -> None:
    """The section on top of results/style.md."""
    old = RESULTS.read_text().split("\n", 2)[2] if RESULTS.is_file() else ""
    RESULTS.write_text("# Style transfer: speed, arithmetic and schedule\n\n" + "\n".join(lines) + "\n" + old)


if __name__ == "__main__":
    sys.exit(main())
