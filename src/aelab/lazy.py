"""A package's exported names, each imported from its module on first use (PEP 562's module
``__getattr__``): ``import aelab`` stays fast and loads no torch until a name needs it."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_exports(
    package: str, exports: dict[str, str], namespace: dict[str, Any], modules: tuple[str, ...] = ()
) -> Callable[[str], Any]:
    """The ``__getattr__`` of ``package``: ``exports`` maps each name to the submodule defining it
    (relative to the package); ``modules`` are public submodules reached as attributes
    (``aelab.settings``); a name once looked up is kept in ``namespace`` (the package's globals)."""

    def __getattr__(name: str) -> Any:
        if name in modules:
            value = importlib.import_module(f".{name}", package)
        elif name in exports:
            value = getattr(importlib.import_module(f".{exports[name]}", package), name)
        else:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        namespace[name] = value
        return value

    return __getattr__
