"""Would a matrix-product form beat oneDNN on seed 1's single-channel convolutions?

    python benchmarks/thin_conv.py [--repeats 30]

speed.md's step profile found two of seed 1's seven 3x3 convolutions, the first (1 channel in)
and the last (1 channel out), running at 8-19 GFLOP/s where the others reach 33-137, half the
step's convolution time for 15% of its FLOPs. This times each such layer of `conv-resize` and
`conv-resize-denoise` at the training batch (200), forward and backward as training runs them
(the first layer needs no input gradient), channels-last, two ways:
- ``oneDNN``: ``F.conv2d``, as aelab trains today;
- ``matrix product``: the first layer as 9 shifted copies of the padded image in columns and one
  ``addmm`` (out: B*H*W rows of C channels, which is channels-last); the last layer as one product
  of the channels-last rows with the 9 taps' weights, then the 9 shifted slices summed.
Both forms' outputs and weight gradients are compared before timing (they must agree to float
rounding).
Alternated, medians. Prints a table and puts it on top of benchmarks/results/speed.md.
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import sys

import torch
import torch.nn.functional as F
from speed_common import cpu_line, prepend_section
from step_profile import timed

BATCH, SIZE = 200, 28
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
    # is), the weights and the output's gradient restrided by .to() (a one-channel tensor too)
    grad = torch.randn(BATCH, c_out, SIZE, SIZE, generator=generator).to(memory_format=torch.channels_last)
    conv_weight = weight.detach().to(memory_format=torch.channels_last).requires_grad_(True)

    def run():
        for t in (weight, bias, x, conv_weight):
            t.grad = None
        if form == "oneDNN":
            y = F.conv2d(x, conv_weight, bias, padding=1)
        else:
            y = (first_layer if c_in == 1 else last_layer)(x, weight, bias)
        y.backward(grad)
        return y.detach(), (conv_weight.grad if form == "oneDNN" else weight.grad).detach()

    return run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args(argv)
    cpu = cpu_line()
    print(cpu, flush=True)
    lines = [
        f"## Single-channel convolutions, {datetime.date.today()}: {cpu}",
        "",
        f"`python benchmarks/thin_conv.py{'' if args.repeats == 30 else f' --repeats {args.repeats}'}`: "
        f"each layer at batch {BATCH}, {SIZE}x{SIZE}, forward and backward, channels-last; medians of "
        f"{args.repeats}, the two forms alternated.",
        "",
        "| model | layer | oneDNN ms | matrix product ms | oneDNN / matrix product | largest difference (output, weight gradient) |",
        "|---|---|---|---|---|---|",
    ]
    for model, c_in, c_out in LAYERS:
        runs = {form: case(c_in, c_out, form) for form in ("oneDNN", "matrix product")}
        (y1, w1), (y2, w2) = runs["oneDNN"](), runs["matrix product"]()
        differences = [(y1 - y2).abs().max().item(), (w1 - w2).abs().max().item() / w1.abs().max().item()]
        for _ in range(3):
            for run in runs.values():
                run()
        seconds = {form: [] for form in runs}
        for _ in range(3):  # alternated blocks
            for form, run in runs.items():
                seconds[form].append(timed(run, max(1, args.repeats // 3)))
        a, b = (statistics.median(seconds[f]) * 1e3 for f in runs)
        lines.append(
            f"| {model} | {c_in} -> {c_out} | {a:.2f} | {b:.2f} | {a / b:.2f}x | "
            f"{differences[0]:.1e}, {differences[1]:.1e} (relative) |"
        )
        print(lines[-1], flush=True)
    prepend_section(lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
