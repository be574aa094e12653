"""How `gan-sn`'s learning rates and moving-average decay were chosen: short runs on Fashion-MNIST.

    python benchmarks/gan_sn_recipe.py                 # 4 epochs each, seed 0 (about 20 minutes on 2 cores)
    python benchmarks/gan_sn_recipe.py --epochs 2

Trains `gan` and `gan-sn` with a few learning-rate and `ema_decay` settings from the same seed
(a run folder under --runs that already holds weights is reused) and prints, for each, the
`fd_classifier` of 10,000 samples from the generator's moving average (what `aelab sample`
draws) and from the generator itself, on the same latent points. The moving average does not
change training, so the runs that share learning rates share the second number.
Writes benchmarks/results/gan-sn-recipe.md.
"""

from __future__ import annotations

import argparse
import datetime
import sys
from pathlib import Path

import torch

import aelab
from aelab.data import load_data
from aelab.errors import AelabError
from aelab.frechet import sample_quality

ROOT = Path(__file__).resolve().parent
# name -> (model, settings), each naming its rates (gan-sn's defaults were lr 2e-4, d_lr 4e-4 when this ran)
VARIANTS = {
    "gan": ("gan", {}),
    "sn-lr1e-4-ema0.999": ("gan-sn", {"lr": 1e-4, "d_lr": 4e-4, "ema_decay": 0.999}),
    "sn-lr2e-4-ema0.999": ("gan-sn", {"lr": 2e-4, "d_lr": 4e-4, "ema_decay": 0.999}),
    "sn-lr2e-4-ema0.99": ("gan-sn", {"lr": 2e-4, "d_lr": 4e-4, "ema_decay": 0.99}),
}


def fd_of(generator: torch.nn.Module, z: torch.Tensor, data) -> float:
    """fd_classifier of the images ``generator`` makes from ``z`` (in eval mode)."""
    generator.eval()
    with torch.no_grad():
        images = torch.cat([(generator(chunk) + 1) / 2 for chunk in z.split(1000)])
    return sample_quality(images, data)["fd_classifier"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--runs", type=Path, default=Path("runs/gan-sn-recipe"))
    parser.add_argument("--results", type=Path, default=ROOT / "results" / "gan-sn-recipe.md")
    parser.add_argument(
        "--full",
        type=Path,
        default=Path("runs/generative/fashion-mnist/gan-sn"),
        help="generative.py's gan-sn runs (gan's training time), measured the same way where present",
    )
    args = parser.parse_args(argv)
    data = load_data("fashion-mnist")
    rows = []
    try:
        for name, (model, settings) in VARIANTS.items():
            out = args.runs / f"{name}-e{args.epochs}-s{args.seed}"
            if not (out / "model.safetensors").is_file():
                print(f"[gan-sn-recipe] {name} -> {out}", flush=True)
                aelab.train(
                    model,
                    data="fashion-mnist",
                    epochs=args.epochs,
                    seed=args.seed,
                    out=out,
                    overwrite=out.exists(),
                    progress=False,
                    **settings,
                )
            net = aelab.load(out)
            z = torch.randn(10_000, net.latent_dim, generator=torch.Generator().manual_seed(0))
            averaged = fd_of(net.generator_ema.module, z, data) if hasattr(net, "generator_ema") else None
            itself = fd_of(net.generator, z, data)
            run = aelab.Run(out)
            rate = run.history[-1]["images_per_second"]
            setting = ", ".join(f"{k} {v:g}" for k, v in settings.items()) or "defaults"
            rows.append(
                f"| `{model}` | {setting} | {'-' if averaged is None else f'{averaged:.2f}'} | "
                f"{itself:.2f} | {rate:.0f} |"
            )
            print(rows[-1], flush=True)
        full = []
        for out in sorted(args.full.glob("seed-*")):
            if (out / "model.safetensors").is_file():
                net, run = aelab.load(out), aelab.Run(out)
                z = torch.randn(10_000, net.latent_dim, generator=torch.Generator().manual_seed(0))
                full.append(
                    f"| {out.name.removeprefix('seed-')} | {len(run.history)} | "
                    f"{run.config.params['ema_decay']:g} | {fd_of(net.generator_ema.module, z, data):.2f} | "
                    f"{fd_of(net.generator, z, data):.2f} |"
                )
                print(full[-1], flush=True)
    except AelabError as error:
        print(f"gan_sn_recipe: error: {error}", file=sys.stderr)
        return 2
    text = [
        f"# `gan-sn`'s learning rates and moving average, after {args.epochs} epochs",
        "",
        f"Measured {datetime.date.today()} on 2 CPU cores by `python benchmarks/gan_sn_recipe.py --epochs "
        f"{args.epochs} --seed {args.seed}`: Fashion-MNIST, one seed, `fd_classifier` of 10,000 samples "
        "(lower is better) from the same latent points, drawn from the generator's moving average "
        "(what `aelab sample` uses) and from the generator itself.",
        "",
        "| model | settings | fd_classifier, moving average | fd_classifier, generator | images/s |",
        "|---|---|---|---|---|",
        *rows,
        "",
    ]
    if full:
        text += [
            f"The same two measures of `gan-sn`'s runs in {args.full} (trained for `gan`'s training time by "
            "`benchmarks/generative.py`, its defaults):",
            "",
            "| seed | epochs | ema_decay | fd_classifier, moving average | fd_classifier, generator |",
            "|---|---|---|---|---|",
            *full,
            "",
        ]
    args.results.write_text("\n".join(text) + "\n")
    print(f"wrote {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
