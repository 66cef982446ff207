"""Many independent fits on Dask: calibration, backtests, per-group or per-task fits.

One fit is small; what grows is the number of fits. :func:`run_batch` runs a function once per
task through :mod:`dask.distributed` (a :class:`~distributed.LocalCluster` by default, or an
existing cluster by its scheduler address) and gathers the results into one
:class:`xarray.DataTree`:

* **failures are data**: a task that raises is recorded (status ``"failed"`` and the error
  message) and the other tasks go on; a worker that dies is recorded the same way;
* **resumable**: with ``store=DIR`` every finished result is written to ``DIR/<task>.nc`` as
  soon as it arrives (atomically, so an interrupted batch never leaves half a file), and a
  re-run loads it instead of recomputing it. A stored result is reused only if it was made by
  the same function with the same arguments (a content hash of both is kept in the file), so
  changing a task's data or settings recomputes just that task. Failed tasks are retried;
* **progress** is reported on stderr as results arrive.

:func:`fit_many` is the common case: fit one law to many runs tables; each stored result is an
ordinary fit file that :func:`bayescale.fitting.result.load_fit` reads.

Results are written by the client (this process), never by workers, so a remote cluster needs
no shared file system.
"""

from __future__ import annotations

import json
import math
import re
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bayescale.core.errors import ConfigError
from bayescale.core.files import atomic_write_netcdf, atomic_write_text

if TYPE_CHECKING:
    import xarray as xr
    from distributed import Client

__all__ = ["SERIAL", "TASK", "BatchOptions", "fit_many", "fit_to_tree", "run_batch"]

#: Name of the dimension along which per-task status is gathered.
TASK = "task"
#: ``scheduler=SERIAL`` runs the tasks one after another in this process, with the same
#: storage, failure and resume behaviour (no Dask); compiled models are then shared with the
#: caller, which suits small batches and tests.
SERIAL = "serial"
#: Attribute of stored results holding the hash of the function and arguments that made them.
DIGEST_ATTR = "bayescale_batch_digest"
_KEY = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.=+-]*$")


@dataclass
class _Outcome:
    """What a task sends back: its result, or the error that stopped it."""

    value: Any = None
    error: str = ""
    trace: str = ""
    warnings: list[str] = field(default_factory=list)
    seconds: float = math.nan


def _run_task(fn: Callable[..., Any], kwargs: Mapping[str, Any]) -> _Outcome:
    """Call ``fn(**kwargs)`` on a worker; turn exceptions and warnings into data."""
    # numpy, xarray, dask and distributed are imported where used: Dask workers import
    # this module, and a batch imports distributed (~0.4 s) only when it starts one
    import xarray as xr

    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            value = fn(**kwargs)
            if not isinstance(value, xr.Dataset | xr.DataTree):
                raise TypeError(
                    f"batch task function {fn.__name__} returned {type(value).__name__}; "
                    "it must return an xarray Dataset or DataTree"
                )
        except Exception as exc:
            return _Outcome(
                error=f"{type(exc).__name__}: {exc}",
                trace=traceback.format_exc(),
                warnings=_messages(caught),
                seconds=time.perf_counter() - start,
            )
    return _Outcome(value=value, warnings=_messages(caught), seconds=time.perf_counter() - start)


def _messages(caught: list[warnings.WarningMessage]) -> list[str]:
    return list(dict.fromkeys(f"{w.category.__name__}: {w.message}" for w in caught))


# --------------------------------------------------------------------------------------------
# Storage
# --------------------------------------------------------------------------------------------
def _digest(fn: Callable[..., Any], kwargs: Mapping[str, Any]) -> str:
    """Content hash of a task (function and arguments), stable across processes."""
    from dask.base import tokenize

    return tokenize(f"{fn.__module__}.{fn.__qualname__}", dict(kwargs))


def _stored(store: Path, key: str, digest: str) -> xr.DataTree | None:
    """Return the stored result of ``key`` if it exists, is readable and is from this task."""
    import xarray as xr

    path = store / f"{key}.nc"
    if not path.is_file():
        return None
    try:
        with xr.open_datatree(path, engine="h5netcdf") as handle:
            tree = handle.load()
    except Exception:  # a corrupt or foreign file is recomputed, not trusted
        return None
    if tree.attrs.get(DIGEST_ATTR) != digest:
        return None
    return tree


