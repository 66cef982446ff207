"""Shared pieces of the benchmarks: simulated ladders, naive PyMC models, timing, ESS.

Ladders reuse the test suite's simulator (``tests/conftest.py``: published parameters,
log-uniform designs, 1 % multiplicative noise), so benchmarks and tests see the same data.

The *naive* model is the law as a user would write it from the paper: priors directly on the
paper's parameters, raw inputs (no centring, no logs), a Normal likelihood on the loss itself.
Its priors are weak and on the natural scale (exponents HalfNormal(1), E HalfNormal(5),
Chinchilla's A and B HalfNormal(1000)); scales spanning many orders of magnitude (``N_c`` ~
1e13) get a LogNormal centred on the published value with sd 2 (a factor ~7), since no user
would put a HalfNormal on them.
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from collections.abc import Callable, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from conftest import RANGES, design, simulate, true_params  # noqa: E402

from bayescale.laws.base import get_law  # noqa: E402

__all__ = ["RANGES", "design", "true_params"]  # re-exported from the test suite's simulator

RESULTS = ROOT / "benchmarks" / "results"
#: The real tables (read-only, never copied here): ``../shared/data`` beside the repository, as
#: CI has it, or wherever ``BAYESCALE_SHARED_DATA`` points (as for the tests).
SHARED_DATA = Path(os.environ.get("BAYESCALE_SHARED_DATA", ROOT.parent / "shared" / "data"))


def shared_name(path: Path) -> str:
    """``path`` under :data:`SHARED_DATA` named as results name it (``shared/data/...``)."""
    return str(Path("shared") / "data" / path.relative_to(SHARED_DATA))


NOISE_SD = 0.01
DRAWS, TUNE, CHAINS = 1000, 1000, 4


def ladder(law: str, n_runs: int, seed: int = 0) -> pd.DataFrame:
    """Simulated runs table of ``law`` with its published parameters (see module docstring)."""
    return simulate(law, true_params(law), design(law, n_runs, seed), NOISE_SD, seed + 1)


@contextmanager
def quiet() -> Any:
    """Silence warnings and PyMC's logging while timing."""
    import logging

    logger = logging.getLogger("pymc")
    level = logger.level
    logger.setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            yield
        finally:
            logger.setLevel(level)


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """Wall time (s) of ``fn()`` and its result."""
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def timed_cpu(fn: Callable[[], Any]) -> tuple[float, float, Any]:
    """Wall time and CPU time (all threads of this process, s) of ``fn()``, and its result."""
    cpu = time.process_time()
    wall, out = timed(fn)
    return wall, time.process_time() - cpu, out


def min_ess(posterior: Any, names: list[str]) -> tuple[float, float]:
    """Smallest bulk and tail ESS over ``names`` (every element of vector parameters)."""
    import arviz as az

    sub = posterior[[n for n in names if n in posterior]]
    with np.errstate(invalid="ignore", divide="ignore"):
        bulk = az.ess(sub, method="bulk")
        tail = az.ess(sub, method="tail")
    return (
        float(min(float(bulk[v].min()) for v in bulk.data_vars)),
        float(min(float(tail[v].min()) for v in tail.data_vars)),
    )


def divergences(tree: Any) -> int:
    """Divergent transitions after tuning."""
    stats = tree["sample_stats"]
    return int(stats["diverging"].sum()) if "diverging" in stats else 0


def record(case: str, variant: str, **fields: Any) -> dict[str, Any]:
    """One result row; ESS per second is computed on the total wall time."""
    # Other jobs on a shared machine slow every variant alike only roughly: each row keeps the
    # load it was measured under.
    row = {"case": case, "variant": variant, **fields, "load": os.getloadavg()[0]}
    wall, ess = row.get("wall_s"), row.get("min_ess_bulk")
    if wall and ess is not None:
        row["ess_per_s"] = ess / wall
    return row


# --------------------------------------------------------------------------------------------
# Naive PyMC models
# --------------------------------------------------------------------------------------------
def _naive_prior(pm: Any, name: str, law: str, label: str | None = None) -> Any:
    """Naive prior of paper parameter ``name`` (as variable ``label``, default ``name``)."""
    label = label or name
    if name == "E":
        return pm.HalfNormal(label, 5.0)
    if name.startswith(("alpha", "beta")):
        return pm.HalfNormal(label, 1.0)
    if name in ("A", "B"):
        return pm.HalfNormal(label, 1000.0)
    return pm.LogNormal(label, mu=float(np.log(true_params(law)[name])), sigma=2.0)


class _TensorNamespace:
    """``pytensor.tensor`` with numpy's ``asarray`` spelling, which the laws' inverses use."""

    def __getattr__(self, name: str) -> Any:
        import pytensor.tensor as pt

        return pt.as_tensor_variable if name == "asarray" else getattr(pt, name)


_PT = _TensorNamespace()


def naive_model(law_name: str, runs: pd.DataFrame, groups: str | None = None) -> Any:
    """The law written naively in PyMC (see module docstring).

    With ``groups``, every exponent and amplitude varies by group around a population
    (centred: ``alpha[g] ~ Normal(mu_alpha, tau_alpha)``), as a first hierarchical attempt
    would, and ``E`` is shared.
    """
    import pymc as pm
    import pytensor.tensor as pt

    law = get_law(law_name)
    coords = {}
    if groups is not None:
        labels, index = np.unique(runs[groups].to_numpy(), return_inverse=True)
        coords[groups] = labels
    with pm.Model(coords=coords) as model:
        params = {}
        for name in law.params:
            if groups is None or name == "E":
                params[name] = _naive_prior(pm, name, law_name)
                continue
            mu = _naive_prior(pm, name, law_name, label=f"mu_{name}")
            tau = pm.HalfNormal(f"tau_{name}", 0.5 * (1.0 if name.startswith("al") else 100.0))
            params[name] = pm.Normal(name, mu, tau, dims=groups)[index]
        # The law's own formula on raw inputs (centre 0) in the paper's parameters.
        zero = dict.fromkeys(law.inputs, 0.0)
        latents = law.from_params(params, zero, _PT)
        log_inputs = {k: np.log(runs[k].to_numpy(dtype=float)) for k in law.inputs}
        mu = pt.exp(law.log_loss(latents, log_inputs, pt))
        sigma = pm.HalfNormal("sigma", 1.0)
        pm.Normal("loss", mu=mu, sigma=sigma, observed=runs["loss"].to_numpy(dtype=float))
    return model


def paper_names(law_name: str) -> list[str]:
    """Parameters compared across variants: the paper's parameters and the noise scale."""
    return [*get_law(law_name).params, "sigma"]


def describe_machine() -> Mapping[str, Any]:
    """Load, cores and library versions, stored with the results."""
    import os
    import platform
    from importlib import metadata

    versions = {}
    for name in ("bayescale", "pymc", "pytensor", "nutpie", "numba", "numpyro", "jax"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_average": list(os.getloadavg()),
        "versions": versions,
    }
