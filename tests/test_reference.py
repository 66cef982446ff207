"""Reference laws: each published fit reproduces its paper's headline numbers, and works as a
prior and as an overlay."""

from __future__ import annotations

import json

import matplotlib
import numpy as np
import pandas as pd
import pytest
from conftest import far_from_truth, rng, seeded
from scipy.optimize import brentq, minimize_scalar

import bayescale as bs
from bayescale.cli.app import main
from bayescale.core.errors import ConfigError, UnknownNameError
from bayescale.laws.base import evaluate
from bayescale.laws.published import (
    effective_data,
    get_reference,
    list_references,
    plot_reference,
    reference_curve,
    reference_priors,
)
from bayescale.runs.table import PF_DAY_FLOPS

matplotlib.use("Agg")


def slope(x, y) -> float:
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])


# --------------------------------------------------------------------------------------------
# Every registered reference.


@pytest.mark.parametrize("name", list_references(), ids=list_references())
def test_every_reference_is_a_complete_usable_fit(name):
    ref = get_reference(name)
    law = ref.get_law()
    assert set(ref.params) == set(law.params)
    typical = {"N": 1e9, "D": 2e10, "C": 1.2e20, "step": 1e5, "batch": 5e5}
    inputs = {k: typical[k] for k in law.inputs}
    loss = float(evaluate(law, ref.params, inputs))
    assert 1.5 < loss < 5.0  # nats/token, the range every paper's ladders span
    doc = json.loads(json.dumps(ref.to_dict()))
    assert doc["source"] and "arXiv" in doc["source"] and doc["conventions"]
    assert set(doc["units"]) == set(law.params)
    for k, se in ref.se.items():
        assert se > 0 and k in ref.params


def test_unknown_reference_lists_the_valid_names():
    with pytest.raises(UnknownNameError, match="chinchilla_hoffmann2022"):
        get_reference("chinchila")


# --------------------------------------------------------------------------------------------
# Headline numbers.


def compute_optimal(params, budgets):
    """Brute force: minimise the Chinchilla loss over N at C = 6 N D for each budget."""
    out = []
    for c in budgets:

        def loss(log_n, c=c):
            n = np.exp(log_n)
            return float(evaluate("chinchilla", params, {"N": n, "D": c / (6 * n)}))

        res = minimize_scalar(loss, bounds=(np.log(1e6), np.log(1e14)), method="bounded",
                              options={"xatol": 1e-10})  # fmt: skip
        out.append(np.exp(res.x))
    return np.array(out)


def test_chinchilla_approach3_gives_n_opt_proportional_to_c_to_the_046():
    ref = get_reference("chinchilla_hoffmann2022")
    budgets = np.geomspace(1e18, 1e26, 9)
    n_opt = compute_optimal(ref.params, budgets)
    d_opt = budgets / (6 * n_opt)
    assert slope(budgets, n_opt) == pytest.approx(0.46, abs=0.005)
    assert slope(budgets, d_opt) == pytest.approx(0.54, abs=0.005)
    derived = ref.get_law().derived(ref.params, np)
    assert float(derived["a"]) == pytest.approx(0.46, abs=0.005)
    # Rounded values printed in the paper.
    p = ref.params
    assert (round(p["E"], 2), round(p["A"], 1), round(p["B"], 1)) == (1.69, 406.4, 410.7)
    assert (round(p["alpha"], 2), round(p["beta"], 2)) == (0.34, 0.28)


def test_kaplan_joint_fit_gives_d_above_5e3_n_to_the_074():
    """Kaplan eq. 4.4: keeping the overfitting penalty below 2% needs D >~ 5e3 N^0.74."""
    ref = get_reference("kaplan2020_nd")
    sizes = np.geomspace(1e7, 1e11, 9)

    def penalty(n, d):
        # deltaL = L(N, D) / L(N, infinite D) - 1, with L(N, inf) = (N_c / N)^alpha_N.
        limit = evaluate("power_n", {"alpha_N": ref.params["alpha_N"], "N_c": ref.params["N_c"]},
                         {"N": n})  # fmt: skip
        return float(evaluate("kaplan_nd", ref.params, {"N": n, "D": d}) / limit - 1)

    d_min = np.array([brentq(lambda log_d, n=n: penalty(n, np.exp(log_d)) - 0.02, 0, 80)
                      for n in sizes])  # fmt: skip
    d_min = np.exp(d_min)
    exponent = slope(sizes, d_min)
    prefactor = float(np.exp(np.mean(np.log(d_min) - exponent * np.log(sizes))))
    assert exponent == pytest.approx(0.74, abs=0.005)
    assert 5e3 <= prefactor <= 6e3  # "5 x 10^3"; the fitted constants give 5.5e3


