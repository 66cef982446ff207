"""Load and validate a table of training runs.

A runs table has one row per observation (a finished run, or one logged step of a run) and
canonical columns named :data:`CANONICAL`:

=========  ====================================================
``N``      model size, non-embedding parameters
``D``      training data, tokens
``C``      training compute, FLOPs
``loss``   evaluation loss, nats/token
``step``   optimizer step at which ``loss`` was measured
``batch``  batch size, tokens per optimizer step
=========  ====================================================

:func:`load_runs` reads a table from a file, a directory of CSV files, a
:class:`pandas.DataFrame` or the name of a bundled dataset, maps the user's column names onto
the canonical ones, checks every value, and returns an :class:`xarray.Dataset` with one
dimension, ``run``. Every problem is a :class:`~bayescale.core.errors.RunsTableError` whose message
names the column and the (1-based) row so it can be fixed in the file.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd
import xarray as xr

from bayescale.core.dims import RUN
from bayescale.core.errors import RunsTableError, UnknownNameError
from bayescale.runs.columns import (
    CANONICAL,
    RUN_ID_COLUMNS,
    UNITS,
    check_mapping,
    closest,
    columns_text,
    find_run_id,
    missing_column_error,
    parse_columns,
    stored_column,
)
from bayescale.runs.datasets import bundled_dir, dataset_info, list_datasets
from bayescale.runs.readers import DIR_COLUMN, Table, read_source

__all__ = [
    "CANONICAL",
    "PF_DAY_FLOPS",
    "RUN_ID_COLUMNS",
    "bundled_dir",
    "check_enough_points",
    "dataset_info",
    "find_run_id",
    "group_labels",
    "list_datasets",
    "load_runs",
    "parse_columns",
    "replicate_sets",
    "stored_column",
]


PF_DAY_FLOPS = 8.64e19
"""FLOPs in one petaflop/s-day: 1e15 FLOP/s × 86 400 s."""


# Dimension names of fits and predictions. A user column of one of these names is stored under
# another name (see stored_column), so that a column called "run" never becomes the row
# dimension's coordinate or a group dimension that shadows it.

#: Largest plausible loss in nats/token: the loss of a uniform guess over a 256k-token
#: vocabulary is 12.5 nats, so a larger value is a perplexity, a percentage or a sum.
MAX_LOSS = 20.0


# Columns that can tell two runs apart besides the law's inputs and the groups (a batch-size
# sweep at fixed N and D is several runs, not duplicates).
_RUN_KEY_EXTRAS = ("step", "batch")
_DEFAULT_INPUTS = ("N", "D", "C")

_COMPUTE_UNITS = {"flops": 1.0, "pfdays": PF_DAY_FLOPS}
_COMPUTE_UNIT_SPELLINGS = ("flops", "pf-days", "pfdays", "pf_days")

_MAX_ROWS_LISTED = 5


# --------------------------------------------------------------------------------------------
# bundled datasets


# --------------------------------------------------------------------------------------------
# column mapping


# --------------------------------------------------------------------------------------------
# reading


# Text formats get the group columns read as text, so labels such as "01" or "6e18" survive
# as written instead of being parsed as numbers first.


# --------------------------------------------------------------------------------------------
# validation helpers


def _row(table: Table, position: int) -> str:
    if table.origin is None:
        return str(position + 1)
    name, row = table.origin[position]
    return f"{position + 1} ({name} row {row})"


def _rows_text(table: Table, positions: Iterable[int], values: Any = None) -> str:
    """Format 0-based ``positions`` as "row 3" / "rows 3, 5 and 2 more", with values if given."""
    positions = list(positions)
    shown = []
    for k, position in enumerate(positions[:_MAX_ROWS_LISTED]):
        label = _row(table, position)
        if values is not None:
            label += f" (value {values[k]!r})"
        shown.append(label)
    extra = len(positions) - _MAX_ROWS_LISTED
    more = f" and {extra} more" if extra > 0 else ""
    return ("row " if len(positions) == 1 else "rows ") + ", ".join(shown) + more


def _as_float(table: Table, column: str) -> np.ndarray:
    original = table.frame[column]
    numeric = pd.to_numeric(original, errors="coerce")
    bad = np.flatnonzero(numeric.isna().to_numpy() & original.notna().to_numpy())
    if bad.size:
        raw = original.to_numpy()
        with_unit = [i for i in bad if _UNIT_SUFFIX.match(str(raw[i]))]
        if with_unit:
            first = with_unit[0]
            raise RunsTableError(
                f"column {column!r} mixes numbers with units: value {raw[first]!r} in row "
                f"{_row(table, int(first))} has a unit written with it"
                + (f" (and {len(with_unit) - 1} more rows)" if len(with_unit) > 1 else "")
                + f"; write plain numbers in {UNITS.get(column, 'one unit')} (e.g. 1.3e9, not "
                "1.3B)."
            )
        raise RunsTableError(
            f"column {column!r} must be numeric but has a non-numeric value "
            f"{raw[bad[0]]!r} in row {_row(table, int(bad[0]))}"
            + (f" (and {bad.size - 1} more rows)" if bad.size > 1 else "")
            + "."
        )
    return numeric.to_numpy(dtype=np.float64, na_value=np.nan)


# A number followed by letters: "1.3B", "190M", "2e9 tokens", "3.1 nats".
_UNIT_SUFFIX = re.compile(r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*[A-Za-z%][\w /%-]*$")


def _plain_values(values: np.ndarray) -> list[float]:
    # Plain Python floats so messages read "-1.0", not "np.float64(-1.0)".
    return [float(v) for v in values]


def _check_values(
    table: Table, column: str, values: np.ndarray, max_loss: float = MAX_LOSS
) -> None:
    # Every canonical column is a size, a count or a loss: zero or negative is a data error, and
    # the laws take logarithms of them.
    not_finite = np.flatnonzero(~np.isfinite(values))
    if not_finite.size:
        raise RunsTableError(
            f"column {column!r} has values that are not finite (missing, NaN or infinite) in "
            f"{_rows_text(table, not_finite, _plain_values(values[not_finite]))}."
        )
    bad = np.flatnonzero(values <= 0)
    if bad.size:
        raise RunsTableError(
            f"column {column!r} ({UNITS[column]}) has non-positive values in "
            f"{_rows_text(table, bad, _plain_values(values[bad]))}; it must be > 0."
        )
    if column == "loss":
        high = np.flatnonzero(values > max_loss)
        if high.size:
            raise RunsTableError(
                f"column 'loss' has values above {max_loss:g} nats/token in "
                f"{_rows_text(table, high, _plain_values(values[high]))}: is it a perplexity, "
                "a percentage or a summed loss? bayescale needs the mean loss in nats per token "
                "(if such losses are real, raise max_loss; CLI: --max-loss)."
            )


def _as_names(names: Sequence[str] | str) -> tuple[str, ...]:
    # A bare string would otherwise be iterated character by character.
    return (names,) if isinstance(names, str) else tuple(names)


def _compute_factor(compute_unit: str) -> float:
    key = str(compute_unit).strip().lower().replace("-", "").replace("_", "")
    if key not in _COMPUTE_UNITS:
        raise RunsTableError(
            f"unknown compute_unit {compute_unit!r}. Valid choices: "
            f"{', '.join(_COMPUTE_UNIT_SPELLINGS)}."
        )
    return _COMPUTE_UNITS[key]


def _extra_values(series: pd.Series) -> np.ndarray:
    """Convert a non-canonical column to a numpy array netCDF can store."""
    if pd.api.types.is_bool_dtype(series) and not series.isna().any():
        return series.to_numpy(dtype=bool)
    if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
        if series.isna().any() or not pd.api.types.is_integer_dtype(series):
            return series.to_numpy(dtype=np.float64, na_value=np.nan)
        return series.to_numpy(dtype=np.int64)
    # Text (and anything else): Python strings, missing as "" because netCDF strings have no
    # missing value.
    return np.array(["" if pd.isna(v) else str(v) for v in series], dtype=object)


# --------------------------------------------------------------------------------------------
# readers for tables whose facts live in file names, labels and logged checkpoints


def _file_fields(table: Table, source: Any, pattern: str) -> pd.DataFrame:
    """Add a text column per named group of ``pattern``, searched in each row's file stem."""
    try:
        regex = re.compile(pattern)
    except re.error as err:
        raise RunsTableError(f"bad file_pattern {pattern!r}: {err}") from None
    if not regex.groupindex:
        raise RunsTableError(
            f"file_pattern {pattern!r} has no named groups; write e.g. "
            "'(?P<size>[^-]+)-(?P<mult>[0-9.]+)xC' so each group becomes a column"
        )
    frame = table.frame.copy()
    if table.origin is not None:
        stems = frame[DIR_COLUMN].astype(str).to_numpy()
    elif isinstance(source, str | os.PathLike) and Path(source).is_file():
        stems = np.full(len(frame), Path(source).stem, dtype=object)
    else:
        raise RunsTableError(
            "file_pattern reads columns from file names, so the runs must come from a file or "
            "a directory of .csv files, not a DataFrame or bundled dataset"
        )
    clash = [g for g in regex.groupindex if g in frame.columns]
    if clash:
        raise RunsTableError(
            f"file_pattern group {clash[0]!r} is already a column of the runs table; "
            "rename the group"
        )
    fields: dict[str, list[Any]] = {g: [] for g in regex.groupindex}
    parsed: dict[str, dict[str, Any]] = {}
    for stem in stems:
        if stem not in parsed:
            match = regex.search(stem)
            if match is None:
                raise RunsTableError(
                    f"file name {stem!r} does not match file_pattern {pattern!r}; every file "
                    "must match (or move the others out of the directory)"
                )
            parsed[stem] = match.groupdict()
        for g in fields:
            fields[g].append(parsed[stem][g])
    for g, values in fields.items():
        frame[g] = pd.Series(values, index=frame.index, dtype=object)
    return frame


