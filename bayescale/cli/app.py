"""The ``bayescale`` command line.

Every command calls the public library API; nothing here computes anything the library cannot.
Errors caused by input (a bad runs table, an unknown law, a corrupt fit file) print one plain
line and exit with code 2; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from bayescale.core.errors import BayescaleError, ConfigError

__all__ = [
    "add_table_options",
    "build_parser",
    "err",
    "fmt",
    "law_option",
    "main",
    "output_path",
    "positive_float",
    "positive_int",
    "print_json",
    "probability",
    "table_options",
]

EXIT_USAGE = 2
EXIT_INTERNAL = 1


# --------------------------------------------------------------------------------------------
# Commands
# --------------------------------------------------------------------------------------------
def law_option(runs: str, law: str | None) -> str:
    """Return ``--law``, or the law a bundled dataset named by ``runs`` was made for."""
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
    import os
    import tempfile

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


def _cmd_fit(args: argparse.Namespace) -> int:
    from bayescale.fitting.pipeline import fit
    from bayescale.laws.base import get_law
    from bayescale.runs.table import load_runs

    law = get_law(law_option(args.runs, args.law))
    out = output_path(args.output)
    groups = args.group or []
    table = load_runs(
        args.runs,
        required=(*law.inputs, "loss"),
        groups=[*groups, *([args.offset_by] if args.offset_by else [])],
        law_name=law.name,
        **table_options(args),
    )
    err(
        f"fitting {law.name} ({law.formula}) to {args.runs}: {args.chains} chains x {args.draws} "
        f"draws ({args.tune} tuning) with {args.sampler}"
    )
    result = fit(
        table,
        law,
        priors=args.priors,
        likelihood=args.likelihood,
        sampler=args.sampler,
        draws=args.draws,
        tune=args.tune,
        chains=args.chains,
        seed=args.seed,
        prior_draws=args.prior_draws,
        groups=groups,
        pool=_key_values(args.pool, "--pool") or None,
        centred=_centred_option(args.centred),
        offset_by=args.offset_by,
        offset_reference=args.offset_reference,
        progressbar=args.progress if args.progress is not None else sys.stderr.isatty(),
    )
    result.save(out)
    d = result.diagnostics
    err(
        f"wrote {out} ({result.n_runs} runs; divergences {d.divergences}, max R-hat "
        f"{d.max_r_hat:.3f}, min bulk ESS {d.min_ess_bulk:.0f})"
    )
    return 0


_YES_NO = {"yes": True, "true": True, "1": True, "no": False, "false": False, "0": False}


def _key_values(items: Sequence[str] | None, option: str) -> dict[str, str]:
    """Parse repeated ``KEY=VALUE`` options into a dict."""
    out: dict[str, str] = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ConfigError(f"{option} expects NAME=VALUE, got {item!r}")
        out[key.strip()] = value.strip()
    return out


def _centred_option(items: Sequence[str] | None) -> bool | dict[str, bool] | None:
    """``--centred yes`` forces every parameter; ``--centred alpha_N=no`` one of them."""
    if not items:
        return None
    if len(items) == 1 and "=" not in items[0]:
        return _yes_no(items[0], "--centred")
    return {k: _yes_no(v, f"--centred {k}") for k, v in _key_values(items, "--centred").items()}


def _yes_no(text: str, option: str) -> bool:
    try:
        return _YES_NO[text.lower()]
    except KeyError:
        raise ConfigError(f"{option} expects yes or no, got {text!r}") from None


def _cmd_summary(args: argparse.Namespace) -> int:
    from bayescale.cli.startup import defer_dask_probes
    from bayescale.fitting.result import load_fit, stored_summary

    summary = stored_summary(args.fit, args.prob)
    if summary is None:
        defer_dask_probes()
        summary = load_fit(args.fit).summary_dict(prob=args.prob)
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    print(f"law: {summary['law']}   {summary['formula']}")
    print(
        f"runs: {summary['n_runs']}   sampler: {summary['sampler']}   "
        f"draws: {summary['chains']} x {summary['draws']}"
    )
    replicates = summary.get("replicates") or {}
    if replicates.get("n_sets"):
        print(
            f"replicates: {replicates['n_runs_in_sets']} runs in {replicates['n_sets']} sets "
            f"of equal inputs ({replicates['n_points']} distinct input points)"
        )
    if summary.get("lack_of_fit"):
        print(f"lack of fit: {summary['lack_of_fit']['message']}")
    pct = f"{args.prob:.0%}"
    header = (
        f"{'parameter':<22}{'mean':>12}{'sd':>12}{pct + ' HDI low':>14}{pct + ' HDI high':>14}"
        f"{'R-hat':>8}{'ESS':>8}"
    )
    print(header)
    print("-" * len(header))
    for name, row in summary["params"].items():
        print(
            f"{name:<22}{fmt(row['mean']):>12}{fmt(row['sd']):>12}"
            f"{fmt(row['hdi_low']):>14}{fmt(row['hdi_high']):>14}"
            f"{fmt(row['r_hat'], '.3f'):>8}{fmt(row['ess_bulk'], '.0f'):>8}"
        )
    diag = summary["diagnostics"]
    print(
        f"\ndivergences: {diag['divergences']}   max R-hat: {fmt(diag['max_r_hat'], '.3f')}   "
        f"min bulk ESS: {fmt(diag['min_ess_bulk'], '.0f')}"
    )
    for problem in diag["warnings"]:
        print(f"WARNING: {problem}")
    return 0


def _cmd_datasets(args: argparse.Namespace) -> int:
    from bayescale.runs.table import dataset_info, list_datasets, load_runs

    if args.action == "list":
        for name in list_datasets():
            info = dataset_info(name)
            print(f"{name:<22}{info.get('law', ''):<14}{info.get('description', '').split('.')[0]}")
        return 0
    if not args.name:
        raise ConfigError(
            "'bayescale datasets show' needs a dataset name; see 'bayescale datasets list'"
        )
    info = dataset_info(args.name)
    runs = load_runs(args.name)
    print(
        json.dumps(
            {**info, "n_runs": int(runs.sizes["run"]), "columns": list(runs.data_vars)}, indent=2
        )
    )
    return 0


def _cmd_laws(args: argparse.Namespace) -> int:
    from bayescale.laws.base import get_law, list_laws

    for name in list_laws():
        law = get_law(name)
        print(
            f"{name:<12} inputs {','.join(law.inputs):<5} "
            f"params {', '.join(law.params):<30} {law.formula}"
        )
    return 0


# --------------------------------------------------------------------------------------------
# Parser
# --------------------------------------------------------------------------------------------
def positive_int(text: str) -> int:
    """Argparse type: a whole number >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number >= 1, got {value}")
    return value


