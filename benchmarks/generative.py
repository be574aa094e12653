"""Train the VAE (2-D and 16-D latent), the GAN and `gan-sn` over several seeds and write their results file.

    python benchmarks/generative.py                          # Fashion-MNIST, 10 epochs, seeds 0 1 2
    python benchmarks/generative.py --only gan gan-sn        # (re)train some rows only
    python benchmarks/generative.py --data mnist-sample --epochs 3 --seeds 0

`gan-sn` is compared with `gan` at the same training time: each of its runs gets `--max-minutes`
equal to the training time of `gan`'s run with the same seed (so `gan` trains first). A run
that already holds metrics, in its folder or in the ledger, is not trained again (name it in --only).

Each finished run (this script's or peers.py's) is recorded in the ledger,
benchmarks/results/generative-runs.json: its metrics, the seconds of each epoch, its wall time and
warnings, its settings and the date. The ledger is committed, so a table can gather runs measured
in several sessions or checkouts, and each number in it can be traced to one run.

Writes benchmarks/results/generative.md from the ledger: each row's mean and standard deviation
over the seeds of ELBO, the IWAE bound and the Fréchet distance on the cached classifier's
features, the time spent training and evaluating, the discriminator-collapse warnings counted,
and the sample grids (copied from the first seed's run folder where it is here).
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

import torch
from reproduce import wall_file
from scipy import stats
from torch.utils.flop_counter import FlopCounterMode

from aelab.errors import AelabError
from aelab.models import create_model
from aelab.training import train

ROOT = Path(__file__).resolve().parent
RUNS = [
    ("vae-2d", "vae", {"latent_dim": 2}),
    ("keras-vae-2d", "keras-io VAE", {"latent_dim": 2}),
    ("vae-16d", "vae", {"latent_dim": 16}),
    ("keras-vae-16d", "keras-io VAE", {"latent_dim": 16}),
    ("gan", "gan", {}),
    ("keras-gan", "Keras DCGAN", {}),
    ("gan-sn", "gan-sn", {}),
]
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


def ledger_key(data: str, key: str, seed: int) -> str:
    return f"{data}/{key}/seed-{seed}"


def read_ledger(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def record(ledger: Path, data: str, key: str, seed: int, run: Path) -> dict:
    """Adds a finished run (a folder with metrics.json and history.json) to the ledger, and returns its entry."""
    config = run / "config.json"
    entry = {
        "measured": datetime.date.today().isoformat(),
        "metrics": json.loads((run / "metrics.json").read_text()),
        "epoch_seconds": [row["train_seconds"] for row in json.loads((run / "history.json").read_text())["epochs"]],
        "wall_seconds": float(wall_file(run).read_text()) if wall_file(run).is_file() else None,
        "collapse_warnings": int(collapse_file(run).read_text()) if collapse_file(run).is_file() else None,
        "config": json.loads(config.read_text()) if config.is_file() else None,
    }
    entries = read_ledger(ledger)
    entries[ledger_key(data, key, seed)] = entry
    ledger.parent.mkdir(parents=True, exist_ok=True)
    temporary = ledger.with_name(ledger.name + ".tmp")  # a cut-off write leaves the old ledger whole
    temporary.write_text(json.dumps(dict(sorted(entries.items())), indent=1) + "\n")
    temporary.replace(ledger)
    return entry


def train_one(key: str, model: str, params: dict, out: Path, data: str, epochs: int, seed: int, ledger: Path) -> None:
    budget = {}
    if key in SAME_TIME_AS:
        peer = read_ledger(ledger).get(ledger_key(data, SAME_TIME_AS[key], seed))
        if peer is None:
            raise AelabError(
                f"{key} trains for {SAME_TIME_AS[key]}'s time: train {SAME_TIME_AS[key]} with seed {seed} first"
            )
        # as many epochs as the time allows: the budget stops it
        budget = {"max_minutes": sum(peer["epoch_seconds"]) / 60, "epochs": 10 * epochs}
    counter = WarningCount()
    logging.getLogger("aelab").addHandler(counter)
    try:
        started = time.perf_counter()
        train(
            model,
            data=data,
            epochs=budget.pop("epochs", epochs),
            out=out,
            overwrite=True,
            progress=False,
            seed=seed,
            **budget,
            **params,
        )
        wall_file(out).write_text(f"{time.perf_counter() - started:.1f}\n")
        collapse_file(out).write_text(f"{counter.count}\n")
    finally:
        logging.getLogger("aelab").removeHandler(counter)
    record(ledger, data, key, seed, out)


def forward_macs(model_name: str, params: dict) -> int:
    """Multiply-accumulates of one 28x28 image through the model's networks once (a VAE's encoder and
    decoder; a GAN's generator and discriminator), by torch's flop counter (dense and convolution layers)."""
    model = create_model(model_name, **params).eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        if hasattr(model, "discriminator"):
            model.discriminator(model.generator(torch.randn(1, model.latent_dim)))
        else:
            model(torch.zeros(1, 1, 28, 28))
    return counter.get_total_flops() // 2


def stale_budgets(entries: dict, data: str, key: str, other: str, seeds: list[int]) -> str:
    """The seeds whose ``key`` run was given a time budget that differs by over 5% from the training
    time of ``other``'s run now in the ledger (``other`` retrained since), as "seed: given vs now"."""
    stale = []
    for seed in seeds:
        ours, theirs = entries.get(ledger_key(data, key, seed)), entries.get(ledger_key(data, other, seed))
        if ours and theirs and (ours.get("config") or {}).get("train", {}).get("max_minutes"):
            given, now = ours["config"]["train"]["max_minutes"], sum(theirs["epoch_seconds"]) / 60
            if abs(given - now) > 0.05 * now:
                stale.append(f"{seed}: {given:.1f} vs {now:.1f}")
    return "; ".join(stale)


