"""Train the Keras peers of aelab's generative models (benchmarks/peers/keras_peers.py) and measure
them with aelab's metrics, beside aelab's own runs in benchmarks/results/generative.md.

    python benchmarks/peers.py                              # Fashion-MNIST, 10 epochs, seeds 0 1 2
    python benchmarks/peers.py --only keras-gan --seeds 0
    python benchmarks/generative.py --table-only            # the table with both

The peers run in their own virtual environment (.venv-peers: Keras 3 on TensorFlow-CPU), which
this script creates on first use; it is not a dependency of aelab. They train on the same
training images as aelab's runs (the training split less the same 10% held out for validation),
for the same epochs; their 10,000 samples are measured by aelab's `fd_classifier` against the
test set, and the VAEs' bounds are computed on the same 2,000 test images as aelab's.
Each run lands in runs/generative/DATA/KEY/seed-S/ (metrics.json, history.json, samples.png) and
in generative.py's ledger (benchmarks/results/generative-runs.json), where the table reads it; a
run the ledger already holds is not trained again unless named in --only.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from generative import ledger_key, read_ledger, record, run_arguments
from reproduce import wall_file

from aelab import figures
from aelab.data import load_data, split_validation
from aelab.errors import AelabError
from aelab.frechet import sample_quality

ROOT = Path(__file__).resolve().parent
KERAS_SCRIPT = ROOT / "peers" / "keras_peers.py"
PACKAGES = ["tensorflow-cpu==2.21.0", "keras"]
# key -> the Keras script's arguments
PEERS = {"keras-vae-2d": ["vae", "--latent", "2"], "keras-vae-16d": ["vae", "--latent", "16"], "keras-gan": ["gan"]}


def peer_python(venv: Path) -> Path:
    """The peers' interpreter, creating their virtual environment the first time."""
    python = venv / "bin" / "python"
    if not python.is_file():
        print(f"[peers] creating {venv} ({', '.join(PACKAGES)})", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *PACKAGES], check=True
        )
    return python


def export_data(data_name: str, path: Path):
    """aelab's training images less its validation split, those validation images and the test
    images, as uint8 for Keras."""
    data = load_data(data_name)
    if data.shape != (1, 28, 28):
        raise AelabError(f"the Keras peers are built for 28x28 grey images; {data_name}'s are shaped {data.shape}")
    train, val = split_validation(data.train)
    as_bytes = lambda x: (x[:, 0] * 255).round().to(torch.uint8).numpy()  # noqa: E731
    np.savez(path, x_train=as_bytes(train), x_val=as_bytes(val), x_test=as_bytes(data.test))
    return data


def run_peer(python: Path, key: str, data, data_file: Path, epochs: int, seed: int, out: Path) -> None:
    started = time.perf_counter()
    subprocess.run(
        [
            str(python),
            str(KERAS_SCRIPT),
            *PEERS[key],
            "--data",
            str(data_file),
            "--epochs",
            str(epochs),
            "--seed",
            str(seed),
            "--out",
            str(out),
        ],
        check=True,
    )
    trained = time.perf_counter() - started
    result = json.loads((out / "result.json").read_text())
    samples = torch.from_numpy(np.load(out / "samples.npy")).unsqueeze(1)
    metrics = {
        "model": key,
        "data": data.name,
        **{k: v for k, v in result.items() if k.startswith(("test_", "bound", "forward_macs"))},
        **sample_quality(samples, data),
    }
    seconds = result["epoch_seconds"]
    rates = [result["train_images"] / s for s in seconds]
    metrics["images_per_second"] = statistics.median(rates[1:] or rates)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1))
    (out / "history.json").write_text(
        json.dumps(
            {
                "epochs": [
                    {"epoch": i + 1, "train_seconds": s, "images_per_second": r}
                    for i, (s, r) in enumerate(zip(seconds, rates))
                ]
            }
        )
    )
    figures.grid(samples[:100], out / "samples.png", nrow=10, title=f"{key}: samples")
    wall_file(out).write_text(f"{trained + (metrics.get('fd_seconds') or 0):.1f}\n")


def main(argv: list[str] | None = None) -> int:
    parser = run_arguments(
        argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    )
    parser.add_argument("--only", nargs="+", choices=list(PEERS), help="peers to (re)train")
    parser.add_argument("--venv", type=Path, default=Path(".venv-peers"))
    args = parser.parse_args(argv)
    try:
        python = peer_python(args.venv)
        data_file = args.runs / args.data / "peers-data.npz"
        data_file.parent.mkdir(parents=True, exist_ok=True)
        data = export_data(args.data, data_file)
        for seed in args.seeds:
            for key in PEERS:
                out = args.runs / args.data / key / f"seed-{seed}"
                if (
                    (key in args.only)
                    if args.only
                    else ledger_key(args.data, key, seed) not in read_ledger(args.ledger)
                ):
                    print(f"[peers] {key}, seed {seed} -> {out}", flush=True)
                    run_peer(python, key, data, data_file, args.epochs, seed, out)
                    record(args.ledger, args.data, key, seed, out)
    except (AelabError, subprocess.CalledProcessError) as error:
        print(f"peers: error: {error}", file=sys.stderr)
        return 2
    print("done: `python benchmarks/generative.py --table-only` writes the table with these rows")
    return 0


if __name__ == "__main__":
    sys.exit(main())
