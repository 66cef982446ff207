"""``bayescale curves``: learning curves, early-curve extrapolation, S_min/C_min and the frontier.

Subcommands (JSON on stdout, exit code 2 on bad input):

``curves fit RUNS --run-id COL -o FIT.nc``
    fit a curve law to a per-step table with per-run offsets (``bayescale.fit(run_id=...)``).
``curves extrapolate EARLY --run-id COL --step S``
    posterior of runs' losses at later steps from the first part of their curves, with or
    without finished runs (``--finished``) or a fit of them (``--fit``).
``curves runs FIT.nc --step S``
    the fitted runs' losses at other steps, each with its own offset.
``curves minimum RUNS --run-id COL``
    Kaplan's S_min, E_min and C_min of each row (or each run's final row).
``curves frontier FIT.nc --compute C``
    the compute-efficient training point per budget and the frontier exponents.
"""

from __future__ import annotations

import argparse
from typing import Any

from bayescale.cli.app import err, print_json
from bayescale.cli.options import (
    add_sampling_options,
    add_seed_option,
    add_table_options,
    output_path,
    positive_float,
    probability,
    sampling_options,
    table_options,
)
from bayescale.core.errors import ConfigError


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``curves`` subcommand and its actions."""
    p = sub.add_parser(
        "curves",
        help="learning curves: fit, extrapolate a run from its early curve, S_min/C_min, frontier",
    )
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")

    a = actions.add_parser("fit", help="fit a curve law with per-run offsets; write a fit file")
    _table_options(a)
    a.add_argument("--law", default="kaplan_ns", help="curve law (default kaplan_ns)")
    _fit_options(a)
    a.add_argument("-o", "--output", required=True, help="fit file to write (netCDF)")
    a.set_defaults(func=_fit)

    a = actions.add_parser(
        "extrapolate", help="posterior of runs' later losses from the first part of their curves"
    )
    _table_options(a)
    _step_options(a)
    a.add_argument("--law", default="kaplan_ns", help="curve law to fit (default kaplan_ns)")
    source = a.add_mutually_exclusive_group()
    source.add_argument("--fit", help="curve fit of finished runs to update (no new sampling)")
    source.add_argument("--finished", help="table of finished runs to fit with the early points")
    _fit_options(a)
    a.add_argument("--prob", type=probability, default=0.94, help="HDI probability (default 0.94)")
    a.set_defaults(func=_extrapolate)

    a = actions.add_parser("runs", help="predict the fitted runs at other steps")
    a.add_argument("fit", help="fit file written by 'bayescale curves fit'")
    _step_options(a)
    a.add_argument("--run", action="append", metavar="ID", help="run to predict (repeat)")
    a.add_argument("--prob", type=probability, default=0.94, help="HDI probability (default 0.94)")
    add_seed_option(a, "seed of the noise draws (default 0)")
    a.set_defaults(func=_runs)

    a = actions.add_parser("minimum", help="Kaplan's S_min, E_min and C_min of each row")
    _table_options(a)
    a.add_argument("--critical", help="critical_batch or kaplan_ns_bcrit fit giving B* and alpha_B")
    a.add_argument("--b-star", type=positive_float, help="B* in tokens (default Kaplan's 2e8)")
    a.add_argument("--alpha-b", type=positive_float, help="alpha_B (default Kaplan's 0.21)")
    a.add_argument("--final-only", action="store_true", help="only each run's last row")
    a.add_argument("--prob", type=probability, default=0.94, help="HDI probability (default 0.94)")
    a.set_defaults(func=_minimum)

    a = actions.add_parser("frontier", help="compute-efficient training point and exponents")
    a.add_argument("fit", help="kaplan_ns or kaplan_ns_bcrit fit file")
    a.add_argument(
        "--compute",
        action="append",
        type=positive_float,
        required=True,
        metavar="C",
        help="budget C_min in FLOPs (repeat)",
    )
    a.add_argument("--critical", help="critical_batch fit giving B* and alpha_B")
    a.add_argument("--prob", type=probability, default=0.94, help="HDI probability (default 0.94)")
    a.set_defaults(func=_frontier)


def _table_options(a: argparse.ArgumentParser) -> None:
    a.add_argument("runs", help="per-step runs table (CSV, Parquet, JSON Lines, directory)")
    a.add_argument(
        "--run-id",
        help="run id column (default: a column named run, run_id, run_name, name or source_file)",
    )
    add_table_options(a)
    a.add_argument(
        "--min-step",
        type=positive_float,
        help="drop rows before this step (the learning-rate warmup, which no law describes)",
    )


def _step_options(a: argparse.ArgumentParser) -> None:
    a.add_argument(
        "--step",
        action="append",
        type=positive_float,
        required=True,
        metavar="S",
        help="optimizer step to predict at, e.g. the planned final step (repeat)",
    )


def _fit_options(a: argparse.ArgumentParser) -> None:
    a.add_argument("--run-noise", default="ar1", help="ar1 (default) or offset")
    a.add_argument(
        "--per-run",
        type=int,
        default=30,
        help=(
            "thin each run to this many log-spaced rows (with --fit: as the fitted runs were); "
            "0 keeps all (default 30)"
        ),
    )
    add_sampling_options(a, tune=1500)


def _curves(args: argparse.Namespace, path: str, required: tuple[str, ...]) -> Any:
    # the library is imported where used: `bayescale --help` imports every command module
    # (see benchmarks/README.md, start-up time)
    from bayescale.runs.curves import load_curves

    table = load_curves(path, run_id=args.run_id, required=required, **table_options(args))
    if args.min_step is not None:
        table = table.isel(run=table["step"].values >= args.min_step)
        table = table.assign_coords(run=range(table.sizes["run"]))
    return table


def _per_run(value: int) -> int | None:

    if value == 0:
        return None
    if value < 2:
        raise ConfigError(f"--per-run must be 0 (keep all rows) or >= 2, got {value}")
    return value


def _fit(args: argparse.Namespace) -> int:
    from bayescale.fitting.pipeline import fit
    from bayescale.laws.base import get_law
    from bayescale.runs.curves import thin_curves

    law = get_law(args.law)
    out = output_path(args.output)
    table = _curves(args, args.runs, law.inputs)
    run_id = table.attrs["run_id"]
    per_run = _per_run(args.per_run)
    if per_run is not None:
        table = thin_curves(table, per_run=per_run, run_id=run_id)
    result = fit(
        table,
        law,
        run_id=run_id,
        run_noise=args.run_noise,
        **sampling_options(args),
    )
    result.save(out)
    d = result.diagnostics
    err(f"wrote {out} ({result.n_runs} rows; divergences {d.divergences}, R-hat {d.max_r_hat:.3f})")
    print_json(result.summary_dict())
    return 0


def _extrapolate(args: argparse.Namespace) -> int:
    from bayescale.fitting.result import load_fit
    from bayescale.laws.base import get_law
    from bayescale.questions.curves import extrapolate, prediction_rows

    if args.fit is not None:
        fitted = load_fit(args.fit)
        early = _curves(args, args.runs, fitted.law.inputs)
        pred = extrapolate(
            early,
            args.step,
            fit=fitted,
            run_id=early.attrs["run_id"],
            per_run=_per_run(args.per_run),
            prob=args.prob,
            seed=args.seed,
        )
    else:
        law = get_law(args.law)
        early = _curves(args, args.runs, law.inputs)
        finished = None if args.finished is None else _curves(args, args.finished, law.inputs)
        pred = extrapolate(
            early,
            args.step,
            finished=finished,
            law=law,
            run_id=early.attrs["run_id"],
            per_run=_per_run(args.per_run),
            prob=args.prob,
            run_noise=args.run_noise,
            **sampling_options(args),
        )
    print_json({"law": pred.law, "prob": pred.prob, "points": prediction_rows(pred)})
    return 0


def _runs(args: argparse.Namespace) -> int:
    from bayescale.fitting.result import load_fit
    from bayescale.questions.curves import predict_runs, prediction_rows

    pred = predict_runs(
        load_fit(args.fit), args.step, runs=args.run, prob=args.prob, seed=args.seed
    )
    print_json({"law": pred.law, "prob": pred.prob, "points": prediction_rows(pred)})
    return 0


def _minimum(args: argparse.Namespace) -> int:
    from bayescale.fitting.result import load_fit
    from bayescale.questions.curves import posterior_table
    from bayescale.questions.efficiency import minimum_steps

    given = {"B_star": args.b_star, "alpha_B": args.alpha_b}
    if args.critical is not None and any(v is not None for v in given.values()):
        raise ConfigError("give either --critical FIT or --b-star/--alpha-b, not both")
    critical: Any = None
    if args.critical is not None:
        critical = load_fit(args.critical)
    elif any(v is not None for v in given.values()):
        if None in given.values():
            raise ConfigError("give both --b-star and --alpha-b")
        critical = given
    table = _curves(args, args.runs, ("step", "batch"))
    result = minimum_steps(
        table, critical=critical, run_id=table.attrs["run_id"], final_only=args.final_only
    )
    print_json(posterior_table(result, prob=args.prob))
    return 0


def _frontier(args: argparse.Namespace) -> int:
    from bayescale.fitting.result import load_fit
    from bayescale.questions.curves import posterior_table
    from bayescale.questions.efficiency import compute_efficient

    critical = None if args.critical is None else load_fit(args.critical)
    result = compute_efficient(load_fit(args.fit), args.compute, critical=critical)
    print_json(posterior_table(result, prob=args.prob))
    return 0
