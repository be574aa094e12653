"""Train the VAE (2-D and 16-D latent), the GAN and `gan-sn` over several seeds and write their results file.

    python benchmarks/generative.py                          # Fashion-MNIST, 10 epochs, seeds 0 1 2
    python benchmarks/generative.py --only gan gan-sn        # (re)train some rows only
    python benchmarks/generative.py --data mnist-sample --epochs 3 --seeds 0

`gan-sn` is compared with `gan` at the same training time: each of its runs gets `--max-minutes`
equal to the training time of `gan`'s run with the same seed (so `gan` trains first). A run
folder that already holds metrics is not trained again (delete it, or name it in --only).

Writes benchmarks/results/generative.md: each row's mean and standard deviation over the seeds
of ELBO, the IWAE bound and the Fréchet distance on the cached classifier's features, the time
spent training and evaluating, the discriminator-collapse warnings counted, and the sample grids.
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import shutil
import statistics
import sys
import time
from pathlib import Path

from aelab.errors import AelabError
from aelab.training import train
from reproduce import wall_file

ROOT = Path(__file__).resolve().parent
RUNS = [("vae-2d", "vae", {"latent_dim": 2}), ("keras-vae-2d", "keras-io VAE", {"latent_dim": 2}),
        ("vae-16d", "vae", {"latent_dim": 16}), ("keras-vae-16d", "keras-io VAE", {"latent_dim": 16}),
        ("gan", "gan", {}), ("keras-gan", "Keras DCGAN", {}), ("gan-sn", "gan-sn", {})]
PEERS = {"vae-2d": "keras-vae-2d", "vae-16d": "keras-vae-16d", "gan": "keras-gan"}  # trained by peers.py
SAME_TIME_AS = {"gan-sn": "gan"}  # a row trained for the training time of another row's run with the same seed
GOAL = 0.30  # gan-sn's mean fd_classifier at least 30% below gan's


class WarningCount(logging.Handler):
    """Counts aelab's warnings that a GAN's discriminator is collapsing, while a run trains."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += "collapsing" in record.getMessage()


def collapse_file(run: Path) -> Path:
    return run.with_name(f"{run.name}.collapse_warnings.txt")


def train_seconds(run: Path) -> float:
    return sum(row["train_seconds"] for row in json.loads((run / "history.json").read_text())["epochs"])


def train_one(key: str, model: str, params: dict, out: Path, data: str, epochs: int, seed: int) -> None:
    budget = {}
    if key in SAME_TIME_AS:
        peer = out.parent.parent / SAME_TIME_AS[key] / out.name
        if not (peer / "history.json").is_file():
            raise AelabError(f"{key} trains for {SAME_TIME_AS[key]}'s time: train {peer} first")
        # as many epochs as the time allows: the budget stops it
        budget = {"max_minutes": train_seconds(peer) / 60, "epochs": 10 * epochs}
    counter = WarningCount()
    logging.getLogger("aelab").addHandler(counter)
    try:
        started = time.perf_counter()
        train(model, data=data, epochs=budget.pop("epochs", epochs), out=out, overwrite=True, progress=False,
              seed=seed, **budget, **params)
        wall_file(out).write_text(f"{time.perf_counter() - started:.1f}\n")
        collapse_file(out).write_text(f"{counter.count}\n")
    finally:
        logging.getLogger("aelab").removeHandler(counter)


def spread(values: list[float], spec: str) -> str:
    if not values:
        return "-"
    if len(set(values)) == 1:  # one seed, or the same on every seed
        return format(values[0], spec)
    return f"{format(statistics.mean(values), spec)} ± {format(statistics.stdev(values), spec)}"


def row_text(key: str, model: str, params: dict, runs: list[Path]) -> tuple[str, dict]:
    metrics = [json.loads((r / "metrics.json").read_text()) for r in runs]
    walls = [float(wall_file(r).read_text()) for r in runs if wall_file(r).is_file()]
    one_off = [m.get("fd_classifier_train_seconds") or 0.0 for m in metrics]
    # the end-of-training evaluation's share of a run's wall time, the feature classifier's one-off cost apart
    shares = [((m.get("bounds_seconds") or 0) + (m.get("fd_seconds") or 0)) / (w - c)
              for m, w, c in zip(metrics, walls, one_off)] if len(walls) == len(runs) else []
    collapses = [int(collapse_file(r).read_text()) for r in runs if collapse_file(r).is_file()]
    values = {name: [m[name] for m in metrics if m.get(name) is not None]
              for name in ("test_elbo", "test_iwae_k100", "fd_classifier", "fd_classifier_floor")}
    epochs = [len(json.loads((r / "history.json").read_text())["epochs"]) for r in runs]
    seeds = ", ".join(r.name.removeprefix("seed-") for r in runs)
    text = (f"| {key} | `{model}` {params or ''} | {seeds} | {spread(epochs, '.0f')} | "
            f"{spread([train_seconds(r) for r in runs], '.0f')} s | {spread(walls, '.0f')} s | "
            f"{spread([100 * s for s in shares], '.1f')}% | {spread(values['test_elbo'], '.1f')} | "
            f"{spread(values['test_iwae_k100'], '.1f')} | {spread(values['fd_classifier'], '.2f')} | "
            f"{spread(values['fd_classifier_floor'], '.2f')} | {sum(collapses) if collapses else '-'} |")
    return text, {"fd": values["fd_classifier"], "elbo": values["test_elbo"], "one_off": max(one_off)}


