"""`aelab tune`, `probe`, `score`, `serve`, `export`, `activations`, `generate`, `style`."""

from __future__ import annotations

import argparse
from pathlib import Path

import aelab
from aelab import AelabError

from . import tables
from .options import (
    add_settings,
    api_choices,
    api_default,
    command,
    data_arguments,
    data_of,
    given,
    overwrite_argument,
    params_of,
    threads_argument,
    training_given,
    training_settings,
)


@command("tune", "search a model's hyperparameters with Optuna: each trial a run folder in STUDY_DIR/trials")
def cmd_tune(args: argparse.Namespace) -> None:
    if args.list:
        print(tables.study_table(aelab.tuning.load_study(args.out, args.storage), args.out))
        return
    settings = {**training_given(args), **params_of(args.model, args.param)}
    study, best = aelab.tune(
        args.model,
        out=args.out,
        trials=args.trials,
        data=data_of(args),
        space=args.space,
        metric=args.metric,
        sampler=args.sampler,
        pruning=args.pruning,
        storage=args.storage,
        resume=args.resume,
        workers=args.workers,
        **settings,
    )
    print(tables.summary_table(study))
    out = Path(args.out)
    if best is None:
        done = [t for t in study.trials if t.state.name == "COMPLETE"]
        if done:  # the best trial ran on another machine, with its own --out
            trial = study.best_trial
            print(
                f"best: trial {trial.number} ({study.best_value:.5g}), trained on {trial.user_attrs.get('host')} in "
                f"{trial.user_attrs.get('folder')}; table {out / 'trials.csv'}"
            )
        else:  # a study of failures is not a success: exit 2, the reasons in the table
            raise AelabError(f"no trial completed; each one's error is in {out / 'trials.csv'}")
        return
    print(
        f"best: {out / 'best'} -> {best.path.name} ({study.best_value:.5g}); table {out / 'trials.csv'}, "
        f"summary {out / 'summary.md'}"
    )


def _tune_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", nargs="?", help="registered model name (optional with --resume)")
    p.add_argument("--out", required=True, help="the study folder (trials/, study.db, best, trials.csv, plots)")
    p.add_argument(
        "--trials", type=int, default=20, help="trials to run (shared among --workers; with --resume, trials to add)"
    )
    p.add_argument(
        "--space",
        action="append",
        metavar="NAME=LOW:HIGH[:log] | NAME=A,B,C",
        help="search this setting or model parameter over a range or choices (over the model's "
        "default space; repeat for more)",
    )
    p.add_argument(
        "--metric", default="val_loss", help="per-epoch validation metric to optimise (val_accuracy is maximised)"
    )
    p.add_argument(
        "--sampler",
        default=api_default(aelab.tune, "sampler"),
        help=f"Optuna sampler: {', '.join(api_choices(aelab.tune, 'sampler'))}",
    )
    p.add_argument(
        "--pruning",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="stop trials whose validation loss lags the median (Optuna's MedianPruner)",
    )
    p.add_argument(
        "--storage",
        help="an Optuna storage URL shared by workers (postgresql://user:pw@host/db); "
        "default: SQLite in the study folder",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        help="worker processes on this machine, each with its share of the CPU threads",
    )
    p.add_argument("--resume", action="store_true", help="add --trials trials to the study in --out")
    p.add_argument(
        "--list",
        action="store_true",
        help="print the study's trials, with the machine and folder of "
        "each run, and stop (any machine that reaches its --storage)",
    )
    data_arguments(p, "the model's default")
    p.add_argument("--param", action="append", metavar="KEY=VALUE", help="a fixed model parameter for every trial")
    training_settings(p, "fixed training settings for every trial (e.g. --epochs 3)")


cmd_tune.arguments = _tune_arguments


@command("probe", "score a run's codes as features: a linear classifier on them, on PCA codes and on pixels")
def cmd_probe(args: argparse.Namespace) -> None:
    run = aelab.Run(args.run_dir)
    result = aelab.inference.probe(run, data_of(args))
    print(
        f"linear probe on {run.config.model}'s codes ({result['probe_code_size']} values; "
        f"{result['probe_images'][0]} training / {result['probe_images'][1]} test images):"
    )
    for label, key in (
        ("codes", "probe_accuracy"),
        (f"PCA, {result['probe_pca_components']} components", "probe_pca_accuracy"),
        ("pixels", "probe_pixels_accuracy"),
    ):
        print(f"  {label:<20} test accuracy {result[key]:.4f}")
    if data_of(args) is None:
        print(f"  added to {run.metrics_path}")


