"""nutpie without ArviZ: import it cheaply and turn its raw trace into a DataTree.

A fit from a fresh process (``bayescale fit`` on the command line) is dominated by imports,
not sampling: ``nutpie.sample`` imports ArviZ at module level, which imports arviz-stats
(SciPy's statistics) and arviz-plots (Matplotlib's pyplot), ~1.4 s on a 2-core machine,
while sampling a 24-run ladder takes ~0.2 s. nutpie only *uses* ArviZ to convert its Arrow
trace (``arviz.from_dict``); bayescale asks for the raw trace and builds the same
``posterior`` and ``sample_stats`` groups with xarray directly, so ArviZ is imported only by
code that needs it (plots, LOO).

:func:`import_nutpie` stands a proxy in for ``arviz`` while nutpie's modules execute: the
proxy imports the real ArviZ on first attribute access, so nutpie code that does use ArviZ
(``nutpie.sample`` without ``return_raw_trace``) still works, and ``import arviz`` elsewhere
gets the real module.
"""

from __future__ import annotations

import importlib
import json
import sys
import types
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import xarray as xr

__all__ = ["STATS", "import_nutpie", "sample", "to_tree"]

#: Sampler statistics kept per draw: what diagnostics, energy plots and users read. nutpie's
#: others describe its mass-matrix adaptation (eigenvalue counts, transformation ids, Fisher
#: distances); storing them would make every saved fit larger and slower to write.
STATS = (
    "diverging",
    "energy",
    "energy_error",
    "max_energy_error",
    "logp",
    "step_size",
    "depth",
    "maxdepth_reached",
    "n_steps",
    "mean_tree_accept",
)


class _DeferredModule(types.ModuleType):
    """Placeholder for a module that is imported for real on first attribute access."""

    def __getattr__(self, name: str) -> Any:
        if sys.modules.get(self.__name__) is self:
            del sys.modules[self.__name__]
        real = importlib.import_module(self.__name__)
        return getattr(real, name)


def import_nutpie() -> Any:
    """Import and return :mod:`nutpie` without importing ArviZ (unless it already is)."""
    if "nutpie" in sys.modules or "arviz" in sys.modules:
        # nutpie, pyarrow and xarray are imported where used: import_nutpie controls how
        # nutpie is imported (see the module docstring)
        import nutpie

        return nutpie
    proxy = _DeferredModule("arviz")
    sys.modules["arviz"] = proxy
    try:
        import nutpie
    finally:
        if sys.modules.get("arviz") is proxy:
            del sys.modules["arviz"]
    return nutpie


