"""Least-squares baseline: recovery of known truths, an independent SciPy oracle, calibration of
the bootstrap predictive, every registered law, and errors for bad input.

Tolerances come from the noise: with Huber's delta (1e-3) far below the noise of the log loss
(1e-2), the fit is a least-absolute-deviations regression, whose estimates are asymptotically
Normal with covariance (pi/2) sigma^2 (J^T J)^-1 for Normal errors (Koenker 2005, sec. 4.2),
J the Jacobian of the log loss in the latents at the truth. The tests compute that from the
law's own formula, independently of the module's optimiser.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from conftest import rng, seeded, simulate_law, true_params

import bayescale.fitting.leastsq as leastsq
from bayescale.core.errors import ConfigError, RunsTableError, UnknownNameError
from bayescale.fitting.leastsq import BOOTSTRAP, LeastSquaresFit, fit_least_squares
from bayescale.laws.base import DataSummary, evaluate, get_law, list_laws
from bayescale.runs.table import load_runs

NOISE = 0.01


@pytest.fixture(scope="module")
def ladder_fit() -> LeastSquaresFit:
    """The bundled Chinchilla-style ladder, 100 bootstrap replicates."""
    return fit_least_squares("chinchilla_ladder", "chinchilla", n_bootstrap=100, seed=0)


def _lad_sd(law, runs, noise: float) -> tuple[dict[str, float], np.ndarray]:
    """True latents of a simulated table and the asymptotic sd of their LAD estimates."""
    inputs = {k: runs[k].to_numpy() for k in law.inputs}
    centre = DataSummary.from_arrays(inputs, runs["loss"]).centre
    u = {k: np.log(v) - centre[k] for k, v in inputs.items()}
    z = {k: float(v) for k, v in law.from_params(true_params(law.name), centre, np).items()}
    jac = np.empty((len(runs), law.n_params))
    for j, k in enumerate(law.latents):
        h = 1e-6 * max(1.0, abs(z[k]))
        jac[:, j] = (
            law.log_loss({**z, k: z[k] + h}, u, np) - law.log_loss({**z, k: z[k] - h}, u, np)
        ) / (2 * h)
    cov = math.pi / 2 * noise**2 * np.linalg.inv(jac.T @ jac)
    return z, np.sqrt(np.diag(cov))


@pytest.mark.statistical
@pytest.mark.parametrize(
    ("law_name", "n_runs"), [("chinchilla", 60), ("power_n_e", 40), ("kaplan_nd", 40)]
)
def test_optimum_and_bootstrap_recover_the_truth(law_name, n_runs):
    law = get_law(law_name)
    runs = simulate_law(law_name, n_runs=n_runs, noise_sd=NOISE, seed=1)
    fitted = fit_least_squares(runs, law_name, n_bootstrap=100, seed=seeded(1))
    truth, sd = _lad_sd(law, runs, NOISE)
    z = np.array([(fitted.latents[k] - truth[k]) / s for k, s in zip(law.latents, sd, strict=True)])
    # Each latent within 4 asymptotic sds (two-sided 6e-5 each, < 4e-4 for five latents).
    assert np.all(np.abs(z) < 4), dict(zip(law.latents, z.round(2), strict=True))
    # The bootstrap measures the same spread: its sd from 100 replicates of an L1 fit is noisy
    # (0.5-2.4 times the asymptotic sd in 15 seeds of these three laws), so within a factor 4.
    boot_sd = np.array([float(fitted.boot_latents[k].std()) for k in law.latents])
    assert np.all((boot_sd > sd / 4) & (boot_sd < 4 * sd)), boot_sd / sd
    assert fitted.n_failed == 0 and fitted.n_bootstrap == 100
    # The noise scale: 1.4826 MAD of 40-60 residuals is within 50 % of the truth (its sd is
    # ~13 %, so 3.8 sds; 30 % was 2.3 sds and failed ~2 % of seeds).
    assert fitted.sigma == pytest.approx(NOISE, rel=0.5)
    # Reported parameters are the latents mapped to the papers' names.
    assert set(law.params) <= set(fitted.params)
    for name, value in law.params_of(fitted.latents, fitted.summary.centre).items():
        assert fitted.params[name] == pytest.approx(float(value), rel=1e-12)


def test_bundled_ladder_matches_an_independent_scipy_huber_fit(ladder_fit):
    """Hoffmann et al.'s fit written directly (as in docs/tutorials/least_squares.md)."""
    from scipy.optimize import minimize
    from scipy.special import huber, logsumexp
    from threadpoolctl import threadpool_limits

    runs = load_runs("chinchilla_ladder")
    log_n, log_d = np.log(runs["N"].values), np.log(runs["D"].values)
    log_l = np.log(runs["loss"].values)
    delta = 1e-3

    def objective(theta):
        a, b, e, alpha, beta = theta
        terms = np.stack([a - alpha * log_n, b - beta * log_d, np.full_like(log_n, e)])
        pred = logsumexp(terms, axis=0)
        r = pred - log_l
        share = np.exp(terms - pred)
        psi = np.clip(r, -delta, delta)
        grad = [
            *(psi * share).sum(axis=1),
            -(psi * share[0] * log_n).sum(),
            -(psi * share[1] * log_d).sum(),
        ]
        # Divided by delta so L-BFGS-B's tolerances are not reached before the optimum.
        return huber(delta, r).sum() / delta, np.array(grad) / delta

    grid = itertools.product([0, 10], [0, 10], [-1, 1], [0.2, 0.5], [0.2, 0.5])
    options = {"maxiter": 5000, "ftol": 1e-14, "gtol": 1e-10}
    # One BLAS thread: L-BFGS-B's tiny BLAS calls are otherwise slowed 20-50x on a busy machine.
    with threadpool_limits(limits=1, user_api="blas"):
        best = min(
            (minimize(objective, s, jac=True, method="L-BFGS-B", options=options) for s in grid),
            key=lambda r: r.fun,
        )
    a, b, e, alpha, beta = best.x
    oracle = {"E": np.exp(e), "A": np.exp(a), "B": np.exp(b), "alpha": alpha, "beta": beta}
    for name, value in oracle.items():
        assert ladder_fit.params[name] == pytest.approx(value, rel=1e-3), name
    assert ladder_fit.objective == pytest.approx(best.fun * delta, rel=1e-6)