def _map_values(table: Table, value_map: Mapping[str, Mapping[str, float]]) -> pd.DataFrame:
    """Replace the text labels of columns by numbers (e.g. a size label by a parameter count)."""
    frame = table.frame.copy()
    for column, mapping in value_map.items():
        if column not in frame.columns:
            raise _option_column_error("value_map", column, list(frame.columns))
        lookup = {str(k): float(v) for k, v in mapping.items()}
        labels = np.array(["" if pd.isna(v) else str(v) for v in frame[column]], dtype=object)
        unknown = np.flatnonzero([label not in lookup for label in labels])
        if unknown.size:
            raise RunsTableError(
                f"value_map for column {column!r} has no number for {labels[unknown[0]]!r} "
                f"({_rows_text(table, unknown)}); labels mapped: {columns_text(list(lookup))}"
            )
        frame[column] = np.array([lookup[label] for label in labels], dtype=np.float64)
    return frame


def _storable_name(column: str, taken: set[str]) -> str:
    """Name of an extra column in the Dataset: ``/`` becomes ``.``.

    W&B exports name metrics like ``eval/c4_en/loss``; netCDF and xarray's DataTree use ``/``
    to separate groups, so such names cannot be stored in a fit file as they are.
    """
    name = column.replace("/", ".")
    if name != column and name in taken:
        raise RunsTableError(
            f"column {column!r} would be stored as {name!r} ('/' cannot be stored), but that "
            "name is taken; rename one of them"
        )
    return name


