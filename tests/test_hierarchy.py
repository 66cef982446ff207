"""Hierarchical fits: recovery in both sampling regimes, shrinkage, transfer offsets, crossed
groups, LOO comparison, new-group predictions and the CLI options.

Data are simulated from the hierarchical model itself: group latents are drawn from their
population (Normal on the latent's pooling scale) at the centre of the simulated design, so the
population location and scale the model reports have exact true values.
"""

import json

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from conftest import far_from_truth, rng, seeded

import bayescale as bs
from bayescale.cli.app import main
from bayescale.core.errors import ConfigError, UnknownNameError
from bayescale.laws.base import DataSummary, evaluate, get_law
from bayescale.model.centring import pilot_centring
from bayescale.model.pooling import resolve_pooling
from bayescale.questions.selection import compare_fits


def simulate_groups(law_name, sizes, population, shared, noise, seed, n_range=(1e7, 3e9)):
    """Runs of ``len(sizes)`` groups with latents drawn from ``population``.

    ``population`` maps a latent to (mu, tau) on the scale it is pooled on (log for latents
    with LogNormal priors, identity otherwise); ``shared`` maps pooled latents to values.
    Returns the runs table and the true latents and paper parameters per group.
    """
    law = get_law(law_name)
    generator = rng(seed)
    log_n = [np.sort(generator.uniform(*np.log(n_range), size)) for size in sizes]
    centre = float(np.mean(np.concatenate(log_n)))
    frames, truth = [], {}
    for g, ln in enumerate(log_n):
        z = dict(shared)
        for name, (mu, tau) in population.items():
            z[name] = mu + tau * generator.standard_normal()
        y = law.log_loss(z, {"N": ln - centre}, np) + generator.normal(0, noise, ln.size)
        label = f"g{g}"
        frames.append(pd.DataFrame({"N": np.exp(ln), "loss": np.exp(y), "family": label}))
        truth[label] = {"latents": z, "params": law.to_params(z, {"N": centre}, np)}
    return pd.concat(frames, ignore_index=True), truth


def group_truth(truth, population):
    """What a grouped fit must recover: each group's exponent and scale, and the population's
    location and scale, keyed by summary-row names."""
    out = {}
    for label, t in truth.items():
        out[f"alpha_N[{label}]"] = t["params"]["alpha_N"]
        out[f"N_c[{label}]"] = t["params"]["N_c"]
    for name, (mu, tau) in population.items():
        out[f"mu_{name}"], out[f"tau_{name}"] = mu, tau
    return out


def assert_clean(fit):
    d = fit.diagnostics
    assert d.divergences == 0, d
    assert d.max_r_hat <= 1.01, d


# --------------------------------------------------------------------------------------------
# Regime 1: every group well determined by its own runs (the centred form is chosen).
# --------------------------------------------------------------------------------------------
#: Eight groups of 5-14 runs drawn from a population twice as wide as a ladder's typical spread:
#: the pilot (which assumes at least 0.3 % scatter) then judges every group well determined in
#: 400 of 400 simulated seeds. With the former six groups (the smallest of 3 runs) and half the
#: spread, a population that happened to come out narrow made it choose the non-centred form
#: in 43 of 200 seeds.
WELL_POPULATION = {"log_L0": (1.1, 0.2), "alpha_N": (0.076, 0.03)}
WELL_SIZES = (14, 12, 10, 8, 6, 5, 12, 10)


@pytest.fixture(scope="module")
def well():
    runs, truth = simulate_groups("power_n", WELL_SIZES, WELL_POPULATION, {}, noise=0.003, seed=5)
    return runs, truth, bs.fit(runs, "power_n", groups="family", seed=seeded(2), draws=2000)


@pytest.mark.statistical
def test_well_determined_groups_are_centred_and_recovered(well):
    _, truth, fit = well
    assert all(all(flags) for flags in fit.pooling.centred.values())
    assert_clean(fit)
    s = fit.summary()
    assert not far_from_truth(fit.posterior, group_truth(truth, WELL_POPULATION))
    # HDIs of the group exponents are informative: a few per cent of the exponent.
    width = s.loc["alpha_N[g0]", "hdi_high"] - s.loc["alpha_N[g0]", "hdi_low"]
    assert width < 0.01


