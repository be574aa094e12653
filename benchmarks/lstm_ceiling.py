"""How fast can seed 3's char-lstm train on this CPU in fp32? The ceiling left for any trick.

    python benchmarks/lstm_ceiling.py

Times a training step (forward, backward) of PyTorch's fused LSTM (oneDNN on the CPU) at the
seed's sizes: 128 units, windows of 40 characters, one-hot input over the default corpus's
alphabet. Then the same with an input of width 1: the recurrence alone, which bounds what any
cheaper input projection (gathering rows instead of multiplying by one-hot vectors) could save.
Larger batches are timed too. Prints a markdown table; the findings are in
benchmarks/results/speed.md.
"""

from __future__ import annotations

import argparse
import sys

import torch
from generative_ceiling import (
    median_ms,  # a sibling script: python benchmarks/lstm_ceiling.py puts this folder on the path
)
from torch import nn


def step_ms(batch: int, width: int, steps: int, units: int = 128, maxlen: int = 40) -> float:
    lstm = nn.LSTM(width, units, batch_first=True)
    x = torch.randn(batch, maxlen, width)

    def step() -> None:
        out, _ = lstm(x)
        out[:, -1].sum().backward()

    return median_ms(step, steps, warmups=3)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=15)
    args = parser.parse_args(argv)
    from aelab.data.text import load_text

    alphabet = len(load_text().alphabet)
    flags = set(open("/proc/cpuinfo").read().split()) if sys.platform == "linux" else set()
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, oneDNN "
        f"{torch.backends.mkldnn.is_available()}, avx512_bf16 {'avx512_bf16' in flags}, alphabet {alphabet}\n"
    )
    print(
        "| batch | one-hot input: ms a step | recurrence alone: ms a step | windows/s, one-hot | "
        "windows/s, recurrence alone (ceiling for input tricks) |"
    )
    print("|---|---|---|---|---|")
    for batch in (128, 256, 512):
        full, alone = step_ms(batch, alphabet, args.steps), step_ms(batch, 1, args.steps)
        print(f"| {batch} | {full:.1f} | {alone:.1f} | {batch / full * 1e3:,.0f} | {batch / alone * 1e3:,.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
