"""Compute-optimal allocation (C = 6ND) and the compute-efficient frontier.

The chinchilla fit is conftest's ``chinchilla_ladder_fit`` of the bundled ``chinchilla_ladder``
(simulated from Hoffmann et al.'s Approach 3 parameters), shared with ``test_overfit``; the
kaplan_nd fit is of the bundled ``kaplan_ladder``, with the same settings as ``test_overfit``'s
so the whole suite compiles each model shape once.
"""

from __future__ import annotations

import dataclasses
import json
import re

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from conftest import TRUE_PARAMS, far_from_truth, seeded, simulate
from scipy.optimize import minimize_scalar

import bayescale as bs
from bayescale.cli.app import main
from bayescale.core.errors import ConfigError, RunsTableError
from bayescale.laws.base import evaluate
from bayescale.questions.optimal import compute_frontier, optimal
from bayescale.runs.table import PF_DAY_FLOPS

CHINCHILLA = TRUE_PARAMS["chinchilla"]
KAPLAN = TRUE_PARAMS["kaplan_nd"]
BUDGETS = np.array([1e19, 1e22, 1e25])


@pytest.fixture(scope="module")
def kaplan_fit():
    return bs.fit("kaplan_ladder", "kaplan_nd", draws=500, tune=500, chains=4, seed=seeded(0))


@pytest.fixture(scope="module")
def fits(chinchilla_ladder_fit, kaplan_fit):
    return {"chinchilla": chinchilla_ladder_fit, "kaplan_nd": kaplan_fit}


# --------------------------------------------------------------------------------------------
# Allocation exponents recover the truth


@pytest.mark.statistical
def test_chinchilla_allocation_exponents_contain_the_truth(chinchilla_ladder_fit):
    result = optimal(chinchilla_ladder_fit, 1e21)
    alpha, beta = CHINCHILLA["alpha"], CHINCHILLA["beta"]
    truth = {"a": beta / (alpha + beta), "b": alpha / (alpha + beta)}
    assert not far_from_truth(result.draws, truth)
    doc = result.to_dict()
    a, b = doc["exponents"]["a"], doc["exponents"]["b"]
    assert a["hi"] - a["lo"] < 0.15  # informative: the prior alone spans most of (0, 1)
    assert a["mean"] + b["mean"] == pytest.approx(1.0)
    assert doc["p_interior"] == 1.0 and "note" not in doc


@pytest.mark.statistical
def test_kaplan_allocation_exponents_contain_the_truth(kaplan_fit):
    truth = {"a": KAPLAN["alpha_D"] / (KAPLAN["alpha_N"] + KAPLAN["alpha_D"])}
    assert not far_from_truth(optimal(kaplan_fit, 1e21).draws, truth)


@pytest.mark.parametrize("law", ["chinchilla", "kaplan_nd"])
def test_closed_form_agrees_with_brute_force_minimisation(law, fits):
    f = fits[law]
    result = optimal(f, BUDGETS)
    post = f.posterior
    rng = np.random.default_rng(0)
    for _ in range(15):
        c, d = rng.integers(post.sizes["chain"]), rng.integers(post.sizes["draw"])
        params = {k: float(post[k].values[c, d]) for k in f.law.params}
        for j, budget in enumerate(BUDGETS):

            def loss(log_n, params=params, budget=budget):
                n = np.exp(log_n)
                return float(evaluate(law, params, {"N": n, "D": budget / (6 * n)})[()])

            best = minimize_scalar(
                loss, bounds=(np.log(1e3), np.log(1e18)), method="bounded", options={"xatol": 1e-9}
            )
            n_opt = float(result.draws["N_opt"].values[c, d, j])
            assert n_opt == pytest.approx(np.exp(best.x), rel=1e-3)
            assert float(result.draws["L_opt"].values[c, d, j]) == pytest.approx(best.fun, rel=1e-9)
            assert n_opt * float(result.draws["D_opt"].values[c, d, j]) * 6 == pytest.approx(budget)


def test_allocation_follows_its_exponents(chinchilla_ladder_fit):
    result = optimal(chinchilla_ladder_fit, [1e20, 1e24])
    d = result.draws
    for name, exponent in (("N_opt", d["a"]), ("D_opt", d["b"])):
        slope = np.log(d[name].isel(C=1) / d[name].isel(C=0)) / np.log(1e4)
        np.testing.assert_allclose(slope.values, exponent.values, rtol=1e-10)