def _option_column_error(option: str, column: str, available: Sequence[str]) -> RunsTableError:
    close = closest(column, available)
    return RunsTableError(
        f"{option} names column {column!r}, which the runs table does not have."
        + (f" Did you mean {close!r}?" if close else "")
        + f" Available columns: {columns_text(available)}."
    )


def _keep_last_rows(table: Table, by: Sequence[str]) -> pd.DataFrame:
    """Keep each run's final checkpoint: the row with the largest step among rows with a loss.

    Rows without a loss (evaluations logged at other steps) are skipped, unless a run has no
    loss at all; its last row is then kept so validation names it.
    """
    frame = table.frame
    for column in by:
        if column not in frame.columns:
            raise _option_column_error("last_per_run", column, list(frame.columns))
    order = _as_float(table, "step") if "step" in frame.columns else np.arange(len(frame))
    has_loss = (
        pd.to_numeric(frame["loss"], errors="coerce").notna().to_numpy()
        if "loss" in frame.columns
        else np.ones(len(frame), dtype=bool)
    )
    runs = frame[list(by)].astype(str).agg("\x1f".join, axis=1).to_numpy()
    # Sort so the wanted row comes last within each run: loss present, then step, then position.
    position = np.arange(len(frame))
    sorted_rows = np.lexsort((position, np.nan_to_num(order, nan=-np.inf), has_loss, runs))
    last = np.r_[runs[sorted_rows][1:] != runs[sorted_rows][:-1], True]
    return _keep_rows(table, np.sort(sorted_rows[last]))


