"""Typed values: a value read as its type hint says (:func:`coerce`; :func:`from_text` for what was
typed on a command line), in its range (:func:`check_range`), the hint in words for messages
(:func:`describe`); and :func:`setting`, a settings dataclass's field with its help and range,
checked by :func:`validate_fields`. Every error is one line naming the value. Torch-free."""

from __future__ import annotations

import functools
import math
import types
import typing
from dataclasses import field, fields
from typing import Any, Literal

from .errors import AelabError

UNIONS = (typing.Union, types.UnionType)  # Optional[X] and X | None


def validate_fields(settings: Any) -> None:
    """Each field of a frozen settings dataclass coerced to its type hint and checked against its
    range (one line naming the field); set once, already validated."""
    hints = hints_of(type(settings))
    for f in fields(settings):
        value = coerce(f.name, getattr(settings, f.name), hints[f.name])
        check_range(f.name, value, f.metadata)
        object.__setattr__(settings, f.name, value)


def setting(
    default: Any,
    help_text: str,
    *,
    low: float | None = None,
    high: float | None = None,
    open_low: bool = False,
    open_high: bool = False,
) -> Any:
    """A field of :class:`TrainSettings`: default, help and range (``low``/``high``, inclusive
    unless ``open_*``)."""
    return field(
        default=default,
        metadata={"help": help_text, "low": low, "high": high, "open_low": open_low, "open_high": open_high},
    )


@functools.cache
def hints_of(settings_class: type) -> dict[str, Any]:
    """The type hints of a settings dataclass's fields (read once per class)."""
    return typing.get_type_hints(settings_class)


def describe(hint: Any) -> str:
    """A type hint in words, for error messages."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Literal:
        return "one of " + ", ".join(map(str, args))
    if origin in UNIONS:
        return " or ".join("none" if a is type(None) else describe(a) for a in args)
    if origin is dict:
        return "name=number pairs (e.g. recon=1,label=0.5)"
    if origin is tuple:
        return "a list of " + {int: "integers", float: "numbers", str: "strings"}.get(
            args[0] if args else None, "values"
        )
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string"}.get(hint, str(hint))


def coerce(name: str, value: Any, hint: Any) -> Any:
    """``value`` as ``hint`` (a JSON list becomes a tuple, an integer a float), or a one-line
    :class:`AelabError` naming ``name``."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    wrong = AelabError(f"{name} must be {describe(hint)}, got {value!r}"[:300])
    if origin in UNIONS:
        if value is None and type(None) in args:
            return None
        for arg in (a for a in args if a is not type(None)):
            try:
                return coerce(name, value, arg)
            except AelabError:
                continue
        raise wrong
    if origin is Literal:
        if isinstance(value, str) and value in args:
            return value
        raise AelabError(f"unknown {name} {value!r}; choose one of: {', '.join(map(str, args))}"[:300])
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise wrong
        item = args[0] if args else Any
        return tuple(coerce(name, v, item) if item is not Any else v for v in value)
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise wrong
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise wrong
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise AelabError(f"{name} must be a finite number, got {value!r}")
            return float(value)
        raise wrong
    if hint is str:
        if isinstance(value, str):
            return value
        raise wrong
    if origin is dict:  # a JSON object, or the CLI's "name=number,name=number"
        if isinstance(value, str):
            pairs = [part.split("=", 1) for part in value.split(",") if part.strip()]
            if any(len(pair) != 2 for pair in pairs):
                raise AelabError(f"{name} must be name=number pairs separated by commas, got {value!r}"[:300])
            value = {}
            for key, number in pairs:
                try:
                    value[key.strip()] = float(number)
                except ValueError:
                    raise AelabError(f"{name}: {key.strip()} must be a number, got {number!r}"[:300]) from None
        if not isinstance(value, dict) or not value:
            raise wrong
        result = {}
        for key, number in value.items():
            result[coerce(name, key, args[0])] = coerce(f"{name}.{key}", number, args[1])
            check_range(f"{name}.{key}", result[key], {"low": 0})
        return result
    return value


def from_text(raw: str, hint: Any) -> Any:
    """A value typed on the command line in the form :func:`coerce` then checks against ``hint``:
    ``none`` for an optional, a comma-separated list for a tuple, yes/no words for a boolean,
    numbers; anything it cannot read is passed on as the text, for :func:`coerce` to refuse."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in UNIONS:
        if raw.lower() in ("none", "null", ""):
            return None
        return from_text(raw, next(a for a in args if a is not type(None)))
    if origin is tuple:  # "a,b,c"; "none": an empty list
        if raw.strip().lower() == "none":
            return ()
        item = args[0] if args else str
        return tuple(from_text(part.strip(), item) for part in raw.split(",") if part.strip())
    if hint is bool:
        return {
            "1": True,
            "true": True,
            "yes": True,
            "on": True,
            "0": False,
            "false": False,
            "no": False,
            "off": False,
        }.get(raw.lower(), raw)
    if hint in (int, float):
        try:
            return hint(raw)
        except ValueError:
            return raw
    return raw


def check_range(name: str, value: Any, meta: typing.Mapping[str, Any]) -> None:
    """The range of one numeric setting; raises a one-line :class:`AelabError` naming it."""
    low, high = meta.get("low"), meta.get("high")
    if value is None or isinstance(value, (bool, str)) or (low is None and high is None):
        return
    too_low = low is not None and (value <= low if meta.get("open_low") else value < low)
    too_high = high is not None and (value >= high if meta.get("open_high") else value > high)
    if not (too_low or too_high):
        return

    def shown(bound: float) -> str:
        return f"{bound:,}" if isinstance(bound, int) else f"{bound:g}"

    if low is not None and high is not None:
        raise AelabError(f"{name} must lie between {shown(low)} and {shown(high)}, got {value!r}")
    if high is not None:
        raise AelabError(f"{name} must be at most {shown(high)}, got {value!r}")
    if low == 0 and meta.get("open_low"):
        raise AelabError(f"{name} must be positive, got {value!r}")
    raise AelabError(f"{name} must be at least {shown(low)}, got {value!r}")
