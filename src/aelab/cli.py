"""The `aelab` command. Thin: parse, call the API, print. Errors in input become one line and exit 2.

Every command calls names that ``import aelab`` exports, and nothing else of aelab's (a test
checks it); options that the API also has take their defaults and choices from its signature.
Each sub-command's flags are added only when that command runs, so ``aelab --help`` loads no torch.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aelab
from aelab import AelabError, from_cli

COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None]]] = {}


def command(name: str, help_text: str):
    """Register ``func(args)`` as a sub-command; ``func.arguments(parser)`` adds its flags."""

    def decorate(func):
        COMMANDS[name] = (help_text, func)
        return func

    return decorate


# --------------------------------------------------------------------------- flags from TrainSettings


def add_settings(parser: argparse.ArgumentParser, settings_class: type, title: str,
                 model: dict[str, Any] | None = None) -> None:
    """One flag per field of a settings dataclass (:class:`~aelab.config.TrainSettings`,
    :class:`~aelab.config.StyleSettings`), typed and described there: the class is the only list.
    Every flag defaults to None, "not given": the model's (or the seed's) own setting. ``model``
    (``aelab.model_info``'s, for ``aelab train MODEL --help``): each flag's help ends with that
    model's default, or says the model does not use it."""
    import dataclasses

    group = parser.add_argument_group(title)
    hints = typing.get_type_hints(settings_class)
    for f in dataclasses.fields(settings_class):
        hint = hints[f.name]
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        base = hint if typing.get_origin(hint) in (typing.Literal, tuple) or not args else args[0]
        flag = "--" + f.name.replace("_", "-")
        text = f.metadata["help"]
        if model is not None:
            text += (f" [{model['name']}: {_plain(model['train'][f.name])}]" if f.name in model["train"]
                     else f" [not used by {model['name']}]")
        kwargs: dict[str, Any] = {"help": text.replace("%", "%%"), "default": None, "dest": f.name}
        if base is bool:
            group.add_argument(flag, action=argparse.BooleanOptionalAction, **kwargs)
        elif typing.get_origin(base) is typing.Literal:  # checked by the dataclass: one line, not argparse's two
            group.add_argument(flag, metavar="{" + ",".join(typing.get_args(base)) + "}", **kwargs)
        elif typing.get_origin(base) is dict:  # "name=number,..." parsed by the dataclass
            group.add_argument(flag, metavar="NAME=W,...", **kwargs)
        elif typing.get_origin(base) is tuple:  # "a,b,c"; "none": an empty list
            group.add_argument(flag, type=_listed, metavar="A,B,...", **kwargs)
        else:
            group.add_argument(flag, type=base, **kwargs)


def _listed(text: str) -> tuple[str, ...]:
    return () if text.strip().lower() == "none" else tuple(part.strip() for part in text.split(",") if part.strip())


def _given(args: argparse.Namespace, settings_class: type) -> dict[str, Any]:
    """The settings flags the user gave."""
    import dataclasses

    return {f.name: getattr(args, f.name) for f in dataclasses.fields(settings_class)
            if getattr(args, f.name, None) is not None}


def _params(model: str | None, texts: list[str] | None) -> dict[str, Any]:
    if texts and not model:
        raise AelabError("--param needs a model name")
    return dict(aelab.parse_param(model, text) for text in texts or [])


def _default(func: Callable, name: str) -> Any:
    """The API's default for ``name``: the CLI's option has the same one."""
    import inspect

    return inspect.signature(func).parameters[name].default


def _choices(func: Callable, name: str) -> tuple[str, ...]:
    """The values of a ``Literal`` parameter of the API."""
    return typing.get_args(typing.get_type_hints(func)[name])


def _progress_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--progress", choices=("auto", "bar", "epoch", "none"), default="auto",
                   help="bar: a progress bar; epoch: a line per epoch and per evaluation stage (what a log file "
                        "wants); none: quiet; auto (default): bar on a terminal, else epoch")
    p.add_argument("--no-progress", dest="progress", action="store_const", const="none", help="same as --progress none")


