"""Why the Keras DCGAN beat aelab's `gan` at equal epochs: Keras' defaults, one at a time.

    python benchmarks/gan_keras_choices.py              # 4 epochs each, seed 0 (about 30 minutes on 2 cores)
    python benchmarks/gan_keras_choices.py --epochs 2 --only glorot

The peer in benchmarks/peers/keras_peers.py is `gan`'s network and loop; what differs is what
each framework leaves to its defaults. Each variant trains `gan` on Fashion-MNIST from the same
seed with some of Keras' choices and prints the `fd_classifier` of 10,000 samples (lower is
better) from the same latent points:

- ``glorot``: Glorot-uniform weights and zero biases (`--init glorot`; PyTorch's layers start from
  uniform weights of bound 1/sqrt(fan_in) and non-zero biases);
- ``labels``: seed 3's label noise as its Keras code writes it, ``labels += 0.05 * U(0, 1)`` (so a
  generated image's target is 1 to 1.05), where aelab moves each label toward the middle;
- ``bn``: Keras' batch-norm momentum 0.99 (0.01 in PyTorch's sense, which weighs the new batch)
  and epsilon 1e-3 (PyTorch: 0.1 and 1e-5); it changes only the running statistics used when sampling
  and the normalisation's floor.

Every variant names its weights explicitly, so the table keeps its meaning when `gan`'s defaults
change. A run folder under --runs that already holds weights is reused.
Writes benchmarks/results/gan-keras-choices.md.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from gan_sn_recipe import fd_of
from torch import nn

import aelab
from aelab.data import load_data
from aelab.errors import AelabError
from aelab.families.gan import GANSystem
from aelab.nets import gan as gan_nets

ROOT = Path(__file__).resolve().parent
VARIANTS = ["torch", "glorot", "labels", "bn", "glorot+labels+bn"]  # "torch": PyTorch's weights, nothing else


def keras_labels_loss(self: GANSystem, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """The discriminator's loss with seed 3's Keras label noise: labels += noise x U(0, 1)."""
    logits = self.model.discriminator(torch.cat([fake, real]).contiguous(memory_format=self.memory_format))
    labels = torch.cat([torch.ones(len(fake), device=self.device), torch.zeros(len(real), device=self.device)])
    return F.binary_cross_entropy_with_logits(logits.float(), labels + self.label_noise * torch.rand_like(labels))


@contextlib.contextmanager
def keras_choices(parts: set[str]):
    """Patches aelab's GAN with the Keras choices in ``parts`` ("labels", "bn") while training and loading."""
    saved = GANSystem._d_loss, gan_nets.Generator.__init__
    if "labels" in parts:
        GANSystem._d_loss = keras_labels_loss
    if "bn" in parts:

        def generator_init(self, *args, **kwargs) -> None:
            saved[1](self, *args, **kwargs)
            for layer in self.modules():
                if isinstance(layer, nn.BatchNorm2d):
                    layer.momentum, layer.eps = 0.01, 1e-3

        gan_nets.Generator.__init__ = generator_init
    try:
        yield
    finally:
        GANSystem._d_loss, gan_nets.Generator.__init__ = saved


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", nargs="+", choices=VARIANTS)
    parser.add_argument("--runs", type=Path, default=Path("runs/gan-keras-choices"))
    parser.add_argument("--results", type=Path, default=ROOT / "results" / "gan-keras-choices.md")
    args = parser.parse_args(argv)
    data = load_data("fashion-mnist")
    rows = []
    try:
        for variant in args.only or VARIANTS:
            parts = set(variant.split("+"))
            out = args.runs / f"{variant}-e{args.epochs}-s{args.seed}"
            with keras_choices(parts):
                if not (out / "model.safetensors").is_file():
                    print(f"[gan-keras-choices] {variant} -> {out}", flush=True)
                    aelab.train(
                        "gan",
                        data="fashion-mnist",
                        epochs=args.epochs,
                        seed=args.seed,
                        out=out,
                        overwrite=out.exists(),
                        progress=False,
                        init="glorot" if "glorot" in parts else "torch",
                    )
                net = aelab.load(out)
            z = torch.randn(10_000, net.latent_dim, generator=torch.Generator().manual_seed(0))
            rows.append(f"| {variant} | {fd_of(net.generator, z, data):.2f} |")
            print(rows[-1], flush=True)
    except AelabError as error:
        print(f"gan_keras_choices: error: {error}", file=sys.stderr)
        return 2
    command = f"python benchmarks/gan_keras_choices.py --epochs {args.epochs} --seed {args.seed}"
    text = [
        f"# `gan` with Keras' defaults, one at a time, after {args.epochs} epochs",
        "",
        f"Measured {datetime.date.today()} on 2 CPU cores by `{command}`: Fashion-MNIST, one seed, "
        "`fd_classifier` of 10,000 samples from the same latent points (lower is better). "
        "*torch* is `gan` with PyTorch's initial weights and nothing else changed; what each other "
        "variant changes is in the script's docstring.",
        "",
        "| variant | fd_classifier |",
        "|---|---|",
        *rows,
        "",
        "`gan`'s default became *glorot*; its 10-epoch runs over three seeds, beside the Keras DCGAN's, "
        "are in generative.md (`python benchmarks/generative.py --only gan`).",
        "",
    ]
    args.results.write_text("\n".join(text) + "\n")
    print(f"wrote {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
