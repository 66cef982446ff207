"""Hierarchical fits: recovery of group and offset parameters, group/new-group predictions."""

import numpy as np
import pandas as pd
import pytest

import bayescale as bs
from bayescale.errors import ConfigError, UnknownNameError
from bayescale.hierarchy import choose_centred, resolve_pooling
from bayescale.laws import evaluate

E_TRUE = 1.7
GROUPS = {  # label: (alpha_N, N_c, number of runs)
    "dense": (0.30, 2e8, 10),
    "moe": (0.34, 1e8, 8),
    "wide": (0.36, 1.5e8, 6),
    "deep": (0.31, 3e8, 4),
}


def grouped_runs(seed=3, noise=0.01):
    rng = np.random.default_rng(seed)
    frames = []
    for label, (alpha, n_c, n) in GROUPS.items():
        N = np.geomspace(1e7, 3e9, n) * np.exp(rng.uniform(-0.1, 0.1, n))
        loss = evaluate("power_n_e", {"E": E_TRUE, "alpha_N": alpha, "N_c": n_c}, {"N": N})
        loss = loss * np.exp(rng.normal(0, noise, n))
        frames.append(pd.DataFrame({"N": N, "loss": loss, "family": label}))
    return pd.concat(frames, ignore_index=True)


def inside(summary, name, truth):
    row = summary.loc[name]
    return row["hdi_low"] <= truth <= row["hdi_high"]


@pytest.fixture(scope="module")
def grouped_fit():
    return bs.fit(grouped_runs(), "power_n_e", groups="family", pool={"E": "pooled"}, seed=1)


def test_group_exponents_and_shared_E_recovered(grouped_fit):
    summary = grouped_fit.summary()
    assert inside(summary, "E", E_TRUE)
    for label, (alpha, n_c, _) in GROUPS.items():
        assert inside(summary, f"alpha_N[{label}]", alpha), label
        assert inside(summary, f"N_c[{label}]", n_c), label
    d = grouped_fit.diagnostics
    assert d.divergences == 0
    assert d.max_r_hat <= 1.01
    # Population location of the exponents covers the mean of the group values.
    geo = np.exp(np.mean(np.log([g[0] for g in GROUPS.values()])))
    assert inside(summary, "mu_alpha_N", geo)


def test_summary_keys_name_groups_and_population(grouped_fit):
    keys = set(grouped_fit.summary_dict()["params"])
    assert {
        "alpha_N[dense]",
        "N_c[deep]",
        "mu_log_alpha_N",
        "tau_log_alpha_N",
        "E",
        "sigma",
    } <= keys


def test_new_group_prediction_is_wider_than_a_known_group(grouped_fit):
    known = np.exp(grouped_fit.expected_log_loss({"N": [1e10]}, group="dense"))
    new = np.exp(grouped_fit.expected_log_loss({"N": [1e10]}, new_group=True, seed=2))
    assert known.dims == ("chain", "draw", "point")
    assert float(new.std()) > 2 * float(known.std())
    truth = evaluate("power_n_e", {"E": E_TRUE, "alpha_N": 0.30, "N_c": 2e8}, {"N": 1e10})
    lo, hi = np.quantile(known.values, [0.03, 0.97])
    assert lo <= truth <= hi


def test_group_api_errors(grouped_fit):
    with pytest.raises(UnknownNameError, match="no group 'sparse'"):
        grouped_fit.latents(group="sparse")
    with pytest.raises(ConfigError, match="name a group"):
        grouped_fit.latents()
    with pytest.raises(ConfigError, match="either group"):
        grouped_fit.latents(group="dense", new_group=True)


def test_grouped_fit_round_trips(grouped_fit, tmp_path):
    path = grouped_fit.save(tmp_path / "grouped.nc")
    loaded = bs.load_fit(path)
    assert loaded.pooling.labels == grouped_fit.pooling.labels
    a = loaded.expected_log_loss({"N": [5e9]}, group="moe")
    b = grouped_fit.expected_log_loss({"N": [5e9]}, group="moe")
    np.testing.assert_allclose(a.values, b.values)


def test_transfer_offsets_recovered():
    rng = np.random.default_rng(11)
    offsets = {"train": 0.0, "books": 0.08, "code": -0.15}
    frames = []
    for label, shift in offsets.items():
        N = np.geomspace(1e6, 1e9, 8)
        loss = evaluate("power_n", {"alpha_N": 0.076, "N_c": 8.8e13}, {"N": N})
        loss = loss * np.exp(shift + rng.normal(0, 0.01, N.size))
        frames.append(pd.DataFrame({"N": N, "loss": loss, "eval_set": label}))
    runs = pd.concat(frames, ignore_index=True)
    f = bs.fit(runs, "power_n", offset_by="eval_set", offset_reference="train", seed=4)
    s = f.summary()
    assert inside(s, "alpha_N", 0.076)
    assert inside(s, "offset[books]", 0.08)
    assert inside(s, "offset[code]", -0.15)
    assert f.diagnostics.divergences == 0
    shifted = f.expected_log_loss({"N": [1e10]}, offset="books") - f.expected_log_loss(
        {"N": [1e10]}
    )
    np.testing.assert_allclose(
        shifted.values, f.posterior["offset"].sel(eval_set="books").values[..., None]
    )


def test_choose_centred_follows_group_sizes():
    assert choose_centred(np.array([10, 8, 6, 4]), 2)
    assert not choose_centred(np.array([10, 8, 2]), 2)
    pooling = resolve_pooling(
        ("log_E", "log_R0", "alpha_N"), np.array(["a"] * 5 + ["b"] * 2), dim="g"
    )
    assert pooling.centred == {"log_E": False, "log_R0": False, "alpha_N": False}
    forced = resolve_pooling(
        ("log_E", "alpha_N"), np.array(["a", "b"]), dim="g", centred={"alpha_N": True}
    )
    assert forced.centred["alpha_N"] is True and forced.centred["log_E"] is False


def test_pooling_errors():
    labels = np.array(["a", "b"])
    with pytest.raises(UnknownNameError, match="alpha_X"):
        resolve_pooling(("alpha_N",), labels, dim="g", pool={"alpha_X": "partial"})
    with pytest.raises(ConfigError, match="partial, pooled, none"):
        resolve_pooling(("alpha_N",), labels, dim="g", pool={"alpha_N": "sometimes"})