def _write(
    store: Path | None, key: str, value: xr.Dataset | xr.DataTree, digest: str
) -> xr.DataTree:
    """Write a result atomically; return it as a DataTree (as a re-run would load it)."""
    import xarray as xr

    tree = value.copy() if isinstance(value, xr.DataTree) else xr.DataTree(value.copy())
    tree.attrs = {**tree.attrs, DIGEST_ATTR: digest}
    if store is not None:
        atomic_write_netcdf(tree, store / f"{key}.nc")
        (store / f"{key}.failed.json").unlink(missing_ok=True)
    return tree


def _write_failure(store: Path | None, key: str, outcome: _Outcome, digest: str) -> None:
    if store is None:
        return
    record = {
        "task": key,
        "error": outcome.error,
        "traceback": outcome.trace,
        "warnings": outcome.warnings,
        "digest": digest,
    }
    atomic_write_text(store / f"{key}.failed.json", json.dumps(record, indent=2))


# --------------------------------------------------------------------------------------------
# Execution
# --------------------------------------------------------------------------------------------
@contextmanager
def _client(options: BatchOptions) -> Iterator[Client | None]:
    """Yield the Dask client: the given one, one connected to ``scheduler``, or a new cluster's."""
    client, scheduler, n_workers = options.client, options.scheduler, options.n_workers
    if scheduler == SERIAL:
        if client is not None:
            raise ConfigError(f"give either client= or scheduler={SERIAL!r}, not both")
        yield None
        return
    if client is not None:
        if scheduler is not None:
            raise ConfigError("give either client= or scheduler=, not both")
        if n_workers is not None:
            raise ConfigError("n_workers= starts a local cluster; drop it with client=")
        yield client
        return
    from distributed import Client, LocalCluster

    with ExitStack() as stack:
        if scheduler is None:
            # One thread per worker: nutpie runs chains on its own threads, and PyTensor's
            # compilation is not meant to run in several threads of one process.
            cluster = stack.enter_context(
                LocalCluster(
                    n_workers=n_workers,
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address=":0",
                )
            )
            yield stack.enter_context(Client(cluster))
        else:
            if n_workers is not None:
                raise ConfigError("n_workers= starts a local cluster; drop it with scheduler=")
            try:
                connected = Client(scheduler, timeout="20s")
            except OSError as exc:
                raise ConfigError(
                    f"cannot connect to the Dask scheduler at {scheduler!r}: {exc}"
                ) from None
            yield stack.enter_context(connected)


def _outcomes(
    fn: Callable[..., Any], todo: Mapping[str, Mapping[str, Any]], client: Client | None
) -> Iterator[tuple[str, _Outcome]]:
    """Yield ``(key, outcome)`` as tasks finish, serially or on the cluster."""
    if client is None:
        for key, kwargs in todo.items():
            yield key, _run_task(fn, kwargs)
        return
    from distributed import as_completed

    futures = {
        client.submit(_run_task, fn, kwargs, pure=False): key for key, kwargs in todo.items()
    }
    for future in as_completed(futures):
        key = futures[future]
        if future.status == "finished":
            yield key, future.result()
        else:  # the worker died (e.g. out of memory) or the task could not be sent
            exc = future.exception()
            yield key, _Outcome(error=f"{type(exc).__name__}: {exc}")
        future.release()


