"""Seed 3's text generator with its defaults on the default corpus, against the n-gram baseline.

    python benchmarks/char_lstm.py            # trains runs/pydoc-topics/char-lstm (about an hour on 2 cores)
    python benchmarks/char_lstm.py --table-only   # rewrites the results from the existing run

Writes benchmarks/results/char-lstm.md: held-out bits per character of the LSTM and of the
add-one n-gram baseline, the training curve's end, and the last epoch's sample at each of the
seed's temperatures.
"""

from __future__ import annotations

import argparse
import datetime
import sys
from pathlib import Path

from aelab import Run, train

ROOT = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, default=Path("runs"))
    parser.add_argument("--table-only", action="store_true")
    parser.add_argument("--results", type=Path, default=ROOT / "results" / "char-lstm.md")
    args = parser.parse_args(argv)
    out = args.runs / "pydoc-topics" / "char-lstm"
    if not args.table_only:
        train("char-lstm", out=out, overwrite=out.exists(), progress=False)
    run = Run(out)
    m, history = run.metrics, run.history
    seconds = sum(row.get("train_seconds") or 0 for row in history)
    best = min(history, key=lambda row: row["val_loss"])
    samples = (out / "samples.txt").read_text(encoding="utf-8").strip().split("=== epoch")[-1]
    lines = [
        "# char-lstm: seed 3's text generator",
        "",
        f"Produced by `python benchmarks/char_lstm.py` ({datetime.date.today()}): `char-lstm` with its registered "
        "defaults (the seed's: windows of 40 characters every 3rd, LSTM 128, softmax, RMSprop 0.01, batch 128, "
        "up to 60 epochs, with aelab's early stopping and plateau schedule) on `pydoc-topics`, the last 10% held "
        "out (5% validation, 5% test).",
        "",
        "| measurement | value |",
        "|---|---|",
        f"| epochs trained | {len(history)} ({seconds / 60:.0f} minutes of training steps, from history.json) |",
        f"| alphabet | {m['alphabet_size']} characters |",
        f"| test bits per character (LSTM) | **{m['test_bits_per_char']:.3f}** ({m['test_loss']:.4f} nats; "
        f"{m['test_characters']:,} characters) |",
        f"| test next-character accuracy | {m['test_accuracy']:.3f} |",
        f"| n-gram baseline ({m['ngram_n']}-gram, add-one smoothing, n chosen on validation) | "
        f"**{m['ngram_test_bits_per_char']:.3f}** bits per character |",
        f"| LSTM / baseline | {m['bits_vs_ngram']:.2f}x |",
        f"| best epoch by validation loss (its weights are the run's) | {best['epoch']}: train / validation loss "
        f"{best['train_loss']:.4f} / {best['val_loss']:.4f} nats |",
        f"| last epoch (early stopping, patience 10) | {history[-1]['epoch']}: train / validation loss "
        f"{history[-1]['train_loss']:.4f} / {history[-1]['val_loss']:.4f} nats |",
        "",
        f"The last epoch's samples (`RUN/samples.txt`), epoch{samples.splitlines()[0]}:",
        "",
        "```",
        *samples.splitlines()[1:],
        "```",
        "",
    ]
    args.results.write_text("\n".join(lines))
    print("\n".join(lines[:16]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
