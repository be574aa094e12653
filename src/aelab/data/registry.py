"""The dataset registry: every name ``data=`` accepts, registered with ``@register_dataset`` where
its loader is defined (:mod:`aelab.data.sources`). Torch-free: ``aelab datasets`` lists the names
without loading torch; a loader imports what it needs when it runs.

A new dataset is one function in :mod:`aelab.data.sources` (or any module imported there)::

    @register_dataset("my-digits", "what it is, how big, where it comes from", classes=DIGITS)
    def my_digits() -> ImageData: ...

Image datasets return an :class:`~aelab.data.memory.ImageData`; text corpora (``kind="text"``)
return the text as one string.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from ..errors import AelabError

Kind = Literal["images", "text"]


@dataclass(frozen=True)
class DatasetEntry:
    """A registered dataset: its name, a line on it, its loader, its kind and its classes' names
    by label number (None: unnamed)."""

    name: str
    description: str
    load: Callable[[], Any]
    kind: Kind = "images"
    classes: tuple[str, ...] | None = None


_DATASETS: dict[str, DatasetEntry] = {}


def register_dataset(name: str, description: str, kind: Kind = "images", classes: tuple[str, ...] | None = None):
    """Function decorator: register a loader (no arguments) under ``name``."""

    def decorate(load: Callable[[], Any]) -> Callable[[], Any]:
        if name in _DATASETS and _DATASETS[name].load is not load:
            raise AelabError(f"dataset {name!r} is registered twice")
        _DATASETS[name] = DatasetEntry(name, description, load, kind, classes)
        return load

    return decorate


def _entries() -> dict[str, DatasetEntry]:
    from . import sources  # noqa: F401  (its loaders register themselves)

    return _DATASETS


def dataset_names(kind: Kind = "images") -> tuple[str, ...]:
    """The registered names of one kind, in registration order."""
    return tuple(name for name, entry in _entries().items() if entry.kind == kind)


def loader(name: str, kind: Kind = "images") -> Callable[[], Any] | None:
    """The loader of a registered name of ``kind``, or None."""
    entry = _entries().get(name)
    return entry.load if entry is not None and entry.kind == kind else None


def class_names(name: str) -> tuple[str, ...] | None:
    """A registered dataset's classes' names by label number (None: unnamed or not registered)."""
    entry = _entries().get(name)
    return None if entry is None else entry.classes


def list_datasets() -> dict[str, str]:
    """Dataset names ``data=`` accepts (image datasets, then text corpora), with a line on each."""
    entries = _entries().values()
    return {e.name: e.description for kind in ("images", "text") for e in entries if e.kind == kind}
