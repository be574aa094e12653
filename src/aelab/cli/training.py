"""`aelab train`, `eval`, `ensemble`, `demo`, `report`: runs made, measured and compared."""

from __future__ import annotations

import argparse

import aelab

from . import tables
from .options import (
    add_settings,
    api_default,
    command,
    data_arguments,
    data_of,
    given,
    overwrite_argument,
    params_of,
    plain,
    progress_arguments,
    threads_argument,
    training_given,
    training_settings,
)


@command("train", "train a model into a run folder, then evaluate it")
def cmd_train(args: argparse.Namespace) -> None:
    settings = {**training_given(args), **given(args, aelab.EvalSettings)}
    config = aelab.settings.read_train_config(args.config) if args.config else None
    model = args.model or (config.model if config else None)
    run = aelab.train(
        args.model,
        data=data_of(args),
        out=args.out,
        resume=args.resume,
        overwrite=args.overwrite,
        progress=args.progress,
        accelerator=args.accelerator,
        config=config,
        **settings,
        **params_of(model, args.param),
    )
    if aelab.distributed.is_main_process():  # the other processes of a multi-process run leave the report to it
        print(aelab.evaluation.run_report(run))


def _train_arguments(p: argparse.ArgumentParser) -> None:
    info = getattr(p, "model_info", None)  # `aelab train MODEL --help`: that model's defaults
    p.add_argument(
        "model",
        nargs="?",
        help="registered model name (optional with --resume or --config); "
        "`aelab train MODEL --help` shows its defaults",
    )
    p.add_argument("--out", required=True, help="run folder to create")
    p.add_argument(
        "--config",
        metavar="FILE",
        help="a .toml or .json file of model, data, [train], [eval] and "
        "[params] (a run's config.json trains it again); flags override it",
    )
    data_arguments(p, "mnist-sample (pydoc-topics for text models), or the run's with --resume")
    p.add_argument("--text", help="text models: a UTF-8 text file to train on")
    params = (
        f"; {info['name']}'s: " + ", ".join(f"{k}={plain(v)}" for k, v in info["params"].items()).replace("%", "%%")
        if info
        else ", e.g. channels=32,32,16"
    )
    p.add_argument("--param", action="append", metavar="KEY=VALUE", help=f"a model parameter{params}")
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out from its last checkpoint (only --epochs may change)",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the run in --out, once the new one has trained (only an aelab run folder)",
    )
    progress_arguments(p)
    p.add_argument("--accelerator", choices=("auto", "cpu", "gpu"), default="auto")
    training_settings(
        p,
        f"training settings of every model ({info['name']}'s defaults in brackets)"
        if info
        else "training settings of every model (default: the model's own; `aelab train MODEL --help` shows them)",
        info,
    )
    add_settings(p, aelab.EvalSettings, "evaluation after training (default: sized to a small share of training)")


cmd_train.arguments = _train_arguments


@command("eval", "measure a trained run on its test split; write metrics.json and figures")
def cmd_eval(args: argparse.Namespace) -> None:
    metrics = aelab.evaluate(args.run_dir, progress=args.progress, **given(args, aelab.EvalSettings))
    print(aelab.evaluation.run_report(args.run_dir, metrics))


def _eval_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir")
    progress_arguments(p)
    threads_argument(p)
    add_settings(p, aelab.EvalSettings, "what to measure (default: sized to a small share of training)")


cmd_eval.arguments = _eval_arguments


@command("ensemble", "average several runs' reconstructions; metrics for the ensemble and each member")
def cmd_ensemble(args: argparse.Namespace) -> None:
    result = aelab.ensemble(args.run_dirs, data_of(args), out=args.out, overwrite=args.overwrite)
    print(tables.ensemble_table(result))
    if args.out:
        print(f"wrote {args.out}")


def _ensemble_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    data_arguments(p, "the first member's")
    p.add_argument("--out", help="write the result to this .json file")
    overwrite_argument(p)


cmd_ensemble.arguments = _ensemble_arguments


@command(
    "demo",
    "the seeds reproduced: seed 1's model at the seed's steps, its denoiser and best, beside PCA; "
    "a table and a report page",
)
def cmd_demo(args: argparse.Namespace) -> None:
    rows, page = aelab.demo(
        args.out, data=args.data, overwrite=args.overwrite, progress=args.progress, quick=args.quick
    )
    print(tables.demo_table(rows))
    print(f"report: {page}")


def _demo_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--out",
        default=api_default(aelab.demo, "out"),
        help="seed 1's run folder; the others go beside it (OUT-denoise, OUT-best) (default: %(default)s)",
    )
    p.add_argument(
        "--data", default=api_default(aelab.demo, "data"), help="a dataset name or folder (default: %(default)s)"
    )
    p.add_argument("--quick", action="store_true", help="2 epochs a run: to try the command, not to reproduce")
    progress_arguments(p)
    overwrite_argument(p)


cmd_demo.arguments = _demo_arguments


@command(
    "report", "one self-contained HTML page about runs: metrics beside PCA and the seeds' numbers, curves, figures"
)
def cmd_report(args: argparse.Namespace) -> None:
    print(f"wrote {aelab.report(args.run_dirs, args.out, overwrite=args.overwrite)}")


def _report_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    p.add_argument(
        "--out", default=api_default(aelab.report, "out"), help="the page to write, a .html file (default: %(default)s)"
    )
    overwrite_argument(p)


cmd_report.arguments = _report_arguments
