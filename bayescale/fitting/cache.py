"""Compiled models, cached in memory and on disk, so a fresh process does not recompile.

nutpie turns a PyMC model into two native functions with numba: the log density with its
gradient, and the expansion of a draw into every reported quantity. Compiling them costs
5-20 s, nearly all of it numba type inference and LLVM optimisation (measured on the Chinchilla
model: 1.4 s of PyTensor rewriting, 12 s for the log-density callback, 1.9 s for the expansion
one), and numba cannot cache these callbacks itself because they are built from generated code.

The machine code does not depend on the data: every data-dependent number is ``pm.Data`` (see
:mod:`bayescale.model.build`), which the compiled code reads through a table of pointers and shapes
at run time. So the object code of both callbacks is saved once per model graph and loaded by
later processes in milliseconds, with no PyMC or PyTensor work at all.

An entry is keyed by everything the code depends on: the model graph (:func:`graph_key`), the
source of the modules that build graphs and of the law's functions, the versions of PyMC,
PyTensor, nutpie, numba and llvmlite, numba/PyTensor settings from the environment, and the CPU
(object code is compiled for the host's instruction set). Entries carry a SHA-256 of their
content, which is checked before anything in them is used, and the loaded code is called once
on the new data before sampling; a damaged, truncated or incompatible entry is ignored and
replaced, never fatal.

Entries are written atomically (see :func:`bayescale.core.files.atomic_file`), so processes
compiling the same model at once each write a complete entry and the last one wins, and (on Linux) a
process killed while writing leaves no partial or temporary file.

Location: ``$BAYESCALE_CACHE_DIR`` if set (``none`` disables the disk cache), else
``$XDG_CACHE_HOME/bayescale`` (``~/.cache/bayescale``). A directory that cannot be created or
written costs only speed: models are compiled without the disk cache, with one
:class:`CacheWarning` per process. Entries are about 0.5 MB each; remove them with
:func:`clear_cache`.
"""

from __future__ import annotations

import ctypes
import dataclasses
import functools
import hashlib
import importlib
import logging
import os
import pickle
import sys
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from bayescale.core.files import atomic_file, pause_point
from bayescale.core.priors import Prior
from bayescale.fitting.nutpie import import_nutpie
from bayescale.laws.base import Law
from bayescale.model.build import ModelData, build_model, graph_key
from bayescale.model.start import FreeVar, free_vars

__all__ = [
    "CacheWarning",
    "CompiledModel",
    "cache_dir",
    "clear_cache",
    "compiled_model",
    "model_key",
]

log = logging.getLogger(__name__)

CACHE_ENV = "BAYESCALE_CACHE_DIR"
#: Bump when the layout of an entry changes.
ENTRY_FORMAT = 1
_MAGIC = b"bayescale compiled model\n"
_SUFFIX = ".nbm"
#: Modules whose source shapes the model graph: editing any of them invalidates every entry.
_GRAPH_MODULES = ("laws.base", "model.build", "model.pooling", "core.priors")
_PACKAGES = ("pymc", "pytensor", "nutpie", "numba", "llvmlite", "numpy")

_MEMORY: dict[str, CompiledModel] = {}
#: Cache directories already reported unusable in this process: one warning each, not one per fit.
_WARNED: set[Path] = set()


class CacheWarning(UserWarning):
    """The disk cache of compiled models cannot be used; models are compiled in memory only."""


@dataclass(frozen=True)
class CompiledModel:
    """A nutpie model compiled for one model graph, usable with any data of that graph.

    Attributes
    ----------
    nutpie : nutpie.compile_pymc.CompiledPyMCModel
        The compiled model (bound to whatever data it was last given).
    free : tuple of FreeVar
        The free variables and their place in the sampler's flat vector.
    key : str
        Cache key (hex digest).
    origin : str
        ``"compiled"`` (this call compiled it), ``"disk"`` (loaded from the disk cache) or
        ``"memory"`` (reused from earlier in this process).
    """

    nutpie: Any
    free: tuple[FreeVar, ...]
    key: str
    origin: str

    def bind(
        self,
        values: Mapping[str, Any],
        coords: Mapping[str, Any],
        initial_point: Any = None,
    ) -> Any:
        """Return the nutpie model with new data, coordinates and (optionally) starting points.

        Parameters
        ----------
        values : mapping
            Value of every ``pm.Data`` (see :func:`bayescale.model.build.data_values`).
        coords : mapping
            Coordinates of the model's dims for this data (labels of runs, groups...).
        initial_point : callable, optional
            ``seed -> flat array`` giving each chain's start; default: keep the current one.
        """
        model = self.nutpie.with_data(**values)
        changes: dict[str, Any] = {"_coords": {**(model.coords or {}), **coords}}
        if initial_point is not None:
            changes["initial_point_func"] = initial_point
        return dataclasses.replace(model, **changes)


