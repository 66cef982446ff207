"""Options shared by the commands of ``bayescale``: their argparse types, adders and readers.

An option that several commands take is defined here once, so its name, type, default and
help read the same everywhere: an ``add_*`` function adds it to a command's parser (with the
command's own default or help where they differ) and a reader turns the parsed arguments into
the keyword arguments of the library call.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from bayescale.core.errors import ConfigError

__all__ = [
    "SAMPLING_HELP",
    "add_group_option",
    "add_sampling_options",
    "add_seed_option",
    "add_table_options",
    "law_option",
    "output_path",
    "positive_float",
    "positive_int",
    "probability",
    "sampling_options",
    "table_options",
]

#: Help of ``--draws``, ``--tune`` and ``--chains``, without their defaults.
SAMPLING_HELP = {
    "draws": "draws per chain",
    "tune": "tuning steps per chain",
    "chains": "number of chains",
}
#: Names of the sampler settings :func:`sampling_options` reads.
_SAMPLING = tuple(SAMPLING_HELP)


# --------------------------------------------------------------------------------------------
# Argparse types
# --------------------------------------------------------------------------------------------
def _converted[T](text: str, convert: Callable[[str], T], expected: str) -> T:
    """``convert(text)``, or the argparse error "expected ``expected``, got ``text``"."""
    try:
        return convert(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None


def positive_int(text: str) -> int:
    """Argparse type: a whole number >= 1."""
    value = _converted(text, int, "a whole number")
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number >= 1, got {value}")
    return value


def probability(text: str) -> float:
    """Argparse type: a probability strictly between 0 and 1."""
    value = _converted(text, float, "a probability")
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"probability must be between 0 and 1, got {value}")
    return value


def positive_float(text: str) -> float:
    """Argparse type: a positive finite number, e.g. ``1e11``."""
    value = _converted(text, float, "a number")
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"expected a positive finite number, got {text}")
    return value


# --------------------------------------------------------------------------------------------
# Sampling: --draws, --tune, --chains, --seed
# --------------------------------------------------------------------------------------------
def add_sampling_options(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    *,
    draws: int | None = 1000,
    tune: int | None = 1000,
    chains: int | None = 4,
    help: Mapping[str, str] | None = None,
    defaults_in_help: bool = False,
    seed: bool = True,
) -> None:
    """Add ``--draws``, ``--tune`` and ``--chains`` (and ``--seed``) for the sampler of a fit.

    Parameters
    ----------
    parser : argparse.ArgumentParser or argument group
        Where to add the options.
    draws, tune, chains : int or None
        Defaults of the options; None leaves them unset, for a command that picks its own
        (``bayescale sbc --fast``).
    help : mapping, optional
        Help text by option name (``"draws"``, ``"tune"``, ``"chains"``), in place of
        :data:`SAMPLING_HELP`.
    defaults_in_help : bool
        Append ``(default X)`` to each help text.
    seed : bool
        Also add ``--seed`` (:func:`add_seed_option`, help ``random seed (default 0)``).
    """
    texts = {**SAMPLING_HELP, **(help or {})}
    for name, default in zip(_SAMPLING, (draws, tune, chains), strict=True):
        text = texts[name] + (f" (default {default})" if defaults_in_help else "")
        parser.add_argument(f"--{name}", type=positive_int, default=default, help=text)
    if seed:
        add_seed_option(parser)


def add_seed_option(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    help: str = "random seed (default 0)",
) -> None:
    """Add ``--seed`` (an integer, default 0) with the command's own ``help``."""
    parser.add_argument("--seed", type=int, default=0, help=help)


def sampling_options(
    args: argparse.Namespace, *, defaults: Mapping[str, int] | None = None, seed: bool = True
) -> dict[str, Any]:
    """Return the sampler keyword arguments (``draws``, ``tune``, ``chains``, ``seed``) of a fit.

    Parameters
    ----------
    args : argparse.Namespace
        Arguments parsed by a parser given :func:`add_sampling_options`.
    defaults : mapping, optional
        Value of each setting the command line left unset (options added with default None).
    seed : bool
        Include ``seed`` (from ``--seed``).

    Returns
    -------
    dict
        Keyword arguments for :func:`bayescale.fitting.pipeline.fit` and the questions that fit.
    """
    values = {name: getattr(args, name) for name in _SAMPLING}
    if defaults is not None:
        values = {k: defaults[k] if v is None else v for k, v in values.items()}
    if seed:
        values["seed"] = args.seed
    return values


# --------------------------------------------------------------------------------------------
# Groups: --group COL=VALUE
# --------------------------------------------------------------------------------------------
def add_group_option(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    help: str = "one group of a hierarchical fit (default: every group)",
) -> None:
    """Add ``--group COL=VALUE`` (one group of a hierarchical fit).

    The text is checked by :meth:`bayescale.fitting.result.Fit.group_label`.
    """
    parser.add_argument("--group", metavar="COL=VALUE", help=help)


