"""The ``bayescale`` command line.

Every command calls the public library API; nothing here computes anything the library cannot.
Errors caused by input (a bad runs table, an unknown law, a corrupt fit file) print one plain
line and exit with code 2; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bayescale.errors import BayescaleError, ConfigError

__all__ = ["build_parser", "main"]

EXIT_USAGE = 2
EXIT_INTERNAL = 1


# --------------------------------------------------------------------------------------------
# Commands
# --------------------------------------------------------------------------------------------
def _cmd_fit(args: argparse.Namespace) -> int:
    from bayescale.fitting import fit
    from bayescale.laws import get_law
    from bayescale.runs import dataset_info, list_datasets

    law = args.law
    if law is None:
        if args.runs in list_datasets():
            law = dataset_info(args.runs)["law"]
        else:
            raise ConfigError("--law is required (e.g. --law chinchilla); see 'bayescale laws'")
    law = get_law(law)
    out = Path(args.output)
    if not out.parent.exists():
        raise ConfigError(
            f"cannot write {str(out)!r}: directory {str(out.parent)!r} does not exist"
        )
    _err(
        f"fitting {law.name} ({law.formula}) to {args.runs}: {args.chains} chains x {args.draws} "
        f"draws ({args.tune} tuning) with {args.sampler}"
    )
    result = fit(
        args.runs,
        law,
        columns=args.columns,
        compute_unit=args.compute_unit,
        derive_compute=args.derive_compute,
        priors=args.priors,
        likelihood=args.likelihood,
        sampler=args.sampler,
        draws=args.draws,
        tune=args.tune,
        chains=args.chains,
        seed=args.seed,
        prior_draws=args.prior_draws,
        progressbar=args.progress if args.progress is not None else sys.stderr.isatty(),
    )
    result.save(out)
    d = result.diagnostics
    _err(
        f"wrote {out} ({result.n_runs} runs; divergences {d.divergences}, max R-hat "
        f"{d.max_r_hat:.3f}, min bulk ESS {d.min_ess_bulk:.0f})"
    )
    return 0


def _cmd_summary(args: argparse.Namespace) -> int:
    from bayescale.fitting import load_fit

    result = load_fit(args.fit)
    summary = result.summary_dict(prob=args.prob)
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    print(f"law: {result.law.name}   {result.law.formula}")
    print(
        f"runs: {summary['n_runs']}   sampler: {result.settings.get('sampler')}   "
        f"draws: {result.settings.get('chains')} x {result.settings.get('draws')}"
    )
    pct = f"{args.prob:.0%}"
    header = (
        f"{'parameter':<22}{'mean':>12}{'sd':>12}{pct + ' HDI low':>14}{pct + ' HDI high':>14}"
        f"{'R-hat':>8}{'ESS':>8}"
    )
    print(header)
    print("-" * len(header))
    for name, row in summary["params"].items():
        print(
            f"{name:<22}{_fmt(row['mean']):>12}{_fmt(row['sd']):>12}"
            f"{_fmt(row['hdi_low']):>14}{_fmt(row['hdi_high']):>14}"
            f"{_fmt(row['r_hat'], '.3f'):>8}{_fmt(row['ess_bulk'], '.0f'):>8}"
        )
    diag = summary["diagnostics"]
    print(
        f"\ndivergences: {diag['divergences']}   max R-hat: {_fmt(diag['max_r_hat'], '.3f')}   "
        f"min bulk ESS: {_fmt(diag['min_ess_bulk'], '.0f')}"
    )
    for problem in diag["warnings"]:
        print(f"WARNING: {problem}")
    return 0


def _cmd_datasets(args: argparse.Namespace) -> int:
    from bayescale.runs import dataset_info, list_datasets, load_runs

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
    from bayescale.laws import get_law, list_laws

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
def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number >= 1, got {value}")
    return value


def _prob(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a probability, got {text!r}") from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"probability must be between 0 and 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of the ``bayescale`` command."""
    from bayescale import __version__

    parser = argparse.ArgumentParser(
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
    p.add_argument("--columns", help="map canonical names to columns, e.g. N=params,D=tokens")
    p.add_argument(
        "--compute-unit", default="flops", help="unit of the C column: flops (default) or pf-days"
    )
    p.add_argument("--derive-compute", action="store_true", help="set C = 6 N D from N and D")
    p.add_argument("--priors", help="JSON or TOML file of prior overrides by parameter name")
    p.add_argument("--likelihood", default="normal", help="normal (default) or student_t")
    p.add_argument("--sampler", default="nutpie", help="nutpie (default), pymc or exact")
    p.add_argument(
        "--draws", type=_positive_int, default=1000, help="draws per chain (default 1000)"
    )
    p.add_argument(
        "--tune", type=_positive_int, default=1000, help="tuning steps per chain (default 1000)"
    )
    p.add_argument("--chains", type=_positive_int, default=4, help="number of chains (default 4)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--prior-draws", type=int, default=0, help="also draw this many prior samples")
    prog = p.add_mutually_exclusive_group()
    prog.add_argument(
        "--progress", dest="progress", action="store_true", default=None, help="show a progress bar"
    )
    prog.add_argument(
        "--no-progress", dest="progress", action="store_false", help="hide the progress bar"
    )
    p.add_argument("-o", "--output", required=True, help="fit file to write (netCDF)")
    p.set_defaults(func=_cmd_fit)

    p = sub.add_parser("summary", help="summarise a saved fit")
    p.add_argument("fit", help="fit file written by 'bayescale fit'")
    p.add_argument("--prob", type=_prob, default=0.94, help="HDI probability (default 0.94)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_cmd_summary)

    p = sub.add_parser("datasets", help="list or show the bundled datasets")
    p.add_argument("action", choices=("list", "show"))
    p.add_argument("name", nargs="?", help="dataset name (for 'show')")
    p.set_defaults(func=_cmd_datasets)

    p = sub.add_parser("laws", help="list the registered laws")
    p.set_defaults(func=_cmd_laws)
    return parser


# --------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code (0 ok, 2 bad input, 1 internal error)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    warnings.showwarning = _show_warning
    try:
        return int(args.func(args))
    except BayescaleError as exc:
        if args.debug:
            raise
        _err(f"error: {exc}")
        return EXIT_USAGE
    except KeyboardInterrupt:
        _err("interrupted; nothing was written")
        return 130
    except Exception as exc:
        if args.debug:
            raise
        _err(f"internal error: {type(exc).__name__}: {exc} (rerun with --debug for the traceback)")
        return EXIT_INTERNAL


def _show_warning(
    message: Any, category: type, filename: str, lineno: int, file: Any = None, line: Any = None
) -> None:
    _err(f"warning: {message}")


def _err(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _fmt(x: float | None, spec: str = ".4g") -> str:
    return "nan" if x is None else format(x, spec)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
