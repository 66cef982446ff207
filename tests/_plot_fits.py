"""Small fits shared by ``test_plots`` and ``test_report`` (built once per pytest process).

Each is the cheapest fit that exercises one kind of figure: an exact (conjugate) power-law fit,
which is deterministic and compiles nothing, for the image comparisons; a kaplan_nd fit of the
bundled ladder for the (N, D) figures; a hierarchical fit whose group labels contain markup;
and a three-run learning-curve fit.
"""

from __future__ import annotations

import functools
import warnings
from pathlib import Path

import pandas as pd
from conftest import simulate_law

import bayescale as bs
from bayescale.core.errors import SamplingWarning

DATA = Path(__file__).resolve().parents[1] / "data"
SMALL = {"draws": 200, "tune": 300, "chains": 2, "seed": 0, "progressbar": False}
#: A group label that must reach the report escaped.
EVIL = "<script>alert('x')</script>"
CURVE_RUNS = ("N1e6-B524288", "N1e7-B524288", "N1e8-B524288")
#: Learning curves are fitted up to this step; later rows are the "truth" of the extrapolation.
CURVE_CUT = 3e4


def quiet(build):
    """Build a fit without SamplingWarnings: figures do not depend on the sampler's health, and
    these deliberately short runs (200 draws) may show a divergence or a low ESS."""

    @functools.wraps(build)
    def wrapper():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SamplingWarning)
            return build()

    return functools.cache(wrapper)


@functools.cache
def power_fit() -> bs.Fit:
    """power_n on 20 simulated runs, exact sampler (deterministic), with prior draws."""
    runs = simulate_law("power_n", n_runs=20, noise_sd=0.02, seed=3)
    return bs.fit(runs, "power_n", sampler="exact", draws=200, chains=2, seed=0, prior_draws=200)


@quiet
def kaplan_fit() -> bs.Fit:
    """kaplan_nd on the bundled 54-run ladder."""
    return bs.fit("kaplan_ladder", "kaplan_nd", **SMALL)


@quiet
def grouped_fit() -> bs.Fit:
    """power_n_e by family on the bundled grouped ladder, one family renamed to markup."""
    runs = pd.read_csv(DATA / "grouped_ladder.csv")
    runs["family"] = runs["family"].replace({"deep": EVIL})
    return bs.fit(runs, "power_n_e", groups=["family"], **SMALL)


def curve_table() -> pd.DataFrame:
    table = pd.read_csv(DATA / "kaplan_curves.csv")
    return table[table["run_id"].isin(CURVE_RUNS)]


@quiet
def curve_fit() -> bs.Fit:
    """kaplan_ns with per-run offsets on the first part of three bundled curves."""
    from bayescale.runs.curves import load_curves, thin_curves

    table = curve_table()
    early = load_curves(table[table["step"] <= CURVE_CUT], required=("N", "step"))
    return bs.fit(
        thin_curves(early, per_run=8), "kaplan_ns", run_id="run_id", run_noise="offset", **SMALL
    )
