"""Batch fits on Dask: results complete, single failures recorded, finished fits not redone.

A LocalCluster with 2 worker processes fits 21 simulated ``power_n`` ladders and one table
with a negative loss. The exact sampler keeps each fit to milliseconds, so the test measures
the batch machinery (scheduling, gathering, storage, resuming), not sampling; the exact
sampler is deterministic given its seed, so a fit made on a worker must equal the same fit
made here, draw for draw.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr
from conftest import simulate_law
from distributed import Client, LocalCluster

import bayescale as bs
from bayescale.calibration.sbc import sbc
from bayescale.core.errors import ConfigError
from bayescale.fitting.batch import SERIAL, BatchOptions, fit_many, run_batch

LAW = "power_n"
N_GOOD = 21
SETTINGS = {"sampler": "exact", "draws": 200, "chains": 2, "seed": 3}


def _tables() -> dict:
    tables = {
        f"ladder{i:02d}": simulate_law(LAW, n_runs=12, noise_sd=0.02, seed=i) for i in range(N_GOOD)
    }
    bad = simulate_law(LAW, n_runs=12, noise_sd=0.02, seed=99)
    bad.loc[4, "loss"] = -1.0  # a mis-logged run: the loader rejects it
    tables["bad"] = bad
    return tables


@pytest.fixture(scope="module")
def client():
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as cluster,
        Client(cluster) as connected,
    ):
        yield connected


@pytest.fixture(scope="module")
def first_run(client, tmp_path_factory):
    store = tmp_path_factory.mktemp("batch")
    tables = _tables()
    tree = fit_many(tables, LAW, store=store, client=client, **SETTINGS)
    return tables, store, tree


def test_batch_on_two_workers_records_the_failure_and_completes_the_rest(first_run, client):
    tables, store, tree = first_run
    assert len(client.scheduler_info()["workers"]) == 2
    status = tree["status"].to_series()
    assert list(status.index) == list(tables)
    assert (status.drop("bad") == "done").all()
    assert status["bad"] == "failed"
    assert tree.attrs["n_failed"] == 1
    error = str(tree["error"].sel(task="bad").values)
    assert error.startswith("RunsTableError") and "loss" in error
    assert not tree["reused"].values.any()

    # One child per finished fit; the failed one has none and left its record on disk.
    assert sorted(tree.children) == sorted(k for k in tables if k != "bad")
    record = json.loads((store / "bad.failed.json").read_text())
    assert record["error"] == error and "Traceback" in record["traceback"]
    assert not (store / "bad.nc").exists()

    # Every stored result is a complete fit file, identical to the fit made in this process.
    for key in ("ladder00", "ladder13", "ladder20"):
        stored = bs.load_fit(store / f"{key}.nc")
        here = bs.fit(tables[key], LAW, **SETTINGS)
        for name in ("log_L0", "alpha_N", "sigma", "N_c"):
            np.testing.assert_array_equal(stored.posterior[name], here.posterior[name])
            np.testing.assert_array_equal(tree[key]["posterior"][name], here.posterior[name])
        assert stored.n_runs == 12


def test_rerun_skips_finished_fits_and_retries_the_failed_one(first_run, client):
    tables, store, _ = first_run
    stamps = {p.name: p.stat().st_mtime_ns for p in store.glob("*.nc")}
    assert len(stamps) == N_GOOD

    # The bad table is fixed and one good table changes: only those two are fitted again.
    changed = dict(tables)
    changed["bad"] = simulate_law(LAW, n_runs=12, noise_sd=0.02, seed=99)
    changed["ladder05"] = simulate_law(LAW, n_runs=12, noise_sd=0.02, seed=505)
    again = fit_many(changed, LAW, store=store, client=client, **SETTINGS)

    reused = again["reused"].to_series()
    assert set(reused[~reused].index) == {"bad", "ladder05"}
    assert (again["status"] == "done").all() and again.attrs["n_failed"] == 0
    assert not (store / "bad.failed.json").exists()
    for name, stamp in stamps.items():
        if name != "ladder05.nc":
            assert (store / name).stat().st_mtime_ns == stamp, name
    refit = bs.fit(changed["ladder05"], LAW, **SETTINGS)
    np.testing.assert_array_equal(
        again["ladder05"]["posterior"]["alpha_N"], refit.posterior["alpha_N"]
    )
    # Reused results are those of the first run, loaded from disk.
    np.testing.assert_array_equal(
        again["ladder00"]["posterior"]["alpha_N"], first_run[2]["ladder00"]["posterior"]["alpha_N"]
    )


def test_sbc_on_the_cluster_equals_sbc_in_process(client, tmp_path):
    """Simulation i draws from the random stream (seed, i) wherever it runs, so calibration
    results do not depend on the scheduler, the worker or the order of completion."""
    settings = {"n_sims": 24, "draws": 100, "chains": 2, "seed": 4}
    remote = sbc(LAW, **settings, client=client, store=tmp_path)
    local = sbc(LAW, **settings, scheduler=SERIAL)
    for name in ("truth", "rank", "pit", "p_pot_c", "p_chi2"):
        xr.testing.assert_equal(remote[name], local[name])
    assert len(list(tmp_path.glob("sim*.nc"))) == 24


def _scaled(x: float, fail: bool = False) -> xr.Dataset:
    if fail:
        raise ValueError(f"cannot scale {x}")
    return xr.Dataset({"y": ((), 2 * x)})


def test_serial_mode_reports_progress_and_failures(tmp_path, capsys):
    tasks = {f"t{i}": {"x": float(i), "fail": i == 2} for i in range(5)}
    tree = run_batch(_scaled, tasks, scheduler=SERIAL, store=tmp_path, progress=True)
    assert [float(tree[k]["y"]) for k in ("t0", "t1", "t3", "t4")] == [0.0, 2.0, 6.0, 8.0]
    assert str(tree["error"].sel(task="t2").values) == "ValueError: cannot scale 2.0"
    err = capsys.readouterr().err
    assert "batch: task t2 failed: ValueError: cannot scale 2.0" in err
    assert "batch: 5/5 tasks done (1 failed" in err

    # A second run loads the four results and runs only the failed task.
    again = run_batch(_scaled, tasks, scheduler=SERIAL, store=tmp_path, progress=True)
    assert again["reused"].values.tolist() == [True, True, False, True, True]
    assert "4 of 5 tasks already finished in the store" in capsys.readouterr().err


def test_a_corrupt_stored_result_is_recomputed(tmp_path):
    tasks = {"a": {"x": 1.0}, "b": {"x": 2.0}}
    run_batch(_scaled, tasks, scheduler=SERIAL, store=tmp_path)
    (tmp_path / "b.nc").write_bytes(b"not netCDF")
    again = run_batch(_scaled, tasks, scheduler=SERIAL, store=tmp_path)
    assert again["reused"].values.tolist() == [True, False]
    assert float(again["b"]["y"]) == 4.0


def test_bad_batch_options_are_refused():
    with pytest.raises(ConfigError, match="not usable as a file name"):
        run_batch(_scaled, {"a/b": {"x": 1.0}}, scheduler=SERIAL)
    with pytest.raises(ConfigError, match="n_workers"):
        run_batch(_scaled, {"a": {"x": 1.0}}, n_workers=0)
    with pytest.raises(bs.UnknownNameError, match="unknown law"):
        fit_many({"a": None}, "power_q", scheduler=SERIAL)


def test_batch_options_hold_the_keyword_arguments_of_run_batch(tmp_path):
    """run_batch, fit_many and sbc share their five batch keyword arguments through
    BatchOptions: the same defaults, the same run, the same errors."""
    import dataclasses
    import inspect

    names = [f.name for f in dataclasses.fields(BatchOptions)]
    assert names == ["store", "client", "scheduler", "n_workers", "progress"]
    for function in (run_batch, fit_many, sbc):
        params = inspect.signature(function).parameters
        assert {n: params[n].default for n in names} == dataclasses.asdict(BatchOptions())
    tasks = {"a": {"x": 1.0}, "b": {"x": 2.0}}
    options = BatchOptions(store=tmp_path, scheduler=SERIAL)
    tree = options.run(_scaled, tasks)
    again = run_batch(_scaled, tasks, store=tmp_path, scheduler=SERIAL)
    assert [float(tree[k]["y"]) for k in tasks] == [float(again[k]["y"]) for k in tasks]
    assert again["reused"].values.tolist() == [True, True]
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.n_workers = 2  # type: ignore[misc]
    with pytest.raises(ConfigError, match="n_workers must be a whole number >= 1, got 0"):
        BatchOptions(n_workers=0).run(_scaled, tasks)
    with pytest.raises(ConfigError, match="give either client= or scheduler='serial'"):
        BatchOptions(client=object(), scheduler=SERIAL).run(_scaled, tasks)  # type: ignore[arg-type]
