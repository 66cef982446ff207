"""``bayescale report``: one self-contained HTML report of one or more saved fits."""

from __future__ import annotations

import argparse

from bayescale.cli.app import err
from bayescale.cli.options import output_path, positive_float, probability


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``report`` subcommand."""
    p = sub.add_parser(
        "report",
        help="write one self-contained HTML report (tables, figures, checks) of saved fits",
    )
    p.add_argument("fits", nargs="+", metavar="FIT", help="fit files written by 'bayescale fit'")
    p.add_argument(
        "--N",
        dest="N",
        action="append",
        type=positive_float,
        default=[],
        metavar="X",
        help="model size (parameters) to predict at or give the data needed for; repeatable",
    )
    p.add_argument(
        "--C",
        dest="C",
        action="append",
        type=positive_float,
        default=[],
        metavar="X",
        help="compute budget (FLOPs) to predict at or give the optimal allocation for",
    )
    p.add_argument(
        "--backtest",
        action="store_true",
        help="refit without the largest tenth of runs and score them (one extra fit per file)",
    )
    p.add_argument("--prob", type=probability, default=0.94, help="HDI probability (default 0.94)")
    p.add_argument("--title", default="bayescale report", help="page title")
    p.add_argument("-o", "--output", required=True, help="HTML file to write")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``bayescale report``."""
    # the library is imported where used: `bayescale --help` imports every command module
    # (see benchmarks/README.md, start-up time)
    from bayescale.report import write_report

    out = write_report(
        args.fits,
        output_path(args.output),
        N=args.N,
        C=args.C,
        backtest=args.backtest,
        prob=args.prob,
        title=args.title,
    )
    err(f"wrote {out}")
    return 0
