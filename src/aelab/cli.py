"""The `aelab` command. Thin: parse, call the API, print. Errors in input become one line and exit 2."""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import typing
from pathlib import Path
from typing import Any, Callable

from .errors import AelabError

COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None]]] = {}


def command(name: str, help_text: str):
    """Register ``func(args)`` as a sub-command; ``func.arguments(parser)`` adds its flags."""

    def decorate(func):
        COMMANDS[name] = (help_text, func)
        return func

    return decorate


# --------------------------------------------------------------------------- flags from TrainOptions

TRAIN_HELP = {
    "data": "dataset name (see `aelab datasets`); default mnist-sample",
    "data_dir": "folder of local data: IDX files, images, or .npy/.npz arrays",
    "epochs": "number of epochs (default: the model's)",
    "batch_size": "batch size (default: the model's)",
    "lr": "learning rate (default: the model's)",
    "loss": "bce or mse (default: the model's)",
    "optimizer": "adam, adadelta, rmsprop or sgd (default: the model's)",
    "noise": "denoising: Gaussian noise factor added to inputs, clipped to [0, 1]",
    "sparsity": "L1 penalty on the code (Keras activity_regularizer)",
    "schedule": "learning-rate schedule: plateau (reduce on plateau) or cosine (default: the model's)",
    "kl_form": "VAEs: elbo (summed per image) or seed (seed 3's per-pixel mean)",
    "kl_weight": "VAEs: weight of the KL term (beta; the seed's preset uses 5e-4)",
    "d_lr": "GANs: the discriminator's learning rate (default 2 x --lr, the seed's ratio)",
    "seed": "random seed",
    "precision": "auto (bf16 autocast where the hardware has it), 32, bf16-mixed or 16-mixed",
    "channels_last": "channels-last memory format (default: on for CPU)",
    "early_stopping": "stop when val_loss has not improved for --patience epochs",
    "patience": "early-stopping patience in epochs",
    "reduce_lr": "divide the learning rate by 10 when val_loss stalls for --lr-patience epochs",
    "lr_patience": "reduce-LR-on-plateau patience in epochs",
    "val_fraction": "fraction of the training images held out for validation",
    "resume": "continue the run in --out from its last checkpoint",
    "overwrite": "replace the run already in --out",
    "progress": "show a progress bar",
    "accelerator": "auto, cpu or gpu",
}


def add_options(parser: argparse.ArgumentParser, options_class: type, skip: set[str]) -> None:
    """One flag per dataclass field, typed from its annotation: the options class is the only list."""
    hints = typing.get_type_hints(options_class)
    for f in dataclasses.fields(options_class):
        if f.name in skip:
            continue
        flag = "--" + f.name.replace("_", "-")
        hint = hints[f.name]
        args = typing.get_args(hint)
        base = next((a for a in args if a is not type(None)), hint) if args and typing.get_origin(hint) is not typing.Literal else hint
        default = f.default if f.default is not dataclasses.MISSING else None
        kwargs: dict[str, Any] = {"help": TRAIN_HELP.get(f.name), "default": default}
        if base is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, **kwargs)
        elif typing.get_origin(hint) is typing.Literal:
            parser.add_argument(flag, choices=typing.get_args(hint), **kwargs)
        else:
            parser.add_argument(flag, type=base if base in (int, float) else str, **kwargs)


def _params(model: str | None, texts: list[str] | None) -> dict[str, Any]:
    from .registry import parse_param

    if texts and not model:
        raise AelabError("--param needs a model name")
    return dict(parse_param(model, text) for text in texts or [])


# --------------------------------------------------------------------------- commands


@command("models", "list the registered models")
def cmd_models(args: argparse.Namespace) -> None:
    from .registry import get_entry, list_models

    names = list_models(args.pattern)
    width = max(map(len, names), default=0)
    for name in names:
        print(f"{name:<{width}}  {get_entry(name).description}")


cmd_models.arguments = lambda p: p.add_argument("pattern", nargs="?", default="*", help="shell pattern, e.g. 'conv*'")


@command("datasets", "list the dataset names --data accepts")
def cmd_datasets(args: argparse.Namespace) -> None:
    from .data import DATASETS

    width = max(map(len, DATASETS))
    for name, (description, _) in DATASETS.items():
        print(f"{name:<{width}}  {description}")
    print(f"{'--data-dir':<{width}}  a folder of IDX files, images (any size/mode) or .npy/.npz arrays")


cmd_datasets.arguments = lambda p: None


