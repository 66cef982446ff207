"""``bayescale backtest``: fit all but the largest runs, predict them, score the bands."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from bayescale.cli import err, fmt, law_option, positive_int, print_json, probability


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``backtest`` subcommand."""
    from bayescale.models import DISCREPANCIES

    p = sub.add_parser(
        "backtest",
        help="leave-largest-out backtest: coverage, interval score and log score of the bands",
    )
    p.add_argument(
        "runs",
        help="runs table (CSV, Parquet, JSON Lines, directory of CSVs) or bundled dataset name",
    )
    p.add_argument("--law", help="law to fit; default: the bundled dataset's law")
    p.add_argument(
        "--holdout-top", type=positive_int, required=True, metavar="K", help="runs to hold out"
    )
    p.add_argument(
        "--by", default="N", metavar="COL", help="hold out the runs largest in this (default N)"
    )
    p.add_argument("--prob", type=probability, default=0.94, help="interval probability")
    table = p.add_argument_group("reading the table (as for 'bayescale fit')")
    table.add_argument("--columns", help="map canonical names to columns, e.g. N=params,D=tokens")
    table.add_argument(
        "--compute-unit", default="flops", help="unit of the C column: flops (default) or pf-days"
    )
    table.add_argument("--derive-compute", action="store_true", help="set C = 6 N D")
    table.add_argument(
        "--file-pattern",
        metavar="REGEX",
        help="regex with named groups read from each file name into columns",
    )
    table.add_argument(
        "--value-map",
        metavar="JSON",
        help='map column labels to numbers: JSON text or file, e.g. {"size": {"190M": 1.9e8}}',
    )
    table.add_argument(
        "--last-per-run",
        action="append",
        metavar="COL",
        help="keep each run's final checkpoint; COL identifies a run (e.g. source_file)",
    )
    model = p.add_argument_group("fitting (as for 'bayescale fit')")
    model.add_argument("--priors", help="JSON or TOML file of prior overrides")
    model.add_argument("--likelihood", default="normal", help="normal (default) or student_t")
    model.add_argument("--sampler", default="nutpie", help="nutpie (default), pymc or exact")
    model.add_argument("--draws", type=positive_int, default=1000, help="draws per chain")
    model.add_argument("--tune", type=positive_int, default=1000, help="tuning steps per chain")
    model.add_argument("--chains", type=positive_int, default=4, help="number of chains")
    model.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    model.add_argument("--group", action="append", metavar="COL", help="hierarchical over COL")
    model.add_argument("--offset-by", metavar="COL", help="log-loss offset per level of COL")
    model.add_argument(
        "--discrepancy",
        choices=("none", *DISCREPANCIES),
        default="none",
        help="model-discrepancy term: none (default), gp or distance (see bayescale.models)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``bayescale backtest``."""
    from bayescale.backtest import backtest

    law = law_option(args.runs, args.law)
    err(
        f"backtest of {law} on {args.runs}: holding out the {args.holdout_top} largest by {args.by}"
    )
    result = backtest(
        args.runs,
        law,
        holdout_top=args.holdout_top,
        by=args.by,
        prob=args.prob,
        columns=args.columns,
        compute_unit=args.compute_unit,
        derive_compute=args.derive_compute,
        file_pattern=args.file_pattern,
        value_map=_value_map(args.value_map),
        last_per_run=args.last_per_run,
        seed=args.seed,
        priors=args.priors,
        likelihood=args.likelihood,
        sampler=args.sampler,
        draws=args.draws,
        tune=args.tune,
        chains=args.chains,
        groups=args.group or (),
        offset_by=args.offset_by,
        discrepancy=None if args.discrepancy == "none" else args.discrepancy,
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
    print(f"lack of fit: {doc['lack_of_fit']['message']}")
    return 0


def _value_map(text: str | None) -> dict[str, Any] | None:
    """``--value-map``: JSON text, or the path of a JSON file, of ``{column: {label: number}}``."""
    from bayescale.errors import ConfigError

    if text is None:
        return None
    source = "--value-map"
    if not text.lstrip().startswith("{"):
        path = Path(text)
        if not path.is_file():
            raise ConfigError(f"--value-map {text!r} is neither JSON text nor an existing file")
        source, text = f"--value-map file {text!r}", path.read_text(encoding="utf-8")
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"{source} is not valid JSON: {exc}") from None
    if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
        raise ConfigError(f'{source} must be {{"column": {{"label": number, ...}}, ...}}')
    return value