def _data(args: argparse.Namespace):
    """--data NAME, --data-dir DIR or --text FILE as the API's one ``data`` argument (None: the
    default, or the run's)."""
    given = [value for value in (args.data, args.data_dir, getattr(args, "text", None)) if value is not None]
    if len(given) > 1:
        raise AelabError("give one of --data, --data-dir and --text")
    return args.data if args.data is not None else Path(given[0]) if given else None


def _data_arguments(p: argparse.ArgumentParser, default: str) -> None:
    p.add_argument("--data", help=f"dataset name (see `aelab datasets`; default: {default})")
    p.add_argument("--data-dir", help="folder of local data: IDX files, images, or .npy/.npz arrays")


# --------------------------------------------------------------------------- commands


@command("models", "list the registered models (--verbose: each one's training defaults and parameters)")
def cmd_models(args: argparse.Namespace) -> None:
    if args.verbose:
        names = aelab.list_models(args.pattern)
        if not names:
            raise AelabError(f"no model matches {args.pattern!r}; see `aelab models`")
        for name in names:
            info = aelab.model_info(name)
            print(f"{info['name']} ({info['family']}): {info['description']}")
            for title, values in (("training defaults", info["train"]), ("parameters", info["params"])):
                text = ", ".join(f"{k}={_plain(v)}" for k, v in values.items())
                print(f"  {title}: {text}")
        return
    models, aliases = aelab.catalog(args.pattern)
    width = max(map(len, [*models, *aliases]), default=0)
    for name, description in models.items():
        print(f"{name:<{width}}  {description}")
    for alias, name in aliases.items():
        print(f"{alias:<{width}}  another name for {name}")


def _plain(value: Any) -> str:
    """A setting's value as the command line writes it."""
    if isinstance(value, (tuple, list)):
        return ",".join(map(str, value))
    if isinstance(value, dict):
        return ",".join(f"{k}={v:g}" for k, v in value.items())
    return "none" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


def _models_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("pattern", nargs="?", default="*", help="a model name or shell pattern, e.g. 'conv*'")
    p.add_argument("--verbose", "-v", action="store_true", help="each model's training defaults and parameters")


cmd_models.arguments = _models_arguments


@command("datasets", "list the dataset names --data accepts")
def cmd_datasets(args: argparse.Namespace) -> None:
    datasets = aelab.list_datasets()
    width = max(map(len, datasets))
    for name, description in datasets.items():
        print(f"{name:<{width}}  {description}")
    print(f"{'--data-dir':<{width}}  a folder of IDX files, images (any size/mode) or .npy/.npz arrays")
    print(f"{'--text':<{width}}  a UTF-8 text file, for text models")


cmd_datasets.arguments = lambda p: None


@command("summary", "print a model's layers with output shapes and parameter counts")
def cmd_summary(args: argparse.Namespace) -> None:
    model = aelab.create_model(args.model, **_params(args.model, args.param))
    title = f"{args.model} ({type(model).__name__})"
    if args.graph:
        print(f"wrote {aelab.draw_graph(model, args.graph, title, args.depth)}")
        return
    print(aelab.format_summary(model, title))


def _summary_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model")
    p.add_argument("--param", action="append", metavar="KEY=VALUE", help="a model parameter, e.g. channels=32,32,16")
    p.add_argument("--graph", metavar="PNG", help="draw the model's graph to this PNG instead (needs Graphviz's dot)")
    p.add_argument("--depth", type=int, default=3, help="--graph: how many levels of nested modules to open")


cmd_summary.arguments = _summary_arguments


@command("train", "train a model into a run folder, then evaluate it")
def cmd_train(args: argparse.Namespace) -> None:
    settings = {**_given(args, aelab.TrainSettings), **_given(args, aelab.EvalSettings)}
    config = aelab.read_train_config(args.config) if args.config else None
    model = args.model or (config.model if config else None)
    run = aelab.train(args.model, data=_data(args), out=args.out, resume=args.resume, overwrite=args.overwrite,
                      progress=args.progress, accelerator=args.accelerator, config=config, **settings,
                      **_params(model, args.param))
    if aelab.is_main_process():  # the other processes of a multi-process run leave the report to it
        print(aelab.run_report(run))


