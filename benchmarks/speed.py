"""Training and inference speed of aelab vs a plain fp32 eager PyTorch loop, measured in one run.

    python benchmarks/speed.py                 # full Fashion-MNIST where installed, else mnist-sample
    python benchmarks/speed.py --data mnist-sample --epochs 2 --skip-quality
    python benchmarks/speed.py --only-text     # only the char-lstm rows
    python benchmarks/speed.py --only-processes  # only 2 single-thread processes vs 1 two-thread process
    python benchmarks/speed.py --only-generative # only the VAE and GAN rows

Prints one table and writes it, with machine, date and command, to benchmarks/results/speed.md
(--results to change). Every ratio compares two measurements taken in this same run. Each
throughput is measured in a fresh process of its own (``--worker``), as a user's script or an
`aelab train` would run: in one shared process, whatever ran before leaves glibc's malloc in a
state that changes the next loop's page faults, and with them its speed, by up to 1.5x. The
processes run in alternated rounds (--rounds) and the medians are compared, so a slow spell of
a shared machine does not land on one side only. Each goal of the speed issue is marked met or
not met beside its figure.

Lightning's own cost a step is measured where little else costs anything: a small dense model
at batch 10 through `aelab train` and through a hand loop with the same settings, in the same
rounds; the difference of their step times, over the seed-1 model's step time in `aelab train`,
is the trainer's share. The seed-1 model's hand loop is reported beside it, but two fresh processes
differ by more than that share from one round to the next.

Time to quality trains `best` (code 49) in fresh processes too, in alternated rounds with its
default batch norm (7x7 level and the decoder's upsampling only) and with batch norm after every
conv, until its test RMSE reaches that of PCA with 49 components; the verdict is on the
default's median.

The char-lstm rows train seed 3's text model on the default corpus (pydoc-topics) through `aelab
train` and through a plain loop of the same model (fused nn.LSTM, fp32, eager, Keras' RMSprop,
one-hot batches made from the same index windows), in fresh processes and alternated rounds as
above; then held-out bits per character after a fixed number of epochs, defaults against fp32.

The VAE and GAN rows train seed 3's generative models through `aelab train` (defaults, no
evaluation at the end) and the same networks through a plain fp32 eager loop (`plain_generative_step`:
the summed negative ELBO with Adam; seed 3's noisy-label discriminator and generator steps with
Adam and clipping), in fresh processes and alternated rounds, at their registered batch sizes.
A third side, the plain loop with the settings aelab's defaults pick (channels-last, bf16 autocast where the
CPU has bf16, fused Adam, the malloc setting), shows how much of the ratio those settings can give
without the trainer. Two rows before them say why the ratio is what it is on this CPU: the precision and memory format
aelab's defaults pick here (with torch's CPU capability), and one 3x3 convolution the size of the
VAE's middle layers timed in fp32 and in bf16 (where the CPU lacks AVX512-BF16, bf16 convolutions
fall back to a slow reference kernel, so the defaults stay in fp32 and only channels-last is left).

The process-count rows train seed 1's model and `best` through `python -m aelab train` with
`--devices 2` (two processes under DDP over gloo; Lightning gives each half the CPU's threads, so
one here) against one process with all the threads, at the same combined batch (each of the two
processes takes half of it), in alternated rounds; images/s of both processes together.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from aelab import create_model
from aelab.accel import autocast, choose_precision, cpu_supports_bf16, keep_freed_memory, skip_failing_nvml_check
from aelab.data import DEBIAN_FASHION_MNIST, ImageData, load_data, split_validation
from aelab.losses import bce_with_logits
from aelab.metrics import pca_rmse, reconstruct
from aelab.models import get_entry
from aelab.families.base import make_optimizer
from aelab.training import train

from generative_ceiling import conv_ms  # a sibling script: python benchmarks/speed.py puts this folder on the path

ROOT = Path(__file__).resolve().parent
MODEL, BATCH = "conv-resize", 200


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
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2, ceil_mode=True),  # 28 -> 14
            nn.Conv2d(16, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2, ceil_mode=True),  # 14 -> 7
            nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2, ceil_mode=True))  # 7 -> 4
        self.decoder = nn.Sequential(
            nn.Upsample(size=7), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
            nn.Upsample(size=14), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
            nn.Upsample(size=28), nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(),
            nn.Conv2d(16, 1, 3, padding=1))

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
    optimizer = make_optimizer("adam", model.parameters(), 1e-3) if fast else torch.optim.Adam(model.parameters(), lr=1e-3)

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


def page_faults() -> int:
    """Minor page faults of this process so far."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def plain_loop(train_x: torch.Tensor, epochs: int, fast: bool, model_name: str = MODEL,
               batch_size: int = BATCH) -> tuple[float, float]:
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
    metrics = train(model_name, data=data_name, epochs=epochs, out=out, progress=False, early_stopping=False,
                    callbacks=[faults], **options).metrics
    history = json.loads((out / "history.json").read_text())["epochs"]
    rates = [row["images_per_second"] for row in history]
    return statistics.median(rates[1:] or rates), metrics, statistics.mean(faults.counts)


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


