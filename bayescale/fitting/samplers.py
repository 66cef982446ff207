"""Samplers, registered by name.

``"nutpie"`` (default; NUTS compiled with numba and cached on disk, see
:mod:`bayescale.fitting.cache`), ``"pymc"`` (PyMC's own NUTS) and ``"exact"`` (the conjugate
posterior of log-linear laws, :mod:`bayescale.fitting.exact`).

A sampler takes a :class:`SamplerRequest` and returns a DataTree with ``posterior`` and
``sample_stats``; :func:`register_sampler` adds one.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from bayescale.core.dims import RUN
from bayescale.core.errors import (
    SamplingWarning,
    UnknownNameError,
    did_you_mean,
)
from bayescale.core.priors import Prior
from bayescale.fitting import nutpie
from bayescale.fitting.cache import compiled_model
from bayescale.fitting.exact import sample_exact
from bayescale.fitting.result import RHAT_MAX, Diagnostics
from bayescale.laws.base import Law
from bayescale.model.build import (
    ModelData,
    build_model,
    data_values,
)
from bayescale.model.start import check_mode, initial_point_fn, pymc_initial_point_fn, start_point

if TYPE_CHECKING:
    import xarray as xr

__all__ = ["SamplerRequest", "get_sampler", "list_samplers", "register_sampler"]


# --------------------------------------------------------------------------------------------
# Samplers
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SamplerRequest:
    """What a sampler needs: the law, data, priors and settings."""

    law: Law
    data: ModelData
    priors: dict[str, Prior]
    likelihood: str
    draws: int
    tune: int
    chains: int
    seed: int
    progressbar: bool
    target_accept: float = 0.8


SamplerFn = Callable[[SamplerRequest], "xr.DataTree"]
_SAMPLERS: dict[str, SamplerFn] = {}


def register_sampler(name: str) -> Callable[[SamplerFn], SamplerFn]:
    """Register a sampler function under ``name``."""

    def deco(fn: SamplerFn) -> SamplerFn:
        _SAMPLERS[name] = fn
        return fn

    return deco


def get_sampler(name: str) -> SamplerFn:
    """Return the sampler registered as ``name``.

    Raises
    ------
    UnknownNameError
        If there is none; the message lists the valid names.
    """
    try:
        return _SAMPLERS[name]
    except KeyError:
        raise UnknownNameError(
            f"unknown sampler {name!r}. " + did_you_mean(name, list(_SAMPLERS))
        ) from None


def list_samplers() -> list[str]:
    """Names of the registered samplers."""
    return list(_SAMPLERS)


#: nutpie's mass-matrix adaptation. "low_rank" (a diagonal plus low-rank correction estimated
#: from draws and gradients) absorbs the correlations between a law's exponents, scales and
#: irreducible loss that a diagonal one leaves to the integrator: on the 245-run Chinchilla
#: ladder (4 x 1000 draws) NUTS then takes ~7 leapfrog steps per draw instead of ~23, and the
#: smallest bulk ESS rises from ~600 to ~4000: ~20x the effective samples per gradient.
NUTPIE_ADAPTATION = "low_rank"
#: Smallest target acceptance of a low-rank run. Its metric is one global approximation, so
#: curved corners of small ladders need smaller steps: on a 24-run Chinchilla ladder 0.8 gave
#: 1-9 divergences in every seed tried and 0.95 none, at ~9 instead of ~6 leapfrog steps per
#: draw (still a third of the diagonal adaptation's ~30, with 1.5x its ESS).
LOW_RANK_TARGET_ACCEPT = 0.95


@register_sampler("nutpie")
def _sample_nutpie(req: SamplerRequest) -> xr.DataTree:
    """NUTS with nutpie, on a compiled model from the cache, started near the mode.

    Pooled laws start at draws from the Laplace approximation of the penalised least-squares
    optimum (:mod:`bayescale.model.start`; a variable projection for Chinchilla) and are checked
    against it afterwards; other models start where PyMC would.
    """
    law, data = req.law, req.data
    values = data_values(law, data, req.priors)
    compiled = compiled_model(law, data, req.priors, req.likelihood, values)
    n_dim = compiled.nutpie.n_dim
    start = init = None
    if data.pooling is None and data.offsets is None and data.run_effect is None:
        logs = [v.name for v in compiled.free if v.transform == "log"]
        start = start_point(law, data, req.priors, log_scale=[k for k in law.latents if k in logs])
        init = initial_point_fn(law, compiled.free, start, req.priors, n_dim)
    if init is not None:
        coords: Mapping[str, Any] = {RUN: np.arange(data.n_runs)}  # a pooled model's only dim
    else:
        model = build_model(law, data, priors=req.priors, likelihood=req.likelihood)
        # PyMC keeps coordinate values as tuples, which nutpie cannot take.
        coords = {k: pd.Index(list(v)) for k, v in model.coords.items()}
        init = pymc_initial_point_fn(model, compiled.free, n_dim)
    bound = compiled.bind(values, coords, init)
    # Hierarchical posteriors change curvature with the population scale; there the
    # low-rank estimate misleads the step size (on simulated 4-10 group ladders it gave
    # 3-12 divergences and R-hat up to 1.035 where the diagonal one gave none). Pooled
    # posteriors of weakly identified ladders can be curved the same way (40 noisy Chinchilla
    # runs: up to 124 divergences), so a low-rank run that diverges or whose chains disagree
    # is redone with the diagonal adaptation.
    attempts = (NUTPIE_ADAPTATION, "diag") if not _hierarchical(data) else ("diag",)
    for adaptation in attempts:
        target = req.target_accept
        if adaptation == "low_rank":
            target = max(target, LOW_RANK_TARGET_ACCEPT)
        trace = nutpie.sample(
            bound,
            draws=req.draws,
            tune=req.tune,
            chains=req.chains,
            seed=req.seed,
            progress_bar=req.progressbar,
            target_accept=target,
            adaptation=adaptation,
        )
        if adaptation == attempts[-1]:
            break
        health = Diagnostics.from_tree(trace)
        if not health.divergences and (req.chains == 1 or health.max_r_hat <= RHAT_MAX):
            break
    trace["sample_stats"].attrs["adaptation"] = adaptation
    if start is not None and req.likelihood == "normal":
        stuck = check_mode(law, data, req.priors, start, trace["posterior"].to_dataset())
        if stuck:
            warnings.warn(
                f"{law.name} fit: chain(s) {', '.join(map(str, stuck))} never came near the "
                "least-squares optimum of the data: they are stuck in a worse mode; refit with "
                "more tuning or another seed",
                SamplingWarning,
                stacklevel=3,
            )
    return trace


@register_sampler("pymc")
def _sample_pymc(req: SamplerRequest) -> xr.DataTree:
    # pymc is imported where used (~0.7 s): only the pymc sampler needs it
    import pymc as pm

    model = build_model(req.law, req.data, priors=req.priors, likelihood=req.likelihood)
    return pm.sample(
        model=model,
        draws=req.draws,
        tune=req.tune,
        chains=req.chains,
        random_seed=req.seed,
        nuts_sampler="pymc",
        target_accept=req.target_accept,
        progressbar=req.progressbar,
        compute_convergence_checks=False,
    )


@register_sampler("exact")
def _sample_exact(req: SamplerRequest) -> xr.DataTree:

    return sample_exact(
        req.law,
        req.data,
        req.priors,
        likelihood=req.likelihood,
        draws=req.draws,
        chains=req.chains,
        seed=req.seed,
    )


def _hierarchical(data: ModelData) -> bool:
    """Whether some latent is drawn from a learned population (partial pooling)."""
    return data.pooling is not None and "partial" in data.pooling.modes.values()
