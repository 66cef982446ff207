"""Make one figure of each kind from the bundled data into ``docs/figures/`` (PNG).

Run from the repository root: ``.venv/bin/python scripts/make_figures.py``. Fits use 4 chains
of 1000 draws (the command-line defaults) and seed 0, so the figures are reproducible.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

import bayescale as bs
from bayescale import plots
from bayescale.questions.backtest import backtest
from bayescale.runs.curves import load_curves, thin_curves

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "figures"
SETTINGS = {"draws": 1000, "tune": 1000, "chains": 4, "seed": 0, "progressbar": False}
#: Learning curves are fitted up to this step, then extrapolated to the end of training.
CURVE_CUT = 3e4


def main() -> int:
    """Fit the bundled datasets and write every figure."""
    OUT.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()

    def save(fig, name: str) -> None:
        (path,) = plots.save_figure(fig, OUT / f"{name}.png")
        print(f"{time.perf_counter() - start:6.0f} s  wrote {path.relative_to(ROOT)}", flush=True)

    kaplan = bs.fit("kaplan_ladder", "kaplan_nd", prior_draws=1000, **SETTINGS)
    save(plots.plot_law(kaplan, targets=[1e10]), "law")
    save(plots.plot_fan(kaplan, {"N": [3e9, 1e10, 3e10, 1e11], "D": 1e12}), "fan")
    save(plots.plot_overfit_map(kaplan), "overfit_map")
    save(plots.plot_pair(kaplan), "pair")
    save(plots.plot_rank(kaplan), "rank")
    save(plots.plot_prior_posterior(kaplan), "prior_posterior")

    chinchilla = bs.fit("chinchilla_ladder", "chinchilla", **SETTINGS)
    save(plots.plot_frontier(chinchilla), "frontier")

    grouped = bs.fit("grouped_ladder", "power_n_e", groups=["family"], **SETTINGS)
    save(plots.plot_groups(grouped), "groups")

    table = pd.read_csv(ROOT / "data" / "kaplan_curves.csv")
    table = table[table["batch"] == 524288]  # one batch size: the kaplan_ns law has no B
    early = load_curves(table[table["step"] <= CURVE_CUT], required=("N", "step"))
    curves = bs.fit(thin_curves(early, per_run=12), "kaplan_ns", run_id="run_id", **SETTINGS)
    steps = np.geomspace(1e3, table["step"].max(), 40)
    save(plots.plot_curves(curves, steps=steps, later=table[table["step"] > CURVE_CUT]), "curves")

    result = backtest("kaplan_ladder", "kaplan_nd", holdout_top=6, by="N", **SETTINGS)
    save(plots.plot_coverage(result), "coverage")
    return 0


if __name__ == "__main__":
    sys.exit(main())
