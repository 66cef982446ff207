"""The exact posterior of log-linear laws, and NUTS checked against it.

For ``power_n``, ``power_d`` and ``power_c`` with Normal priors on both latents the posterior is
known in closed form given sigma (see :mod:`bayescale.fitting.exact`). That makes two checks
possible that no other law allows:

* NUTS (nutpie, the default sampler) must reproduce the exact means within Monte Carlo error
  and the exact standard deviations within 10 %, under the *same* priors;
* the exact path itself is checked against a quadrature written here in a different algebraic
  form (marginal covariance ``X V0 X' + sigma^2 I`` instead of the posterior precision), on a
  fixed, very wide sigma grid, in the hard case of three runs where sigma is barely identified.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import rng, seeded, simulate, simulate_law, true_params
from scipy import stats

import bayescale as bs
from bayescale.core.errors import ConfigError
from bayescale.core.priors import Prior
from bayescale.fitting.exact import exact_posterior
from bayescale.laws.base import get_law
from bayescale.model.build import ModelData, default_priors

LOG_LINEAR = ["power_n", "power_d", "power_c"]
#: Same ladder size as test_recovery, so the compiled nutpie models are reused.
N_RUNS = 50
SEED = 21
DRAWS, CHAINS = 1000, 4


def _model_data(runs, law: str) -> ModelData:
    inputs = {k: runs[k].to_numpy() for k in get_law(law).inputs}
    return ModelData.from_arrays(inputs, runs["loss"].to_numpy())


@pytest.fixture(scope="module", params=LOG_LINEAR, ids=LOG_LINEAR)
def nuts_and_exact(request):
    law = request.param
    runs = simulate_law(law, n_runs=N_RUNS, noise_sd=0.02, seed=SEED)
    nuts = bs.fit(runs, law, draws=DRAWS, tune=1000, chains=CHAINS, seed=seeded(SEED))
    # The oracle uses the priors the NUTS fit stored: the same posterior, two ways.
    exact = exact_posterior(nuts.law, _model_data(runs, law), nuts.priors)
    return law, runs, nuts, exact.moments()


@pytest.mark.statistical
def test_nuts_matches_exact_posterior(nuts_and_exact):
    law, _, nuts, moments = nuts_and_exact
    names = [*nuts.law.latents, "sigma"]
    table = nuts.summary(var_names=names)
    for name in names:
        mean, sd = moments[name]
        mcse = table.loc[name, "mcse_mean"]
        # MCSE of a mean is ~sd / sqrt(ESS); with ESS in the thousands, 4 MCSE is a tight check.
        assert 0 < mcse < sd / 10
        assert abs(table.loc[name, "mean"] - mean) < 4 * mcse, (
            f"{law} {name}: NUTS mean {table.loc[name, 'mean']:.6g}, exact {mean:.6g}, "
            f"MCSE {mcse:.2g}"
        )
        assert table.loc[name, "sd"] == pytest.approx(sd, rel=0.10), f"{law} {name} sd"


@pytest.mark.statistical
def test_exact_sampler_draws_match_moments(nuts_and_exact):
    law, runs, nuts, moments = nuts_and_exact
    fitted = bs.fit(runs, law, sampler="exact", draws=DRAWS, chains=CHAINS, seed=seeded(SEED))
    assert fitted.priors == nuts.priors
    assert fitted.settings["sampler"] == "exact"
    assert fitted.diagnostics.divergences == 0
    n = DRAWS * CHAINS
    for name in [*fitted.law.latents, "sigma"]:
        draws = fitted.posterior[name].values
        assert draws.shape == (CHAINS, DRAWS)
        mean, sd = moments[name]
        # Exact draws are independent: the standard error of their mean is sd / sqrt(n).
        assert abs(draws.mean() - mean) < 4 * sd / np.sqrt(n), f"{law} {name} mean"
        # The sample sd of n = 4000 independent draws has relative error ~1/sqrt(2n) ~ 1.1 %.
        assert draws.std() == pytest.approx(sd, rel=0.05), f"{law} {name} sd"
    # Paper parameters are derived from the latents exactly as in the NUTS model.
    z = {k: fitted.posterior[k].values for k in fitted.law.latents}
    params = fitted.law.to_params(z, fitted.data_summary.centre, np)
    for name in fitted.law.params:
        np.testing.assert_allclose(fitted.posterior[name].values, params[name], rtol=1e-12)


def test_exact_sampler_is_seeded():
    runs = simulate_law("power_n", n_runs=N_RUNS, noise_sd=0.02, seed=SEED)
    one = bs.fit(runs, "power_n", sampler="exact", draws=100, chains=2, seed=1)
    same = bs.fit(runs, "power_n", sampler="exact", draws=100, chains=2, seed=1)
    other = bs.fit(runs, "power_n", sampler="exact", draws=100, chains=2, seed=2)
    # Independent draws: R-hat and ESS of 2 x 100 draws are Monte Carlo noise, not trouble, so
    # the exact sampler reports no problems (and issues no SamplingWarning) even this small.
    assert one.diagnostics.problems == []
    np.testing.assert_array_equal(one.posterior["alpha_N"], same.posterior["alpha_N"])
    assert not np.allclose(one.posterior["alpha_N"], other.posterior["alpha_N"])


# --------------------------------------------------------------------------------------------
# When the exact path does not apply, it says so instead of sampling the wrong model.

SMALL = simulate_law("power_n_e", n_runs=12, noise_sd=0.02, seed=1)


def test_exact_refuses_non_log_linear_law():
    with pytest.raises(ConfigError, match=r"log-linear law.*'power_n_e'"):
        bs.fit(SMALL, "power_n_e", sampler="exact")


def test_exact_refuses_student_t():
    with pytest.raises(ConfigError, match="normal likelihood"):
        bs.fit(SMALL, "power_n", sampler="exact", likelihood="student_t")


def test_exact_refuses_non_normal_exponent_prior():
    lognormal = {"alpha_N": {"dist": "LogNormal", "mu": np.log(0.1), "sigma": 0.5}}
    with pytest.raises(ConfigError, match=r"Normal prior on 'alpha_N' \(got LogNormal\)"):
        bs.fit(SMALL, "power_n", sampler="exact", priors=lognormal)


def test_exact_accepts_any_sigma_prior():
    """Only the two latents need Normal priors; sigma's prior is integrated numerically."""
    priors = {"sigma": {"dist": "Exponential", "lam": 20.0}}
    fitted = bs.fit(SMALL, "power_n", sampler="exact", draws=1000, chains=2, priors=priors)
    assert fitted.priors["sigma"] == Prior("Exponential", lam=20.0)


