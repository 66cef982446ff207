"""``bayescale predict``: posterior predictive loss of a saved fit at new inputs."""

from __future__ import annotations

import argparse

from bayescale.cli.app import fmt, print_json
from bayescale.cli.options import add_group_option, add_seed_option, probability
from bayescale.core.errors import ConfigError

#: Unit of each input as typed on the command line (C may also be PF-days).
_UNIT_HELP = {"C": "FLOPs, or PF-days with --compute-unit pf-days"}


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``predict`` subcommand."""
    # the library is imported where used: `bayescale --help` imports every command module
    # (see benchmarks/README.md, start-up time)
    from bayescale.laws.base import INPUT_UNITS

    p = sub.add_parser(
        "predict",
        help="predict the loss at new N, D, C: bands, P(loss < target), extrapolation distance",
    )
    p.add_argument("fit", help="fit file written by 'bayescale fit'")
    # Every canonical input is an option; the fit's law decides which are needed.
    for name, unit in INPUT_UNITS.items():
        p.add_argument(
            f"--{name}",
            dest=f"input_{name}",
            action="append",
            type=float,
            metavar="X",
            help=f"{name} ({_UNIT_HELP.get(name, unit)}); repeat for several points",
        )
    p.add_argument(
        "--compute-unit",
        default="flops",
        choices=("flops", "pf-days"),
        help="unit of --C (default flops; 1 PF-day = 8.64e19 FLOPs)",
    )
    who = p.add_mutually_exclusive_group()
    add_group_option(who, "predict for this group of a hierarchical fit")
    who.add_argument(
        "--new-group",
        action="store_true",
        help="predict for a group not in the data (population draws: a wider band)",
    )
    p.add_argument("--offset", metavar="LEVEL", help="level of the fit's offset column")
    p.add_argument("--prob", type=probability, default=0.94, help="HDI probability (default 0.94)")
    p.add_argument(
        "--target-loss", type=float, metavar="L", help="report P(loss < L), L in nats/token"
    )
    add_seed_option(p, "seed of the predictive draws (default 0)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``bayescale predict``."""
    from bayescale.fitting.result import load_fit
    from bayescale.laws.base import INPUT_UNITS
    from bayescale.questions.predict import predict
    from bayescale.runs.table import PF_DAY_FLOPS

    result = load_fit(args.fit)
    inputs = {k: v for k in INPUT_UNITS if (v := getattr(args, f"input_{k}")) is not None}
    if "C" in inputs and args.compute_unit == "pf-days":
        inputs["C"] = [c * PF_DAY_FLOPS for c in inputs["C"]]
    if not inputs:
        needed = " and ".join(f"--{k}" for k in result.law.inputs)
        raise ConfigError(f"give the point(s) to predict with {needed}")
    group = result.group_label(args.group)
    pred = predict(
        result,
        inputs,
        group=group,
        new_group=args.new_group,
        offset=args.offset,
        prob=args.prob,
        target_loss=args.target_loss,
        seed=args.seed,
    )
    doc = pred.to_dict()
    if args.json:
        print_json(doc)
        return 0
    pct = f"{args.prob:.0%}"
    names = list(pred.inputs)
    header = (
        "".join(f"{k:>11}" for k in names)
        + f"{'mean':>9}{'median':>9}{pct + ' HDI':>20}{'one run ' + pct:>20}"
        + "".join(f"{'extrap ' + k:>10}" for k in names)
        + (f"{'P(<' + fmt(args.target_loss, '.3g') + ')':>10}" if args.target_loss else "")
    )
    who = f" for {pred.group} group" if pred.group == "new" else (f" for {group}" if group else "")
    print(f"{result.law.name}{who}: loss in nats/token; extrapolation in decades beyond the runs")
    print(header)
    print("-" * len(header))
    for row in doc["points"]:
        line = "".join(f"{fmt(row[k], '.3g'):>11}" for k in names)
        line += f"{fmt(row['loss_mean']):>9}{fmt(row['loss_median']):>9}"
        line += f"{_interval(row['loss_lo'], row['loss_hi']):>20}"
        line += f"{_interval(row['observed_lo'], row['observed_hi']):>20}"
        line += "".join(f"{fmt(row['extrapolation'][k], '+.2f'):>10}" for k in names)
        if args.target_loss:
            line += f"{fmt(row['p_below_target'], '.3f'):>10}"
        print(line)
    return 0


def _interval(lo: float | None, hi: float | None) -> str:
    return f"[{fmt(lo)}, {fmt(hi)}]"
