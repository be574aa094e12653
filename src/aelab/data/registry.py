"""The dataset registry's store: every name ``data=`` accepts, registered with ``@register_dataset``
where its loader is defined (:mod:`aelab.data.sources`); :mod:`aelab.data.names` looks names up
once the sources have registered. Torch-free: ``aelab datasets`` lists the names without loading
torch; a loader imports what it needs when it runs.

A new dataset is one function in :mod:`aelab.data.sources` (or any module imported there)::

    @register_dataset("my-digits", "what it is, how big, where it comes from", classes=DIGITS)
    def my_digits() -> ImageData: ...

Image datasets return an :class:`~aelab.data.memory.ImageData`; text corpora (``holds="text"``)
return the text as one string.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from ..errors import AelabError

Holds = Literal["images", "text"]


@dataclass(frozen=True)
class DatasetEntry:
    """A registered dataset: its name, a line on it, its loader, what it holds and its classes' names
    by label number (None: unnamed)."""

    name: str
    description: str
    load: Callable[[], Any]
    holds: Holds = "images"
    classes: tuple[str, ...] | None = None


_DATASETS: dict[str, DatasetEntry] = {}


def register_dataset(name: str, description: str, holds: Holds = "images", classes: tuple[str, ...] | None = None):
    """Function decorator: register a loader (no arguments) under ``name``."""

    def decorate(load: Callable[[], Any]) -> Callable[[], Any]:
        if name in _DATASETS and _DATASETS[name].load is not load:
            raise AelabError(f"dataset {name!r} is registered twice")
        _DATASETS[name] = DatasetEntry(name, description, load, holds, classes)
        return load

    return decorate