@pytest.mark.statistical
def test_thin_group_is_shrunk_towards_the_population():
    # Few, noisy runs per group: the 3-run group (g6) leans on the population.
    population = {"log_L0": (1.1, 0.05), "alpha_N": (0.076, 0.01)}
    sizes = (6, 6, 5, 5, 4, 4, 3)
    runs, _ = simulate_groups("power_n", sizes, population, {}, noise=0.02, seed=11)
    # Default-settings sampling of sparse groups is checked above; the comparison here is made
    # on a clean posterior. With four groups (6, 5, 4, 3 runs) the population scales were so
    # loosely determined that 4 x 2000 draws at target_accept 0.99 still diverged in 3 of 12
    # seeds; seven groups and 4 x 4000 draws gave R-hat <= 1.005 and none in 16 of 16.
    fit = bs.fit(runs, "power_n", groups="family", seed=seeded(2), draws=4000, target_accept=0.99)
    assert_clean(fit)
    alone = bs.fit(
        runs[runs.family == "g6"], "power_n", sampler="exact", draws=2000, seed=seeded(1)
    )
    pooled = fit.posterior["alpha_N"].sel(family="g6")
    own = alone.posterior["alpha_N"]
    assert float(pooled.std()) < 0.5 * float(own.std())
    population_mean = float(fit.posterior["mu_alpha_N"].mean())
    assert abs(float(pooled.median()) - population_mean) < abs(
        float(own.median()) - population_mean
    )


@pytest.mark.statistical
def test_new_group_prediction_is_wider_than_a_known_group(well):
    _, truth, fit = well
    known = np.exp(fit.expected_log_loss({"N": [1e11]}, group="g0"))
    new = np.exp(fit.expected_log_loss({"N": [1e11]}, new_group=True, seed=seeded(2)))
    assert known.dims == ("chain", "draw", "point")
    assert float(new.std()) > 2 * float(known.std())
    true_loss = float(evaluate("power_n", truth["g0"]["params"], {"N": 1e11}))
    assert not far_from_truth(xr.Dataset({"loss": known.isel(point=0)}), {"loss": true_loss})


def test_summary_lists_population_and_group_entries(well):
    _, _, fit = well
    keys = set(fit.summary_dict()["params"])
    assert {"alpha_N[g0]", "N_c[g4]", "mu_alpha_N", "tau_alpha_N", "mu_log_L0", "sigma"} <= keys
    assert not any(k.endswith("_free") or "_free[" in k for k in keys)


def test_grouped_fit_round_trips(well, tmp_path):
    _, _, fit = well
    loaded = bs.load_fit(fit.save(tmp_path / "grouped.nc"))
    assert loaded.pooling.labels == fit.pooling.labels
    assert loaded.pooling.centred == fit.pooling.centred
    a = loaded.expected_log_loss({"N": [5e9]}, group="g2")
    b = fit.expected_log_loss({"N": [5e9]}, group="g2")
    np.testing.assert_allclose(a.values, b.values)


def test_group_api_errors(well):
    _, _, fit = well
    with pytest.raises(UnknownNameError, match="no group 'g9'"):
        fit.latents(group="g9")
    with pytest.raises(ConfigError, match="name a group"):
        fit.latents()
    with pytest.raises(ConfigError, match="either group"):
        fit.latents(group="g0", new_group=True)


# --------------------------------------------------------------------------------------------
# Regime 2: few, noisy runs per group (the non-centred form is chosen); law with a shared E.
# --------------------------------------------------------------------------------------------
SPARSE_POPULATION = {"log_R0": (0.2, 0.2), "log_slope_N": (np.log(0.12), 0.15)}
SPARSE_SHARED = {"log_E": np.log(1.7)}


