"""Faults lose nothing: concurrent fits, kills, damaged or unusable caches, dying workers.

Fits run as a user runs them, ``python -m bayescale fit`` in subprocesses, on one 10-run
``power_n`` table with a short chain: about 6 s when the model is compiled, under 1 s from the
compiled-model cache. Each test gets its own cache directory (``BAYESCALE_CACHE_DIR``).

A kill lands at a known point through the private test hook of :mod:`bayescale.core.files`: with
``_BAYESCALE_TEST_PAUSE`` set to a stage, the fit stops there for good and says so on stderr,
and the test kills it with SIGKILL then, however fast or slow the machine is.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import dask
import distributed  # noqa: F401  (loads its config defaults, which the batch test changes)
import numpy as np
import pytest
import xarray as xr
from conftest import simulate_law

import bayescale as bs
from bayescale.core import files as _io
from bayescale.core.files import _PAUSE_ENV
from bayescale.fitting import cache
from bayescale.fitting.batch import fit_to_tree, run_batch

LAW = "power_n"
FIT_OPTIONS = ("--law", LAW, "--draws=50", "--tune=50", "--chains=1", "--seed=7", "--no-progress")


@pytest.fixture(scope="module")
def runs_csv(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("runs") / "runs.csv"
    simulate_law(LAW, n_runs=10, noise_sd=0.02, seed=1).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def reference(runs_csv, tmp_path_factory) -> dict:
    """A clean fit on a fresh cache: its posterior, and the cache holding its one entry."""
    work = tmp_path_factory.mktemp("reference")
    _fit(runs_csv, work / "fit.nc", work / "cache")
    return {"posterior": _posterior(work / "fit.nc"), "cache": work / "cache"}


def _command(runs: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "bayescale", "fit", str(runs), *FIT_OPTIONS, "-o", str(out)]


def _env(cache_dir: Path, pause: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != _PAUSE_ENV}
    env[cache.CACHE_ENV] = str(cache_dir)
    if pause is not None:
        env[_PAUSE_ENV] = pause
    return env


def _fit(runs: Path, out: Path, cache_dir: Path) -> str:
    """Run one fit to completion; return its stderr."""
    done = subprocess.run(
        _command(runs, out), env=_env(cache_dir), capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stderr


def _posterior(path: Path) -> xr.Dataset:
    return bs.load_fit(path).posterior  # load_fit also checks the file is a complete fit


def _valid_entry(cache_dir: Path) -> Path:
    """The cache's only file: an intact entry (so no temporary file lies beside it)."""
    files = list(cache_dir.iterdir())
    assert len(files) == 1 and files[0].suffix == ".nbm", files
    assert cache._read(files[0], files[0].stem) is not None
    return files[0]


# --------------------------------------------------------------------------------------------
# Atomic writes, in process
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("unnamed", [True, False], ids=["O_TMPFILE", "named temporary file"])
def test_atomic_file_replaces_whole_or_not_at_all(tmp_path, monkeypatch, unnamed):
    if not unnamed:  # what systems without O_TMPFILE get
        monkeypatch.setattr(_io, "_open_unnamed", lambda directory: None)
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(OSError, match="disk full"), _io.atomic_file(target) as handle:
        handle.write(b"half")
        raise OSError("disk full")
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]
    assert target.read_bytes() == b"old"

    with _io.atomic_file(target) as handle:
        handle.write(b"new")
        handle.seek(0)
        assert handle.read() == b"new"  # readable too, as HDF5 needs
        assert target.read_bytes() == b"old"  # nothing shows until the block ends
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]
    assert target.read_bytes() == b"new"
    assert target.stat().st_mode & 0o777 == 0o666 & ~_umask()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# --------------------------------------------------------------------------------------------
