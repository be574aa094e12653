"""Training speed when the CPU is shared: aelab (threads that adapt, its default) against aelab
at each fixed thread count, the same model in a plain PyTorch loop at 1 thread and at all
threads, and in Keras 3 (TensorFlow-CPU), each quiet, beside one busy process at normal
priority, and beside one at nice 19.

    python benchmarks/shared_speed.py                         # Fashion-MNIST if installed, 3 epochs
    python benchmarks/shared_speed.py --only busy --epochs 2 --no-keras

The model is seed 1's (`conv-resize`, batch 200, Adam 1e-3, BCE); the plain loop is
speed_training.py's reference (fp32 eager); Keras is peers/keras_peers.py's `conv-ae`, in
.venv-peers (benchmarks/peers.py creates it). The load is `python3 -c 'while 1: pass'`, started
before a side and stopped after it: what a browser tab, a compiler or a second job does. Each
side runs in a fresh process; its rate is training images per second, the median of the epochs
after the first. Goals (issue 43): aelab within 5% of its best fixed thread count in every
condition, >= 1.5x Keras under load, quiet speed unchanged. Writes its tables on top of
benchmarks/results/speed-shared.md, naming the CPU.
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))

from speed_common import cpu_line, default_data  # noqa: E402

RESULTS = ROOT / "results" / "speed-shared.md"
LOADS = {"quiet": None, "busy": [], "niced": ["nice", "-n", "19"]}
SPIN = [sys.executable, "-c", "while 1: pass"]


def steady(rates: list[float]) -> float:
    return statistics.median(rates[1:] or rates)


def aelab_rate(data: str, epochs: int, tmp: Path, threads: int | None) -> dict:
    out = tmp / f"aelab-{threads or 'adaptive'}-{time.time_ns()}"
    options = ["--threads", str(threads)] if threads else []
    subprocess.run([sys.executable, "-m", "aelab", "train", "conv-resize", "--data", data, "--epochs", str(epochs),
                    "--no-early-stopping", "--out", str(out), "--progress", "none", "--no-bounds", "--no-quality",
                    "--logger", "none", *options], check=True, capture_output=True)
    history = json.loads((out / "history.json").read_text())["epochs"]
    return {"rate": steady([row["images_per_second"] for row in history]),
            "threads": "/".join(str(int(row["threads"])) for row in history)}


def plain_rate(data: str, epochs: int, threads: int) -> dict:
    code = ("import json, sys, torch; sys.path.insert(0, %r); torch.set_num_threads(%d)\n"
            "from speed_training import plain_loop\nfrom aelab.data import load_data, split_validation\n"
            "x, _ = split_validation(load_data(%r).train)\nprint(json.dumps(plain_loop(x, %d, fast=False)[0]))"
            % (str(ROOT), threads, data, epochs))
    done = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return {"rate": float(done.stdout.strip().splitlines()[-1]), "threads": str(threads)}


def keras_rate(data: str, epochs: int, tmp: Path) -> dict | None:
    from peers import KERAS_SCRIPT, export_data, peer_python

    python = peer_python(ROOT.parent / ".venv-peers")
    data_file = tmp / "data.npz"
    if not data_file.is_file():
        export_data(data, data_file)
    out = tmp / f"keras-{time.time_ns()}"
    subprocess.run([str(python), str(KERAS_SCRIPT), "conv-ae", "--data", str(data_file), "--epochs", str(epochs),
                    "--out", str(out)], check=True, capture_output=True)
    result = json.loads((out / "result.json").read_text())
    return {"rate": steady([result["train_images"] / s for s in result["epoch_seconds"]]), "threads": "TF's"}


def under(load: list[str] | None, measure):
    """``measure()`` with the load running beside it (None: quiet)."""
    if load is None:
        return measure()
    spinner = subprocess.Popen([*load, *SPIN])
    try:
        time.sleep(1.0)
        return measure()
    finally:
        spinner.kill()
        spinner.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=None, help="dataset name (default: fashion-mnist if installed)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--only", default="quiet,busy,niced", help="conditions, comma-separated")
    parser.add_argument("--no-keras", action="store_true", help="leave the Keras side out")
    parser.add_argument("--no-write", action="store_true", help="print the tables only")
    args = parser.parse_args(argv)
    data = args.data or default_data()
    cores = torch.get_num_threads()
    fixed = sorted({cores, cores - 1, cores // 2} - {0}, reverse=True)
    given = "".join(" " + word for word in (argv if argv is not None else sys.argv[1:]))
    lines = [f"## {datetime.date.today()}: {cpu_line()}", "", f"Command: `python benchmarks/shared_speed.py{given}`", "", f"Seed 1's model on {data}, {args.epochs} epochs a side, training images/s (the median of the epochs "
             "after the first).", ""]
    verdicts = []
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        for condition in args.only.split(","):
            load = LOADS[condition]
            sides = {"aelab (adaptive threads, the default)": lambda: aelab_rate(data, args.epochs, tmp, None)}
            for n in fixed:
                sides[f"aelab --threads {n}"] = lambda n=n: aelab_rate(data, args.epochs, tmp, n)
            sides["plain PyTorch, 1 thread"] = lambda: plain_rate(data, args.epochs, 1)
            sides[f"plain PyTorch, {cores} threads"] = lambda: plain_rate(data, args.epochs, cores)
            if not args.no_keras:
                sides["Keras 3 (TensorFlow-CPU)"] = lambda: keras_rate(data, args.epochs, tmp)
            results = {}
            for name, measure in sides.items():
                results[name] = under(load, measure)
                print(f"[{condition}] {name}: {results[name]['rate']:,.0f} img/s (threads {results[name]['threads']})",
                      flush=True)
            ours = results["aelab (adaptive threads, the default)"]["rate"]
            best_fixed = max(results[f"aelab --threads {n}"]["rate"] for n in fixed)
            what = {"quiet": "quiet", "busy": "beside one busy process (normal priority)",
                    "niced": "beside one busy process at nice 19"}[condition]
            lines += [f"### {what}", "", "| side | images/s | threads (per epoch) | x adaptive aelab |", "|---|---|---|---|"]
            for name, result in results.items():
                lines.append(f"| {name} | {result['rate']:,.0f} | {result['threads']} | {ours / result['rate']:.2f}x |")
            verdict = f"{condition}: adaptive / best fixed = {ours / best_fixed:.3f} (goal >= 0.95)"
            if "Keras 3 (TensorFlow-CPU)" in results:
                verdict += f"; adaptive / Keras = {ours / results['Keras 3 (TensorFlow-CPU)']['rate']:.2f}x"
                verdict += " (goal >= 1.5 under load)" if load is not None else ""
            verdicts.append(verdict)
            lines += ["", verdict, ""]
    print("\n".join(lines))
    if not args.no_write:
        if not RESULTS.exists():
            RESULTS.write_text("# Training on a shared CPU\n\nWritten by `benchmarks/shared_speed.py`; newest run "
                               "first.\n")
        head, marker, rest = RESULTS.read_text().partition("\n## ")
        RESULTS.write_text(head.rstrip("\n") + "\n\n" + "\n".join(lines).rstrip() + "\n\n" + marker.lstrip("\n") + rest)
        print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