@command("summary", "print a model's layers with output shapes and parameter counts")
def cmd_summary(args: argparse.Namespace) -> None:
    from .registry import create_model
    from .summary import format_summary

    model = create_model(args.model, **_params(args.model, args.param))
    print(format_summary(model, model.input_shape, f"{args.model} ({type(model).__name__})"))


def _summary_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model")
    p.add_argument("--param", action="append", metavar="KEY=VALUE", help="a model parameter, e.g. channels=32,32,16")


cmd_summary.arguments = _summary_arguments


@command("train", "train a model into a run folder, then evaluate it")
def cmd_train(args: argparse.Namespace) -> None:
    from .training import TrainOptions, train

    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainOptions) if hasattr(args, f.name)}
    values["params"] = _params(args.model, args.param)
    values["out"] = Path(args.out)
    metrics = train(TrainOptions(**values))
    report(Path(args.out), metrics)


def _train_arguments(p: argparse.ArgumentParser) -> None:
    from .training import TrainOptions

    p.add_argument("model", nargs="?", help="registered model name (optional with --resume)")
    p.add_argument("--out", required=True, help="run folder to create")
    p.add_argument("--param", action="append", metavar="KEY=VALUE", help="a model parameter, e.g. channels=32,32,16")
    add_options(p, TrainOptions, skip={"model", "out", "params"})


cmd_train.arguments = _train_arguments


@command("eval", "measure a trained run on its test split; write metrics.json and figures")
def cmd_eval(args: argparse.Namespace) -> None:
    from .evaluation import evaluate

    report(Path(args.run_dir), evaluate(args.run_dir))


cmd_eval.arguments = lambda p: p.add_argument("run_dir")


@command("ensemble", "average several runs' reconstructions; metrics for the ensemble and each member")
def cmd_ensemble(args: argparse.Namespace) -> None:
    import json

    from .evaluation import ensemble, run_data
    from .runs import Run

    data = None
    if args.data or args.data_dir:
        data = run_data(Run(args.run_dirs[0]).config(), args.data, args.data_dir)
    result = ensemble(args.run_dirs, data)
    print(f"{'member':<40} {'code':>6} {'test_rmse':>10} {'test_bce':>9} {'pca_rmse':>9}")
    for row in result["members"]:
        print(f"{row['run'][-40:]:<40} {row['code_size']:>6} {row['test_rmse']:>10.4f} {row['test_bce']:>9.4f} "
              f"{row['pca_rmse']:>9.4f}")
    print(f"{'ensemble (mean of reconstructions)':<40} {result['code_size']:>6} {result['test_rmse']:>10.4f} "
          f"{result['test_bce']:>9.4f} {result['pca_rmse']:>9.4f}")
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {out}")


def _ensemble_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    p.add_argument("--data", help="dataset to measure on (default: the first member's)")
    p.add_argument("--data-dir")
    p.add_argument("--out", help="write the result as JSON here")


cmd_ensemble.arguments = _ensemble_arguments


def report(run_dir: Path, metrics: dict[str, Any]) -> None:
    """The lines a user looks for after training: our error beside the PCA floor, and where things are."""
    print(f"\n{metrics['model']} on {metrics['data']} ({metrics['test_images']} test images):")
    if "test_rmse" in metrics:
        if metrics["rmse_vs_pca"] is None:
            verdict = f"PCA with {metrics['code_size']} components is lossless here (the code is as large as the image)"
        else:
            verdict = (f"{'beats' if metrics['test_rmse'] < metrics['pca_rmse'] else 'does not beat'} PCA with "
                       f"{metrics['code_size']} components ({metrics['rmse_vs_pca']:.2f}x)")
        print(f"  test_rmse {metrics['test_rmse']:.4f}   pca_rmse {metrics['pca_rmse']:.4f}   -> {verdict}")
        print(f"  test_bce {metrics['test_bce']:.4f}   test_psnr {metrics['test_psnr']:.2f} dB   "
              f"test_ssim {metrics['test_ssim']:.3f}")
    if "noisy_input_rmse" in metrics:
        print(f"  noisy input rmse {metrics['noisy_input_rmse']:.4f} (noise factor {metrics['noise']})")
    if "test_elbo" in metrics:
        iwae = next(k for k in metrics if k.startswith("test_iwae"))
        print(f"  test ELBO {metrics['test_elbo']:.1f} nats (reconstruction {metrics['test_recon_nats']:.1f}, "
              f"KL {metrics['test_kl_nats']:.1f}); {iwae.removeprefix('test_')} log-likelihood bound "
              f"{metrics[iwae]:.1f} nats ({metrics['bound_images']} images)")
    if metrics.get("fd_classifier") is not None:
        print(f"  fd_classifier {metrics['fd_classifier']:.2f} (floor, train vs test: "
              f"{metrics['fd_classifier_floor']:.2f})")
    for note in ("fd_note", "fid_note"):
        if metrics.get(note):
            print(f"  {metrics[note]}")
    figures = ", ".join(sorted(p.name for p in run_dir.glob("*.png")))
    print(f"  metrics: {run_dir / 'metrics.json'}\n  figures: {run_dir}/ ({figures})")


