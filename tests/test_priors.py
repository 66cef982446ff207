"""Priors as data: validation, serialisation, files, and agreement between PyMC and SciPy.

``Prior.scipy()`` is what the exact sampler integrates and what checks draw from, and
``Prior.create()`` is what the PyMC model samples: they must be the same distribution. The test
compares their log densities at points inside and outside each support.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from bayescale.core.errors import BayescaleError, ConfigError, UnknownNameError
from bayescale.core.priors import DISTRIBUTIONS, Prior, load_priors, merge_priors

#: One instance of every supported distribution, with non-default parameters, and points at
#: which to compare densities (including points outside the support, where both give -inf).
EXAMPLES: dict[str, tuple[Prior, list[float]]] = {
    "Normal": (Prior("Normal", mu=0.3, sigma=0.2), [-1.0, 0.0, 0.3, 0.9, 2.5]),
    "HalfNormal": (Prior("HalfNormal", sigma=0.1), [-0.1, 0.0, 0.01, 0.1, 0.45]),
    "LogNormal": (Prior("LogNormal", mu=np.log(0.3), sigma=0.6), [-0.5, 0.05, 0.3, 1.0, 4.0]),
    "Gamma": (Prior("Gamma", alpha=2.0, beta=0.1), [-1.0, 0.5, 5.0, 20.0, 80.0]),
    "Exponential": (Prior("Exponential", lam=20.0), [-0.1, 0.0, 0.01, 0.05, 0.4]),
    "StudentT": (Prior("StudentT", nu=4.0, mu=1.0, sigma=0.5), [-5.0, 0.0, 1.0, 1.7, 12.0]),
    "HalfStudentT": (Prior("HalfStudentT", nu=3.0, sigma=0.1), [-0.2, 0.0, 0.05, 0.3, 3.0]),
    "Uniform": (Prior("Uniform", lower=-1.0, upper=2.0), [-1.5, -0.5, 0.0, 1.9, 2.5]),
    "Beta": (Prior("Beta", alpha=2.0, beta=5.0), [-0.1, 0.05, 0.3, 0.8, 1.2]),
}


def test_examples_cover_every_distribution():
    assert set(EXAMPLES) == set(DISTRIBUTIONS)


# --------------------------------------------------------------------------------------------
# Validation: every mistake is a ConfigError that says what would be valid.


def test_unknown_distribution_lists_choices_and_suggests():
    with pytest.raises(ConfigError, match=r"unknown prior distribution 'Normall'") as info:
        Prior("Normall", mu=0.0, sigma=1.0)
    assert "Did you mean 'Normal'?" in str(info.value)
    assert "HalfNormal" in str(info.value)  # the valid choices are listed
    assert isinstance(info.value, BayescaleError)


def test_missing_parameter():
    with pytest.raises(
        ConfigError, match=r"prior Normal takes parameters \(mu, sigma\); got \(mu\)"
    ):
        Prior("Normal", mu=0.0)


def test_extra_parameter():
    with pytest.raises(ConfigError, match=r"takes parameters \(sigma\); got \(sigma, mu\)"):
        Prior("HalfNormal", sigma=1.0, mu=0.0)


@pytest.mark.parametrize(
    ("dist", "params", "bad"),
    [
        ("Normal", {"mu": 0.0, "sigma": 0.0}, "sigma"),
        ("HalfNormal", {"sigma": -0.1}, "sigma"),
        ("LogNormal", {"mu": 0.0, "sigma": -1.0}, "sigma"),
        ("Exponential", {"lam": 0.0}, "lam"),
        ("StudentT", {"nu": -1.0, "mu": 0.0, "sigma": 1.0}, "nu"),
        ("Gamma", {"alpha": 2.0, "beta": 0.0}, "beta"),
        ("Beta", {"alpha": 0.0, "beta": 1.0}, "alpha"),
    ],
)
def test_non_positive_scale(dist, params, bad):
    with pytest.raises(ConfigError, match=rf"parameter {bad} must be positive"):
        Prior(dist, **params)


def test_location_may_be_negative():
    assert Prior("Normal", mu=-3.0, sigma=1.0).params["mu"] == -3.0


@pytest.mark.parametrize("value", [float("inf"), float("nan")])
def test_non_finite_parameter(value):
    with pytest.raises(ConfigError, match="must be finite"):
        Prior("Normal", mu=value, sigma=1.0)


def test_non_numeric_parameter():
    with pytest.raises(ConfigError, match=r"parameter sigma must be a number, got 'wide'"):
        Prior("Normal", mu=0.0, sigma="wide")


def test_numeric_strings_and_ints_become_floats():
    prior = Prior("Normal", mu=1, sigma="0.5")
    assert prior.params == {"mu": 1.0, "sigma": 0.5}
    assert all(type(v) is float for v in prior.params.values())


def test_uniform_needs_lower_below_upper():
    with pytest.raises(ConfigError, match="lower < upper"):
        Prior("Uniform", lower=1.0, upper=1.0)


# --------------------------------------------------------------------------------------------
# Serialisation.


@pytest.mark.parametrize("dist", list(EXAMPLES))
def test_dict_round_trip(dist):
    prior, _ = EXAMPLES[dist]
    spec = prior.to_dict()
    assert spec["dist"] == dist
    back = Prior.from_dict(json.loads(json.dumps(spec)))  # survives JSON, as in a fit file
    assert back == prior
    assert hash(back) == hash(prior)


def test_equality_is_by_value():
    assert Prior("Normal", mu=0.0, sigma=1.0) == Prior("Normal", sigma=1, mu=0)
    assert Prior("Normal", mu=0.0, sigma=1.0) != Prior("Normal", mu=0.0, sigma=2.0)
    assert len({Prior("Normal", mu=0.0, sigma=1.0), Prior("Normal", mu=0, sigma=1)}) == 1


@pytest.mark.parametrize("spec", [{"mu": 0.0, "sigma": 1.0}, ["Normal", 0.0, 1.0], "Normal"])
def test_from_dict_needs_mapping_with_dist(spec):
    with pytest.raises(ConfigError, match="mapping with a 'dist' key"):
        Prior.from_dict(spec)


# --------------------------------------------------------------------------------------------
# PyMC and SciPy agree.


@pytest.mark.parametrize("dist", list(EXAMPLES))
def test_scipy_matches_pymc_logp(dist):
    import pymc as pm

    prior, points = EXAMPLES[dist]
    values = np.array(points)
    with pm.Model():
        rv = prior.create("x")
    pymc_logp = np.array([pm.logp(rv, v).eval() for v in values])
    scipy_logp = prior.scipy().logpdf(values)
    # Both -inf outside the support, equal (to rounding) inside it.
    np.testing.assert_array_equal(np.isneginf(pymc_logp), np.isneginf(scipy_logp))
    inside = np.isfinite(scipy_logp)
    assert inside.sum() >= 3
    np.testing.assert_allclose(pymc_logp[inside], scipy_logp[inside], rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("dist", ["HalfNormal", "HalfStudentT", "Exponential", "Gamma"])
def test_scipy_draws_follow_quantiles(dist):
    """Draws and quantiles of positive priors agree (used to size the exact sampler's grid)."""
    prior, _ = EXAMPLES[dist]
    frozen = prior.scipy()
    draws = frozen.rvs(size=200_000, random_state=np.random.default_rng(0))
    assert draws.min() >= 0
    for q in (0.1, 0.5, 0.9, 0.99):
        # Binomial standard error of an empirical CDF at n = 2e5 is <= 0.0012.
        assert np.mean(draws <= frozen.ppf(q)) == pytest.approx(q, abs=0.005)


def test_half_student_t_quantile_by_hand():
    # |T| with T ~ t_3 (scale 0.1): P(|T| <= 0.1 * 3.182) = 0.95, as t_3's 97.5 % point is 3.182.
    assert Prior("HalfStudentT", nu=3.0, sigma=0.1).scipy().ppf(0.95) == pytest.approx(
        0.31824, rel=1e-4
    )


# --------------------------------------------------------------------------------------------
# Files of overrides.

TOML_TEXT = """
[alpha_N]
dist = "Normal"
mu = 0.076
sigma = 0.02

[sigma]
dist = "HalfNormal"
sigma = 0.05
"""
EXPECTED = {
    "alpha_N": Prior("Normal", mu=0.076, sigma=0.02),
    "sigma": Prior("HalfNormal", sigma=0.05),
}


def test_load_priors_toml(tmp_path):
    path = tmp_path / "priors.toml"
    path.write_text(TOML_TEXT, encoding="utf-8")
    assert load_priors(path) == EXPECTED


def test_load_priors_json(tmp_path):
    path = tmp_path / "priors.json"
    path.write_text(json.dumps({k: p.to_dict() for k, p in EXPECTED.items()}), encoding="utf-8")
    assert load_priors(str(path)) == EXPECTED


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("broken.json", '{"alpha_N": {"dist": "Normal",', "is not valid json"),
        ("broken.toml", "[alpha_N\ndist = 'Normal'", "is not valid toml"),
        ("list.json", '[{"dist": "Normal", "mu": 0, "sigma": 1}]', "must map parameter names"),
        ("bad.json", '{"alpha_N": {"dist": "Gaussian", "mu": 0, "sigma": 1}}', "unknown prior"),
        ("nodist.toml", "[alpha_N]\nmu = 0.1\nsigma = 0.1\n", "'dist' key"),
        ("neg.toml", "[alpha_N]\ndist = 'Normal'\nmu = 0.1\nsigma = -1\n", "must be positive"),
    ],
)
def test_bad_priors_files(tmp_path, name, text, message):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=message):
        load_priors(path)


