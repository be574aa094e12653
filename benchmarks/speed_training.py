"""How fast does `aelab train` train seed 1's model, against the same model in a plain fp32 eager
PyTorch loop, and how much of the CPU's matrix-multiply rate does it use?

    python benchmarks/speed_training.py [--data mnist-sample] [--epochs 3] [--rounds 3]

The reference is seed 1's model written in plain PyTorch (`PlainSeedOne`, tested to compute
exactly what `conv-resize` computes), trained with plain Adam at batch 200. Beside it: the same
loop with aelab's malloc setting, `aelab train` with its defaults, and a hand loop with aelab's
settings and no Lightning. Fresh processes, alternated rounds (speed_common.py).
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import lightning as L
import torch
import torch.nn.functional as F
from speed_common import BATCH, MODEL, Report, goal, measure, page_faults, rate_text, script_main
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from aelab import create_model
from aelab.accel import autocast, choose_precision, cpu_supports_bf16, keep_freed_memory, skip_failing_nvml_check
from aelab.data import load_data, split_validation
from aelab.families.base import make_optimizer
from aelab.losses import bce_with_logits
from aelab.training import train

WORKERS = {
    "reference": "reference: plain fp32 eager loop",
    "reference-kept": "reference with freed memory kept (aelab's malloc setting)",
    "ours": "aelab train (defaults)",
    "hand": "same fast settings in a hand loop (no Lightning)",
}


def matmul_rate(dtype: torch.dtype, n: int = 2048, seconds: float = 2.0) -> float:
    """Measured matrix-multiply rate in FLOP/s (2 n^3 per product)."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    for _ in range(3):
        a @ b
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        count += 1
    return 2 * n**3 * count / (time.perf_counter() - start)


def training_flops_per_image(model: torch.nn.Module, shape: tuple[int, ...]) -> float:
    x = torch.rand(BATCH, *shape)
    with FlopCounterMode(display=False) as counter:
        F.binary_cross_entropy_with_logits(model(x).logits, x).backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops() / BATCH