def _write_images(images, paths: list[str], out: Path, suffix: str) -> list[Path]:
    from torchvision.utils import save_image

    out.mkdir(parents=True, exist_ok=True)
    written = []
    for image, source in zip(images, paths):
        target = out / f"{Path(source).stem}_{suffix}.png"
        save_image(image.clamp(0, 1), target)
        written.append(target)
    return written


def _image_command(args: argparse.Namespace, mode: str) -> None:
    from . import figures
    from .accel import choose_precision
    from .data import add_noise, read_images
    from .metrics import reconstruct
    from .runs import Run

    model = Run(args.run_dir).load_model()
    channels, size = model.input_shape[0], model.input_shape[1]
    images = read_images(args.images, channels, size)
    inputs = add_noise(images, args.noise) if getattr(args, "noise", 0) else images
    outputs, _ = reconstruct(model, inputs, precision=choose_precision(args.precision, "cpu"))
    out = Path(args.out)
    written = _write_images(outputs, args.images, out, "denoised" if mode == "denoise" else "recon")
    rows, labels = [inputs, outputs], ["input", "denoised" if mode == "denoise" else "reconstruction"]
    figures.image_rows(rows, labels, out / f"{mode}.png")
    print(f"wrote {len(written)} image(s) and {out / f'{mode}.png'}")


@command("reconstruct", "encode and decode image files with a trained run")
def cmd_reconstruct(args: argparse.Namespace) -> None:
    _image_command(args, "reconstruct")


def _image_arguments(p: argparse.ArgumentParser, noise: bool = False) -> None:
    p.add_argument("run_dir")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("--out", required=True, help="folder for the output PNGs")
    p.add_argument("--precision", default="auto", help="auto (bf16 where the CPU has it: images are 8-bit anyway) or 32")
    if noise:
        p.add_argument("--noise", type=float, default=0.0, help="add this much noise first (to try the model)")


cmd_reconstruct.arguments = _image_arguments


@command("denoise", "remove noise from image files with a trained (denoising) run")
def cmd_denoise(args: argparse.Namespace) -> None:
    _image_command(args, "denoise")


cmd_denoise.arguments = lambda p: _image_arguments(p, noise=True)


@command("encode", "write the codes of a dataset's images to a .npy file")
def cmd_encode(args: argparse.Namespace) -> None:
    import numpy as np

    from .accel import choose_precision
    from .evaluation import run_data
    from .metrics import reconstruct
    from .runs import Run

    out = Path(args.out)
    if out.suffix != ".npy":
        raise AelabError(f"--out must name a .npy file, got {out}")
    run = Run(args.run_dir)
    model = run.load_model()
    data = run_data(run.config(), args.data, args.data_dir)
    images = {"train": data.train, "test": data.test}.get(args.split)
    if images is None:
        import torch

        images = torch.cat([data.train, data.test])
    _, codes = reconstruct(model, images, precision=choose_precision(args.precision, "cpu"))
    out.parent.mkdir(parents=True, exist_ok=True)
    np.save(out, codes.flatten(1).numpy())
    print(f"wrote {out}: {len(codes)} codes of size {codes[0].numel()} ({args.split} split of {data.name})")


def _encode_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir")
    p.add_argument("--data", help="dataset (default: the run's)")
    p.add_argument("--data-dir")
    p.add_argument("--split", choices=("train", "test", "all"), default="test")
    p.add_argument("--out", required=True, help="the .npy file to write")
    p.add_argument("--precision", default="32", help="32 (exact codes, the default) or auto (bf16 where supported)")


cmd_encode.arguments = _encode_arguments


def _out_png(args: argparse.Namespace, default: str) -> Path:
    out = Path(args.out or Path(args.run_dir) / default)
    if out.suffix.lower() != ".png":
        raise AelabError(f"--out must name a .png file, got {out}")
    return out