def test_predictive_draws_shape_seed_and_widening(ladder_fit):
    runs = load_runs("chinchilla_ladder")
    inside = {"N": runs["N"].values[:5], "D": runs["D"].values[:5]}
    draws = ladder_fit.predictive_draws(inside, n=2000, seed=3)
    assert draws.shape == (5, 2000) and np.all(draws > 0)
    np.testing.assert_array_equal(draws, ladder_fit.predictive_draws(inside, n=2000, seed=3))
    assert not np.array_equal(draws, ladder_fit.predictive_draws(inside, n=2000, seed=4))
    # At the runs, the median draw is the fitted curve (residuals are balanced around it by the
    # L1-like fit): within 3 residual sds / sqrt(draws) plus the bootstrap's spread there.
    median = np.median(draws, axis=1)
    np.testing.assert_allclose(np.log(median / ladder_fit.predict(inside)), 0.0, atol=0.005)
    # Far beyond the largest run the band is wider than at the centre of the data.
    centre = {k: math.exp(ladder_fit.summary.centre[k]) for k in ("N", "D")}
    far = {"N": 1e12, "D": 2e13}
    (lo_c,), (hi_c,) = ladder_fit.interval(centre, prob=0.9)
    (lo_f,), (hi_f,) = ladder_fit.interval(far, prob=0.9)
    assert lo_c < ladder_fit.predict(centre)[0] < hi_c
    assert math.log(hi_f / lo_f) > 1.5 * math.log(hi_c / lo_c)
    table = ladder_fit.summary_table(prob=0.9)
    assert list(table.columns) == ["estimate", "sd", "lower", "upper"]
    assert np.all(table["lower"] <= table["upper"])
    assert ladder_fit.boot_params.sizes[BOOTSTRAP] == ladder_fit.n_bootstrap


@pytest.mark.statistical
def test_bootstrap_interval_covers_fresh_draws_at_the_nominal_rate():
    """30 power_n ladders; 20 fresh runs each at an interior point N = 1e8 (design 1e6-1e10).

    The count of fresh runs inside the 90% interval is binomial given each ladder's interval;
    across ladders the coverage varies (sd 0.055 over 100 ladders of this design, measured
    when writing this test), a design effect 1 + 19 * 0.055^2 / 0.09 = 1.6 < 2. So the covered
    fraction must lie within the 99.99% binomial bounds for 600 / 2 = 300 independent draws:
    0.9 +- 3.89 sqrt(0.09 / 300) = [0.833, 0.967]. Measured mean coverage over 100 ladders:
    0.896.
    """
    prob, n_ladders, n_fresh, noise = 0.9, 30, 20, 0.02
    point = {"N": 1e8}
    truth = float(evaluate("power_n", true_params("power_n"), point))
    generator = rng(7)
    covered = 0
    for seed in range(n_ladders):
        runs = simulate_law("power_n", n_runs=30, noise_sd=noise, seed=100 + seed)
        fitted = fit_least_squares(runs, "power_n", n_bootstrap=100, seed=seeded(seed))
        (lower,), (upper,) = fitted.interval(point, prob=prob)
        fresh = truth * np.exp(generator.normal(0.0, noise, size=n_fresh))
        covered += int(np.sum((fresh >= lower) & (fresh <= upper)))
    half = 3.89 * math.sqrt(prob * (1 - prob) / (n_ladders * n_fresh / 2))
    assert abs(covered / (n_ladders * n_fresh) - prob) < half, covered