# Each throughput is measured in a fresh process of its own: one worker a measurement
WORKERS = {
    "reference": "reference: plain fp32 eager loop",
    "reference-kept": "reference with freed memory kept (aelab's malloc setting)",
    "ours": "aelab train (defaults)",
    "hand": "same fast settings in a hand loop (no Lightning)",
}
# Lightning's own cost a step, measured where little else costs anything: a small dense model
# (784-64-784, BCE) at batch 10 through `aelab train` and through the hand loop; the difference of
# their step times is what the trainer adds to every step, whatever the model and batch.
OVERHEAD_MODEL, OVERHEAD_BATCH, OVERHEAD_EPOCHS = "dense", 10, 3
OVERHEAD_WORKERS = {"overhead-ours": "ours", "overhead-hand": "hand"}


# char-lstm (seed 3's text generator) on the default corpus: aelab train against the same model in
# a plain loop (fused nn.LSTM, fp32, eager, one-hot batches made from the same index windows)
TEXT_MODEL, TEXT_BATCH = "char-lstm", 128
TEXT_WORKERS = {"text-reference": "char-lstm reference: plain fp32 eager nn.LSTM loop",
                "text-ours": "char-lstm: aelab train (defaults)"}


class PlainCharLSTM(nn.Module):
    """The reference: seed 3's text model as a user writes it in plain PyTorch."""

    def __init__(self, alphabet_size: int, units: int = 128) -> None:
        super().__init__()
        self.lstm = nn.LSTM(alphabet_size, units, batch_first=True)
        self.head = nn.Linear(units, alphabet_size)

    def forward(self, one_hot: torch.Tensor) -> torch.Tensor:  # (B, T, V) -> (B, V) logits
        out, _ = self.lstm(one_hot)
        return self.head(out[:, -1])


def text_plain_loop(train: torch.Tensor, alphabet_size: int, epochs: int, maxlen: int = 40,
                    step: int = 3) -> float:
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
            batch = windows[order[first:first + TEXT_BATCH]]
            logits = model(F.one_hot(batch[:, :-1], alphabet_size).float())
            loss = F.cross_entropy(logits, batch[:, -1])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        rates.append(len(windows) / (time.perf_counter() - start))
    return statistics.median(rates[1:] or rates)


def text_worker(kind: str, epochs: int) -> dict[str, float]:
    from aelab.text import load_text

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
            rates[kind].append(measure(kind, "pydoc-topics", epochs)["train"])
    for kind, label in TEXT_WORKERS.items():
        report(f"{label}, training", rate_text(rates[kind]).replace("images/s", "characters/s"))
    ratio = statistics.median(rates["text-ours"]) / statistics.median(rates["text-reference"])
    per_round = ", ".join(f"{o / r:.2f}x" for o, r in zip(rates["text-ours"], rates["text-reference"]))
    report("  ratio ours / reference", f"{ratio:.2f}x (per round: {per_round}; {goal('>= 2.5x', ratio >= 2.5)})")
    with tempfile.TemporaryDirectory() as tmp:
        bits = [train(TEXT_MODEL, epochs=quality_epochs, out=Path(tmp) / name, progress=False, early_stopping=False,
                      **options).metrics["test_bits_per_char"]
                for name, options in (("default", {}), ("fp32", {"precision": "32"}))]
    diff = bits[0] / bits[1] - 1
    report(f"char-lstm quality: test bits/char after {quality_epochs} epochs, defaults vs fp32",
           f"{bits[0]:.4f} vs {bits[1]:.4f} ({diff * 100:+.1f}%; {goal('within 2%', abs(diff) <= 0.02)})")