# Concurrency and kills
# --------------------------------------------------------------------------------------------
def test_two_fits_at_once_on_an_empty_cache_both_succeed_identically(runs_csv, reference, tmp_path):
    cache_dir = tmp_path / "cache"  # missing: the two fits also race to create it
    outs = [tmp_path / "first.nc", tmp_path / "second.nc"]
    fits = [
        subprocess.Popen(
            _command(runs_csv, out),
            env=_env(cache_dir),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for out in outs
    ]
    for proc in fits:
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-3000:]
    first, second = (_posterior(out) for out in outs)
    xr.testing.assert_equal(first, second)
    xr.testing.assert_equal(first, reference["posterior"])
    _valid_entry(cache_dir)


def _kill_when_paused(command: list[str], env: dict[str, str], stage: str) -> None:
    """Start ``command``, wait until it reports being paused at ``stage``, SIGKILL it."""
    proc = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    seen = []
    try:
        for line in proc.stderr:  # ends when the process exits without reaching the pause
            seen.append(line)
            if line.strip() == f"{_PAUSE_ENV}: paused at {stage}":
                break
        else:
            pytest.fail(f"never paused at {stage}: {''.join(seen)[-3000:]}")
    finally:
        proc.kill()
        proc.wait()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL


#: Where a fit is killed, and whether its cache already holds the model (else it compiles).
KILLS = {
    "mid-compile": ("compile", False),
    "mid-write of the cache entry": ("write:.nbm", False),
    "mid-write of the fit file": ("write:.nc", True),
}


@pytest.mark.parametrize(("stage", "warm"), list(KILLS.values()), ids=list(KILLS))
def test_a_killed_fit_leaves_no_output_and_a_usable_cache(
    runs_csv, reference, tmp_path, stage, warm
):
    cache_dir, out_dir = tmp_path / "cache", tmp_path / "out"
    out_dir.mkdir()
    if warm:
        shutil.copytree(reference["cache"], cache_dir)
    before = {p.name: p.read_bytes() for p in cache_dir.glob("*")} if warm else {}
    out = out_dir / "fit.nc"

    _kill_when_paused(_command(runs_csv, out), _env(cache_dir, pause=stage), stage)
    assert list(out_dir.iterdir()) == []  # no fit file, no temporary file beside it
    assert {p.name: p.read_bytes() for p in cache_dir.glob("*")} == before

    _fit(runs_csv, out, cache_dir)
    xr.testing.assert_equal(_posterior(out), reference["posterior"])
    assert list(out_dir.iterdir()) == [out]
    _valid_entry(cache_dir)


