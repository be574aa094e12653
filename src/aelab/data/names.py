"""The registered dataset names: lookups over :mod:`aelab.data.registry` once every loader in
:mod:`aelab.data.sources` has registered itself. Torch-free, as both are."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import registry, sources  # noqa: F401  (sources: its loaders register themselves)
from .registry import Holds


def dataset_names(holds: Holds = "images") -> tuple[str, ...]:
    """The registered names of datasets holding ``holds``, in registration order."""
    return tuple(name for name, entry in registry._DATASETS.items() if entry.holds == holds)


def loader(name: str, holds: Holds = "images") -> Callable[[], Any] | None:
    """The loader of a registered name holding ``holds``, or None."""
    entry = registry._DATASETS.get(name)
    return entry.load if entry is not None and entry.holds == holds else None


def class_names(name: str) -> tuple[str, ...] | None:
    """A registered dataset's classes' names by label number (None: unnamed or not registered)."""
    entry = registry._DATASETS.get(name)
    return None if entry is None else entry.classes


def list_datasets() -> dict[str, str]:
    """Dataset names ``data=`` accepts (image datasets, then text corpora), with a line on each."""
    return {
        name: entry.description
        for holds in ("images", "text")
        for name, entry in registry._DATASETS.items()
        if entry.holds == holds
    }
