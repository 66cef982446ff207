"""Shared fixtures: simulated scaling ladders with known true parameters.

Every simulated table is built the same way, so a test reads as "take the law's published
parameters, make a realistic ladder of runs with multiplicative noise, fit, and check the
truth comes back":

* inputs are drawn log-uniformly over ranges typical of published ladders (``N`` 1e6-1e10
  parameters, 4e7-1e10 for Chinchilla whose fit starts at 44M; ``D`` 1e8-1e12 tokens; ``C``
  1e17-1e22 FLOPs);
* the loss is ``evaluate(law, params, inputs) * exp(Normal(0, noise_sd))``, which is exactly
  the models' likelihood (Normal on log loss with scatter ``sigma = noise_sd``).

Two things every test file takes from here rather than spelling out:

* **Seeds.** Statistical tests (marker ``statistical``) take every seed, of simulated data and
  of fits, through :func:`seeded` (the helpers here do so themselves), so one variable,
  ``BAYESCALE_TEST_SEED``, moves them all: ``benchmarks/seed_sweep.py`` reruns those tests
  over many values to measure how often each passes. Unset (0), the seeds are the literal ones.
* **The public tables.** Tests reading ``../shared/data`` are marked :data:`needs_shared_data`:
  they skip, naming the folder, where it is absent (a fresh clone elsewhere); ``.ci/run``
  refuses to start without it, so CI never skips them.

Fits that several test files need with the same data and settings are session fixtures here
(:func:`chinchilla_ladder_fit`, :func:`n_only_fit`), built once per pytest process (once per
xdist worker). Tests only read them: a test that changes a fit works on a copy.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import bayescale as bs
from bayescale.laws.base import evaluate, get_law
from bayescale.runs.table import PF_DAY_FLOPS

#: Root of the repository (the parent of ``tests/``).
ROOT = Path(__file__).resolve().parents[1]
#: The public tables (OLMo ladder, Gemstones, Revisiting-NSL): ``<repo>/../shared/data``, or
#: the folder named by ``BAYESCALE_SHARED_DATA`` (which ``.ci/run`` checks the same way).
SHARED_DATA = Path(os.environ.get("BAYESCALE_SHARED_DATA") or ROOT.parent / "shared" / "data")
#: Mark of the tests that read :data:`SHARED_DATA`: skipped, with the folder named, without it.
needs_shared_data = pytest.mark.skipif(
    not SHARED_DATA.is_dir(),
    reason=f"needs the public tables in {SHARED_DATA}, which is absent "
    "(set BAYESCALE_SHARED_DATA to their folder)",
)

#: Offset of every test seed, from ``BAYESCALE_TEST_SEED`` (default 0: the seeds as written).
SEED_OFFSET = int(os.environ.get("BAYESCALE_TEST_SEED") or 0)
#: Seeds of one sweep value are ``seed + 100_000 * value``: apart from every other value's,
#: since the tests' literal seeds stay below 100_000.
_SEED_STRIDE = 100_000
#: Largest distance of a truth from its posterior mean, in posterior sds, that
#: :func:`far_from_truth` accepts. A calibrated, near-normal posterior puts a fixed truth that
#: far out with probability 6e-5, so a check of ten quantities fails by chance once in ~1600
#: seeds; a real bias (wrong centring, units, a dropped term) misses by tens of sds.
Z_MAX = 4.0


def seeded(seed: int) -> int:
    """``seed`` moved by ``BAYESCALE_TEST_SEED`` (unchanged when it is unset or 0)."""
    return seed + _SEED_STRIDE * SEED_OFFSET


def rng(seed: int) -> np.random.Generator:
    """``numpy.random.default_rng`` of :func:`seeded` ``(seed)``."""
    return np.random.default_rng(seeded(seed))


def _draws(posterior: xr.Dataset, key: str) -> np.ndarray:
    """Draws of ``name`` or of one element ``name[label]`` (a summary-table row name)."""
    name, _, label = key.partition("[")
    values = posterior[name]
    if label:
        (dim,) = [d for d in values.dims if d not in ("chain", "draw")]
        values = values.sel({dim: label.rstrip("]")})
    return np.asarray(values.values, dtype=float).ravel()


def far_from_truth(
    posterior: xr.Dataset, truth: Mapping[str, float], *, z_max: float = Z_MAX
) -> dict[str, float]:
    """Truths more than ``z_max`` posterior sds from the posterior mean, with their distance.

    Positive quantities (scales, exponents, noise sds) are compared in log space, where their
    posteriors are close to normal; ``truth`` keys are variable names or summary-row names
    such as ``"alpha_N[g0]"``. An empty result means every truth was recovered.
    """
    out = {}
    for key, value in truth.items():
        draws = _draws(posterior, key)
        if value > 0 and np.all(draws > 0):
            draws, value = np.log(draws), np.log(value)
        z = abs(float(draws.mean()) - value) / float(draws.std())
        if not z <= z_max:
            out[key] = round(z, 2)
    return out


#: Log-uniform input ranges (canonical units) used by :func:`design`.
RANGES: dict[str, tuple[float, float]] = {
    "N": (1e6, 1e10),
    "D": (1e8, 1e12),
    "C": (1e17, 1e22),
    # Learning curves: steps past warmup to the end of long runs, and batch sizes from far
    # below to far above the critical batch (Kaplan: B_crit ~ 1e5-1e7 tokens at 2-5 nats).
    "step": (1e3, 3e5),
    "batch": (1e4, 1e7),
}
#: Chinchilla's fit (Hoffmann 2022, Approach 3) used models from 44M parameters up.
CHINCHILLA_N_RANGE = (4e7, 1e10)

#: True parameters of each registered law. Pure power laws and kaplan_nd use Kaplan et al. 2020
#: (arXiv:2001.08361, Table 5 / eqs. 1.1-1.5; C_c converted from PF-days to FLOPs); chinchilla
#: uses Hoffmann et al. 2022 (eq. 10). The ``_e`` laws have no published fit: E = 1.7 nats and
#: alpha = 0.3, with X_c chosen so the loss spans about 1.9-4.7 nats over the design range.
TRUE_PARAMS: dict[str, dict[str, float]] = {
    "power_n": {"alpha_N": 0.076, "N_c": 8.8e13},
    "power_d": {"alpha_D": 0.095, "D_c": 5.4e13},
    "power_c": {"alpha_C": 0.050, "C_c": 3.1e8 * PF_DAY_FLOPS},
    "power_n_e": {"E": 1.7, "alpha_N": 0.3, "N_c": 3e7},
    "power_d_e": {"E": 1.7, "alpha_D": 0.3, "D_c": 3e9},
    "power_c_e": {"E": 1.7, "alpha_C": 0.3, "C_c": 4e18},
    "kaplan_nd": {"alpha_N": 0.076, "alpha_D": 0.103, "N_c": 6.4e13, "D_c": 1.8e13},
    "chinchilla": {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28},
    # Learning curves: Kaplan 2020 sec. 5 (alpha_N 0.077, N_c 6.5e13, alpha_S 0.76, S_c 2.1e3,
    # B* 2e8 tokens, alpha_B 0.21). critical_batch is one model size: E = (N_c/N)^alpha_N at
    # N = 1e8, 2.80 nats.
    "kaplan_ns": {"alpha_N": 0.077, "alpha_S": 0.76, "N_c": 6.5e13, "S_c": 2.1e3},
    "kaplan_ns_bcrit": {
        "alpha_N": 0.077,
        "alpha_S": 0.76,
        "alpha_B": 0.21,
        "N_c": 6.5e13,
        "S_c": 2.1e3,
        "B_star": 2e8,
    },
    "critical_batch": {"E": 2.8, "alpha_S": 0.76, "alpha_B": 0.21, "S_c": 2.1e3, "B_star": 2e8},
}


def true_params(law: str) -> dict[str, float]:
    """Published (or, for the ``_e`` laws, chosen) parameters of ``law``, in paper names."""
    try:
        return dict(TRUE_PARAMS[law])
    except KeyError:
        raise AssertionError(
            f"law {law!r} is registered but has no true parameters in tests/conftest.py; "
            "add an entry to TRUE_PARAMS so the registry-wide tests cover it"
        ) from None


def design(law: str, n_runs: int, seed: int) -> dict[str, np.ndarray]:
    """Log-uniform inputs for ``law`` over :data:`RANGES` (one array per law input)."""
    generator = rng(seed)
    out = {}
    for name in get_law(law).inputs:
        low, high = CHINCHILLA_N_RANGE if (law == "chinchilla" and name == "N") else RANGES[name]
        out[name] = np.exp(generator.uniform(np.log(low), np.log(high), size=n_runs))
    return out


def simulate(
    law: str,
    params: Mapping[str, float],
    inputs: Mapping[str, np.ndarray],
    noise_sd: float,
    seed: int,
) -> pd.DataFrame:
    """Runs table: ``inputs`` plus ``loss = evaluate(law, params, inputs) * exp(N(0, noise_sd))``.

    Parameters
    ----------
    law : str
        Registered law name.
    params : mapping
        True paper parameters.
    inputs : mapping
        Inputs in canonical units (parameters, tokens, FLOPs), equal-length arrays.
    noise_sd : float
        Scatter of the log loss (0.01 = 1 % of the loss).
    seed : int
        Seed of the noise (moved by :func:`seeded`).
    """
    frame = pd.DataFrame({k: np.asarray(v, dtype=float) for k, v in inputs.items()})
    clean = evaluate(law, params, {k: frame[k].to_numpy() for k in frame.columns})
    frame["loss"] = clean * np.exp(rng(seed).normal(0.0, noise_sd, size=len(frame)))
    return frame


def simulate_law(law: str, *, n_runs: int, noise_sd: float, seed: int) -> pd.DataFrame:
    """:func:`simulate` with the law's :func:`true_params` and :func:`design`."""
    return simulate(law, true_params(law), design(law, n_runs, seed), noise_sd, seed + 1)