def test_missing_priors_file(tmp_path):
    with pytest.raises(ConfigError, match=r"cannot read priors file .*nope\.toml"):
        load_priors(tmp_path / "nope.toml")


# --------------------------------------------------------------------------------------------
# Overrides by name.


def test_merge_priors_overrides_by_name():
    defaults = {
        "alpha_N": Prior("Normal", mu=0.1, sigma=0.1),
        "sigma": Prior("HalfNormal", sigma=0.1),
    }
    merged = merge_priors(
        defaults, {"alpha_N": {"dist": "Normal", "mu": 0.07, "sigma": 0.01}}, law_name="power_n"
    )
    assert merged == {"alpha_N": Prior("Normal", mu=0.07, sigma=0.01), "sigma": defaults["sigma"]}
    assert defaults["alpha_N"] == Prior("Normal", mu=0.1, sigma=0.1)  # not modified in place


def test_merge_priors_unknown_name():
    defaults = {"alpha_N": Prior("Normal", mu=0.1, sigma=0.1)}
    with pytest.raises(UnknownNameError, match=r"no parameter 'alpha_n'.*Did you mean 'alpha_N'"):
        merge_priors(defaults, {"alpha_n": Prior("Normal", mu=0.0, sigma=1.0)}, law_name="power_n")


@pytest.mark.parametrize("dist", list(EXAMPLES))
def test_ppf_matches_scipy(dist):
    """The closed-form quantiles (used to start fits without SciPy) are SciPy's quantiles."""
    prior, _ = EXAMPLES[dist]
    q = np.array([1e-6, 0.02, 0.158655, 0.5, 0.841345, 0.99, 1 - 1e-9])
    np.testing.assert_allclose(prior.ppf(q), prior.scipy().ppf(q), rtol=1e-9, atol=1e-12)
