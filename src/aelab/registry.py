"""The model registry: one name per model, used by the CLI, configs, checkpoints and results tables.

In the style of timm: ``@register_model`` on each model class, presets that
re-use a builder with other defaults, ``create_model(name, **params)`` and ``list_models(pattern)``.
A model class's typed ``__init__`` is the single source of its parameters: the CLI parses
``--param name=value`` against it, and run folders store the resolved values.
"""

from __future__ import annotations

import fnmatch
import inspect
import typing
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Literal

from .config import TRAIN_FIELDS, UNIONS, TrainSettings, coerce, describe
from .errors import AelabError

if TYPE_CHECKING:
    from torch import nn

def validate_choice(what: str, value: Any, literal: Any) -> None:
    choices = typing.get_args(literal)
    if value not in choices:
        raise AelabError(f"unknown {what} {value!r}; choose one of: {', '.join(map(str, choices))}")


Kind = Literal["autoencoder", "vae", "cvae", "classifier", "gan", "text"]


@dataclass(frozen=True)
class ModelEntry:
    """A registered name: the model class (whose typed ``__init__`` is the one list of its
    parameters and their defaults), preset values, training defaults and how to read old runs."""

    name: str
    builder: Callable[..., nn.Module]
    description: str
    train: TrainSettings = field(default_factory=TrainSettings)
    preset: dict[str, Any] = field(default_factory=dict)
    kind: Kind = "autoencoder"
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


def register_model(name: str, description: str, train: TrainSettings | None = None, kind: Kind = "autoencoder",
                   renamed: dict[str, str] | None = None, added_later: dict[str, Any] | None = None,
                   converters: dict[str, Callable[[Any], Any]] | None = None):
    """Class decorator: register a model class under ``name`` with its training defaults.

    ``renamed``, ``added_later`` and ``converters`` keep runs saved by earlier versions loading:
    an old parameter name, a parameter the model gained (with the value those runs had), a value
    whose form changed (e.g. an int that became a tuple)."""

    def decorate(builder):
        _add(ModelEntry(name, builder, description, train or TrainSettings(), {}, kind, renamed or {},
                        added_later or {}, converters or {}))
        return builder

    return decorate


def register_preset(name: str, base: str, description: str, train: TrainSettings | None = None,
                    **params: Any) -> None:
    """Register ``name`` as ``base`` with other parameter values and/or training settings."""
    parent = get_entry(base)
    unknown = set(params) - set(parent.defaults())
    if unknown:
        raise ValueError(f"preset {name}: {base} has no parameter(s) {sorted(unknown)}")
    _add(ModelEntry(name, parent.builder, description, train or parent.train, {**parent.preset, **params},
                    parent.kind, parent.renamed, parent.added_later, parent.converters))


def register_alias(alias: str, name: str) -> None:
    """Another name for a registered model (an older name that runs and scripts still use)."""
    if alias in _REGISTRY or alias in _ALIASES:
        raise ValueError(f"model {alias!r} is registered twice")
    _ALIASES[alias] = name


def _add(entry: ModelEntry) -> None:
    if entry.name in _REGISTRY or entry.name in _ALIASES:
        raise ValueError(f"model {entry.name!r} is registered twice")
    clash = set(_signature(entry.builder)) & set(TRAIN_FIELDS)
    if clash:  # aelab.train(**kwargs) takes both by name
        raise ValueError(f"model {entry.name}: parameter(s) {sorted(clash)} share a name with a training setting")
    _REGISTRY[entry.name] = entry


def _ensure_loaded() -> None:
    from . import nets  # noqa: F401  (importing the nets registers them)


def list_models(pattern: str = "*") -> list[str]:
    """Registered names matching a shell-style pattern, sorted: ``list_models("conv*")``."""
    _ensure_loaded()
    return sorted(n for n in _REGISTRY if fnmatch.fnmatch(n, pattern))


def aliases() -> dict[str, str]:
    _ensure_loaded()
    return dict(_ALIASES)


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


def get_entry(name: str) -> ModelEntry:
    _ensure_loaded()
    try:
        return _REGISTRY[_ALIASES.get(name, name)]
    except (KeyError, TypeError):
        raise AelabError(f"unknown model {name!r}; choose one of: {', '.join(list_models())}") from None


def resolve_params(name: str, **overrides: Any) -> dict[str, Any]:
    """The full parameter set for ``name`` with ``overrides`` applied; unknown names are refused."""
    entry = get_entry(name)
    values = entry.defaults()
    unknown = sorted(set(overrides) - set(values))
    if unknown:
        raise AelabError(f"model {entry.name} has no parameter {unknown[0]!r}; "
                         f"its parameters are: {', '.join(values)}")
    values.update({k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()})  # JSON gives lists
    return values


def upgrade_params(name: str, raw: dict[str, Any], what: str = "") -> dict[str, Any]:
    """A run's saved parameters as today's model takes them: old names and forms mapped, missing
    ones filled, each value checked against the model's type hints (one line naming the key)."""
    entry = get_entry(name)
    params = {entry.renamed.get(k, k): v for k, v in raw.items()}
    params = {k: entry.converters[k](v) if k in entry.converters else v for k, v in params.items()}
    params = {**entry.added_later, **params}
    defaults, hints = entry.defaults(), entry.annotations()
    unknown = sorted(set(params) - set(defaults))
    if unknown:
        raise AelabError(f"{what}{unknown[0]} is not a parameter of {entry.name}")
    return {**defaults, **{k: coerce(f"{what}{k}", v, hints.get(k, Any)) for k, v in params.items()}}


def create_model(name: str, **params: Any) -> nn.Module:
    """Build a registered model; bad parameter values become one-line :class:`AelabError`s."""
    entry = get_entry(name)
    values = resolve_params(name, **params)
    try:
        model = entry.builder(**values)
    except (ValueError, TypeError) as error:
        raise AelabError(f"model {entry.name}: {error}") from None
    model.registry_name = entry.name
    model.params = values
    return model


def parse_param(name: str, text: str) -> tuple[str, Any]:
    """Parse ``--param key=value`` for model ``name`` using the model's type hints."""
    if "=" not in text:
        raise AelabError(f"--param expects key=value, got {text!r}")
    key, raw = (part.strip() for part in text.split("=", 1))
    resolve_params(name, **{key: None})  # refuses unknown keys with the list of valid ones
    hint = get_entry(name).annotations().get(key, str)
    try:
        return key, _convert(raw, hint)
    except ValueError:
        raise AelabError(f"--param {key}: cannot read {raw!r} as {describe(hint)}") from None


def _convert(raw: str, hint: Any) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in UNIONS:
        if raw.lower() in ("none", "null", ""):
            return None
        return _convert(raw, next(a for a in args if a is not type(None)))
    if origin is Literal:
        if raw not in args:
            raise AelabError(f"{raw!r} is not one of: {', '.join(map(str, args))}")
        return raw
    if origin is tuple:
        item = args[0] if args else str
        return tuple(_convert(part, item) for part in raw.split(",") if part.strip())
    if hint is bool:
        if raw.lower() in ("1", "true", "yes", "on"):
            return True
        if raw.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError(raw)
    if hint in (int, float, str):
        return hint(raw)
    return raw