@pytest.fixture(scope="module")
def sparse():
    runs, truth = simulate_groups(
        "power_n_e", (6, 5, 4, 4, 3, 3), SPARSE_POPULATION, SPARSE_SHARED, noise=0.02, seed=8
    )
    return runs, truth, bs.fit(runs, "power_n_e", groups="family", seed=seeded(3), draws=2000)


@pytest.mark.statistical
def test_sparse_groups_are_non_centred_and_recovered(sparse):
    _, truth, fit = sparse
    assert fit.pooling.modes["log_E"] == "pooled"  # the law's default: E is shared
    assert not any(any(flags) for flags in fit.pooling.centred.values())
    assert_clean(fit)
    expected = group_truth(truth, SPARSE_POPULATION) | {"E": 1.7}
    assert not far_from_truth(fit.posterior, expected)


# --------------------------------------------------------------------------------------------
# Transfer offsets, crossed groups and LOO.
# --------------------------------------------------------------------------------------------
def eval_set_runs(exponents, shifts, seed, n=10):
    """power_n runs on several eval sets: one exponent and log-loss shift per eval set."""
    generator = rng(seed)
    frames = []
    for label, alpha in exponents.items():
        N = np.geomspace(1e6, 1e9, n) * np.exp(generator.uniform(-0.1, 0.1, n))
        loss = evaluate("power_n", {"alpha_N": alpha, "N_c": 8.8e13}, {"N": N})
        loss = loss * np.exp(shifts[label] + generator.normal(0, 0.01, n))
        frames.append(pd.DataFrame({"N": N, "loss": loss, "eval_set": label}))
    return pd.concat(frames, ignore_index=True)


SHIFTS = {"train": 0.0, "books": 0.08, "code": -0.15, "wiki": 0.03}


@pytest.mark.statistical
def test_transfer_offsets_recovered():
    runs = eval_set_runs(dict.fromkeys(SHIFTS, 0.076), SHIFTS, seed=11)
    f = bs.fit(runs, "power_n", offset_by="eval_set", offset_reference="train", seed=seeded(4))
    truth = {"alpha_N": 0.076} | {f"offset[{k}]": v for k, v in SHIFTS.items() if k != "train"}
    assert not far_from_truth(f.posterior, truth)
    assert_clean(f)
    shifted = f.expected_log_loss({"N": [1e10]}, offset="books") - f.expected_log_loss(
        {"N": [1e10]}
    )
    np.testing.assert_allclose(
        shifted.values, f.posterior["offset"].sel(eval_set="books").values[..., None]
    )


# A few runs of the varying model are influential (Pareto k > 0.7 is reported, not hidden).
@pytest.mark.filterwarnings("ignore::bayescale.core.errors.SamplingWarning")
@pytest.mark.statistical
def test_loo_prefers_varying_exponents_when_transfer_is_not_a_constant_offset():
    exponents = {"train": 0.076, "books": 0.060, "code": 0.095, "wiki": 0.070}
    runs = eval_set_runs(exponents, SHIFTS, seed=12)
    offsets = bs.fit(
        runs, "power_n", offset_by="eval_set", offset_reference="train", seed=seeded(1)
    )
    varying = bs.fit(runs, "power_n", groups="eval_set", seed=seeded(1))
    table = compare_fits({"offsets": offsets, "varying": varying})
    assert table.index[0] == "varying"
    assert -table.loc["offsets", "elpd_diff"] > 4 * table.loc["offsets", "dse"]