def test_kaplan_optimal_loss_is_a_power_law_in_compute(kaplan_fit):
    # Derived in bayescale.questions.optimal: L_opt is proportional to C^(-aN aD / (aN + aD)).
    d = optimal(kaplan_fit, [1e18, 1e24]).draws
    slope = np.log(d["L_opt"].isel(C=1) / d["L_opt"].isel(C=0)) / np.log(1e6)
    post = kaplan_fit.posterior
    expected = -post["alpha_N"] * post["alpha_D"] / (post["alpha_N"] + post["alpha_D"])
    np.testing.assert_allclose(slope.values, expected.values, rtol=1e-8)


def test_pf_days_are_converted(chinchilla_ladder_fit):
    in_days = optimal(chinchilla_ladder_fit, [1.0, 100.0], compute_unit="pf-days")
    in_flops = optimal(chinchilla_ladder_fit, [PF_DAY_FLOPS, 100 * PF_DAY_FLOPS])
    np.testing.assert_allclose(in_days.draws["N_opt"].values, in_flops.draws["N_opt"].values)
    np.testing.assert_allclose(in_days.C, in_flops.C)
    assert [p["C"] for p in in_days.to_dict()["points"]] == [1.0, 100.0]
    assert in_days.to_dict()["compute_unit"] == "pf-days"


def test_bands_over_the_default_grid(kaplan_fit):
    result = optimal(kaplan_fit)
    runs = kaplan_fit.runs
    compute = 6 * runs["N"].values * runs["D"].values
    assert result.C[0] == pytest.approx(compute.min())
    assert result.C[-1] == pytest.approx(1e3 * compute.max())
    bands = result.bands()
    assert bands.attrs == {"ci_kind": "hdi", "ci_prob": 0.94}
    assert bands["N_opt"].dims == ("C", "ci_bound")
    median = result.draws.median(("chain", "draw"))
    for name in ("N_opt", "D_opt", "L_opt"):
        lo, hi = bands[name].sel(ci_bound="lower"), bands[name].sel(ci_bound="upper")
        assert (lo < median[name]).all() and (median[name] < hi).all()
    # More compute: larger models, more data, lower loss.
    assert (np.diff(median["N_opt"]) > 0).all() and (np.diff(median["L_opt"]) < 0).all()


def test_draws_without_an_interior_optimum_are_reported(chinchilla_ladder_fit):
    post = chinchilla_ladder_fit.posterior.copy(deep=True)
    post["alpha"][0, :100] = -0.05  # the N term then grows with N: the best model is the smallest
    tree = chinchilla_ladder_fit.tree.copy()
    tree["posterior"] = xr.DataTree(post)
    broken = dataclasses.replace(chinchilla_ladder_fit, tree=tree)
    result = optimal(broken, 1e21)
    assert np.isnan(result.draws["N_opt"].values[0, :100]).all()
    assert np.isfinite(result.draws["N_opt"].values[1:]).all()
    doc = result.to_dict()
    assert doc["p_interior"] == pytest.approx(1 - 100 / post.sizes["draw"] / post.sizes["chain"])
    assert "no interior optimum" in doc["note"]
    assert np.isfinite(doc["points"][0]["N_opt"]["mean"])


@pytest.mark.parametrize(
    ("args", "kwargs", "pattern"),
    [
        ((0.0,), {}, "must be positive"),
        (([1e21, -1.0],), {}, "must be positive"),
        ((1e21,), {"compute_unit": "gpu-hours"}, "unknown compute unit"),
        ((1e21,), {"prob": 0.0}, "prob must be between"),
        ((1e21,), {"group": "x"}, "no groups"),
    ],
    ids=["zero", "negative", "unit", "prob", "group"],
)
def test_bad_options_raise(kaplan_fit, args, kwargs, pattern):
    with pytest.raises(ConfigError, match=pattern):
        optimal(kaplan_fit, *args, **kwargs)


def test_law_without_d_has_no_allocation(n_only_fit):
    with pytest.raises(ConfigError, match="needs a law of both N and D"):
        optimal(n_only_fit, 1e21)


# --------------------------------------------------------------------------------------------
# The compute-efficient frontier (Kaplan's L(C_min))


def learning_curves(seed: int, noise: float = 0.005) -> pd.DataFrame:
    """17 model sizes, each at 71 dataset sizes (checkpoints), from Kaplan's joint fit."""
    N = np.repeat(np.geomspace(1e5, 1e9, 17), 71)
    D = np.tile(np.geomspace(1e6, 1e13, 71), 17)
    return simulate("kaplan_nd", KAPLAN, {"N": N, "D": D}, noise, seed)


