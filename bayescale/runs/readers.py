"""Reading a runs table from a file, a directory of CSV files, a DataFrame or a bundled name."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from bayescale.core.errors import RunsTableError
from bayescale.runs.datasets import bundled_dir, list_datasets, unknown_dataset

__all__ = ["DIR_COLUMN", "Table", "read_file", "read_source"]

DIR_COLUMN = "source_file"


@dataclass
class Table:
    """A table as read, with where each row came from, before any checking."""

    frame: pd.DataFrame
    description: str
    # For a directory of files: (file name, 1-based row in that file) of each row, so that
    # messages point at the file a user has to open.
    origin: list[tuple[str, int]] | None = None


_READERS = {
    ".csv": lambda p, text: pd.read_csv(p, skipinitialspace=True, dtype=dict.fromkeys(text, str)),
    ".tsv": lambda p, text: pd.read_csv(p, sep="\t", dtype=dict.fromkeys(text, str)),
    ".parquet": lambda p, text: pd.read_parquet(p),
    ".pq": lambda p, text: pd.read_parquet(p),
    ".jsonl": lambda p, text: pd.read_json(p, lines=True, dtype=dict.fromkeys(text, str)),
    ".ndjson": lambda p, text: pd.read_json(p, lines=True, dtype=dict.fromkeys(text, str)),
    ".json": lambda p, text: pd.read_json(p, dtype=dict.fromkeys(text, str)),
}


def read_file(path: Path, text: Sequence[str] = ()) -> pd.DataFrame:
    """Read one file by its extension; ``text`` columns are kept as written (no parsing)."""
    reader = _READERS.get(path.suffix.lower())
    if reader is None:
        raise RunsTableError(
            f"cannot read runs file {str(path)!r}: unsupported extension {path.suffix!r}. "
            f"Supported: {', '.join(_READERS)}, or a directory of .csv files."
        )
    try:
        frame = reader(path, tuple(text))
    except ImportError as err:
        raise RunsTableError(
            f"cannot read runs file {str(path)!r}: {err}. "
            "Parquet needs pyarrow: pip install 'bayescale[parquet]'."
        ) from err
    except (ValueError, OSError, UnicodeDecodeError) as err:
        # pandas' parser errors and pyarrow's ArrowInvalid are ValueErrors.
        reason = str(err).strip() or type(err).__name__
        raise RunsTableError(f"cannot read runs file {str(path)!r}: {reason}") from err
    if frame.shape[1] == 1 and path.suffix.lower() in (".csv", ".tsv"):
        header = str(frame.columns[0])
        other = next((sep for sep in (";", "\t", "|", ",") if sep in header), None)
        if other is not None:
            raise RunsTableError(
                f"cannot read runs file {str(path)!r}: it has one column {header!r}, which looks "
                f"separated by {other!r}; .csv files must be comma-separated and .tsv files "
                "tab-separated."
            )
    return frame


def read_directory(directory: Path, text: Sequence[str]) -> Table:
    files = sorted(p for p in directory.iterdir() if p.is_file() and p.suffix.lower() == ".csv")
    if not files:
        raise RunsTableError(f"directory {str(directory)!r} holds no .csv files to read as runs.")
    frames: list[pd.DataFrame] = []
    origin: list[tuple[str, int]] = []
    for path in files:
        frame = read_file(path, text)
        if DIR_COLUMN in frame.columns:
            raise RunsTableError(
                f"{str(path)!r} has a column {DIR_COLUMN!r}, which bayescale adds itself when "
                "reading a directory (it holds each file's stem); rename that column."
            )
        frame[DIR_COLUMN] = path.stem
        frames.append(frame)
        origin.extend((path.name, i + 1) for i in range(len(frame)))
    frames = [f for f in frames if len(f)] or frames[:1]
    # Files may have different columns (runs logged different metrics): missing cells are NaN.
    frame = pd.concat(frames, ignore_index=True, sort=False)
    return Table(frame, f"directory {str(directory)!r} ({len(files)} .csv files)", origin)


def read_source(source: Any, text: Sequence[str] = ()) -> Table:
    """Read a DataFrame, a file, a directory of CSV files or a bundled dataset by name."""
    if isinstance(source, pd.DataFrame):
        return Table(source.reset_index(drop=True), f"DataFrame ({len(source)} rows)")
    if not isinstance(source, str | os.PathLike):
        raise TypeError(
            "source must be a pandas.DataFrame, a path to a runs file or directory, or the name "
            f"of a bundled dataset; got {type(source).__name__}."
        )
    path = Path(source)
    if path.is_dir():
        return read_directory(path, text)
    if path.is_file():
        return Table(read_file(path, text), f"file {str(path)!r}")
    text = os.fspath(source)
    looks_like_name = isinstance(source, str) and "/" not in text and os.sep not in text
    if looks_like_name and text in list_datasets():
        csv = bundled_dir() / f"{text}.csv"
        return Table(read_file(csv, text), f"bundled dataset {text!r}")
    if looks_like_name:
        raise unknown_dataset(text, as_file=True)
    raise RunsTableError(f"runs file {text!r} does not exist.")
