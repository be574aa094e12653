"""Training from image folders larger than memory (`--stream`) against the in-memory path.

    python benchmarks/streaming.py             # folders of 10k and 100k images, seed 1's model, 3 epochs
    python benchmarks/streaming.py --sizes 2000 20000 --epochs 2   # a quicker look

Makes folders of 28x28 PNG files from Fashion-MNIST (the training and test images, then their
mirror images: 140,000 real pictures at most; mnist-sample's 5,000 digits where Fashion-MNIST is
not installed, mirrored and shifted), then trains `conv-resize` on each through `python -m aelab
train` in a fresh process: with `--stream` on every folder (a fresh cache each time, so the first
epoch decodes the PNG files in the DataLoader worker and later epochs read the cached shards),
and with `--no-stream` (every image decoded into memory before training). Reports
training images/s of the first epoch and of the later ones, and the peak resident memory of the
training process and of its largest worker (getrusage), to benchmarks/results/streaming.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent
MODEL = "conv-resize"


def source_images(n: int) -> np.ndarray:
    """``n`` real 28x28 uint8 images: Fashion-MNIST's, then mirrored and shifted copies as needed."""
    from aelab.data import DEBIAN_FASHION_MNIST, load_data

    data = load_data("fashion-mnist" if DEBIAN_FASHION_MNIST.is_dir() else "mnist-sample")
    base = (np.concatenate([data.train.numpy(), data.test.numpy()])[:, 0] * 255).round().astype(np.uint8)
    variants = [base, base[:, :, ::-1], np.roll(base, 2, axis=2), np.roll(base[:, :, ::-1], -2, axis=2)]
    pool = np.concatenate(variants)
    if n > len(pool):
        raise SystemExit(f"at most {len(pool)} images can be made here, asked for {n}")
    return pool[:n]


def make_folder(folder: Path, n: int) -> Path:
    """``n`` PNG files in sub-folders of 1,000 (kept between runs: made once)."""
    done = folder / ".complete"
    if done.is_file():
        return folder
    from PIL import Image

    shutil.rmtree(folder, ignore_errors=True)
    for i, image in enumerate(source_images(n)):
        part = folder / f"{i // 1000:04d}"
        part.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image, mode="L").save(part / f"{i:06d}.png")
    done.write_text(f"{n}\n")
    return folder


def worker(folder: Path, out: Path, epochs: int, stream: bool) -> dict:
    """One training run in this process; peak memory read after it."""
    from aelab import train

    started = time.perf_counter()
    run = train(MODEL, data=folder, out=out, epochs=epochs, stream=stream, progress=False, early_stopping=False)
    wall = time.perf_counter() - started
    rates = [row["images_per_second"] for row in run.history]
    return {
        "first": rates[0],
        "later": statistics.median(rates[1:]) if len(rates) > 1 else None,
        "wall": wall,
        "test_rmse": run.metrics["test_rmse"],
        "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "worker_peak_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
    }


