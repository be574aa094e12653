"""The model registry's store: ``@register_model`` on each model class in ``nets/``, presets that
re-use a builder with other defaults, aliases. Torch-free: it holds what the nets register, and
:mod:`aelab.models` (which imports the nets) looks names up in it. A model class's typed
``__init__`` is the single source of its parameters; its ``family`` names the
:mod:`aelab.families` object that trains, evaluates and reports it.
"""

from __future__ import annotations

import fnmatch
import inspect
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .config import TrainSettings
from .errors import AelabError

__all__ = [
    "ModelEntry",
    "catalog",
    "register_model",
    "register_preset",
    "register_alias",
]  # the public names of aelab.registry

if TYPE_CHECKING:
    from torch import nn


def validate_choice(what: str, value: Any, literal: Any) -> None:
    choices = typing.get_args(literal)
    if value not in choices:
        raise AelabError(f"unknown {what} {value!r}; choose one of: {', '.join(map(str, choices))}")


@dataclass(frozen=True)
class ModelEntry:
    """A registered name: the model class (whose typed ``__init__`` is the one list of its
    parameters and their defaults), preset values, training defaults (settings of its family's
    class, by name: ``families.model_settings`` makes them that class) and how to read old runs."""

    name: str
    builder: Callable[..., nn.Module]
    description: str
    train: dict[str, Any] = field(default_factory=dict)
    preset: dict[str, Any] = field(default_factory=dict)
    family: str = "autoencoder"  # the name of its aelab.families object (families.FAMILIES)
    # how config.json files written by earlier versions map onto today's parameters: old name ->
    # new name, and parameters added since with the value that rebuilds the runs saved before
    renamed: dict[str, str] = field(default_factory=dict)
    added_later: dict[str, Any] = field(default_factory=dict)
    converters: dict[str, Callable[[Any], Any]] = field(default_factory=dict)

    def defaults(self) -> dict[str, Any]:
        """Every parameter with its value for this entry (signature default, then preset)."""
        values = {name: p.default for name, p in _signature(self.builder).items()}
        values.update(self.preset)
        return values

    def annotations(self) -> dict[str, Any]:
        target = self.builder.__init__ if inspect.isclass(self.builder) else self.builder
        return typing.get_type_hints(target)


def _signature(builder: Callable) -> dict[str, inspect.Parameter]:
    parameters = dict(inspect.signature(builder).parameters)
    parameters.pop("self", None)
    return parameters


_REGISTRY: dict[str, ModelEntry] = {}
_ALIASES: dict[str, str] = {}


def register_model(
    name: str,
    description: str,
    train: dict[str, Any] | None = None,
    family: str = "autoencoder",
    renamed: dict[str, str] | None = None,
    added_later: dict[str, Any] | None = None,
    converters: dict[str, Callable[[Any], Any]] | None = None,
):
    """Class decorator: register a model class under ``name`` with its training defaults (the
    settings of its family's class it sets otherwise than the class does).

    ``renamed``, ``added_later`` and ``converters`` keep runs saved by earlier versions loading:
    an old parameter name, a parameter the model gained (with the value those runs had), a value
    whose form changed (e.g. an int that became a tuple)."""

    def decorate(builder):
        _add(
            ModelEntry(
                name,
                builder,
                description,
                dict(train or {}),
                {},
                family,
                renamed or {},
                added_later or {},
                converters or {},
            )
        )
        return builder

    return decorate


def register_preset(name: str, base: str, description: str, train: dict[str, Any] | None = None, **params: Any) -> None:
    """Register ``name`` as ``base`` with other parameter values and/or training defaults (``train``
    replaces the base's)."""
    parent = _REGISTRY[_ALIASES.get(base, base)]  # registered earlier in the same nets module
    unknown = set(params) - set(parent.defaults())
    if unknown:
        raise ValueError(f"preset {name}: {base} has no parameter(s) {sorted(unknown)}")
    _add(
        ModelEntry(
            name,
            parent.builder,
            description,
            parent.train if train is None else dict(train),
            {**parent.preset, **params},
            parent.family,
            parent.renamed,
            parent.added_later,
            parent.converters,
        )
    )


def register_alias(alias: str, name: str) -> None:
    """Another name for a registered model (an older name that runs and scripts still use)."""
    if alias in _REGISTRY or alias in _ALIASES:
        raise ValueError(f"model {alias!r} is registered twice")
    _ALIASES[alias] = name


def _add(entry: ModelEntry) -> None:
    if entry.name in _REGISTRY or entry.name in _ALIASES:
        raise ValueError(f"model {entry.name!r} is registered twice")
    clash = set(_signature(entry.builder)) & set(TrainSettings.names())  # its family's own: families.model_settings
    if clash:  # aelab.train(**kwargs) takes both by name
        raise ValueError(f"model {entry.name}: parameter(s) {sorted(clash)} share a name with a training setting")
    _REGISTRY[entry.name] = entry


def catalog(pattern: str = "*") -> tuple[dict[str, str], dict[str, str]]:
    """Registered names with their descriptions, and the aliases, read from the registration calls
    in ``nets/`` without importing them (so without torch): what `aelab models` prints in a tenth
    of a second. The registry itself stays the one source; a test checks they agree."""
    import ast
    from pathlib import Path

    models, aliases_ = {}, {}
    for path in sorted((Path(__file__).parent / "nets").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
                continue
            try:
                args = [ast.literal_eval(a) for a in node.args]
            except ValueError:  # a registration whose name or description is not a literal
                continue
            if node.func.id == "register_model":
                models[args[0]] = args[1]
            elif node.func.id == "register_preset":
                models[args[0]] = args[2]
            elif node.func.id == "register_alias":
                aliases_[args[0]] = args[1]
    names = sorted(n for n in models if fnmatch.fnmatch(n, pattern))
    return {n: models[n] for n in names}, {a: n for a, n in sorted(aliases_.items()) if n in names}