def _probe_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir")
    data_arguments(p, "the run's (the numbers are then printed, not written)")


cmd_probe.arguments = _probe_arguments


@command("score", "anomaly scores of image files: each one's reconstruction error, against a threshold")
def cmd_score(args: argparse.Namespace) -> None:
    result = aelab.anomaly.score_files(
        args.run_dir,
        args.images,
        threshold=args.threshold,
        contamination=args.contamination,
        maps=args.maps,
        worst=args.worst,
        csv_out=args.out,
        score=args.score,
        overwrite=args.overwrite,
        method=args.method,
    )
    width = max(len(row[0]) for row in result["rows"])
    print(f"{'image':<{width}}  {'score':>10}  outlier")
    for path, score, flag in result["rows"]:
        print(f"{path:<{width}}  {score:>10.5f}  {'yes' if flag else 'no'}")
    flagged = sum(flag for _, _, flag in result["rows"])
    print(
        f"{flagged} of {len(result['rows'])} above the threshold {result['threshold']:.5g} "
        f"({result['threshold_source']})"
    )
    print(
        f"error maps of the highest scores: {result['figure']}" + (f"; table: {result['csv']}" if result["csv"] else "")
    )


def _score_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("--out", help="write the scores to this .csv file (file,score,outlier)")
    p.add_argument(
        "--threshold",
        type=float,
        help="flag scores above this (default: from the run's validation images, see --contamination)",
    )
    p.add_argument(
        "--contamination",
        type=float,
        default=api_default(aelab.anomaly.score_files, "contamination"),
        help="the share of outliers the default threshold expects among normal images (PyOD's)",
    )
    p.add_argument("--maps", help="folder for the error-map figure of the highest scores (default RUN_DIR/anomaly)")
    overwrite_argument(p, "--out and --maps/worst.png")
    threads_argument(p)
    p.add_argument(
        "--worst",
        type=int,
        default=api_default(aelab.anomaly.score_files, "worst"),
        help="how many of the highest scores to draw",
    )
    p.add_argument(
        "--score",
        default=api_default(aelab.anomaly.score_files, "score"),
        choices=api_choices(aelab.anomaly.score_files, "score"),
        help="normalised: each pixel's squared error over its mean on the run's validation images "
        "(default); mse: the plain mean squared error (with --threshold, needs no data)",
    )
    p.add_argument(
        "--method",
        default=api_default(aelab.anomaly.score_files, "method"),
        choices=api_choices(aelab.anomaly.score_files, "method"),
        help="reconstruction: the error alone (fastest); neighbours: plus the distances to the "
        "5 nearest of the run's training images in pixels and codes; transformations: how badly a "
        "network trained on those images tells their rotations and shifts (GEOM); combined (default, "
        "most accurate): the two distances and transformations (trains the network first: tens of seconds)",
    )


cmd_score.arguments = _score_arguments


@command("serve", "a web page to explore trained runs: draw, reconstruct, denoise, score, walk the latent space")
def cmd_serve(args: argparse.Namespace) -> None:
    app = aelab.serve(args.runs, host=args.host, port=args.port, block=False)  # the port checked first
    print(f"serving {len(args.runs)} run(s) on http://{args.host}:{args.port} (Ctrl+C stops)", flush=True)
    app.block_thread()


def _serve_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("runs", nargs="+", metavar="RUN_DIR")
    p.add_argument("--port", type=int, default=api_default(aelab.serve, "port"))
    p.add_argument(
        "--host", default=api_default(aelab.serve, "host"), help="the address to listen on (0.0.0.0: every network)"
    )


cmd_serve.arguments = _serve_arguments


@command("export", "write a run's encoder, decoder, whole autoencoder, generator or anomaly detector as an ONNX file")
def cmd_export(args: argparse.Namespace) -> None:
    out = aelab.export(
        args.run_dir,
        args.out,
        part=args.part,
        format=args.format,
        overwrite=args.overwrite,
        contamination=args.contamination,
        score=args.score,
        method=args.method,
    )
    print(f"wrote {out} ({args.part}, {args.format}; batch size free, {out.stat().st_size / 1e6:.2f} MB)")


