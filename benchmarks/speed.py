"""Every speed question in one run, one section of benchmarks/results/speed.md (`make bench`).

    python benchmarks/speed.py                   # full Fashion-MNIST where installed, else mnist-sample
    python benchmarks/speed.py --data mnist-sample --epochs 2 --skip-quality
    python benchmarks/speed.py --only-text       # one question alone: its own script does the same
    python benchmarks/speed.py --only-processes
    python benchmarks/speed.py --only-generative

Each question is a script of its own, runnable alone, that prints its rows and adds them to
speed.md as a section (with the machine, the date, the command and torch's CPU capability):

| script | question |
|---|---|
| speed_training.py | how fast `aelab train` trains seed 1's model against a plain fp32 eager loop; matmul utilisation |
| speed_overhead.py | what Lightning costs a training step |
| speed_inference.py | how fast aelab encodes and decodes against the plain model |
| speed_quality.py | whether the fast defaults cost quality (test RMSE, defaults vs fp32) |
| speed_ttq.py | seconds of training until `best` reaches PCA-49's test RMSE |
| speed_text.py | char-lstm's speed against a plain nn.LSTM loop, and its bits per character |
| speed_generative.py | the VAE's and the GAN's speed against plain loops of the same networks |
| speed_processes.py | two single-thread processes (`--devices 2`) against one with two threads |

Every ratio compares two measurements taken in the same run (speed_common.py says how).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import speed_generative
import speed_inference
import speed_overhead
import speed_processes
import speed_quality
import speed_text
import speed_training
import speed_ttq
from speed_common import RESULTS, default_data, write_results

from aelab.data import load_data, split_validation

ONLY = {"text": "char-lstm rows", "generative": "VAE and GAN rows", "processes": "process-count rows"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=None, help="default: fashion-mnist if installed, else mnist-sample")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per throughput measurement")
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="alternated rounds of the fresh-process measurements; medians are reported",
    )
    parser.add_argument("--quality-epochs", type=int, default=5)
    parser.add_argument(
        "--quality-seeds", type=int, default=3, help="seeds of the quality check; the verdict is on their mean"
    )
    parser.add_argument("--process-epochs", type=int, default=2, help="epochs per process-count measurement")
    parser.add_argument("--text-epochs", type=int, default=2, help="epochs per char-lstm throughput measurement")
    parser.add_argument("--text-quality-epochs", type=int, default=2)
    for name in ("quality", "ttq", "text", "processes", "generative"):
        parser.add_argument(f"--skip-{name}", action="store_true", help=f"skip speed_{name}.py's question")
    for name, what in ONLY.items():
        parser.add_argument(f"--only-{name}", action="store_true", help=f"only the {what}")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    data = args.data or default_data()
    common = {"data": data, "rounds": args.rounds}
    questions = [  # (name, the question's rows, its settings)
        ("training", speed_training.rows, {"epochs": args.epochs}),
        ("overhead", speed_overhead.rows, {"epochs": args.epochs}),
        ("inference", speed_inference.rows, {}),
        ("quality", speed_quality.rows, {"epochs": args.quality_epochs, "seeds": args.quality_seeds}),
        ("ttq", speed_ttq.rows, {}),
        ("text", speed_text.rows, {"epochs": args.text_epochs, "quality_epochs": args.text_quality_epochs}),
        ("generative", speed_generative.rows, {"epochs": args.epochs}),
        ("processes", speed_processes.rows, {"epochs": args.process_epochs}),
    ]
    only = [name for name in ONLY if getattr(args, f"only_{name}")]
    chosen = [q for q in questions if (q[0] in only if only else not getattr(args, f"skip_{q[0]}", False))]
    rows: list[tuple[str, str]] = []

    def report(label: str, value: str) -> None:
        rows.append((label, value))
        print(f"{label:<58} {value}", flush=True)

    for _, rows_of, settings in chosen:
        rows_of(argparse.Namespace(**common, **settings), report)
    if only:
        profile = f"({' and '.join(ONLY[name] for name in only)} only: no profile)"
    else:
        profile = speed_training.profile_summary(split_validation(load_data(data).train)[0])
        print(profile)
    write_results(args.results, rows, profile, argv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
