"""The compiled-model cache: reuse across processes, identical draws, damage never fatal.

One model is compiled for real (into a private cache directory); every other check reuses its
entry. Corruption tests replace the compiler with one that hands back that model, so they check
the cache's handling (ignore, rebuild, rewrite) without paying for more compilations.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import simulate_law

import bayescale as bs
from bayescale.core.priors import Prior
from bayescale.fitting import cache
from bayescale.laws.base import get_law
from bayescale.model.build import ModelData, data_values, default_priors
from bayescale.model.start import initial_point_fn, start_point

LAW = "chinchilla"
SETTINGS = {"draws": 1000, "tune": 1000, "chains": 2, "seed": 11}

#: Run in a fresh interpreter: fit the same table from the cache, refusing to compile.
CHILD = """
import json, sys
import numpy as np
import pandas as pd
import bayescale as bs
from bayescale.fitting import cache

def refuse(*args, **kwargs):
    raise AssertionError("compiled although the cache had the model")

cache._compile = refuse
settings = json.loads(sys.argv[2])
fit = bs.fit(pd.read_csv(sys.argv[1]), "chinchilla", **settings)
np.save(sys.argv[3], fit.posterior["alpha"].values)
"""


@pytest.fixture(scope="module")
def cache_env(tmp_path_factory):
    """A private cache directory holding one compiled chinchilla model, and its first fit."""
    directory = tmp_path_factory.mktemp("compiled")
    patch = pytest.MonkeyPatch()
    patch.setenv(cache.CACHE_ENV, str(directory))
    cache.clear_cache(disk=False)
    runs = simulate_law(LAW, n_runs=40, noise_sd=0.01, seed=5)
    first = bs.fit(runs, LAW, **SETTINGS)
    entries = list(directory.glob("*.nbm"))
    yield {"dir": directory, "runs": runs, "first": first, "entries": entries}
    cache.clear_cache(disk=False)
    patch.undo()


def _only_entry(env) -> Path:
    entries = list(env["dir"].glob("*.nbm"))
    assert len(entries) == 1, entries
    return entries[0]


def test_first_fit_writes_one_entry(cache_env):
    assert len(cache_env["entries"]) == 1
    assert cache_env["first"].diagnostics.divergences == 0


def test_fresh_process_loads_the_cache_and_draws_identically(cache_env, tmp_path):
    table, out = tmp_path / "runs.csv", tmp_path / "alpha.npy"
    cache_env["runs"].to_csv(table, index=False)  # shortest round-trip floats: same numbers
    child = subprocess.run(
        [sys.executable, "-c", CHILD, str(table), json.dumps(SETTINGS), str(out)],
        env={**_environ(), cache.CACHE_ENV: str(cache_env["dir"])},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert child.returncode == 0, child.stderr[-2000:]
    np.testing.assert_array_equal(np.load(out), cache_env["first"].posterior["alpha"].values)


def _environ() -> dict[str, str]:
    import os

    return dict(os.environ)


def test_in_process_disk_load_matches_fresh_compile(cache_env, monkeypatch):
    cache.clear_cache(disk=False)  # forget the in-memory model: next fit must read the disk
    monkeypatch.setattr(cache, "_compile", _refuse)
    again = bs.fit(cache_env["runs"], LAW, **SETTINGS)
    for name in ("alpha", "beta", "log_E", "sigma"):
        np.testing.assert_array_equal(
            again.posterior[name].values, cache_env["first"].posterior[name].values
        )


def _refuse(*args, **kwargs):
    raise AssertionError("compiled although the cache had the model")


def test_same_graph_other_data_reuses_the_model(cache_env, monkeypatch):
    """Other data and prior values of the same shape: no compile, and a correct fit."""
    monkeypatch.setattr(cache, "_compile", _refuse)
    runs = simulate_law(LAW, n_runs=40, noise_sd=0.005, seed=99)  # well determined
    priors = {"alpha": {"dist": "LogNormal", "mu": -1.2, "sigma": 0.5}}
    f = bs.fit(runs, LAW, priors=priors, **SETTINGS)
    alpha = f.posterior["alpha"]
    assert abs(float(alpha.mean()) - 0.34) < 4 * float(alpha.std())
    assert f.diagnostics.divergences == 0


# --------------------------------------------------------------------------------------------
# Command-line cold start: a fresh process imports only what sampling from the cache needs
# --------------------------------------------------------------------------------------------
#: Runs the CLI in a fresh interpreter, then reports which heavy packages it imported.
CLI_CHILD = """
import json, sys
from bayescale.cli.app import main
code = main(sys.argv[2:])
heavy = {"arviz", "arviz_base", "arviz_stats", "arviz_plots", "matplotlib", "pymc", "pytensor",
         "dask", "distributed", "scipy.stats", "scipy.optimize"}
