"""Tests for the bundled datasets and the script that generates them (data/make_datasets.py)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bayescale.laws.base import evaluate, get_law, list_laws
from bayescale.runs.table import dataset_info, list_datasets, load_runs

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data"
SCRIPT = DATA / "make_datasets.py"


def _import_script():
    spec = importlib.util.spec_from_file_location("bayescale_make_datasets", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


make_datasets = _import_script()
NAMES = make_datasets.DATASETS
REQUIRED_KEYS = {
    "name",
    "description",
    "law",
    "params",
    "noise_sd_log_loss",
    "seed",
    "generator",
    "reference",
    "units",
}


@pytest.fixture(scope="module")
def built() -> dict[str, tuple[pd.DataFrame, dict]]:
    return make_datasets.build_all()


def test_build_all_names(built):
    assert list(built) == list(NAMES)


def test_every_bundled_dataset_has_a_generator():
    # No stale or hand-made dataset in data/: exactly the script's datasets are bundled.
    assert sorted(p.stem for p in DATA.glob("*.csv")) == sorted(NAMES)
    assert sorted(p.stem for p in DATA.glob("*.json")) == sorted(NAMES)
    assert list_datasets() == sorted(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_committed_csv_equals_build(built, name):
    frame, _ = built[name]
    committed = pd.read_csv(DATA / f"{name}.csv")
    pd.testing.assert_frame_equal(committed, frame, check_exact=False, rtol=1e-12, atol=0.0)


@pytest.mark.parametrize("name", NAMES)
def test_committed_sidecar_equals_build(built, name):
    _, meta = built[name]
    committed = json.loads((DATA / f"{name}.json").read_text(encoding="utf-8"))
    assert committed == json.loads(json.dumps(meta))


def test_write_all_is_byte_identical(tmp_path):
    written = make_datasets.write_all(tmp_path)
    assert len(written) == 2 * len(NAMES)
    for path in written:
        assert path.read_bytes() == (DATA / path.name).read_bytes(), path.name


def test_build_is_deterministic(built):
    again = make_datasets.build_all()
    for name, (frame, meta) in built.items():
        pd.testing.assert_frame_equal(again[name][0], frame, check_exact=True)
        assert again[name][1] == meta


@pytest.mark.parametrize("name", NAMES)
def test_sidecar_fields(name):
    info = dataset_info(name)
    assert REQUIRED_KEYS <= set(info)
    assert info["name"] == name
    assert info["law"] in list_laws()
    assert info["generator"] == "data/make_datasets.py"
    assert info["noise_sd_log_loss"] == 0.01
    assert isinstance(info["seed"], int)
    assert "arXiv:" in info["reference"]
    assert info["units"]["loss"] == "nats/token"
    assert info["n_runs"] == len(pd.read_csv(DATA / f"{name}.csv"))
    assert set(info["units"]) <= set(pd.read_csv(DATA / f"{name}.csv").columns)


@pytest.mark.parametrize("name", NAMES)
def test_loads_through_load_runs(name):
    info = dataset_info(name)
    law = get_law(info["law"])
    runs = load_runs(name, required=law.inputs, law_name=law.name)
    assert runs.sizes["run"] == info["n_runs"]
    assert runs.attrs["source"] == f"bundled dataset {name!r}"
    for column in (*law.inputs, "loss"):
        assert np.all(runs[column].to_numpy() > 0)


@pytest.mark.parametrize("name", ["chinchilla_ladder", "grouped_ladder"])
def test_loads_with_group_column(name):
    group = dataset_info(name)["group_column"]
    runs = load_runs(name, groups=[group])
    assert runs[group].dtype == object
    assert all(isinstance(v, str) for v in runs[group].to_numpy())


def _true_loss(frame: pd.DataFrame, info: dict) -> np.ndarray:
    """Noise-free loss of every row from the sidecar's law and parameters."""
    law = get_law(info["law"])
    # Grouped sets key their parameters by group label: {"dense": {"E": ...}, ...}.
    per_group = all(isinstance(v, dict) for v in info["params"].values())
    if not per_group:
        return evaluate(law, info["params"], {x: frame[x].to_numpy() for x in law.inputs})
    out = np.full(len(frame), np.nan)
    column = frame[info["group_column"]].to_numpy()
    for group, params in info["params"].items():
        rows = column == group
        assert rows.any(), group
        out[rows] = evaluate(law, params, {x: frame.loc[rows, x].to_numpy() for x in law.inputs})
    assert not np.isnan(out).any(), "rows whose group has no parameters"
    return out