def envelope_exponent() -> float:
    # L_opt(C) of kaplan_nd falls as C^(-aN aD / (aN + aD)) (see bayescale.questions.optimal).
    return KAPLAN["alpha_N"] * KAPLAN["alpha_D"] / (KAPLAN["alpha_N"] + KAPLAN["alpha_D"])


@pytest.mark.statistical
def test_power_c_on_the_frontier_recovers_the_envelope_exponent():
    curves = learning_curves(seed=0)
    front = compute_frontier(curves)
    f = bs.fit(front, "power_c", sampler="exact", draws=1000, chains=2, seed=seeded(0))
    row = f.summary().loc["alpha_C"]
    assert not far_from_truth(f.posterior, {"alpha_C": envelope_exponent()})
    assert row["hdi_high"] - row["hdi_low"] < 0.005
    # The edge sizes, where the best model lies outside the trained range, bend the exponent.
    kept = compute_frontier(curves, drop_edges=False)
    biased = bs.fit(kept, "power_c", sampler="exact", draws=1000, chains=2, seed=seeded(0))
    bent = biased.summary().loc["alpha_C", "mean"]
    assert abs(bent - envelope_exponent()) > 2 * abs(row["mean"] - envelope_exponent())


def test_frontier_points_are_pareto_optimal():
    rng = np.random.default_rng(3)
    table = pd.DataFrame(
        {
            "N": np.exp(rng.uniform(np.log(1e6), np.log(1e9), 300)),
            "D": np.exp(rng.uniform(np.log(1e8), np.log(1e11), 300)),
            "loss": rng.uniform(2.0, 4.0, 300),
        }
    )
    front = compute_frontier(table, bins_per_decade=4, drop_edges=False)
    compute = 6 * table["N"].to_numpy() * table["D"].to_numpy()
    np.testing.assert_allclose(front["C"], compute[front["row"]])
    assert (np.diff(front["C"]) > 0).all() and (np.diff(front["loss"]) < 0).all()
    for c, loss in zip(front["C"], front["loss"], strict=True):
        assert not ((compute <= c) & (table["loss"].to_numpy() < loss)).any()
    # The lowest loss of the table is always on the frontier.
    assert front["loss"].iloc[-1] == table["loss"].min()
    assert list(front.columns[:3]) == ["C", "loss", "row"]


def test_frontier_uses_the_c_column_in_its_unit_and_drops_edge_sizes():
    table = pd.DataFrame(
        {
            "N": [1, 2, 3, 4, 5, 6.0],
            "C": [1.0, 10, 100, 1000, 1e4, 1e5],
            "loss": [6.0, 5, 4, 3, 2, 1],
        }
    )
    front = compute_frontier(table, compute_unit="pf-days", bins_per_decade=1)
    assert front["N"].tolist() == [2, 3, 4, 5]  # N = 1 and 6 are the edge sizes
    np.testing.assert_allclose(
        front["C"], [10 * PF_DAY_FLOPS, 100 * PF_DAY_FLOPS, 1e3 * PF_DAY_FLOPS, 1e4 * PF_DAY_FLOPS]
    )
    assert len(compute_frontier(table, drop_edges=False, bins_per_decade=1)) == 6


def test_frontier_errors():
    with pytest.raises(RunsTableError, match="needs compute"):
        compute_frontier(pd.DataFrame({"N": [1.0, 2.0, 3.0], "loss": [3.0, 2.0, 1.0]}))
    flat = pd.DataFrame({"C": [1e18, 2e18, 4e18, 8e18], "loss": [2.0, 2.1, 2.2, 2.3]})
    with pytest.raises(RunsTableError, match="1 point"):
        compute_frontier(flat)
    with pytest.raises(ConfigError, match="bins_per_decade"):
        compute_frontier(flat, bins_per_decade=0)


# --------------------------------------------------------------------------------------------
# CLI


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


@pytest.fixture(scope="module")
def fit_file(chinchilla_ladder_fit, tmp_path_factory):
    return chinchilla_ladder_fit.save(tmp_path_factory.mktemp("optimal") / "chinchilla.nc")