class _Progress:
    """One stderr line per tenth of the batch and per failure."""

    def __init__(self, total: int, done: int, enabled: bool) -> None:
        self.total, self.done, self.failed, self.enabled = total, done, 0, enabled
        self.start = time.perf_counter()
        self.next = 0
        if enabled and done:
            self._line(f"{done} of {total} tasks already finished in the store")

    def update(self, key: str, outcome: _Outcome) -> None:
        self.done += 1
        if outcome.error:
            self.failed += 1
            self._line(f"task {key} failed: {outcome.error}")
        if self.done >= self.next or self.done == self.total:
            elapsed = time.perf_counter() - self.start
            self._line(
                f"{self.done}/{self.total} tasks done ({self.failed} failed, {elapsed:.0f} s)"
            )
            self.next = self.done + max(1, self.total // 10)

    def _line(self, text: str) -> None:
        if self.enabled:
            print(f"batch: {text}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class BatchOptions:
    """Where and how the tasks of a batch run, and :meth:`run`, which runs them.

    The keyword arguments ``store``, ``client``, ``scheduler``, ``n_workers`` and ``progress``
    of :func:`run_batch` (documented there), which :func:`fit_many` and
    :func:`bayescale.calibration.sbc.sbc` take too: each gathers them here and calls
    :meth:`run`, so they are checked and used in one place, with the same defaults and errors.

    Attributes
    ----------
    store : str or path, optional
        Directory of finished and failed tasks (resume).
    client : distributed.Client, optional
        Client of the cluster to use.
    scheduler : str, optional
        Scheduler address, or :data:`SERIAL`.
    n_workers : int, optional
        Workers of the local cluster.
    progress : bool
        Report progress on stderr.
    """

    store: str | Path | None = None
    client: Client | None = None
    scheduler: str | None = None
    n_workers: int | None = None
    progress: bool = False

    def run(
        self,
        fn: Callable[..., xr.Dataset | xr.DataTree],
        tasks: Mapping[str, Mapping[str, Any]],
    ) -> xr.DataTree:
        """Run ``fn(**kwargs)`` for every task with these options; see :func:`run_batch`.

        Parameters
        ----------
        fn : callable
            Importable function returning an :class:`xarray.Dataset` or DataTree.
        tasks : mapping of str to mapping
            Task name to keyword arguments of ``fn``.

        Returns
        -------
        xarray.DataTree
            As :func:`run_batch`.

        Raises
        ------
        ConfigError
            For a bad task name, an unreachable scheduler, or conflicting options.
        """
        import numpy as np
        import xarray as xr

        for key in tasks:
            if not isinstance(key, str) or not _KEY.match(key):
                raise ConfigError(
                    f"batch task name {key!r} is not usable as a file name: use letters, digits "
                    "and _.=+- (not starting with one of .-+=)"
                )
        n_workers = self.n_workers
        if n_workers is not None and (not isinstance(n_workers, int) or n_workers < 1):
            raise ConfigError(f"n_workers must be a whole number >= 1, got {n_workers!r}")
        folder = None if self.store is None else Path(self.store)
        if folder is not None:
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ConfigError(f"cannot create batch store {str(folder)!r}: {exc}") from None

        digests = {key: _digest(fn, kwargs) for key, kwargs in tasks.items()}
        results: dict[str, xr.DataTree] = {}
        outcomes: dict[str, _Outcome] = {}
        if folder is not None:
            for key in tasks:
                found = _stored(folder, key, digests[key])
                if found is not None:
                    results[key] = found
        todo = {key: kwargs for key, kwargs in tasks.items() if key not in results}
        bar = _Progress(len(tasks), len(results), self.progress)
        if todo:
            with _client(self) as dask_client:
                for key, outcome in _outcomes(fn, todo, dask_client):
                    if outcome.error:
                        _write_failure(folder, key, outcome, digests[key])
                    else:
                        results[key] = _write(folder, key, outcome.value, digests[key])
                        outcome.value = None
                    outcomes[key] = outcome
                    bar.update(key, outcome)

        keys = list(tasks)
        status = np.array(["done" if k in results else "failed" for k in keys])
        root = xr.Dataset(
            {
                "status": (TASK, status),
                "error": (
                    TASK,
                    np.array([outcomes[k].error if k in outcomes else "" for k in keys]),
                ),
                "warnings": (
                    TASK,
                    np.array(
                        ["\n".join(outcomes[k].warnings) if k in outcomes else "" for k in keys]
                    ),
                ),
                "seconds": (TASK, np.array([outcomes.get(k, _Outcome()).seconds for k in keys])),
                "reused": (TASK, np.array([k not in outcomes for k in keys])),
            },
            coords={TASK: np.array(keys, dtype=str)},
            attrs={"n_failed": int((status == "failed").sum())},
        )
        return xr.DataTree(dataset=root, children={k: results[k] for k in keys if k in results})


def run_batch(
    fn: Callable[..., xr.Dataset | xr.DataTree],
    tasks: Mapping[str, Mapping[str, Any]],
    *,
    store: str | Path | None = None,
    client: Client | None = None,
    scheduler: str | None = None,
    n_workers: int | None = None,
    progress: bool = False,
) -> xr.DataTree:
    """Run ``fn(**kwargs)`` for every task, on Dask, and gather the results.

    Parameters
    ----------
    fn : callable
        Importable (module-level) function returning an :class:`xarray.Dataset` or
        :class:`xarray.DataTree`; it runs on the workers.
    tasks : mapping of str to mapping
        Task name to keyword arguments of ``fn``. Names become file and node names: letters,
        digits and ``_.=+-``, not starting with ``.``, ``-``, ``+`` or ``=``.
    store : path, optional
        Directory (created if missing) holding one file per finished task, ``<task>.nc``, and
        per failed task, ``<task>.failed.json`` (error and traceback). Finished tasks found
        there with the same function and arguments are loaded instead of recomputed.
    client : distributed.Client, optional
        Use this client's cluster.
    scheduler : str, optional
        Address of an existing Dask scheduler (``"tcp://host:8786"``), or :data:`SERIAL` to run
        in this process. Default: start a :class:`~distributed.LocalCluster` for this batch
        (``n_workers`` processes, one thread each) and close it afterwards.
    n_workers : int, optional
        Workers of the local cluster (default: Dask's choice, one per core).
    progress : bool
        Report progress on stderr.

    Returns
    -------
    xarray.DataTree
        Root dataset along dim ``task`` (in the order of ``tasks``): ``status`` (``"done"`` or
        ``"failed"``), ``error`` (message, empty when done), ``warnings`` (warnings the task
        issued, one per line), ``seconds`` (run time; NaN when loaded from the store) and
        ``reused`` (loaded from the store). One child node per finished task, named by the
        task, holding its result.

    Raises
    ------
    ConfigError
        For a bad task name, an unreachable scheduler, or conflicting options.

    Examples
    --------
    >>> from bayescale.fitting.batch import SERIAL, run_batch
    >>> import xarray as xr
    >>> out = run_batch(xr.Dataset, {"a": {"attrs": {"x": 1}}}, scheduler=SERIAL)
    >>> out["status"].values.tolist()
    ['done']
    """
    return BatchOptions(store, client, scheduler, n_workers, progress).run(fn, tasks)


# --------------------------------------------------------------------------------------------
# Fits
# --------------------------------------------------------------------------------------------
def fit_to_tree(runs: Any, law: str, **fit_kwargs: Any) -> xr.DataTree:
    """Fit ``law`` to ``runs`` and return the fit as its file would hold it.

    The task function of :func:`fit_many`; the result is exactly what
    :meth:`bayescale.fitting.result.Fit.save` writes, so a stored result is a fit file.
    """
    import xarray as xr

    from bayescale.fitting.pipeline import fit

    fitted = fit(runs, law, **fit_kwargs)
    with tempfile.TemporaryDirectory(prefix="bayescale-batch-") as tmp:
        path = fitted.save(Path(tmp) / "fit.nc")
        with xr.open_datatree(path, engine="h5netcdf") as handle:
            return handle.load()


def fit_many(
    tables: Mapping[str, Any],
    law: str,
    *,
    store: str | Path | None = None,
    client: Client | None = None,
    scheduler: str | None = None,
    n_workers: int | None = None,
    progress: bool = False,
    **fit_kwargs: Any,
) -> xr.DataTree:
    """Fit one law to many runs tables in parallel (see :func:`run_batch`).

    Parameters
    ----------
    tables : mapping of str to runs table
        Task name to a runs table (DataFrame, file path or bundled dataset name). A path is
        recognised by its name when resuming: if the file changes, use a new ``store`` (or
        pass the table as a DataFrame, which is recognised by content).
    law : str
        Registered law name.
    store, client, scheduler, n_workers, progress
        Where and how the fits run (:class:`BatchOptions`); see :func:`run_batch`. Each stored
        result ``<store>/<name>.nc`` is a fit file
        (:func:`bayescale.fitting.result.load_fit`).
    **fit_kwargs
        Passed to :func:`bayescale.fitting.pipeline.fit` (sampler, draws, priors, groups...).

    Returns
    -------
    xarray.DataTree
        As :func:`run_batch`: per-task status at the root, and each finished fit (groups
        ``posterior``, ``sample_stats``, ``observed_data``, ``constant_data``, ``runs``) as a
        child named by the task.
    """
    from bayescale.laws.base import get_law

    name = get_law(law).name  # fail early on a bad name; workers get the plain name
    tasks = {key: {"runs": runs, "law": name, **fit_kwargs} for key, runs in tables.items()}
    return BatchOptions(store, client, scheduler, n_workers, progress).run(fit_to_tree, tasks)