def spread(values: list[float], spec: str) -> str:
    if not values:
        return "-"
    if len(set(values)) == 1:  # one seed, or the same on every seed
        return format(values[0], spec)
    return f"{format(statistics.mean(values), spec)} ± {format(statistics.stdev(values), spec)}"


def row_text(key: str, model: str, params: dict, runs: dict[int, dict]) -> tuple[str, dict]:
    """A table row from the ledger's entries of one row, by seed."""
    metrics = [entry["metrics"] for entry in runs.values()]
    # the peers' count comes from their own script (the same for every seed); aelab's is counted here
    macs = (
        next((m["forward_macs"] for m in metrics if m.get("forward_macs")), None)
        if key in PEERS.values()
        else forward_macs(model, params)
    )
    walls = [entry["wall_seconds"] for entry in runs.values() if entry["wall_seconds"] is not None]
    one_off = [m.get("fd_classifier_train_seconds") or 0.0 for m in metrics]
    # the end-of-training evaluation's share of a run's wall time, the feature classifier's one-off cost apart
    shares = (
        [
            ((m.get("bounds_seconds") or 0) + (m.get("fd_seconds") or 0)) / (w - c)
            for m, w, c in zip(metrics, walls, one_off)
        ]
        if len(walls) == len(runs)
        else []
    )
    collapses = [entry["collapse_warnings"] for entry in runs.values() if entry["collapse_warnings"] is not None]
    values = {
        name: [m[name] for m in metrics if m.get(name) is not None]
        for name in ("test_elbo", "test_iwae_k100", "fd_classifier", "fd_classifier_floor")
    }
    epochs = [len(entry["epoch_seconds"]) for entry in runs.values()]
    seeds = ", ".join(map(str, runs))
    # a row whose seeds ran different settings (defaults changed between runs) says so
    settings = {
        json.dumps(
            {
                k: v
                for k, v in ((entry.get("config") or {}).get("train") or {}).items()
                if k not in ("seed", "max_minutes")
            },
            sort_keys=True,
        )
        for entry in runs.values()
    }
    if len(settings) > 1:
        seeds += " (settings differ between seeds: see the ledger)"
    text = (
        f"| {key} | `{model}` {params or ''} | {f'{macs / 1e6:.1f} M' if macs else '-'} | {seeds} | "
        f"{spread(epochs, '.0f')} | "
        f"{spread([sum(entry['epoch_seconds']) for entry in runs.values()], '.0f')} s | {spread(walls, '.0f')} s | "
        f"{spread([100 * s for s in shares], '.1f')}% | {spread(values['test_elbo'], '.1f')} | "
        f"{spread(values['test_iwae_k100'], '.1f')} | {spread(values['fd_classifier'], '.2f')} | "
        f"{spread(values['fd_classifier_floor'], '.2f')} | {sum(collapses) if collapses else '-'} |"
    )
    return text, {
        "fd": values["fd_classifier"],
        "elbo": values["test_elbo"],
        "one_off": max(one_off),
        "macs": macs,
        "training": [sum(entry["epoch_seconds"]) for entry in runs.values()],
    }