def test_besiroglu_replication_exponents_and_allocation():
    ref = get_reference("chinchilla_besiroglu2024")
    derived = ref.get_law().derived(ref.params, np)
    assert float(derived["a"]) == pytest.approx(ref.extra["a"], abs=0.001)
    n_opt = compute_optimal(ref.params, np.geomspace(1e18, 1e26, 9))
    assert slope(np.geomspace(1e18, 1e26, 9), n_opt) == pytest.approx(0.513, abs=0.005)
    # The published 95% CI of E is its estimate +- 1.96 SE (the bootstrap was symmetric there).
    lo, hi = ref.interval["E"]
    assert lo == pytest.approx(ref.params["E"] - 1.96 * ref.se["E"], abs=0.002)
    assert hi == pytest.approx(ref.params["E"] + 1.96 * ref.se["E"], abs=0.002)
    for k, (lo, hi) in ref.interval.items():
        assert lo < ref.params[k] < hi
    # The replication's exponents differ from Hoffmann's by more than their standard errors.
    hoffmann = get_reference("chinchilla_hoffmann2022").params
    assert abs(ref.params["beta"] - hoffmann["beta"]) > 3 * ref.se["beta"]


def test_muennighoff_base_fit_and_repeated_data():
    ref = get_reference("muennighoff2023")
    p = ref.params
    assert (round(p["E"], 2), round(p["A"]), round(p["B"]), round(p["alpha"], 3)) == (
        1.87, 521, 1488, 0.353
    )  # fmt: skip
    derived = ref.get_law().derived(p, np)
    assert float(derived["a"]) == pytest.approx(0.5)  # alpha = beta: scale N and D equally
    # "Up to 4 epochs, repeated data is almost as good as new": under 0.5% more loss at
    # 20 tokens per parameter (N below the compute-optimal size of the unique data, so N' = N).
    for n in (1e8, 1e9, 1e10):
        unique = 20 * n
        repeated = evaluate("chinchilla", p, {"N": n, "D": effective_data(unique, 4 * unique)})
        fresh = evaluate("chinchilla", p, {"N": n, "D": 4 * unique})
        assert 0 < float(repeated / fresh - 1) < 0.005
    # Returns diminish: repeated data is never worth more than (1 + R*_D) unique epochs.
    r_star = ref.extra["R_star_D"]
    assert float(effective_data(1.0, 1e6)) == pytest.approx(1 + r_star)
    assert float(effective_data(1.0, 1.0)) == 1.0
    with pytest.raises(ConfigError):
        effective_data(2.0, 1.0)


def test_kaplan_compute_law_is_in_flops():
    ref = get_reference("kaplan2020_cmin")
    assert ref.params["C_c"] == pytest.approx(3.1e8 * PF_DAY_FLOPS)
    # L(C_min) at 1 PF-day, as in Kaplan's Figure 1: (3.1e8)^0.050 = 2.67 nats/token.
    assert float(evaluate("power_c", ref.params, {"C": PF_DAY_FLOPS})) == pytest.approx(3.1e8**0.05)


def test_kaplan_learning_curve_fits_agree_with_the_compute_frontier_fit():
    """Kaplan sec. 6: 1/alpha_C_min = 1/alpha_S + 1/alpha_B + 1/alpha_N, and B ~ C^0.24.

    The exponents of the L(N, S) and B_crit fits imply the compute-frontier exponent that
    Kaplan fitted directly to L(C_min) (0.050) within 5%, and the batch growth along it.
    """
    p = get_reference("kaplan2020_ns_bcrit").params
    alpha_c = 1.0 / (1.0 / p["alpha_N"] + 1.0 / p["alpha_S"] + 1.0 / p["alpha_B"])
    direct = get_reference("kaplan2020_cmin").params["alpha_C"]
    assert alpha_c == pytest.approx(direct, rel=0.05)
    assert alpha_c / p["alpha_B"] == pytest.approx(0.24, abs=0.01)
    ns = get_reference("kaplan2020_ns").params
    assert {k: ns[k] for k in ("alpha_N", "alpha_S", "N_c", "S_c")} == {
        k: p[k] for k in ("alpha_N", "alpha_S", "N_c", "S_c")
    }
    # Far above the critical batch, S_min -> S and the two laws agree.
    point = {"N": 1e9, "step": 1e5}
    far = evaluate("kaplan_ns_bcrit", p, point | {"batch": 1e12})
    assert float(far) == pytest.approx(float(evaluate("kaplan_ns", ns, point)), rel=1e-4)


# --------------------------------------------------------------------------------------------
# Priors.


