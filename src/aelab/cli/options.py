"""The CLI's shared flags and the command registry: each command module registers its
commands with :func:`command`; flags that mirror a settings dataclass or an API parameter take
their types, defaults and choices from it.
"""

from __future__ import annotations

import argparse
import functools
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aelab
from aelab import AelabError
from aelab.values import from_text  # (a flag's text read as its setting's type, as --param's are)

COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None]]] = {}


def command(name: str, help_text: str):
    """Register ``func(args)`` as a sub-command; ``func.arguments(parser)`` adds its flags."""

    def decorate(func):
        COMMANDS[name] = (help_text, func)
        return func

    return decorate


def add_settings(
    parser: argparse.ArgumentParser,
    settings_class: type,
    title: str,
    model: dict[str, Any] | None = None,
    names: typing.Collection[str] | None = None,
    hidden: bool = False,
) -> None:
    """One flag per field of a settings dataclass (:class:`~aelab.TrainSettings` and each family's,
    :class:`~aelab.EvalSettings`, :class:`~aelab.settings.StyleSettings`), typed and described there: the
    class is the only list. A flag not given is left out of the namespace (``given``): the model's
    (or the seed's) own setting stands. Each value is read as its type (``none`` for an optional
    one or an empty list) and checked by the dataclass, in one line. ``model``
    (``aelab.model_info``'s, for ``aelab train MODEL --help``): each flag's help ends with that
    model's default. ``names``: only these fields; ``hidden``: flags read but left out of the help."""
    import dataclasses

    group = parser.add_argument_group(title)
    hints = typing.get_type_hints(settings_class)
    for f in dataclasses.fields(settings_class):
        if names is not None and f.name not in names:
            continue
        hint = hints[f.name]
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        base = hint if typing.get_origin(hint) in (typing.Literal, tuple) or not args else args[0]
        flag = "--" + f.name.replace("_", "-")
        text = f.metadata["help"]
        if model is not None:
            text += f" [{model['name']}: {plain(model['train'][f.name])}]"
        text = argparse.SUPPRESS if hidden else text.replace("%", "%%")
        kwargs: dict[str, Any] = {"help": text, "default": argparse.SUPPRESS, "dest": f.name}
        if base is bool:
            group.add_argument(flag, action=argparse.BooleanOptionalAction, **kwargs)
            continue
        if typing.get_origin(base) is typing.Literal:  # checked by the dataclass: one line, not argparse's two
            kwargs["metavar"] = "{" + ",".join(typing.get_args(base)) + "}"
        elif typing.get_origin(base) is dict:  # "name=number,..." parsed by the dataclass
            kwargs["metavar"] = "NAME=W,..."
        elif typing.get_origin(base) is tuple:  # "a,b,c"; "none": an empty list
            kwargs["metavar"] = "A,B,..."
        group.add_argument(flag, type=functools.partial(from_text, hint=hint), **kwargs)


def training_settings(parser: argparse.ArgumentParser, title: str, model: dict[str, Any] | None = None) -> None:
    """The training settings' flags: those every model has under ``title``, then each family's own
    under a heading of their own. With ``model`` (``aelab.model_info``'s, for ``aelab train MODEL
    --help``) its family's settings under one heading with the model's defaults, and the other
    families' flags read but not shown (the API refuses them in one line, naming what it has)."""
    classes = aelab.settings.settings_classes()
    common = aelab.TrainSettings.names()
    add_settings(parser, aelab.TrainSettings, title, model)
    if model is not None:
        own = classes[model["family"]]
        add_settings(
            parser,
            own,
            f"{model['family']} settings ({own.__name__}: {model['name']}'s defaults in brackets)",
            model,
            names=set(own.names()) - set(common),
        )
    shown = set(classes[model["family"]].names()) if model else set(common)
    for declared, families in _declaring_classes(classes).items():
        names = set(_own_fields(declared)) - shown
        if names:
            title = f"{declared.__name__} (the {', '.join(families)} famil{'ies' if len(families) > 1 else 'y'})"
            add_settings(parser, declared, title, names=names, hidden=model is not None)
            shown |= names