def _train_arguments(p: argparse.ArgumentParser) -> None:
    info = getattr(p, "model_info", None)  # `aelab train MODEL --help`: that model's defaults
    p.add_argument("model", nargs="?", help="registered model name (optional with --resume or --config); "
                                            "`aelab train MODEL --help` shows its defaults")
    p.add_argument("--out", required=True, help="run folder to create")
    p.add_argument("--config", metavar="FILE", help="a .toml or .json file of model, data, [train], [eval] and "
                                                    "[params] (a run's config.json trains it again); flags override it")
    _data_arguments(p, "mnist-sample (pydoc-topics for text models), or the run's with --resume")
    p.add_argument("--text", help="text models: a UTF-8 text file to train on")
    params = (f"; {info['name']}'s: " + ", ".join(f"{k}={_plain(v)}" for k, v in info["params"].items())
              if info else ", e.g. channels=32,32,16")
    p.add_argument("--param", action="append", metavar="KEY=VALUE", help=f"a model parameter{params}")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint "
                                                         "(only --epochs may change)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the run in --out, once the new one has trained (only an aelab run folder)")
    _progress_arguments(p)
    p.add_argument("--accelerator", choices=("auto", "cpu", "gpu"), default="auto")
    add_settings(p, aelab.TrainSettings, f"training settings ({info['name']}'s defaults in brackets)" if info else
                 "training settings (default: the model's own; `aelab train MODEL --help` shows them)", info)
    add_settings(p, aelab.EvalSettings, "evaluation after training (default: sized to a small share of training)")


cmd_train.arguments = _train_arguments


@command("eval", "measure a trained run on its test split; write metrics.json and figures")
def cmd_eval(args: argparse.Namespace) -> None:
    metrics = aelab.evaluate(args.run_dir, progress=args.progress, **_given(args, aelab.EvalSettings))
    print(aelab.run_report(args.run_dir, metrics))


def _threads_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--threads", type=int, dest="inference_threads", metavar="N",
                   help="CPU threads: a number fixes it (results then repeat bit for bit); default: the count that "
                        "runs fastest, measured as it goes (fewer when another program keeps the CPU busy)")


def _eval_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir")
    _progress_arguments(p)
    _threads_argument(p)
    add_settings(p, aelab.EvalSettings, "what to measure (default: sized to a small share of training)")


cmd_eval.arguments = _eval_arguments


@command("ensemble", "average several runs' reconstructions; metrics for the ensemble and each member")
def cmd_ensemble(args: argparse.Namespace) -> None:
    result = aelab.ensemble(args.run_dirs, _data(args), out=args.out, overwrite=args.overwrite)
    print(aelab.ensemble_table(result))
    if args.out:
        print(f"wrote {args.out}")


def _ensemble_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    _data_arguments(p, "the first member's")
    p.add_argument("--out", help="write the result to this .json file")
    _overwrite_argument(p)


cmd_ensemble.arguments = _ensemble_arguments


@command("demo", "the seeds reproduced: seed 1's model at the seed's steps, its denoiser and best, beside PCA; "
                 "a table and a report page")
def cmd_demo(args: argparse.Namespace) -> None:
    rows, page = aelab.demo(args.out, data=args.data, overwrite=args.overwrite, progress=args.progress,
                            quick=args.quick)
    print(aelab.demo_table(rows))
    print(f"report: {page}")


def _demo_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default=_default(aelab.demo, "out"),
                   help="seed 1's run folder; the others go beside it (OUT-denoise, OUT-best) (default: %(default)s)")
    p.add_argument("--data", default=_default(aelab.demo, "data"), help="a dataset name or folder (default: %(default)s)")
    p.add_argument("--quick", action="store_true", help="2 epochs a run: to try the command, not to reproduce")
    _progress_arguments(p)
    _overwrite_argument(p)


cmd_demo.arguments = _demo_arguments


@command("report", "one self-contained HTML page about runs: metrics beside PCA and the seeds' numbers, curves, "
                   "figures")
def cmd_report(args: argparse.Namespace) -> None:
    print(f"wrote {aelab.report(args.run_dirs, args.out, overwrite=args.overwrite)}")


def _report_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    p.add_argument("--out", default=_default(aelab.report, "out"), help="the page to write, a .html file (default: "
                                                                         "%(default)s)")
    _overwrite_argument(p)


cmd_report.arguments = _report_arguments