def cache_dir() -> Path | None:
    """Directory of the disk cache, or None when disabled (``BAYESCALE_CACHE_DIR=none``)."""
    configured = os.environ.get(CACHE_ENV)
    if configured is not None:
        return None if configured.strip().lower() in ("", "none", "off") else Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "bayescale"


def clear_cache(*, disk: bool = True) -> int:
    """Forget compiled models (in memory, and on disk unless ``disk=False``).

    Returns
    -------
    int
        Number of disk entries removed.
    """
    _MEMORY.clear()
    directory = cache_dir()
    if not disk or directory is None or not directory.is_dir():
        return 0
    removed = 0
    for entry in directory.glob(f"*{_SUFFIX}"):
        entry.unlink(missing_ok=True)
        removed += 1
    return removed


def _const_bytes(value: Any) -> bytes:
    if hasattr(value, "co_code"):
        return _code_bytes(value)
    if isinstance(value, frozenset | set):  # iteration order varies with string hashing
        return repr(sorted(map(repr, value))).encode()
    return repr(value).encode()


def _code_bytes(code: Any) -> bytes:
    # Not marshal: its output depends on reference counts, so it differs between calls.
    consts = b"".join(_const_bytes(c) for c in code.co_consts)
    return code.co_code + consts + repr(code.co_names).encode()


def _code_fingerprint(fn: Any) -> bytes:
    """Return bytes that change when a law function's code or captured constants change."""
    code = getattr(fn, "__code__", None)
    if code is None:
        return repr(fn).encode()
    cells = tuple(
        repr(c.cell_contents) if isinstance(c.cell_contents, str | int | float | bool) else ""
        for c in (fn.__closure__ or ())
    )
    return _code_bytes(code) + repr(cells).encode()


def _environment() -> tuple:
    """Describe what machine code depends on besides the graph: versions, settings, CPU."""
    # numba and nutpie are imported where used (nutpie ~1.8 s): the samplers module imports
    # this one for every sampler; only keying, compiling or rebuilding a nutpie model needs them
    from numba.core.registry import cpu_target

    versions: list[tuple[str, str | None]] = []
    for name in _PACKAGES:
        try:
            versions.append((name, metadata.version(name)))
        except metadata.PackageNotFoundError:
            versions.append((name, None))
    settings = tuple(
        sorted((k, v) for k, v in os.environ.items() if k.startswith(("NUMBA_", "PYTENSOR_")))
    )
    cpu = cpu_target.target_context.codegen().magic_tuple()
    return (sys.version, tuple(versions), settings, cpu)


def _object_bytes(obj: Any, module: str) -> bytes:
    if hasattr(obj, "__code__"):
        return _code_fingerprint(obj)
    if isinstance(obj, type) and obj.__module__ == module:
        return b"".join(
            _object_bytes(v, module) for k, v in sorted(vars(obj).items()) if callable(v)
        )
    if isinstance(obj, str | int | float | bool | tuple | frozenset | type(None)):
        return _const_bytes(obj)
    return b""


@functools.cache
def _source_fingerprint() -> bytes:
    """Hash the code of the modules that build model graphs, as loaded in this process.

    The loaded code, not the files: a file edited after import must not name the old code.
    """
    h = hashlib.sha256()
    for name in _GRAPH_MODULES:
        module = importlib.import_module(f"bayescale.{name}")
        for key, value in sorted(vars(module).items()):
            if getattr(value, "__module__", module.__name__) == module.__name__:
                h.update(key.encode() + _object_bytes(value, module.__name__))
    return h.digest()


def model_key(law: Law, data: ModelData, priors: Mapping[str, Prior], likelihood: str) -> str:
    """Hex digest naming the compiled model of ``law`` for data and priors of this shape."""
    h = hashlib.sha256()
    h.update(repr((ENTRY_FORMAT, graph_key(law, data, priors, likelihood))).encode())
    for fn in (law.log_loss, law.to_params, law.derived):
        h.update(_code_fingerprint(fn))
    h.update(_source_fingerprint())
    h.update(repr(_environment()).encode())
    return h.hexdigest()