# seed 3's generative models: `aelab train` against the same networks trained by a plain fp32 eager loop
GENERATIVE_MODELS = ("vae", "gan")
GENERATIVE_SIDES = ("reference", "tuned", "ours")  # plain fp32 loop; the same loop with aelab's settings; aelab
GENERATIVE_WORKERS = {f"{m}-{side}": m for m in GENERATIVE_MODELS for side in GENERATIVE_SIDES}


def plain_generative_step(model_name: str, tuned: bool = False):
    """The network and one training step of aelab's ``model_name`` network as a user writes it in plain PyTorch:
    fp32, contiguous tensors, torch.optim with the registered settings. The VAE: the negative
    ELBO (BCE summed over pixels + KL), Adam. The GAN: seed 3's loop (one discriminator step on
    generated and real images with noisy labels, then one generator step; Adam with beta1 0.5 and
    gradients clipped at 1.0, as GANSystem does).

    ``tuned``: the same loop with the settings aelab's defaults pick on this machine (channels-last
    weights, bf16 autocast where the CPU has bf16 with the losses in fp32, Adam's fused kernel), so
    that what the settings can buy is told apart from what the trainer costs. The caller passes
    channels-last batches."""
    torch.manual_seed(0)
    model, settings = create_model(model_name), get_entry(model_name).train
    adam = {"fused": True} if tuned else {}
    precision = choose_precision("auto", "cpu") if tuned else "32"
    if tuned:
        model.to(memory_format=torch.channels_last)
    if model_name == "vae":
        optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr, **adam)

        def vae_step(batch: torch.Tensor) -> None:
            with autocast(precision, "cpu"):
                out = model(batch)
            logits, mean, logvar = out.logits.float(), out.mean.float(), out.logvar.float()
            recon = F.binary_cross_entropy_with_logits(logits, batch, reduction="sum") / len(batch)
            kl = -0.5 * torch.sum(1 + logvar - mean ** 2 - logvar.exp()) / len(batch)
            optimizer.zero_grad()
            (recon + kl).backward()
            optimizer.step()

        return model, vae_step
    d, g = model.discriminator, model.generator
    opt_d = torch.optim.Adam(d.parameters(), lr=settings.d_lr or 2 * settings.lr, betas=(0.5, 0.999), **adam)
    opt_g = torch.optim.Adam(g.parameters(), lr=settings.lr, betas=(0.5, 0.999), **adam)

    def gan_step(batch: torch.Tensor) -> None:
        real, n = batch * 2 - 1, len(batch)
        with autocast(precision, "cpu"):
            fake = g(torch.randn(n, model.latent_dim)).detach()
            logits = d(torch.cat([fake, real])).float()
        labels = torch.cat([torch.ones(n), torch.zeros(n)])
        labels = labels - 0.05 * torch.rand_like(labels) * (2 * labels - 1)
        d_loss = F.binary_cross_entropy_with_logits(logits, labels)
        opt_d.zero_grad()
        d_loss.backward()
        torch.nn.utils.clip_grad_value_(d.parameters(), 1.0)
        opt_d.step()
        with autocast(precision, "cpu"):
            logits = d(g(torch.randn(n, model.latent_dim))).float()
        g_loss = F.binary_cross_entropy_with_logits(logits, torch.zeros_like(logits))
        opt_g.zero_grad()
        g_loss.backward()
        torch.nn.utils.clip_grad_value_(g.parameters(), 1.0)
        opt_g.step()

    return model, gan_step


