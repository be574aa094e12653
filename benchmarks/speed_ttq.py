"""How many seconds of training does `best` (code 49) take to reach PCA-49's test RMSE?

    python benchmarks/speed_ttq.py [--data mnist-sample] [--rounds 3]

`best` trains in fresh processes, in alternated rounds with its default batch norm (7x7 level
and the decoder's upsampling only) and with batch norm after every conv, until its test RMSE
reaches that of PCA with 49 components (checked each epoch; once more checked 4x per epoch, to
show where it crosses). The verdict is on the default's median.
"""

from __future__ import annotations

import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

import lightning as L
import torch
import torch.nn.functional as F
from speed_common import Report, goal, measure, script_main

from aelab import model_settings
from aelab.data import ImageData, load_data, split_validation
from aelab.metrics import pca_rmse, reconstruct
from aelab.training import train


class StopAtQuality(L.Callback):
    """Measures test RMSE after every epoch's validation (or every ``every`` training batches) and
    stops training once it reaches the target. Times are wall seconds since training started,
    the checks included."""

    def __init__(self, test_x: torch.Tensor, target: float, every: int | None = None) -> None:
        self.test_x, self.target, self.every = test_x, target, every
        self.reached_at: float | None = None
        self.trace: list[tuple[float, float, float]] = []

    def on_train_start(self, trainer, module) -> None:
        self.started = time.perf_counter()

    def check(self, trainer, module) -> None:
        if self.reached_at is not None:
            return
        recon, _ = reconstruct(module.model, self.test_x)
        module.model.train()
        rmse = math.sqrt(F.mse_loss(recon, self.test_x).item())
        elapsed = time.perf_counter() - self.started
        epoch = trainer.current_epoch + (
            trainer.fit_loop.epoch_loop.batch_progress.current.completed / max(1, trainer.num_training_batches)
        )
        self.trace.append((epoch, elapsed, rmse))
        if rmse <= self.target:
            self.reached_at = elapsed
            trainer.should_stop = True

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        if self.every and (batch_idx + 1) % self.every == 0:
            self.check(trainer, module)

    def on_validation_end(self, trainer, module) -> None:
        if not self.every:
            self.check(trainer, module)


# the default (`norm_at=coarse`) checked each epoch, the verdict's figure; the same checked 4x per
# epoch, to show where it crosses; and batch norm after every conv, what the default replaced
TTQ_RUNS = {"ttq-coarse": ("coarse", 1), "ttq-coarse-4x": ("coarse", 4), "ttq-all": ("all", 1)}


def time_to_quality(
    data: ImageData,
    workdir: Path,
    target: float,
    norm_at: str = "coarse",
    checks_per_epoch: int = 1,
    code_size: int = 49,
) -> StopAtQuality:
    train_images = len(split_validation(data.train)[0])
    batch = model_settings("best").batch_size
    every = None if checks_per_epoch == 1 else max(1, -(-train_images // batch) // checks_per_epoch)
    stopper = StopAtQuality(data.test, target, every)
    start = time.perf_counter()
    train(
        "best",
        data=data.name,
        code_size=code_size,
        norm_at=norm_at,
        epochs=30,
        out=workdir / "ttq",
        progress=False,
        callbacks=[stopper],
    )
    stopper.wall_including_setup = time.perf_counter() - start
    return stopper


def ttq_worker(kind: str, data_name: str, target: float) -> dict:
    data = load_data(data_name)
    with tempfile.TemporaryDirectory() as tmp:
        stopper = time_to_quality(data, Path(tmp), target, *TTQ_RUNS[kind])
    return {"reached_at": stopper.reached_at, "wall": stopper.wall_including_setup, "trace": stopper.trace}


def ttq_label(kind: str, target: float) -> str:
    norm_at, checks = TTQ_RUNS[kind]
    return (
        f"time to quality (best, code 49, norm_at={norm_at}, RMSE <= {target:.4f}, "
        f"{'checked each epoch' if checks == 1 else f'checked {checks}x per epoch'})"
    )


def ttq_text(runs: list[dict], verdict: bool) -> str:
    """Median seconds of training to the target over ``runs`` (each run's epoch trace beside it);
    a run that never reached it counts as infinitely slow."""
    reached = [r["reached_at"] if r["reached_at"] is not None else math.inf for r in runs]
    median = statistics.median(reached)
    traces = "; ".join(", ".join(f"epoch {e:.2f}: {t:.1f}s rmse {r:.4f}" for e, t, r in run["trace"]) for run in runs)
    rounds = f" (runs: {', '.join(f'{t:.1f}' for t in reached)})" if len(runs) > 1 else ""
    head = "not reached" if median == math.inf else f"{median:.1f} s of training{rounds}"
    if verdict:
        head += f", {goal('< 20 s', median < 20)}"
    wall = statistics.median(r["wall"] for r in runs)
    return f"{head}; {wall:.1f} s wall incl. data and set-up ({traces})"


def rows(args, report: Report) -> None:
    data = load_data(args.data)
    target = pca_rmse(data.train, data.test, data.test, 49)  # the PCA floor at code size 49
    ttq: dict[str, list[dict]] = {"ttq-coarse": [], "ttq-all": []}
    for _ in range(args.rounds):  # alternated, as the throughputs
        for kind in ttq:
            ttq[kind].append(measure(__file__, kind, args.data, 0, target))
    ttq["ttq-coarse-4x"] = [measure(__file__, "ttq-coarse-4x", args.data, 0, target)]
    for kind in TTQ_RUNS:
        report(ttq_label(kind, target), ttq_text(ttq[kind], verdict=kind == "ttq-coarse"))


def main(argv: list[str] | None = None) -> int:
    return script_main(
        argv,
        __doc__,
        Path(__file__).name,
        rows,
        lambda args: ttq_worker(args.worker, args.data, args.target),
        workers=TTQ_RUNS,
    )


if __name__ == "__main__":
    sys.exit(main())
