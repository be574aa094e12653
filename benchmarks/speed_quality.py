"""Do aelab's fast defaults (bf16 where the CPU has it, channels-last) cost quality?

    python benchmarks/speed_quality.py [--data mnist-sample] [--epochs 5] [--seeds 3]

Seed 1's model trained with the defaults and in fp32 contiguous, same epochs and seeds; the
verdict is on the mean test RMSE over the seeds (one seed's gap mixes precision with the noise of
the trajectory).
"""

from __future__ import annotations

import statistics
import sys
import tempfile
from pathlib import Path

from speed_common import Report, goal, script_main
from speed_training import ours


def quality_check(data_name: str, epochs: int, seeds: int, workdir: Path) -> str:
    """Final test RMSE with the defaults vs fp32 contiguous, same model, epochs and seed, for
    ``seeds`` seeds. One seed's gap mixes precision with trajectory noise (two fp32 runs with
    different seeds differ by a few per cent here), so the verdict is on the mean over seeds."""
    fast, fp32 = [], []
    for seed in range(seeds):
        fast.append(ours(data_name, epochs, workdir, seed=seed)[1]["test_rmse"])
        fp32.append(ours(data_name, epochs, workdir, seed=seed, precision="32", channels_last=False)[1]["test_rmse"])
    diff = statistics.mean(fast) / statistics.mean(fp32) - 1
    per_seed = ", ".join(
        f"seed {s}: {a:.4f} vs {b:.4f} ({(a / b - 1) * 100:+.1f}%)" for s, (a, b) in enumerate(zip(fast, fp32))
    )
    return (
        f"mean {statistics.mean(fast):.4f} vs {statistics.mean(fp32):.4f} ({diff * 100:+.1f}%; "
        f"{goal('within 2%', abs(diff) <= 0.02)}); {per_seed}"
    )


def rows(args, report: Report) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        report(
            f"quality: test RMSE after {args.epochs} epochs, defaults vs fp32",
            quality_check(args.data, args.epochs, args.seeds, Path(tmp)),
        )


def main(argv: list[str] | None = None) -> int:
    return script_main(
        argv,
        __doc__,
        Path(__file__).name,
        rows,
        epochs=5,
        options=[("--seeds", {"type": int, "default": 3, "help": "seeds; the verdict is on their mean"})],
    )


if __name__ == "__main__":
    sys.exit(main())
