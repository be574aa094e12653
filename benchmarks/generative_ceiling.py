"""What can the settings give seed 3's VAE and GAN on this CPU? The ceiling, layer by layer.

    python benchmarks/generative_ceiling.py

Runs one batch through the registered `vae` (batch 128) and `gan` (generator at batch 64, the
discriminator at 128: generated and real images together, as in its step) to find every
convolution's input, then times each convolution's forward and backward pass alone in plain fp32
(contiguous tensors) and with the settings aelab's defaults pick here (channels-last, and bf16
autocast where the CPU has bf16). The convolutions are most of both training steps, so the ratio of
the totals bounds what those settings can give the whole step. Also times the discriminator's
dropout as `nn.Dropout` draws it (Bernoulli) against a mask from `torch.rand`, the same
distribution. Prints markdown tables; the findings are in benchmarks/results/speed.md.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch
import torch.nn.functional as F
from torch import nn

from aelab import create_model
from aelab.accel import autocast, choose_precision


def median_ms(step, repeats: int, warmups: int = 1) -> float:
    """The median time of ``repeats`` calls of ``step`` in ms, after ``warmups`` calls (oneDNN picks and caches
    its kernels on the first)."""
    for _ in range(warmups):
        step()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def conv_ms(
    layer: nn.Module, shape: tuple[int, ...], needs_input_grad: bool, precision: str, channels_last: bool, repeats: int
) -> float:
    """Forward and backward of ``layer`` on a random input shaped ``shape``."""
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    layer = layer.to(memory_format=memory_format)
    x = torch.rand(shape).contiguous(memory_format=memory_format).requires_grad_(needs_input_grad)

    def step() -> None:
        with autocast(precision, "cpu"):
            y = layer(x)
        y.float().sum().backward()

    return median_ms(step, repeats)


def convolutions(net: nn.Module, example: torch.Tensor) -> list[tuple[str, nn.Module, tuple[int, ...], bool]]:
    """(name, layer, input shape, whether its input needs a gradient) for every convolution ``net`` runs on
    ``example``, in the order it runs them."""
    found, hooks = [], []
    for name, module in net.named_modules():
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):

            def hook(module, inputs, _output, name=name):
                found.append((name, module, tuple(inputs[0].shape), inputs[0].requires_grad))

            hooks.append(module.register_forward_hook(hook))
    net(example)
    for hook in hooks:
        hook.remove()
    return found


def describe(layer: nn.Module) -> str:
    kind = "transposed " if isinstance(layer, nn.ConvTranspose2d) else ""
    stride = f", stride {layer.stride[0]}" if layer.stride[0] > 1 else ""
    return f"{kind}{layer.kernel_size[0]}x{layer.kernel_size[0]} {layer.in_channels} -> {layer.out_channels}{stride}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    precision = choose_precision("auto", "cpu")
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU capability "
        f"{torch.backends.cpu.get_cpu_capability()}; aelab's defaults here: {precision}, channels-last\n"
    )
    torch.manual_seed(0)
    vae, gan = create_model("vae"), create_model("gan")
    nets = [
        ("vae", vae, torch.rand(128, 1, 28, 28)),
        ("gan generator", gan.generator, torch.randn(64, gan.latent_dim)),
        ("gan discriminator", gan.discriminator, torch.rand(128, 1, 28, 28) * 2 - 1),
    ]
    print("| network | convolution | input | fp32, contiguous: ms | defaults: ms | speed-up |")
    print("|---|---|---|---|---|---|")
    totals: dict[str, list[float]] = {}
    for net_name, net, example in nets:
        for name, layer, shape, needs_grad in convolutions(net, example):
            plain = conv_ms(layer, shape, needs_grad, "32", False, args.repeats)
            tuned = conv_ms(layer, shape, needs_grad, precision, True, args.repeats)
            total = totals.setdefault(net_name.split()[0], [0.0, 0.0])  # per model: the GAN's two networks together
            total[0] += plain
            total[1] += tuned
            print(
                f"| {net_name} | `{name}`: {describe(layer)} | {'x'.join(map(str, shape))} | {plain:.1f} | "
                f"{tuned:.1f} | {plain / tuned:.2f}x |"
            )
    for model_name, (plain, tuned) in totals.items():
        print(
            f"| **{model_name}, all its convolutions, once each** | | | {plain:.1f} | {tuned:.1f} | "
            f"**{plain / tuned:.2f}x** |"
        )

    dropout = gan.discriminator.net[-2]  # before the dense layer
    x, p = torch.rand(128, gan.discriminator.net[-1].in_features), dropout.p
    bernoulli = median_ms(lambda: F.dropout(x, p, training=True), args.repeats * 3)
    mask = median_ms(lambda: x * (torch.rand(x.shape) >= p) / (1 - p), args.repeats * 3)
    print(f"\n| gan discriminator's dropout, {x.shape[0]}x{x.shape[1]}, p={p} | ms |")
    print("|---|---|")
    print(f"| `nn.Dropout` (Bernoulli draws) | {bernoulli:.2f} |")
    print(f"| a mask from `torch.rand`, the same distribution | {mask:.2f} ({bernoulli / mask:.2f}x faster) |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