def generative_worker(kind: str, data_name: str, epochs: int) -> dict[str, float]:
    """Training images/s of one side for one generative model, in this process (the epochs after the first)."""
    model_name = GENERATIVE_WORKERS[kind]
    if kind.endswith("ours"):
        with tempfile.TemporaryDirectory() as tmp:
            run = train(model_name, data=data_name, epochs=epochs, out=Path(tmp) / "r", progress=False,
                        evaluate_test=False, **({"early_stopping": False} if model_name == "vae" else {}))
            rates = [row["images_per_second"] for row in run.history]
        return {"train": statistics.median(rates[1:] or rates)}
    os.environ.pop("PYTORCH_NVML_BASED_CUDA_CHECK", None)  # a plain script does not import Lightning
    tuned = kind.endswith("tuned")
    if tuned:
        keep_freed_memory()  # as `aelab train` does when it starts
    train_x, _ = split_validation(load_data(data_name).train)
    (_, step), batch_size, rates = plain_generative_step(model_name, tuned), get_entry(model_name).train.batch_size, []
    memory_format = torch.channels_last if tuned else torch.contiguous_format
    for _ in range(epochs):
        start = time.perf_counter()
        for batch in train_x[torch.randperm(len(train_x))].contiguous(memory_format=memory_format).split(batch_size):
            step(batch)
        rates.append(len(train_x) / (time.perf_counter() - start))
    return {"train": statistics.median(rates[1:] or rates)}


def generative_rows(data_name: str, epochs: int, rounds: int, report) -> None:
    """The VAE and GAN rows: `aelab train` against the plain loop, fresh processes, alternated rounds."""
    precision = choose_precision("auto", "cpu")
    report("default precision / memory format (CPU)", f"{precision} / channels_last "
           f"(torch's CPU capability: {torch.backends.cpu.get_cpu_capability()})")
    # one of the VAE's middle layers alone, channels-last: whether PyTorch has a fast bf16 kernel for it on this CPU
    fp32, bf16 = (conv_ms(nn.Conv2d(64, 64, 3, padding=1), (128, 64, 14, 14), True, dtype, True, repeats=5)
                  for dtype in ("32", "bf16-mixed"))
    report("3x3 convolution 64x14x14, batch 128, forward + backward", f"fp32 {fp32:.0f} ms, bf16 "
           f"{bf16:.0f} ms ({fp32 / bf16:.2f}x the fp32 speed in bf16)")
    for model_name in GENERATIVE_MODELS:
        rates: dict[str, list[float]] = {side: [] for side in GENERATIVE_SIDES}
        for _ in range(rounds):
            for side in rates:
                rates[side].append(measure(f"{model_name}-{side}", data_name, epochs)["train"])
        median = {side: statistics.median(values) for side, values in rates.items()}
        batch_size = get_entry(model_name).train.batch_size
        report(f"`{model_name}`, batch {batch_size}: plain fp32 eager loop, training", rate_text(rates["reference"]))
        report(f"  the same loop with aelab's settings ({precision}, channels-last, fused Adam, the malloc setting)",
               f"{rate_text(rates['tuned'])}, {median['tuned'] / median['reference']:.2f}x the plain loop")
        report(f"  `aelab train {model_name}` (defaults)", rate_text(rates["ours"]))
        ratio = median["ours"] / median["reference"]
        per_round = ", ".join(f"{o / r:.2f}x" for o, r in zip(rates["ours"], rates["reference"]))
        report("  ratio ours / reference", f"{ratio:.2f}x (per round: {per_round}; {goal('>= 2.5x', ratio >= 2.5)})")


PROCESS_MODELS = {"conv-resize": 200, "best": 128}  # seed 1's model and aelab's own, at their default batches