def test_cli_json_has_the_documented_shape(fit_file, capsys):
    code, out, _ = run_cli(capsys, "optimal", str(fit_file), "--C", "1e21", "--C", "1e23", "--json")
    assert code == 0
    doc = json.loads(out)
    assert {"points", "exponents"} <= set(doc)
    assert [p["C"] for p in doc["points"]] == [1e21, 1e23]
    for p in doc["points"]:
        assert set(p) == {"C", "N_opt", "D_opt", "loss"}
        for key in ("N_opt", "D_opt", "loss"):
            assert set(p[key]) == {"mean", "lo", "hi"}
            assert p[key]["lo"] < p[key]["mean"] < p[key]["hi"]
        assert 6 * p["N_opt"]["mean"] * p["D_opt"]["mean"] == pytest.approx(p["C"], rel=1e-6)
    assert set(doc["exponents"]) == {"a", "b"}
    assert all(set(v) == {"mean", "lo", "hi"} for v in doc["exponents"].values())


def test_cli_pf_days_and_text(fit_file, capsys):
    code, out, _ = run_cli(
        capsys, "optimal", str(fit_file), "--C", "10", "--compute-unit", "pf-days", "--json"
    )
    assert code == 0
    in_days = json.loads(out)["points"][0]
    code, out, _ = run_cli(
        capsys, "optimal", str(fit_file), "--C", str(10 * PF_DAY_FLOPS), "--json"
    )
    assert json.loads(out)["points"][0]["N_opt"] == in_days["N_opt"]
    code, out, _ = run_cli(capsys, "optimal", str(fit_file), "--C", "1e21")
    assert code == 0
    assert "N_opt ~ C^a" in out and "1e+21" in out


@pytest.mark.parametrize(
    ("argv", "pattern"),
    [
        (["--C", "0"], "must be positive"),
        (["--C=-1e21"], "must be positive"),
        (["--C", "1e21", "--group", "budget=6e18"], "no groups"),
    ],
    ids=["zero", "negative", "group"],
)
def test_cli_bad_budget_exits_2(fit_file, argv, pattern, capsys):
    code, _, err = run_cli(capsys, "optimal", str(fit_file), *argv)
    assert code == 2
    assert re.search(pattern, one_error_line(err))


def test_cli_not_a_fit_file_exits_2(tmp_path, capsys):
    other = tmp_path / "runs.csv"
    other.write_text("N,D,loss\n1,2,3\n")
    code, _, err = run_cli(capsys, "optimal", str(other), "--C", "1e21")
    assert code == 2
    assert "not a netCDF file" in one_error_line(err)


def test_cli_law_without_d_exits_2(n_only_fit, tmp_path, capsys):
    path = n_only_fit.save(tmp_path / "n.nc")
    code, _, err = run_cli(capsys, "optimal", str(path), "--C", "1e21")
    assert code == 2
    assert "power_n" in one_error_line(err)


def test_cli_frontier_writes_a_table_power_c_fits(tmp_path, capsys):
    runs = tmp_path / "curves.csv"
    learning_curves(seed=1).rename(columns={"D": "tokens"}).to_csv(runs, index=False)
    out = tmp_path / "frontier.csv"
    code, _, err = run_cli(capsys, "frontier", str(runs), "--columns", "D=tokens", "-o", str(out))
    assert code == 0, err
    front = pd.read_csv(out)
    assert list(front.columns[:3]) == ["C", "loss", "row"]
    assert (np.diff(front["loss"]) < 0).all() and len(front) >= 10
    assert "power_c" in err
    fitted = tmp_path / "front.nc"
    code, _, _ = run_cli(
        capsys, "fit", str(out), "--law", "power_c", "--sampler", "exact", "-o", str(fitted)
    )
    assert code == 0
    code, doc, _ = run_cli(capsys, "summary", str(fitted), "--json")
    alpha = json.loads(doc)["params"]["alpha_C"]
    assert alpha["hdi_low"] <= envelope_exponent() <= alpha["hdi_high"]


@pytest.mark.parametrize(
    ("setup", "pattern"),
    [
        ("no-compute", "needs compute"),
        ("missing-dir", "does not exist"),
    ],
)
def test_cli_frontier_bad_input_exits_2(setup, pattern, tmp_path, capsys):
    runs = tmp_path / "runs.csv"
    pd.DataFrame({"N": [1.0, 2.0, 3.0], "loss": [3.0, 2.0, 1.0]}).to_csv(runs, index=False)
    if setup == "missing-dir":
        learning_curves(seed=2).to_csv(runs, index=False)
    out = tmp_path / ("nope/f.csv" if setup == "missing-dir" else "f.csv")
    code, _, err = run_cli(capsys, "frontier", str(runs), "-o", str(out))
    assert code == 2
    assert re.search(pattern, one_error_line(err))
    assert not out.exists()
