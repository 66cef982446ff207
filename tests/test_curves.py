"""Learning curves: per-step tables, the curve laws, run offsets with an AR(1) residual,
early-curve extrapolation (simulated and real curves) and Kaplan's derived quantities.

Every ``kaplan_ns`` fit here has the same shape, 22 runs of 12 rows with the run id column
``run_name`` (the Gemstones column), so nutpie compiles that model once for the module.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from conftest import SHARED_DATA, far_from_truth, needs_shared_data, rng, seeded, true_params
from scipy.optimize import brentq, minimize_scalar

import bayescale as bs
from bayescale.cli.app import main
from bayescale.core.errors import ConfigError, RunsTableError, SamplingWarning, UnknownNameError
from bayescale.laws.base import DataSummary, evaluate, get_law
from bayescale.laws.learning import frontier_exponents
from bayescale.questions.curves import extrapolate, predict_runs, prediction_rows
from bayescale.questions.efficiency import KAPLAN_BCRIT, compute_efficient, minimum_steps
from bayescale.runs.curves import load_curves, thin_curves

RUN = "run_name"
N_RUNS = 22
PER_RUN = 12
#: Share of each run's steps seen before extrapolating, as in the issue.
FRACTION = 0.3
#: Logged steps of the simulated runs: 60 log-spaced checkpoints, as dense in log step as the
#: Gemstones logging is at its start, so thinning gives PER_RUN rows both of whole runs and of
#: their first 30 %.
STEPS = np.unique(np.rint(np.geomspace(1e3, 1e5, 60)))
#: Run-to-run offsets of 2 % (Kaplan's seed-to-seed variation) and a slowly drifting residual
#: of 0.4 % decorrelating over 0.3 e-folds of steps.
TAU, SIGMA, ELL = 0.02, 0.004, 0.3
#: 4 chains x 1000 draws: nutpie's low-rank mass matrix (which absorbs the correlations among
#: the law's latents and between its level and the run offsets) is kept only if R-hat over all
#: ~66 quantities is <= 1.01; otherwise the fit is redone with a diagonal one, on which these
#: posteriors mix 10x slower (bulk ESS 100-150 of 2000 draws, R-hat 1.02-1.04: the "chains
#: disagree" failures of this module). Over 20 seeds of the truncated-curve fits, 2 x 1000
#: low-rank draws reached max R-hat 1.004-1.0095 and crossed 1.01 in 3 of 20 (2 x 500: about
#: half); 4 x 1000 gave 1.003-1.009 and kept the low-rank run in 20 of 20, for ~2 s a fit.
FIT = {"draws": 1000, "tune": 1000, "chains": 4}
GEMSTONES = SHARED_DATA / "gemstones" / "wandb_df_for_fitting_hot_100b+_477.jsonl"


def simulate_curves(
    law: str,
    params: dict[str, float],
    runs: dict[str, dict[str, float]],
    steps: np.ndarray,
    *,
    seed: int,
    run_column: str = RUN,
) -> pd.DataFrame:
    """Curves of ``law`` with a zero-sum offset per run and a stationary AR(1) residual.

    The offsets are centred to sum to zero, as the model's are, so the law with ``params`` is
    exactly the average run and its parameters are the truth to recover.
    """
    generator = rng(seed)
    offsets = generator.normal(0.0, TAU, len(runs))
    offsets -= offsets.mean()
    x = np.log(steps)
    parts = []
    for (name, fixed), offset in zip(runs.items(), offsets, strict=True):
        resid = np.empty(x.size)
        resid[0] = generator.normal(0.0, SIGMA)
        for k in range(1, x.size):
            rho = np.exp(-(x[k] - x[k - 1]) / ELL)
            resid[k] = rho * resid[k - 1] + SIGMA * np.sqrt(1 - rho**2) * generator.normal()
        inputs = {"step": steps, **{k: np.full(steps.size, v) for k, v in fixed.items()}}
        loss = evaluate(law, params, inputs) * np.exp(offset + resid)
        parts.append(pd.DataFrame({run_column: name, **inputs, "loss": loss}))
    return pd.concat(parts, ignore_index=True)


def ladder_curves(seed: int, prefix: str = "r") -> pd.DataFrame:
    sizes = np.geomspace(1e6, 1e9, N_RUNS)
    runs = {f"{prefix}{i}": {"N": n} for i, n in enumerate(sizes)}
    return simulate_curves("kaplan_ns", true_params("kaplan_ns"), runs, STEPS, seed=seed)


def truncate(table: pd.DataFrame, run_column: str = RUN) -> tuple[pd.DataFrame, pd.DataFrame]:
    """First FRACTION of each run's steps, and each run's final row (indexed by run)."""
    last = table.groupby(run_column)["step"].transform("max")
    early = table[table["step"] <= FRACTION * last]
    final = table[table["step"] == last].set_index(run_column)
    return early, final


def coverage(pred, final: pd.DataFrame, run_column: str = RUN) -> np.ndarray:
    """Whether each run's logged final loss lies in the 94 % band of its observed loss."""
    rows = pd.DataFrame(prediction_rows(pred)).set_index(run_column)
    y = final.loc[rows.index, "loss"]
    return ((rows["observed_lo"] <= y) & (y <= rows["observed_hi"])).to_numpy()


