"""What short epochs cost beyond their training steps: the demo's seed-1 run (334 epochs of 18
steps on the embedded digits) timed whole and by part.

    python benchmarks/epochs_speed.py                 # the demo's run: 334 epochs
    python benchmarks/epochs_speed.py --epochs 60     # shorter, for a quick look

The run is `aelab.train("conv-resize", data="mnist-sample", early_stopping=False,
reduce_lr=False)` with the demo's epochs and every default (loggers, checkpoints, history).
Parts: the training steps (history.json's train_seconds, first batch start to last batch end),
validation (its loop's start to end), and the rest (checkpoints, logs, history, the epoch's own
bookkeeping in Lightning). The goal (issue 43): fit wall / steps <= 1.1. Writes its table on top
of benchmarks/results/epochs.md, naming the CPU.
"""

from __future__ import annotations

import argparse
import datetime
import sys
import tempfile
import time
from pathlib import Path

import lightning as L

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))

from speed_common import cpu_line  # noqa: E402

RESULTS = ROOT / "results" / "epochs.md"


class Clock(L.Callback):
    """The fit's wall time and its validation loops' time."""

    def __init__(self) -> None:
        self.fit = self.validation = 0.0
        self._fit = self._validation = 0.0

    def on_fit_start(self, trainer, module) -> None:
        self._fit = time.perf_counter()

    def on_fit_end(self, trainer, module) -> None:
        self.fit = time.perf_counter() - self._fit

    def on_validation_start(self, trainer, module) -> None:
        self._validation = time.perf_counter()

    def on_validation_end(self, trainer, module) -> None:
        self.validation += time.perf_counter() - self._validation


def demo_epochs() -> int:
    from aelab import model_settings
    from aelab.data import resolve_data
    from aelab.data.images import held_out
    from aelab.published import epochs_for_steps, seed_steps

    defaults = model_settings("conv-resize")
    n = len(resolve_data("mnist-sample").train)
    steps = seed_steps(defaults.epochs, defaults.batch_size)
    return epochs_for_steps(steps, n - held_out(n, defaults.val_fraction), defaults.batch_size)


def main(argv: list[str] | None = None) -> int:
    import aelab

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=None, help="default: the demo's (the seed's 6,000 steps)")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    epochs = args.epochs or demo_epochs()
    clock = Clock()
    with tempfile.TemporaryDirectory() as folder:
        run = aelab.train(
            "conv-resize",
            data="mnist-sample",
            epochs=epochs,
            early_stopping=False,
            reduce_lr=False,
            out=Path(folder) / "run",
            progress=None,
            callbacks=[clock],
            bounds=False,
        )
        history = run.history
        steps = sum(row["train_seconds"] for row in history)
        done = run.steps_done()
    rest = clock.fit - steps - clock.validation
    ratio = clock.fit / steps
    given = "".join(" " + word for word in (argv if argv is not None else sys.argv[1:]))
    lines = [
        f"## {datetime.date.today()}: {cpu_line()}",
        "",
        f"Command: `python benchmarks/epochs_speed.py{given}`",
        "",
        f"conv-resize on mnist-sample, {len(history)} epochs, {done:,} steps.",
        "",
        "| part | seconds | per epoch (ms) | share of the fit |",
        "|---|---|---|---|",
    ]
    for name, seconds in (
        ("training steps", steps),
        ("validation", clock.validation),
        ("the rest (checkpoints, logs, history, Lightning's epoch)", rest),
        ("the fit, whole", clock.fit),
    ):
        lines.append(f"| {name} | {seconds:.1f} | {seconds / len(history) * 1000:.0f} | {seconds / clock.fit:.1%} |")
    lines += ["", f"fit wall / training steps = {ratio:.3f} (goal <= 1.1)"]
    print("\n".join(lines))
    if not args.no_write:
        if not RESULTS.exists():
            RESULTS.write_text("# Short epochs\n\nWritten by `benchmarks/epochs_speed.py`; newest run first.\n")
        head, marker, rest_ = RESULTS.read_text().partition("\n## ")
        RESULTS.write_text(head.rstrip("\n") + "\n\n" + "\n".join(lines) + "\n\n" + marker.lstrip("\n") + rest_)
        print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
