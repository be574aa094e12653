"""How fast does `aelab train` train seed 3's char-lstm, against the same model in a plain fp32
eager loop, and at what quality?

    python benchmarks/speed_text.py [--epochs 2] [--rounds 3] [--quality-epochs 2]

The reference is the fused nn.LSTM in fp32 eager with Keras' RMSprop, one-hot batches made from
the same index windows, on the default corpus (pydoc-topics); fresh processes, alternated rounds.
Then held-out bits per character after a fixed number of epochs, defaults against fp32.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from speed_common import Report, goal, measure, rate_text, script_main
from torch import nn

from aelab.training import train

TEXT_MODEL, TEXT_BATCH = "char-lstm", 128
TEXT_WORKERS = {
    "text-reference": "char-lstm reference: plain fp32 eager nn.LSTM loop",
    "text-ours": "char-lstm: aelab train (defaults)",
}


class PlainCharLSTM(nn.Module):
    """The reference: seed 3's text model as a user writes it in plain PyTorch."""

    def __init__(self, alphabet_size: int, units: int = 128) -> None:
        super().__init__()
        self.lstm = nn.LSTM(alphabet_size, units, batch_first=True)
        self.head = nn.Linear(units, alphabet_size)

    def forward(self, one_hot: torch.Tensor) -> torch.Tensor:  # (B, T, V) -> (B, V) logits
        out, _ = self.lstm(one_hot)
        return self.head(out[:, -1])


def text_plain_loop(train: torch.Tensor, alphabet_size: int, epochs: int, maxlen: int = 40, step: int = 3) -> float:
    """Training characters (windows) a second of the reference, over the epochs after the first."""
    torch.manual_seed(0)
    model = PlainCharLSTM(alphabet_size)
    optimizer = torch.optim.RMSprop(model.parameters(), lr=0.01, alpha=0.9, eps=1e-7)  # Keras' RMSprop
    windows = train.unfold(0, maxlen + 1, step)
    rates = []
    for _ in range(epochs):
        order = torch.randperm(len(windows))
        start = time.perf_counter()
        for first in range(0, len(windows), TEXT_BATCH):
            batch = windows[order[first : first + TEXT_BATCH]]
            logits = model(F.one_hot(batch[:, :-1], alphabet_size).float())
            loss = F.cross_entropy(logits, batch[:, -1])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        rates.append(len(windows) / (time.perf_counter() - start))
    return statistics.median(rates[1:] or rates)


def text_worker(kind: str, epochs: int) -> dict[str, float]:
    from aelab.data.text import load_text

    data = load_text()
    if kind == "text-reference":
        os.environ.pop("PYTORCH_NVML_BASED_CUDA_CHECK", None)
        return {"train": text_plain_loop(data.train, len(data.alphabet), epochs)}
    with tempfile.TemporaryDirectory() as tmp:
        run = train(TEXT_MODEL, epochs=epochs, out=Path(tmp) / "r", progress=False, early_stopping=False)
        rates = [row["images_per_second"] for row in run.history]
    return {"train": statistics.median(rates[1:] or rates)}


def text_rows(epochs: int, rounds: int, quality_epochs: int, report) -> None:
    """The char-lstm rows: training characters/s against the plain loop, and held-out bits per
    character after ``quality_epochs`` with the defaults against fp32."""
    rates: dict[str, list[float]] = {kind: [] for kind in TEXT_WORKERS}
    for _ in range(rounds):
        for kind in TEXT_WORKERS:
            rates[kind].append(measure(__file__, kind, "pydoc-topics", epochs)["train"])
    for kind, label in TEXT_WORKERS.items():
        report(f"{label}, training", rate_text(rates[kind]).replace("images/s", "characters/s"))
    ratio = statistics.median(rates["text-ours"]) / statistics.median(rates["text-reference"])
    per_round = ", ".join(f"{o / r:.2f}x" for o, r in zip(rates["text-ours"], rates["text-reference"]))
    report("  ratio ours / reference", f"{ratio:.2f}x (per round: {per_round}; {goal('>= 2.5x', ratio >= 2.5)})")
    with tempfile.TemporaryDirectory() as tmp:
        bits = [
            train(
                TEXT_MODEL, epochs=quality_epochs, out=Path(tmp) / name, progress=False, early_stopping=False, **options
            ).metrics["test_bits_per_char"]
            for name, options in (("default", {}), ("fp32", {"precision": "32"}))
        ]
    diff = bits[0] / bits[1] - 1
    report(
        f"char-lstm quality: test bits/char after {quality_epochs} epochs, defaults vs fp32",
        f"{bits[0]:.4f} vs {bits[1]:.4f} ({diff * 100:+.1f}%; {goal('within 2%', abs(diff) <= 0.02)})",
    )


def rows(args, report: Report) -> None:
    text_rows(args.epochs, args.rounds, args.quality_epochs, report)


def main(argv: list[str] | None = None) -> int:
    return script_main(
        argv,
        __doc__,
        Path(__file__).name,
        rows,
        lambda args: text_worker(args.worker, args.epochs),
        workers=TEXT_WORKERS,
        epochs=2,
        options=[("--quality-epochs", {"type": int, "default": 2})],
    )


if __name__ == "__main__":
    sys.exit(main())