def final_steps(final: pd.DataFrame) -> dict[str, float]:
    return {str(r): float(s) for r, s in final["step"].items()}


# --------------------------------------------------------------------------------------------
# Fitted fixtures (one compiled kaplan_ns model for all)


@pytest.fixture(scope="module")
def recovered() -> bs.Fit:
    curves = thin_curves(load_curves(ladder_curves(seed=5), run_id=RUN), per_run=PER_RUN)
    assert curves.sizes["run"] == N_RUNS * PER_RUN  # the shared model shape
    return bs.fit(curves, "kaplan_ns", run_id=RUN, seed=seeded(2), **FIT)


@pytest.fixture(scope="module")
def critical() -> bs.Fit:
    """critical_batch fitted to a batch sweep: six runs at 2^14-2^24 tokens per step."""
    params = true_params("critical_batch")
    runs = {f"B{2**k}": {"batch": float(2**k)} for k in range(14, 25, 2)}
    steps = np.unique(np.rint(np.geomspace(1e3, 3e5, 20)))
    table = simulate_curves("critical_batch", params, runs, steps, seed=0, run_column="run_id")
    return bs.fit(table, "critical_batch", run_id="run_id", seed=seeded(1), **FIT)


@pytest.fixture(scope="module")
def gemstones() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Gemstones hot curves, read with a column mapping, warmup dropped, truncated at 30 %."""
    table = load_curves(
        GEMSTONES,
        run_id=RUN,
        columns={"N": "params_active_precise", "loss": "final_loss"},
        required=("N", "step"),
    )
    frame = table[[RUN, "N", "step", "loss"]].to_dataframe().reset_index(drop=True)
    early, final = truncate(frame)
    # The first checkpoints (477-1908 steps) are inside the warmup, which no law describes.
    return early[early["step"] >= 2000], final


# --------------------------------------------------------------------------------------------
# The curve laws: implicit solve, gradient, Kaplan's trade-off relation


@pytest.mark.parametrize("name", ["kaplan_ns_bcrit", "critical_batch"])
def test_newton_solves_the_implicit_loss_over_the_prior(name):
    """Over 4000 prior draws and inputs spanning 1e2-1e6 steps and 1e3-1e8 tokens per batch,
    the loss solves L = floor + (S_c (1 + B*/(B L^(1/alpha_B)))/S)^alpha_S to 1e-12."""
    law = get_law(name)
    generator = np.random.default_rng(0)
    n = 4000
    ranges = {"N": (1e6, 1e10), "step": (1e2, 1e6), "batch": (1e3, 1e8)}
    inputs = {k: np.exp(generator.uniform(*np.log(ranges[k]), n)) for k in law.inputs}
    summary = DataSummary.from_arrays(inputs, np.exp(generator.uniform(np.log(2), np.log(5), n)))
    priors = law.default_priors(summary)
    z = {k: priors[k].scipy().rvs(size=n, random_state=generator) for k in law.latents}
    params = law.to_params(z, summary.centre, np)
    loss = evaluate(law, params, inputs)
    floor = (
        params["E"]
        if name == "critical_batch"
        else (params["N_c"] / inputs["N"]) ** params["alpha_N"]
    )
    s_min = inputs["step"] / (
        1 + params["B_star"] / (inputs["batch"] * loss ** (1 / params["alpha_B"]))
    )
    rhs = floor + (params["S_c"] / s_min) ** params["alpha_S"]
    np.testing.assert_allclose(loss, rhs, rtol=1e-12)


def test_implicit_gradient_matches_finite_differences():
    """The sampler's gradient (Newton steps without gradient plus one implicit-function step)
    equals central finite differences of the log loss."""
    import pytensor
    import pytensor.tensor as pt

    law = get_law("critical_batch")
    generator = np.random.default_rng(1)
    u = {"step": generator.normal(0, 1.5, 30), "batch": generator.normal(0, 1.5, 30)}
    z0 = {"log_E": 1.0, "log_t0": 0.2, "alpha_S": 0.7, "log_bcrit_e": 0.3, "alpha_B": 0.25}
    symbols = {k: pt.dscalar(k) for k in z0}
    total = law.log_loss(symbols, {k: pt.as_tensor(v) for k, v in u.items()}, pt).sum()
    grad = pytensor.function(list(symbols.values()), pytensor.grad(total, list(symbols.values())))
    analytic = grad(*z0.values())
    for k, g in zip(z0, analytic, strict=True):
        up, down = dict(z0), dict(z0)
        up[k] += 1e-6
        down[k] -= 1e-6
        numeric = (law.log_loss(up, u, np).sum() - law.log_loss(down, u, np).sum()) / 2e-6
        assert g == pytest.approx(numeric, rel=1e-6), k


def test_critical_batch_obeys_kaplans_tradeoff():
    """Steps S and examples E = BS that reach one loss at different batch sizes satisfy
    (S/S_min - 1)(E/E_min - 1) = 1 with S_min and E_min = S_min B_crit from the law."""
    p = true_params("critical_batch")
    target = 3.4
    b_crit = p["B_star"] / target ** (1 / p["alpha_B"])
    s_min = p["S_c"] / (target - p["E"]) ** (1 / p["alpha_S"])
    for batch in (3e4, 3e5, 3e6, 3e7):

        def gap(log_s, b=batch):
            return (
                float(evaluate("critical_batch", p, {"step": np.exp(log_s), "batch": b})) - target
            )

        steps = np.exp(brentq(gap, np.log(1.0), np.log(1e9)))
        examples = batch * steps
        assert (steps / s_min - 1) * (examples / (s_min * b_crit) - 1) == pytest.approx(1, 1e-9)


# --------------------------------------------------------------------------------------------
# Recovery on simulated curves


@pytest.mark.statistical
def test_kaplan_ns_recovers_kaplan_on_curves(recovered):
    """22 simulated runs with 2 % offsets and a drifting residual: every law parameter and the
    offset scale are recovered (conftest.far_from_truth), without divergences. (tau_run is
    learned from 22 offsets, whose sd strays from TAU by 15 % per sd.)"""
    truth = true_params("kaplan_ns") | {"tau_run": TAU}
    assert not far_from_truth(recovered.posterior, truth)
    assert recovered.diagnostics.divergences == 0
    assert recovered.diagnostics.problems == []
    # The noise model is reported and the run offsets carry the run ids.
    assert {"tau_run", "ell_run", "drift_run", "sigma"} <= set(recovered.reported)
    assert list(recovered.posterior["run_offset"][RUN].values) == [f"r{i}" for i in range(N_RUNS)]


@pytest.mark.statistical
def test_critical_batch_recovered_from_a_batch_sweep(critical):
    """Six runs of one model size at batch sizes 2^14-2^24 tokens (from far below to far above
    B_crit): E, alpha_S, alpha_B, S_c and B* are recovered, no divergences."""
    assert not far_from_truth(critical.posterior, true_params("critical_batch"))
    assert critical.diagnostics.divergences == 0


# --------------------------------------------------------------------------------------------
# Early-curve extrapolation: backtests


@pytest.mark.statistical
def test_backtest_simulated_curves_truncated_at_30_percent():
    """Two tables of 22 simulated runs cut at 30 % of their steps: the 94 % band of each run's
    final loss (3.3x further in steps, fitted from the early parts alone) covers the logged
    final loss in >= 75 % of the 44 runs (measured: 41). Calibrated 94 % bands of independent
    runs miss more than 11 of 44 with probability 8e-6 (the runs share the law's error, which
    makes clustered misses likelier, but not 100x), while bands 1.5x too narrow (79 %
    coverage) fail one seed in five; the former floor, 85 %, failed calibrated bands 1.5 % of
    the time."""
    hits = []
    for seed in (2, 3):
        early, final = truncate(ladder_curves(seed))
        pred = extrapolate(
            early, final_steps(final), run_id=RUN, per_run=PER_RUN, seed=seeded(seed), **FIT
        )
        assert pred.extrapolation["step"].values.min() > 0.4  # decades past the last step seen
        hits.append(coverage(pred, final))
    assert np.concatenate(hits).mean() >= 0.75


@pytest.mark.statistical
def test_backtest_updates_a_fit_of_finished_runs(recovered):
    """The recovered fit (22 finished runs) updated with the first 30 % of 22 new runs by
    importance sampling, no new sampling: the final-loss bands cover >= 15 of the 22 new runs
    (calibrated bands of independent runs cover fewer with probability 3e-5; 19, the former
    floor, failed them 4 % of the time).

    The weights are healthy (Pareto k < 0.7) for all but a few runs; the runs at the edge of
    the ladder inform the law most, and their weights can degrade (one run at k ~ 0.8 here),
    which the warning reports so the user refits instead.
    """
    early, final = truncate(ladder_curves(seed=4, prefix="new"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SamplingWarning)
        pred = extrapolate(
            early, final_steps(final), fit=recovered, run_id=RUN, per_run=PER_RUN, seed=seeded(4)
        )
    khat = pred.noise["pareto_k"].values
    assert (khat > 0.7).sum() <= 2 and np.median(khat) < 0.5
    assert len(caught) == int((khat > 0.7).any())
    assert coverage(pred, final).sum() >= 15
    # Each run's own early points move its band: the median follows the run's level.
    rows = pd.DataFrame(prediction_rows(pred)).set_index(RUN)
    level = np.log(
        early.groupby(RUN)["loss"].last()
        / evaluate("kaplan_ns", true_params("kaplan_ns"), early.groupby(RUN)[["N", "step"]].last())
    )
    predicted = np.log(
        rows["loss_median"]
        / evaluate("kaplan_ns", true_params("kaplan_ns"), {"N": rows["N"], "step": rows["step"]})
    )
    assert np.corrcoef(level[rows.index], predicted)[0, 1] > 0.8


@needs_shared_data
@pytest.mark.statistical
def test_backtest_gemstones_real_curves(gemstones):
    """Real curves: the 22 Gemstones runs (McLeish et al. 2025; constant learning rate, 83475
    steps, total parameter counts as N), fitted from step 2000 to 30 % of each run. Measured:
    21 of 22 final losses inside their 94 % bands (with fit seeds 0 and 1); with per-run
    offsets and independent noise (run_noise="offset") 13 of 22, since the law's smooth misfit
    then reads as small noise; with the warmup rows kept, 18 of 22.

    Floor 0.8 (18 of 22): a calibrated 94 % band misses more than 4 of 22 with probability
    0.9 % if runs were independent (they share the law's misfit, so misses cluster), and the
    floor separates the AR(1) model from the offset model.
    """
    early, final = gemstones
    pred = extrapolate(
        early, final_steps(final), run_id=RUN, per_run=PER_RUN, seed=seeded(0), **FIT
    )
    hits = coverage(pred, final)
    assert hits.size == 22
    assert hits.mean() >= 0.8, f"coverage {hits.mean():.2f}"
    # Bands are informative: under 3 % of the loss wide (the final losses span 2.5-3.4).
    rows = pd.DataFrame(prediction_rows(pred))
    assert ((rows["observed_hi"] - rows["observed_lo"]) / rows["observed_median"]).max() < 0.03


# --------------------------------------------------------------------------------------------
# Predicting fitted runs, saving, predict() for a new run


def test_predict_runs_carries_the_ar1_residual(recovered):
    """At a fitted step the run's curve is its logged loss (rho = 1, no noise left); further
    out the band widens and the carried residual fades."""
    runs = recovered.runs
    first = runs.isel(run=np.flatnonzero(runs[RUN].values == "r3"))
    step_fitted, last = float(first["step"].values[5]), float(first["step"].values[-1])
    pred = predict_runs(recovered, [step_fitted, 1.02 * last, 2 * last], runs=["r3"])
    y = float(first["loss"].values[5])
    np.testing.assert_allclose(pred.expected.values[..., 0], y, rtol=1e-9)
    np.testing.assert_allclose(pred.observed.values[..., 0], y, rtol=1e-9)
    spread = np.log(pred.observed.values.reshape(-1, 3)).std(axis=0)
    assert spread[0] < 1e-10 < spread[1] < spread[2]
    # 0.02 e-folds past the last row most of the residual is still carried (innovation sd
    # well under the stationary sigma); 0.7 e-folds past it, ~3 ell_run, hardly any is.
    sigma = float(recovered.posterior["sigma"].mean())
    assert spread[1] < 0.7 * sigma < spread[2]
    with pytest.raises(UnknownNameError, match="no run 'r99'"):
        predict_runs(recovered, 2e5, runs=["r99"])
    with pytest.raises(ConfigError, match="must be positive"):
        predict_runs(recovered, {"r3": [-1.0]})


def test_fit_with_runs_round_trips(recovered, tmp_path):
    path = recovered.save(tmp_path / "curves.nc")
    loaded = bs.load_fit(path)
    assert loaded.meta["run_effect"] == recovered.meta["run_effect"]
    assert loaded.meta["run_effect"]["ar1"] is True
    before = predict_runs(recovered, 2e5, runs=["r0", "r21"], seed=3)
    after = predict_runs(loaded, 2e5, runs=["r0", "r21"], seed=3)
    np.testing.assert_allclose(after.observed.values, before.observed.values)


@pytest.mark.statistical
def test_predict_new_run_includes_run_offsets(recovered):
    """bayescale.questions.predict at (N, step) is the loss of a new run: its observed band
    includes the
    run-offset scale, so it is wider than the point-to-point noise alone allows."""
    from bayescale.questions.predict import predict

    pred = predict(recovered, {"N": 1e8, "step": 5e4})
    log_obs = np.log(pred.observed.values.ravel())
    log_exp = np.log(pred.expected.values.ravel())
    spread = np.std(log_obs - log_exp)
    assert spread > 0.8 * float(recovered.posterior["tau_run"].mean())
    assert spread > 2 * float(recovered.posterior["sigma"].mean())


# --------------------------------------------------------------------------------------------
# Kaplan's derived quantities


def test_minimum_steps_match_the_law():
    """On rows generated by kaplan_ns_bcrit, S_min from the observed loss is the S_min the law
    used: loss - (N_c/N)^alpha_N = (S_c/S_min)^alpha_S; and C_min = 6 N E_min."""
    p = true_params("kaplan_ns_bcrit")
    table = pd.DataFrame(
        {
            "run_id": np.repeat(["a", "b"], 3),
            "N": np.repeat([1e8, 1e9], 3),
            "step": np.tile([1e3, 1e4, 1e5], 2),
            "batch": np.tile([1e5, 5e5, 4e6], 2),
        }
    )
    table["loss"] = evaluate("kaplan_ns_bcrit", p, table)
    out = minimum_steps(table, critical={k: p[k] for k in KAPLAN_BCRIT})
    reducible = table["loss"] - (p["N_c"] / table["N"]) ** p["alpha_N"]
    np.testing.assert_allclose(out["S_min"], p["S_c"] / reducible ** (1 / p["alpha_S"]))
    np.testing.assert_allclose(out["C_min"], 6 * table["N"] * out["E_min"])
    np.testing.assert_allclose(out["E_min"], out["S_min"] * out["B_crit"])
    assert (out["S_min"] < out["S"]).all() and (out["E_min"] < out["D"]).all()
    last = minimum_steps(table, final_only=True)
    assert list(last["run_id"].values) == ["a", "b"]


@pytest.mark.statistical
def test_minimum_steps_posterior_from_a_critical_batch_fit(critical):
    """With a critical_batch fit the quantities are posteriors (chain, draw, run), and they
    bracket the values at the true B* and alpha_B."""
    table = pd.DataFrame({"step": [1e3, 1e4], "batch": [5e5, 5e5], "loss": [4.0, 3.0]})
    out = minimum_steps(table, critical=critical, run_id=None)
    assert out["S_min"].dims == ("chain", "draw", "run")
    truth = minimum_steps(table, critical=KAPLAN_BCRIT, run_id=None)
    lo, hi = out["S_min"].quantile([0.001, 0.999], dim=("chain", "draw")).values
    assert np.all((lo <= truth["S_min"].values) & (truth["S_min"].values <= hi))
    with pytest.raises(ConfigError, match="has no critical batch"):
        ladder = pd.DataFrame({"N": [1e7, 1e8, 1e9, 1e10], "loss": [4.0, 3.4, 2.9, 2.5]})
        minimum_steps(table, critical=bs.fit(ladder, "power_n", sampler="exact"), run_id=None)


def test_compute_efficient_point_is_the_optimum(recovered):
    """For one posterior draw, the closed-form frontier point minimises L(N, S_min) at fixed
    C_min = 6 N B_crit(L) S_min (checked by brute force), and the frontier exponents obey
    N ∝ C^a, D ∝ C^(1-a)."""
    budgets = [1e18, 1e21]
    out = compute_efficient(recovered, budgets, critical=KAPLAN_BCRIT)
    draw = out.isel(chain=0, draw=7)
    p = {
        k: float(recovered.posterior[k].isel(chain=0, draw=7))
        for k in ("alpha_N", "alpha_S", "N_c", "S_c")
    }
    p |= KAPLAN_BCRIT

    def loss_at(log_n, budget):
        l_n = (p["N_c"] / np.exp(log_n)) ** p["alpha_N"]

        def excess(log_s):
            loss = l_n + (p["S_c"] / np.exp(log_s)) ** p["alpha_S"]
            b = p["B_star"] / loss ** (1 / p["alpha_B"])
            return log_n + log_s + np.log(6 * b) - np.log(budget)

        s = np.exp(brentq(excess, -30, 80))
        return l_n + (p["S_c"] / s) ** p["alpha_S"]

    for j, budget in enumerate(budgets):
        best = minimize_scalar(
            loss_at,
            bounds=(np.log(1e3), np.log(1e14)),
            args=(budget,),
            method="bounded",
            options={"xatol": 1e-9},
        )
        assert float(draw["N"][j]) == pytest.approx(np.exp(best.x), rel=1e-4)
        assert float(draw["loss"][j]) == pytest.approx(best.fun, rel=1e-8)
    slope = np.log(draw["N"][1] / draw["N"][0]) / np.log(budgets[1] / budgets[0])
    assert float(slope) == pytest.approx(float(draw["frontier_exponent_N"]), rel=1e-9)
    np.testing.assert_allclose(out["frontier_exponent_D"], 1 - out["frontier_exponent_N"])
    assert float(out["p_convergence_inefficient"]) == 1.0


def test_frontier_exponents_at_kaplans_values():
    """Kaplan's published exponents (0.076, 0.76, 0.21) give 1/alpha_C_min = 19.24 and tokens
    growing as C^0.32 against N as C^0.68 (Kaplan measured N ∝ C^0.73 directly)."""
    e = frontier_exponents({"alpha_N": 0.076, "alpha_S": 0.76, "alpha_B": 0.21}, np)
    assert 1 / e["alpha_C_min"] == pytest.approx(1 / 0.076 + 1 / 0.76 + 1 / 0.21)
    assert e["frontier_exponent_D"] == pytest.approx(6.078 / 19.236, abs=1e-4)  # 0.316
    assert e["frontier_exponent_N"] + e["frontier_exponent_D"] == pytest.approx(1.0)


# --------------------------------------------------------------------------------------------
# Per-step tables: thinning and bad input


def test_thin_keeps_log_spaced_rows():
    table = pd.DataFrame(
        {"run_id": np.repeat(["a", "b"], [400, 5]), "N": np.repeat([1e7, 1e8], [400, 5])}
    )
    table["step"] = np.concatenate([np.arange(1, 401) * 250, [10, 20, 30, 40, 50]])
    table["loss"] = 3.0
    thinned = thin_curves(load_curves(table), per_run=20)
    a = thinned["step"].values[thinned["run_id"].values == "a"]
    assert a[0] == 250 and a[-1] == 100_000 and a.size <= 20
    ratios = np.diff(np.log(a))[a[1:] > 5000]  # where logging is dense enough for the targets
    assert np.ptp(ratios) < 0.5 * ratios.mean()
    b = thinned["step"].values[thinned["run_id"].values == "b"]
    np.testing.assert_array_equal(b, [10, 20, 30, 40, 50])  # short runs are kept whole
    with pytest.raises(ConfigError, match="per_run"):
        thin_curves(load_curves(table), per_run=1)


def _table(**changes) -> pd.DataFrame:
    table = pd.DataFrame(
        {
            "run_id": ["a", "a", "a", "b", "b"],
            "N": [1e8, 1e8, 1e8, 4e8, 4e8],
            "step": [100, 200, 300, 100, 200],
            "loss": [4.0, 3.6, 3.4, 3.9, 3.5],
        }
    )
    for column, (row, value) in changes.items():
        table.loc[row, column] = value
    return table


def test_non_monotone_steps_name_the_run_and_rows():
    with pytest.raises(
        RunsTableError, match=r"run 'a': step goes back from 200 to 150 \(rows 2, 3\)"
    ):
        load_curves(_table(step=(2, 150)))


def test_duplicated_steps_name_the_run_and_rows():
    with pytest.raises(RunsTableError, match=r"run 'b' logs step 100 twice \(rows 4, 5\)"):
        load_curves(_table(step=(4, 100)))


def test_missing_run_ids_name_the_rows():
    table = _table()
    table["run_id"] = table["run_id"].astype(object)
    table.loc[1, "run_id"] = None
    with pytest.raises(RunsTableError, match=r"run id column 'run_id' is empty in row 2"):
        load_curves(table)
    table.loc[1, "run_id"] = ""
    with pytest.raises(RunsTableError, match=r"is empty in row 2"):
        load_curves(table)


def test_missing_run_id_column_and_bad_names():
    with pytest.raises(RunsTableError, match="runs table has no column 'seed'"):
        load_curves(_table(), run_id="seed")
    with pytest.raises(RunsTableError, match="cannot be a canonical column"):
        load_curves(_table(), run_id="N")
    with pytest.raises(RunsTableError, match="'step'"):
        load_curves(_table().drop(columns="step"), required=())


def test_one_run_id_with_two_model_sizes():
    with pytest.raises(
        RunsTableError, match=r"run 'a' has several model sizes N \(1e\+08 and 2e\+08, rows 1, 3\)"
    ):
        load_curves(_table(N=(2, 2e8)))


def test_integer_run_ids_and_directory_rows(tmp_path):
    table = _table()
    table["run_id"] = [7, 7, 7, 8, 8]
    assert list(load_curves(table)["run_id"].values) == ["7", "7", "7", "8", "8"]
    for name, part in _table().groupby("run_id"):
        part.drop(columns="run_id").assign(step=part["step"].to_numpy()[::-1]).to_csv(
            tmp_path / f"{name}.csv", index=False
        )
    with pytest.raises(RunsTableError, match=r"run 'a'.*rows 1 \(a\), 2 \(a\)"):
        load_curves(tmp_path, run_id="source_file")


def test_fit_and_extrapolate_reject_bad_options(recovered):
    with pytest.raises(ConfigError, match="exact sampler"):
        bs.fit(_table(), "kaplan_ns", run_id="run_id", sampler="exact")
    with pytest.raises(ConfigError, match="unknown run_noise 'ar2'"):
        bs.fit(_table(), "kaplan_ns", run_id="run_id", run_noise="ar2")
    early = _table().rename(columns={"run_id": RUN})
    with pytest.raises(ConfigError, match="not both"):
        extrapolate(early, 1e4, fit=recovered, finished=early, run_id=RUN)
    with pytest.raises(ConfigError, match="already in the fit"):
        extrapolate(early.assign(**{RUN: "r1"}).iloc[:3], 1e4, fit=recovered, run_id=RUN)
    with pytest.raises(ConfigError, match="not among the runs"):
        extrapolate(early, {"zz": 1e4}, fit=recovered, run_id=RUN)


# --------------------------------------------------------------------------------------------
# Command line


def test_cli_runs_and_frontier(recovered, tmp_path, capsys):
    path = recovered.save(tmp_path / "curves.nc")
    assert main(["curves", "runs", str(path), "--step", "2e5", "--run", "r2"]) == 0
    doc = json.loads(capsys.readouterr().out)
    (row,) = doc["points"]
    assert row[RUN] == "r2" and row["step"] == 2e5
    assert row["observed_lo"] < row["observed_median"] < row["observed_hi"]
    assert main(["curves", "frontier", str(path), "--compute", "1e20"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["frontier_exponent_D"]["values"][0]["lo"] > 0
    assert doc["N"]["values"][0]["C"] == 1e20
    # Extrapolating new runs from their early curves by updating the saved fit.
    early, _ = truncate(ladder_curves(seed=4, prefix="new"))
    early = early[early[RUN].isin([f"new{i}" for i in range(5)])]
    early.to_csv(tmp_path / "early.csv", index=False)
    args = ["curves", "extrapolate", str(tmp_path / "early.csv"), "--run-id", RUN]
    assert main([*args, "--fit", str(path), "--step", "1e5", "--per-run", "12"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [row[RUN] for row in doc["points"]] == [f"new{i}" for i in range(5)]
    assert all(row["steps_beyond"] > 0.4 for row in doc["points"])
    # bayescale predict takes --step for a curve law (new run at N, step).
    assert main(["predict", str(path), "--N", "1e8", "--step", "1e5", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["points"][0]["step"] == 1e5


def test_cli_minimum_and_bad_input(tmp_path, capsys):
    table = _table().assign(batch=5e5)
    table.to_csv(tmp_path / "runs.csv", index=False)
    assert main(["curves", "minimum", str(tmp_path / "runs.csv"), "--final-only"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [v["run_id"] for v in doc["S_min"]["values"]] == ["a", "b"]
    _table(step=(2, 150)).assign(batch=5e5).to_csv(tmp_path / "bad.csv", index=False)
    assert main(["curves", "minimum", str(tmp_path / "bad.csv")]) == 2
    assert "step goes back" in capsys.readouterr().err
    assert main(["curves", "minimum", str(tmp_path / "runs.csv"), "--b-star", "2e8"]) == 2
    assert "--alpha-b" in capsys.readouterr().err


def test_bundled_curves_dataset_loads_as_curves():
    from bayescale.runs.table import dataset_info

    info = dataset_info("kaplan_curves")
    curves = load_curves(
        "kaplan_curves", run_id=info["run_id_column"], required=("N", "step", "batch")
    )
    assert len(set(curves["run_id"].values)) == info["n_curves"] == 12
    assert isinstance(curves, xr.Dataset)