def comparison(ours: str, peer: str, found: dict) -> str:
    """aelab's row against its Keras peer, on the means over the seeds."""
    parts = []
    for name, label, higher_is_better in (("fd", "fd_classifier", False), ("elbo", "ELBO", True)):
        a, b = found[ours][name], found[peer][name]
        if a and b:
            a, b = statistics.mean(a), statistics.mean(b)
            better = (a > b) if higher_is_better else (a < b)
            parts.append(f"{label} {a:.2f} vs {b:.2f} ({'aelab' if better else 'Keras'} better)")
    return f"`{ours}` against `{peer}`: " + "; ".join(parts)


def run_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The options this script shares with peers.py: which runs, where."""
    parser.add_argument("--data", default="fashion-mnist")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--runs", type=Path, default=Path("runs/generative"))
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = run_arguments(argparse.ArgumentParser(description=__doc__,
                                                   formatter_class=argparse.RawDescriptionHelpFormatter))
    parser.add_argument("--only", nargs="+", choices=[key for key, _, _ in RUNS if key not in PEERS.values()],
                        help="rows to (re)train")
    parser.add_argument("--results", type=Path, default=ROOT / "results" / "generative.md")
    parser.add_argument("--table-only", action="store_true", help="only rewrite the results from existing runs")
    args = parser.parse_args(argv)
    figures = args.results.parent / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    folder = lambda key, seed: args.runs / args.data / key / f"seed-{seed}"  # noqa: E731
    try:
        for seed in args.seeds:
            for key, model, params in [run for run in RUNS if run[0] not in PEERS.values()]:
                out = folder(key, seed)
                chosen = key in args.only if args.only else not (out / "metrics.json").is_file()
                if chosen and not args.table_only:
                    print(f"[generative] {key}, seed {seed} -> {out}", flush=True)
                    train_one(key, model, params, out, args.data, args.epochs, seed)
    except AelabError as error:
        print(f"generative: error: {error}", file=sys.stderr)
        return 2
    rows, images, found = [], [], {}
    for key, model, params in RUNS:
        runs = [folder(key, s) for s in args.seeds if (folder(key, s) / "metrics.json").is_file()]
        if not runs:
            continue
        text, found[key] = row_text(key, model, params, runs)
        rows.append(text)
        for png in ("samples.png", "manifold.png"):
            if (runs[0] / png).is_file():
                target = figures / f"{args.data}-{key}-{png}"
                shutil.copy(runs[0] / png, target)
                images.append(f"![{key} {png[:-4]}, seed {runs[0].name[5:]}](figures/{target.name})")
    command = f"python benchmarks/generative.py --data {args.data} --epochs {args.epochs} --seeds " + \
        " ".join(map(str, args.seeds))
    text = [f"# Generative models on {args.data}", "",
            f"Measured {datetime.date.today()} on this machine (2 CPU cores) by `{command}`: one `aelab train` per "
            "row and seed, default settings otherwise; each cell is the mean ± standard deviation over the seeds.", "",
            "ELBO and the IWAE bound (k = 100 importance samples) are in nats per image on the first 2,000 test",
            "images (higher is better; Bernoulli decoder on pixel intensities). `fd_classifier` is the Fréchet",
            "distance between 10,000 samples and the test set on the 128-d features of aelab's cached",
            "classifier (lower is better); its floor is the same distance between training and test images.",
            "*eval* is the share of a run's wall time spent at the end on the bounds and the 10,000-sample",
            "distance; *collapse* counts the epochs that warned of a collapsing discriminator, over all seeds.",
            "`gan-sn` trains for the training time of `gan`'s run with the same seed (`--max-minutes`).",
            "The `keras-*` rows are the Keras peers (keras-io's VAE; a DCGAN with seed 3's tricks, sized as `gan`),",
            "trained by `python benchmarks/peers.py` on the same training images for the same epochs and measured by",
            "the same metrics; a row that is missing was not run.", "",
            "| run | model | seeds | epochs | training | wall | eval | ELBO | IWAE k=100 | fd_classifier | floor | "
            "collapse |", "|---|---|---|---|---|---|---|---|---|---|---|---|", *rows, ""]
    one_off = max((f["one_off"] for f in found.values()), default=0.0)
    if one_off:
        text += [f"The first run on {args.data} also trained the feature classifier once ({one_off:.0f} s, inside "
                 "its wall time; cached for every later run): the eval share leaves it out.", ""]
    pairs = [f"- {comparison(ours, peer, found)}" for ours, peer in PEERS.items() if ours in found and peer in found]
    text += [*pairs, ""] if pairs else []
    if "gan" in found and "gan-sn" in found and found["gan"]["fd"] and found["gan-sn"]["fd"]:
        gan, sn = statistics.mean(found["gan"]["fd"]), statistics.mean(found["gan-sn"]["fd"])
        verdict = "met" if sn <= (1 - GOAL) * gan else "missed"
        text += [f"`gan-sn` against `gan` at the same training time: mean fd_classifier {sn:.2f} vs {gan:.2f}, "
                 f"{100 * (1 - sn / gan):.0f}% lower (goal: at least {100 * GOAL:.0f}%: {verdict}).", ""]
    text += [f"{line}\n" for line in images]
    note = next((json.loads((r / "metrics.json").read_text()).get("fid_note")
                 for key, _, _ in RUNS for r in [folder(key, s) for s in args.seeds]
                 if (r / "metrics.json").is_file()), None)
    if note:
        text += [f"{note}."]
    args.results.write_text("\n".join(text) + "\n")
    print(f"wrote {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
