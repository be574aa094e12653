"""`aelab models`, `aelab datasets`, `aelab summary`: what aelab has."""

from __future__ import annotations

import argparse

import aelab
from aelab import AelabError

from .options import (
    command,
    overwrite_argument,
    params_of,
    plain,
)


@command("models", "list the registered models (--verbose: each one's training defaults and parameters)")
def cmd_models(args: argparse.Namespace) -> None:
    if args.verbose:
        names = aelab.list_models(args.pattern)
        if not names:
            raise AelabError(f"no model matches {args.pattern!r}; see `aelab models`")
        for name in names:
            info = aelab.model_info(name)
            print(f"{info['name']} ({info['family']}): {info['description']}")
            for title, values in (
                (f"training defaults ({info['settings']})", info["train"]),
                ("parameters", info["params"]),
            ):
                text = ", ".join(f"{k}={plain(v)}" for k, v in values.items())
                print(f"  {title}: {text}")
        return
    models, aliases = aelab.registry.catalog(args.pattern)
    width = max(map(len, [*models, *aliases]), default=0)
    for name, description in models.items():
        print(f"{name:<{width}}  {description}")
    for alias, name in aliases.items():
        print(f"{alias:<{width}}  another name for {name}")


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
    model = aelab.create_model(args.model, **params_of(args.model, args.param))
    title = f"{args.model} ({type(model).__name__})"
    if args.graph:
        print(f"wrote {aelab.summary.draw_graph(model, args.graph, title, args.depth, overwrite=args.overwrite)}")
        return
    print(aelab.summary.format_summary(model, title))


def _summary_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model")
    p.add_argument("--param", action="append", metavar="KEY=VALUE", help="a model parameter, e.g. channels=32,32,16")
    p.add_argument("--graph", metavar="PNG", help="draw the model's graph to this PNG instead (needs Graphviz's dot)")
    p.add_argument("--depth", type=int, default=3, help="--graph: how many levels of nested modules to open")
    overwrite_argument(p, "--graph")


cmd_summary.arguments = _summary_arguments