def _keep_rows(table: Table, keep: np.ndarray) -> pd.DataFrame:
    """Reduce ``table`` to the rows ``keep`` (0-based positions, in order)."""
    # Keep pointing messages at rows of the file a user has to open, not of the reduced table.
    origin = table.origin or [("input", i + 1) for i in range(len(table.frame))]
    table.origin = [origin[i] for i in keep]
    table.frame = table.frame.iloc[keep].reset_index(drop=True)
    return table.frame


def _check_copies(table: Table, drop: bool) -> int:
    """Refuse (or with ``drop``, remove) rows identical in every column; return how many went.

    A row that repeats another in every column is an accidental second export, not a second
    measurement: a rerun differs at least in its loss.
    """
    copies = table.frame.duplicated(keep="first").to_numpy()
    if not copies.any():
        return 0
    if drop:
        _keep_rows(table, np.flatnonzero(~copies))
        return int(copies.sum())
    first = int(np.flatnonzero(copies)[0])
    same = table.frame.eq(table.frame.iloc[first]) | (
        table.frame.isna() & table.frame.iloc[first].isna()
    )
    rows = np.flatnonzero(same.all(axis=1).to_numpy())
    raise RunsTableError(
        f"copied rows: {_rows_text(table, rows)} are identical in every column "
        f"({int(copies.sum())} copied rows in all). Remove the copies, or pass "
        "drop_copies=True (CLI: --drop-copies) to keep the first of each."
    )


# --------------------------------------------------------------------------------------------
# public entry points


