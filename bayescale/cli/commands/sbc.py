"""``bayescale sbc``: simulation-based calibration of a law's fits, on Dask."""

from __future__ import annotations

import argparse

from bayescale.cli.app import err, fmt, print_json
from bayescale.cli.options import (
    add_sampling_options,
    add_seed_option,
    output_path,
    positive_int,
    probability,
    sampling_options,
)

#: Help of the sampler options, whose defaults depend on ``--fast``.
_SAMPLING_HELP = {
    "draws": "draws per chain (default 1000; --fast 200)",
    "tune": "tuning steps (default 1000; --fast 300)",
    "chains": "chains (default 4; --fast 2)",
}


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``sbc`` subcommand."""
    p = sub.add_parser(
        "sbc",
        help="simulation-based calibration: fit ladders simulated from the prior, test ranks",
    )
    p.add_argument("--law", required=True, help="law to check (see 'bayescale laws')")
    p.add_argument(
        "--sims", type=positive_int, help="number of simulated ladders (default 200; --fast 100)"
    )
    p.add_argument("--runs", type=positive_int, default=30, help="runs per ladder (default 30)")
    p.add_argument(
        "--groups",
        type=int,
        default=0,
        help="split each ladder into this many groups and fit hierarchically (default 0: pooled)",
    )
    p.add_argument("--likelihood", default="normal", help="normal (default) or student_t")
    p.add_argument(
        "--sampler",
        default="auto",
        help="auto (default: exact for pooled log-linear laws, else nutpie), nutpie, pymc, exact",
    )
    add_sampling_options(p, draws=None, tune=None, chains=None, help=_SAMPLING_HELP, seed=False)
    p.add_argument(
        "--fast", action="store_true", help="the test suite's configuration (fewer, shorter fits)"
    )
    add_seed_option(p)
    p.add_argument(
        "--alpha",
        type=probability,
        default=0.01,
        help="family-wise significance level of the uniformity verdict (default 0.01)",
    )
    p.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="Dask scheduler address (default: a local cluster; 'serial' runs in this process)",
    )
    p.add_argument("--workers", type=positive_int, help="workers of the local cluster")
    p.add_argument(
        "--store",
        metavar="DIR",
        help="keep each finished fit's ranks here; a rerun skips them (resume an interrupted run)",
    )
    p.add_argument("--json", action="store_true", help="print the verdict as one JSON object")
    p.add_argument("-o", "--output", required=True, help="results file to write (netCDF)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``bayescale sbc``."""
    # the library is imported where used: `bayescale --help` imports every command module
    # (see benchmarks/README.md, start-up time)
    from bayescale.calibration.sbc import FAST, save_sbc, sbc

    out = output_path(args.output)
    base = FAST if args.fast else {"n_sims": 200, "draws": 1000, "tune": 1000, "chains": 4}
    settings = {"n_sims": args.sims or base["n_sims"], **sampling_options(args, defaults=base)}
    err(
        f"SBC of {args.law}: {settings['n_sims']} ladders of {args.runs} runs"
        + (f" in {args.groups} groups" if args.groups else "")
        + f", {settings['chains']} chains x {settings['draws']} draws each"
    )
    result = sbc(
        args.law,
        n_runs=args.runs,
        groups=args.groups,
        likelihood=args.likelihood,
        sampler=args.sampler,
        alpha=args.alpha,
        store=args.store,
        scheduler=args.scheduler,
        n_workers=args.workers,
        progress=True,
        **settings,
    )
    save_sbc(result, out)
    verdict = "passed" if result.attrs["passed"] else "FAILED"
    doc = {
        "law": result.attrs["law"],
        "n_sims": int(result.sizes["simulation"]),
        "n_failed": int(result.attrs["n_failed"]),
        "alpha": args.alpha,
        "passed": bool(result.attrs["passed"]),
        "parameters": {
            str(name): {
                "p_pot_c": float(result["p_pot_c"].sel(parameter=name)),
                "p_chi2": float(result["p_chi2"].sel(parameter=name)),
            }
            for name in result["parameter"].values
        },
        "output": str(out),
    }
    if args.json:
        print_json(doc)
        return 0
    header = f"{'parameter':<18}{'p (pot_c)':>12}{'p (chi2)':>12}"
    print(header)
    print("-" * len(header))
    for name, row in doc["parameters"].items():
        print(f"{name:<18}{fmt(row['p_pot_c'], '.3g'):>12}{fmt(row['p_chi2'], '.3g'):>12}")
    print(
        f"\nuniformity {verdict} at family-wise alpha {args.alpha:g} "
        f"({doc['n_sims'] - doc['n_failed']} of {doc['n_sims']} fits finished); wrote {out}"
    )
    return 0
