"""The CLI's shared flags and the command registry: each command module registers its
commands with :func:`command`; flags that mirror a settings dataclass or an API parameter take
their types, defaults and choices from it.
"""

from __future__ import annotations

import argparse
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aelab import AelabError

COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None]]] = {}


def command(name: str, help_text: str):
    """Register ``func(args)`` as a sub-command; ``func.arguments(parser)`` adds its flags."""

    def decorate(func):
        COMMANDS[name] = (help_text, func)
        return func

    return decorate


def add_settings(
    parser: argparse.ArgumentParser, settings_class: type, title: str, model: dict[str, Any] | None = None
) -> None:
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
            text += (
                f" [{model['name']}: {plain(model['train'][f.name])}]"
                if f.name in model["train"]
                else f" [not used by {model['name']}]"
            )
        kwargs: dict[str, Any] = {"help": text.replace("%", "%%"), "default": None, "dest": f.name}
        if base is bool:
            group.add_argument(flag, action=argparse.BooleanOptionalAction, **kwargs)
        elif typing.get_origin(base) is typing.Literal:  # checked by the dataclass: one line, not argparse's two
            group.add_argument(flag, metavar="{" + ",".join(typing.get_args(base)) + "}", **kwargs)
        elif typing.get_origin(base) is dict:  # "name=number,..." parsed by the dataclass
            group.add_argument(flag, metavar="NAME=W,...", **kwargs)
        elif typing.get_origin(base) is tuple:  # "a,b,c"; "none": an empty list
            group.add_argument(flag, type=listed, metavar="A,B,...", **kwargs)
        else:
            group.add_argument(flag, type=base, **kwargs)


def listed(text: str) -> tuple[str, ...]:
    return () if text.strip().lower() == "none" else tuple(part.strip() for part in text.split(",") if part.strip())


def given(args: argparse.Namespace, settings_class: type) -> dict[str, Any]:
    """The settings flags the user gave."""
    import dataclasses

    return {
        f.name: getattr(args, f.name)
        for f in dataclasses.fields(settings_class)
        if getattr(args, f.name, None) is not None
    }


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
        help="CPU threads: a number fixes it (results then repeat bit for bit); default: the count that "
        "runs fastest, measured as it goes (fewer when another program keeps the CPU busy)",
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