def probability(text: str) -> float:
    """Argparse type: a probability strictly between 0 and 1."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a probability, got {text!r}") from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"probability must be between 0 and 1, got {value}")
    return value


def positive_float(text: str) -> float:
    """Argparse type: a positive finite number, e.g. ``1e11``."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"expected a positive finite number, got {text}")
    return value


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line, like every other input error."""

    def error(self, message: str) -> NoReturn:
        """Print one line naming the problem and how to get help; exit with code 2."""
        self.exit(EXIT_USAGE, f"error: {self.prog}: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of the ``bayescale`` command."""
    from bayescale import __version__

    parser = _Parser(
        prog="bayescale",
        description="Bayesian scaling-law inference: fit laws to training runs, get posteriors.",
    )
    parser.add_argument("--version", action="version", version=f"bayescale {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("fit", help="fit a law to a runs table and save the posterior")
    p.add_argument(
        "runs",
        help="runs table (CSV, Parquet, JSON Lines, directory of CSVs) or bundled dataset name",
    )
    p.add_argument(
        "--law", help="law to fit (see 'bayescale laws'); default: the bundled dataset's law"
    )
    add_table_options(p)
    p.add_argument("--priors", help="JSON or TOML file of prior overrides by parameter name")
    p.add_argument("--likelihood", default="normal", help="normal (default) or student_t")
    p.add_argument("--sampler", default="nutpie", help="nutpie (default), pymc or exact")
    p.add_argument(
        "--draws", type=positive_int, default=1000, help="draws per chain (default 1000)"
    )
    p.add_argument(
        "--tune", type=positive_int, default=1000, help="tuning steps per chain (default 1000)"
    )
    p.add_argument("--chains", type=positive_int, default=4, help="number of chains (default 4)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--prior-draws", type=int, default=0, help="also draw this many prior samples")
    prog = p.add_mutually_exclusive_group()
    prog.add_argument(
        "--progress", dest="progress", action="store_true", default=None, help="show a progress bar"
    )
    prog.add_argument(
        "--no-progress", dest="progress", action="store_false", help="hide the progress bar"
    )
    p.add_argument(
        "--group",
        action="append",
        metavar="COL",
        help="fit hierarchically over the levels of this column (repeat to cross columns)",
    )
    p.add_argument(
        "--pool",
        action="append",
        metavar="PARAM=MODE",
        help="pooling of a parameter across groups: partial (default), pooled or none",
    )
    p.add_argument(
        "--centred",
        metavar="yes|no|PARAM=yes|no",
        action="append",
        help="force the (non-)centred form of partially pooled parameters (default: from data)",
    )
    p.add_argument(
        "--offset-by",
        metavar="COL",
        help="constant log-loss offset per level of this column (e.g. the eval set)",
    )
    p.add_argument(
        "--offset-reference", metavar="LEVEL", help="reference level of --offset-by (offset 0)"
    )
    p.add_argument("-o", "--output", required=True, help="fit file to write (netCDF)")
    p.set_defaults(func=_cmd_fit)

    p = sub.add_parser("summary", help="summarise a saved fit")
    p.add_argument("fit", help="fit file written by 'bayescale fit'")
    p.add_argument("--prob", type=probability, default=0.94, help="HDI probability (default 0.94)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_cmd_summary)

    p = sub.add_parser("datasets", help="list or show the bundled datasets")
    p.add_argument("action", choices=("list", "show"))
    p.add_argument("name", nargs="?", help="dataset name (for 'show')")
    p.set_defaults(func=_cmd_datasets)

    p = sub.add_parser("laws", help="list the registered laws")
    p.set_defaults(func=_cmd_laws)

    for module in _command_modules():
        module.register(sub)
    return parser


def _command_modules() -> list[Any]:
    """Modules of :mod:`bayescale.cli.commands`, each adding its subcommands via ``register(sub)``.

    Questions asked of a saved fit (predict, overfit, optimal, report...) live one per module
    there, so each concept's command sits next to nothing else and the core stays small.
    """
    import importlib
    import pkgutil

    from bayescale.cli import commands

    names = sorted(m.name for m in pkgutil.iter_modules(commands.__path__))
    return [importlib.import_module(f"bayescale.cli.commands.{n}") for n in names if n[0] != "_"]


# --------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code (0 ok, 2 bad input, 1 internal error)."""
    from bayescale.cli.startup import defer_dask_probes

    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # usage errors (printed already), --help and --version
        return int(exc.code or 0)
    warnings.showwarning = _show_warning
    if args.func is not _cmd_summary:  # which reads a stored summary without xarray
        defer_dask_probes()
    try:
        return int(args.func(args))
    except BayescaleError as exc:
        if args.debug:
            raise
        err(f"error: {exc}")
        return EXIT_USAGE
    except KeyboardInterrupt:
        err("interrupted; nothing was written")
        return 130
    except Exception as exc:
        if args.debug:
            raise
        err(f"internal error: {type(exc).__name__}: {exc} (rerun with --debug for the traceback)")
        return EXIT_INTERNAL


def _show_warning(
    message: Any, category: type, filename: str, lineno: int, file: Any = None, line: Any = None
) -> None:
    err(f"warning: {message}")


def print_json(obj: Any) -> None:
    """Print one JSON object to stdout (non-finite numbers become null)."""
    print(json.dumps(_finite(obj), indent=2))


def _finite(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj


def err(text: str) -> None:
    """Print a message line to stderr."""
    print(text, file=sys.stderr, flush=True)


def fmt(x: float | None, spec: str = ".4g") -> str:
    """Format a number for a table; None (a non-finite value) prints as ``nan``."""
    return "nan" if x is None else format(x, spec)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
