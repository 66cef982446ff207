"""A law defined outside the package, in one place, gets every capability: fit, predict, report.

The law is Kaplan's L(N) written again under another name, in the sampler's coordinates the
built-in laws use (log loss at the data's centre and the exponent), registered for this module
only. Nothing else in the package is told about it.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from types import ModuleType

import numpy as np
import pytest
from conftest import seeded, simulate

import bayescale as bs
from bayescale.core.errors import SamplingWarning
from bayescale.core.priors import Prior
from bayescale.laws import Law, get_law, list_laws, register_law, unregister_law
from bayescale.report import write_report

TRUTH = {"a": 0.076, "N_c": 8.8e13}


def _log_loss(z: Mapping, u: Mapping, xp: ModuleType):
    return z["log_L0"] - z["a"] * u["N"]


TOY = Law(
    name="toy_power",
    formula=r"L = (N_c/N)^{a}",
    inputs=("N",),
    params=("a", "N_c"),
    latents=("log_L0", "a"),
    log_loss=_log_loss,
    to_params=lambda z, c, xp: {"a": z["a"], "N_c": xp.exp(c["N"] + z["log_L0"] / z["a"])},
    from_params=lambda p, c, xp: {
        "log_L0": xp.asarray(p["a"]) * (xp.log(p["N_c"]) - c["N"]),
        "a": xp.asarray(p["a"]),
    },
    default_priors=lambda s: {
        "log_L0": Prior("Normal", mu=s.mean_log_loss, sigma=0.5),
        "a": Prior("Normal", mu=0.1, sigma=0.1),
    },
    units={"a": "dimensionless", "N_c": "parameters"},
    log_linear=True,
)


@pytest.fixture(scope="module", autouse=True)
def toy_law():
    register_law(TOY)
    yield TOY
    unregister_law(TOY.name)


@pytest.fixture(scope="module")
def runs():
    n = np.geomspace(1e6, 1e10, 16)
    return simulate(
        "power_n", {"alpha_N": TRUTH["a"], "N_c": TRUTH["N_c"]}, {"N": n}, 0.01, seeded(5)
    )


def test_registered_law_is_listed_and_found():
    assert "toy_power" in list_laws()
    assert get_law("toy_power") is TOY
    np.testing.assert_allclose(
        bs.evaluate("toy_power", TRUTH, {"N": 1e9}),
        bs.evaluate("power_n", {"alpha_N": TRUTH["a"], "N_c": TRUTH["N_c"]}, {"N": 1e9}),
    )


@pytest.mark.parametrize("sampler", ["exact", "nutpie"])
def test_fit_recovers_the_exponent_and_predicts(runs, sampler):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplingWarning)
        fit = bs.fit(runs, "toy_power", sampler=sampler, draws=300, tune=300, chains=2, seed=1)
    row = fit.summary().loc["a"]
    assert row["hdi_low"] < TRUTH["a"] < row["hdi_high"]
    assert row["hdi_high"] - row["hdi_low"] < 0.02
    hdi = bs.predict(fit, {"N": [1e11]}).summary()["hdi"].sel(quantity="expected")
    truth = float(bs.evaluate("toy_power", TRUTH, {"N": 1e11}))
    lo, hi = (float(hdi.sel(ci_bound=b).squeeze()) for b in ("lower", "upper"))
    assert lo < truth < hi


def test_saved_fit_reloads_and_reports(runs, tmp_path):
    fit = bs.fit(runs, "toy_power", sampler="exact", draws=300, chains=2, seed=1)
    path = fit.save(tmp_path / "toy.nc")
    again = bs.load_fit(path)
    assert again.law is TOY
    html = write_report([path], tmp_path / "toy.html", N=[1e11]).read_text(encoding="utf-8")
    assert "toy_power" in html and "<img" in html
    assert "not drawn" not in html
