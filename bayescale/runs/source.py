"""The runs table a question works on, from whatever the user passed.

Every question (fit, backtest, least squares, the compute frontier, minimum steps) accepts a
table as a path, DataFrame, bundled dataset name, or an ``xarray.Dataset`` already loaded;
:func:`read_table` is the one place that tells these apart, so they all read tables alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import xarray as xr

from bayescale.core.errors import RunsTableError
from bayescale.runs.curves import load_curves
from bayescale.runs.table import load_runs

__all__ = ["read_table"]


def read_table(
    runs: Any,
    *,
    required: Sequence[str] = (),
    groups: Sequence[str] = (),
    run_id: str | None = None,
    law_name: str | None = None,
    **options: Any,
) -> xr.Dataset:
    """Return the runs table for a question, loaded and checked once.

    Parameters
    ----------
    runs : DataFrame, path, bundled dataset name or xarray.Dataset
        The runs. A Dataset is taken as already loaded (by :func:`~bayescale.runs.table.load_runs`
        or :func:`~bayescale.runs.curves.load_curves`) and only checked for its columns.
    required : sequence of str
        Canonical columns the question needs, e.g. the law's inputs and ``"loss"``.
    groups : sequence of str
        Label columns (groups, the offset column) the question needs.
    run_id : str, optional
        Run id column of a learning-curve table (one row per checkpoint): the table is read by
        :func:`~bayescale.runs.curves.load_curves`, which also checks every curve.
    law_name : str, optional
        Law the table is read for, named in messages.
    **options
        How to read the table, as for :func:`~bayescale.runs.table.load_runs` (``columns``,
        ``compute_unit``, ``allow_replicates``...).

    Returns
    -------
    xarray.Dataset
        The runs along dim ``run``.

    Raises
    ------
    RunsTableError
        If the table cannot be read, or lacks a required or group column.
    """
    if run_id is not None:
        return load_curves(
            runs, run_id=run_id, required=required, groups=groups, law_name=law_name, **options
        )
    if isinstance(runs, xr.Dataset):
        absent = [c for c in (*required, *groups) if c not in runs]
        if absent:
            needed = f" (needed by law {law_name!r})" if law_name else ""
            raise RunsTableError(f"runs table has no column {absent[0]!r}{needed}")
        return runs
    return load_runs(runs, required=required, groups=groups, law_name=law_name, **options)