# --------------------------------------------------------------------------------------------
# Runs tables, laws and output files
# --------------------------------------------------------------------------------------------
def law_option(runs: str, law: str | None) -> str:
    """Return ``--law``, or the law a bundled dataset named by ``runs`` was made for."""
    # the library is imported where used: every command module imports these options, and
    # `bayescale --help` must not pay for pandas and xarray (see benchmarks/README.md)
    from bayescale.runs.table import dataset_info, list_datasets

    if law is not None:
        return law
    if runs in list_datasets() or not Path(runs).exists():
        # An unknown name gets the same "not a bundled dataset, did you mean" as load_runs.
        return dataset_info(runs)["law"]
    raise ConfigError("--law is required (e.g. --law chinchilla); see 'bayescale laws'")


def output_path(text: str, option: str = "-o") -> Path:
    """Check that ``text`` names a file the command can write, before any work is done.

    Parameters
    ----------
    text : str
        The path given on the command line.
    option : str, default "-o"
        The option that named it, for the message.

    Returns
    -------
    pathlib.Path
        The path, unchanged.

    Raises
    ------
    ConfigError
        If its directory does not exist or cannot be written to, or the path is a directory.
    """
    out = Path(text)
    where = f"cannot write {option} {text!r}"
    if out.is_dir():
        raise ConfigError(f"{where}: it is a directory; give a file name")
    if not out.parent.is_dir():
        raise ConfigError(f"{where}: directory {str(out.parent)!r} does not exist")
    # Permission bits do not stop root, and a read-only file system only shows on writing, so
    # write a probe where the atomic writer will put its temporary file.
    try:
        fd, probe = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".probe", dir=out.parent)
    except OSError as exc:
        raise ConfigError(f"{where}: {exc.strerror or exc}") from None
    os.close(fd)
    os.unlink(probe)
    return out


def add_table_options(parser: argparse.ArgumentParser) -> None:
    """Add the options that say how to read a runs table (every option of ``load_runs``)."""
    table = parser.add_argument_group("reading the runs table")
    table.add_argument("--columns", help="map canonical names to columns, e.g. N=params,D=tokens")
    table.add_argument(
        "--compute-unit", default="flops", help="unit of the C column: flops (default) or pf-days"
    )
    table.add_argument("--derive-compute", action="store_true", help="set C = 6 N D from N and D")
    table.add_argument(
        "--file-pattern",
        metavar="REGEX",
        help="regex with named groups read from each file name into columns",
    )
    table.add_argument(
        "--value-map",
        metavar="JSON",
        help='map column labels to numbers: JSON text or file, e.g. {"size": {"190M": 1.9e8}}',
    )
    table.add_argument(
        "--last-per-run",
        nargs="?",
        const=True,
        metavar="COL",
        help="keep each run's final checkpoint; COL identifies a run (default: a column named "
        "run, run_id, run_name, name or source_file)",
    )
    table.add_argument(
        "--drop-copies",
        action="store_true",
        help="drop rows identical in every column to an earlier row (default: an error)",
    )
    table.add_argument(
        "--no-replicates",
        dest="allow_replicates",
        action="store_false",
        help="refuse replicate runs (same inputs, different loss); default: use them",
    )
    table.add_argument(
        "--max-loss",
        type=positive_float,
        metavar="NATS",
        help="largest plausible loss in nats/token (default 20)",
    )


def table_options(args: argparse.Namespace) -> dict[str, Any]:
    """Return the ``load_runs`` keyword arguments given by :func:`add_table_options`."""
    options = {
        "columns": args.columns,
        "compute_unit": args.compute_unit,
        "derive_compute": args.derive_compute,
        "file_pattern": args.file_pattern,
        "value_map": _value_map(args.value_map),
        "last_per_run": args.last_per_run,
        "drop_copies": args.drop_copies,
        "allow_replicates": args.allow_replicates,
    }
    if args.max_loss is not None:
        options["max_loss"] = args.max_loss
    return options


def _value_map(text: str | None) -> dict[str, Any] | None:
    """``--value-map``: JSON text, or the path of a JSON file, of ``{column: {label: number}}``."""
    if text is None:
        return None
    source = "--value-map"
    if not text.lstrip().startswith("{"):
        path = Path(text)
        if not path.is_file():
            raise ConfigError(f"--value-map {text!r} is neither JSON text nor an existing file")
        source, text = f"--value-map file {text!r}", path.read_text(encoding="utf-8")
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"{source} is not valid JSON: {exc}") from None
    if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
        raise ConfigError(f'{source} must be {{"column": {{"label": number, ...}}, ...}}')
    return value