@pytest.mark.parametrize("law_name", list_laws(), ids=str)
def test_every_registered_law_fits(law_name):
    law = get_law(law_name)
    runs = simulate_law(law_name, n_runs=30, noise_sd=NOISE, seed=2)
    fitted = fit_least_squares(runs, law_name, n_bootstrap=5, seed=0)
    assert set(law.params) <= set(fitted.params)
    assert all(np.isfinite(fitted.params[k]) for k in law.params)
    assert fitted.n_bootstrap + fitted.n_failed == 5
    # The optimum fits the runs to within the noise (a missed optimum leaves larger residuals).
    assert float(np.sqrt(np.mean(fitted.residuals**2))) < 2 * NOISE
    points = {k: runs[k].to_numpy()[:3] for k in law.inputs}
    draws = fitted.predictive_draws(points, n=50)
    assert draws.shape == (3, 50) and np.all(np.isfinite(draws) & (draws > 0))


def test_a_loaded_dataset_gives_the_same_fit_as_its_source():
    source = simulate_law("power_n", n_runs=20, noise_sd=NOISE, seed=5)
    from_frame = fit_least_squares(source, "power_n", n_bootstrap=20, seed=1)
    from_dataset = fit_least_squares(load_runs(source), "power_n", n_bootstrap=20, seed=1)
    assert from_frame.params == from_dataset.params
    np.testing.assert_array_equal(
        from_frame.boot_latents["alpha_N"].values, from_dataset.boot_latents["alpha_N"].values
    )
    renamed = source.rename(columns={"N": "params"})
    mapped = fit_least_squares(renamed, "power_n", columns="N=params", n_bootstrap=0)
    assert mapped.params == pytest.approx(from_frame.params, rel=1e-12)
    assert mapped.n_bootstrap == 0 and mapped.predictive_draws({"N": 1e8}, n=10).shape == (1, 10)


def test_failed_bootstrap_refits_are_counted_not_fatal(monkeypatch):
    """A refit that finds no finite optimum is dropped and counted in n_failed."""
    real = leastsq._Problem.minimise

    def flaky(self, theta0, weights):
        # Fail on every resample that leaves out the first run (about 1/e of them).
        if weights[0] == 0:
            return np.full(self.law.n_params, np.nan), math.inf
        return real(self, theta0, weights)

    monkeypatch.setattr(leastsq._Problem, "minimise", flaky)
    runs = simulate_law("power_n", n_runs=20, noise_sd=NOISE, seed=6)
    fitted = fit_least_squares(runs, "power_n", n_bootstrap=60, seed=0)
    assert 0 < fitted.n_failed < 60
    assert fitted.n_bootstrap + fitted.n_failed == 60
    assert np.all(np.isfinite(fitted.boot_latents["alpha_N"].values))
    assert fitted.predictive_draws({"N": 1e8}, n=100).shape == (1, 100)

    def broken(self, theta0, weights):
        return np.full(self.law.n_params, np.nan), math.inf

    monkeypatch.setattr(leastsq._Problem, "minimise", broken)
    with pytest.raises(RunsTableError, match="no finite optimum"):
        fit_least_squares(runs, "power_n", n_bootstrap=5)


def test_bad_input_raises_clear_errors(ladder_fit):
    few = simulate_law("chinchilla", n_runs=5, noise_sd=NOISE, seed=0)
    with pytest.raises(RunsTableError, match="has 5 parameters and needs at least 6"):
        fit_least_squares(few, "chinchilla", n_bootstrap=0)
    with pytest.raises(UnknownNameError, match=r"unknown law 'chinchila'.*'chinchilla'"):
        fit_least_squares(few, "chinchila")
    runs = simulate_law("power_n", n_runs=10, noise_sd=NOISE, seed=0)
    with pytest.raises(RunsTableError, match="no column 'D'"):
        fit_least_squares(runs, "power_d")
    with pytest.raises(ConfigError, match="huber_delta"):
        fit_least_squares(runs, "power_n", huber_delta=0.0)
    with pytest.raises(ConfigError, match="n_bootstrap"):
        fit_least_squares(runs, "power_n", n_bootstrap=-1)
    with pytest.raises(ConfigError, match="already loaded Dataset"):
        fit_least_squares(load_runs(runs), "power_n", columns="N=N")
    with pytest.raises(ConfigError, match="needs input 'D'"):
        ladder_fit.predictive_draws({"N": 1e9})
    with pytest.raises(ConfigError, match="positive and finite"):
        ladder_fit.interval({"N": -1.0, "D": 1e10})
    with pytest.raises(ConfigError, match="prob"):
        ladder_fit.interval({"N": 1e9, "D": 1e10}, prob=1.5)
    with pytest.raises(ConfigError, match="positive integer"):
        ladder_fit.predictive_draws({"N": 1e9, "D": 1e10}, n=0)
