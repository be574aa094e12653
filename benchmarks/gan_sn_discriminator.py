"""How large `gan-sn`'s discriminator should be, and how fast it should learn: short runs of equal
wall time on Fashion-MNIST.

    python benchmarks/gan_sn_discriminator.py                  # 5 minutes each, seed 0 (about 35 minutes on 2 cores)
    python benchmarks/gan_sn_discriminator.py --minutes 2 --only d128

Spectral normalisation bounds every discriminator layer's gain by 1, so a discriminator as small
as `gan`'s (32 and 64 channels, two convolutions) may lack the capacity to separate the classes'
details; SNGAN's own "standard CNN" is wider and puts a 3x3 stride-1 convolution between the
downsamplings. A bigger discriminator costs time per step, and the goal is set at equal wall time,
so each variant trains for the same minutes (`--max-minutes`) from the same seed, with the same
generator, and the table reports the `fd_classifier` of 10,000 samples (lower is better) from the
same latent points, drawn from the generator's moving average (what `aelab sample` uses) and from
the generator itself, with the epochs each reached. Two variants keep the discriminator and change
how the players learn: both Adam rates doubled, and batches of 128. A run folder under --runs that
already holds weights is reused. Writes benchmarks/results/gan-sn-discriminator.md.
"""

from __future__ import annotations

import argparse
import datetime
import sys
from pathlib import Path

import torch
from gan_sn_recipe import fd_of

import aelab
from aelab.data import load_data
from aelab.errors import AelabError

ROOT = Path(__file__).resolve().parent
# name -> gan-sn's settings; each names its rates, so the table keeps its meaning when the defaults change
BASE = {"lr": 2e-4, "d_lr": 4e-4}  # gan-sn's rates before this sweep
VARIANTS = {
    "base": BASE,
    "d128": {**BASE, "d_channels": 128},
    "depth2": {**BASE, "d_depth": 2},
    "d128-depth2": {**BASE, "d_channels": 128, "d_depth": 2},
    "rates2x": {"lr": 4e-4, "d_lr": 8e-4},  # the default discriminator, both players' rates doubled
    "batch128": {**BASE, "batch_size": 128},
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", nargs="+", choices=sorted(VARIANTS), help="some variants (default: all)")
    parser.add_argument("--runs", type=Path, default=Path("runs/gan-sn-discriminator"))
    parser.add_argument("--results", type=Path, default=ROOT / "results" / "gan-sn-discriminator.md")
    args = parser.parse_args(argv)
    rows = []
    try:
        data = load_data("fashion-mnist")
        for name in args.only or VARIANTS:
            settings = VARIANTS[name]
            out = args.runs / f"{name}-m{args.minutes:g}-s{args.seed}"
            if not (out / "model.safetensors").is_file():
                print(f"[gan-sn-discriminator] {name} -> {out}", flush=True)
                aelab.train(
                    "gan-sn",
                    data="fashion-mnist",
                    epochs=1000,
                    max_minutes=args.minutes,
                    seed=args.seed,
                    out=out,
                    overwrite=out.exists(),
                    progress=False,
                    **settings,
                )
            net, run = aelab.load(out), aelab.Run(out)
            z = torch.randn(10_000, net.latent_dim, generator=torch.Generator().manual_seed(0))
            averaged, itself = fd_of(net.generator_ema.module, z, data), fd_of(net.generator, z, data)
            d_params = sum(p.numel() for p in net.discriminator.parameters())
            setting = ", ".join(f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}" for k, v in settings.items())
            rows.append(
                f"| {setting} | {d_params:,} | {len(run.history)} | "
                f"{run.history[-1]['images_per_second']:.0f} | {averaged:.2f} | {itself:.2f} |"
            )
            print(rows[-1], flush=True)
    except AelabError as error:
        print(f"gan_sn_discriminator: error: {error}", file=sys.stderr)
        return 2
    only = f" --only {' '.join(args.only)}" if args.only else ""
    text = [
        f"# `gan-sn`'s discriminator size and rates, {args.minutes:g} minutes of training each",
        "",
        f"Measured {datetime.date.today()} on 2 CPU cores by `python benchmarks/gan_sn_discriminator.py "
        f"--minutes {args.minutes:g} --seed {args.seed}{only}`: Fashion-MNIST, one seed, the same generator; "
        "`fd_classifier` of 10,000 samples (lower is better) from the same latent points, drawn from the "
        "generator's moving average (what `aelab sample` uses) and from the generator itself. *epochs* "
        "counts the epochs begun in the time (the last one may be cut short).",
        "",
        "| settings | discriminator's parameters | epochs | images/s | fd_classifier, moving average | "
        "fd_classifier, generator |",
        "|---|---|---|---|---|---|",
        *rows,
        "",
    ]
    args.results.write_text("\n".join(text) + "\n")
    print(f"wrote {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