def _run_arguments(p: argparse.ArgumentParser, default: str) -> None:
    p.add_argument("run_dir")
    p.add_argument("--out", help=f"the PNG to write (default RUN_DIR/{default})")


@command("sample", "draw new images from a generative run (vae, gan) as a grid")
def cmd_sample(args: argparse.Namespace) -> None:
    from . import figures, latent
    from .runs import Run

    out = _out_png(args, "samples.png")
    images = latent.samples(Run(args.run_dir).load_model(), args.n, args.seed)
    figures.grid(images, out, nrow=math.ceil(math.sqrt(args.n)))
    print(f"wrote {out} ({args.n} samples)")


def _sample_arguments(p: argparse.ArgumentParser) -> None:
    _run_arguments(p, "samples.png")
    p.add_argument("-n", type=int, default=100, help="number of samples")
    p.add_argument("--seed", type=int, default=0)


cmd_sample.arguments = _sample_arguments


@command("manifold", "decode a grid over the prior's quantiles of a 2-D latent space")
def cmd_manifold(args: argparse.Namespace) -> None:
    from . import figures, latent
    from .runs import Run

    out = _out_png(args, "manifold.png")
    images = latent.manifold(Run(args.run_dir).load_model(), args.grid)
    figures.grid(images, out, nrow=args.grid)
    print(f"wrote {out} ({args.grid}x{args.grid} points)")


def _manifold_arguments(p: argparse.ArgumentParser) -> None:
    _run_arguments(p, "manifold.png")
    p.add_argument("--grid", type=int, default=15, help="points per side")


cmd_manifold.arguments = _manifold_arguments


@command("latent", "scatter a dataset's test codes in 2-D, coloured by label")
def cmd_latent(args: argparse.Namespace) -> None:
    from . import figures, latent
    from .evaluation import run_data
    from .runs import Run

    out = _out_png(args, "latent.png")
    run = Run(args.run_dir)
    model = run.load_model()
    config = run.config()
    data = run_data(config, args.data, args.data_dir)
    points, labels, axes = latent.codes_2d(model, data, args.limit)
    figures.scatter(points, labels, out, f"{config['model']}: {data.name} test codes", axes)
    print(f"wrote {out} ({len(points)} codes, axes: {axes[0]}, {axes[1]})")


def _latent_arguments(p: argparse.ArgumentParser) -> None:
    _run_arguments(p, "latent.png")
    p.add_argument("--data", help="dataset (default: the run's)")
    p.add_argument("--data-dir")
    p.add_argument("--limit", type=int, default=5000, help="at most this many test images")


cmd_latent.arguments = _latent_arguments


@command("interpolate", "decode the straight path between the codes of two images (or two prior points)")
def cmd_interpolate(args: argparse.Namespace) -> None:
    import torch

    from . import figures, latent
    from .data import read_images
    from .runs import Run

    out = _out_png(args, "interpolation.png")
    model = Run(args.run_dir).load_model()
    if len(args.images) not in (0, 2):
        raise AelabError(f"give two images (or none, for a generative model), got {len(args.images)}")
    ends = [None, None]
    if args.images:
        batch = read_images(args.images, model.input_shape[0], model.input_shape[1])
        ends = [batch[:1], batch[1:]]
    path = latent.interpolate(model, *ends, steps=args.steps, seed=args.seed)
    if args.images:
        path = torch.cat([ends[0], path, ends[1]])
    figures.grid(path, out, nrow=len(path))
    print(f"wrote {out} ({args.steps} steps{', framed by the two inputs' if args.images else ''})")


def _interpolate_arguments(p: argparse.ArgumentParser) -> None:
    _run_arguments(p, "interpolation.png")
    p.add_argument("images", nargs="*", metavar="IMAGE", help="IMAGE_A IMAGE_B")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--seed", type=int, default=0, help="for the prior points when no images are given")


cmd_interpolate.arguments = _interpolate_arguments


# --------------------------------------------------------------------------- entry point


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(prog="aelab", description="Autoencoders and generative models of images.")
    parser.add_argument("--version", action="version", version=f"aelab {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (help_text, func) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        func.arguments(p)
        p.set_defaults(func=func)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        from .accel import keep_freed_memory

        keep_freed_memory()  # a CLI command owns its process
        args.func(args)
    except AelabError as error:
        print(f"aelab {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"aelab {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
