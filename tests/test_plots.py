"""Figures: every plot renders on small fits, draws what its compute partner returns, and the
key figures match committed baseline images.

Baselines (``tests/baseline/*.png``) come from the exact (conjugate) sampler, which is seeded
and compiles nothing, so they are reproducible; regenerate them with
``BAYESCALE_NEW_BASELINES=1 pytest tests/test_plots.py -k image`` after a deliberate change.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from _plot_fits import (
    CURVE_CUT,
    EVIL,
    curve_fit,
    curve_table,
    grouped_fit,
    kaplan_fit,
    power_fit,
)
from scipy import stats

import bayescale as bs
from bayescale import plots
from bayescale.core.errors import ConfigError

BASELINE = Path(__file__).parent / "baseline"
#: RMS difference (0-255 scale) tolerated by the image comparisons: absorbs anti-aliasing
#: differences between FreeType builds, not a moved line or band.
TOLERANCE = 2.0


def _labels(ax):
    return ax.get_xlabel(), ax.get_ylabel()


# --------------------------------------------------------------------------------------------
# Compute partners: the numbers behind the figures
# --------------------------------------------------------------------------------------------
def test_law_curve_bands_nest_and_contain_mean():
    data = plots.law_curve(power_fit(), extend=1.0, n_grid=30)
    band = data["band"]
    wide, narrow = band.sel(prob=0.94), band.sel(prob=0.5)
    assert (wide.sel(ci_bound="lower") <= narrow.sel(ci_bound="lower") + 1e-12).all()
    assert (wide.sel(ci_bound="upper") >= narrow.sel(ci_bound="upper") - 1e-12).all()
    mean = data["mean"]
    assert (mean >= wide.sel(ci_bound="lower")).all() and (mean <= wide.sel(ci_bound="upper")).all()
    # The grid reaches one decade past the largest fitted N.
    assert data["x"].values[-1] == pytest.approx(10 * data.attrs["fitted_max"])
    # Bands widen when extrapolating: parameter uncertainty grows away from the data.
    width = wide.sel(ci_bound="upper") - wide.sel(ci_bound="lower")
    assert float(width[-1]) > float(width[len(width) // 2])


def test_fan_band_holds_its_probability():
    fit = power_fit()
    data = plots.fan(fit, {"N": [1e10, 1e11]})
    draws = data["draws"]
    # The predictive exact in the noise: log loss Normal(log curve, sigma) per posterior draw.
    curve = np.log(bs.predict(fit, {"N": [1e10, 1e11]}).curve.values.reshape(-1, 2))
    sigma = fit.posterior["sigma"].values.reshape(-1, 1)
    for p in (0.5, 0.94):
        b = np.log(data["band"].sel(prob=p).values)
        mass = stats.norm.cdf((b[None, :, 1] - curve) / sigma).mean(axis=0)
        mass -= stats.norm.cdf((b[None, :, 0] - curve) / sigma).mean(axis=0)
        np.testing.assert_allclose(mass, p, atol=1e-8)
        # ... and the noisy draws fall inside at that rate, within 4 binomial sds.
        inside = (draws >= data["band"].sel(prob=p, ci_bound="lower")) & (
            draws <= data["band"].sel(prob=p, ci_bound="upper")
        )
        n = draws.sizes["chain"] * draws.sizes["draw"]
        rate = inside.mean(("chain", "draw")).values
        assert np.all(np.abs(rate - p) <= 4 * np.sqrt(p * (1 - p) / n)), rate


def test_overfit_map_penalty_falls_with_data_and_kaplan_line():
    data = plots.overfit_map(kaplan_fit(), n_grid=12)
    delta = data["delta_L"]
    # More data at fixed N: smaller penalty; bigger model at fixed D: larger penalty.
    assert (delta.diff("D") < 0).all()
    assert (delta.diff("N") > 0).all()
    n = data["N"].values
    np.testing.assert_allclose(data["D_kaplan"], 5e3 * n**0.74)
    band = data["D_min_band"]
    assert (band.sel(ci_bound="lower") <= data["D_min"]).all()
    assert (band.sel(ci_bound="upper") >= data["D_min"]).all()
    assert data.sizes["run"] == kaplan_fit().n_runs


def test_frontier_grows_with_compute():
    data = plots.frontier(kaplan_fit(), np.geomspace(1e18, 1e24, 7))
    assert (data["N_opt"].diff("C") > 0).all()
    assert (data["D_opt"].diff("C") > 0).all()
    assert (data["L_opt"].diff("C") < 0).all()


def test_group_curves_have_every_group_and_a_wider_new_group():
    fit = grouped_fit()
    data = plots.group_curves(fit, n_grid=20)
    labels = [str(g) for g in data["group"].values]
    assert labels[:-1] == [str(g) for g in fit.pooling.labels] and labels[-1] == "new group"
    width = data["band"].sel(prob=0.94, ci_bound="upper") - data["band"].sel(
        prob=0.94, ci_bound="lower"
    )
    # A new group carries the between-group spread: wider than any fitted group's band.
    assert float(width.sel(group="new group").mean()) > float(
        width.drop_sel(group="new group").mean("point").max()
    )


def test_curve_bands_cover_later_points():
    fit = curve_fit()
    table = curve_table()
    later = table[table["step"] > CURVE_CUT]
    data = plots.curve_bands(fit, steps=np.sort(later["step"].unique()))
    band = data["band"].sel(prob=0.94)
    hits = []
    for run, step, loss in later[["run_id", "step", "loss"]].itertuples(index=False):
        j = np.flatnonzero((data["run"].values == run) & (data["step"].values == step))[0]
        lo, hi = band.isel(point=j).values
        hits.append(lo * 0.97 <= loss <= hi * 1.03)  # expected-loss band plus ~1 % noise
    assert np.mean(hits) > 0.8


def test_compute_functions_refuse_what_does_not_apply():
    with pytest.raises(ConfigError, match="law of N and D"):
        plots.overfit_map(power_fit())
    with pytest.raises(ConfigError, match="hierarchical"):
        plots.group_curves(power_fit())
    with pytest.raises(ConfigError, match="run_id"):
        plots.curve_bands(power_fit())
    with pytest.raises(ConfigError, match="name one group"):
        plots.frontier(grouped_fit())
    with pytest.raises(ConfigError, match="inputs"):
        plots.law_curve(power_fit(), input="D")
    with pytest.raises(ConfigError, match="between 0 and 1"):
        plots.law_curve(power_fit(), probs=(1.5,))


# --------------------------------------------------------------------------------------------
# Every plot renders, with the expected artists and labels
# --------------------------------------------------------------------------------------------
def test_plot_law_artists():
    fig = plots.plot_law(power_fit(), targets=[3e10, 1e11])
    (ax,) = fig.axes
    assert _labels(ax) == ("model size N (parameters)", "loss L (nats/token)")
    assert ax.get_xscale() == ax.get_yscale() == "log"
    # posterior mean, runs, two target lines
    assert len(ax.lines) == 4
    assert len(ax.collections) == 2  # 94 % and 50 % bands
    assert len(ax.patches) == 1  # the shaded extrapolation region
    assert sum(len(line.get_xdata()) for line in ax.lines if line.get_marker() == "o") == 20
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "94% HDI" in texts and "50% HDI" in texts and "target" in texts


def test_plot_law_on_given_axes_and_other_inputs():
    from matplotlib.figure import Figure

    fig = Figure()
    ax1, ax2 = fig.subplots(1, 2)
    out = plots.plot_law(kaplan_fit(), input="D", ax=ax2)
    assert out is fig and not ax1.lines and ax2.get_xlabel() == "dataset size D (tokens)"


def test_plot_fan_artists():
    fig = plots.plot_fan(power_fit(), {"N": [1e10, 1e11, 1e12]})
    (ax,) = fig.axes
    bars = [c for c in ax.collections if len(c.get_segments()) == 3]
    assert len(bars) == 2  # 94 % and 50 % intervals at three sizes
    assert ax.get_ylabel() == "loss L (nats/token)"


def test_plot_groups_artists_and_label_as_text():
    fit = grouped_fit()
    fig = plots.plot_groups(fit)
    (ax,) = fig.axes
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    assert EVIL in texts and "new group median" in texts
    # One law line and one set of runs per group, plus the new-group mean.
    assert len(ax.lines) == 2 * len(fit.pooling.labels) + 1


def test_plot_overfit_map_artists():
    fig = plots.plot_overfit_map(kaplan_fit(), n_grid=15)
    ax = fig.axes[0]
    assert len(fig.axes) == 2  # map and colour bar
    assert _labels(ax) == ("model size N (parameters)", "dataset size D (tokens)")
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    assert texts[:3] == ["fitted δL = 0.02", "Kaplan D = 5e3·N^0.74", "runs"]
    assert "δL" in fig.axes[1].get_ylabel()


def test_plot_frontier_artists():
    fig = plots.plot_frontier(kaplan_fit(), np.geomspace(1e18, 1e24, 9))
    assert len(fig.axes) == 3
    assert [ax.get_xlabel() for ax in fig.axes] == ["compute C (FLOPs)"] * 3
    # per panel: mean line, band, shaded extrapolation region
    assert all(len(ax.lines) == 1 and len(ax.collections) == 1 for ax in fig.axes)
    assert all(len(ax.patches) == 1 for ax in fig.axes)


def test_plot_curves_artists():
    table = curve_table()
    fig = plots.plot_curves(curve_fit(), later=table[table["step"] > CURVE_CUT])
    (ax,) = fig.axes
    # per run: mean line, fitted points, later points; plus the last-fitted-step line
    assert len(ax.lines) == 3 * 3 + 1
    assert ax.get_xlabel() == "optimizer steps S"


def test_diagnostic_plots():
    fit = power_fit()
    assert len(plots.plot_rank(fit).axes) == 3  # alpha_N, N_c, sigma
    pair = plots.plot_pair(fit)
    assert len([a for a in pair.axes if a.has_data()]) >= 3
    assert len(plots.plot_prior_posterior(fit).axes) >= 2
    with pytest.raises(ConfigError, match="prior draws"):
        plots.plot_prior_posterior(kaplan_fit())
    tree = plots.diagnostic_draws(grouped_fit())
    assert all(v.dims == ("chain", "draw") for v in tree["posterior"].data_vars.values())


def test_plot_coverage_artists():
    from bayescale.questions.backtest import backtest

    runs = power_fit().runs
    result = backtest(runs, "power_n", holdout_top=4, sampler="exact", draws=200, chains=2)
    fig = plots.plot_coverage(result)
    (ax,) = fig.axes
    table = plots.coverage(result)
    assert len(table) == 4
    held = sum(len(line.get_xdata()) for line in ax.lines[1:])
    assert held == 4
    assert f"coverage {table.attrs['coverage']:.0%}" in ax.get_title()


def test_save_figure_formats(tmp_path):
    fig = plots.plot_law(power_fit())
    written = plots.save_figure(fig, tmp_path / "law", formats=["png", "svg", "pdf"])
    assert [p.suffix for p in written] == [".png", ".svg", ".pdf"]
    assert written[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert b"<svg" in written[1].read_bytes()[:500]
    assert written[2].read_bytes()[:5] == b"%PDF-"
    with pytest.raises(ConfigError, match="format"):
        plots.save_figure(fig, tmp_path / "law.jpg")


# --------------------------------------------------------------------------------------------
# Image comparisons
# --------------------------------------------------------------------------------------------
IMAGES = {
    "law_power_n": lambda: plots.plot_law(power_fit(), targets=[1e11]),
    "fan_power_n": lambda: plots.plot_fan(power_fit(), {"N": [1e10, 1e11, 1e12]}),
}


@pytest.mark.parametrize("name", sorted(IMAGES))
def test_image_matches_baseline(name, tmp_path):
    from matplotlib.testing.compare import compare_images

    actual = tmp_path / f"{name}.png"
    plots.save_figure(IMAGES[name](), actual)
    expected = BASELINE / f"{name}.png"
    if os.environ.get("BAYESCALE_NEW_BASELINES"):
        expected.write_bytes(actual.read_bytes())
    result = compare_images(str(expected), str(actual), tol=TOLERANCE)
    assert result is None, result
