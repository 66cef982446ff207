"""Full simulation-based calibration of every law; writes ``benchmarks/results/sbc_full.*``.

Run (``nice``: the machine's cores are shared)::

    nice -n 10 .venv/bin/python benchmarks/sbc_full.py                 # every configuration
    nice -n 10 .venv/bin/python benchmarks/sbc_full.py --only power_n   # some of them
    .venv/bin/python benchmarks/sbc_full.py --figures                   # figures from results

The full configuration is 200 simulated ladders of 30 runs per law, each fitted with 4 chains
x 1000 draws after 1000 tuning steps (``bayescale sbc`` defaults), pooled, for every
registered law, plus one hierarchical configuration (``power_n_e_grouped``: 4 groups of 10
runs, the exponent and scale partially pooled, ``E`` shared). A pilot of ``--pilot`` ladders
measures the time per fit first; a law whose 200 fits would take longer than ``--budget``
minutes of wall time on the cluster gets fewer ladders (never fewer than 100), and the number
used is recorded.

Fits run on a Dask LocalCluster (``--workers``, default 2) and are kept under
``benchmarks/results/sbc/<configuration>/``: an interrupted run resumes where it stopped, and
a re-run only adds missing simulations. Each configuration's result is saved with
:func:`bayescale.calibration.sbc.save_sbc` as ``benchmarks/results/sbc_<configuration>.nc``; the
summary of all of them is ``sbc_full.json`` (per configuration: settings, simulations, failed
fits, divergences, both p-values per parameter, verdict, wall time) and the table
``sbc_full.md`` (included in docs/validation.md). Configurations never run are listed as
"not run". ``--figures`` draws ``docs/figures/sbc_<configuration>.png`` from the saved results
with :func:`bayescale.plots.plot_sbc`.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from common import RESULTS, ROOT, describe_machine

import bayescale as bs
from bayescale.calibration.sbc import load_sbc, save_sbc, sbc
from bayescale.core.files import atomic_write_text
from bayescale.fitting.result import RHAT_MAX

#: ``bayescale sbc`` defaults (the full configuration).
FULL = {"n_sims": 200, "draws": 1000, "tune": 1000, "chains": 4, "n_runs": 30}
MIN_SIMS = 100
SEED = 0
WORK = RESULTS / "sbc"
FIGURES = ROOT / "docs" / "figures"
SUMMARY_JSON = RESULTS / "sbc_full.json"
SUMMARY_MD = RESULTS / "sbc_full.md"
#: The hierarchical configuration: power_n_e over 4 groups of 10 runs with the law's default
#: pooling (exponent and scale partially pooled, E shared).
GROUPED = {"power_n_e_grouped": {"law": "power_n_e", "groups": 4, "n_runs": 40}}


def configurations() -> dict[str, dict[str, Any]]:
    """Every configuration by name: each registered law pooled, then the hierarchical one."""
    pooled = {law: {"law": law, "groups": 0, "n_runs": FULL["n_runs"]} for law in bs.list_laws()}
    return pooled | GROUPED


def _sbc(config: Mapping[str, Any], n_sims: int, client: Any) -> Any:
    return sbc(
        config["law"],
        n_sims=n_sims,
        n_runs=config["n_runs"],
        groups=config["groups"],
        draws=FULL["draws"],
        tune=FULL["tune"],
        chains=FULL["chains"],
        seed=SEED,
        store=WORK / config["name"],
        client=client,
        progress=True,
    )


def _wall_file(name: str) -> Path:
    return WORK / name / "wall_seconds.json"


def _add_wall(name: str, seconds: float) -> float:
    """Accumulate the wall time spent on a configuration over (resumed) invocations."""
    path = _wall_file(name)
    total = seconds + (json.loads(path.read_text())["total"] if path.is_file() else 0.0)
    atomic_write_text(path, json.dumps({"total": total}))
    return total


def run_one(name: str, config: dict[str, Any], args: argparse.Namespace, client: Any) -> None:
    """Pilot, choose the number of simulations, run them all, save the result and summary."""
    config = {**config, "name": name}
    start = time.perf_counter()
    pilot = _sbc(config, args.pilot, client)
    fresh = pilot["seconds"].values[~pilot["reused"].values]
    per_fit = float(np.nanmedian(fresh)) if np.isfinite(fresh).any() else math.nan
    n_sims = args.sims or FULL["n_sims"]
    if not args.sims and math.isfinite(per_fit):
        # Fits run side by side on the workers; budget the wall time of the whole run.
        affordable = int(args.budget * 60 * args.workers / per_fit)
        n_sims = max(MIN_SIMS, min(FULL["n_sims"], affordable))
    print(
        f"sbc_full: {name}: {per_fit:.1f} s per fit in the pilot -> {n_sims} simulations",
        file=sys.stderr,
        flush=True,
    )
    result = _sbc(config, n_sims, client)
    wall = _add_wall(name, time.perf_counter() - start)
    result.attrs["wall_seconds"] = wall
    save_sbc(result, RESULTS / f"sbc_{name}.nc")
    write_summary()


def summarise(result: Any) -> dict[str, Any]:
    """One configuration's entry of ``sbc_full.json``."""
    config = json.loads(result.attrs["config"])
    done = result["status"].values == "done"
    div = result["divergences"].values[done]
    return {
        "law": result.attrs["law"],
        "groups": config["groups"],
        "n_runs": config["n_runs"],
        "sampler": config["sampler"],
        "chains": config["chains"],
        "draws": config["draws"],
        "tune": config["tune"],
        "n_sims": int(result.sizes["simulation"]),
        "n_failed": int(result.attrs["n_failed"]),
        "divergences": int(np.sum(div)),
        "fits_with_divergences": int(np.sum(div > 0)),
        "max_r_hat": float(np.nanmax(result["max_r_hat"].values[done])),
        "fits_r_hat_over_1.01": int(np.sum(result["max_r_hat"].values[done] > RHAT_MAX)),
        "mean_ranked_draws": float(np.nanmean(result["n_ranked"].values[done])),
        "alpha": float(result.attrs["alpha"]),
        "passed": bool(result.attrs["passed"]),
        "parameters": {
            str(p): {
                "p_pot_c": float(result["p_pot_c"].sel(parameter=p)),
                "p_chi2": float(result["p_chi2"].sel(parameter=p)),
                "reject": bool(result["reject"].sel(parameter=p)),
            }
            for p in result["parameter"].values
        },
        "wall_seconds": float(result.attrs.get("wall_seconds", math.nan)),
        "median_fit_seconds": float(np.nanmedian(result["seconds"].values)),
    }