with open(sys.argv[1], "w") as handle:
    json.dump({"code": code, "imported": sorted(heavy & set(sys.modules))}, handle)
"""


def _cli_child(tmp_path, env_dir, *argv):
    report = tmp_path / "modules.json"
    child = subprocess.run(
        [sys.executable, "-c", CLI_CHILD, str(report), *argv],
        env={**_environ(), cache.CACHE_ENV: str(env_dir)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert child.returncode == 0, child.stderr[-2000:]
    return json.loads(report.read_text()), child.stdout


def test_cli_fit_and_summary_from_the_cache_import_no_heavy_package(cache_env, tmp_path):
    """What makes `bayescale fit` + `summary` fast from fresh processes, and still right:
    no PyMC, PyTensor, ArviZ, Matplotlib, Dask or SciPy statistics/optimisers are imported,
    the draws are those of the in-process fit, and the stored summary is the full one."""
    table, out = tmp_path / "runs.csv", tmp_path / "fit.nc"
    cache_env["runs"].to_csv(table, index=False)
    options = [f"--{k}={v}" for k, v in SETTINGS.items()]
    fitted, _ = _cli_child(
        tmp_path, cache_env["dir"], "fit", str(table), "--law", LAW, "-o", str(out), *options
    )
    assert fitted == {"code": 0, "imported": []}
    summarised, text = _cli_child(tmp_path, cache_env["dir"], "summary", str(out), "--json")
    assert summarised == {"code": 0, "imported": []}
    loaded = bs.load_fit(out)
    np.testing.assert_array_equal(
        loaded.posterior["alpha"].values, cache_env["first"].posterior["alpha"].values
    )
    # The stored summary is what the full reader computes from the draws.
    assert json.loads(text) == json.loads(json.dumps(loaded.summary_dict()))


def test_summary_falls_back_to_the_draws_for_another_probability(cache_env, tmp_path):
    from bayescale.fitting.result import stored_summary

    path = cache_env["first"].save(tmp_path / "fit.nc")
    assert stored_summary(path)["params"] == cache_env["first"].summary_dict()["params"]
    assert stored_summary(path, prob=0.9) is None
    assert stored_summary(tmp_path / "missing.nc") is None
    (tmp_path / "junk.nc").write_bytes(b"not hdf5")
    assert stored_summary(tmp_path / "junk.nc") is None


def test_raw_trace_conversion_matches_nutpies_own(cache_env):
    """bayescale converts nutpie's Arrow trace itself (no ArviZ): same numbers as nutpie's."""
    import pandas as pd
    from nutpie.sample import _arrow_to_arviz

    from bayescale.fitting import nutpie as _nutpie

    law = get_law(LAW)
    runs = cache_env["runs"]
    data = ModelData.from_arrays({k: runs[k].to_numpy() for k in law.inputs}, runs["loss"])
    priors = default_priors(law, data.summary)
    values = data_values(law, data, priors)
    compiled = cache.compiled_model(law, data, priors, "normal", values)
    logs = [v.name for v in compiled.free if v.transform == "log"]
    start = start_point(law, data, priors, log_scale=[k for k in law.latents if k in logs])
    init = initial_point_fn(law, compiled.free, start, priors, compiled.nutpie.n_dim)
    model = compiled.bind(values, {"run": np.arange(data.n_runs)}, init)
    raw = _nutpie.import_nutpie().sample(
        model,
        draws=60,
        tune=60,
        chains=2,
        seed=3,
        progress_bar=False,
        save_warmup=False,
        return_raw_trace=True,
    )
    draws, stats = raw.get_arrow_trace()
    ours = _nutpie.to_tree(
        draws, stats, coords=model.coords, reparameterized=set(model.reparameterized_names)
    )
    theirs = _arrow_to_arviz(
        draws,
        stats,
        reparameterized_names=model.reparameterized_names,
        coords={k: pd.Index(v) for k, v in model.coords.items()},
        save_warmup=False,
    )
    post, ref = ours["posterior"].to_dataset(), theirs["posterior"].to_dataset()
    assert set(post.data_vars) == set(ref.data_vars)
    assert post.sizes == ref.sizes
    for name in ref.data_vars:
        assert post[name].dims == ref[name].dims
        np.testing.assert_array_equal(post[name].values, ref[name].values)
    stat, ref_stat = ours["sample_stats"].to_dataset(), theirs["sample_stats"].to_dataset()
    for name in ("diverging", "energy", "step_size", "depth", "n_steps", "logp"):
        np.testing.assert_array_equal(stat[name].values, ref_stat[name].values)


def test_nutpie_is_imported_without_arviz_and_arviz_still_works():
    code = (
        "import sys\n"
        "from bayescale.fitting.nutpie import import_nutpie\n"
        "nutpie = import_nutpie()\n"
        "assert 'arviz' not in sys.modules, 'arviz imported'\n"
        "s = sys.modules['nutpie.sample']\n"
        "assert callable(s.arviz.from_dict)  # the stand-in hands over to the real ArviZ\n"
        "import arviz\n"
        "assert s.arviz.from_dict is arviz.from_dict and type(arviz).__name__ == 'module'\n"
    )
    child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert child.returncode == 0, child.stderr[-2000:]


def test_deferred_dask_probes_hand_over_once_dask_is_imported(tmp_path):
    code = (
        "import sys\n"
        "import numpy as np, xarray as xr\n"
        "from bayescale.cli.startup import defer_dask_probes\n"
        "assert defer_dask_probes()\n"
        "ds = xr.Dataset({'x': ('i', np.arange(4.0))}, coords={'i': np.arange(4)})\n"
        f"ds.to_netcdf({str(tmp_path / 'a.nc')!r}, engine='h5netcdf')\n"
        "assert 'dask' not in sys.modules, 'dask imported'\n"
        "import dask.array as da\n"
        "lazy = xr.DataArray(da.arange(6.0, chunks=3), dims='j')\n"
        "assert lazy.chunks == ((3, 3),) and not isinstance(lazy.data, np.ndarray)\n"
        "assert float((lazy * 2).sum().compute()) == 30.0\n"
        f"lazy.to_dataset(name='y').to_netcdf({str(tmp_path / 'b.nc')!r}, engine='h5netcdf')\n"
        f"back = xr.open_dataset({str(tmp_path / 'b.nc')!r}, engine='h5netcdf', chunks={{}})\n"
        "assert back['y'].chunks is not None and float(back['y'].sum()) == 15.0\n"
    )
    child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert child.returncode == 0, child.stderr[-2000:]


# --------------------------------------------------------------------------------------------
# Damaged entries
# --------------------------------------------------------------------------------------------
def _flip(raw: bytes) -> bytes:
    middle = len(raw) // 2
    return raw[:middle] + bytes([raw[middle] ^ 0xFF]) + raw[middle + 1 :]


def _repickle(entry: object) -> bytes:
    body = pickle.dumps(entry)
    return cache._MAGIC + hashlib.sha256(body).digest() + body


def _missing_field(raw: bytes) -> bytes:
    """A well-formed entry (valid checksum) that lacks one of its functions."""
    entry = pickle.loads(raw[len(cache._MAGIC) + 32 :])
    del entry["expand"]
    return _repickle(entry)


def _other_format(raw: bytes) -> bytes:
    entry = pickle.loads(raw[len(cache._MAGIC) + 32 :])
    return _repickle({**entry, "format": cache.ENTRY_FORMAT + 1})


def _not_pickle(raw: bytes) -> bytes:
    body = b"definitely not a pickle"
    return cache._MAGIC + hashlib.sha256(body).digest() + body


# Object code whose checksum is valid but which does not fit this process is not tested: LLVM
# aborts the process on a bad object file. The key (library versions, CPU) and the checksum
# are what keep such code out.


DAMAGE = {
    "truncated": lambda raw: raw[: len(raw) // 3],
    "empty": lambda raw: b"",
    "bit flip": _flip,
    "not a pickle": _not_pickle,
    "missing field": _missing_field,
    "other format": _other_format,
}


@pytest.mark.parametrize("damage", list(DAMAGE), ids=list(DAMAGE))
def test_damaged_entry_is_ignored_and_rebuilt(cache_env, monkeypatch, damage):
    entry = _only_entry(cache_env)
    good = entry.read_bytes()
    law = get_law(LAW)
    runs = cache_env["runs"]
    data = ModelData.from_arrays({k: runs[k].to_numpy() for k in law.inputs}, runs["loss"])
    priors = default_priors(law, data.summary)
    values = data_values(law, data, priors)
    cache.clear_cache(disk=False)
    reference = cache.compiled_model(law, data, priors, "normal", values)  # from disk
    assert reference.origin == "disk"
    compiled = []

    def recompile(*args, **kwargs):
        # Stands in for nutpie: hands back the model and the entry the real compile wrote.
        compiled.append(True)
        entry = pickle.loads(good[len(cache._MAGIC) + 32 :])
        return dataclasses.replace(reference, origin="compiled"), entry

    monkeypatch.setattr(cache, "_compile", recompile)
    entry.write_bytes(DAMAGE[damage](good))
    cache.clear_cache(disk=False)
    try:
        result = cache.compiled_model(law, data, priors, "normal", values)
        assert compiled == [True] and result.origin == "compiled"
        assert cache._read(entry, reference.key) is not None  # rewritten, intact
    finally:
        entry.write_bytes(good)
        cache.clear_cache(disk=False)


# --------------------------------------------------------------------------------------------
# Keys and settings (no sampling)
# --------------------------------------------------------------------------------------------
def _inputs(law_name: str, seed: int, n: int = 12):
    law = get_law(law_name)
    runs = simulate_law(law_name, n_runs=n, noise_sd=0.01, seed=seed)
    data = ModelData.from_arrays({k: runs[k].to_numpy() for k in law.inputs}, runs["loss"])
    return law, data, default_priors(law, data.summary)


def test_key_depends_on_graph_not_on_values():
    law, data, priors = _inputs(LAW, 1)
    _, other_data, other_priors = _inputs(LAW, 2)
    key = cache.model_key(law, data, priors, "normal")
    assert key == cache.model_key(law, other_data, other_priors, "normal")
    assert key != cache.model_key(law, data, priors, "student_t")
    changed = {**priors, "alpha": Prior("Gamma", alpha=2.0, beta=6.0)}
    assert key != cache.model_key(law, data, changed, "normal")
    other_law, other_law_data, other_law_priors = _inputs("kaplan_nd", 1)
    assert key != cache.model_key(other_law, other_law_data, other_law_priors, "normal")


def test_cache_location_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(cache.CACHE_ENV, "none")
    assert cache.cache_dir() is None
    assert cache.clear_cache() == 0
    monkeypatch.delenv(cache.CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache.cache_dir() == tmp_path / "bayescale"