def load_runs(
    source: pd.DataFrame | str | os.PathLike[str],
    *,
    columns: Mapping[str, str] | str | None = None,
    compute_unit: str = "flops",
    derive_compute: bool = False,
    required: Sequence[str] = (),
    groups: Sequence[str] = (),
    allow_replicates: bool = True,
    drop_copies: bool = False,
    max_loss: float = MAX_LOSS,
    law_name: str | None = None,
    file_pattern: str | None = None,
    value_map: Mapping[str, Mapping[str, float]] | None = None,
    last_per_run: Sequence[str] | str | bool | None = None,
) -> xr.Dataset:
    """Load a runs table and check it.

    Parameters
    ----------
    source : pandas.DataFrame, str or path-like
        The runs: a DataFrame; a ``.csv``, ``.tsv``, ``.parquet``/``.pq``, ``.jsonl``/``.ndjson``
        (JSON Lines) or ``.json`` file; a directory of ``.csv`` files (one per run, as W&B
        exports them), concatenated with a ``source_file`` column holding each file's stem; or
        the name of a bundled dataset (see :func:`list_datasets`). An existing file wins over a
        bundled dataset of the same name.
    columns : mapping or str, optional
        Canonical name to source column name, e.g. ``{"N": "params", "D": "tokens"}`` or the
        string ``"N=params,D=tokens"``. Columns already named canonically need no entry.
    compute_unit : {"flops", "pf-days"}, default "flops"
        Unit of the ``C`` column in the source (``"pfdays"`` and ``"pf_days"`` also accepted).
        PF-days are converted to FLOPs (× :data:`PF_DAY_FLOPS`), so ``C`` is always FLOPs.
    derive_compute : bool, default False
        Set ``C = 6 N D`` (FLOPs of a dense transformer: 2 forward + 4 backward FLOPs per
        parameter per token). Needs ``N`` and ``D``; an error if the table already has ``C``.
    required : sequence of str, default ()
        Canonical columns that must be present, typically the law's inputs. ``loss`` is always
        required.
    groups : sequence of str, default ()
        Columns naming groups of runs (e.g. model family); their values become strings.
    allow_replicates : bool, default True
        Accept replicates: rows that share the law's inputs, group labels, ``step`` and
        ``batch`` but differ elsewhere (reruns with another seed, typically in the loss). They
        are the direct evidence of seed-to-seed noise and feed the noise model and the
        lack-of-fit check (:func:`bayescale.questions.backtest.lack_of_fit`). False makes them an
        error.
    drop_copies : bool, default False
        Rows identical in every column are copies (an accidental double export), an error by
        default; True keeps the first of each and records how many went in the attribute
        ``copies_dropped``.
    max_loss : float, default 20
        Largest accepted loss, nats/token: larger values are almost surely another metric
        (perplexity, percent, summed loss), see :data:`MAX_LOSS`.
    law_name : str, optional
        Name of the law the table is loaded for; only used to say why a column is needed.
    file_pattern : str, optional
        Regular expression with named groups, searched in each file's name without its
        extension (use ``^``/``$`` to anchor); every named group becomes a text column, so
        facts written only in file names (model size, token multiplier, "rerun") can be mapped
        and grouped like any column. Needs a file or directory source. Applied first.
    value_map : mapping, optional
        ``{column: {label: number}}``: replace a column's text labels by numbers, e.g. the
        model-size label of a file name by its parameter count, ``{"size": {"190M":
        190354176}}``. Applied to the source columns, before ``columns``; a label without a
        number is an error.
    last_per_run : str, sequence of str or True, optional
        Column(s) identifying a run (e.g. ``"source_file"`` for a directory with one file per
        run): keep one row per run, its final checkpoint, i.e. the row with the largest
        ``step`` (the last row when there is no step column) among the rows with a loss.
        Applied after ``columns``, so canonical or source names may be used. True takes the
        first column named as in :data:`RUN_ID_COLUMNS` (``run``, ``run_id``, ...).

    Returns
    -------
    xarray.Dataset
        One dimension, ``run`` (coordinate ``0 .. n-1``). A float64 variable per canonical
        column present (with a ``units`` attribute), and one per other column: group columns
        as strings, other numeric columns as numbers, other text as strings (missing as "").
        A column named like a dimension (``run``, ``chain``, ``draw``, ``point``) is stored
        as :func:`stored_column` says (``run`` as ``run_label``).
        Attributes: ``source`` (description), ``columns`` (JSON of the canonical → source
        mapping used), ``compute_unit_in``, ``groups`` (JSON list of stored names) and
        ``copies_dropped``.

    Raises
    ------
    RunsTableError
        If the table cannot be read, or a column is missing, not numeric, not finite, not
        positive, a loss is above ``max_loss``, or rows are copies (or, with
        ``allow_replicates=False``, replicates). The message names the column and the 1-based
        data row(s).
    UnknownNameError
        If ``source`` is neither an existing file nor a bundled dataset.

    Examples
    --------
    >>> import pandas as pd
    >>> frame = pd.DataFrame({"params": [1e8, 4e8], "tokens": [2e9, 8e9], "loss": [3.1, 2.8]})
    >>> runs = load_runs(frame, columns="N=params,D=tokens", derive_compute=True)
    >>> runs["C"].values.tolist()
    [1.2e+18, 1.92e+19]
    >>> runs["N"].attrs["units"]
    'parameters (non-embedding)'

    A directory of W&B exports, one file per run named like ``190M-2xC.csv``, with the model
    size only in the file name and one row per checkpoint:

    >>> runs = load_runs(
    ...     "ladder-runs/",
    ...     file_pattern=r"^(?P<size>[^-]+)-(?P<mult>[0-9.]+)xC",
    ...     value_map={"size": {"190M": 190354176, "370M": 371262464}},
    ...     columns={"N": "size", "D": "tokens", "loss": "eval/c4_en", "step": "_step"},
    ...     last_per_run="source_file",
    ... )  # doctest: +SKIP
    """
    factor = _compute_factor(compute_unit)
    mapping = (
        parse_columns(columns)
        if isinstance(columns, str)
        else check_mapping(columns or {}, shown=repr(dict(columns or {})))
    )
    required = tuple(dict.fromkeys([*_as_names(required), "loss"]))
    groups = tuple(dict.fromkeys(_as_names(groups)))

    needed_by = f"law {law_name!r}" if law_name else None

    table = read_source(source, groups)
    frame = table.frame.copy()
    frame.columns = [str(c) for c in frame.columns]
    table.frame = frame
    if file_pattern is not None:
        frame = table.frame = _file_fields(table, source, file_pattern)
    if value_map:
        frame = table.frame = _map_values(table, value_map)
    if len(frame) == 0:
        raise RunsTableError(f"runs table from {table.description} has no rows.")
    if len(set(frame.columns)) != len(frame.columns):
        dupes = sorted({c for c in frame.columns if list(frame.columns).count(c) > 1})
        raise RunsTableError(f"runs table has duplicate column names: {columns_text(dupes)}.")
    copies_dropped = _check_copies(table, drop_copies)
    frame = table.frame
    for name in frame.columns:
        if stored_column(name) != name and stored_column(name) in frame.columns:
            raise RunsTableError(
                f"runs table has columns {name!r} and {stored_column(name)!r}; {name!r} is "
                f"stored as {stored_column(name)!r} (it is the name of a dimension), so rename "
                "one of them."
            )

    # Map source names onto canonical ones.
    available = list(frame.columns)
    renamed_away = set(mapping.values())
    for canonical, name in mapping.items():
        if name not in frame.columns:
            raise missing_column_error(name, available, needed_by=None, mapped=True)
        if canonical != name and canonical in frame.columns and canonical not in renamed_away:
            raise RunsTableError(
                f"cannot map {canonical}={name}: the runs table already has a column "
                f"{canonical!r}. Rename one of them, or drop the mapping to use {canonical!r}."
            )
    frame = frame.rename(columns={s: c for c, s in mapping.items()})
    table.frame = frame
    used = {c: mapping.get(c, c) for c in CANONICAL if c in frame.columns}

    for group in groups:
        if "/" in group:
            raise RunsTableError(
                f"group column {group!r} has a '/' in its name, which fit files cannot store "
                "(it separates groups in netCDF); copy the column to a name without '/'"
            )
        if group in CANONICAL:
            raise RunsTableError(
                f"group column {group!r} is a canonical numeric column; copy it to another "
                "column to group runs by it."
            )
        if group not in frame.columns:
            raise UnknownNameError(
                f"group column {group!r} is not in the runs table. Available columns: "
                f"{columns_text(list(frame.columns))}."
                + (f" Did you mean {c!r}?" if (c := closest(group, list(frame.columns))) else "")
            )

    if last_per_run is True:
        last_per_run = find_run_id(list(frame.columns))
        if last_per_run is None:
            raise RunsTableError(
                "last_per_run needs a column identifying each run, and none is named "
                f"{' or '.join(repr(c) for c in RUN_ID_COLUMNS)}; name it (CLI: --last-per-run "
                f"COL). Available columns: {columns_text(list(frame.columns))}."
            )
    if last_per_run is not None and last_per_run is not False:
        to_canonical = {source: c for c, source in mapping.items()}
        run_columns = [to_canonical.get(c, c) for c in _as_names(last_per_run)]
        frame = _keep_last_rows(table, run_columns)
    numeric = {c: _as_float(table, c) for c in CANONICAL if c in frame.columns}
    if "C" in numeric:
        numeric["C"] = numeric["C"] * factor
    if derive_compute:
        if "C" in numeric:
            raise RunsTableError(
                f"derive_compute=True but the runs table already has compute column 'C' "
                f"(from {used['C']!r}); drop derive_compute to use it, or remove the column."
            )
        for needed in ("N", "D"):
            if needed not in numeric:
                raise missing_column_error(
                    needed, list(frame.columns), needed_by="derive_compute (C = 6*N*D)"
                )
        numeric["C"] = 6.0 * numeric["N"] * numeric["D"]
        used["C"] = "6*N*D"

    for column in required:
        if column not in numeric and column not in frame.columns:
            raise missing_column_error(column, list(frame.columns), needed_by=needed_by)

    for column in CANONICAL:  # fixed order: the first problem reported is predictable
        if column in numeric:
            _check_values(table, column, numeric[column], max_loss)

    group_values: dict[str, np.ndarray] = {}
    for group in groups:
        series = frame[group]
        missing = np.flatnonzero(series.isna().to_numpy())
        if missing.size:
            raise RunsTableError(
                f"group column {group!r} has missing values in {_rows_text(table, missing)}; "
                "every run needs a group label."
            )
        group_values[group] = np.array([str(v) for v in series], dtype=object)

    if not allow_replicates:
        inputs = [c for c in required if c != "loss"] or [
            c for c in _DEFAULT_INPUTS if c in numeric
        ]
        key = [*inputs, *(c for c in _RUN_KEY_EXTRAS if c in numeric and c not in inputs)]
        key_frame = pd.DataFrame(
            {c: numeric[c] if c in numeric else frame[c].to_numpy() for c in key}
            | {g: group_values[g] for g in groups}
        )
        if key_frame.shape[1]:
            dup = key_frame.duplicated(keep=False).to_numpy()
            if dup.any():
                ids = key_frame.groupby(list(key_frame.columns), dropna=False, sort=False).ngroup()
                ids = ids.to_numpy()
                same = np.flatnonzero(ids == ids[np.flatnonzero(dup)[0]])
                raise RunsTableError(
                    f"duplicate runs: {_rows_text(table, same)} have the same "
                    f"{', '.join(key_frame.columns)} ({int(dup.sum())} duplicated rows in all). "
                    "Replicates were refused (allow_replicates=False); allow them, or if "
                    "they differ in another column (e.g. learning rate) name it in groups."
                )

    n = len(frame)
    data_vars: dict[str, xr.Variable] = {}
    for column in CANONICAL:
        if column in numeric:
            data_vars[column] = xr.Variable(RUN, numeric[column], {"units": UNITS[column]})
    if derive_compute:
        data_vars["C"].attrs["derived"] = "6*N*D"
    for group in groups:
        data_vars[stored_column(group)] = xr.Variable(RUN, group_values[group])
    for column in frame.columns:
        if column not in groups and column not in data_vars:
            name = _storable_name(stored_column(column), {*data_vars, *frame.columns})
            data_vars[name] = xr.Variable(RUN, _extra_values(frame[column]))

    return xr.Dataset(
        data_vars,
        coords={RUN: np.arange(n)},
        attrs={
            "source": table.description,
            "columns": json.dumps(used),
            "compute_unit_in": str(compute_unit),
            "groups": json.dumps([stored_column(g) for g in groups]),
            "copies_dropped": copies_dropped,
        },
    )


