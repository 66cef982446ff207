"""The steps of ``fit()`` one at a time: prepare the data, settle the model, sample, package.

``fit`` is their composition; each step is checked on what it alone decides, and the
composition is checked against ``fit`` draw for draw.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import simulate_law

import bayescale as bs
from bayescale.core.errors import ConfigError, RunsTableError
from bayescale.core.priors import Prior
from bayescale.fitting.pipeline import package, prepare, specify
from bayescale.fitting.samplers import get_sampler

LAW = "power_n"


@pytest.fixture(scope="module")
def runs():
    table = simulate_law(LAW, n_runs=24, noise_sd=0.02, seed=5)
    table["family"] = np.where(np.arange(24) % 2, "dense", "moe")
    table["run"] = [f"r{i % 4}" for i in range(24)]  # stored as "run_label": "run" is the dim
    return table


# --------------------------------------------------------------------------------------------
# Step 1: prepare
def test_prepare_lays_out_centred_log_inputs_and_log_loss(runs):
    prepared = prepare(runs, LAW)
    data = prepared.data
    assert set(data.u) == {"N"}
    np.testing.assert_allclose(data.log_loss, np.log(runs["loss"].to_numpy()))
    # Centred: the log inputs minus one centre, so their spread is the data's spread.
    u = data.u["N"]
    np.testing.assert_allclose(u - u.mean(), np.log(runs["N"]) - np.log(runs["N"]).mean())
    assert abs(u.mean()) < np.ptp(u)
    assert prepared.table.sizes["run"] == 24
    assert data.pooling is None and data.offsets is None and data.run_effect is None


def test_prepare_groups_by_the_stored_column_name(runs):
    prepared = prepare(runs, LAW, groups="run")
    assert prepared.groups == ["run_label"]
    assert prepared.data.pooling is not None
    assert sorted(prepared.data.pooling.labels) == sorted(set(runs["run"]))


def test_prepare_builds_offsets_with_the_chosen_reference(runs):
    prepared = prepare(runs, LAW, offset_by="family", offset_reference="moe")
    offsets = prepared.data.offsets
    assert offsets.labels[0] == "moe"  # the reference level comes first
    is_moe = (runs["family"] == "moe").to_numpy()
    np.testing.assert_array_equal(offsets.index == 0, is_moe)
    assert prepared.data.pooling is None


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"pool": {"alpha_N": "none"}}, "need groups"),
        ({"groups": "family", "offset_by": "family"}, "both a group and the offset"),
        ({"run_id": "run", "run_noise": "brownian"}, "unknown run_noise 'brownian'"),
    ],
)
def test_prepare_rejects_conflicting_options(runs, options, match):
    with pytest.raises(ConfigError, match=match):
        prepare(runs, LAW, **options)


def test_prepare_rejects_a_group_of_one_run(runs):
    table = runs.copy()
    table.loc[0, "family"] = "alone"
    with pytest.raises(RunsTableError, match="group 'alone' has fewer than 2 runs"):
        prepare(table, LAW, groups="family")


def test_prepare_checks_a_loaded_dataset_for_the_law_inputs(runs):
    loaded = bs.load_runs(runs.drop(columns="N"))
    with pytest.raises(RunsTableError, match="no column 'N' \\(needed by law 'power_n'\\)"):
        prepare(loaded, LAW)


# --------------------------------------------------------------------------------------------
# Step 2: specify
def test_specify_merges_overrides_into_the_data_scaled_defaults(runs):
    prepared = prepare(runs, LAW)
    default = specify(prepared)
    override = Prior("Normal", mu=0.3, sigma=0.01)
    request = specify(prepared, priors={"alpha_N": override})
    assert request.priors["alpha_N"] == override
    assert default.priors["alpha_N"] != override
    untouched = set(default.priors) - {"alpha_N"}
    assert untouched and all(request.priors[k] == default.priors[k] for k in untouched)


def test_specify_targets_smaller_steps_for_hierarchies(runs):
    assert specify(prepare(runs, LAW)).target_accept == 0.8
    assert specify(prepare(runs, LAW, groups="family")).target_accept == 0.95
    assert specify(prepare(runs, LAW), target_accept=0.9).target_accept == 0.9


def test_specify_chooses_a_form_for_every_pooled_parameter_and_keeps_forced_ones(runs):
    prepared = prepare(runs, LAW, groups="family", centred={"alpha_N": True})
    pooling = specify(prepared).data.pooling
    partial = [k for k, how in pooling.modes.items() if how == "partial"]
    assert partial and set(partial) <= set(pooling.centred)
    assert all(len(pooling.centred[k]) == 2 for k in partial)  # one form per group
    assert pooling.centred["alpha_N"] == (True, True)


# --------------------------------------------------------------------------------------------
# Steps 3 and 4: sample, package; and fit() is their composition
def test_steps_compose_to_fit(runs):
    options = {"draws": 300, "chains": 2, "seed": 11}
    request = specify(prepare(runs, LAW), **options)
    raw = get_sampler("exact")(request)
    stepwise = package(raw, prepare(runs, LAW), request, sampler="exact")
    direct = bs.fit(runs, LAW, sampler="exact", **options)
    for name in direct.posterior.data_vars:
        np.testing.assert_array_equal(stepwise.posterior[name], direct.posterior[name])
    assert stepwise.settings == direct.settings
    assert stepwise.settings["sampler"] == "exact" and stepwise.settings["draws"] == 300
    assert set(stepwise.tree.children) >= {"posterior", "observed_data", "constant_data", "runs"}
    np.testing.assert_allclose(
        stepwise.tree["observed_data"]["log_loss"], np.log(runs["loss"].to_numpy())
    )


def test_package_adds_prior_groups_when_asked(runs):
    prepared = prepare(runs, LAW)
    request = specify(prepared, draws=100, chains=1)
    fitted = package(
        get_sampler("exact")(request), prepared, request, sampler="exact", prior_draws=50
    )
    assert {"prior", "prior_predictive"} <= set(fitted.tree.children)
    assert fitted.tree["prior"].sizes["draw"] == 50
