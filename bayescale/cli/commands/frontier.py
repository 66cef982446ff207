"""``bayescale frontier``: the compute-efficient frontier of a runs table, for fitting power_c."""

from __future__ import annotations

import argparse

from bayescale.cli.app import err, fmt, print_json
from bayescale.cli.options import output_path
from bayescale.core.files import atomic_write_text


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``frontier`` subcommand."""
    p = sub.add_parser(
        "frontier",
        help="extract the compute-efficient frontier (lower envelope of loss vs compute) of a "
        "runs table; fit power_c to it for Kaplan's L(C_min)",
    )
    p.add_argument(
        "runs",
        help="runs table (rows or checkpoints; C column, or N and D for C = 6ND) or bundled "
        "dataset name",
    )
    p.add_argument("--columns", help="map canonical names to columns, e.g. N=params,D=tokens")
    p.add_argument(
        "--compute-unit",
        default="flops",
        choices=("flops", "pf-days"),
        help="unit of the table's C column (default flops); the frontier's C is FLOPs",
    )
    p.add_argument(
        "--bins-per-decade",
        type=float,
        default=5.0,
        help="log-spaced compute bins per factor of 10 (default 5)",
    )
    p.add_argument(
        "--keep-edges",
        action="store_true",
        help="keep frontier points of the smallest and largest model sizes (dropped by default: "
        "the best size there may lie outside the sizes trained)",
    )
    p.add_argument("-o", "--output", required=True, help="CSV file to write (C in FLOPs, loss)")
    p.add_argument("--json", action="store_true", help="also print the frontier as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``bayescale frontier``."""
    # the library is imported where used: `bayescale --help` imports every command module
    # (see benchmarks/README.md, start-up time)
    from bayescale.questions.optimal import compute_frontier

    out = output_path(args.output)
    front = compute_frontier(
        args.runs,
        bins_per_decade=args.bins_per_decade,
        columns=args.columns,
        compute_unit=args.compute_unit,
        drop_edges=not args.keep_edges,
    )
    atomic_write_text(out, front.to_csv(index=False))
    err(
        f"wrote {out}: {len(front)} frontier points, C from {fmt(front['C'].min(), '.3g')} to "
        f"{fmt(front['C'].max(), '.3g')} FLOPs; fit Kaplan's L(C_min) with: "
        f"bayescale fit {out} --law power_c -o frontier_fit.nc"
    )
    if args.json:
        print_json({"n_points": len(front), "points": front.to_dict(orient="records")})
    return 0
