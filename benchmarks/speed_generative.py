"""How fast does `aelab train` train seed 3's VAE and GAN, against the same networks in a plain
fp32 eager loop?

    python benchmarks/speed_generative.py [--data mnist-sample] [--epochs 2] [--rounds 2]

`aelab train` (defaults, no evaluation at the end) against the same networks in a plain fp32
eager loop (`plain_generative_step`: the summed negative ELBO with Adam; seed 3's noisy-label
discriminator and generator steps with Adam and clipping), in fresh processes and alternated
rounds, at their registered batch sizes. A third side, the plain loop with the settings aelab's
defaults pick (channels-last, bf16 autocast where the CPU has bf16, fused Adam, the malloc
setting), shows how much of the ratio those settings can give without the trainer. Two rows
before them say why the ratio is what it is on this CPU: the precision and memory format the
defaults pick here (with torch's CPU capability), and one 3x3 convolution the size of the VAE's
middle layers timed in fp32 and in bf16.
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
from generative_ceiling import conv_ms  # a sibling script: python benchmarks/x.py puts this folder on the path
from speed_common import Report, goal, measure, rate_text, script_main
from torch import nn

from aelab import create_model, model_settings
from aelab.accel import autocast, choose_precision, keep_freed_memory
from aelab.data import load_data, split_validation
from aelab.training import train

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
    model, settings = create_model(model_name), model_settings(model_name)
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
            kl = -0.5 * torch.sum(1 + logvar - mean**2 - logvar.exp()) / len(batch)
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
            run = train(
                model_name,
                data=data_name,
                epochs=epochs,
                out=Path(tmp) / "r",
                progress=False,
                evaluate_test=False,
                **({"early_stopping": False} if model_name == "vae" else {}),
            )
            rates = [row["images_per_second"] for row in run.history]
        return {"train": statistics.median(rates[1:] or rates)}
    os.environ.pop("PYTORCH_NVML_BASED_CUDA_CHECK", None)  # a plain script does not import Lightning
    tuned = kind.endswith("tuned")
    if tuned:
        keep_freed_memory()  # as `aelab train` does when it starts
    train_x, _ = split_validation(load_data(data_name).train)
    (_, step), batch_size, rates = plain_generative_step(model_name, tuned), model_settings(model_name).batch_size, []
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
    report(
        "default precision / memory format (CPU)",
        f"{precision} / channels_last (torch's CPU capability: {torch.backends.cpu.get_cpu_capability()})",
    )
    # one of the VAE's middle layers alone, channels-last: whether PyTorch has a fast bf16 kernel for it on this CPU
    fp32, bf16 = (
        conv_ms(nn.Conv2d(64, 64, 3, padding=1), (128, 64, 14, 14), True, dtype, True, repeats=5)
        for dtype in ("32", "bf16-mixed")
    )
    report(
        "3x3 convolution 64x14x14, batch 128, forward + backward",
        f"fp32 {fp32:.0f} ms, bf16 {bf16:.0f} ms ({fp32 / bf16:.2f}x the fp32 speed in bf16)",
    )
    for model_name in GENERATIVE_MODELS:
        rates: dict[str, list[float]] = {side: [] for side in GENERATIVE_SIDES}
        for _ in range(rounds):
            for side in rates:
                rates[side].append(measure(__file__, f"{model_name}-{side}", data_name, epochs)["train"])
        median = {side: statistics.median(values) for side, values in rates.items()}
        batch_size = model_settings(model_name).batch_size
        report(f"`{model_name}`, batch {batch_size}: plain fp32 eager loop, training", rate_text(rates["reference"]))
        report(
            f"  the same loop with aelab's settings ({precision}, channels-last, fused Adam, the malloc setting)",
            f"{rate_text(rates['tuned'])}, {median['tuned'] / median['reference']:.2f}x the plain loop",
        )
        report(f"  `aelab train {model_name}` (defaults)", rate_text(rates["ours"]))
        ratio = median["ours"] / median["reference"]
        per_round = ", ".join(f"{o / r:.2f}x" for o, r in zip(rates["ours"], rates["reference"]))
        report("  ratio ours / reference", f"{ratio:.2f}x (per round: {per_round}; {goal('>= 2.5x', ratio >= 2.5)})")


def rows(args, report: Report) -> None:
    generative_rows(args.data, args.epochs, args.rounds, report)


def main(argv: list[str] | None = None) -> int:
    return script_main(
        argv,
        __doc__,
        Path(__file__).name,
        rows,
        lambda args: generative_worker(args.worker, args.data, args.epochs),
        workers=GENERATIVE_WORKERS,
        epochs=2,
    )


if __name__ == "__main__":
    sys.exit(main())
