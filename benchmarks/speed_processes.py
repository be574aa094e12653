"""Do two single-thread processes (`--devices 2`) train faster than one process with two threads?

    python benchmarks/speed_processes.py [--data mnist-sample] [--epochs 2] [--rounds 3]

Seed 1's model and `best` through `python -m aelab train` with `--devices 2` (two processes under
DDP over gloo; Lightning gives each half the CPU's threads) against one process with
all the threads, at the same combined batch (each of the two takes half of it), in alternated
rounds; images/s of both processes together.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from speed_common import Report, rate_text, script_main

PROCESS_MODELS = {"conv-resize": 200, "best": 128}  # seed 1's model and aelab's own, at their default batches


def cli_rate(model_name: str, data_name: str, epochs: int, processes: int, batch_size: int) -> float:
    """`python -m aelab train` as a user runs it, in ``processes`` processes at ``batch_size`` in all
    (each process takes batch_size / processes): training images/s of all of them together, the
    median of the epochs after the first, from the run's history."""
    with tempfile.TemporaryDirectory() as tmp:
        command = [
            sys.executable,
            "-m",
            "aelab",
            "train",
            model_name,
            "--data",
            data_name,
            "--out",
            f"{tmp}/r",
            "--epochs",
            str(epochs),
            "--no-early-stopping",
            "--no-progress",
            "--devices",
            str(processes),
            "--batch-size",
            str(batch_size // processes),
        ]
        proc = subprocess.run(command, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed:\n{proc.stderr[-3000:]}")
        rates = [row["images_per_second"] for row in json.loads(Path(f"{tmp}/r/history.json").read_text())["epochs"]]
    return statistics.median(rates[1:] or rates)


def process_rows(data_name: str, epochs: int, rounds: int, report) -> None:
    """Whether two single-thread processes (DDP over gloo, each on half of every batch) train faster
    than one process with two threads on this CPU, at the same combined batch."""
    cores = os.cpu_count() or 1
    for model_name, batch_size in PROCESS_MODELS.items():
        rates: dict[int, list[float]] = {1: [], 2: []}
        for _ in range(rounds):  # alternated, as the other throughputs
            for processes in rates:
                rates[processes].append(cli_rate(model_name, data_name, epochs, processes, batch_size))
        report(f"`aelab train {model_name}`, batch {batch_size}: 1 process, {cores} threads", rate_text(rates[1]))
        report(
            f"  2 processes (--devices 2, batch {batch_size // 2} each), {max(1, cores // 2)} thread(s) each",
            rate_text(rates[2]),
        )
        ratio = statistics.median(rates[2]) / statistics.median(rates[1])
        per_round = ", ".join(f"{two / one:.2f}x" for one, two in zip(rates[1], rates[2]))
        report(
            "  ratio 2 processes / 1",
            f"{ratio:.2f}x (per round: {per_round}; {'2 processes faster' if ratio > 1 else '1 process faster'})",
        )


def rows(args, report: Report) -> None:
    process_rows(args.data, args.epochs, args.rounds, report)


def main(argv: list[str] | None = None) -> int:
    return script_main(argv, __doc__, Path(__file__).name, rows, epochs=2)


if __name__ == "__main__":
    sys.exit(main())
