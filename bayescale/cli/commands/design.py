"""``bayescale design``: which run to train next, and how many runs until the band is narrow."""

from __future__ import annotations

import argparse

from bayescale.cli.app import fmt, print_json
from bayescale.cli.options import add_seed_option, positive_float, positive_int, probability
from bayescale.core.errors import ConfigError

_INPUTS = {
    "N": "parameters",
    "D": "tokens",
    "C": "FLOPs: the compute-optimal loss at this budget (N, D laws) or C (compute laws)",
}


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``design`` subcommand."""
    p = sub.add_parser(
        "design",
        help="rank candidate runs by expected narrowing of the band at a target per unit cost",
    )
    p.add_argument("fit", help="fit file written by 'bayescale fit'")
    for name, unit in _INPUTS.items():
        p.add_argument(
            f"--target-{name}",
            dest=f"target_{name}",
            type=positive_float,
            metavar="X",
            help=f"target {name} ({unit})",
        )
    p.add_argument(
        "--candidates", required=True, help="CSV or Parquet table of candidate runs (N, D, ...)"
    )
    p.add_argument("--columns", help="map canonical names to candidate columns, e.g. N=params")
    p.add_argument(
        "--cost-column", help="column of run costs (default: 'cost', else C, else 6 N D FLOPs)"
    )
    p.add_argument("--group", help="group of a hierarchical fit the runs belong to")
    p.add_argument(
        "--method", default="reweight", help="reweight (default), laplace or refit (slow)"
    )
    p.add_argument(
        "--outcomes", type=positive_int, default=64, help="simulated outcomes per candidate"
    )
    p.add_argument(
        "--budget", type=positive_float, help="also plan runs whose total cost fits this budget"
    )
    p.add_argument(
        "--width", type=positive_float, help="also count runs until the band is this narrow"
    )
    p.add_argument(
        "--order", default="greedy", choices=("greedy", "cycle"), help="run order for --width"
    )
    p.add_argument("--max-runs", type=positive_int, default=1000, help="limit for --width")
    p.add_argument(
        "--compute-unit", default="flops", choices=("flops", "pf-days"), help="unit of --target-C"
    )
    p.add_argument("--prob", type=probability, default=0.94, help="band probability (0.94)")
    add_seed_option(p, "seed of simulated outcomes")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``bayescale design``."""
    # the library is imported where used: `bayescale --help` imports every command module
    # (see benchmarks/README.md, start-up time)
    from bayescale.fitting.result import load_fit
    from bayescale.questions.design import design, load_candidates, plan, runs_needed
    from bayescale.runs.table import PF_DAY_FLOPS, parse_columns

    target = {
        k: getattr(args, f"target_{k}") for k in _INPUTS if getattr(args, f"target_{k}") is not None
    }
    if "C" in target and args.compute_unit == "pf-days":
        target["C"] *= PF_DAY_FLOPS
    if not target:
        raise ConfigError("give the target with --target-N and --target-D (or --target-C)")
    fit = load_fit(args.fit)
    columns = parse_columns(args.columns) if args.columns else None
    candidates = load_candidates(args.candidates, inputs=fit.law.inputs, columns=columns)
    common = {"target": target, "cost": args.cost_column, "group": args.group, "prob": args.prob}
    ranked = design(
        fit, candidates, method=args.method, outcomes=args.outcomes, seed=args.seed, **common
    )
    doc = ranked.to_dict()
    if args.budget is not None:
        doc["plan"] = plan(fit, candidates, budget=args.budget, **common).to_dict()
    if args.width is not None:
        doc["runs_needed"] = runs_needed(
            fit, candidates, width=args.width, order=args.order, max_runs=args.max_runs, **common
        ).to_dict()
    if args.json:
        print_json(doc)
        return 0
    pct = f"{args.prob:.0%}"
    where = ", ".join(f"{k} = {fmt(v, '.3g')}" for k, v in target.items())
    print(f"{pct} band of the loss at {where}: {fmt(doc['width_now'])} nats/token now")
    table = ranked.table
    shown = [c for c in ("N", "D", "C") if c in table.columns]
    header = "".join(f"{c:>12}" for c in ["rank", *shown, "cost", "width after", "per cost"])
    print(header)
    print("-" * len(header))
    for _, row in table.iterrows():
        cells = [f"{int(row['rank']):>12}", *(f"{fmt(row[c], '.3g'):>12}" for c in shown)]
        cells += [f"{fmt(row['cost'], '.3g'):>12}", f"{fmt(row['width_after']):>12}"]
        cells.append(f"{fmt(row['reduction_per_cost'], '.3g'):>12}")
        print("".join(cells))
    if "plan" in doc:
        p = doc["plan"]
        print(
            f"\nbudget {fmt(p['budget'], '.3g')}: {p['n_runs']} runs (cost "
            f"{fmt(p['total_cost'], '.3g')}), expected band {fmt(p['width_after'])}"
        )
    if "runs_needed" in doc:
        r = doc["runs_needed"]
        verdict = "reaches" if r["reached"] else "does not reach"
        print(
            f"\n{r['n_runs']} more runs ({args.order}, cost {fmt(r['total_cost'], '.3g')}) "
            f"{verdict} a band of {fmt(r['width'])} (expected {fmt(r['width_after'])})"
        )
    return 0
