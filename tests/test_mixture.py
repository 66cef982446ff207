"""Exact intervals of a mixture over posterior draws (bayescale.core.mixture).

Oracles: a single log-normal component, whose HDI on the loss scale solves two equations in
closed form; the defining identities of a quantile and an HDI (mass and equal end density);
and, for mixtures, a very large sample of the mixture itself.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import Z_MAX, rng
from scipy import optimize, stats

from bayescale.core.mixture import mixture_cdf, mixture_hdi, mixture_mean, mixture_quantile
from bayescale.core.stats import hdi


def lognormal_hdi(mu: float, sd: float, prob: float) -> tuple[float, float]:
    """HDI of LogNormal(mu, sd): the ends of equal density that hold prob (by brentq)."""
    dist = stats.lognorm(s=sd, scale=np.exp(mu))

    def density_gap(a: float) -> float:
        return dist.logpdf(dist.ppf(a)) - dist.logpdf(dist.ppf(a + prob))

    a = optimize.brentq(density_gap, 1e-12, 1 - prob - 1e-12, xtol=1e-15, rtol=1e-15)
    return float(dist.ppf(a)), float(dist.ppf(a + prob))


@pytest.mark.parametrize("sd", [0.01, 0.1, 0.5])
@pytest.mark.parametrize("prob", [0.5, 0.94, 0.99])
def test_one_component_is_the_lognormal_hdi(sd, prob):
    lo, hi = mixture_hdi(np.full((1, 1), 0.7), sd, prob)[0]
    expected = lognormal_hdi(0.7, sd, prob)
    np.testing.assert_allclose([lo, hi], expected, rtol=1e-7)
    # Skewed to the left of the equal-tailed interval, as a log-normal's HDI is.
    assert lo < np.exp(0.7 + sd * stats.norm.ppf((1 - prob) / 2))


def mixture(seed: int, n: int = 500, points: int = 3):
    r = rng(seed)
    loc = r.normal(np.linspace(0.0, 1.0, points), 0.05, (n, points))
    scale = np.exp(r.normal(np.log(0.03), 0.4, (n, 1)))
    df = r.uniform(2.5, 10.0, (n, 1))
    return loc, scale, df


@pytest.mark.parametrize("student", [False, True])
def test_hdi_holds_prob_and_its_ends_have_equal_density(student):
    loc, scale, df = mixture(0)
    df = df if student else None
    prob = 0.94
    bounds = mixture_hdi(loc, scale, prob, df)
    y_lo, y_hi = np.log(bounds[:, 0]), np.log(bounds[:, 1])
    mass = mixture_cdf(y_hi, loc, scale, df) - mixture_cdf(y_lo, loc, scale, df)
    np.testing.assert_allclose(mass, prob, atol=1e-10)
    # The narrowest interval: shifting the lower tail mass either way widens it.
    for shift in (-1e-3, 1e-3):
        a = mixture_cdf(y_lo, loc, scale, df) + shift
        other = np.exp(mixture_quantile(a + prob, loc, scale, df)) - np.exp(
            mixture_quantile(a, loc, scale, df)
        )
        assert np.all(other > bounds[:, 1] - bounds[:, 0])


@pytest.mark.parametrize("student", [False, True])
def test_quantile_inverts_the_cdf(student):
    loc, scale, df = mixture(1)
    df = df if student else None
    for p in (1e-4, 0.03, 0.5, 0.97, 1 - 1e-4):
        q = mixture_quantile(p, loc, scale, df)
        np.testing.assert_allclose(mixture_cdf(q, loc, scale, df), p, atol=1e-12)


@pytest.mark.statistical
@pytest.mark.parametrize("student", [False, True])
def test_hdi_and_mean_match_a_large_sample_of_the_mixture(student):
    loc, scale, df = mixture(2, n=400)
    df = df if student else None
    r = rng(3)
    per = 2000  # 800,000 draws of the mixture per point
    noise = (
        r.standard_t(df[..., None], (400, 1, per)) if student else r.standard_normal((400, 1, per))
    )
    sample = np.exp(loc[..., None] + scale[..., None] * noise)
    flat = sample.transpose(1, 0, 2).reshape(3, 1, -1).transpose(1, 2, 0)
    draws, n = flat[0], flat.shape[1]
    bounds = mixture_hdi(loc, scale, 0.94, df)
    # The sharp check: the sample's mass below each end is the mixture's CDF there, to binomial
    # error (conservative: the sample is stratified, 2,000 draws per component).
    for end in bounds.T:
        p = mixture_cdf(np.log(end), loc, scale, df)
        counted = (draws < end).mean(axis=0)
        assert np.all(np.abs(counted - p) <= Z_MAX * np.sqrt(p * (1 - p) / n)), (counted, p)
    # The sample's own shortest interval converges only as n^(-1/3) (heavy t tails: its ends
    # were off by up to 0.2 % over 20 seeds, where the CDF check stayed within 2.6 sd), so it
    # is a coarse check of the same ends.
    np.testing.assert_allclose(bounds, hdi(flat, 0.94), rtol=1e-2)
    if not student:
        np.testing.assert_allclose(mixture_mean(loc, scale), draws.mean(axis=0), rtol=1e-3)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="prob"):
        mixture_hdi(np.zeros((2, 1)), 0.1, 1.0)
    with pytest.raises(ValueError, match="scales"):
        mixture_hdi(np.zeros((2, 1)), 0.0, 0.9)
