"""Which arithmetic trains each model fastest on this CPU: `aelab train` in float32 against bf16
autocast (both channels-last), at equal epochs, in one run.

    python benchmarks/precision_speed.py                     # conv-resize, vae, char-lstm; 2 epochs
    python benchmarks/precision_speed.py --models vae --epochs 3

What `--precision auto` picks on a CPU follows from this table (aelab.accel.choose_precision):
bf16 autocast pays where the CPU multiplies bf16 matrices in AMX tiles; with AVX512-BF16 alone
it can lose to float32. Training images (windows) a second, the median of the epochs after the
first, from each run's history; the quality column is the run's headline test metric. Writes
its table on top of benchmarks/results/speed.md, naming the CPU.
"""

from __future__ import annotations

import argparse
import datetime
import sys
import tempfile
from pathlib import Path

from peer_speed import ROWS, run_aelab
from speed_common import cpu_line, default_data, prepend_section


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=default_data())
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--models", nargs="+", choices=list(ROWS), default=list(ROWS))
    args = parser.parse_args(argv)
    cpu = cpu_line()
    print(cpu, flush=True)
    lines = [
        f"## Precision, {datetime.date.today()}: {cpu}",
        "",
        f"`python benchmarks/precision_speed.py --epochs {args.epochs}`, images from {args.data}:",
        "",
        "| model | float32 items/s | bf16 autocast items/s | bf16 / float32 | quality float32 | quality bf16 |",
        "|---|---|---|---|---|---|",
    ]
    with tempfile.TemporaryDirectory() as folder:
        for model in args.models:
            fp32, bf16 = (
                run_aelab(model, args.data, args.epochs, Path(folder), "--precision", precision)
                for precision in ("32", "bf16-mixed")
            )
            lines.append(
                f"| {model} | {fp32['rate']:,.0f} | {bf16['rate']:,.0f} | {bf16['rate'] / fp32['rate']:.2f}x | "
                f"{ROWS[model][2]} {fp32['quality']:.4f} | {bf16['quality']:.4f} |"
            )
            print(lines[-1], flush=True)
    prepend_section(lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