def _export_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir")
    p.add_argument("--out", required=True, help="the file to write (.onnx)")
    p.add_argument(
        "--part",
        default=api_default(aelab.export, "part"),
        choices=api_choices(aelab.export, "part"),
        help="encoder (images -> codes), decoder (codes -> images), both (images -> reconstructions), "
        "or a GAN's generator (latent points -> images), or detector (images -> anomaly scores, "
        "the threshold in the file's metadata)",
    )
    p.add_argument("--format", default=api_default(aelab.export, "format"), choices=api_choices(aelab.export, "format"))
    p.add_argument(
        "--contamination",
        type=float,
        default=api_default(aelab.export, "contamination"),
        help="--part detector: the share of the run's validation images above the threshold",
    )
    p.add_argument(
        "--score",
        default=api_default(aelab.export, "score"),
        choices=api_choices(aelab.export, "score"),
        help="--part detector: the anomaly score (see aelab score)",
    )
    p.add_argument(
        "--method",
        default=api_default(aelab.export, "method"),
        choices=api_choices(aelab.export, "method"),
        help="--part detector: reconstruction, neighbours, transformations or combined (see aelab score)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")


cmd_export.arguments = _export_arguments


@command("activations", "draw one layer's feature maps saved by --log-activations")
def cmd_activations(args: argparse.Namespace) -> None:
    if args.list:
        for name, array in aelab.inference.activations(args.run_dir, args.epoch).items():
            print(f"{name:<40} {tuple(array.shape[1:])}")
        return
    print(
        f"wrote {aelab.inference.activation_figure(args.run_dir, args.out, args.epoch, args.layer, args.image, args.overwrite)}"
    )


def _activations_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir")
    p.add_argument("--epoch", type=int, help="default: the last saved")
    p.add_argument("--layer", help="the layer's name (see --list); default: the first convolutional layer")
    p.add_argument(
        "--image",
        type=int,
        default=api_default(aelab.inference.activation_figure, "image"),
        help="which of the saved validation images (0-7)",
    )
    p.add_argument("--list", action="store_true", help="list the saved layers and their shapes")
    p.add_argument("--out", help="the PNG to write (default RUN_DIR/activations/epoch_NNN_LAYER.png)")
    overwrite_argument(p)


cmd_activations.arguments = _activations_arguments


@command("generate", "continue a prompt with a text run (char-lstm), at one or more temperatures")
def cmd_generate(args: argparse.Namespace) -> None:
    for temperature in args.temperature:
        text = aelab.generate(args.run_dir, args.prompt, args.length, temperature, args.seed)
        print(f"--- temperature {temperature}\n{args.prompt}{text}")


def _generate_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir")
    p.add_argument("--prompt", required=True, help="the text to continue (characters of the model's alphabet)")
    p.add_argument(
        "--length", type=int, default=api_default(aelab.generate, "length"), help="characters to generate (seed: 400)"
    )
    p.add_argument(
        "--temperature",
        type=float,
        nargs="+",
        default=[0.2, 0.5, 1.0, 1.2],
        help="sampling temperatures (seed: 0.2 0.5 1.0 1.2; 0 = always the likeliest)",
    )
    p.add_argument(
        "--seed", type=int, default=api_default(aelab.generate, "seed"), help="the same seed repeats the text"
    )


cmd_generate.arguments = _generate_arguments


@command("style", "neural style transfer (seed 3): paint CONTENT in the manner of STYLE with VGG19 features")
def cmd_style(args: argparse.Namespace) -> None:
    result, written = aelab.style.style_transfer_files(
        args.content,
        args.style,
        args.out,
        weights=args.weights,
        download=args.download,
        progress=args.progress,
        overwrite=args.overwrite,
        **given(args, aelab.settings.StyleSettings),
    )
    print(
        f"style transfer with {result.weights} VGG19 weights ({result.precision}): loss {result.initial_loss:.4g} "
        f"for the content image, {result.losses[-1]:.4g} after the last round ({len(result.losses)} rounds: "
        f"{result.rounds_by_height()}; {sum(result.seconds):.0f} s)"
    )
    print("wrote " + ", ".join(map(str, written)))


def _style_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("content", help="the image whose content is kept (any format and size)")
    p.add_argument("style", help="the image whose style is taken")
    p.add_argument("--out", required=True, help="the result, a .png (a -panel.png figure and a .json go beside it)")
    overwrite_argument(p, "--out and the files beside it")
    p.add_argument("--weights", help="a torchvision vgg19 state dict (.pth), read weights-only")
    p.add_argument("--download", action="store_true", help="fetch torchvision's ImageNet VGG19 weights if not cached")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True)
    threads_argument(p)
    add_settings(p, aelab.settings.StyleSettings, "style-transfer settings (default: the seed's, run as a pyramid)")


cmd_style.arguments = _style_arguments