def _image_command(args: argparse.Namespace, mode: str) -> None:
    written = aelab.reconstruct_files(args.run_dir, args.images, args.out, noise=getattr(args, "noise", 0.0),
                                      precision=args.precision, mode=mode, labels=args.label, overwrite=args.overwrite)
    print(f"wrote {len(written) - 1} image(s) and {written[-1]}")


@command("reconstruct", "encode and decode image files with a trained run")
def cmd_reconstruct(args: argparse.Namespace) -> None:
    _image_command(args, "reconstruct")


def _image_arguments(p: argparse.ArgumentParser, noise: bool = False) -> None:
    p.add_argument("run_dir")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("--out", required=True, help="folder for the output PNGs")
    _overwrite_argument(p, "PNGs of the same names in --out")
    p.add_argument("--precision", default=_default(aelab.reconstruct_files, "precision"),
                   help="auto (bf16 where the CPU has it: images are 8-bit anyway) or 32")
    _label_argument(p, "the images' class")
    if noise:
        p.add_argument("--noise", type=float, default=_default(aelab.reconstruct_files, "noise"),
                       help="add this much noise first (to try the model)")


cmd_reconstruct.arguments = _image_arguments


@command("denoise", "remove noise from image files with a trained (denoising) run")
def cmd_denoise(args: argparse.Namespace) -> None:
    _image_command(args, "denoise")


cmd_denoise.arguments = lambda p: _image_arguments(p, noise=True)


@command("encode", "write the codes of a dataset's images to a .npy file")
def cmd_encode(args: argparse.Namespace) -> None:
    out, codes = aelab.encode_file(args.run_dir, args.out, args.split, _data(args), precision=args.precision,
                                   overwrite=args.overwrite)
    print(f"wrote {out}: {len(codes)} codes of size {codes.shape[1]} ({args.split} split)")


def _encode_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir")
    _data_arguments(p, "the run's")
    p.add_argument("--split", choices=_choices(aelab.encode_file, "split"), default=_default(aelab.encode_file, "split"))
    p.add_argument("--out", required=True, help="the .npy file to write")
    _overwrite_argument(p)
    p.add_argument("--precision", default=_default(aelab.encode_file, "precision"), help="32 (exact codes, the default) or auto (bf16 where supported)")


cmd_encode.arguments = _encode_arguments


def _overwrite_argument(p: argparse.ArgumentParser, what: str = "--out") -> None:
    p.add_argument("--overwrite", action="store_true", help=f"replace {what} if it exists (never an input)")


def _run_arguments(p: argparse.ArgumentParser, default: str) -> None:
    p.add_argument("run_dir")
    p.add_argument("--out", help=f"the PNG to write (default RUN_DIR/{default}; if that exists, the next free "
                                 f"{default.removesuffix('.png')}-2.png, -3, ... unless --overwrite replaces it)")
    _overwrite_argument(p)


