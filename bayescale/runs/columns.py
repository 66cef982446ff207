"""Canonical columns, the mapping of a table's names onto them, and column names in messages.

Also the names a loaded table stores a user's column under (:func:`stored_column`) and the
names taken as a run identifier (:func:`find_run_id`).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence

from bayescale.core.dims import CHAIN, DRAW, POINT, RUN
from bayescale.core.errors import RunsTableError, did_you_mean

__all__ = [
    "CANONICAL",
    "RUN_ID_COLUMNS",
    "UNITS",
    "check_mapping",
    "closest",
    "columns_text",
    "find_run_id",
    "missing_column_error",
    "parse_columns",
    "stored_column",
]

CANONICAL: tuple[str, ...] = ("N", "D", "C", "loss", "step", "batch")
"""Canonical column names, in the order they appear in a loaded Dataset."""


#: Column names taken as the run identifier when none is named, in this order of preference
#: (``source_file`` is what :func:`load_runs` adds for a directory with one CSV per run).
RUN_ID_COLUMNS: tuple[str, ...] = ("run", "run_id", "run_name", "name", "source_file")


_RESERVED = (RUN, CHAIN, DRAW, POINT)


_RESERVED_SUFFIX = "_label"


UNITS: dict[str, str] = {
    "N": "parameters (non-embedding)",
    "D": "tokens",
    "C": "FLOPs",
    "loss": "nats/token",
    "step": "optimizer steps",
    "batch": "tokens per step",
}


_MAX_COLUMNS_LISTED = 30


_COLUMNS_FORM = (
    "expected comma-separated CANONICAL=column pairs such as 'N=params,D=tokens', "
    f"with CANONICAL one of {', '.join(CANONICAL)}"
)


def parse_columns(spec: str) -> dict[str, str]:
    """Parse a column mapping written as ``"N=params,D=tokens"``.

    Parameters
    ----------
    spec : str
        Comma-separated ``CANONICAL=column`` pairs; spaces around names are ignored. A source
        column name may itself contain ``=`` (only the first one splits).

    Returns
    -------
    dict of str to str
        Canonical name to source column name.

    Raises
    ------
    RunsTableError
        If a pair has no ``=``, a side is empty, a canonical name is not in :data:`CANONICAL`
        or appears twice.

    Examples
    --------
    >>> parse_columns("N=params, D=tokens")
    {'N': 'params', 'D': 'tokens'}
    """
    mapping: dict[str, str] = {}
    for part in spec.split(","):
        canonical, sep, source = (s.strip() for s in part.partition("="))
        if not sep or not canonical or not source:
            raise RunsTableError(f"bad column mapping {spec!r}: part {part!r}; {_COLUMNS_FORM}.")
        if canonical in mapping:
            raise RunsTableError(
                f"bad column mapping {spec!r}: {canonical!r} is mapped twice; {_COLUMNS_FORM}."
            )
        mapping[canonical] = source
    return check_mapping(mapping, shown=repr(spec))


def check_mapping(mapping: Mapping[str, str], *, shown: str) -> dict[str, str]:
    """Check a canonical-to-source column mapping; ``shown`` is how the message quotes it."""
    for canonical, source in mapping.items():
        if canonical not in CANONICAL:
            raise RunsTableError(
                f"bad column mapping {shown}: {canonical!r} is not a canonical column; "
                f"{_COLUMNS_FORM}. {did_you_mean(str(canonical), CANONICAL)}"
            )
        if not isinstance(source, str) or not source:
            raise RunsTableError(
                f"bad column mapping {shown}: {canonical!r} maps to {source!r}, "
                f"not a column name; {_COLUMNS_FORM}."
            )
    targets = list(mapping.values())
    for source in targets:
        if targets.count(source) > 1:
            both = [c for c, s in mapping.items() if s == source]
            raise RunsTableError(
                f"bad column mapping {shown}: column {source!r} is mapped to {' and '.join(both)}; "
                "each source column can feed one canonical column."
            )
    return dict(mapping)


def columns_text(columns: Sequence[str]) -> str:
    """Column names for a message: quoted, at most 30, then "and N more"."""
    shown = ", ".join(repr(c) for c in columns[:_MAX_COLUMNS_LISTED])
    extra = len(columns) - _MAX_COLUMNS_LISTED
    return shown + (f" and {extra} more" if extra > 0 else "") if columns else "(none)"


def closest(name: str, columns: Sequence[str]) -> str | None:
    """Return the column most like ``name`` (for "did you mean"), or None."""
    # Case-insensitive equality first: 'n' for 'N' is the common slip.
    for column in columns:
        if column.lower() == name.lower():
            return column
    close = difflib.get_close_matches(name.lower(), [c.lower() for c in columns], n=1, cutoff=0.6)
    if close:
        return next(c for c in columns if c.lower() == close[0])
    return None


def missing_column_error(
    column: str, available: Sequence[str], *, needed_by: str | None, mapped: bool = False
) -> RunsTableError:
    """Return the error for a column that a law, an option or a mapping needs and the table lacks.

    It names the column, what needs it, the closest available name and how to map one.
    """
    if mapped:
        close = closest(column, available)
        hint = f" Did you mean {close!r}?" if close else ""
        return RunsTableError(
            f"the column mapping names column {column!r}, which the runs table does not have."
            f"{hint} Available columns: {columns_text(available)}."
        )
    needed = f"needed by {needed_by}" if needed_by else "required"
    close = closest(column, available)
    example = close or "<name>"
    hint = f" Did you mean {close!r}?" if close else ""
    return RunsTableError(
        f"runs table has no column {column!r} ({needed}).{hint} Available columns: "
        f"{columns_text(available)}. Map a column onto it with "
        f"columns={{{column!r}: {example!r}}} (CLI: --columns {column}={example})."
    )


def stored_column(name: str) -> str:
    """Return the name under which a loaded table stores the user's column ``name``.

    Columns named like a dimension of a fit (``run``, ``chain``, ``draw``, ``point``) get the
    suffix ``_label`` (``run`` becomes ``run_label``); every other name is kept. Options that
    name columns (groups, run ids, offsets) are translated with this function, so users always
    write their own column names.

    Parameters
    ----------
    name : str
        A column name as written in the user's table.

    Returns
    -------
    str
        The variable name in the :class:`xarray.Dataset` returned by :func:`load_runs`.
    """
    return f"{name}{_RESERVED_SUFFIX}" if name in _RESERVED else name


def find_run_id(columns: Sequence[str]) -> str | None:
    """Return the column of ``columns`` that identifies runs, by name, or None.

    The first of :data:`RUN_ID_COLUMNS` present is taken, compared either as written in the
    user's table or as stored by :func:`load_runs` (``run`` is stored as ``run_label``).

    Parameters
    ----------
    columns : sequence of str
        Column names of a table.

    Returns
    -------
    str or None
        The matching name as it appears in ``columns``.
    """
    present = set(columns)
    for name in RUN_ID_COLUMNS:
        for candidate in (name, stored_column(name)):
            if candidate in present:
                return candidate
    return None
