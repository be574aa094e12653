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
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from speed_common import default_data

RESULTS = Path(__file__).resolve().parent / "results" / "speed.md"
QUALITY = {"conv-resize": "test_bce", "vae": "test_elbo", "char-lstm": "test_bits_per_char"}


def rate(model: str, data: str, epochs: int, precision: str, tmp: Path) -> tuple[float, float]:
    out = tmp / f"{model}-{precision}"
    options = [] if model == "char-lstm" else ["--data", data]
    subprocess.run([sys.executable, "-m", "aelab", "train", model, *options, "--epochs", str(epochs), "--precision",
                    precision, "--no-early-stopping", "--no-progress", "--out", str(out)], check=True,
                   capture_output=True)
    rates = [row["images_per_second"] for row in json.loads((out / "history.json").read_text())["epochs"]]
    return statistics.median(rates[1:] or rates), json.loads((out / "metrics.json").read_text())[QUALITY[model]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=default_data())
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--models", nargs="+", choices=list(QUALITY), default=list(QUALITY))
    args = parser.parse_args(argv)
    from aelab.accel import cpu_has_amx, cpu_supports_bf16

    cpu = (f"torch CPU capability {torch.backends.cpu.get_cpu_capability()}, AVX512-BF16 "
           f"{'yes' if cpu_supports_bf16() else 'no'}, AMX {'yes' if cpu_has_amx() else 'no'}, "
           f"{torch.get_num_threads()} threads")
    print(cpu, flush=True)
    lines = [f"## Precision, {datetime.date.today()}: {cpu}", "",
             f"`python benchmarks/precision_speed.py --epochs {args.epochs}`, images from {args.data}:", "",
             "| model | float32 items/s | bf16 autocast items/s | bf16 / float32 | quality float32 | quality bf16 |",
             "|---|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as folder:
        for model in args.models:
            fp32, q32 = rate(model, args.data, args.epochs, "32", Path(folder))
            bf16, q16 = rate(model, args.data, args.epochs, "bf16-mixed", Path(folder))
            lines.append(f"| {model} | {fp32:,.0f} | {bf16:,.0f} | {bf16 / fp32:.2f}x | {QUALITY[model]} {q32:.4f} | "
                         f"{q16:.4f} |")
            print(lines[-1], flush=True)
    text = RESULTS.read_text()
    head, marker, rest = text.partition("\n## ")
    RESULTS.write_text(head.rstrip("\n") + "\n\n" + "\n".join(lines) + "\n\n" + marker.lstrip("\n") + rest)
    return 0


if __name__ == "__main__":
    sys.exit(main())