# A short fit: its ESS warning is irrelevant to the density identity checked here.
@pytest.mark.filterwarnings("ignore::bayescale.core.errors.SamplingWarning")
def test_loo_log_likelihood_matches_the_model_density():
    runs = eval_set_runs(dict.fromkeys(SHIFTS, 0.076), SHIFTS, seed=11)
    f = bs.fit(runs, "power_n", offset_by="eval_set", seed=4, draws=200, chains=2)
    ll = f.log_likelihood()
    assert ll.dims == ("chain", "draw", "run")
    # One draw by hand: Normal density of log loss around the law plus the run's offset.
    post = f.posterior.isel(chain=0, draw=5)
    params = {"alpha_N": float(post["alpha_N"]), "N_c": float(post["N_c"])}
    shift = post["offset"].sel(eval_set=runs["eval_set"].to_numpy()).to_numpy()
    mu = np.log(evaluate("power_n", params, {"N": runs["N"].to_numpy()})) + shift
    sigma = float(post["sigma"])
    y = np.log(runs["loss"].to_numpy())
    expected = -0.5 * ((y - mu) / sigma) ** 2 - np.log(sigma) - 0.5 * np.log(2 * np.pi)
    np.testing.assert_allclose(ll.isel(chain=0, draw=5).values, expected, rtol=1e-6)
    with pytest.raises(ConfigError, match="same runs"):
        compare_fits({"a": f, "b": bs.fit(runs.iloc[:-1], "power_n", sampler="exact")})


@pytest.fixture(scope="module")
def crossed_runs():
    """6 families (own exponents, 0.06-0.10) x 2 eval sets (constant log-loss offset)."""
    generator = rng(22)
    families = {"dense": 0.06, "moe": 0.08, "wide": 0.07, "deep": 0.09, "tall": 0.10, "thin": 0.075}
    frames = []
    for family, alpha in families.items():
        N = np.geomspace(1e6, 1e9, 6) * np.exp(generator.uniform(-0.1, 0.1, 6))
        for eval_set, shift in (("web", 0.0), ("code", 0.1)):
            loss = evaluate("power_n", {"alpha_N": alpha, "N_c": 8.8e13}, {"N": N})
            loss = loss * np.exp(shift + generator.normal(0, 0.005, N.size))
            frames.append(pd.DataFrame({"N": N, "loss": loss, "family": family, "eval": eval_set}))
    return pd.concat(frames, ignore_index=True), families


@pytest.mark.statistical
def test_crossed_groups_law_by_family_offset_by_eval_set(crossed_runs):
    """The centred form is forced: the pilot fits each family without the eval-set offset, so
    the 10 % shift reads as scatter, the families look poorly determined and it picks the
    non-centred form, whose posterior here (families measured to 0.1 % of their exponent)
    mixes slowly: with the former 4 families, 1-51 divergences in 3 of 10 seeds and R-hat up
    to 1.028, 20 s a fit. Centred, these 6 families gave R-hat <= 1.004 and no divergence in
    20 of 20 seeds, 2 s a fit."""
    runs, families = crossed_runs
    f = bs.fit(
        runs,
        "power_n",
        groups="family",
        offset_by="eval",
        offset_reference="web",
        centred=True,
        seed=seeded(5),
        draws=2000,
    )
    assert_clean(f)
    s = f.summary()
    truth = {"offset[code]": 0.1} | {f"alpha_N[{k}]": v for k, v in families.items()}
    assert not far_from_truth(f.posterior, truth)
    both = f.expected_log_loss({"N": [1e10]}, group="moe", offset="code")
    base = f.expected_log_loss({"N": [1e10]}, group="moe")
    assert float((both - base).mean()) == pytest.approx(float(s.loc["offset[code]", "mean"]))


