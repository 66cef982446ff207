"""``bayescale compare``: joint comparison of the arms of a hierarchical fit at a target."""

from __future__ import annotations

import argparse

from bayescale.cli.app import fmt, print_json
from bayescale.cli.options import positive_float, probability
from bayescale.core.errors import ConfigError

#: Canonical inputs a target may give, with their units.
_INPUTS = {"N": "parameters", "D": "tokens", "C": "FLOPs, or PF-days with --compute-unit"}


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``compare`` subcommand."""
    p = sub.add_parser(
        "compare",
        help="compare the arms of a hierarchical fit: loss differences, P(better), crossovers",
    )
    p.add_argument("fit", help="fit file written by 'bayescale fit --group COL'")
    p.add_argument("--arm", required=True, metavar="COL", help="the fit's group column")
    for name, unit in _INPUTS.items():
        p.add_argument(
            f"--at-{name}",
            dest=f"at_{name}",
            type=positive_float,
            metavar="X",
            help=f"target {name} ({unit})",
        )
    p.add_argument(
        "--compute-unit",
        default="flops",
        choices=("flops", "pf-days"),
        help="unit of --at-C (default flops; 1 PF-day = 8.64e19 FLOPs)",
    )
    p.add_argument("--prob", type=probability, default=0.94, help="HDI probability (default 0.94)")
    p.add_argument("--along", help="input along which to search crossovers (default: the first)")
    p.add_argument(
        "--crossover-range",
        nargs=2,
        type=positive_float,
        metavar=("LOW", "HIGH"),
        help="range searched for crossovers (default: data minimum to 10x the target)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``bayescale compare``."""
    # the library is imported where used: `bayescale --help` imports every command module
    # (see benchmarks/README.md, start-up time)
    from bayescale.fitting.result import load_fit
    from bayescale.questions.compare import compare
    from bayescale.runs.table import PF_DAY_FLOPS

    at = {k: getattr(args, f"at_{k}") for k in _INPUTS if getattr(args, f"at_{k}") is not None}
    if "C" in at and args.compute_unit == "pf-days":
        at["C"] *= PF_DAY_FLOPS
    if not at:
        raise ConfigError("give the target with --at-N (and --at-D or --at-C as the law needs)")
    result = compare(
        load_fit(args.fit),
        arm=args.arm,
        at=at,
        prob=args.prob,
        along=args.along,
        crossover_range=tuple(args.crossover_range) if args.crossover_range else None,
    )
    doc = result.to_dict()
    if args.json:
        print_json(doc)
        return 0
    pct = f"{args.prob:.0%}"
    target = ", ".join(f"{k} = {fmt(v[0], '.3g')}" for k, v in result.at.items())
    print(f"arms of {doc['arm']!r} at {target}: diff = loss(a) - loss(b) in nats/token")
    header = (
        f"{'a':<14}{'b':<14}{'diff mean':>11}{pct + ' HDI':>24}{'P(a better)':>13}"
        f"{'crossover ' + doc['along']:>30}"
    )
    print(header)
    print("-" * len(header))
    for row in doc["pairs"]:
        cross = row["crossover"]
        cross_text = (
            f"{fmt(cross['mean'], '.3g')} [{fmt(cross['lo'], '.3g')}, {fmt(cross['hi'], '.3g')}]"
            if cross
            else "none in range"
        )
        print(
            f"{row['a']:<14}{row['b']:<14}{fmt(row['diff_mean']):>11}"
            f"{'[' + fmt(row['diff_lo']) + ', ' + fmt(row['diff_hi']) + ']':>24}"
            f"{fmt(row['p_a_better'], '.3f'):>13}{cross_text:>30}"
        )
        for name, e in row["exponents"].items():
            print(
                f"    {name}(a) - {name}(b): {fmt(e['diff_mean'])} "
                f"[{fmt(e['diff_lo'])}, {fmt(e['diff_hi'])}]"
            )
    lo, hi = doc["crossover_range"]
    print(
        f"\ncrossovers searched for {doc['along']} in [{fmt(lo, '.3g')}, {fmt(hi, '.3g')}]; "
        "'none in range' when fewer than 5% of draws cross"
    )
    return 0