# --------------------------------------------------------------------------------------------
# Damaged and unusable caches
# --------------------------------------------------------------------------------------------
DAMAGE = {
    "garbage": lambda raw: np.random.default_rng(0).bytes(len(raw)),
    "truncated": lambda raw: raw[: len(raw) // 2],
}


@pytest.mark.parametrize("damage", list(DAMAGE), ids=list(DAMAGE))
def test_a_damaged_entry_is_detected_and_rebuilt(runs_csv, reference, tmp_path, damage):
    cache_dir = tmp_path / "cache"
    shutil.copytree(reference["cache"], cache_dir)
    entry = _valid_entry(cache_dir)
    damaged = DAMAGE[damage](entry.read_bytes())
    entry.write_bytes(damaged)

    _fit(runs_csv, tmp_path / "fit.nc", cache_dir)
    xr.testing.assert_equal(_posterior(tmp_path / "fit.nc"), reference["posterior"])
    assert _valid_entry(cache_dir) == entry and entry.read_bytes() != damaged


def test_a_cache_dir_that_cannot_be_created_costs_one_warning(runs_csv, reference, tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("a regular file, so nothing can be created under it")
    cache_dir = blocker / "cache"

    err = _fit(runs_csv, tmp_path / "fit.nc", cache_dir)
    warned = [line for line in err.splitlines() if line.startswith("warning: ")]
    about_cache = [line for line in warned if not line.startswith(f"warning: {LAW} fit: ")]
    assert about_cache == [
        f"warning: compiled-model cache {str(cache_dir)!r} is not usable (Not a directory); "
        f"compiling without a disk cache, so every new process compiles again. Set "
        f"{cache.CACHE_ENV} to a writable directory, or to 'none' to turn the disk cache off"
    ]
    xr.testing.assert_equal(_posterior(tmp_path / "fit.nc"), reference["posterior"])
    assert blocker.is_file()


def test_an_unusable_cache_dir_is_reported_once_per_process(tmp_path, monkeypatch):
    monkeypatch.setattr(cache, "_WARNED", set())
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    monkeypatch.setenv(cache.CACHE_ENV, str(blocker))  # the directory is itself a file
    with pytest.warns(cache.CacheWarning, match="is not usable") as caught:
        assert cache._entry_path("a") is None
        assert cache._entry_path("b") is None
    assert len(caught) == 1


def test_an_entry_that_cannot_be_written_is_reported_and_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(cache, "_WARNED", set())
    (tmp_path / "key.nbm").mkdir()  # the rename onto it fails after the data is written
    with pytest.warns(cache.CacheWarning, match="Is a directory"):
        cache._save(tmp_path / "key.nbm", {"format": cache.ENTRY_FORMAT})
    assert [p.name for p in tmp_path.iterdir()] == ["key.nbm"]
    assert list((tmp_path / "key.nbm").iterdir()) == []


# --------------------------------------------------------------------------------------------
# A Dask worker that dies mid-batch
# --------------------------------------------------------------------------------------------
BATCH_SETTINGS = {"sampler": "exact", "draws": 100, "chains": 1, "seed": 3}


def _fit_or_die(runs, law, store: str, marker: str | None = None, **fit_kwargs) -> xr.DataTree:
    """:func:`fit_to_tree`; but the first call given a ``marker`` kills its own worker.

    It does so mid-batch: once two other results are in the store, and before its own is.
    """
    if marker is not None and not Path(marker).exists():
        Path(marker).touch()
        give_up = time.monotonic() + 300  # not a timing assumption: a guard against a hang
        while len(list(Path(store).glob("*.nc"))) < 2:
            if time.monotonic() > give_up:
                raise RuntimeError("no other result was stored")
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGKILL)
    return fit_to_tree(runs, law, **fit_kwargs)


def test_a_batch_whose_worker_dies_keeps_finished_fits_and_resumes(tmp_path):
    store = tmp_path / "store"
    tasks = {
        f"ladder{i}": {
            "runs": simulate_law(LAW, n_runs=10, noise_sd=0.02, seed=i),
            "law": LAW,
            "store": str(store),
            **BATCH_SETTINGS,
        }
        for i in range(6)
    }
    tasks["ladder0"]["marker"] = str(tmp_path / "died")
    # A task on a dead worker fails at once rather than being retried on another worker (the
    # default), so that the rerun has something left to do.
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        first = run_batch(_fit_or_die, tasks, store=store, n_workers=2)
    status = first["status"].to_series()
    done = set(status[status == "done"].index)
    assert status["ladder0"] == "failed"  # the task that killed its worker, and maybe one more
    assert str(first["error"].sel(task="ladder0").values).startswith("KilledWorker")
    assert len(done) >= 2
    assert {p.stem for p in store.glob("*.nc")} == done
    kept = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in store.glob("*.nc")}

    again = run_batch(_fit_or_die, tasks, store=store, n_workers=2)
    assert (again["status"] == "done").all()
    reused = again["reused"].to_series()
    assert set(reused[reused].index) == done  # finished fits are loaded, not redone
    now = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in store.glob("*.nc")}
    assert kept.items() <= now.items()  # untouched on disk
    assert sorted(p.name for p in store.iterdir()) == [f"ladder{i}.nc" for i in range(6)]
    for key in tasks:  # and every result is the fit of its own table
        here = bs.fit(tasks[key]["runs"], LAW, **BATCH_SETTINGS).posterior
        xr.testing.assert_equal(again[key]["posterior"].to_dataset(inherit=False), here)
