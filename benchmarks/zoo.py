"""The zoo at equal time: every generative family trained for the same wall time on this CPU, then
judged by one measure, the classifier Fréchet distance of 10,000 samples (aelab's fd_classifier:
features of a small classifier, the one aelab ships for Fashion-MNIST and one trained once per
dataset for other data; not Inception's).

    python benchmarks/zoo.py                                  # 3 minutes a model on Fashion-MNIST, 1 on mnist-sample
    python benchmarks/zoo.py --minutes 5 --sample-minutes 2   # the issue's 5 minutes
    python benchmarks/zoo.py --only vqvae,rae --data fashion-mnist

Each model trains as `aelab train MODEL --data D --max-minutes M --epochs 1000 --out DIR` in its
own process (early stopping may end it sooner: the table says how many epochs ran), then its
evaluation runs as after any training. `best` (a deterministic autoencoder without a prior) is
sampled afterwards through the mixture sampler (`aelab sample RUN --sampler gmm`'s API), and its
samples measured the same way. The table goes on top of benchmarks/results/zoo.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from speed_common import cpu_line  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "zoo.md"
MODELS = ["vae", "beta-vae", "vqvae", "wae", "rae", "aae", "gan-sn", "best"]
MIXTURE_AFTER = {"best"}  # sampled by a mixture fitted after training, here


def train(model: str, data: str, minutes: float, out: Path) -> float:
    args = [sys.executable, "-m", "aelab", "train", model, "--data", data, "--epochs", "1000"]
    args += ["--max-minutes", str(minutes), "--out", str(out), "--no-progress"]
    started = time.perf_counter()
    done = subprocess.run(args, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return time.perf_counter() - started


def mixture_quality(out: Path) -> dict:
    """fd_classifier of 10,000 samples from a mixture over the run's training codes."""
    import torch

    import aelab
    from aelab.evaluation import run_data
    from aelab.frechet import sample_quality

    started = time.perf_counter()
    samples = aelab.inference.sample(out, n=10_000, sampler="gmm")
    quality = sample_quality(torch.from_numpy(samples), run_data(aelab.Run(out)))
    quality["sample_seconds"] = time.perf_counter() - started
    return quality


def row(model: str, out: Path, wall: float) -> dict:
    metrics = json.loads((out / "metrics.json").read_text())
    history = json.loads((out / "history.json").read_text())
    epochs = history if isinstance(history, list) else history["epochs"]
    seconds = sum(e.get("train_seconds", 0) for e in epochs)
    images = sum(e.get("train_seconds", 0) * e.get("images_per_second", 0) for e in epochs)
    sampler = metrics.get("sampler", "prior")
    if model in MIXTURE_AFTER:
        metrics.update(mixture_quality(out))
        sampler = "gmm (10), fitted after"
    iwae = next((v for k, v in metrics.items() if k.startswith("test_iwae")), None)
    return {
        "model": model,
        "epochs": len(epochs),
        "train_s": seconds,
        "wall_s": wall,
        "img_s": images / seconds if seconds else None,
        "fd": metrics.get("fd_classifier"),
        "floor": metrics.get("fd_classifier_floor"),
        "rmse": metrics.get("test_rmse"),
        "nll": -iwae if iwae is not None else None,
        "perplexity": metrics.get("test_perplexity"),
        "sampler": sampler,
    }


def number(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def table(rows: list[dict]) -> list[str]:
    lines = [
        "| model | epochs | training s | img/s | fd_classifier (10k samples) | test RMSE | -log p(x) bound (IWAE, nats) | "
        "codebook perplexity | samples from |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in sorted(rows, key=lambda r: r["fd"] if r["fd"] is not None else float("inf")):
        lines.append(
            f"| {r['model']} | {r['epochs']} | {r['train_s']:.0f} | {number(r['img_s'], ',.0f')} | "
            f"**{number(r['fd'], '.1f')}** | {number(r['rmse'], '.4f')} | {number(r['nll'], '.1f')} | "
            f"{number(r['perplexity'], '.1f')} | {r['sampler']} |"
        )
    floor = next((r["floor"] for r in rows if r["floor"] is not None), None)
    lines.append(f"\nThe floor (training vs test images, the distance real data scores): {number(floor, '.2f')}.")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=3.0, help="training minutes a model on Fashion-MNIST")
    parser.add_argument("--sample-minutes", type=float, default=1.0, help="training minutes a model on mnist-sample")
    parser.add_argument("--data", default="fashion-mnist,mnist-sample")
    parser.add_argument("--only", help="comma-separated models (default: all)")
    parser.add_argument("--no-write", action="store_true", help="print the table only")
    args = parser.parse_args()
    models = args.only.split(",") if args.only else MODELS
    sections = [f"## {datetime.date.today()}: every generative family at equal training time", "", cpu_line(), ""]
    sections.append(f"`python benchmarks/zoo.py {' '.join(sys.argv[1:])}`".replace(" `", "`"))
    with tempfile.TemporaryDirectory() as tmp:
        for data in args.data.split(","):
            minutes = args.minutes if data != "mnist-sample" else args.sample_minutes
            rows = []
            for model in models:
                out = Path(tmp) / data / model
                wall = train(model, data, minutes, out)
                rows.append(row(model, out, wall))
                print(json.dumps(rows[-1]), flush=True)
            sections += ["", f"### {data}: {minutes:g} minutes of training each", "", *table(rows)]
    text = "\n".join(sections) + "\n"
    print(text)
    if not args.no_write:
        old = RESULTS.read_text() if RESULTS.exists() else "# The zoo at equal time\n"
        head, _, rest = old.partition("\n## ")
        RESULTS.write_text(head.rstrip() + "\n\n" + text + ("\n## " + rest if rest else ""))


if __name__ == "__main__":
    main()