def _column(batch: Any, name: str, keep: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Values of one Arrow column at the kept rows, shaped (row, *item shape), and its dims."""
    meta = batch.schema.field(name).metadata or {}
    dims = meta[b"dims"].decode().split(",") if meta.get(b"dims") else []
    shape = [int(s) for s in meta[b"shape"].decode().split(",")] if meta.get(b"shape") else []
    arr = batch.column(name)
    nulls = arr.is_null().to_numpy(zero_copy_only=False)
    flat = arr.flatten() if hasattr(arr, "flatten") else arr
    values = flat.to_numpy(zero_copy_only=False)
    if nulls.any():
        # Null entries (statistics that only exist on some draws, e.g. where a divergence
        # happened) become NaN (pyarrow turns nullable integers into floats), None in
        # object columns, 0 in boolean ones.
        fill = {"f": np.nan, "O": None}.get(values.dtype.kind, 0)
        filled = np.full((len(nulls), *shape), fill, dtype=values.dtype)
        if len(values) == len(nulls) * max(1, int(np.prod(shape))):
            values = values.reshape((len(nulls), *shape))[~nulls]
        filled[~nulls] = values.reshape(((~nulls).sum(), *shape))
        values = filled
    else:
        values = values.reshape((len(nulls), *shape))
    return values[keep], dims


def to_tree(
    draw_batches: Any,
    stat_batches: Any,
    *,
    coords: dict[str, Any],
    reparameterized: set[str] | frozenset[str] = frozenset(),
    attrs: dict[str, Any] | None = None,
) -> xr.DataTree:
    """Build the ``posterior`` and ``sample_stats`` groups from nutpie's raw trace.

    Parameters
    ----------
    draw_batches, stat_batches : sequence of Arrow record batches
        One per chain, of draws and of sampler statistics: what ``get_arrow_trace()`` of
        ``nutpie.sample(..., return_raw_trace=True)`` returns.
    coords : dict
        Coordinate values of the model's dims.
    reparameterized : set of str
        Unconstrained copies of variables (``<name>_log__`` ...), left out as ArviZ does.
    attrs : dict, optional
        Attributes of ``sample_stats`` (inference library, version, settings).

    Returns
    -------
    xarray.DataTree
        Groups ``posterior`` and ``sample_stats`` (the statistics in :data:`STATS`) with dims
        ``chain``, ``draw`` and the model's. Warm-up draws are dropped.
    """
    import pyarrow as pa
    import xarray as xr

    # nutpie hands out Arrow batches of its own Arrow library; pyarrow reads them zero-copy
    # through the Arrow C data interface.
    draw_batches = [pa.record_batch(b) for b in draw_batches]
    stat_batches = [pa.record_batch(b) for b in stat_batches]
    groups: dict[str, dict[str, list[np.ndarray]]] = {"posterior": {}, "sample_stats": {}}
    dims: dict[str, list[str]] = {}
    for draws, stats in zip(draw_batches, stat_batches, strict=True):
        keep = ~stats.column("tuning").to_numpy(zero_copy_only=False).astype(bool)
        for group, batch in (("posterior", draws), ("sample_stats", stats)):
            for name in batch.column_names:
                if name in reparameterized or (group == "sample_stats" and name not in STATS):
                    continue
                values, item_dims = _column(batch, name, keep)
                groups[group].setdefault(name, []).append(values)
                dims[name] = item_dims
    lengths = {len(v) for chains in groups["posterior"].values() for v in chains}
    if len(lengths) > 1:
        raise RuntimeError(f"nutpie returned chains of different lengths: {sorted(lengths)}")
    out = {}
    for group, variables in groups.items():
        data = {}
        for name, chains in variables.items():
            stacked = np.stack(chains)
            var_dims = [
                "chain",
                "draw",
                *(dims[name] or [f"{name}_dim_{i}" for i in range(stacked.ndim - 2)]),
            ]
            data[name] = (var_dims, stacked)
        ds = xr.Dataset(data)
        # Any values: mypy checks a ** dict against every parameter, ``coords`` included.
        model_coords: dict[str, Any] = {d: np.asarray(coords[d]) for d in ds.dims if d in coords}
        ds = ds.assign_coords(
            chain=np.arange(ds.sizes["chain"]),
            draw=np.arange(ds.sizes["draw"]),
            **model_coords,
        )
        out[group] = ds
    if attrs:
        out["sample_stats"].attrs.update(attrs)
    return xr.DataTree.from_dict(out)


def sample(model: Any, **kwargs: Any) -> xr.DataTree:
    """Run ``nutpie.sample`` on a compiled model and return its trace as a DataTree.

    Parameters
    ----------
    model : nutpie compiled model
        A bound :class:`nutpie.compile_pymc.CompiledPyMCModel`.
    **kwargs
        Passed to :func:`nutpie.sample` (``draws``, ``tune``, ``chains``, ``seed``,
        ``target_accept``, ``adaptation``, ``progress_bar``...). Warm-up draws are not kept.

    Returns
    -------
    xarray.DataTree
        See :func:`to_tree`.
    """
    nutpie = import_nutpie()
    results = nutpie.sample(model, save_warmup=False, return_raw_trace=True, **kwargs)
    settings = {k: v for k, v in kwargs.items() if isinstance(v, int | float | str | bool)}
    return to_tree(
        *results.get_arrow_trace(),
        coords=dict(model.coords or {}),
        reparameterized=set(model.reparameterized_names or ()),
        attrs={
            "inference_library": "nutpie",
            "inference_library_version": nutpie.__version__,
            "inference_library_settings": json.dumps(settings),
        },
    )
