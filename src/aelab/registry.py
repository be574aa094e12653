"""The model registry: one name per model, used by the CLI, configs, checkpoints and results tables.

In the style of timm: ``@register_model`` on a small builder function per family, presets that
re-use a builder with other defaults, ``create_model(name, **params)`` and ``list_models(pattern)``.
A builder's typed signature is the single source of its parameters: the CLI parses
``--param name=value`` against it, and run folders store the resolved values.
"""

from __future__ import annotations

import fnmatch
import inspect
import typing
from dataclasses import dataclass, field, fields, replace
from typing import Any, Callable, Literal

from torch import nn

from .errors import AelabError

LossName = Literal["bce", "mse"]
OptimizerName = Literal["adam", "adadelta", "rmsprop", "sgd"]
ScheduleName = Literal["plateau", "cosine"]
KLForm = Literal["elbo", "seed"]


@dataclass(frozen=True)
class TrainDefaults:
    """How a model is trained unless the user says otherwise (the seed's settings for seed models)."""

    loss: LossName = "bce"
    optimizer: OptimizerName = "adam"
    lr: float = 1e-3
    batch_size: int = 200
    epochs: int = 20
    noise: float = 0.0
    sparsity: float = 0.0
    schedule: ScheduleName = "plateau"  # seed 3's ReduceLROnPlateau, or cosine decay over the epochs
    kl_form: KLForm = "elbo"  # VAEs: summed ELBO, or seed 3's per-pixel-mean formulation
    kl_weight: float = 1.0  # VAEs: beta (elbo) or the seed's 5e-4
    d_lr: float | None = None  # GANs: the discriminator's learning rate; None = 2 x lr, the seed's ratio

    def __post_init__(self) -> None:
        validate_choice("loss", self.loss, LossName)
        validate_choice("optimizer", self.optimizer, OptimizerName)
        validate_choice("schedule", self.schedule, ScheduleName)
        validate_choice("KL form", self.kl_form, KLForm)
        if self.d_lr is not None and self.d_lr <= 0:
            raise AelabError(f"discriminator lr must be positive, got {self.d_lr}")
        if self.kl_weight < 0:
            raise AelabError(f"KL weight must be >= 0, got {self.kl_weight}")
        if self.lr <= 0:
            raise AelabError(f"lr must be positive, got {self.lr}")
        if self.batch_size < 1:
            raise AelabError(f"batch size must be at least 1, got {self.batch_size}")
        if self.epochs < 1:
            raise AelabError(f"epochs must be at least 1, got {self.epochs}")
        if self.noise < 0:
            raise AelabError(f"noise must be >= 0, got {self.noise}")
        if self.sparsity < 0:
            raise AelabError(f"sparsity must be >= 0, got {self.sparsity}")

    def updated(self, **changes: Any) -> "TrainDefaults":
        """A copy with the given settings changed; ``None`` values keep the default."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


def validate_choice(what: str, value: Any, literal: Any) -> None:
    choices = typing.get_args(literal)
    if value not in choices:
        raise AelabError(f"unknown {what} {value!r}; choose one of: {', '.join(map(str, choices))}")


@dataclass(frozen=True)
class ModelEntry:
    name: str
    builder: Callable[..., nn.Module]
    description: str
    train: TrainDefaults = field(default_factory=TrainDefaults)
    preset: dict[str, Any] = field(default_factory=dict)
    kind: Literal["autoencoder", "vae", "gan"] = "autoencoder"
    # builder parameters added after runs had been saved, with the value that rebuilds those runs
    added_later: dict[str, Any] = field(default_factory=dict)

    def defaults(self) -> dict[str, Any]:
        """Every builder parameter with its value for this entry (signature default, then preset)."""
        values = {name: p.default for name, p in inspect.signature(self.builder).parameters.items()}
        values.update(self.preset)
        return values

    def annotations(self) -> dict[str, Any]:
        return typing.get_type_hints(self.builder)


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(name: str, description: str, train: TrainDefaults | None = None,
                   kind: Literal["autoencoder", "vae", "gan"] = "autoencoder", added_later: dict[str, Any] | None = None):
    """Decorator: register ``builder`` under ``name`` with its training defaults. ``added_later``
    names parameters the builder gained after runs were saved, with the value those runs had, so
    that their config.json still rebuilds the model they trained."""

    def decorate(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        _add(ModelEntry(name, builder, description, train or TrainDefaults(), {}, kind, added_later or {}))
        return builder

    return decorate


def register_preset(name: str, base: str, description: str, train: TrainDefaults | None = None,
                    **params: Any) -> None:
    """Register ``name`` as ``base`` with other parameter values and/or training settings."""
    parent = get_entry(base)
    unknown = set(params) - set(parent.defaults())
    if unknown:
        raise ValueError(f"preset {name}: {base} has no parameter(s) {sorted(unknown)}")
    _add(ModelEntry(name, parent.builder, description, train or parent.train,
                    {**parent.preset, **params}, parent.kind, parent.added_later))


def _add(entry: ModelEntry) -> None:
    if entry.name in _REGISTRY:
        raise ValueError(f"model {entry.name!r} is registered twice")
    _REGISTRY[entry.name] = entry


def _ensure_loaded() -> None:
    from . import nets  # noqa: F401  (importing the nets registers them)


def list_models(pattern: str = "*") -> list[str]:
    """Registered names matching a shell-style pattern, sorted: ``list_models("conv*")``."""
    _ensure_loaded()
    return sorted(n for n in _REGISTRY if fnmatch.fnmatch(n, pattern))


def get_entry(name: str) -> ModelEntry:
    _ensure_loaded()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise AelabError(f"unknown model {name!r}; choose one of: {', '.join(list_models())}") from None


def resolve_params(name: str, **overrides: Any) -> dict[str, Any]:
    """The full parameter set for ``name`` with ``overrides`` applied; unknown names are refused."""
    entry = get_entry(name)
    values = entry.defaults()
    unknown = set(overrides) - set(values)
    if unknown:
        raise AelabError(f"model {name} has no parameter {sorted(unknown)[0]!r}; "
                         f"its parameters are: {', '.join(values)}")
    values.update({k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()})  # JSON gives lists
    return values


def create_model(name: str, **params: Any) -> nn.Module:
    """Build a registered model; bad parameter values become one-line :class:`AelabError`s."""
    values = resolve_params(name, **params)
    try:
        model = get_entry(name).builder(**values)
    except (ValueError, TypeError) as error:
        raise AelabError(f"model {name}: {error}") from None
    model.registry_name = name
    model.params = values
    return model


def parse_param(name: str, text: str) -> tuple[str, Any]:
    """Parse ``--param key=value`` for model ``name`` using the builder's type hints."""
    if "=" not in text:
        raise AelabError(f"--param expects key=value, got {text!r}")
    key, raw = (part.strip() for part in text.split("=", 1))
    resolve_params(name, **{key: None})  # refuses unknown keys with the list of valid ones
    hint = get_entry(name).annotations().get(key, str)
    try:
        return key, _convert(raw, hint)
    except ValueError:
        raise AelabError(f"--param {key}: cannot read {raw!r} as {_type_name(hint)}") from None


def _convert(raw: str, hint: Any) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
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


def _type_name(hint: Any) -> str:
    return getattr(hint, "__name__", str(hint))


def train_fields() -> list[str]:
    return [f.name for f in fields(TrainDefaults)]