def _label_argument(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--label", type=int, help=f"conditional models (cvae): {what}, a class number")


@command("sample", "draw new images from a generative run (vae, cvae, gan) as a grid")
def cmd_sample(args: argparse.Namespace) -> None:
    out = aelab.sample_figure(args.run_dir, args.out, args.n, args.seed, labels=args.label, overwrite=args.overwrite)
    print(f"wrote {out} ({args.n} samples{'' if args.label is None else f' of class {args.label}'})")


def _sample_arguments(p: argparse.ArgumentParser) -> None:
    _run_arguments(p, "samples.png")
    p.add_argument("-n", type=int, default=_default(aelab.sample_figure, "n"), help="number of samples")
    p.add_argument("--seed", type=int, default=_default(aelab.sample_figure, "seed"))
    _label_argument(p, "the class to draw")


cmd_sample.arguments = _sample_arguments


@command("manifold", "decode a grid over the prior's quantiles of a 2-D latent space")
def cmd_manifold(args: argparse.Namespace) -> None:
    out = aelab.manifold_figure(args.run_dir, args.out, args.grid, labels=args.label, overwrite=args.overwrite)
    print(f"wrote {out} ({args.grid}x{args.grid} points)")


def _manifold_arguments(p: argparse.ArgumentParser) -> None:
    _run_arguments(p, "manifold.png")
    p.add_argument("--grid", type=int, default=_default(aelab.manifold_figure, "grid"), help="points per side")
    _label_argument(p, "the class whose manifold to draw")


cmd_manifold.arguments = _manifold_arguments


@command("latent", "scatter a dataset's test codes in 2-D, coloured by label")
def cmd_latent(args: argparse.Namespace) -> None:
    print(f"wrote {aelab.latent_figure(args.run_dir, args.out, _data(args), args.limit, overwrite=args.overwrite)}")


def _latent_arguments(p: argparse.ArgumentParser) -> None:
    _run_arguments(p, "latent.png")
    _data_arguments(p, "the run's")
    p.add_argument("--limit", type=int, default=_default(aelab.latent_figure, "limit"),
                   help="at most this many test images")


cmd_latent.arguments = _latent_arguments


@command("interpolate", "decode the straight path between the codes of two images (or two prior points)")
def cmd_interpolate(args: argparse.Namespace) -> None:
    if len(args.images) not in (0, 2):
        raise AelabError(f"give two images (or none, for a generative model), got {len(args.images)}")
    out = aelab.interpolate_figure(args.run_dir, *args.images, out=args.out, steps=args.steps, seed=args.seed,
                                   labels=args.label, overwrite=args.overwrite)
    print(f"wrote {out} ({args.steps} steps{', framed by the two inputs' if args.images else ''})")


def _interpolate_arguments(p: argparse.ArgumentParser) -> None:
    _run_arguments(p, "interpolation.png")
    p.add_argument("images", nargs="*", metavar="IMAGE", help="IMAGE_A IMAGE_B")
    p.add_argument("--steps", type=int, default=_default(aelab.interpolate_figure, "steps"))
    p.add_argument("--seed", type=int, default=_default(aelab.interpolate_figure, "seed"),
                   help="for the prior points when no images are given")
    _label_argument(p, "the class to stay in")


cmd_interpolate.arguments = _interpolate_arguments


@command("tune", "search a model's hyperparameters with Optuna: each trial a run folder in STUDY_DIR/trials")
def cmd_tune(args: argparse.Namespace) -> None:
    if args.list:
        print(aelab.study_table(args.out, args.storage))
        return
    settings = {**_given(args, aelab.TrainSettings), **_params(args.model, args.param)}
    study, best = aelab.tune(args.model, out=args.out, trials=args.trials, data=_data(args), space=args.space,
                       metric=args.metric, sampler=args.sampler, pruning=args.pruning, storage=args.storage,
                       resume=args.resume, workers=args.workers, **settings)
    print(aelab.summary_table(study))
    out = Path(args.out)
    if best is None:
        done = [t for t in study.trials if t.state.name == "COMPLETE"]
        if done:  # the best trial ran on another machine, with its own --out
            trial = study.best_trial
            print(f"best: trial {trial.number} ({study.best_value:.5g}), trained on {trial.user_attrs.get('host')} in "
                  f"{trial.user_attrs.get('folder')}; table {out / 'trials.csv'}")
        else:  # a study of failures is not a success: exit 2, the reasons in the table
            raise AelabError(f"no trial completed; each one's error is in {out / 'trials.csv'}")
        return
    print(f"best: {out / 'best'} -> {best.path.name} ({study.best_value:.5g}); table {out / 'trials.csv'}, "
          f"summary {out / 'summary.md'}")


def _tune_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", nargs="?", help="registered model name (optional with --resume)")
    p.add_argument("--out", required=True, help="the study folder (trials/, study.db, best, trials.csv, plots)")
    p.add_argument("--trials", type=int, default=20, help="trials to run (shared among --workers; with "
                   "--resume, trials to add)")
    p.add_argument("--space", action="append", metavar="NAME=LOW:HIGH[:log] | NAME=A,B,C",
                   help="search this setting or model parameter over a range or choices (over the model's "
                        "default space; repeat for more)")
    p.add_argument("--metric", default="val_loss", help="per-epoch validation metric to optimise (val_accuracy is "
                   "maximised)")
    p.add_argument("--sampler", default=_default(aelab.tune, "sampler"),
                   help=f"Optuna sampler: {', '.join(_choices(aelab.tune, 'sampler'))}")
    p.add_argument("--pruning", action=argparse.BooleanOptionalAction, default=True,
                   help="stop trials whose validation loss lags the median (Optuna's MedianPruner)")
    p.add_argument("--storage", help="an Optuna storage URL shared by workers (postgresql://user:pw@host/db); "
                   "default: SQLite in the study folder")
    p.add_argument("--workers", type=int, default=1, help="worker processes on this machine, each with its share "
                   "of the CPU threads")
    p.add_argument("--resume", action="store_true", help="add --trials trials to the study in --out")
    p.add_argument("--list", action="store_true", help="print the study's trials, with the machine and folder of "
                   "each run, and stop (any machine that reaches its --storage)")
    _data_arguments(p, "the model's default")
    p.add_argument("--param", action="append", metavar="KEY=VALUE", help="a fixed model parameter for every trial")
    add_settings(p, aelab.TrainSettings, "fixed training settings for every trial (e.g. --epochs 3)")


cmd_tune.arguments = _tune_arguments


@command("probe", "score a run's codes as features: a linear classifier on them, on PCA codes and on pixels")
def cmd_probe(args: argparse.Namespace) -> None:
    run = aelab.Run(args.run_dir)
    result = aelab.probe(run, _data(args))
    print(f"linear probe on {run.config.model}'s codes ({result['probe_code_size']} values; "
          f"{result['probe_images'][0]} training / {result['probe_images'][1]} test images):")
    for label, key in (("codes", "probe_accuracy"), (f"PCA, {result['probe_pca_components']} components",
                                                     "probe_pca_accuracy"), ("pixels", "probe_pixels_accuracy")):
        print(f"  {label:<20} test accuracy {result[key]:.4f}")
    if _data(args) is None:
        print(f"  added to {run.metrics_path}")


def _probe_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir")
    _data_arguments(p, "the run's (the numbers are then printed, not written)")


cmd_probe.arguments = _probe_arguments


@command("score", "anomaly scores of image files: each one's reconstruction error, against a threshold")
def cmd_score(args: argparse.Namespace) -> None:
    result = aelab.score_files(args.run_dir, args.images, threshold=args.threshold, contamination=args.contamination,
                               maps=args.maps, worst=args.worst, csv_out=args.out, score=args.score,
                               overwrite=args.overwrite, method=args.method)
    width = max(len(row[0]) for row in result["rows"])
    print(f"{'image':<{width}}  {'score':>10}  outlier")
    for path, score, flag in result["rows"]:
        print(f"{path:<{width}}  {score:>10.5f}  {'yes' if flag else 'no'}")
    flagged = sum(flag for _, _, flag in result["rows"])
    print(f"{flagged} of {len(result['rows'])} above the threshold {result['threshold']:.5g} "
          f"({result['threshold_source']})")
    print(f"error maps of the highest scores: {result['figure']}" + (f"; table: {result['csv']}" if result["csv"] else ""))


def _score_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("--out", help="write the scores to this .csv file (file,score,outlier)")
    p.add_argument("--threshold", type=float,
                   help="flag scores above this (default: from the run's validation images, see --contamination)")
    p.add_argument("--contamination", type=float, default=_default(aelab.score_files, "contamination"),
                   help="the share of outliers the default threshold expects among normal images (PyOD's)")
    p.add_argument("--maps", help="folder for the error-map figure of the highest scores (default RUN_DIR/anomaly)")
    _overwrite_argument(p, "--out and --maps/worst.png")
    _threads_argument(p)
    p.add_argument("--worst", type=int, default=_default(aelab.score_files, "worst"), help="how many of the highest scores to draw")
    p.add_argument("--score", default=_default(aelab.score_files, "score"), choices=_choices(aelab.score_files, "score"),
                   help="normalised: each pixel's squared error over its mean on the run's validation images "
                        "(default); mse: the plain mean squared error (with --threshold, needs no data)")
    p.add_argument("--method", default=_default(aelab.score_files, "method"), choices=_choices(aelab.score_files, "method"),
                   help="reconstruction: the error alone (default, fastest); neighbours: plus the distances to the "
                        "5 nearest of the run's training images in pixels and codes; transformations: how badly a "
                        "network trained on those images tells their rotations and shifts (GEOM); combined: "
                        "neighbours and transformations (most accurate; trains the network first: tens of seconds)")


cmd_score.arguments = _score_arguments


@command("serve", "a web page to explore trained runs: draw, reconstruct, denoise, score, walk the latent space")
def cmd_serve(args: argparse.Namespace) -> None:
    aelab.check_port(args.host, args.port)
    print(f"serving {len(args.runs)} run(s) on http://{args.host}:{args.port} (Ctrl+C stops)", flush=True)
    aelab.serve(args.runs, host=args.host, port=args.port)


def _serve_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("runs", nargs="+", metavar="RUN_DIR")
    p.add_argument("--port", type=int, default=_default(aelab.serve, "port"))
    p.add_argument("--host", default=_default(aelab.serve, "host"), help="the address to listen on (0.0.0.0: every network)")


cmd_serve.arguments = _serve_arguments


@command("export", "write a run's encoder, decoder, whole autoencoder, generator or anomaly detector as an ONNX file")
def cmd_export(args: argparse.Namespace) -> None:
    out = aelab.export(args.run_dir, args.out, part=args.part, format=args.format, overwrite=args.overwrite,
                       contamination=args.contamination, score=args.score, method=args.method)
    print(f"wrote {out} ({args.part}, {args.format}; batch size free, {out.stat().st_size / 1e6:.2f} MB)")


def _export_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir")
    p.add_argument("--out", required=True, help="the file to write (.onnx)")
    p.add_argument("--part", default=_default(aelab.export, "part"), choices=_choices(aelab.export, "part"),
                   help="encoder (images -> codes), decoder (codes -> images), both (images -> reconstructions), "
                        "or a GAN's generator (latent points -> images), or detector (images -> anomaly scores, "
                        "the threshold in the file's metadata)")
    p.add_argument("--format", default=_default(aelab.export, "format"), choices=_choices(aelab.export, "format"))
    p.add_argument("--contamination", type=float, default=_default(aelab.export, "contamination"),
                   help="--part detector: the share of the run's validation images above the threshold")
    p.add_argument("--score", default=_default(aelab.export, "score"), choices=_choices(aelab.export, "score"),
                   help="--part detector: the anomaly score (see aelab score)")
    p.add_argument("--method", default=_default(aelab.export, "method"), choices=_choices(aelab.export, "method"),
                   help="--part detector: reconstruction, neighbours, transformations or combined (see aelab score)")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")


cmd_export.arguments = _export_arguments


@command("activations", "draw one layer's feature maps saved by --log-activations")
def cmd_activations(args: argparse.Namespace) -> None:
    if args.list:
        for name, array in aelab.activations(args.run_dir, args.epoch).items():
            print(f"{name:<40} {tuple(array.shape[1:])}")
        return
    print(f"wrote {aelab.activation_figure(args.run_dir, args.out, args.epoch, args.layer, args.image, args.overwrite)}")


def _activations_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir")
    p.add_argument("--epoch", type=int, help="default: the last saved")
    p.add_argument("--layer", help="the layer's name (see --list); default: the first convolutional layer")
    p.add_argument("--image", type=int, default=_default(aelab.activation_figure, "image"), help="which of the saved validation images (0-7)")
    p.add_argument("--list", action="store_true", help="list the saved layers and their shapes")
    p.add_argument("--out", help="the PNG to write (default RUN_DIR/activations/epoch_NNN_LAYER.png)")
    _overwrite_argument(p)


cmd_activations.arguments = _activations_arguments


@command("generate", "continue a prompt with a text run (char-lstm), at one or more temperatures")
def cmd_generate(args: argparse.Namespace) -> None:
    for temperature in args.temperature:
        text = aelab.generate(args.run_dir, args.prompt, args.length, temperature, args.seed)
        print(f"--- temperature {temperature}\n{args.prompt}{text}")


def _generate_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir")
    p.add_argument("--prompt", required=True, help="the text to continue (characters of the model's alphabet)")
    p.add_argument("--length", type=int, default=_default(aelab.generate, "length"),
                   help="characters to generate (seed: 400)")
    p.add_argument("--temperature", type=float, nargs="+", default=[0.2, 0.5, 1.0, 1.2],
                   help="sampling temperatures (seed: 0.2 0.5 1.0 1.2; 0 = always the likeliest)")
    p.add_argument("--seed", type=int, default=_default(aelab.generate, "seed"), help="the same seed repeats the text")


cmd_generate.arguments = _generate_arguments


@command("style", "neural style transfer (seed 3): paint CONTENT in the manner of STYLE with VGG19 features")
def cmd_style(args: argparse.Namespace) -> None:
    result, written = aelab.style_transfer_files(args.content, args.style, args.out, weights=args.weights,
                                                 download=args.download, progress=args.progress, overwrite=args.overwrite,
                                                 **_given(args, aelab.StyleSettings))
    print(f"style transfer with {result.weights} VGG19 weights ({result.precision}): loss {result.initial_loss:.4g} "
          f"for the content image, {result.losses[-1]:.4g} after the last round ({len(result.losses)} rounds: "
          f"{result.rounds_by_height()}; {sum(result.seconds):.0f} s)")
    print("wrote " + ", ".join(map(str, written)))


def _style_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("content", help="the image whose content is kept (any format and size)")
    p.add_argument("style", help="the image whose style is taken")
    p.add_argument("--out", required=True, help="the result, a .png (a -panel.png figure and a .json go beside it)")
    _overwrite_argument(p, "--out and the files beside it")
    p.add_argument("--weights", help="a torchvision vgg19 state dict (.pth), read weights-only")
    p.add_argument("--download", action="store_true", help="fetch torchvision's ImageNet VGG19 weights if not cached")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True)
    _threads_argument(p)
    add_settings(p, aelab.StyleSettings, "style-transfer settings (default: the seed's, run as a pyramid)")


