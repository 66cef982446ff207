"""``bayescale overfit``: the overfitting penalty of each run and the data a model size needs."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from bayescale.cli.app import fmt, print_json
from bayescale.cli.options import add_group_option, probability
from bayescale.core.errors import ConfigError

if TYPE_CHECKING:
    pass


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``overfit`` subcommand."""
    p = sub.add_parser(
        "overfit",
        help="overfitting check of a kaplan_nd or chinchilla fit: delta_L per run, data needed",
    )
    p.add_argument("fit", help="fit file written by 'bayescale fit' (law kaplan_nd or chinchilla)")
    p.add_argument(
        "--epsilon",
        type=float,
        default=0.02,
        help="tolerated penalty L(N,D)/L(N,inf) - 1 (default 0.02, Kaplan's run-to-run variation)",
    )
    p.add_argument(
        "--N",
        dest="N",
        action="append",
        type=float,
        metavar="X",
        help="model size (parameters) at which to report the data needed; repeat for several",
    )
    p.add_argument(
        "--D",
        dest="D",
        action="append",
        type=float,
        metavar="X",
        help="dataset size (tokens) paired with each --N: also report delta_L there",
    )
    p.add_argument(
        "--reference-N",
        dest="reference_N",
        type=float,
        metavar="X",
        help="model size at which the exponent and coefficient are read (chinchilla; "
        "default the largest fitted N)",
    )
    add_group_option(p)
    p.add_argument("--prob", type=probability, default=0.94, help="HDI probability (default 0.94)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``bayescale overfit``."""
    # the library is imported where used: `bayescale --help` imports every command module
    # (see benchmarks/README.md, start-up time)
    from bayescale.fitting.result import load_fit
    from bayescale.questions.overfit import overfit

    result = load_fit(args.fit)
    inputs = None
    if args.D and not args.N:
        raise ConfigError("--D needs the model sizes too: give --N with each --D")
    if args.N:
        inputs = {"N": args.N}
        if args.D:
            if len(args.D) not in (1, len(args.N)):
                raise ConfigError(
                    f"give one --D, or one per --N ({len(args.N)}); got {len(args.D)}"
                )
            inputs["D"] = args.D
    check = overfit(
        result,
        epsilon=args.epsilon,
        inputs=inputs,
        prob=args.prob,
        group=result.group_label(args.group),
        reference_N=args.reference_N,
    )
    doc = check.to_dict()
    if args.json:
        print_json(doc)
        return 0
    _print_text(doc)
    return 0


def _interval(s: dict, spec: str = ".4g") -> str:
    return f"{fmt(s['mean'], spec)} [{fmt(s['lo'], spec)}, {fmt(s['hi'], spec)}]"


def _print_text(doc: dict) -> None:
    pct = f"{doc['prob']:.0%}"
    eps = doc["epsilon"]
    print(
        f"overfitting check of {doc['law']}: delta_L = L(N,D)/L(N,inf) - 1, "
        f"epsilon = {eps:g}; mean [{pct} HDI]"
    )
    print(f"data needed D_min(N) = k N^exponent tokens (read at N = {doc['reference_N']:.3g}):")
    for key in ("exponent", "coefficient"):
        value = doc[key]
        entries = value if isinstance(value, list) else [value]
        for e in entries:
            label = f" ({e['group']})" if "group" in e else ""
            print(f"  {key}{label}: {_interval(e)}")
    rows = doc["runs"]
    flagged = [r for r in rows if r["overfit"]]
    print(f"\n{len(flagged)} of {len(rows)} runs flagged (P(delta_L > {eps:g}) > 0.5):")
    header = f"{'index':>6}{'N':>12}{'D':>12}{'delta_L':>11}{'hi':>11}{'P(>eps)':>9}"
    print(header)
    print("-" * len(header))
    for r in rows:
        mark = "  overfit" if r["overfit"] else ""
        print(
            f"{r['index']:>6}{fmt(r['N'], '.3g'):>12}{fmt(r['D'], '.3g'):>12}"
            f"{fmt(r['delta_L_mean'], '.3g'):>11}{fmt(r['delta_L_hi'], '.3g'):>11}"
            f"{fmt(r['p_overfit'], '.2f'):>9}{mark}"
        )
    if doc["points"]:
        print("\nasked model sizes:")
        for pt in doc["points"]:
            label = f" ({pt['group']})" if "group" in pt else ""
            text = f"  N = {pt['N']:.3g}{label}: D_min = {_interval(pt['D_min'], '.3g')} tokens"
            if "D" in pt:
                text += (
                    f"; at D = {pt['D']:.3g}: delta_L = {fmt(pt['delta_L_mean'], '.3g')} "
                    f"(P > eps {fmt(pt['p_overfit'], '.2f')})"
                )
            print(text)