# --------------------------------------------------------------------------------------------
# Compiling, saving and loading
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _SharedName:
    """Stand-in for a PyTensor shared variable: nutpie's ``with_data`` only reads its name."""

    name: str


class _NativeFunction:
    """A loaded native callback: its address, and the code library that keeps it alive."""

    def __init__(self, address: int, library: Any) -> None:
        self.address = address
        self._library = library


def _compile(
    law: Law, data: ModelData, priors: Mapping[str, Prior], likelihood: str, key: str
) -> tuple[CompiledModel, dict[str, Any]]:

    nutpie = import_nutpie()
    model = build_model(law, data, priors=priors, likelihood=likelihood)
    pause_point("compile")
    compiled = nutpie.compile_pymc_model(model)
    free = free_vars(model)
    names, slices, _ = compiled.shape_info
    if [(v.value, v.start, v.stop) for v in free] != [
        (n, s.start, s.stop) for n, s in zip(names[: len(free)], slices, strict=False)
    ]:
        raise RuntimeError("nutpie lays out the free variables differently from PyMC's order")
    entry = {
        "format": ENTRY_FORMAT,
        "key": key,
        "logp": (
            compiled.compiled_logp_func._library.serialize_using_object_code(),
            compiled.compiled_logp_func.native_name,
        ),
        "expand": (
            compiled.compiled_expand_func._library.serialize_using_object_code(),
            compiled.compiled_expand_func.native_name,
        ),
        "shared": [(var.name, k) for var, k in compiled.shared_var_keys.items()],
        "shared_dtypes": {k: v.dtype.str for k, v in compiled.shared_data.items()},
        "user_dtype": compiled.user_data.dtype,
        "n_dim": compiled.n_dim,
        "n_expanded": compiled.n_expanded,
        "shape_info": compiled.shape_info,
        "dims": compiled.dims,
        "coords": compiled.coords,
        "reparameterized_names": compiled.reparameterized_names,
        "free": free,
    }
    return CompiledModel(compiled, free, key, "compiled"), entry


def _warn_unusable(directory: Path, exc: OSError) -> None:
    """Say once per process and directory that the disk cache is off, and why."""
    if directory in _WARNED:
        return
    _WARNED.add(directory)
    warnings.warn(
        f"compiled-model cache {str(directory)!r} is not usable ({exc.strerror or exc}); "
        f"compiling without a disk cache, so every new process compiles again. Set {CACHE_ENV} "
        "to a writable directory, or to 'none' to turn the disk cache off",
        CacheWarning,
        stacklevel=4,
    )


def _entry_path(key: str) -> Path | None:
    """Where the entry for ``key`` lives; None when the disk cache is off or unusable."""
    directory = cache_dir()
    if directory is None:
        return None
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # e.g. a path under a regular file: only costs speed
        _warn_unusable(directory, exc)
        return None
    return directory / f"{key}{_SUFFIX}"


def _save(path: Path, entry: dict[str, Any]) -> None:
    body = pickle.dumps(entry, protocol=pickle.HIGHEST_PROTOCOL)
    try:
        with atomic_file(path) as handle:
            handle.write(_MAGIC + hashlib.sha256(body).digest() + body)
    except OSError as exc:  # a read-only or full cache only costs speed
        _warn_unusable(path.parent, exc)


def _read(path: Path, key: str) -> dict[str, Any] | None:
    """Return the entry at ``path`` if it is intact and for ``key``, else None."""
    try:
        raw = path.read_bytes()
    except OSError:
        return None
    head = len(_MAGIC)
    digest, body = raw[head : head + 32], raw[head + 32 :]
    if raw[:head] != _MAGIC or hashlib.sha256(body).digest() != digest:
        log.info("ignoring damaged compiled-model cache entry %s", path)
        return None
    try:
        entry = pickle.loads(body)
    except Exception as exc:  # an entry written by other library versions may not unpickle
        log.info("ignoring unreadable compiled-model cache entry %s: %s", path, exc)
        return None
    if not isinstance(entry, dict) or entry.get("format") != ENTRY_FORMAT or entry["key"] != key:
        return None
    return entry