def write_summary() -> dict[str, Any]:
    """Rebuild ``sbc_full.json`` and ``sbc_full.md`` from the saved results."""
    entries: dict[str, Any] = {}
    for name in configurations():
        path = RESULTS / f"sbc_{name}.nc"
        entries[name] = summarise(load_sbc(path)) if path.is_file() else None
    doc = {
        "configuration": {**FULL, "min_sims": MIN_SIMS, "seed": SEED, "grouped": GROUPED},
        "machine": describe_machine(),
        "results": entries,
    }
    atomic_write_text(SUMMARY_JSON, json.dumps(doc, indent=2) + "\n")
    atomic_write_text(SUMMARY_MD, markdown(entries))
    return doc


def _wall(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


def _p(value: float) -> str:
    return f"{value:.2g}" if value < 0.01 else f"{value:.2f}"


def markdown(entries: Mapping[str, Any]) -> str:
    """The summary table, and the p-values of every parameter."""
    lines = [
        "| configuration | sampler | ladders x runs | failed fits | fits with divergences (total) "
        "| fits with R-hat > 1.01 | smallest p (pot_c) | smallest p (chi2) | verdict "
        "| wall time |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    details = [
        "| configuration | parameter | p (pot_c) | p (chi2) | rejected |",
        "|---|---|---|---|---|",
    ]
    for name, e in entries.items():
        if e is None:
            lines.append(f"| {name} | | not run | | | | | | not run | |")
            continue
        params = e["parameters"]
        verdict = "passed" if e["passed"] else "**failed**"
        lines.append(
            f"| {name} | {e['sampler']} | {e['n_sims']} x {e['n_runs']} | {e['n_failed']} | "
            f"{e['fits_with_divergences']} ({e['divergences']}) | {e['fits_r_hat_over_1.01']} | "
            f"{_p(min(v['p_pot_c'] for v in params.values()))} | "
            f"{_p(min(v['p_chi2'] for v in params.values()))} | {verdict} | "
            f"{_wall(e['wall_seconds'])} |"
        )
        for p, v in params.items():
            rejected = "**yes**" if v["reject"] else "no"
            details.append(
                f"| {name} | `{p}` | {_p(v['p_pot_c'])} | {_p(v['p_chi2'])} | {rejected} |"
            )
    return "\n".join([*lines, "", "Per parameter:", "", *details, ""])


def figures() -> list[Path]:
    """Draw ``docs/figures/sbc_<configuration>.png`` from every saved result."""
    from bayescale.plots import plot_sbc, save_figure

    out = []
    for name in configurations():
        path = RESULTS / f"sbc_{name}.nc"
        if path.is_file():
            fig = plot_sbc(load_sbc(path))
            out += save_figure(fig, FIGURES / f"sbc_{name}.png")
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the configurations asked for (default all), or draw the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    names = list(configurations())
    parser.add_argument("--only", choices=names, action="append", help="run these only")
    parser.add_argument("--sims", type=int, help="simulations per law (default: 200 or budget)")
    parser.add_argument("--pilot", type=int, default=10, help="pilot simulations (default 10)")
    parser.add_argument(
        "--budget", type=float, default=12.0, help="wall minutes per law (default 12)"
    )
    parser.add_argument("--workers", type=int, default=2, help="local Dask workers (default 2)")
    parser.add_argument("--figures", action="store_true", help="draw figures from the results")
    parser.add_argument("--summary", action="store_true", help="rebuild the summary only")
    args = parser.parse_args(argv)
    if args.figures:
        for path in figures():
            print(path.relative_to(ROOT))
        return 0
    if args.summary:
        write_summary()
        return 0
    if args.sims is not None and args.sims < 2:
        parser.error("--sims must be at least 2")

    from distributed import Client, LocalCluster

    WORK.mkdir(parents=True, exist_ok=True)
    # One thread per worker, as bayescale.fitting.batch does: nutpie runs chains on its own threads.
    with (
        LocalCluster(
            n_workers=args.workers, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as cluster,
        Client(cluster) as client,
    ):
        for name in args.only or names:
            run_one(name, configurations()[name], args, client)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