def replicate_sets(runs: xr.Dataset, inputs: Sequence[str], labels: Sequence[str] = ()) -> Any:
    """Give each set of replicate runs a number: rows with equal inputs and labels share one.

    Parameters
    ----------
    runs : xarray.Dataset
        Runs as returned by :func:`load_runs`.
    inputs : sequence of str
        The law's input columns, e.g. ``("N", "D")``.
    labels : sequence of str, default ()
        Group and offset columns (stored names): runs with different labels are not replicates.

    Returns
    -------
    numpy.ndarray of int
        One set number per run, ``0 .. m-1`` in order of first appearance; ``m`` is the
        number of distinct input points, and a number shared by several runs marks replicates.
    """
    key = pd.DataFrame({k: np.asarray(runs[k].values) for k in inputs})
    for column in labels:
        key[column] = np.asarray(runs[column].values, dtype=str)
    return key.groupby(list(key.columns), sort=False).ngroup().to_numpy()


def check_enough_points(
    runs: xr.Dataset, inputs: Sequence[str], n_params: int, law_name: str
) -> None:
    """Check that a law is identifiable from the runs: more distinct input points than parameters.

    Parameters
    ----------
    runs : xarray.Dataset
        Runs as returned by :func:`load_runs`.
    inputs : sequence of str
        The law's input columns, e.g. ``("N", "D")``.
    n_params : int
        Number of free parameters of the law (noise scale included if it is fitted).
    law_name : str
        Name of the law, for the message.

    Raises
    ------
    RunsTableError
        If an input column is missing, or there are fewer than ``n_params + 1`` distinct input
        tuples (repeated measurements at one point do not pin down extra parameters).
    """
    inputs = _as_names(inputs)
    for column in inputs:
        if column not in runs.data_vars:
            # A runs table names its variables with strings.
            available = cast("list[str]", list(runs.data_vars))
            raise missing_column_error(column, available, needed_by=f"law {law_name!r}")
    points = pd.DataFrame({c: runs[c].to_numpy() for c in inputs}).drop_duplicates()
    needed = n_params + 1
    if len(points) < needed:
        what = f"({', '.join(inputs)})" if len(inputs) > 1 else inputs[0]
        raise RunsTableError(
            f"law {law_name!r} has {n_params} parameters and needs at least {needed} distinct "
            f"{what} points; the runs table has {len(points)}."
        )


def group_labels(table: xr.Dataset, columns: Sequence[str]) -> np.ndarray:
    """One label per run: the group column's value, or the values of several joined by '/'.

    Parameters
    ----------
    table : xarray.Dataset
        Runs as returned by :func:`load_runs`.
    columns : sequence of str
        Group columns (stored names); several are crossed into labels ``a/b``.

    Returns
    -------
    numpy.ndarray of str
        One label per run.
    """
    values = [np.asarray(table[c].values, dtype=str) for c in columns]
    if len(values) == 1:
        return values[0]
    return np.array(["/".join(parts) for parts in zip(*values, strict=True)])
