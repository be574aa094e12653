"""Seed 1's single-channel convolutions three ways: oneDNN's direct kernel, aelab's layer, a matrix product.

    python benchmarks/thin_conv.py [--repeats 30]

speed.md's step profile found two of seed 1's seven 3x3 convolutions, the first (1 channel in)
and the last (1 channel out), running at a tenth of the rate of the others. This times each such
layer of `conv-resize` and `conv-resize-denoise` at the training batch (200), forward and backward
as training runs them (the first layer needs no input gradient), channels-last, with glibc keeping
freed memory as `aelab train` sets it, in up to three forms:
- ``oneDNN``: ``nn.Conv2d``, oneDNN's direct convolution;
- ``aelab``: the layer aelab trains with: for the last layer ``ImageConv2d`` (in float32 on the CPU
  a depthwise convolution and a sum over the input channels), for the first ``nn.Conv2d`` itself
  (no other form is faster), so its column is left empty there;
- ``matrix product``: the first layer as 9 shifted copies of the padded image in columns and one
  ``addmm`` (out: B*H*W rows of C channels, which is channels-last); the last layer as one product
  of the channels-last rows with the 9 taps' weights, then the 9 shifted slices summed.
Each form's output and weight gradient are compared with oneDNN's before timing (they must agree
to float rounding). Then the whole training steps of seed 1's model, its denoiser and seed 3's
VAE, with ``ImageConv2d`` and with it turned back into ``nn.Conv2d``. Alternated, medians. Prints
the tables and puts them on top of benchmarks/results/speed.md.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import statistics
import sys

import torch
import torch.nn.functional as F
from speed_common import cpu_line, prepend_section
from step_profile import as_conv2d, system_step, timed

from aelab.accel import keep_freed_memory
from aelab.nets.blocks import ImageConv2d

BATCH, SIZE = 200, 28
STEPS = ("conv-resize", "conv-resize-denoise", "vae")  # whole training steps: the demo's two, the quick start's
LAYERS = (  # (model, input channels, output channels)
    ("conv-resize", 1, 16),
    ("conv-resize", 16, 1),
    ("conv-resize-denoise", 1, 32),
    ("conv-resize-denoise", 32, 1),
)


def first_layer(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """A 3x3 'same' convolution of one-channel images (B, 1, H, W) as one matrix product; the
    result (B, C, H, W) in channels-last memory."""
    b, _, h, w = x.shape
    padded = F.pad(x[:, 0], (1, 1, 1, 1))
    columns = torch.stack([padded[:, i : i + h, j : j + w] for i in range(3) for j in range(3)], -1)
    rows = torch.addmm(bias, columns.reshape(-1, 9), weight.reshape(len(weight), 9).t())
    return rows.view(b, h, w, -1).permute(0, 3, 1, 2)


def last_layer(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """A 3x3 'same' convolution to one channel of channels-last (B, C, H, W) as one product of the
    pixels' channel rows with the 9 taps, then the taps' shifted planes summed: (B, 1, H, W)."""
    b, c, h, w = x.shape
    rows = x.permute(0, 2, 3, 1).reshape(-1, c)  # a view for channels-last memory
    taps = (rows @ weight.reshape(c, 9)).view(b, h, w, 9)  # each pixel's contribution through each tap
    padded = F.pad(taps, (0, 0, 1, 1, 1, 1))
    out = sum(padded[:, i : i + h, j : j + w, 3 * i + j] for i in range(3) for j in range(3))
    return (out + bias).unsqueeze(1)


def case(c_in: int, c_out: int, form: str):
    """One layer's training pass (forward, backward) in ``form``: a function that runs it and returns
    the output and the weight gradient."""
    generator = torch.Generator().manual_seed(0)
    weight = (torch.randn(c_out, c_in, 3, 3, generator=generator) * 0.2).requires_grad_(True)
    bias = torch.zeros(c_out, requires_grad=True)
    x = torch.rand(BATCH, c_in, SIZE, SIZE, generator=generator).contiguous(memory_format=torch.channels_last)
    x.requires_grad_(c_in > 1)  # the image itself needs no gradient
    # as in training: the inputs made contiguous in channels-last (a one-channel batch stays as it
    # is), the layer's weights and the output's gradient restrided by .to() (a one-channel tensor too)
    grad = torch.randn(BATCH, c_out, SIZE, SIZE, generator=generator).to(memory_format=torch.channels_last)
    layer = (ImageConv2d if form == "aelab" else torch.nn.Conv2d)(c_in, c_out, 3, padding=1)
    with torch.no_grad():
        layer.weight.copy_(weight)
        layer.bias.zero_()
    layer = layer.to(memory_format=torch.channels_last)

    def run():
        for t in (weight, bias, x, *layer.parameters()):
            t.grad = None
        if form == "matrix product":
            y = (first_layer if c_in == 1 else last_layer)(x, weight, bias)
        else:
            y = layer(x)
        y.backward(grad)
        return y.detach(), (weight.grad if form == "matrix product" else layer.weight.grad).detach()

    return run


def step_rows(repeats: int) -> list[str]:
    """Each of STEPS' training steps (its system, optimiser and batch, as step_profile.py runs
    them) with aelab's layers and with each ImageConv2d turned back into the nn.Conv2d it computes,
    the two alternated in blocks: the table's rows."""
    rows = []
    for model in STEPS:
        step, items, p = system_step(model, "mnist-sample")
        layers = sum(isinstance(m, ImageConv2d) for m in p.model.modules())
        seconds = {"aelab": [], "nn.Conv2d": []}
        for _ in range(3):
            step()
        for _ in range(5):  # alternated blocks
            for form in seconds:
                with as_conv2d(p.model) if form == "nn.Conv2d" else contextlib.nullcontext():
                    seconds[form].append(timed(step, max(1, repeats // 5)))
        ours, direct = (statistics.median(seconds[f]) * 1e3 for f in ("aelab", "nn.Conv2d"))
        rows.append(f"| {model} | {items} | {layers} | {direct:.1f} | {ours:.1f} | {direct / ours:.2f}x |")
        print(rows[-1], flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args(argv)
    keep_freed_memory()  # as training runs: without it every step faults its activations in anew
    cpu = cpu_line()
    print(cpu, flush=True)
    lines = [
        f"## Single-channel convolutions, {datetime.date.today()}: {cpu}",
        "",
        f"`python benchmarks/thin_conv.py{'' if args.repeats == 30 else f' --repeats {args.repeats}'}`: "
        f"each layer at batch {BATCH}, {SIZE}x{SIZE}, forward and backward, channels-last, glibc keeping "
        f"freed memory as training does; medians of {args.repeats}, the forms alternated. aelab's layer is "
        "`ImageConv2d` (a depthwise convolution and a sum) for one output channel, `nn.Conv2d` otherwise.",
        "",
        "| model | layer | oneDNN ms | aelab's layer ms | matrix product ms | oneDNN / aelab | oneDNN / matrix "
        "product | largest difference from oneDNN (output, weight gradient; relative) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for model, c_in, c_out in LAYERS:
        forms = ["oneDNN", "aelab", "matrix product"] if c_out == 1 else ["oneDNN", "matrix product"]
        runs = {form: case(c_in, c_out, form) for form in forms}
        (y1, w1), *others = (run() for run in runs.values())
        differences = [
            f"{(y1 - y).abs().max().item() / y1.abs().max().item():.1e}, "
            f"{(w1 - w).abs().max().item() / w1.abs().max().item():.1e}"
            for y, w in others
        ]
        for _ in range(3):
            for run in runs.values():
                run()
        seconds = {form: [] for form in runs}
        for _ in range(3):  # alternated blocks
            for form, run in runs.items():
                seconds[form].append(timed(run, max(1, args.repeats // 3)))
        ms = {form: statistics.median(times) * 1e3 for form, times in seconds.items()}
        direct, ours, product = ms["oneDNN"], ms.get("aelab"), ms["matrix product"]
        lines.append(
            f"| {model} | {c_in} -> {c_out} | {direct:.2f} | {'-' if ours is None else f'{ours:.2f}'} | "
            f"{product:.2f} | {'-' if ours is None else f'{direct / ours:.2f}x'} | {direct / product:.2f}x | "
            f"{'; '.join(differences)} |"
        )
        print(lines[-1], flush=True)
    lines += [
        "",
        f"Whole training steps (step_profile.py's: the model's system, optimiser and batch), with aelab's "
        f"layers and with each ImageConv2d as nn.Conv2d; medians of 5 alternated blocks of {max(1, args.repeats // 5)}:",
        "",
        "| model | batch | ImageConv2d layers | nn.Conv2d ms a step | aelab ms a step | speed-up |",
        "|---|---|---|---|---|---|",
        *step_rows(args.repeats),
    ]
    prepend_section(lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