def cli_rate(model_name: str, data_name: str, epochs: int, processes: int, batch_size: int) -> float:
    """`python -m aelab train` as a user runs it, in ``processes`` processes at ``batch_size`` in all
    (each process takes batch_size / processes): training images/s of all of them together, the
    median of the epochs after the first, from the run's history."""
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, "-m", "aelab", "train", model_name, "--data", data_name, "--out", f"{tmp}/r",
                   "--epochs", str(epochs), "--no-early-stopping", "--no-progress", "--devices", str(processes),
                   "--batch-size", str(batch_size // processes)]
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
        report(f"  2 processes (--devices 2, batch {batch_size // 2} each), {max(1, cores // 2)} thread(s) each",
               rate_text(rates[2]))
        ratio = statistics.median(rates[2]) / statistics.median(rates[1])
        per_round = ", ".join(f"{two / one:.2f}x" for one, two in zip(rates[1], rates[2]))
        report("  ratio 2 processes / 1", f"{ratio:.2f}x (per round: {per_round}; "
                                          f"{'2 processes faster' if ratio > 1 else '1 process faster'})")


def worker(kind: str, data_name: str, epochs: int) -> dict[str, float]:
    """One measurement, in this process: training images/s and milliseconds a step, and for the
    seed-1 reference and ours also inference images/s. The hand loop gets aelab's malloc setting
    as `aelab train` does, so the gap between them is Lightning's alone."""
    data = load_data(data_name)
    train_x, _ = split_validation(data.train)
    model_name, batch_size = (OVERHEAD_MODEL, OVERHEAD_BATCH) if kind in OVERHEAD_WORKERS else (MODEL, BATCH)
    kind = OVERHEAD_WORKERS.get(kind, kind)
    if kind.startswith("reference"):  # a plain script does not import Lightning, which sets this
        os.environ.pop("PYTORCH_NVML_BASED_CUDA_CHECK", None)
    if kind in ("reference-kept", "hand"):
        keep_freed_memory()
    if kind == "hand":
        skip_failing_nvml_check()
    if kind == "ours":
        with tempfile.TemporaryDirectory() as tmp:
            # the loss fixed to BCE, which the hand loop uses (seed 1's; `dense` defaults to MSE)
            rate, _, faults = ours(data_name, epochs, Path(tmp), model_name=model_name, loss="bce",
                                   batch_size=batch_size)
    else:
        rate, faults = plain_loop(train_x, epochs, fast=kind == "hand", model_name=model_name, batch_size=batch_size)
    result = {"train": rate, "step_ms": batch_size / rate * 1000, "faults_per_step": faults}
    if kind in ("reference", "ours") and model_name == MODEL:
        result["inference"] = inference_rate(data.test[:10000], fast=kind == "ours")
    return result


def measure(kind: str, data_name: str, epochs: int, target: float | None = None) -> dict[str, float]:
    """:func:`worker` (or, given the RMSE ``target``, :func:`ttq_worker`) in a fresh Python process."""
    command = [sys.executable, __file__, "--worker", kind, "--data", data_name, "--epochs", str(epochs)]
    if target is not None:
        command += ["--target", repr(target)]
    proc = subprocess.run(command, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"the {kind} measurement failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def goal(target: str, reached: bool) -> str:
    return f"goal {target}: {'met' if reached else 'not met'}"


def rate_text(rates: list[float]) -> str:
    spread = f" (rounds: {', '.join(f'{r:,.0f}' for r in rates)})" if len(rates) > 1 else ""
    return f"{statistics.median(rates):,.0f} images/s{spread}"


def quality_check(data_name: str, epochs: int, seeds: int, workdir: Path) -> str:
    """Final test RMSE with the defaults vs fp32 contiguous, same model, epochs and seed, for
    ``seeds`` seeds. One seed's gap mixes precision with trajectory noise (two fp32 runs with
    different seeds differ by a few per cent here), so the verdict is on the mean over seeds."""
    fast, fp32 = [], []
    for seed in range(seeds):
        fast.append(ours(data_name, epochs, workdir, seed=seed)[1]["test_rmse"])
        fp32.append(ours(data_name, epochs, workdir, seed=seed, precision="32", channels_last=False)[1]["test_rmse"])
    diff = statistics.mean(fast) / statistics.mean(fp32) - 1
    per_seed = ", ".join(f"seed {s}: {a:.4f} vs {b:.4f} ({(a / b - 1) * 100:+.1f}%)"
                         for s, (a, b) in enumerate(zip(fast, fp32)))
    return (f"mean {statistics.mean(fast):.4f} vs {statistics.mean(fp32):.4f} ({diff * 100:+.1f}%; "
            f"{goal('within 2%', abs(diff) <= 0.02)}); {per_seed}")


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
        epoch = trainer.current_epoch + (trainer.fit_loop.epoch_loop.batch_progress.current.completed
                                         / max(1, trainer.num_training_batches))
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


# Time to quality: `best` at code 49 until its test RMSE reaches PCA-49's, each in a fresh process
# as `aelab train best` runs. The default (`norm_at=coarse`) checked each epoch, the verdict's
# figure; the same checked 4x per epoch, to show where it crosses; and batch norm after every conv,
# what the default replaced.
TTQ_RUNS = {"ttq-coarse": ("coarse", 1), "ttq-coarse-4x": ("coarse", 4), "ttq-all": ("all", 1)}


def time_to_quality(data: ImageData, workdir: Path, target: float, norm_at: str = "coarse",
                    checks_per_epoch: int = 1, code_size: int = 49) -> StopAtQuality:
    train_images = len(split_validation(data.train)[0])
    batch = get_entry("best").train.batch_size
    every = None if checks_per_epoch == 1 else max(1, -(-train_images // batch) // checks_per_epoch)
    stopper = StopAtQuality(data.test, target, every)
    start = time.perf_counter()
    train("best", data=data.name, code_size=code_size, norm_at=norm_at, epochs=30, out=workdir / "ttq",
          progress=False, callbacks=[stopper])
    stopper.wall_including_setup = time.perf_counter() - start
    return stopper


def ttq_worker(kind: str, data_name: str, target: float) -> dict:
    data = load_data(data_name)
    with tempfile.TemporaryDirectory() as tmp:
        stopper = time_to_quality(data, Path(tmp), target, *TTQ_RUNS[kind])
    return {"reached_at": stopper.reached_at, "wall": stopper.wall_including_setup, "trace": stopper.trace}


def ttq_label(kind: str, target: float) -> str:
    norm_at, checks = TTQ_RUNS[kind]
    return (f"time to quality (best, code 49, norm_at={norm_at}, RMSE <= {target:.4f}, "
            f"{'checked each epoch' if checks == 1 else f'checked {checks}x per epoch'})")


def ttq_text(runs: list[dict], verdict: bool) -> str:
    """Median seconds of training to the target over ``runs`` (each run's epoch trace beside it);
    a run that never reached it counts as infinitely slow."""
    reached = [r["reached_at"] if r["reached_at"] is not None else math.inf for r in runs]
    median = statistics.median(reached)
    traces = "; ".join(", ".join(f"epoch {e:.2f}: {t:.1f}s rmse {r:.4f}" for e, t, r in run["trace"])
                       for run in runs)
    rounds = f" (runs: {', '.join(f'{t:.1f}' for t in reached)})" if len(runs) > 1 else ""
    head = "not reached" if median == math.inf else f"{median:.1f} s of training{rounds}"
    if verdict:
        head += f", {goal('< 20 s', median < 20)}"
    wall = statistics.median(r["wall"] for r in runs)
    return f"{head}; {wall:.1f} s wall incl. data and set-up ({traces})"


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
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=None, help="default: fashion-mnist if installed, else mnist-sample")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per throughput measurement")
    parser.add_argument("--rounds", type=int, default=3,
                        help="alternated rounds of the fresh-process measurements; medians are reported")
    parser.add_argument("--quality-epochs", type=int, default=5)
    parser.add_argument("--quality-seeds", type=int, default=3,
                        help="seeds of the quality check; the verdict is on their mean")
    parser.add_argument("--skip-quality", action="store_true", help="skip the fp32-vs-default quality check")
    parser.add_argument("--skip-ttq", action="store_true", help="skip the time-to-quality runs")
    parser.add_argument("--skip-text", action="store_true", help="skip the char-lstm rows")
    parser.add_argument("--only-text", action="store_true", help="only the char-lstm rows")
    parser.add_argument("--skip-processes", action="store_true", help="skip the process-count rows")
    parser.add_argument("--skip-generative", action="store_true", help="skip the VAE and GAN rows")
    parser.add_argument("--only-generative", action="store_true", help="only the VAE and GAN rows")
    parser.add_argument("--only-processes", action="store_true",
                        help="only the rows comparing 2 single-thread processes with 1 two-thread process")
    parser.add_argument("--process-epochs", type=int, default=2, help="epochs per process-count measurement")
    parser.add_argument("--text-epochs", type=int, default=2, help="epochs per char-lstm throughput measurement")
    parser.add_argument("--text-quality-epochs", type=int, default=2)
    parser.add_argument("--results", type=Path, default=ROOT / "results" / "speed.md")
    parser.add_argument("--worker", choices=[*WORKERS, *OVERHEAD_WORKERS, *TTQ_RUNS, *TEXT_WORKERS, *GENERATIVE_WORKERS],
                        help=argparse.SUPPRESS)
    parser.add_argument("--target", type=float, help=argparse.SUPPRESS)  # a time-to-quality worker's RMSE
    args = parser.parse_args(argv)
    data_name = args.data or ("fashion-mnist" if DEBIAN_FASHION_MNIST.is_dir() else "mnist-sample")
    if args.worker in TTQ_RUNS:
        print(json.dumps(ttq_worker(args.worker, data_name, args.target)))
        return 0
    if args.worker in GENERATIVE_WORKERS:
        print(json.dumps(generative_worker(args.worker, data_name, args.epochs)))
        return 0
    if args.worker in TEXT_WORKERS:
        print(json.dumps(text_worker(args.worker, args.epochs)))
        return 0
    if args.worker:
        print(json.dumps(worker(args.worker, data_name, args.epochs)))
        return 0
    rows: list[tuple[str, str]] = []

    def report(label: str, value: str) -> None:
        rows.append((label, value))
        print(f"{label:<58} {value}", flush=True)

    if args.only_generative:
        generative_rows(data_name, args.epochs, args.rounds, report)
        write_results(args.results, rows, "(VAE and GAN rows only: no profile)", argv)
        return 0
    if args.only_processes:
        process_rows(data_name, args.process_epochs, args.rounds, report)
        write_results(args.results, rows, "(process-count rows only: no profile)", argv)
        return 0
    if args.only_text:
        text_rows(args.text_epochs, args.rounds, args.text_quality_epochs, report)
        write_results(args.results, rows, "(char-lstm rows only: no profile)", argv)
        return 0
    data = load_data(data_name)
    train_x, _ = split_validation(data.train)

    device_name = "cuda" if torch.cuda.is_available() else "cpu"
    report("data", f"{data_name}: {len(train_x)} training images per epoch, batch {BATCH}, model {MODEL}")
    report("default precision / memory format", f"{choose_precision('auto', device_name)} / channels_last (CPU)")
    fp32_rate = matmul_rate(torch.float32)
    report("fp32 matmul rate (2048^2)", f"{fp32_rate / 1e9:.1f} GFLOP/s")
    bf16_rate = matmul_rate(torch.bfloat16) if cpu_supports_bf16() else None
    if bf16_rate:
        report("bf16 matmul rate (2048^2)", f"{bf16_rate / 1e9:.1f} GFLOP/s")
    flops = training_flops_per_image(create_model(MODEL), data.shape)
    report("training FLOPs per image (forward + backward)", f"{flops / 1e6:.2f} MFLOP")

    # alternated rounds of fresh processes, so a slow spell of a shared machine hits every side alike
    results: dict[str, list[dict[str, float]]] = {kind: [] for kind in [*WORKERS, *OVERHEAD_WORKERS]}
    for _ in range(args.rounds):
        for kind in results:
            results[kind].append(measure(kind, data_name, OVERHEAD_EPOCHS if kind in OVERHEAD_WORKERS else args.epochs))
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
    step_ms = {kind: [r["step_ms"] for r in rounds] for kind, rounds in results.items()}
    overhead = [o - h for o, h in zip(step_ms["overhead-ours"], step_ms["overhead-hand"])]
    share = statistics.median(overhead) / statistics.median(step_ms["ours"])
    report(f"Lightning's cost a step ({OVERHEAD_MODEL} model, batch {OVERHEAD_BATCH}: aelab train vs hand loop)",
           f"{statistics.median(overhead):.2f} ms (rounds: {', '.join(f'{ms:.2f}' for ms in overhead)}; step "
           f"{statistics.median(step_ms['overhead-ours']):.2f} vs {statistics.median(step_ms['overhead-hand']):.2f} ms)")
    report(f"  as a share of aelab's {MODEL} step ({statistics.median(step_ms['ours']):.1f} ms)",
           f"{share * 100:.1f}% ({goal('< 5%', share < 0.05)})")
    report(WORKERS["hand"], rate_text(rates["hand"]))
    per_round = ", ".join(f"{(1 - o / h) * 100:.1f}%" for o, h in zip(rates["ours"], rates["hand"]))
    report("  its step time vs aelab train's (separate processes: noisy)",
           f"{(1 - median['ours'] / median['hand']) * 100:.1f}% shorter (per round: {per_round})")
    report("  utilisation vs fp32 matmul peak", f"{median['ours'] * flops / fp32_rate * 100:.0f}%")
    if bf16_rate:
        report("  utilisation vs bf16 matmul peak", f"{median['ours'] * flops / bf16_rate * 100:.0f}%")

    inference = {kind: [r["inference"] for r in results[kind]] for kind in ("reference", "ours")}
    report("reference inference (encode+decode, batch 1000)", rate_text(inference["reference"]))
    report("aelab inference (batch 1000)", rate_text(inference["ours"]))
    inference_ratio = statistics.median(inference["ours"]) / statistics.median(inference["reference"])
    report("  ratio ours / reference", f"{inference_ratio:.2f}x ({goal('>= 2x', inference_ratio >= 2)})")

    if not args.skip_quality:
        with tempfile.TemporaryDirectory() as tmp:
            report(f"quality: test RMSE after {args.quality_epochs} epochs, defaults vs fp32",
                   quality_check(data_name, args.quality_epochs, args.quality_seeds, Path(tmp)))
    if not args.skip_ttq:
        target = pca_rmse(data.train, data.test, data.test, 49)  # the PCA floor at code size 49
        ttq: dict[str, list[dict]] = {"ttq-coarse": [], "ttq-all": []}
        for _ in range(args.rounds):  # alternated, as the throughputs
            for kind in ttq:
                ttq[kind].append(measure(kind, data_name, 0, target))
        ttq["ttq-coarse-4x"] = [measure("ttq-coarse-4x", data_name, 0, target)]
        for kind in TTQ_RUNS:
            report(ttq_label(kind, target), ttq_text(ttq[kind], verdict=kind == "ttq-coarse"))

    if not args.skip_text:
        text_rows(args.text_epochs, args.rounds, args.text_quality_epochs, report)
    if not args.skip_generative:
        generative_rows(data_name, args.epochs, args.rounds, report)
    if not args.skip_processes:
        process_rows(data_name, args.process_epochs, args.rounds, report)
    profile = profile_summary(train_x)
    print(profile)
    write_results(args.results, rows, profile, argv)
    return 0


def write_results(path: Path, rows: list[tuple[str, str]], profile: str, argv: list[str] | None) -> None:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else ""
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU: {cpu}"
    command = "python benchmarks/speed.py " + " ".join(argv if argv is not None else sys.argv[1:])
    section = [f"## {device}, {torch.get_num_threads()} threads — {datetime.date.today()}", "",
               f"Command: `{command.strip()}` (torch {torch.__version__}, Python {platform.python_version()})", "",
               "| measurement | value |", "|---|---|", *[f"| {a} | {b} |" for a, b in rows], "",
               "Where a training step's time goes (torch.profiler, 20 steps, self CPU time):", "", "```",
               profile.strip(), "```", ""]
    header = "# Speed benchmark\n\nProduced by `benchmarks/speed.py`; newest run first.\n\n"
    text = path.read_text() if path.is_file() else header
    # the newest run goes above the older ones, below the method notes that open the file
    first_run = next((m.start() for m in re.finditer(r"^## ", text, re.M) if not text.startswith("## Method", m.start())),
                     len(text))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text[:first_run] + "\n".join(section) + "\n" + text[first_run:].strip() + "\n")


if __name__ == "__main__":
    sys.exit(main())
