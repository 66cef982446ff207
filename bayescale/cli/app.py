"""The ``bayescale`` command line.

Every command calls the public library API; nothing here computes anything the library cannot.
Errors caused by input (a bad runs table, an unknown law, a corrupt fit file) print one plain
line and exit with code 2; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import pkgutil
import sys
import warnings
from collections.abc import Sequence
from typing import Any, NoReturn

from bayescale import __version__
from bayescale.cli import commands
from bayescale.cli.options import (
    add_sampling_options,
    add_table_options,
    law_option,
    output_path,
    positive_float,
    positive_int,
    probability,
    sampling_options,
    table_options,
)
from bayescale.cli.startup import defer_dask_probes
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
def _cmd_fit(args: argparse.Namespace) -> int:
    # the library is imported where used: `bayescale --help` and each command pay only for
    # what that command runs (see benchmarks/README.md, start-up time)
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
        **sampling_options(args),
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
class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line, like every other input error."""

    def error(self, message: str) -> NoReturn:
        """Print one line naming the problem and how to get help; exit with code 2."""
        self.exit(EXIT_USAGE, f"error: {self.prog}: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of the ``bayescale`` command."""
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
    add_sampling_options(p, defaults_in_help=True)
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
    names = sorted(m.name for m in pkgutil.iter_modules(commands.__path__))
    return [importlib.import_module(f"bayescale.cli.commands.{n}") for n in names if n[0] != "_"]


# --------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code (0 ok, 2 bad input, 1 internal error)."""
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