class PlainSeedOne(nn.Module):
    """The reference: seed 1's model as a user writes it in plain PyTorch, without aelab's code."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2, ceil_mode=True),  # 28 -> 14
            nn.Conv2d(16, 8, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2, ceil_mode=True),  # 14 -> 7
            nn.Conv2d(8, 8, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2, ceil_mode=True),
        )  # 7 -> 4
        self.decoder = nn.Sequential(
            nn.Upsample(size=7),
            nn.Conv2d(8, 8, 3, padding=1),
            nn.ReLU(),
            nn.Upsample(size=14),
            nn.Conv2d(8, 8, 3, padding=1),
            nn.ReLU(),
            nn.Upsample(size=28),
            nn.Conv2d(8, 16, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(16, 1, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # logits
        return self.decoder(self.encoder(x))


def hand_step(fast: bool, model_name: str = MODEL):
    """A hand-written training step of the seed-1 model: the plain reference (fp32 eager, plain
    Adam, PyTorch's BCE, :class:`PlainSeedOne`), or aelab's model (``model_name``) with its fast
    settings (channels-last, bf16 autocast where supported, aelab's BCE, fused Adam) but no Lightning."""
    torch.manual_seed(0)
    model = create_model(model_name) if fast else PlainSeedOne()
    precision = choose_precision("auto", "cpu") if fast else "32"
    if fast:
        model = model.to(memory_format=torch.channels_last)
    # fast: aelab's optimiser (fused Adam), so the gap to `aelab train` is Lightning's alone
    optimizer = (
        make_optimizer("adam", model.parameters(), 1e-3) if fast else torch.optim.Adam(model.parameters(), lr=1e-3)
    )

    def step(batch: torch.Tensor) -> None:
        if fast:
            batch = batch.contiguous(memory_format=torch.channels_last)
        with autocast(precision, "cpu"):
            logits = model(batch).logits if fast else model(batch)
        loss = bce_with_logits(logits, batch) if fast else F.binary_cross_entropy_with_logits(logits, batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    return step


def plain_loop(
    train_x: torch.Tensor, epochs: int, fast: bool, model_name: str = MODEL, batch_size: int = BATCH
) -> tuple[float, float]:
    """The reference loop (``fast`` adds aelab's settings without Lightning). Returns training
    images/s and page faults a step, over the epochs after the first (the first warms up)."""
    step = hand_step(fast, model_name)
    rates, faults = [], []
    for _ in range(epochs):
        shuffled = train_x[torch.randperm(len(train_x))]
        batches = shuffled.split(batch_size)
        start, faults_before = time.perf_counter(), page_faults()
        for batch in batches:
            step(batch)
        rates.append(len(train_x) / (time.perf_counter() - start))
        faults.append((page_faults() - faults_before) / len(batches))
    return statistics.median(rates[1:] or rates), statistics.median(faults[1:] or faults)


class StepFaults(L.Callback):
    """Page faults a training step in `aelab train`, over the epochs after the first: counted from
    an epoch's first step to its last, as :class:`aelab.callbacks.History` times them (a count
    each step would cost more than some steps do)."""

    def __init__(self) -> None:
        self.counts: list[float] = []

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
        if batch_idx == 0:
            self.before = page_faults()

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        last = batch_idx == trainer.num_training_batches - 1
        if last and (trainer.current_epoch > 0 or trainer.max_epochs == 1):
            self.counts.append((page_faults() - self.before) / trainer.num_training_batches)


def ours(data_name: str, epochs: int, workdir: Path, model_name: str = MODEL, **options) -> tuple[float, dict, float]:
    """`aelab train` with the defaults a user gets: training images/s from the run's history (the
    epochs after the first), the metrics, and page faults a training step."""
    out = workdir / f"ours-{len(list(workdir.iterdir()))}"
    faults = StepFaults()
    metrics = train(
        model_name,
        data=data_name,
        epochs=epochs,
        out=out,
        progress=False,
        early_stopping=False,
        callbacks=[faults],
        **options,
    ).metrics
    history = json.loads((out / "history.json").read_text())["epochs"]
    rates = [row["images_per_second"] for row in history]
    return statistics.median(rates[1:] or rates), metrics, statistics.mean(faults.counts)


def worker(
    kind: str, data_name: str, epochs: int, model_name: str = MODEL, batch_size: int = BATCH
) -> dict[str, float]:
    """One measurement, in this process: training images/s, milliseconds a step and page faults a
    step of one side (``WORKERS``). The hand loop gets aelab's malloc setting as `aelab train`
    does, so the gap between them is Lightning's alone."""
    train_x, _ = split_validation(load_data(data_name).train)
    if kind.startswith("reference"):  # a plain script does not import Lightning, which sets this
        os.environ.pop("PYTORCH_NVML_BASED_CUDA_CHECK", None)
    if kind in ("reference-kept", "hand"):
        keep_freed_memory()
    if kind == "hand":
        skip_failing_nvml_check()
    if kind == "ours":
        with tempfile.TemporaryDirectory() as tmp:
            # the loss fixed to BCE, which the hand loop uses (seed 1's; `dense` defaults to MSE)
            rate, _, faults = ours(
                data_name, epochs, Path(tmp), model_name=model_name, loss="bce", batch_size=batch_size
            )
    else:
        rate, faults = plain_loop(train_x, epochs, fast=kind == "hand", model_name=model_name, batch_size=batch_size)
    return {"train": rate, "step_ms": batch_size / rate * 1000, "faults_per_step": faults}


def rows(args, report: Report) -> None:
    data = load_data(args.data)
    train_x, _ = split_validation(data.train)
    device_name = "cuda" if torch.cuda.is_available() else "cpu"
    report("data", f"{args.data}: {len(train_x)} training images per epoch, batch {BATCH}, model {MODEL}")
    report("default precision / memory format", f"{choose_precision('auto', device_name)} / channels_last (CPU)")
    fp32_rate = matmul_rate(torch.float32)
    report("fp32 matmul rate (2048^2)", f"{fp32_rate / 1e9:.1f} GFLOP/s")
    bf16_rate = matmul_rate(torch.bfloat16) if cpu_supports_bf16() else None
    if bf16_rate:
        report("bf16 matmul rate (2048^2)", f"{bf16_rate / 1e9:.1f} GFLOP/s")
    flops = training_flops_per_image(create_model(MODEL), data.shape)
    report("training FLOPs per image (forward + backward)", f"{flops / 1e6:.2f} MFLOP")
    # alternated rounds of fresh processes, so a slow spell of a shared machine hits every side alike
    results: dict[str, list[dict[str, float]]] = {kind: [] for kind in WORKERS}
    for _ in range(args.rounds):
        for kind in results:
            results[kind].append(measure(__file__, kind, args.data, args.epochs))
    rates = {kind: [r["train"] for r in rounds] for kind, rounds in results.items()}
    median = {kind: statistics.median(r) for kind, r in rates.items()}
    for kind in ("reference", "reference-kept", "ours"):
        faults = statistics.median(r["faults_per_step"] for r in results[kind])
        report(f"{WORKERS[kind]}, training", f"{rate_text(rates[kind])}; {faults:,.0f} page faults a step")
    for kind, label in (("reference", "reference"), ("reference-kept", "reference with freed memory kept")):
        ratio = median["ours"] / median[kind]
        per_round = ", ".join(f"{o / r:.2f}x" for o, r in zip(rates["ours"], rates[kind]))
        verdict = f"; {goal('>= 2.5x', ratio >= 2.5)}" if kind == "reference" else ""
        report(f"  ratio ours / {label}", f"{ratio:.2f}x (per round: {per_round}{verdict})")
    report(WORKERS["hand"], rate_text(rates["hand"]))
    per_round = ", ".join(f"{(1 - o / h) * 100:.1f}%" for o, h in zip(rates["ours"], rates["hand"]))
    report(
        "  its step time vs aelab train's (separate processes: noisy)",
        f"{(1 - median['ours'] / median['hand']) * 100:.1f}% shorter (per round: {per_round})",
    )
    report("  utilisation vs fp32 matmul peak", f"{median['ours'] * flops / fp32_rate * 100:.0f}%")
    if bf16_rate:
        report("  utilisation vs bf16 matmul peak", f"{median['ours'] * flops / bf16_rate * 100:.0f}%")


def profile_summary(train_x: torch.Tensor, steps: int = 20) -> str:
    """Where a training step's time goes, by operator (aelab's settings, no Lightning)."""
    step = hand_step(fast=True)
    batches = list(train_x[: steps * BATCH].split(BATCH))
    for batch in batches[:3]:
        step(batch)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        for batch in batches:
            step(batch)
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=10, max_name_column_width=40)


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