# --------------------------------------------------------------------------------------------
# Three runs: sigma is barely identified and its posterior spans decades.


def _quadrature_moments(u, y, m0, v0, sigma_logpdf) -> dict[str, tuple[float, float]]:
    """Posterior moments by brute force, written independently of bayescale.fitting.exact.

    Marginalising the Normal latents beta ~ N(m0, diag(v0)) out of y = X beta + eps gives
    y | sigma ~ N(X m0, K + sigma^2 I) with K = X V0 X'. With K = Q diag(lam) Q', every
    quantity is a cheap function of sigma, evaluated on a fixed grid of log sigma from 1e-9
    to 1e4 (far wider than any posterior here) and integrated by summation.
    """
    x = np.column_stack([np.ones_like(u), -u])
    v0m = np.diag(v0)
    lam, q = np.linalg.eigh(x @ v0m @ x.T)
    lam = np.clip(lam, 0.0, None)
    r = q.T @ (y - x @ m0)
    log_s = np.linspace(np.log(1e-9), np.log(1e4), 400_001)
    s2 = np.exp(2 * log_s)[:, None]
    d = lam[None] + s2  # eigenvalues of the marginal covariance, per grid point
    log_marg = -0.5 * (y.size * np.log(2 * np.pi) + np.log(d).sum(1) + (r**2 / d).sum(1))
    log_w = log_marg + sigma_logpdf(np.exp(log_s)) + log_s  # density of log sigma
    w = np.exp(log_w - log_w.max())
    w /= w.sum()
    gain = v0m @ x.T @ q  # V0 X' Q
    cond_mean = m0[None] + (gain[None] * (r[None] / d)[:, None, :]).sum(-1)
    # Conditional covariance V0 - gain diag(1/d) gain'.
    cond_cov = v0m[None] - np.einsum("ik,gk,jk->gij", gain, 1.0 / d, gain)
    mean = w @ cond_mean
    second = np.einsum("g,gij->ij", w, cond_cov) + np.einsum("g,gi,gj->ij", w, cond_mean, cond_mean)
    sd = np.sqrt(np.diag(second) - mean**2)
    sigma = np.exp(log_s)
    s_mean = w @ sigma
    s_sd = np.sqrt(w @ sigma**2 - s_mean**2)
    return {
        "intercept": (mean[0], sd[0]),
        "exponent": (mean[1], sd[1]),
        "sigma": (s_mean, s_sd),
    }


