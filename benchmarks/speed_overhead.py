"""What does Lightning cost a training step?

    python benchmarks/speed_overhead.py [--data mnist-sample] [--rounds 3]

Measured where little else costs anything: a small dense model (784-64-784, BCE) at batch 10
through `aelab train` and through a hand loop with the same settings (speed_training.py's), in
fresh processes and alternated rounds; the difference of their step times is what the trainer
adds to every step, whatever the model and batch. It is reported as a share of the seed-1
model's step in `aelab train`, measured in the same rounds.
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

from speed_common import BATCH, MODEL, Report, goal, measure, script_main
from speed_training import worker as training_worker

OVERHEAD_MODEL, OVERHEAD_BATCH, OVERHEAD_EPOCHS = "dense", 10, 3
WORKERS = {
    "overhead-ours": ("ours", OVERHEAD_MODEL, OVERHEAD_BATCH),
    "overhead-hand": ("hand", OVERHEAD_MODEL, OVERHEAD_BATCH),
    "seed-one-ours": ("ours", MODEL, BATCH),
}


def worker(kind: str, data_name: str, epochs: int) -> dict[str, float]:
    side, model_name, batch_size = WORKERS[kind]
    return training_worker(side, data_name, epochs, model_name=model_name, batch_size=batch_size)


def rows(args, report: Report) -> None:
    step_ms: dict[str, list[float]] = {kind: [] for kind in WORKERS}
    for _ in range(args.rounds):
        for kind in WORKERS:
            epochs = OVERHEAD_EPOCHS if kind.startswith("overhead") else args.epochs
            step_ms[kind].append(measure(__file__, kind, args.data, epochs)["step_ms"])
    overhead = [o - h for o, h in zip(step_ms["overhead-ours"], step_ms["overhead-hand"])]
    share = statistics.median(overhead) / statistics.median(step_ms["seed-one-ours"])
    report(
        f"Lightning's cost a step ({OVERHEAD_MODEL} model, batch {OVERHEAD_BATCH}: aelab train vs hand loop)",
        f"{statistics.median(overhead):.2f} ms (rounds: {', '.join(f'{ms:.2f}' for ms in overhead)}; step "
        f"{statistics.median(step_ms['overhead-ours']):.2f} vs {statistics.median(step_ms['overhead-hand']):.2f} ms)",
    )
    report(
        f"  as a share of aelab's {MODEL} step ({statistics.median(step_ms['seed-one-ours']):.1f} ms)",
        f"{share * 100:.1f}% ({goal('< 5%', share < 0.05)})",
    )


def main(argv: list[str] | None = None) -> int:
    return script_main(
        argv,
        __doc__,
        Path(__file__).name,
        rows,
        lambda args: worker(args.worker, args.data, args.epochs),
        workers=list(WORKERS),
    )


if __name__ == "__main__":
    sys.exit(main())
