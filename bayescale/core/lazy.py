"""Lazy re-exports for package ``__init__`` modules (PEP 562), so importing a package is free.

``import bayescale`` must stay well under a second, and a package's ``__init__`` importing its
modules eagerly would also make any import of one of them import all the others (and cycles
between the stages). Each package instead names where its public objects live.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(
    package: str, exports: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """Return ``__getattr__`` and ``__dir__`` for a package re-exporting names lazily.

    Parameters
    ----------
    package : str
        The package's ``__name__``.
    exports : mapping of str to str
        Public name to the module (absolute dotted path) defining it.

    Returns
    -------
    tuple of callables
        Module-level ``__getattr__(name)``, importing the defining module on first use and
        caching the object in the package's namespace, and ``__dir__()``.

    Examples
    --------
    In ``bayescale/runs/__init__.py``::

        __getattr__, __dir__ = lazy_exports(__name__, {"load_runs": "bayescale.runs.table"})
    """

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        setattr(importlib.import_module(package), name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(exports)

    return __getattr__, __dir__
