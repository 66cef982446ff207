"""Learning-curve tables: one row per logged checkpoint, checked run by run, and thinned.

A learning-curve table has a run id column, ``N``, ``step`` (optimizer steps), optionally
``batch`` (tokens per step), ``loss`` and any group columns. :func:`load_curves` reads and checks
it (rows of a run in increasing step order, one model size per run); :func:`thin_curves` keeps
about ``per_run`` log-spaced rows of each run, which gives every decade of training equal
weight and removes most of the short-range correlation between neighbouring checkpoints.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from bayescale.core.errors import ConfigError, RunsTableError

if TYPE_CHECKING:
    import xarray as xr

__all__ = ["PER_RUN", "RUN_ID", "load_curves", "order_column", "thin_curves"]

#: Default name of the run id column of a learning-curve table.
RUN_ID = "run_id"
#: Rows kept per run by :func:`thin_curves` by default: enough to resolve a power law's bend
#: over 2-3 decades of steps (10 per decade) while keeping a 20-run fit to a few hundred rows.
PER_RUN = 30
#: Runs are shown in messages up to this many.
_MAX_LISTED = 5
_ORDER_COLUMNS = ("step", "D")


# --------------------------------------------------------------------------------------------
# Loading and checking per-step tables
# --------------------------------------------------------------------------------------------
def load_curves(
    source: Any,
    *,
    run_id: str | None = None,
    columns: Mapping[str, str] | str | None = None,
    required: Sequence[str] = ("step",),
    groups: Sequence[str] = (),
    law_name: str | None = None,
    **options: Any,
) -> xr.Dataset:
    """Load a learning-curve table (one row per logged checkpoint) and check every curve.

    Parameters
    ----------
    source : DataFrame, path, bundled dataset name or xarray.Dataset
        As for :func:`bayescale.runs.table.load_runs`; a Dataset is checked as it is.
    run_id : str, optional
        Column naming the run of each row (text or integers). Default: the first column named
        as in :data:`bayescale.runs.table.RUN_ID_COLUMNS` (``run``, ``run_id``, ``run_name``,
        ``name``, then ``source_file``, which a directory with one CSV per run gets).
    columns : mapping or str, optional
        Canonical name to source column, e.g. ``{"N": "params", "step": "_step"}``.
    required : sequence of str, default ("step",)
        Canonical columns that must be present (the law's inputs); ``loss`` always is.
    groups : sequence of str
        Group columns (model family, eval set...).
    law_name : str, optional
        Law the table is loaded for, named in messages.
    **options
        Passed to :func:`bayescale.runs.table.load_runs` (``compute_unit``, ``value_map``...).

    Returns
    -------
    xarray.Dataset
        As :func:`~bayescale.runs.table.load_runs` (dim ``run`` = one row per checkpoint), with the
        run id column as text and attribute ``run_id`` naming it as stored (a column ``run``
        is stored as ``run_label``, see :func:`bayescale.runs.table.stored_column`).

    Raises
    ------
    RunsTableError
        If the run id column is missing or has empty values, a run's rows are not in
        increasing step order, a run logs one step twice, or one run id covers several model
        sizes. Messages name the run and the 1-based rows.

    Examples
    --------
    >>> import pandas as pd
    >>> table = pd.DataFrame(
    ...     {"run_id": ["a", "a", "b"], "N": [1e8, 1e8, 4e8], "step": [100, 200, 100],
    ...      "loss": [4.1, 3.6, 3.9]}
    ... )
    >>> load_curves(table)["run_id"].values.tolist()
    ['a', 'a', 'b']
    """
    # xarray is imported where used: the learning-curve questions import this module,
    # and importing a question costs numpy only
    import xarray as xr

    from bayescale.runs.table import (
        CANONICAL,
        RUN_ID_COLUMNS,
        find_run_id,
        load_runs,
        stored_column,
    )

    if run_id in CANONICAL:
        raise RunsTableError(
            f"run id column {run_id!r} cannot be a canonical column; name the column "
            "that identifies each training run (e.g. 'run' or 'source_file')"
        )
    if run_id is not None and run_id in groups:
        raise RunsTableError(f"column {run_id!r} cannot be both the run id and a group")
    if isinstance(source, xr.Dataset):
        table = source
        absent = [c for c in (*required, "loss", *groups) if c not in table]
        if absent:
            raise RunsTableError(f"learning-curve table has no column {absent[0]!r}")
    else:
        # Rows of different runs may share N and step; the run id tells them apart, so the
        # duplicate check of load_runs is replaced by the per-run checks below.
        table = load_runs(
            source,
            columns=columns,
            required=(*required, "loss"),
            groups=groups,
            law_name=law_name,
            **(options | {"allow_replicates": True}),
        )
    if run_id is None:
        run_id = find_run_id(cast("list[str]", list(table.data_vars)))  # str names
        if run_id is None or run_id in groups:
            raise RunsTableError(
                "a learning-curve table needs a column naming the run of each row, and none is "
                f"named {', '.join(repr(c) for c in RUN_ID_COLUMNS)}; name it with run_id= "
                f"(CLI: --run-id COL). Columns: {', '.join(map(str, table.data_vars))}."
            )
    run_id = stored_column(run_id)
    if run_id not in table:
        from bayescale.runs.table import missing_column_error

        raise missing_column_error(
            run_id, cast("list[str]", list(table.data_vars)), needed_by="run_id"
        )
    ids = _run_id_text(table[run_id].values)
    missing = np.flatnonzero(ids == "")
    if missing.size:
        raise RunsTableError(
            f"run id column {run_id!r} is empty in {_rows(table, missing)}; every row of a "
            "learning curve must name its run"
        )
    _check_curves(table, ids, run_id)
    out = table.assign({run_id: ("run", ids.astype(object))})
    return out.assign_attrs(run_id=run_id)


def _run_id_text(values: np.ndarray) -> np.ndarray:
    """Run ids as text: integers without '.0', missing (NaN or '') as ''."""
    values = np.asarray(values)
    if values.dtype.kind == "f":
        finite = np.isfinite(values)
        whole = finite & (values == np.round(values))
        text = np.where(whole, np.char.mod("%d", np.where(whole, values, 0)), values.astype(str))
        return np.where(finite, text, "").astype(str)
    return np.array(["" if v is None else str(v).strip() for v in values], dtype=str)


def _rows(table: xr.Dataset, positions: Collection[int]) -> str:
    """1-based rows, with the source file for tables read from a directory."""
    files = table["source_file"].values if "source_file" in table else None
    shown = [
        f"{p + 1}" + (f" ({files[p]})" if files is not None else "")
        for p in list(positions)[:_MAX_LISTED]
    ]
    extra = len(positions) - _MAX_LISTED
    word = "row " if len(positions) == 1 else "rows "
    return word + ", ".join(shown) + (f" and {extra} more" if extra > 0 else "")


def order_column(table: xr.Dataset) -> str:
    """Return the column that orders a run's rows: ``step``, else ``D`` (tokens seen)."""
    for column in _ORDER_COLUMNS:
        if column in table:
            return column
    raise RunsTableError(
        "a learning-curve table needs a 'step' column (optimizer steps) or 'D' (tokens seen) "
        "to order each run's rows; map one with columns={'step': '<your column>'}"
    )


def _check_curves(table: xr.Dataset, ids: np.ndarray, run_id: str) -> None:
    order = order_column(table)
    t = np.asarray(table[order].values, dtype=float)
    sizes = np.asarray(table["N"].values, dtype=float) if "N" in table else None
    for name in dict.fromkeys(ids.tolist()):
        rows = np.flatnonzero(ids == name)
        steps = t[rows]
        seen: dict[float, int] = {}
        for k, value in enumerate(steps):
            if value in seen:
                where = _rows(table, [seen[value], rows[k]])
                raise RunsTableError(
                    f"run {name!r} logs {order} {value:g} twice ({where}); drop the repeated "
                    "checkpoint (a resumed run logs overlapping steps: keep the rows after the "
                    "restart)"
                )
            seen[value] = rows[k]
        back = np.flatnonzero(np.diff(steps) < 0)
        if back.size:
            k = int(back[0])
            raise RunsTableError(
                f"run {name!r}: {order} goes back from {steps[k]:g} to {steps[k + 1]:g} "
                f"({_rows(table, [rows[k], rows[k + 1]])}); a run's rows must be in increasing "
                f"{order} order. Sort the table by run and {order}, or check that two runs do "
                f"not share the run id {name!r}"
            )
        if sizes is not None:
            other = np.flatnonzero(sizes[rows] != sizes[rows[0]])
            if other.size:
                where = _rows(table, [rows[0], rows[other[0]]])
                raise RunsTableError(
                    f"run {name!r} has several model sizes N ({sizes[rows[0]]:g} and "
                    f"{sizes[rows[other[0]]]:g}, {where}); two runs share the run id "
                    f"{run_id}={name!r}"
                )


# --------------------------------------------------------------------------------------------
# Thinning
# --------------------------------------------------------------------------------------------
def thin_curves(
    curves: xr.Dataset, *, per_run: int = PER_RUN, run_id: str | None = None
) -> xr.Dataset:
    """Keep about ``per_run`` rows of each run, at log-spaced steps.

    For each run, targets are ``per_run`` steps spaced evenly in log step between its first
    and last logged step; the row nearest each target (in log step) is kept, so a run keeps
    its first and last rows and at most ``per_run`` rows (fewer where the logging is sparser
    than the targets, e.g. in the first decade). Runs with at most ``per_run`` rows are kept
    whole.

    Why: loggers write at equal step intervals, so with all rows the last decade of training
    carries ~90 % of the weight while the power law's curvature lives across all decades,
    and neighbouring rows (a few hundred steps apart) carry nearly the same information.

    Parameters
    ----------
    curves : xarray.Dataset
        A table from :func:`load_curves`.
    per_run : int, default 30
        Largest number of rows kept per run.
    run_id : str, optional
        Run id column (default: the table's ``run_id`` attribute, else ``"run_id"``).

    Returns
    -------
    xarray.Dataset
        The kept rows in their original order, ``run`` renumbered from 0.
    """
    if not isinstance(per_run, int | np.integer) or per_run < 2:
        raise ConfigError(f"per_run must be an integer >= 2, got {per_run!r}")
    run_id = run_id or curves.attrs.get("run_id", RUN_ID)
    if run_id not in curves:
        raise RunsTableError(f"learning-curve table has no run id column {run_id!r}")
    order = order_column(curves)
    ids = np.asarray(curves[run_id].values).astype(str)
    log_t = np.log(np.asarray(curves[order].values, dtype=float))
    keep: list[int] = []
    for name in dict.fromkeys(ids.tolist()):
        rows = np.flatnonzero(ids == name)
        if rows.size <= per_run:
            keep.extend(rows.tolist())
            continue
        targets = np.linspace(log_t[rows[0]], log_t[rows[-1]], per_run)
        nearest = np.abs(log_t[rows][None, :] - targets[:, None]).argmin(axis=1)
        keep.extend(rows[np.unique(nearest)].tolist())
    kept = np.sort(np.array(keep, dtype=int))
    out = curves.isel(run=kept)
    return out.assign_coords(run=np.arange(kept.size)).assign_attrs(
        curves.attrs, thinned_per_run=int(per_run)
    )
