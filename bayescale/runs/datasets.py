"""The bundled datasets: synthetic ladders made by ``data/make_datasets.py``, with metadata."""

from __future__ import annotations

import importlib.resources
import json
from pathlib import Path
from typing import Any

from bayescale.core.errors import RunsTableError, UnknownNameError, did_you_mean

__all__ = ["bundled_dir", "dataset_info", "list_datasets", "unknown_dataset"]


def bundled_dir() -> Path:
    """Return the directory holding the bundled datasets.

    Returns
    -------
    pathlib.Path
        ``bayescale/_bundled`` inside an installed wheel (the build copies the repository's
        ``data/`` there), else the repository's top-level ``data/`` directory (editable
        installs and source checkouts).
    """
    installed = importlib.resources.files("bayescale") / "_bundled"
    if installed.is_dir():
        return Path(str(installed))
    return Path(__file__).resolve().parents[2] / "data"


def list_datasets() -> list[str]:
    """Return the names of the bundled datasets, sorted.

    A bundled dataset is a ``<name>.csv`` file with a ``<name>.json`` metadata sidecar in
    :func:`bundled_dir`; a CSV without its sidecar is not listed.

    Returns
    -------
    list of str
        Names usable as ``load_runs(name)`` and ``dataset_info(name)``.
    """
    directory = bundled_dir()
    if not directory.is_dir():
        return []
    return sorted(p.stem for p in directory.glob("*.csv") if p.with_suffix(".json").is_file())


def unknown_dataset(name: str, *, as_file: bool) -> UnknownNameError:
    """Return the error for a name that is no bundled dataset (nor, with ``as_file``, a file)."""
    names = list_datasets()
    what = "neither an existing file nor a bundled dataset" if as_file else "not a bundled dataset"
    choices = did_you_mean(name, names) if names else "No bundled datasets are installed."
    return UnknownNameError(f"{name!r} is {what}. {choices}")


def dataset_info(name: str) -> dict[str, Any]:
    """Return the metadata of a bundled dataset.

    Parameters
    ----------
    name : str
        Dataset name, one of :func:`list_datasets`.

    Returns
    -------
    dict
        The parsed ``<name>.json`` sidecar: description, generating parameters, default law,
        column descriptions and whatever else its author recorded.

    Raises
    ------
    UnknownNameError
        If ``name`` is not a bundled dataset.
    RunsTableError
        If the sidecar is not valid JSON.
    """
    if name not in list_datasets():
        raise unknown_dataset(name, as_file=False)
    path = bundled_dir() / f"{name}.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise RunsTableError(f"cannot read metadata of dataset {name!r} ({path}): {err}") from err