# Sampling quality is tested above; this checks the options reach the fit and the file.
@pytest.mark.filterwarnings("ignore::bayescale.core.errors.SamplingWarning")
def test_cli_group_pool_and_offset_options(crossed_runs, tmp_path, capsys):
    runs, families = crossed_runs
    csv = tmp_path / "runs.csv"
    runs.to_csv(csv, index=False)
    out = tmp_path / "fit.nc"
    args = ["fit", str(csv), "--law", "power_n", "--group", "family", "--offset-by", "eval"]
    args += ["--offset-reference", "web", "--pool", "alpha_N=partial", "--pool", "N_c=none"]
    args += ["--seed", "5", "-o", str(out)]
    assert main(args) == 0
    capsys.readouterr()
    assert main(["summary", str(out), "--json"]) == 0
    params = json.loads(capsys.readouterr().out)["params"]
    assert {f"alpha_N[{family}]" for family in families} <= set(params)
    assert "offset[code]" in params and "mu_alpha_N" in params
    assert "mu_log_L0" not in params  # N_c (log_L0) unpooled on request
    assert bs.load_fit(out).pooling.modes == {"log_L0": "none", "alpha_N": "partial"}


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--group", "colour"], "colour"),
        (["--group", "family", "--offset-by", "eval", "--pool", "alpha_X=partial"], "alpha_X"),
        (["--group", "family", "--pool", "alpha_N"], "NAME=VALUE"),
        (["--group", "family", "--centred", "maybe"], "yes or no"),
        (["--pool", "alpha_N=none"], "need groups"),
        (["--group", "family", "--offset-by", "family"], "both a group and the offset"),
    ],
)
def test_cli_group_bad_input_exits_2(crossed_runs, tmp_path, capsys, extra, message):
    runs, _ = crossed_runs
    csv = tmp_path / "runs.csv"
    runs.to_csv(csv, index=False)
    code = main(["fit", str(csv), "--law", "power_n", *extra, "-o", str(tmp_path / "f.nc")])
    assert code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "f.nc").exists()


# --------------------------------------------------------------------------------------------
# Pooling configuration and the centring choice.
# --------------------------------------------------------------------------------------------
def test_pooling_defaults_and_forcing():
    labels = np.array(["a"] * 5 + ["b"] * 2)
    pooling = resolve_pooling(("log_E", "log_R0", "alpha_N"), labels, dim="g", shared=("log_E",))
    assert pooling.modes == {"log_E": "pooled", "log_R0": "partial", "alpha_N": "partial"}
    forced = resolve_pooling(
        ("log_E", "alpha_N"), np.array(["a", "b"]), dim="g", centred={"alpha_N": True}
    )
    assert forced.centred["alpha_N"] == (True, True)
    assert forced.forced == ("alpha_N",)
    on = resolve_pooling(("alpha_N",), labels, dim="g", pool={"alpha_N": "pooled"})
    assert on.modes["alpha_N"] == "pooled" and on.centred == {}


def test_pooling_errors():
    labels = np.array(["a", "b"])
    with pytest.raises(UnknownNameError, match="alpha_X"):
        resolve_pooling(("alpha_N",), labels, dim="g", pool={"alpha_X": "partial"})
    with pytest.raises(ConfigError, match="partial, pooled, none"):
        resolve_pooling(("alpha_N",), labels, dim="g", pool={"alpha_N": "sometimes"})
    with pytest.raises(UnknownNameError, match="centring of 'alpha_X'"):
        resolve_pooling(("alpha_N",), labels, dim="g", centred={"alpha_X": True})


@pytest.mark.statistical
@pytest.mark.parametrize(
    ("sizes", "tau", "noise", "centred"),
    [
        ((15,) * 8, 0.2, 0.003, True),  # groups differ a lot, each pinned down by its runs
        ((15,) * 8, 0.0, 0.003, False),  # groups identical: the population scale is ~0
        ((4, 3, 3, 3), 0.2, 0.05, False),  # few noisy runs per group
    ],
)
def test_pilot_centring_follows_how_well_groups_are_determined(sizes, tau, noise, centred):
    population = {"log_L0": (1.1, 0.1 * tau / 0.2), "alpha_N": (0.076, 0.076 * tau)}
    runs, _ = simulate_groups("power_n", sizes, population, {}, noise=noise, seed=1)
    law = get_law("power_n")
    labels = runs["family"].to_numpy()
    pooling = resolve_pooling(law.latents, labels, dim="family")
    summary = DataSummary.from_arrays({"N": runs["N"].to_numpy()}, runs["loss"].to_numpy())
    u = {"N": np.log(runs["N"].to_numpy()) - summary.centre["N"]}
    chosen = pilot_centring(
        law.log_loss, u, np.log(runs["loss"].to_numpy()), pooling, law.default_priors(summary)
    )
    assert set(chosen) == {"log_L0", "alpha_N"}
    assert all(all(flags) == centred and any(flags) == centred for flags in chosen.values())
