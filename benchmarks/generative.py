"""Train the VAE (2-D and 16-D latent) and the GAN on a dataset and write their results file.

    python benchmarks/generative.py                        # full Fashion-MNIST, 10 epochs each
    python benchmarks/generative.py --data mnist-sample --epochs 3

Writes benchmarks/results/generative.md with ELBO, the IWAE log-likelihood bound, Fréchet
distances (on the cached classifier's features, with the train-vs-test floor) and copies of the
sample grids and the 2-D manifold beside it.
"""

from __future__ import annotations

import argparse
import datetime
import json
import shutil
import sys
import time
from pathlib import Path

from aelab.errors import AelabError
from aelab.training import train
from reproduce import wall_file

ROOT = Path(__file__).resolve().parent
RUNS = [("vae-2d", "vae", {"latent_dim": 2}), ("vae-16d", "vae", {"latent_dim": 16}), ("gan", "gan", {})]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="fashion-mnist")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--runs", type=Path, default=Path("runs/generative"))
    parser.add_argument("--only", nargs="+", help="run keys to (re)train: vae-2d vae-16d gan")
    parser.add_argument("--results", type=Path, default=ROOT / "results" / "generative.md")
    parser.add_argument("--table-only", action="store_true", help="only rewrite the results from existing runs")
    args = parser.parse_args(argv)
    figures = args.results.parent / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    try:
        for key, model, params in RUNS:
            out = args.runs / args.data / key
            if args.table_only or (args.only and key not in args.only):
                continue
            started = time.perf_counter()
            train(model, data=args.data, epochs=args.epochs, out=out, overwrite=True, progress=False, **params)
            wall_file(out).write_text(f"{time.perf_counter() - started:.1f}\n")
    except AelabError as error:
        print(f"generative: error: {error}", file=sys.stderr)
        return 2
    rows, images = [], []
    for key, model, params in RUNS:
        out = args.runs / args.data / key
        if not (out / "metrics.json").is_file():
            continue
        m = json.loads((out / "metrics.json").read_text())
        epochs = len(json.loads((out / "history.json").read_text())["epochs"])
        wall = wall_file(out).read_text().strip() if wall_file(out).is_file() else "?"
        fmt = lambda key_, spec=".1f": "-" if m.get(key_) is None else format(m[key_], spec)  # noqa: E731
        rows.append(f"| {key} | `{model}` {params or ''} | {epochs} | {wall} s | {fmt('test_elbo')} | "
                    f"{fmt('test_recon_nats')} | {fmt('test_kl_nats')} | {fmt('test_iwae_k100')} | "
                    f"{fmt('fd_classifier', '.2f')} | {fmt('fd_classifier_floor', '.2f')} | "
                    f"{fmt('test_rmse', '.4f')} |")
        for png in ("samples.png", "manifold.png"):
            if (out / png).is_file():
                target = figures / f"{args.data}-{key}-{png}"
                shutil.copy(out / png, target)
                images.append(f"![{key} {png[:-4]}](figures/{target.name})")
    note = next((json.loads((args.runs / args.data / k / "metrics.json").read_text()).get("fid_note")
                 for k, _, _ in RUNS if (args.runs / args.data / k / "metrics.json").is_file()), None)
    text = [f"# Generative models on {args.data}", "",
            f"Measured {datetime.date.today()} on this machine by `python benchmarks/generative.py --data {args.data} "
            f"--epochs {args.epochs}` (one `aelab train` per row, default settings otherwise).", "",
            "ELBO and the IWAE bound (k = 100 importance samples) are in nats per image on the first 2,000 test",
            "images (higher is better; Bernoulli decoder on pixel intensities). `fd_classifier` is the Fréchet",
            "distance between 10,000 samples and the test set on the 128-d features of aelab's cached",
            "classifier (lower is better); its floor is the same distance between training and test images.", "",
            "| run | model | epochs | wall | ELBO | recon | KL | IWAE k=100 | fd_classifier | floor | test RMSE |",
            "|---|---|---|---|---|---|---|---|---|---|---|", *rows, "", *(f"{line}\n" for line in images)]
    if note:
        text += ["", f"{note}."]
    args.results.write_text("\n".join(text) + "\n")
    print(f"wrote {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