def peer_lead(ours: list[float], peer: list[float]) -> str:
    """How firmly the peer leads: each side's seeds, and Welch's t-test on the two sets."""
    seeds = f"seeds {' / '.join(f'{v:.2f}' for v in ours)} vs {' / '.join(f'{v:.2f}' for v in peer)}"
    if min(len(ours), len(peer)) < 2:
        return seeds
    p = stats.ttest_ind(ours, peer, equal_var=False).pvalue
    verdict = "within seed noise at 5%" if p >= 0.05 else "beyond seed noise at 5%"
    return f"{seeds}; Welch's t-test p = {p:.2f}, {verdict}"


def comparison(ours: str, peer: str, found: dict) -> str:
    """aelab's row against its Keras peer, on the means over the seeds."""
    parts = []
    for name, label, higher_is_better in (("fd", "fd_classifier", False), ("elbo", "ELBO", True)):
        a, b = found[ours][name], found[peer][name]
        if a and b:
            a, b = statistics.mean(a), statistics.mean(b)
            better = (a > b) if higher_is_better else (a < b)
            parts.append(f"{label} {a:.2f} vs {b:.2f} ({'aelab' if better else 'Keras'} better)")
            if not better:
                parts[-1] += f" ({peer_lead(found[ours][name], found[peer][name])})"
    a, b = statistics.mean(found[ours]["training"]), statistics.mean(found[peer]["training"])
    pace = (
        "the same" if round(a) == round(b) else f"aelab {b / a:.2f}x faster" if a < b else f"aelab {a / b:.2f}x slower"
    )
    parts.append(f"training {a:.0f} s vs {b:.0f} s ({pace})")
    if found[ours]["macs"] and found[peer]["macs"]:
        parts.append(f"{found[ours]['macs'] / found[peer]['macs']:.2f}x the peer's multiply-accumulates per image")
    return f"`{ours}` against `{peer}`: " + "; ".join(parts)