@pytest.mark.parametrize("name", NAMES)
def test_sidecar_params_generate_the_losses(name):
    info = dataset_info(name)
    frame = pd.read_csv(DATA / f"{name}.csv")
    true = _true_loss(frame, info)
    z = (np.log(frame["loss"].to_numpy()) - np.log(true)) / info["noise_sd_log_loss"]
    assert np.all(np.abs(z) < 5.0), np.abs(z).max()
    assert 0.7 < np.std(z, ddof=1) < 1.3
    assert abs(z.mean()) < 4.0 / np.sqrt(z.size)


@pytest.mark.parametrize("name", NAMES)
def test_sidecar_seed_reproduces_the_noise(name):
    # Stronger than the check above: row i's log-loss residual is the i-th draw of
    # default_rng(seed).normal(0, sd), so a wrong parameter, seed or sd in the sidecar shows up
    # at the level of the 6-decimal rounding of the loss.
    info = dataset_info(name)
    frame = pd.read_csv(DATA / f"{name}.csv")
    residual = np.log(frame["loss"].to_numpy()) - np.log(_true_loss(frame, info))
    noise = np.random.default_rng(info["seed"]).normal(
        0.0, info["noise_sd_log_loss"], size=len(frame)
    )
    np.testing.assert_allclose(residual, noise, rtol=0, atol=1e-6)


def test_compute_is_6nd():
    for name in ("kaplan_ladder", "chinchilla_ladder"):
        frame = pd.read_csv(DATA / f"{name}.csv")
        expected = 6.0 * frame["N"].to_numpy(float) * frame["D"].to_numpy(float)
        np.testing.assert_allclose(frame["C"], expected, rtol=1e-15)


def test_kaplan_design():
    frame = pd.read_csv(DATA / "kaplan_ladder.csv")
    assert list(frame.columns) == ["N", "D", "C", "loss"]
    assert frame["N"].nunique() == 9
    assert frame["D"].nunique() == 6
    assert len(frame) == 54
    assert frame["N"].min() == 100_000
    assert frame["N"].max() == 1_000_000_000


def test_chinchilla_design():
    frame = pd.read_csv(DATA / "chinchilla_ladder.csv")
    assert list(frame.columns) == ["N", "D", "C", "loss", "budget"]
    budgets = frame["budget"].drop_duplicates().tolist()
    assert budgets[0] == "6e18 FLOPs"
    assert budgets[-1] == "3e21 FLOPs"
    assert len(budgets) == 8
    assert 50 <= len(frame) <= 60
    assert frame["N"].min() >= 4e7
    assert frame["N"].max() <= 2e10
    # Every run sits on its isoFLOP budget (up to the rounding of N and D to integers).
    nominal = frame["budget"].str.removesuffix(" FLOPs").astype(float)
    np.testing.assert_allclose(frame["C"], nominal, rtol=1e-8)
    # The loss-minimising run of each budget is near the middle of its N grid (the grid is
    # centred on the compute-optimal N; noise can move the minimum by a step or so).
    for _, runs in frame.groupby("budget"):
        assert 1 <= int(np.argmin(runs["loss"].to_numpy())) <= 5


def test_grouped_design():
    frame = pd.read_csv(DATA / "grouped_ladder.csv")
    assert list(frame.columns) == ["N", "loss", "family"]
    sizes = frame["family"].value_counts()
    assert sizes.to_dict() == {"dense": 10, "moe": 7, "wide": 5, "deep": 3}
    assert frame["N"].between(1e7, 3e9).all()
    assert frame["N"].is_unique
    assert frame["loss"].between(2.0, 4.5).all()
    params = dataset_info("grouped_ladder")["params"]
    assert {p["E"] for p in params.values()} == {1.7}
    assert {f: p["alpha_N"] for f, p in params.items()} == {
        "dense": 0.30,
        "moe": 0.33,
        "wide": 0.36,
        "deep": 0.31,
    }


def test_published_parameters_recorded():
    assert dataset_info("kaplan_ladder")["params"] == {
        "alpha_N": 0.076,
        "alpha_D": 0.103,
        "N_c": 6.4e13,
        "D_c": 1.8e13,
    }
    assert dataset_info("chinchilla_ladder")["params"] == {
        "E": 1.69,
        "A": 406.4,
        "B": 410.7,
        "alpha": 0.34,
        "beta": 0.28,
    }
    assert dataset_info("chinchilla_ladder")["units"]["N"] == "parameters (total)"
    assert dataset_info("kaplan_ladder")["units"]["N"] == "parameters (non-embedding)"
