"""Atomic file writes: a crash never leaves a half-written fit or report behind.

:func:`atomic_file` is the one to use: on Linux its data has no name until it is complete
(``O_TMPFILE``), so even a process killed with SIGKILL, which runs no clean-up, leaves neither
a partial file nor a temporary one. :func:`atomic_path` is for writers that need a file name
(a hidden temporary file beside the target, removed on any exception but not on SIGKILL), and
:func:`atomic_write_netcdf` picks between them for netCDF files.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import xarray as xr

#: Test hook (tests/test_faults.py): a process stops forever at the point this names, so a
#: test can kill it there instead of after a guessed delay. Never set outside tests.
_PAUSE_ENV = "_BAYESCALE_TEST_PAUSE"


def pause_point(stage: str) -> None:
    """Block forever if ``$_BAYESCALE_TEST_PAUSE`` is ``stage``, after saying so on stderr."""
    if os.environ.get(_PAUSE_ENV) != stage:
        return
    print(f"{_PAUSE_ENV}: paused at {stage}", file=sys.stderr, flush=True)
    while True:
        time.sleep(3600)


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike[str]) -> Iterator[io.BufferedRandom]:
    """Yield a binary file that appears at ``path``, complete, only if the block succeeds.

    Parameters
    ----------
    path : path-like
        Final destination. Its directory must exist. An existing file there is replaced
        atomically: readers see the old content or the new, never a mix.

    Yields
    ------
    io.BufferedRandom
        File open for reading and writing (``w+b``), e.g. for ``Dataset.to_netcdf(handle)``.
    """
    target = Path(path)
    fd = _open_unnamed(target.parent)
    if fd is None:
        with atomic_path(target) as tmp, tmp.open("w+b") as handle:
            yield handle
        return
    try:
        with os.fdopen(fd, "w+b", closefd=False) as handle:
            yield handle
        pause_point(f"write:{target.suffix}")
        _link_unnamed(fd, target)
    finally:
        os.close(fd)


def _open_unnamed(directory: Path) -> int | None:
    """Open a new file without a name in ``directory``; None where that is not supported."""
    flag = getattr(os, "O_TMPFILE", 0)
    # Naming the file afterwards goes through its /proc/self/fd link.
    if not flag or not os.path.isdir("/proc/self/fd"):
        return None
    try:
        return os.open(directory, flag | os.O_RDWR, 0o666)  # the umask applies, as for open()
    except OSError as exc:
        # Old kernels see O_TMPFILE as O_DIRECTORY (EISDIR); some file systems refuse it.
        if exc.errno in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL):
            return None
        raise


def _link_unnamed(fd: int, target: Path) -> None:
    """Give the unnamed file ``fd`` the name ``target``, replacing any file there."""
    # linkat() cannot replace a file, so the data gets a hidden name first and is then renamed
    # over the target: only a kill between these two system calls leaves the hidden name.
    directory = os.open(target.parent, os.O_RDONLY | os.O_DIRECTORY)
    hidden = f".{target.name}.{os.urandom(6).hex()}.tmp"
    try:
        # With a dir_fd, os.link calls linkat(AT_SYMLINK_FOLLOW), which links the file the
        # /proc link points at; without one it calls link(), which would link the link itself.
        os.link(f"/proc/self/fd/{fd}", hidden, dst_dir_fd=directory, follow_symlinks=True)
        try:
            os.replace(hidden, target.name, src_dir_fd=directory, dst_dir_fd=directory)
        except BaseException:
            os.unlink(hidden, dir_fd=directory)
            raise
    finally:
        os.close(directory)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it onto ``path`` only if the block succeeds.

    Prefer :func:`atomic_file`: a process killed with SIGKILL inside this block leaves the
    temporary file (``.<name>.<random>.tmp``) behind.

    Parameters
    ----------
    path : path-like
        Final destination. Its directory must exist.

    Yields
    ------
    pathlib.Path
        Temporary file in the same directory (so the final rename is atomic on POSIX).
    """
    target = Path(path)
    directory = target.parent if str(target.parent) else Path(".")
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=directory)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        # mkstemp makes the file private (0600); give it the permissions a plain open() would.
        umask = os.umask(0)
        os.umask(umask)
        tmp.chmod(0o666 & ~umask)
        pause_point(f"write:{target.suffix}")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``path`` atomically (UTF-8)."""
    with atomic_file(path) as handle:
        handle.write(text.encode("utf-8"))


def atomic_write_netcdf(data: xr.Dataset | xr.DataTree, path: str | os.PathLike[str]) -> None:
    """Write ``data`` to ``path`` as netCDF-4 (engine h5netcdf), atomically.

    Through :func:`atomic_file`, so that not even SIGKILL leaves a partial or temporary file,
    except in a process that uses a Dask cluster (a batch client or worker): there xarray guards
    every write with a cluster-wide lock named by the write's target, which a file object cannot
    name (writing to memory fails the same way), so the data goes through :func:`atomic_path`.

    Parameters
    ----------
    data : xarray.Dataset or xarray.DataTree
        What to write.
    path : path-like
        Final destination. Its directory must exist.
    """
    if _cluster_in_use():
        with atomic_path(path) as tmp:
            data.to_netcdf(tmp, engine="h5netcdf")
    else:
        with atomic_file(path) as handle:
            data.to_netcdf(handle, engine="h5netcdf")


def _cluster_in_use() -> bool:
    """Whether xarray would take a Dask cluster-wide lock to write a file now."""
    if "distributed" not in sys.modules:  # no cluster without it; and asking would import it
        return False
    # xarray is imported where used: the CLI writes text files through this module, and
    # only a netCDF write on a Dask cluster asks xarray
    from xarray.backends.locks import get_dask_scheduler

    return get_dask_scheduler() == "distributed"