def _own_fields(settings_class: type) -> tuple[str, ...]:
    """The settings a class declares itself, not those it inherits."""
    inherited = {name for base in settings_class.__bases__ if hasattr(base, "names") for name in base.names()}
    return tuple(name for name in settings_class.names() if name not in inherited)


def _declaring_classes(classes: dict[str, type]) -> dict[type, list[str]]:
    """Every settings class the families' classes are built from (below TrainSettings), in the
    order their settings read, with the families that have its settings."""
    found: dict[type, list[str]] = {}
    for family, settings_class in classes.items():
        for declared in reversed(settings_class.__mro__):
            if issubclass(declared, aelab.TrainSettings) and declared is not aelab.TrainSettings:
                found.setdefault(declared, []).append(family)
    return found


def training_given(args: argparse.Namespace) -> dict[str, Any]:
    """The training settings' flags the user gave (any family's: the API checks them)."""
    return {k: v for cls in aelab.settings.settings_classes().values() for k, v in given(args, cls).items()}


def given(args: argparse.Namespace, settings_class: type) -> dict[str, Any]:
    """The settings flags the user gave (``add_settings`` leaves the others out of ``args``)."""
    import dataclasses

    return {f.name: getattr(args, f.name) for f in dataclasses.fields(settings_class) if hasattr(args, f.name)}


def params_of(model: str | None, texts: list[str] | None) -> dict[str, Any]:
    if texts and not model:
        raise AelabError("--param needs a model name")
    from aelab.models import parse_param  # ("KEY=VALUE" as a model's parameter; the import loads torch)

    return dict(parse_param(model, text) for text in texts or [])


def api_default(func: Callable, name: str) -> Any:
    """The API's default for ``name``: the CLI's option has the same one."""
    import inspect

    return inspect.signature(func).parameters[name].default


def api_choices(func: Callable, name: str) -> tuple[str, ...]:
    """The values of a ``Literal`` parameter of the API."""
    return typing.get_args(typing.get_type_hints(func)[name])


def progress_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--progress",
        choices=("auto", "bar", "epoch", "none"),
        default="auto",
        help="bar: a progress bar; epoch: a line per epoch and per evaluation stage (what a log file "
        "wants); none: quiet; auto (default): bar on a terminal, else epoch",
    )
    p.add_argument("--no-progress", dest="progress", action="store_const", const="none", help="same as --progress none")


def data_of(args: argparse.Namespace):
    """--data NAME, --data-dir DIR or --text FILE as the API's one ``data`` argument (None: the
    default, or the run's)."""
    given = [value for value in (args.data, args.data_dir, getattr(args, "text", None)) if value is not None]
    if len(given) > 1:
        raise AelabError("give one of --data, --data-dir and --text")
    return args.data if args.data is not None else Path(given[0]) if given else None


def data_arguments(p: argparse.ArgumentParser, default: str) -> None:
    p.add_argument("--data", help=f"dataset name (see `aelab datasets`; default: {default})")
    p.add_argument("--data-dir", help="folder of local data: IDX files, images, or .npy/.npz arrays")


def threads_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--threads",
        type=int,
        dest="inference_threads",
        metavar="N",
        help="CPU threads: a number fixes it (results then repeat bit for bit); default: all of them, "
        "fewer while another program is measured keeping the CPU busy (on a quiet machine results repeat too)",
    )


def overwrite_argument(p: argparse.ArgumentParser, what: str = "--out") -> None:
    p.add_argument("--overwrite", action="store_true", help=f"replace {what} if it exists (never an input)")


def run_arguments(p: argparse.ArgumentParser, default: str) -> None:
    p.add_argument("run_dir")
    p.add_argument(
        "--out",
        help=f"the PNG to write (default RUN_DIR/{default}; if that exists, the next free "
        f"{default.removesuffix('.png')}-2.png, -3, ... unless --overwrite replaces it)",
    )
    overwrite_argument(p)


def label_argument(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--label", type=int, help=f"conditional models (cvae): {what}, a class number")


def plain(value: Any) -> str:
    """A setting's value as the command line writes it."""
    if isinstance(value, (tuple, list)):
        return ",".join(map(str, value))
    if isinstance(value, dict):
        return ",".join(f"{k}={v:g}" for k, v in value.items())
    return "none" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