@pytest.fixture(name="simulate")
def simulate_fixture():
    """The :func:`simulate` helper, for tests that prefer a fixture to an import."""
    return simulate


# --------------------------------------------------------------------------------------------
# Fits shared by several test files (session scope: one per pytest process or xdist worker).


@pytest.fixture(scope="session")
def chinchilla_ladder_fit() -> bs.Fit:
    """chinchilla on the bundled 56-run ``chinchilla_ladder``: 4 chains x 1000 draws, 1000 tune,
    ``target_accept=0.95``, seed :func:`seeded` ``(1)``.

    Shared by ``test_optimal`` and ``test_overfit``, whose statistical tests check it recovers
    the published parameters (hence the full draws, and the seed moved by
    ``BAYESCALE_TEST_SEED``). The isoFLOP ladder's posterior has a narrow ridge between E and
    the exponents: smaller steps than the default keep NUTS free of divergences on it.
    """
    return bs.fit(
        "chinchilla_ladder",
        "chinchilla",
        draws=1000,
        tune=1000,
        chains=4,
        seed=seeded(1),
        target_accept=0.95,
    )


@pytest.fixture(scope="session")
def n_only_fit() -> bs.Fit:
    """power_n, exact sampler (2 chains x 100 draws, default seed), on six runs with no data size D:
    ``N`` 1e6-1e9 log-spaced, loss 4 to 3. The fit that questions needing D must refuse."""
    runs = pd.DataFrame({"N": np.geomspace(1e6, 1e9, 6), "loss": np.linspace(4, 3, 6)})
    return bs.fit(runs, "power_n", sampler="exact", draws=100, chains=2)