def run_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The options this script shares with peers.py: which runs, where."""
    parser.add_argument("--data", default="fashion-mnist")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--runs", type=Path, default=Path("runs/generative"))
    parser.add_argument(
        "--ledger",
        type=Path,
        default=ROOT / "results" / "generative-runs.json",
        help="every finished run's measurements (committed)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = run_arguments(
        argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    )
    parser.add_argument(
        "--only", nargs="+", choices=[key for key, _, _ in RUNS if key not in PEERS.values()], help="rows to (re)train"
    )
    parser.add_argument("--results", type=Path, default=ROOT / "results" / "generative.md")
    parser.add_argument("--table-only", action="store_true", help="only rewrite the results from existing runs")
    args = parser.parse_args(argv)
    figures = args.results.parent / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    folder = lambda key, seed: args.runs / args.data / key / f"seed-{seed}"  # noqa: E731
    entries = read_ledger(args.ledger)
    try:
        for seed in args.seeds:
            for key, model, params in [run for run in RUNS if run[0] not in PEERS.values()]:
                out, name = folder(key, seed), ledger_key(args.data, key, seed)
                if (out / "metrics.json").is_file() and name not in entries:  # a run trained before the ledger
                    entries[name] = record(args.ledger, args.data, key, seed, out)
                if (key in args.only if args.only else name not in entries) and not args.table_only:
                    print(f"[generative] {key}, seed {seed} -> {out}", flush=True)
                    train_one(key, model, params, out, args.data, args.epochs, seed, args.ledger)
    except AelabError as error:
        print(f"generative: error: {error}", file=sys.stderr)
        return 2
    rows, images, found, entries = [], [], {}, read_ledger(args.ledger)
    for key, model, params in RUNS:
        runs = {
            s: entries[ledger_key(args.data, key, s)] for s in args.seeds if ledger_key(args.data, key, s) in entries
        }
        if not runs:
            continue
        text, found[key] = row_text(key, model, params, runs)
        rows.append(text)
        first = folder(key, next(iter(runs)))
        for png in ("samples.png", "manifold.png"):
            target = figures / f"{args.data}-{key}-{png}"
            if (first / png).is_file():
                shutil.copy(first / png, target)
            if target.is_file():
                images.append(f"![{key} {png[:-4]}, seed {first.name[5:]}](figures/{target.name})")
    command = f"python benchmarks/generative.py --data {args.data} --epochs {args.epochs} --seeds " + " ".join(
        map(str, args.seeds)
    )
    text = [
        f"# Generative models on {args.data}",
        "",
        f"Measured {datetime.date.today()} on this machine (2 CPU cores) by `{command}`: one `aelab train` per "
        "row and seed, default settings otherwise; each cell is the mean ± standard deviation over the seeds.",
        "",
        "ELBO and the IWAE bound (k = 100 importance samples) are in nats per image on the first 2,000 test",
        "images (higher is better; Bernoulli decoder on pixel intensities). `fd_classifier` is the Fréchet",
        "distance between 10,000 samples and the test set on the 128-d features of aelab's cached",
        "classifier (lower is better); its floor is the same distance between training and test images.",
        "*MACs* are the multiply-accumulates of one image through the networks once (a VAE's encoder and",
        "decoder, a GAN's generator and discriminator; dense and convolution layers), the model's size in compute.",
        "*eval* is the share of a run's wall time spent at the end on the bounds and the 10,000-sample",
        "distance; *collapse* counts the epochs that warned of a collapsing discriminator, over all seeds.",
        "`gan-sn` trains for the training time of `gan`'s run with the same seed (`--max-minutes`).",
        "The `keras-*` rows are the Keras peers (keras-io's VAE; a DCGAN with seed 3's tricks, sized as `gan`),",
        "trained by `python benchmarks/peers.py` on the same training images for the same epochs and measured by",
        "the same metrics; a row that is missing was not run. Every run's own numbers, settings and date are in",
        f"`{args.ledger.name}` beside this file.",
        "",
        "| run | model | MACs | seeds | epochs | training | wall | eval | ELBO | IWAE k=100 | fd_classifier | floor | "
        "collapse |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        *rows,
        "",
    ]
    one_off = max((f["one_off"] for f in found.values()), default=0.0)
    if one_off:
        text += [
            f"The first run on {args.data} also trained the feature classifier once ({one_off:.0f} s, inside "
            "its wall time; cached for every later run): the eval share leaves it out.",
            "",
        ]
    pairs = [f"- {comparison(ours, peer, found)}" for ours, peer in PEERS.items() if ours in found and peer in found]
    text += [*pairs, ""] if pairs else []
    if any("Keras better" in pair for pair in pairs) and (ROOT / "results" / "gan-keras-choices.md").exists():
        text += [
            "Where a Keras row leads, the defaults that differ between the frameworks were tried one at a time "
            "in `gan-keras-choices.md` (`python benchmarks/gan_keras_choices.py`); those that helped are aelab's "
            "defaults now, and the rows above were measured with them.",
            "",
        ]
    if all(found.get(key, {}).get("fd") for key in ("gan-sn", "keras-gan")):
        sn, keras = statistics.mean(found["gan-sn"]["fd"]), statistics.mean(found["keras-gan"]["fd"])
        times = [statistics.mean(found[key]["training"]) for key in ("gan-sn", "keras-gan")]
        text += [
            f"`gan-sn` against `keras-gan`: mean fd_classifier {sn:.2f} vs {keras:.2f}, "
            f"{100 * abs(1 - sn / keras):.0f}% {'lower' if sn < keras else 'higher'}, "
            f"in {times[0]:.0f} s of training against {times[1]:.0f} s.",
            "",
        ]
    stale = {key: stale_budgets(entries, args.data, key, other, args.seeds) for key, other in SAME_TIME_AS.items()}
    for key, seeds in stale.items():
        if seeds:
            other = SAME_TIME_AS[key]
            text += [
                f"`{key}`'s runs were trained for the time of `{other}` runs since replaced (seed, minutes "
                f"given vs `{other}`'s now: {seeds}): the two rows are not at the same training time until "
                f"`python benchmarks/generative.py --only {key}` retrains it.",
                "",
            ]
    if "gan" in found and "gan-sn" in found and found["gan"]["fd"] and found["gan-sn"]["fd"]:
        gan, sn = statistics.mean(found["gan"]["fd"]), statistics.mean(found["gan-sn"]["fd"])
        verdict = "met" if sn <= (1 - GOAL) * gan else "missed"
        when = "(not at the same training time, above)" if stale["gan-sn"] else "at the same training time"
        text += [
            f"`gan-sn` against `gan` {when}: mean fd_classifier {sn:.2f} vs {gan:.2f}, "
            f"{100 * (1 - sn / gan):.0f}% lower (goal: at least {100 * GOAL:.0f}%: {verdict}).",
            "",
        ]
    text += [f"{line}\n" for line in images]
    note = next(
        (
            entry["metrics"]["fid_note"]
            for name, entry in entries.items()
            if name.startswith(f"{args.data}/") and entry["metrics"].get("fid_note")
        ),
        None,
    )
    if note:
        text += [f"{note}."]
    args.results.write_text("\n".join(text) + "\n")
    print(f"wrote {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