SIGMA_PRIORS = {
    "halfnormal": (Prior("HalfNormal", sigma=0.1), stats.halfnorm(scale=0.1).logpdf),
    # Half-t has no scipy frozen form; write its density out: 2 t_3(x / 0.1) / 0.1 for x >= 0.
    "halfstudentt": (
        Prior("HalfStudentT", nu=3.0, sigma=0.1),
        lambda s: np.log(2.0) + stats.t(df=3.0, scale=0.1).logpdf(s),
    ),
    "exponential": (Prior("Exponential", lam=10.0), stats.expon(scale=0.1).logpdf),
}


@pytest.mark.statistical
@pytest.mark.parametrize("sigma_prior", list(SIGMA_PRIORS), ids=list(SIGMA_PRIORS))
def test_three_runs_prior_dominated(sigma_prior):
    """Three nearly collinear runs over a factor 2 in N: the exponent is mostly prior and the
    sigma posterior runs from the tiny residual scatter up to the prior's scale. The exact
    grid must cover all of it (a grid cut at a few times the residual scatter gets sigma's
    mean wrong by a third under a heavy-tailed prior)."""
    law = get_law("power_n")
    runs = simulate(
        "power_n", true_params("power_n"), {"N": np.array([1e8, 1.4e8, 2e8])}, 0.001, seed=3
    )
    data = _model_data(runs, "power_n")
    priors = default_priors(law, data.summary)
    priors["sigma"], logpdf = SIGMA_PRIORS[sigma_prior]
    post = exact_posterior(law, data, priors)
    moments = post.moments()

    # The grid ends carry no mass: it was not truncated.
    assert post.weights[0] < 1e-12 and post.weights[-1] < 1e-12
    assert post.weights.sum() == pytest.approx(1.0)

    m0 = np.array([priors[k].params["mu"] for k in law.latents])
    v0 = np.array([priors[k].params["sigma"] ** 2 for k in law.latents])
    oracle = _quadrature_moments(data.u["N"], data.log_loss, m0, v0, logpdf)
    for name, key in (("log_L0", "intercept"), ("alpha_N", "exponent"), ("sigma", "sigma")):
        assert moments[name][0] == pytest.approx(oracle[key][0], rel=2e-3, abs=1e-6), name
        assert moments[name][1] == pytest.approx(oracle[key][1], rel=2e-3), name

    # Prior-dominated: the exponent keeps a large share of its prior sd (at least 0.2 of it in
    # 300 seeds; the data alone would pin it to ~0.02 of it), and sigma's posterior is as wide
    # as its mean (a sharply identified sigma would have sd << mean).
    assert moments["alpha_N"][1] > 0.15 * priors["alpha_N"].params["sigma"]
    assert moments["sigma"][1] > 0.5 * moments["sigma"][0]

    # Draws from the grid mixture follow the same posterior. (Latents only: through
    # fit(sampler="exact") the reported N_c = exp(c + log_L0 / alpha_N) overflows for the
    # draws with alpha_N near 0, which a prior-dominated exponent has.)
    n = 20_000
    draws = post.sample(n, rng(0))
    for name in ("log_L0", "alpha_N", "sigma"):
        mean, sd = moments[name]
        assert abs(draws[name].mean() - mean) < 4.5 * sd / np.sqrt(n), name
        # Heavy-tailed sigma: the sd of its draws converges slowly, so allow 10 %.
        assert draws[name].std() == pytest.approx(sd, rel=0.10), name
