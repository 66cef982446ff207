"""``bayescale optimal``: compute-optimal model size, data and loss at given budgets."""

from __future__ import annotations

import argparse

from bayescale.cli.app import fmt, print_json
from bayescale.cli.options import add_group_option, probability


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``optimal`` subcommand."""
    p = sub.add_parser(
        "optimal",
        help="compute-optimal N, D and loss at budgets C (C = 6ND), with allocation exponents",
    )
    p.add_argument("fit", help="fit file written by 'bayescale fit' (law chinchilla or kaplan_nd)")
    p.add_argument(
        "--C",
        dest="C",
        action="append",
        type=float,
        metavar="X",
        help="training budget (FLOPs, or PF-days with --compute-unit pf-days); repeat for "
        "several; default: a grid from the fitted runs' compute to 1000x beyond",
    )
    p.add_argument(
        "--compute-unit",
        default="flops",
        choices=("flops", "pf-days"),
        help="unit of --C and of C in the output (default flops; 1 PF-day = 8.64e19 FLOPs)",
    )
    add_group_option(p)
    p.add_argument("--prob", type=probability, default=0.94, help="HDI probability (default 0.94)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``bayescale optimal``."""
    # the library is imported where used: `bayescale --help` imports every command module
    # (see benchmarks/README.md, start-up time)
    from bayescale.fitting.result import load_fit
    from bayescale.questions.optimal import optimal

    result = load_fit(args.fit)
    doc = optimal(
        result,
        args.C,
        prob=args.prob,
        compute_unit=args.compute_unit,
        group=result.group_label(args.group),
    ).to_dict()
    if args.json:
        print_json(doc)
        return 0
    pct = f"{args.prob:.0%}"
    print(f"compute-optimal allocation of {doc['law']} with C = 6ND: mean [{pct} HDI]")
    for key, what in (("a", "N_opt ~ C^a"), ("b", "D_opt ~ C^b")):
        value = doc["exponents"][key]
        for e in value if isinstance(value, list) else [value]:
            label = f" ({e['group']})" if "group" in e else ""
            print(
                f"  {key}{label} ({what}): {fmt(e['mean'], '.3f')} "
                f"[{fmt(e['lo'], '.3f')}, {fmt(e['hi'], '.3f')}]"
            )
    unit = "PF-days" if doc["compute_unit"] == "pf-days" else "FLOPs"
    header = f"{'C (' + unit + ')':>14}{'N_opt':>30}{'D_opt':>30}{'loss':>24}"
    if any("group" in r for r in doc["points"]):
        header = f"{'group':<16}" + header
    print(header)
    print("-" * len(header))
    for r in doc["points"]:
        cells = [
            f"{fmt(r[k]['mean'], '.3g')} [{fmt(r[k]['lo'], '.3g')}, {fmt(r[k]['hi'], '.3g')}]"
            for k in ("N_opt", "D_opt")
        ]
        loss = r["loss"]
        cells.append(f"{fmt(loss['mean'])} [{fmt(loss['lo'])}, {fmt(loss['hi'])}]")
        lead = f"{r['group']:<16}" if "group" in r else ""
        print(f"{lead}{fmt(r['C'], '.3g'):>14}{cells[0]:>30}{cells[1]:>30}{cells[2]:>24}")
    if "note" in doc:
        print(f"note: {doc['note']}")
    return 0
