"""``bayescale backtest``: fit all but the largest runs, predict them, score the bands."""

from __future__ import annotations

import argparse
from typing import Any

from bayescale.cli.app import err, fmt, print_json
from bayescale.cli.options import (
    add_sampling_options,
    add_table_options,
    law_option,
    positive_int,
    probability,
    sampling_options,
    table_options,
)
from bayescale.core.errors import ConfigError, UnknownNameError, did_you_mean


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``backtest`` subcommand."""
    # the library is imported where used: `bayescale --help` imports every command module
    # (see benchmarks/README.md, start-up time)
    from bayescale.model.build import DISCREPANCIES

    p = sub.add_parser(
        "backtest",
        help="leave-largest-out backtest: coverage, interval score and log score of the bands",
    )
    p.add_argument(
        "runs",
        help="runs table (CSV, Parquet, JSON Lines, directory of CSVs) or bundled dataset name",
    )
    p.add_argument("--law", help="law to fit; default: the bundled dataset's law")
    split = p.add_argument_group("held-out runs (give exactly one)")
    split.add_argument(
        "--holdout-top", type=positive_int, metavar="K", help="hold out the K runs largest in --by"
    )
    split.add_argument(
        "--holdout",
        metavar="COL=VALUE",
        help="hold out the runs whose COL equals VALUE, e.g. Training=0 (a table's own split)",
    )
    p.add_argument(
        "--by", default="N", metavar="COL", help="hold out the runs largest in this (default N)"
    )
    p.add_argument("--prob", type=probability, default=0.94, help="interval probability")
    add_table_options(p)
    model = p.add_argument_group("fitting (as for 'bayescale fit')")
    model.add_argument("--priors", help="JSON or TOML file of prior overrides")
    model.add_argument("--likelihood", default="normal", help="normal (default) or student_t")
    model.add_argument("--sampler", default="nutpie", help="nutpie (default), pymc or exact")
    add_sampling_options(model)
    model.add_argument("--group", action="append", metavar="COL", help="hierarchical over COL")
    model.add_argument("--offset-by", metavar="COL", help="log-loss offset per level of COL")
    model.add_argument(
        "--discrepancy",
        choices=("none", *DISCREPANCIES),
        default="none",
        help="model-discrepancy term: none (default), gp or distance (see bayescale.model.build)",
    )
    base = p.add_argument_group("baseline instead of bayescale's model")
    base.add_argument(
        "--baseline",
        metavar="NAME",
        help=f"fit a baseline instead: {', '.join(BASELINES)} (Huber least squares on log "
        "loss with a bootstrap over runs, bayescale.fitting.leastsq)",
    )
    base.add_argument(
        "--bootstrap",
        type=positive_int,
        default=500,
        metavar="N",
        help="bootstrap resamples of the baseline (default 500)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


#: ``--baseline`` names; ``least-squares`` runs ``backtest(method=fit_least_squares)``.
BASELINES = ("least-squares",)
#: Options that change bayescale's model and so mean nothing for a baseline.
MODEL_ONLY = {
    "priors": "--priors",
    "group": "--group",
    "offset_by": "--offset-by",
    "discrepancy": "--discrepancy",
}


def run(args: argparse.Namespace) -> int:
    """Run ``bayescale backtest``."""
    from bayescale.questions.backtest import backtest

    law = law_option(args.runs, args.law)
    holdout = _holdout(args.holdout_top, args.holdout)
    what = (
        f"the {args.holdout_top} largest by {args.by}"
        if holdout is None
        else f"the runs with {args.holdout}"
    )
    fitting = _fitting(args)
    err(f"backtest of {law} on {args.runs}{_by_method(args.baseline)}: holding out {what}")
    result = backtest(
        args.runs,
        law,
        holdout_top=args.holdout_top,
        holdout=holdout,
        by=args.by,
        prob=args.prob,
        **table_options(args),
        seed=args.seed,
        **fitting,
    )
    doc = result.to_dict()
    if args.json:
        print_json(doc)
        return 0
    inputs = [k for k in result.fit.law.inputs]
    pct = f"{args.prob:.0%}"
    header = (
        f"{'run':>5}"
        + "".join(f"{k:>11}" for k in inputs)
        + f"{'loss':>9}{'pred':>9}{pct + ' interval':>22}{'in':>4}{'score':>9}{'log p':>8}"
    )
    print(header)
    print("-" * len(header))
    for row in doc["runs"]:
        print(
            f"{row['run']:>5}"
            + "".join(f"{fmt(row[k], '.3g'):>11}" for k in inputs)
            + f"{fmt(row['loss']):>9}{fmt(row['loss_mean']):>9}"
            + f"{'[' + fmt(row['lo']) + ', ' + fmt(row['hi']) + ']':>22}"
            + f"{'yes' if row['inside'] else 'NO':>4}{fmt(row['interval_score']):>9}"
            + f"{fmt(row['log_score'], '.2f'):>8}"
        )
    t = doc["totals"]
    print(
        f"\ncoverage {t['coverage']:.0%} of {t['n_held_out']} held-out runs at {pct} "
        f"(fitted on {t['n_fit']}); mean width {fmt(t['mean_width'])}, mean interval score "
        f"{fmt(t['mean_interval_score'])} (lower is better), mean log score "
        f"{fmt(t['mean_log_score'], '.3f')} (higher is better)"
    )
    if doc["lack_of_fit"] is not None:
        print(f"lack of fit: {doc['lack_of_fit']['message']}")
    return 0


def _holdout(top: int | None, text: str | None) -> dict[str, Any] | None:
    """``--holdout COL=VALUE`` as ``{COL: VALUE}``, VALUE a number when it reads as one."""
    if (top is None) == (text is None):
        raise ConfigError("give exactly one of --holdout-top K and --holdout COL=VALUE")
    if text is None:
        return None
    column, sep, value = text.partition("=")
    if not sep or not column.strip() or not value.strip():
        raise ConfigError(f"--holdout must be COL=VALUE, e.g. Training=0; got {text!r}")
    value = value.strip()
    try:
        number = float(value)
    except ValueError:
        return {column.strip(): value}
    return {column.strip(): int(number) if number.is_integer() else number}


def _fitting(args: argparse.Namespace) -> dict[str, Any]:
    """Keyword arguments of the fit: bayescale's model, or ``method=`` for ``--baseline``."""
    if args.baseline is None:
        return {
            "priors": args.priors,
            "likelihood": args.likelihood,
            "sampler": args.sampler,
            **sampling_options(args, seed=False),
            "groups": args.group or (),
            "offset_by": args.offset_by,
            "discrepancy": None if args.discrepancy == "none" else args.discrepancy,
        }
    if args.baseline not in BASELINES:
        raise UnknownNameError(
            f"unknown baseline {args.baseline!r}. {did_you_mean(args.baseline, BASELINES)}"
        )
    given = [flag for key, flag in MODEL_ONLY.items() if getattr(args, key) not in (None, "none")]
    if args.likelihood != "normal":
        given.append("--likelihood")
    if given:
        raise ConfigError(
            f"{', '.join(given)}: not used by --baseline {args.baseline} (they set bayescale's "
            "model); drop them or the baseline"
        )
    from bayescale.fitting.leastsq import fit_least_squares

    return {"method": fit_least_squares, "n_bootstrap": args.bootstrap}


def _by_method(baseline: str | None) -> str:
    return "" if baseline is None else f" with the {baseline} baseline"