cmd_style.arguments = _style_arguments


# --------------------------------------------------------------------------- entry point


def _named_model(words: list[str]) -> dict[str, Any] | None:
    """``aelab.model_info`` of the first registered model name among ``words``, or None."""
    for word in words:
        if not word.startswith("-"):
            try:
                return aelab.model_info(word)
            except AelabError:
                continue
    return None


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The parser; given the command line ``argv``, only the named command's flags are added (its
    defaults come from the API, whose modules load torch), else every command's."""
    parser = argparse.ArgumentParser(prog="aelab", description="Autoencoders and generative models of images.")
    parser.add_argument("--version", action="version", version=f"aelab {aelab.__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    chosen = None if argv is None else next((word for word in argv if word in COMMANDS), "")
    for name, (help_text, func) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == chosen == "train" and {"-h", "--help"} & set(argv):
            p.model_info = _named_model(argv[argv.index("train") + 1:])
        if chosen is None or name == chosen:
            func.arguments(p)
        p.set_defaults(func=func)
    return parser


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is when a message comes (a test may have replaced it)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


def main(argv: list[str] | None = None) -> int:
    args = build_parser(sys.argv[1:] if argv is None else list(map(str, argv))).parse_args(argv)
    log = logging.getLogger("aelab")
    if not any(isinstance(h, _StderrHandler) for h in log.handlers):
        log.addHandler(_StderrHandler())  # aelab's notes (a resume's changes, a GAN's collapse) as plain lines
        log.setLevel(logging.INFO)
    for handler in log.handlers:
        if isinstance(handler, _StderrHandler):
            handler.setFormatter(logging.Formatter(f"aelab {args.command}: %(message)s"))
    try:
        aelab.keep_freed_memory()  # a CLI command owns its process
        threads = getattr(args, "inference_threads", None)  # eval, score, style: --threads N
        with from_cli(), aelab.fixed_threads(threads) if threads is not None else contextlib.nullcontext():
            args.func(args)  # (messages name options as flags)
    except AelabError as error:
        print(f"aelab {args.command}: error: {' '.join(str(error).split())}", file=sys.stderr)
        return 2
    except OSError as error:  # a full disk, a folder made read-only while the command ran
        print(f"aelab {args.command}: error: {error.strerror or error} ({error.filename or ''})", file=sys.stderr)
        return 2
    except KeyboardInterrupt as error:  # Interrupted says what was kept and how to go on
        print(f"aelab {args.command}: {' '.join(str(error).split()) or 'interrupted'}", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
