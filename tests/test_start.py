"""Starting points: the variable projection, the penalised least-squares optimum, the chains'
initial points and the check that every chain found the mode. No sampling here: the checks run
on the optimiser's output and on draws made from its Laplace approximation.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import design, simulate, simulate_law, true_params

from bayescale.laws.base import get_law
from bayescale.laws.chinchilla import chinchilla_projection
from bayescale.model.build import ModelData, build_model, default_priors
from bayescale.model.start import (
    FreeVar,
    check_mode,
    free_vars,
    initial_point_fn,
    levenberg_marquardt,
    start_point,
)

CHINCHILLA = get_law("chinchilla")


def _data(runs, law=CHINCHILLA) -> ModelData:
    return ModelData.from_arrays({k: runs[k].to_numpy() for k in law.inputs}, runs["loss"])


def _noiseless(n_runs: int, seed: int, **changes: float):
    params = {**true_params("chinchilla"), **changes}
    runs = simulate("chinchilla", params, design("chinchilla", n_runs, seed), 0.0, seed)
    return params, _data(runs)


# Shapes with every term visible over the design (4e7-1e10 parameters, 1e8-1e12 tokens): a
# steeper exponent comes with a larger amplitude, keeping the term's size at the centre.
SHAPES = {
    "published": {},
    "exponents swapped": {"alpha": 0.28, "beta": 0.34},
    "steep N": {"alpha": 0.45, "A": 3780.0},
    "steep D, low E": {"beta": 0.45, "B": 20500.0, "E": 1.2},
}


def test_projection_at_the_true_exponents_is_an_exact_linear_fit():
    params, data = _noiseless(60, seed=3)
    exact, rss = chinchilla_projection(
        data.u["N"],
        data.u["D"],
        np.exp(data.log_loss),
        alphas=np.array([params["alpha"]]),
        betas=np.array([params["beta"]]),
    )
    assert rss < 1e-10  # zero up to rounding
    recovered = CHINCHILLA.to_params(exact, data.summary.centre, np)
    for name in ("E", "A", "B"):
        assert recovered[name] == pytest.approx(params[name], rel=1e-6)


def test_projection_keeps_coefficients_non_negative():
    # No D term at all: the best B is 0, kept at a tiny positive floor so its log is finite.
    rng = np.random.default_rng(1)
    u_n, u_d = rng.uniform(-2, 2, 40), rng.uniform(-2, 2, 40)
    loss = 1.5 + 0.5 * np.exp(-0.4 * u_n)
    z, _ = chinchilla_projection(u_n, u_d, loss)
    assert all(np.isfinite(v) for v in z.values())
    assert math.exp(z["log_b0"]) < 1e-4
    assert math.exp(z["log_E"]) == pytest.approx(1.5, rel=0.02)


@pytest.mark.parametrize("shape", list(SHAPES), ids=list(SHAPES))
@pytest.mark.parametrize("seed", [0, 1])
def test_refined_start_recovers_every_parameter_on_noiseless_data(shape, seed):
    params, data = _noiseless(40, seed, **SHAPES[shape])
    start = start_point(CHINCHILLA, data, default_priors(CHINCHILLA, data.summary))
    got = CHINCHILLA.to_params(start.latents, data.summary.centre, np)
    for name, value in params.items():
        assert float(got[name]) == pytest.approx(value, rel=1e-3), name
    assert start.log_scale == ("alpha", "beta")  # LogNormal priors: sampled on the log scale


def test_start_is_near_the_posterior_and_its_scale_shrinks_with_data():
    sds = []
    for n in (30, 300):
        runs = simulate_law("chinchilla", n_runs=n, noise_sd=0.01, seed=4)
        data = _data(runs)
        start = start_point(CHINCHILLA, data, default_priors(CHINCHILLA, data.summary))
        assert 0.005 < start.sigma < 0.02  # residual scale of 1 % noise
        assert np.all(np.isfinite(start.cov)) and np.all(np.linalg.eigvalsh(start.cov) > 0)
        sds.append(np.sqrt(np.diag(start.cov)))
    # Ten times the runs: Laplace standard deviations shrink by about sqrt(10).
    assert np.all(sds[1] < sds[0] / 2)


@pytest.mark.parametrize("law_name", ["power_n", "power_d_e", "kaplan_nd"])
def test_start_of_laws_without_a_guess_fits_the_data(law_name):
    law = get_law(law_name)
    runs = simulate_law(law_name, n_runs=60, noise_sd=0.01, seed=6)
    data = _data(runs, law)
    start = start_point(law, data, default_priors(law, data.summary))
    assert start.sigma < 0.015  # close to the 1 % noise: the optimiser reached the data


@pytest.mark.parametrize(
    ("law_name", "seed"), [("chinchilla", 1), ("chinchilla", 2), ("kaplan_nd", 3), ("power_c_e", 4)]
)
def test_levenberg_marquardt_reaches_minpacks_optimum(law_name, seed):
    """The start's own optimiser finds the minimum MINPACK finds, from a poor start."""
    from scipy.optimize import least_squares

    law = get_law(law_name)
    data = _data(simulate_law(law_name, n_runs=40, noise_sd=0.02, seed=seed), law)
    names = list(law.latents)

    def residuals(theta):
        with np.errstate(all="ignore"):
            r = law.log_loss(dict(zip(names, theta, strict=True)), data.u, np) - data.log_loss
        # A weak ridge keeps the problem well posed where the data leave a direction flat.
        return np.concatenate([np.where(np.isfinite(r), r, 1e3), 1e-3 * theta])

    theta0 = np.array([0.3 if "alpha" in k or "beta" in k or "slope" in k else 0.0 for k in names])
    x, r, jac = levenberg_marquardt(residuals, theta0)
    ref = least_squares(residuals, theta0, method="lm", x_scale="jac")
    assert float(r @ r) == pytest.approx(2 * ref.cost, rel=1e-6)
    np.testing.assert_allclose(x, ref.x, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(jac, ref.jac, rtol=1e-4, atol=1e-6)


# --------------------------------------------------------------------------------------------
# Initial points
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def chinchilla_setup():
    runs = simulate_law("chinchilla", n_runs=50, noise_sd=0.01, seed=8)
    data = _data(runs)
    priors = default_priors(CHINCHILLA, data.summary)
    free = free_vars(build_model(CHINCHILLA, data, priors=priors))
    start = start_point(CHINCHILLA, data, priors)
    return data, priors, free, start


def test_free_variables_follow_the_model(chinchilla_setup):
    _, _, free, _ = chinchilla_setup
    assert [(v.value, v.transform) for v in free] == [
        ("log_E", None),
        ("log_a0", None),
        ("log_b0", None),
        ("alpha_log__", "log"),
        ("beta_log__", "log"),
        ("sigma_log__", "log"),
    ]
    assert [v.start for v in free] == list(range(6))


def test_initial_points_are_finite_seeded_and_spread_like_the_laplace_approximation(
    chinchilla_setup,
):
    data, priors, free, start = chinchilla_setup
    init = initial_point_fn(CHINCHILLA, free, start, priors, n_dim=6)
    points = np.array([init(seed) for seed in range(400)])
    assert np.all(np.isfinite(points))
    np.testing.assert_array_equal(init(7), init(7))
    assert not np.array_equal(init(7), init(8))
    latents = points[:, :5]
    assert np.allclose(latents.mean(axis=0), start.theta, atol=0.5 * np.sqrt(np.diag(start.cov)))
    ratio = latents.std(axis=0) / np.sqrt(np.diag(start.cov))
    assert np.all((ratio > 1.6) & (ratio < 2.4))  # OVERDISPERSION = 2
    # Back in the law's space every start predicts the data to within a few percent.
    for x in points[:20]:
        z = {k: x[i] for i, k in enumerate(CHINCHILLA.latents)}
        z["alpha"], z["beta"] = math.exp(z["alpha"]), math.exp(z["beta"])
        residual = CHINCHILLA.log_loss(z, data.u, np) - data.log_loss
        assert np.sqrt(np.mean(residual**2)) < 0.2
    assert np.exp(points[:, 5]).mean() == pytest.approx(start.sigma, rel=0.3)


def test_layouts_the_start_cannot_place_fall_back_to_pymc(chinchilla_setup):
    _, priors, free, start = chinchilla_setup
    grouped = (*free[:3], FreeVar("alpha_free", "alpha_free", None, 3, 6))
    assert initial_point_fn(CHINCHILLA, grouped, start, priors, n_dim=6) is None
    interval = (
        *free[:3],
        FreeVar("alpha_interval__", "alpha", "IntervalTransform", 3, 4),
        *free[4:],
    )
    assert initial_point_fn(CHINCHILLA, interval, start, priors, n_dim=6) is None
    assert initial_point_fn(CHINCHILLA, free, start, priors, n_dim=7) is None


# --------------------------------------------------------------------------------------------
# The mode check
# --------------------------------------------------------------------------------------------
def _laplace_draws(start, rng, n_draws=200):
    theta = rng.multivariate_normal(start.theta, start.cov, size=n_draws)
    z = {k: theta[:, i] for i, k in enumerate(CHINCHILLA.latents)}
    for k in start.log_scale:
        z[k] = np.exp(z[k])
    return z


def test_mode_check_passes_chains_at_the_optimum_and_flags_a_stuck_one(chinchilla_setup):
    data, priors, _, start = chinchilla_setup
    rng = np.random.default_rng(0)
    chains = [_laplace_draws(start, rng) for _ in range(3)]
    stack = {k: np.stack([c[k] for c in chains]) for k in CHINCHILLA.latents}
    assert check_mode(CHINCHILLA, data, priors, start, stack) == []
    # A chain stranded in another corner: the N and D terms' exponents traded.
    stuck = dict(chains[2])
    stuck["alpha"], stuck["beta"] = chains[2]["beta"] * 1.5, chains[2]["alpha"] * 0.5
    stack = {k: np.stack([chains[0][k], chains[1][k], stuck[k]]) for k in CHINCHILLA.latents}
    assert check_mode(CHINCHILLA, data, priors, start, stack) == [2]
