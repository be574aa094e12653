"""The search space: the dimensions a model's family searches by default, ``--space`` overrides
parsed (``lr=1e-4:1e-2:log``), checked against the settings and parameters the model has.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from ..config import Dimension, settings_from
from ..errors import AelabError, opt

log = logging.getLogger("aelab")


def parse_dimension(text: str) -> Dimension:
    """``name=low:high[:log]`` (a range; ints on both ends make an int range) or ``name=a,b,c``
    (a choice ``16x48`` is the tuple of layer widths (16, 48))."""
    name, sep, spec = text.partition("=")
    name, spec = name.strip(), spec.strip()
    if not sep or not name or not spec:
        raise AelabError(f"{opt('space')} takes name=low:high[:log] or name=a,b,c, got {text!r}")
    if ":" in spec:
        parts = spec.split(":")
        log_scale = parts[-1] == "log"
        bounds = parts[:-1] if log_scale else parts
        if len(bounds) != 2:
            raise AelabError(f"{opt('space')} {name}: a range is low:high or low:high:log, got {spec!r}")
        try:
            numbers = [_number(b) for b in bounds]
        except ValueError:
            raise AelabError(f"{opt('space')} {name}: the bounds must be numbers, got {spec!r}") from None
        low, high = numbers
        if not low < high:
            raise AelabError(f"{opt('space')} {name}: the range {spec!r} is empty (low must be below high)")
        if log_scale and low <= 0:
            raise AelabError(f"{opt('space')} {name}: a log range needs a positive low end, got {low:g}")
        return Dimension(name, low, high, log_scale, all(isinstance(n, int) for n in numbers))
    choices = tuple(_value(part.strip()) for part in spec.split(",") if part.strip())
    if not choices:
        raise AelabError(f"{opt('space')} {name}: no choices in {spec!r}")
    return Dimension(name, choices=choices)


def _number(text: str) -> int | float:
    value = float(text)
    return int(value) if value.is_integer() and "." not in text and "e" not in text.lower() else value


def _value(text: str) -> Any:
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if re.fullmatch(r"\d+(x\d+)+", lowered):
        return tuple(int(part) for part in lowered.split("x"))
    try:
        return _number(text)
    except ValueError:
        return text


def default_space(model: str) -> list[Dimension]:
    """A sensible search space for ``model``: its family's (:meth:`aelab.families.base.Family.search_space`)."""
    from ..families import family_of
    from ..models import get_entry

    return family_of(model).search_space(get_entry(model))


def check_space(model: str, space: list[Dimension]) -> None:
    """Every dimension names a setting the model's system uses or a parameter of the model, and its
    bounds or choices are values that setting takes: checked before the first trial."""
    from ..families import family_of
    from ..models import create_model, get_entry

    entry = get_entry(model)
    family = family_of(model)
    settings, params = family.default_settings(entry), entry.defaults()
    for dim in space:
        values = dim.choices if dim.choices is not None else (dim.low, dim.high)
        if dim.name in settings.names():
            for value in values:
                try:
                    settings_from({dim.name: value}, settings)
                except AelabError as error:
                    raise AelabError(f"{opt('space')} {dim.name}: {error}") from None
        elif dim.name in params:
            for value in values:
                try:
                    create_model(entry.name, **{dim.name: value})  # builds it: every value is one it takes
                except AelabError as error:
                    raise AelabError(f"{opt('space')} {dim.name}: {error}") from None
        else:
            raise AelabError(
                f"{opt('space')}: {entry.name} has no setting or parameter {dim.name!r}; the settings: "
                f"{', '.join(settings.names())}; the parameters: "
                f"{', '.join(params)}"[:500]
            )


def merge_space(model: str, overrides: list[str] | None, fixed: Any = ()) -> list[Dimension]:
    """The model's default space with ``--space`` entries replacing or adding dimensions; a default
    dimension whose setting is ``fixed`` (given for every trial, ``--param code_size=49``) is left out."""
    from ..models import get_entry

    defaults = get_entry(model).defaults()
    space = {dim.name: dim for dim in default_space(model) if dim.name not in fixed}
    for text in overrides or []:
        dim = _as_widths(parse_dimension(text), defaults.get(text.partition("=")[0].strip()))
        if dim.name in fixed:
            raise AelabError(
                f"{opt('space')} {dim.name}: {dim.name} is also fixed for every trial; search it or fix it"
            )
        space[dim.name] = dim
    result = list(space.values())
    check_space(model, result)
    return result


def _as_widths(dim: Dimension, default: Any) -> Dimension:
    """Choices for a parameter of layer widths: a single number is a one-layer tuple (``channels=1,2``)."""
    if not isinstance(default, tuple) or dim.choices is None:
        return dim
    return Dimension(
        dim.name, choices=tuple((c,) if isinstance(c, int) and not isinstance(c, bool) else c for c in dim.choices)
    )
