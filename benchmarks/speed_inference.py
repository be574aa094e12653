"""How fast does aelab encode and decode, against the plain seed-1 model in eager fp32?

    python benchmarks/speed_inference.py [--data mnist-sample] [--rounds 3]

Encode + decode images/s at batch 1,000 on (up to) 10,000 test images: aelab's model through its
inference path (channels-last, bf16 where the CPU has it), against speed_training.py's
`PlainSeedOne` in eager fp32; fresh processes, alternated rounds, the best of 3 passes each.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import torch
from speed_common import MODEL, Report, goal, measure, rate_text, script_main
from speed_training import PlainSeedOne

from aelab import create_model
from aelab.accel import choose_precision
from aelab.data import load_data
from aelab.metrics import reconstruct

WORKERS = ("reference", "ours")


def inference_rate(x: torch.Tensor, fast: bool, repeats: int = 3) -> float:
    """Encode + decode images/s at batch 1,000: aelab's model through its inference path, or the
    plain reference in eager fp32."""
    model = (create_model(MODEL) if fast else PlainSeedOne()).eval()

    def once() -> None:
        if fast:
            reconstruct(model, x, batch_size=1000, precision=choose_precision("auto", "cpu"))
        else:
            with torch.no_grad():
                for batch in x.split(1000):
                    model(batch).sigmoid()

    once()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        once()
        times.append(time.perf_counter() - start)
    return len(x) / min(times)


def worker(kind: str, data_name: str) -> dict[str, float]:
    return {"inference": inference_rate(load_data(data_name).test[:10000], fast=kind == "ours")}


def rows(args, report: Report) -> None:
    inference: dict[str, list[float]] = {kind: [] for kind in WORKERS}
    for _ in range(args.rounds):
        for kind in WORKERS:
            inference[kind].append(measure(__file__, kind, args.data, 0)["inference"])
    report("reference inference (encode+decode, batch 1000)", rate_text(inference["reference"]))
    report("aelab inference (batch 1000)", rate_text(inference["ours"]))
    ratio = statistics.median(inference["ours"]) / statistics.median(inference["reference"])
    report("  ratio ours / reference", f"{ratio:.2f}x ({goal('>= 2x', ratio >= 2)})")


def main(argv: list[str] | None = None) -> int:
    return script_main(
        argv, __doc__, Path(__file__).name, rows, lambda args: worker(args.worker, args.data), workers=WORKERS
    )


if __name__ == "__main__":
    sys.exit(main())
