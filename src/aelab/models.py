"""Registered models by name: ``list_models``, ``create_model``, the parameters of a name and
how a run's saved parameters map onto today's model. Importing this module imports ``nets/``,
whose modules register themselves in :mod:`aelab.registry`.
"""

from __future__ import annotations

import fnmatch
import typing
from typing import TYPE_CHECKING, Any, Literal

import torch

from . import nets  # noqa: F401  (importing the nets registers them)
from .errors import AelabError, opt
from .limits import MAX_SIDE, check_count, check_memory
from .registry import _ALIASES, _REGISTRY, ModelEntry
from .values import coerce, describe, from_text

if TYPE_CHECKING:
    from torch import nn


def list_models(pattern: str = "*") -> list[str]:
    """Registered names matching a shell-style pattern, sorted: ``list_models("conv*")``."""
    if not isinstance(pattern, str):
        raise AelabError(f"the pattern must be a string such as 'conv*', got {type(pattern).__name__}")
    return sorted(n for n in _REGISTRY if fnmatch.fnmatch(n, pattern))


def aliases() -> dict[str, str]:
    return dict(_ALIASES)


def get_entry(name: str) -> ModelEntry:
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
        raise AelabError(
            f"model {entry.name} has no parameter {unknown[0]!r}{_setting_hint(unknown[0])}; "
            f"its parameters are: {', '.join(values)}"
        )
    values.update({k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()})  # JSON gives lists
    return values


# words users bring from other libraries and papers for what is a training setting here
SETTING_WORDS = {
    "beta": "kl_weight",
    "learning_rate": "lr",
    "batch": "batch_size",
    "noise_factor": "noise",
    "max_epochs": "epochs",
    "weight_kl": "kl_weight",
    "kl": "kl_weight",
    "activity_l1": "sparsity",
    "l1": "sparsity",
    "val_split": "val_fraction",
    "validation_split": "val_fraction",
}


def _setting_hint(name: str) -> str:
    """ ", a training setting: ..." when ``name`` means (or nearly spells) a common setting or one
    of the words above."""
    import difflib

    from .config import TrainSettings

    known = (*TrainSettings.names(), *SETTING_WORDS.values())
    setting = SETTING_WORDS.get(name) or next(iter(difflib.get_close_matches(name, known, n=1, cutoff=0.8)), None)
    if setting is None:
        return ""
    return (
        f" (it is a training setting here: {setting}=... in Python, --{setting.replace('_', '-')} on the command line)"
    )


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
    if isinstance(values.get("in_size"), int) and not isinstance(values["in_size"], bool):
        check_count(f"model {entry.name}: in_size", values["in_size"], 1, MAX_SIDE)
    if _grown(values, entry.defaults()):  # a size above the registered one: measured first, on no memory
        try:
            with torch.device("meta"):
                weights = sum(p.numel() * p.element_size() for p in entry.builder(**values).parameters())
        except (ValueError, TypeError) as error:
            raise AelabError(f"model {entry.name}: {error}") from None
        except Exception:  # noqa: BLE001 - a layer that cannot be built on the meta device: built for real
            weights = 0
        check_memory(f"model {entry.name}'s weights, gradients and optimiser state", 4 * weights)
    try:
        model = entry.builder(**values)
    except (ValueError, TypeError) as error:
        raise AelabError(f"model {entry.name}: {error}") from None
    model.registry_name = entry.name
    model.params = values
    return model


def _grown(values: dict[str, Any], defaults: dict[str, Any]) -> bool:
    """Whether a size-like parameter (a whole number, or a list of them) is above its registered value."""

    def largest(value: Any) -> int:
        items = value if isinstance(value, tuple) else (value,)
        return max((v for v in items if isinstance(v, int) and not isinstance(v, bool)), default=0)

    return any(largest(value) > largest(defaults.get(name)) for name, value in values.items())


def parse_param(name: str, text: str) -> tuple[str, Any]:
    """Parse ``--param key=value`` for model ``name`` using the model's type hints."""
    if "=" not in text:
        raise AelabError(f"{opt('param')} expects key=value, got {text!r}")
    key, raw = (part.strip() for part in text.split("=", 1))
    resolve_params(name, **{key: None})  # refuses unknown keys with the list of valid ones
    hint = get_entry(name).annotations().get(key, str)
    try:
        return key, coerce(f"{opt('param')} {key}", from_text(raw, hint), hint)
    except AelabError:
        choices = typing.get_args(hint) if typing.get_origin(hint) is Literal else None
        why = (
            f"{raw!r} is not one of: {', '.join(map(str, choices))}"
            if choices
            else f"cannot read {raw!r} as {describe(hint)}"
        )
        raise AelabError(f"{opt('param')} {key}: {why}") from None
