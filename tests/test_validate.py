"""Simulation-based calibration: every law's posterior is calibrated over its prior.

SBC draws parameters from the prior, simulates a ladder, fits it and ranks the true values
among the posterior draws; under a correct posterior the ranks are uniform. The fast
configuration runs for every registered law, pooled (100 ladders of 50 runs, ``POOLED``), and
for one hierarchical configuration (``FAST``: 2 chains x 200 draws).

Why 100 simulations: ``test_uniformity_test_power_at_fast_size`` measures, on synthetic
fractional ranks, that the verdict at n = 100 rejects a correct posterior about 1 % of the time
and detects a posterior 1.5x too narrow, or one biased by half a posterior sd, about 90 % of
the time. Smaller departures need the full configuration (``benchmarks/sbc_full.py``: up to
200 ladders of 4 x 1000 draws per law, results in docs/validation.md).

Why one chain of 400 draws for pooled fits (instead of ``FAST``'s 2 x 200): a pooled nutpie fit
first runs the low-rank adaptation and redoes the fit with the diagonal one when two chains
disagree (R-hat > 1.01); with 200 draws per chain that happened in 10 of 12 simulated ladders of
power_n_e, chinchilla and critical_batch alike, so most of the time went into a discarded first
fit, and the ranks came from the fallback rather than the path a default fit (4 x 1000) takes.
One chain keeps the low-rank run unless it diverges: 1.5-2.6x less CPU per fit (0.78 -> 0.30 s
for critical_batch at 20 runs, 0.26 -> 0.17 s for chinchilla at 50) with as many draws, and
more of them left after thinning to the effective sample size. Ranks stay exactly uniform under
a correct posterior whatever the number of chains; convergence across chains is still checked
by the hierarchical test (2 chains) and the full configuration (4 chains).

The simulations run in the test process (``scheduler="serial"``): measured on 2 cores, a
LocalCluster of 2 workers used 60 % more CPU (every worker compiles every law) for no gain in
wall time; tests/test_batch.py runs SBC on a cluster. Ladders of 50 runs match
tests/test_recovery.py, so the compiled nutpie models are shared when the whole suite runs in
one process.

For log-linear laws the exact conjugate posterior is the oracle: fits made by nutpie on the
same 100 simulated ladders must agree with it ladder by ladder, not just on average.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr
from conftest import rng, seeded
from scipy import stats

import bayescale as bs
from bayescale.calibration.sbc import (
    FAST,
    load_sbc,
    reference_summary,
    sbc,
    sbc_ecdf_data,
    sbc_priors,
    sbc_uniformity,
)
from bayescale.cli.app import main
from bayescale.core.errors import ConfigError
from bayescale.fitting.batch import SERIAL

N_RUNS = 50
SEED = seeded(0)
#: Family-wise level of the uniformity verdicts asserted here: the library's default, 0.01,
#: would fail one of this module's dozen correct SBC results in one seed of ten; at 0.001 a
#: correct posterior fails a test once in 1000 seeds, and the posteriors these tests catch
#: (an overconfident prior: p < 1e-6) are still far below it.
SUITE_ALPHA = 1e-3
N_SIMS = FAST["n_sims"]
LAWS = bs.list_laws()
#: Pooled fits in the suite: FAST's 400 draws in one chain (see the module docstring).
POOLED = {**FAST, "chains": 1, "draws": FAST["chains"] * FAST["draws"]}
#: Laws whose loss solves an implicit equation (the critical batch depends on the loss) cost
#: about 0.3 s of CPU per fit at 20 runs, several times the others; their ladders have 20 runs.
COSTLY = {"critical_batch": {"n_runs": 20}, "kaplan_ns_bcrit": {"n_runs": 20}}


@pytest.fixture(scope="module")
def pooled_sbc():
    """SBC result per law, computed once per module."""
    cache: dict[str, xr.Dataset] = {}

    def run(law: str) -> xr.Dataset:
        if law not in cache:
            config = {**POOLED, "n_runs": N_RUNS, **COSTLY.get(law, {})}
            cache[law] = sbc(law, **config, seed=SEED, scheduler=SERIAL)
        return cache[law]

    return run


def _table(result: xr.Dataset) -> str:
    return result[["p_pot_c", "p_chi2"]].to_dataframe().to_string()


def _check_structure(result: xr.Dataset, n_sims: int) -> None:
    assert result.sizes["simulation"] == n_sims
    assert result.attrs["n_failed"] == 0, set(result["error"].values)
    pit, rank, count = result["pit"], result["rank"], result["n_ranked"]
    assert ((pit > 0) & (pit < 1)).all()
    assert ((rank >= 0) & (rank <= count)).all()
    # Thinning to the effective sample size must still leave enough draws to rank against.
    assert float(count.mean()) >= 30


@pytest.mark.statistical
@pytest.mark.parametrize("law", LAWS, ids=LAWS)
def test_pooled_sbc_fast_configuration_is_uniform(law, pooled_sbc):
    result = pooled_sbc(law)
    _check_structure(result, POOLED["n_sims"])
    config = json.loads(result.attrs["config"])
    expected_sampler = "exact" if bs.get_law(law).log_linear else "nutpie"
    assert config["sampler"] == expected_sampler
    # The fit used exactly the prior the truths were drawn from.
    assert config["fit_priors"] == config["sim_priors"]
    assert list(result["parameter"].values) == [*bs.get_law(law).latents, "sigma"]
    verdict = sbc_uniformity(result, alpha=SUITE_ALPHA)
    assert verdict.attrs["passed"] == 1, f"{law}: ranks not uniform\n{_table(verdict)}"


@pytest.mark.statistical
def test_hierarchical_sbc_fast_configuration_is_uniform():
    """power_n over 4 groups of 8 runs, exponent and scale partially pooled: group values,
    population locations and scales are all calibrated, whichever form (centred or not) the
    pilot chose for each simulated ladder."""
    result = sbc("power_n", **FAST, n_runs=32, groups=4, seed=SEED, scheduler=SERIAL)
    _check_structure(result, FAST["n_sims"])
    names = list(result["parameter"].values)
    for stem in ("log_L0", "alpha_N"):
        assert {f"mu_{stem}", f"tau_{stem}"} <= set(names)
        assert [n for n in names if n.startswith(f"{stem}[")] == [f"{stem}[g{g}]" for g in range(4)]
    assert json.loads(result.attrs["config"])["sampler"] == "nutpie"
    verdict = sbc_uniformity(result, alpha=SUITE_ALPHA)
    assert verdict.attrs["passed"] == 1, _table(verdict)


@pytest.fixture(scope="module")
def overconfident_sbc() -> xr.Dataset:
    """SBC of power_n fitted with a prior on the exponent ten times narrower than the one the
    truths came from: it pins the posterior near 0.1 whatever the data say."""
    wrong = {"alpha_N": {"dist": "Normal", "mu": 0.1, "sigma": 0.01}}
    return sbc("power_n", **POOLED, n_runs=N_RUNS, seed=SEED, scheduler=SERIAL, fit_priors=wrong)


@pytest.mark.statistical
def test_sbc_detects_an_overconfident_prior(overconfident_sbc):
    """The true exponents land in the tails of their overconfident posteriors and SBC must say
    so, for that parameter above all."""
    result = overconfident_sbc
    assert result.attrs["passed"] == 0
    assert bool(result["reject"].sel(parameter="alpha_N"))
    assert float(result["p_pot_c"].sel(parameter="alpha_N")) < 1e-6
    # Fractional ranks pile up at both ends: far more than 2 x 10 % in the outer deciles.
    pit = result["pit"].sel(parameter="alpha_N").values
    assert np.mean((pit < 0.1) | (pit > 0.9)) > 0.5
    # The ECDF-difference curve leaves its 95 % simultaneous band.
    ecdf = sbc_ecdf_data(result)
    curve = ecdf["ecdf_difference"].sel(parameter="alpha_N")
    band = ecdf["band"]
    outside = (curve < band.sel(ci_bound="lower")) | (curve > band.sel(ci_bound="upper"))
    assert bool(outside.any())


@pytest.mark.statistical
def test_nutpie_agrees_with_the_exact_oracle_ladder_by_ladder(pooled_sbc):
    """The same 100 ladders (same seed: same truths and data) fitted by nutpie and by the exact
    conjugate posterior. The fraction of posterior draws below the truth estimates the
    posterior CDF at the truth; from ~100 thinned draws its Monte Carlo sd is at most 0.05,
    so the two samplers differ by that much per ladder and not systematically."""
    exact = pooled_sbc("power_n")
    nuts = sbc("power_n", **POOLED, n_runs=N_RUNS, seed=SEED, scheduler=SERIAL, sampler="nutpie")
    _check_structure(nuts, POOLED["n_sims"])
    np.testing.assert_array_equal(nuts["truth"], exact["truth"])
    cdf_exact = exact["rank"] / exact["n_ranked"]
    cdf_nuts = nuts["rank"] / nuts["n_ranked"]
    diff = (cdf_nuts - cdf_exact).values
    n = diff.shape[0]
    # Mean over ladders: sd <= 0.05 * sqrt(2) / sqrt(n) = 0.007; allow 4 sd.
    assert np.all(np.abs(diff.mean(axis=0)) < 4 * 0.05 * np.sqrt(2) / np.sqrt(n)), diff.mean(0)
    # Per ladder: RMS difference within the Monte Carlo error of both estimates.
    assert np.all(np.sqrt((diff**2).mean(axis=0)) < 0.08), np.sqrt((diff**2).mean(0))
    verdict = sbc_uniformity(nuts, alpha=SUITE_ALPHA)
    assert verdict.attrs["passed"] == 1, _table(verdict)


def test_plot_sbc_draws_every_parameter_and_flags_the_rejected_one(overconfident_sbc):
    from matplotlib.colors import to_hex

    from bayescale.plots import PALETTE, plot_sbc

    result = overconfident_sbc
    names = list(result["parameter"].values)
    fig = plot_sbc(result, ncols=2)
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert len(fig.axes) == 4 and len(axes) == len(names) == 3  # 2 x 2 grid, one panel spare
    ecdf = sbc_ecdf_data(result)
    for ax, name in zip(axes, names, strict=True):
        p_pot = float(result["p_pot_c"].sel(parameter=name))
        assert ax.get_title().startswith(f"{name}\np = {p_pot:.2g} (pot_c)")
        (curve,) = [line for line in ax.lines if line.get_label() == "ECDF − uniform"]
        np.testing.assert_allclose(curve.get_ydata(), ecdf["ecdf_difference"].sel(parameter=name))
        rejected = bool(result["reject"].sel(parameter=name))
        assert to_hex(curve.get_color()) == (PALETTE[4] if rejected else PALETTE[1]).lower()
        (band,) = ax.collections  # the simultaneous band
        lower, upper = ecdf["band"].sel(ci_bound="lower"), ecdf["band"].sel(ci_bound="upper")
        ys = np.concatenate([p.vertices[:, 1] for p in band.get_paths()])
        assert ys.min() == pytest.approx(float(lower.min()))
        assert ys.max() == pytest.approx(float(upper.max()))
    assert bool(result["reject"].sel(parameter="alpha_N"))
    title = fig.get_suptitle()
    assert "power_n" in title and "NOT uniform" in title and f"{N_SIMS} simulations" in title

    # Known uniform ranks (no verdict stored): the verdict is computed, and one panel is drawn.
    generator = np.random.default_rng(3)
    single = plot_sbc(_pits(generator.random((N_SIMS, 2))), parameters=["p1"], prob=0.9)
    (ax,) = single.axes
    assert ax.get_title().startswith("p1") and "90% simultaneous band" in [
        t.get_text() for t in ax.get_legend().get_texts()
    ]
    assert ", uniform at" in single.get_suptitle()
    with pytest.raises(ConfigError, match="no parameter 'beta'"):
        plot_sbc(result, parameters=["beta"])


# --------------------------------------------------------------------------------------------
# The uniformity verdict and the ECDF data, on known fractional ranks.


def _pits(values: np.ndarray) -> xr.Dataset:
    names = [f"p{j}" for j in range(values.shape[1])]
    return xr.Dataset({"pit": (("simulation", "parameter"), values)}, coords={"parameter": names})


@pytest.mark.statistical
def test_uniformity_test_power_at_fast_size():
    """At the fast size (100 simulations, 3 parameters) the verdict keeps its level on uniform
    ranks and detects the departures the module docstring promises.

    A posterior too narrow by a factor c puts the truth at PIT = Phi(Z / c); one biased by b
    posterior sd at Phi(Z + b), with Z standard normal. 200 repetitions estimate each rate
    to within +-0.07 (95 %)."""
    generator = rng(1)
    n, reps = FAST["n_sims"], 200

    def rejection_rate(transform) -> float:
        rejected = 0
        for _ in range(reps):
            z = generator.standard_normal((n, 3))
            pit = stats.norm.cdf(z)
            pit[:, 0] = transform(z[:, 0])
            rejected += sbc_uniformity(_pits(pit)).attrs["passed"] == 0
        return rejected / reps

    assert rejection_rate(stats.norm.cdf) <= 0.04  # nominal 0.01
    assert rejection_rate(lambda z: stats.norm.cdf(z / 0.67)) >= 0.8
    assert rejection_rate(lambda z: stats.norm.cdf(z + 0.5)) >= 0.8


def test_ecdf_data_and_band():
    generator = np.random.default_rng(2)
    n = 200
    result = _pits(generator.random((n, 2)))
    ecdf = sbc_ecdf_data(result, prob=0.95)
    x = ecdf["x"].values
    assert x[0] == 0 and x[-1] == 1
    direct = np.array([[np.mean(result["pit"].values[:, j] <= v) - v for v in x] for j in (0, 1)])
    np.testing.assert_allclose(ecdf["ecdf_difference"].values, direct, atol=1e-12)
    assert ecdf.attrs["ci_kind"] == "simultaneous" and ecdf.attrs["ci_prob"] == 0.95
    # A simultaneous band is wider than the pointwise 95 % binomial interval and no wider than
    # the Dvoretzky-Kiefer-Wolfowitz band that holds for any n.
    half = (
        float((ecdf["band"].sel(ci_bound="upper") - ecdf["band"].sel(ci_bound="lower")).sel(x=0.5))
        / 2
    )
    assert 1.96 * np.sqrt(0.25 / n) < half <= np.sqrt(np.log(2 / 0.05) / (2 * n)) + 1 / n


# --------------------------------------------------------------------------------------------
# Configuration, storage and the command line.


def test_priors_are_fixed_from_the_reference_summary():
    summary = reference_summary("chinchilla")
    assert summary.centre["N"] == pytest.approx(np.log(1e8))
    assert summary.centre["D"] == pytest.approx(np.log(1e10))
    priors = sbc_priors("chinchilla", groups=3)
    # E is shared by default; the others get a population location and scale.
    assert "log_E" in priors and "mu_log_alpha" in priors and "tau_log_alpha" in priors
    assert priors == sbc_priors("chinchilla", summary=summary, groups=3)


def test_bad_sbc_settings_are_refused():
    with pytest.raises(ConfigError, match="groups must be 0"):
        sbc("power_n", groups=1, n_sims=2, scheduler=SERIAL)
    with pytest.raises(ConfigError, match="fewer than 2 runs"):
        sbc("power_n", groups=4, n_runs=6, n_sims=2, scheduler=SERIAL)
    with pytest.raises(bs.UnknownNameError, match="unknown sampler"):
        sbc("power_n", sampler="gibbs", n_sims=2, scheduler=SERIAL)
    with pytest.raises(bs.UnknownNameError, match="no parameter 'alpha'"):
        sbc("power_n", fit_priors={"alpha": {"dist": "Normal", "mu": 0, "sigma": 1}})


def test_sbc_command_writes_results_and_resumes(tmp_path, capsys):
    out, store = tmp_path / "sbc.nc", tmp_path / "store"
    args = ["sbc", "--law", "power_n", "--fast", "--scheduler", "serial", "--store", str(store)]
    assert main([*args, "--sims", "12", "-o", str(out), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["law"] == "power_n" and doc["n_sims"] == 12 and doc["n_failed"] == 0
    assert set(doc["parameters"]) == {"log_L0", "alpha_N", "sigma"}
    first = load_sbc(out)
    assert first.sizes["simulation"] == 12 and not first["reused"].any()

    # More simulations later: the 12 stored ones are reused, identical.
    assert main([*args, "--sims", "15", "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "uniformity" in text and "15 of 15 fits finished" in text
    second = load_sbc(out)
    assert second["reused"].values.tolist() == [True] * 12 + [False] * 3
    xr.testing.assert_equal(second["pit"].isel(simulation=slice(12)), first["pit"])

    assert main(["sbc", "--law", "power_n", "-o", str(tmp_path / "no" / "x.nc")]) == 2
    assert "does not exist" in capsys.readouterr().err