def test_default_priors_are_on_the_exponents_in_the_laws_families():
    chin = reference_priors("chinchilla_hoffmann2022")
    assert set(chin) == {"alpha", "beta"}
    assert chin["alpha"].dist == "LogNormal"  # the law's default family: positive exponents
    assert chin["alpha"].params["mu"] == pytest.approx(np.log(0.33917084))
    assert chin["alpha"].params["sigma"] == pytest.approx(0.1, rel=0.05)  # 10% relative
    wide = reference_priors("chinchilla_hoffmann2022", widen=3)
    assert wide["beta"].params["sigma"] == pytest.approx(3 * chin["beta"].params["sigma"])
    kaplan = reference_priors("kaplan2020_n")
    assert kaplan["alpha_N"].dist == "Normal"  # keeps power_n conjugate
    assert kaplan["alpha_N"].params["mu"] == 0.076
    # Published standard errors are used where the paper gives them.
    besiroglu = reference_priors("chinchilla_besiroglu2024")
    assert besiroglu["alpha"].params["sigma"] == pytest.approx(0.015 / 0.348, rel=0.05)


def test_scale_priors_need_the_data_centre():
    with pytest.raises(ConfigError, match="centre"):
        reference_priors("kaplan2020_n", params=["alpha_N", "N_c"])
    centre = {"N": np.log(1e8)}
    priors = reference_priors("kaplan2020_n", params=["alpha_N", "N_c"], centre=centre)
    # log_L0 is the log loss at the centre of the data.
    expected = np.log(evaluate("power_n", get_reference("kaplan2020_n").params, {"N": 1e8}))
    assert priors["log_L0"].params["mu"] == pytest.approx(float(expected))
    e_prior = reference_priors("muennighoff2023", params=["E"])  # E needs no centre
    assert e_prior["log_E"].params["mu"] == pytest.approx(0.6254804)
    with pytest.raises(ConfigError, match="no single latent for 'N_c'"):
        reference_priors("kaplan2020_nd", params=["N_c"], centre={"N": 20.0, "D": 22.0})
    with pytest.raises(ConfigError, match="widen"):
        reference_priors("kaplan2020_n", widen=0)


@pytest.mark.statistical
def test_reference_prior_sharpens_a_fit_on_a_short_ladder():
    """Four runs over 1.5 decades pin alpha_N down loosely; Kaplan's value as a prior helps."""
    n = np.geomspace(1e7, 3e8, 4)
    truth = {"alpha_N": 0.08, "N_c": 5e13}
    noise = np.exp(rng(1).normal(0, 0.01, 4))
    runs = pd.DataFrame({"N": n, "loss": evaluate("power_n", truth, {"N": n}) * noise})
    options = {"sampler": "exact", "draws": 2000, "chains": 2, "seed": seeded(1)}
    plain = bs.fit(runs, "power_n", **options)
    informed = bs.fit(runs, "power_n", priors=reference_priors("kaplan2020_n"), **options)
    sd_plain = float(plain.posterior["alpha_N"].std())
    sd_informed = float(informed.posterior["alpha_N"].std())
    assert sd_informed < 0.7 * sd_plain
    assert informed.priors["alpha_N"].params["mu"] == 0.076
    assert not far_from_truth(informed.posterior, {"alpha_N": truth["alpha_N"]})


# --------------------------------------------------------------------------------------------
# Overlays.


def test_reference_curve_and_overlay():
    sizes = np.geomspace(1e6, 1e10, 5)
    curve = reference_curve("kaplan2020_n", {"N": sizes})
    assert curve.dims == ("N",)
    np.testing.assert_allclose(curve["N"].values, sizes)
    np.testing.assert_allclose(
        curve.values, evaluate("power_n", {"alpha_N": 0.076, "N_c": 8.8e13}, {"N": sizes})
    )
    both = reference_curve("chinchilla_hoffmann2022", {"N": sizes, "D": 2e10})
    assert both.dims == ("N",) and both.attrs["reference"] == "chinchilla_hoffmann2022"
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    line = plot_reference("chinchilla_hoffmann2022", {"N": sizes, "D": 2e10}, ax=ax, color="k")
    np.testing.assert_allclose(line.get_ydata(), both.values)
    assert line.get_label() == "chinchilla_hoffmann2022" and ax.get_xscale() == "log"
    plt.close(fig)
    with pytest.raises(ConfigError, match="needs input 'D'"):
        reference_curve("kaplan2020_nd", {"N": sizes})


# --------------------------------------------------------------------------------------------
# Command line.


def test_cli_lists_and_shows_references(capsys):
    assert main(["references", "--json"]) == 0
    docs = json.loads(capsys.readouterr().out)
    assert [d["name"] for d in docs] == list_references()
    assert main(["references", "kaplan2020_nd", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["params"]["alpha_N"] == 0.076
    assert doc["derived"]["alpha_N_over_alpha_D"] == pytest.approx(0.738, abs=0.001)
    assert main(["references"]) == 0
    assert "chinchilla_besiroglu2024" in capsys.readouterr().out


def test_cli_unknown_reference_exits_2(capsys):
    assert main(["references", "gpt5_2025"]) == 2
    err = capsys.readouterr().err
    assert "unknown reference fit" in err and err.count("\n") == 1