def _rebuild(entry: dict[str, Any], values: Mapping[str, Any]) -> CompiledModel:
    """Link the saved object code and wrap it as a nutpie model bound to ``values``."""
    from numba.core.registry import cpu_target
    from numba.core.runtime import rtsys

    import_nutpie()
    from nutpie.compile_pymc import CompiledPyMCModel, update_user_data

    context = cpu_target.target_context  # creating it registers numba's C helpers and libm
    # The code links against numba's runtime (array allocation). Only initialise that: a full
    # context refresh would load every typing registry, which costs a second or more.
    rtsys.initialize(context)
    codegen = context.codegen()
    functions = {}
    for name in ("logp", "expand"):
        state, symbol = entry[name]
        library = codegen.unserialize_library(state)
        address = library.get_pointer_to_function(symbol)
        if not address:
            raise ValueError(f"symbol {symbol} missing from cached code")
        functions[name] = _NativeFunction(address, library)
    keys = {_SharedName(name): key for name, key in entry["shared"]}
    shared = {}
    for var, key in keys.items():
        value = np.array(values[var.name], dtype=entry["shared_dtypes"][key], order="C")
        value.flags.writeable = False
        shared[key] = value
    user_data = update_user_data(np.zeros((), dtype=entry["user_dtype"]), shared)
    names, _, shapes = entry["shape_info"]
    model = CompiledPyMCModel(
        dims=entry["dims"],
        reparameterized_names=entry["reparameterized_names"],
        compiled_logp_func=functions["logp"],
        compiled_expand_func=functions["expand"],
        initial_point_func=None,
        shared_data=shared,
        shared_var_keys=keys,
        user_data=user_data,
        n_expanded=entry["n_expanded"],
        shape_info=entry["shape_info"],
        logp_func=None,
        expand_func=None,
        _n_dim=entry["n_dim"],
        _shapes={n: tuple(s) for n, s in zip(names, shapes, strict=True)},
        _coords=entry["coords"],
    )
    _check_callable(model)
    return CompiledModel(model, tuple(entry["free"]), entry["key"], "disk")


def _check_callable(model: Any) -> None:
    """Call the loaded log density once; raise if the code rejects its own inputs.

    nutpie's callback returns 0 (ok), 3 or 4 (non-finite gradient or density: possible at an
    arbitrary point) and other codes for a wrong dimension or an exception inside the code.
    """
    c_double_p = ctypes.POINTER(ctypes.c_double)
    fn = ctypes.CFUNCTYPE(
        ctypes.c_int64, ctypes.c_uint64, c_double_p, c_double_p, c_double_p, ctypes.c_void_p
    )(model.compiled_logp_func.address)
    n = model.n_dim
    x, grad, logp = np.zeros(n), np.zeros(n), np.zeros(1)
    code = fn(
        n,
        x.ctypes.data_as(c_double_p),
        grad.ctypes.data_as(c_double_p),
        logp.ctypes.data_as(c_double_p),
        model.user_data.ctypes.data,
    )
    if code not in (0, 3, 4):
        raise ValueError(f"cached log density returned error code {code}")


def compiled_model(
    law: Law,
    data: ModelData,
    priors: Mapping[str, Prior],
    likelihood: str,
    values: Mapping[str, Any],
) -> CompiledModel:
    """Return the compiled nutpie model for ``law`` on data of this shape (memory, disk or new).

    Parameters
    ----------
    law, data, priors, likelihood
        What :func:`bayescale.model.build.build_model` takes.
    values : mapping
        Value of every ``pm.Data`` for ``data`` (:func:`bayescale.model.build.data_values`); used
        to check a model loaded from disk before it is trusted.

    Returns
    -------
    CompiledModel
    """
    key = model_key(law, data, priors, likelihood)
    hit = _MEMORY.get(key)
    if hit is not None:
        return dataclasses.replace(hit, origin="memory")
    path = _entry_path(key)
    entry = None if path is None or not path.is_file() else _read(path, key)
    result = None
    if entry is not None:
        try:
            result = _rebuild(entry, values)
        except Exception as exc:  # never fatal: recompile and overwrite the entry
            log.info("compiled-model cache entry %s unusable (%s); recompiling", path, exc)
    if result is None:
        result, entry = _compile(law, data, priors, likelihood, key)
        if path is not None:
            _save(path, entry)
    _MEMORY[key] = result
    return result