def floor() -> dict:
    """Peak memory of a fresh process that only imports torch and Lightning: what every run pays."""
    code = (
        "import json, resource, torch, lightning; u = lambda who: resource.getrusage(who).ru_maxrss / 1024; "
        "print(json.dumps({'peak_mib': u(resource.RUSAGE_SELF), 'worker_peak_mib': u(resource.RUSAGE_CHILDREN)}))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def measure(folder: Path, workdir: Path, epochs: int, stream: bool) -> dict:
    """:func:`worker` in a fresh process, with a fresh cache of decoded shards."""
    tag = f"{folder.name}-{'stream' if stream else 'memory'}"
    cache = workdir / f"cache-{tag}"
    shutil.rmtree(cache, ignore_errors=True)
    shutil.rmtree(workdir / f"run-{tag}", ignore_errors=True)
    env = {**os.environ, "AELAB_DATA_HOME": str(cache / "datasets")}
    command = [
        sys.executable,
        __file__,
        "--worker",
        str(folder),
        "--out",
        str(workdir / f"run-{tag}"),
        "--epochs",
        str(epochs),
    ] + (["--stream"] if stream else [])
    proc = subprocess.run(command, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{proc.stderr[-3000:]}")
    shutil.rmtree(cache, ignore_errors=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=Path("runs") / "streaming")
    parser.add_argument("--results", type=Path, default=ROOT / "results" / "streaming.md")
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--stream", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.out, args.epochs, args.stream)))
        return 0
    sizes = sorted(args.sizes)
    folders = {n: make_folder(args.workdir / f"images-{n}", n) for n in sizes}
    rows = []
    for n in sizes:
        for how, stream in (("in memory", False), ("streamed", True)):
            rows.append((how, n, measure(folders[n], args.workdir, args.epochs, stream=stream)))
            r = rows[-1][2]
            print(
                f"{how:>9} {n:>7,} images: first epoch {r['first']:,.0f} images/s, later {r['later'] or 0:,.0f}, "
                f"peak {r['peak_mib']:,.0f} MiB (children {r['worker_peak_mib']:,.0f} MiB)",
                flush=True,
            )
    args.results.write_text(report(rows, floor(), args, argv))
    print(args.results.read_text())
    return 0


def report(rows, base: dict, args, argv) -> str:
    memory = {n: r for how, n, r in rows if how == "in memory"}
    streamed = {n: r for how, n, r in rows if how == "streamed"}
    small, large = min(streamed), max(streamed)
    growth = streamed[large]["peak_mib"] / streamed[small]["peak_mib"]
    memory_growth = memory[large]["peak_mib"] / memory[small]["peak_mib"]
    later = memory[small]["later"], streamed[small]["later"]
    cached = later[1] / later[0] if all(later) else None
    command = "python benchmarks/streaming.py " + " ".join(argv if argv is not None else sys.argv[1:])
    lines = [
        "# Streaming image folders",
        "",
        f"Produced by `{command.strip()}` ({datetime.date.today()}, {os.cpu_count()} CPU cores, Python "
        f"{platform.python_version()}). `{MODEL}` trained for {args.epochs} epochs on folders of 28x28 PNG files "
        "(Fashion-MNIST's images and their mirrored and shifted copies), each run in a fresh process through "
        "`aelab.train`: `stream=True` reads the files in a DataLoader worker and caches decoded uint8 shards (a "
        "fresh cache each run: the first epoch decodes, the later ones read the cache); `stream=False` decodes "
        "every image into memory before training. Images/s are the training steps' (history.json), the later "
        "epochs' median; peak memory is the training process's maximum resident set, and its largest child "
        f"process's (the DataLoader worker; `import torch` alone starts a child of {base['worker_peak_mib']:,.0f} "
        f"MiB here, and a process that only imports torch and Lightning peaks at {base['peak_mib']:,.0f} MiB). "
        "Test RMSE is on the test split's images, at most 10,000 when streamed.",
        "",
        "| data | images | first epoch, images/s | later epochs, images/s | peak memory | largest child | "
        "wall (incl. start, evaluation) | test RMSE |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for how, n, r in rows:
        lines.append(
            f"| {how} | {n:,} | {r['first']:,.0f} | {r['later'] or 0:,.0f} | {r['peak_mib']:,.0f} MiB | "
            f"{r['worker_peak_mib']:,.0f} MiB | {r['wall']:.0f} s | {r['test_rmse']:.4f} |"
        )
    lines += [
        "",
        f"- Peak memory, {large:,} streamed images against {small:,}: {growth:.2f}x (goal: within 1.5x: "
        f"{'met' if growth <= 1.5 else 'not met'}); in memory: {memory_growth:.2f}x.",
    ]
    if cached is not None:
        lines.append(
            f"- Cached epochs against the in-memory path on {small:,} images: {cached:.2f}x its speed "
            f"(goal: at least 0.5x: {'met' if cached >= 0.5 else 'not met'})."
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
