"""Keep a command-line process's start-up cheap.

``bayescale fit`` and ``bayescale summary`` are run from fresh processes far more often than
from a long session, so import time is most of their cost. When Dask is installed (it is, for
:mod:`bayescale.fitting.batch`) but unused, xarray imports it anyway, just to ask questions whose
answer is "no" until Dask has been imported:

* wrapping a NumPy array, it asks whether the array is a Dask array (``dask.array``, half a
  second);
* building an index, whether a value is a Dask collection (``dask.base``);
* writing a netCDF file, which Dask scheduler is active, to pick a lock
  (``dask.distributed``, a third of a second).

No Dask array, collection or scheduler can exist before Dask has been imported, so
:func:`defer_dask_probes` makes those three questions answer "no" while ``dask`` is not in
``sys.modules`` and ask xarray's own code as soon as it is. The command line calls it once at
start; the library leaves xarray alone.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, cast

__all__ = ["defer_dask_probes"]


def defer_dask_probes() -> bool:
    """Defer xarray's imports of Dask until Dask is in use; return True if deferred.

    Does nothing (and returns False) when Dask is already imported, when it was deferred
    already, or when xarray's internals are not the expected ones (a newer xarray then only
    costs the imports).
    """
    if "dask" in sys.modules:
        return False
    try:
        # xarray is imported where used: the command line calls this after parsing its
        # arguments, so `bayescale --help` never loads it (nor a stored `bayescale summary`)
        from xarray.backends import locks, writers
        from xarray.namedarray import pycompat
        from xarray.namedarray import utils as named_utils
    except ImportError:  # pragma: no cover - xarray is a dependency
        return False
    scheduler = getattr(locks, "get_dask_scheduler", None)
    collection = getattr(named_utils, "is_dask_collection", None)
    cache = getattr(pycompat, "_cached_duck_array_modules", None)
    if (
        scheduler is None
        or getattr(writers, "get_dask_scheduler", None) is not scheduler
        or collection is None
        or getattr(collection, "__wrapped__", None) is not None
        or not isinstance(cache, dict)
        or "dask" in cache
        or not hasattr(pycompat, "DuckArrayModule")
    ):
        return False
    real_scheduler = cast(Callable[..., Any], scheduler)  # not None: checked above
    locks.get_dask_scheduler = writers.get_dask_scheduler = _unless_dask(real_scheduler, None)
    # The wrapper keeps the TypeGuard's meaning (False: not a Dask collection); its stub type
    # cannot say so.
    named_utils.is_dask_collection = _unless_dask(collection, False)  # type: ignore[assignment]
    cache["dask"] = _deferred_array_module(pycompat.DuckArrayModule, cache)
    return True


def _unless_dask(real: Callable[..., Any], answer: Any) -> Callable[..., Any]:
    """Wrap ``real`` to return ``answer`` while Dask is not imported."""

    @functools.wraps(real)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if "dask" not in sys.modules:
            return answer
        return real(*args, **kwargs)

    return wrapper


def _deferred_array_module(real_class: type, cache: dict[str, Any]) -> Any:
    """Stand in for xarray's record of the Dask array module: empty until Dask is imported."""

    class DeferredDask(real_class):
        def __init__(self) -> None:  # importing nothing is the point
            pass

        def _real(self) -> Any:
            if "dask.array" not in sys.modules:
                return None
            real = real_class("dask")
            cache["dask"] = real
            return real

        @property
        def module(self) -> Any:
            real = self._real()
            return None if real is None else real.module

        @property
        def type(self) -> tuple:
            real = self._real()
            return () if real is None else real.type

        @property
        def available(self) -> bool:
            real = self._real()
            return False if real is None else real.available

        @property
        def version(self) -> Any:
            return (self._real() or real_class("dask")).version

    return DeferredDask()
