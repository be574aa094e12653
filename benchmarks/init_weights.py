"""Initial weights and Adadelta's options against the seed's deep network (`deep-32`), in a plain loop.

    python benchmarks/init_weights.py            # 100 epochs on mnist-sample's 3,600 training digits
    python benchmarks/init_weights.py --epochs 20

Trains aelab's `deep-32` network (784-128-64-32-64-128-784, ReLU, sigmoid output) with binary
cross-entropy and Adadelta at lr 1.0, batch 256, from the same seed, four ways: PyTorch's or
Glorot-uniform initial weights (`aelab.nets.blocks.initialise`), PyTorch's Adadelta options
(rho 0.9, epsilon 1e-6) or Keras' (rho 0.95, epsilon 1e-7), and prints each test BCE. The
reason the seed presets take `init="glorot"` (benchmarks/results/reproduction.md).
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from aelab.data import resolve_data, split_validation
from aelab.families.autoencoder import AutoencoderSystem
from aelab.models import create_model
from aelab.nets.blocks import initialise

# PyTorch's Adadelta defaults, or the options the seed presets train with (Keras': rho 0.95, epsilon 1e-7)
ADADELTA = {"torch": {}, "keras": AutoencoderSystem.optimizer_options["adadelta"]}


def test_bce(init: str, options: str, train: torch.Tensor, test: torch.Tensor, epochs: int) -> float:
    torch.manual_seed(0)
    net = initialise(create_model("deep-32"), init)
    optimiser = torch.optim.Adadelta(net.parameters(), lr=1.0, **ADADELTA[options])
    for _ in range(epochs):
        for batch in train[torch.randperm(len(train))].split(256):
            loss = F.binary_cross_entropy_with_logits(net(batch).logits, batch)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    with torch.no_grad():
        return F.binary_cross_entropy_with_logits(net(test).logits, test).item()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=100)
    args = parser.parse_args(argv)
    data = resolve_data("mnist-sample")
    train, _ = split_validation(data.train, 0.1)
    print(f"deep-32, Adadelta lr 1.0, batch 256, {args.epochs} epochs of {len(train):,} mnist-sample digits")
    for init in ("torch", "glorot"):
        for options in ("torch", "keras"):
            bce = test_bce(init, options, train, data.test, args.epochs)
            print(f"  initial weights {init:6}  Adadelta options {options:5}  test BCE {bce:.4f}", flush=True)


if __name__ == "__main__":
    main()
