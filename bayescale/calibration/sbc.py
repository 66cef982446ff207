r"""Simulation-based calibration (SBC): checks that posteriors mean what they say.

If parameters are drawn from the prior, :math:`\theta^\star \sim p(\theta)`, data from the
model, :math:`y \sim p(y \mid \theta^\star)`, and the posterior :math:`p(\theta \mid y)` is
computed correctly, then :math:`\theta^\star` is itself a draw from that posterior. The rank
of :math:`\theta^\star` among :math:`L` independent posterior draws is therefore uniform on
:math:`\{0, \dots, L\}`, for every parameter (Talts et al. 2018, arXiv:1804.06788). Any error
in the model code, the parametrisation or the sampler (bias, too narrow or too wide
posteriors) bends the rank distribution away from uniform.

The recipe, per simulation:

1. draw a design: ``n_runs`` inputs log-uniform over :data:`DESIGN_RANGES` (model sizes,
   tokens, FLOPs of published ladders), split evenly into ``groups`` groups if asked;
2. draw the parameters from the prior, **the same fixed prior that is then used to fit**.
   bayescale's default priors are scaled to the data (:class:`~bayescale.laws.base.DataSummary`);
   if each simulated dataset set its own prior, the simulated and fitted priors would differ
   and SBC would flag a correct sampler. So the default priors are computed once, from a
   reference summary of a typical language-model ladder (:func:`reference_summary`), and
   passed to :func:`~bayescale.fitting.pipeline.fit` as explicit ``priors``;
3. simulate the log losses with an implementation of the generative model written here
   with NumPy and SciPy (population draws for partially pooled latents, the law's formula,
   Normal or Student-t scatter), independent of the PyMC model it checks;
4. fit with the normal :func:`~bayescale.fitting.pipeline.fit` and rank every sampled parameter
   (latents, population location and scale, ``sigma``) among posterior draws thinned to
   their effective sample size, so that the ranked draws are close to independent.

Uniformity is judged with the fractional rank (PIT) :math:`(r + U)/(L + 1)`,
:math:`U \sim \text{Uniform}(0, 1)`, which is exactly uniform on (0, 1) for a correct
posterior whatever ``L``: by the Pointwise Order-based Test with Cauchy combination
(``pot_c``, Tesso et al. 2026, arXiv:2603.02928; ArviZ's default) and by the classic
chi-square test on binned ranks. ECDF-difference plots with simultaneous bands (Säilynoja et
al. 2022) come from :func:`sbc_ecdf_data`.

Simulations run through :func:`bayescale.fitting.batch.run_batch`: on Dask, resumable, with failed
fits recorded (a failed fit is a finding: the ranks of the others then no longer represent the
whole prior).

Why not ``simuk`` (0.3.0, the ArviZ team's SBC package): it drives a ``pm.Model`` through
``pm.sample`` one simulation after another in one process, conditioning with ``pm.observe``
each time (a new model, so nutpie would compile every fit); it ranks all draws without
thinning autocorrelated chains; the first failing fit ends the run; it keeps no results on
disk; and it simulates from the PyMC model's own prior predictive, so a mistake in that model
is reproduced by the simulator instead of caught. bayescale needs the fixed-prior recipe
above, the exact sampler, compiled-model reuse and Dask, so the loop is written here (about
as long as the code needed to adapt simuk).
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from bayescale.core.checks import check_prob
from bayescale.core.errors import ConfigError, SamplingWarning, UnknownNameError, did_you_mean
from bayescale.core.files import atomic_path
from bayescale.core.priors import Prior, merge_priors
from bayescale.fitting.batch import BatchOptions
from bayescale.laws.base import DataSummary, Law, get_law
from bayescale.model.build import check_likelihood, default_priors
from bayescale.model.pooling import resolve_pooling

if TYPE_CHECKING:
    import xarray as xr
    from distributed import Client

__all__ = [
    "DESIGN_RANGES",
    "FAST",
    "REFERENCE_LOSS",
    "load_sbc",
    "reference_summary",
    "save_sbc",
    "sbc",
    "sbc_ecdf_data",
    "sbc_priors",
    "sbc_uniformity",
]

SIMULATION = "simulation"
PARAMETER = "parameter"
#: Name of the group column (and dim) of hierarchical simulations.
GROUP = "group"
#: Log-uniform input ranges (canonical units) of simulated ladders: 1M-10B parameters,
#: 100M-1T tokens, 1e17-1e22 FLOPs, the span of Kaplan et al. (2020) and Hoffmann et al. (2022);
#: for learning curves, steps from the end of warmup to the end of long runs and batches from
#: far below to far above the critical batch (Kaplan: B_crit ~ 1e5-1e7 tokens at 2-5 nats).
DESIGN_RANGES: dict[str, tuple[float, float]] = {
    "N": (1e6, 1e10),
    "D": (1e8, 1e12),
    "C": (1e17, 1e22),
    "step": (1e3, 3e5),
    "batch": (1e4, 1e7),
}
#: Loss (nats/token) of a typical language-model ladder over :data:`DESIGN_RANGES`: about 5
#: at the smallest runs, 2 at the largest, 3 at the geometric centre (Kaplan 2020, Fig. 1).
#: It sets the data-scaled default priors once for every simulation.
REFERENCE_LOSS = {"min": 2.0, "mean": 3.0, "max": 5.0}
#: The fast configuration (the test suite): 2 chains of 200 draws after 300 tuning steps leave
#: ~60-150 draws once thinned to their effective sample size; 100 simulations detect a
#: posterior 1.5x too narrow, or biased by half a posterior sd, 85-95 % of the time with 3-6
#: parameters (measured in tests/test_validate.py); finer departures need the full
#: configuration (``bayescale sbc``: 200 simulations of 4 x 1000 draws).
FAST: dict[str, int] = {"n_sims": 100, "draws": 200, "tune": 300, "chains": 2}
#: Message of nutpie's initial-point race (see :func:`simulate_and_rank`).
_INIT_RACE = "'NoneType' object has no attribute 'shape'"
#: Significance level of the uniformity verdict, shared by all tests of one SBC result
#: (Bonferroni over parameters and the two tests).
ALPHA = 0.01


# --------------------------------------------------------------------------------------------
# Priors fixed once
# --------------------------------------------------------------------------------------------
def reference_summary(
    law: str | Law,
    *,
    ranges: Mapping[str, tuple[float, float]] | None = None,
    n_runs: int = 30,
) -> DataSummary:
    """Summarise a typical ladder; SBC computes its fixed priors from this summary.

    Parameters
    ----------
    law : str or Law
        The law (its inputs are summarised).
    ranges : mapping, optional
        Input ranges in canonical units (default :data:`DESIGN_RANGES`); the centre is the
        middle of each range in log space.
    n_runs : int
        Number of runs recorded in the summary.
    """
    law = get_law(law)
    ranges = _ranges(law, ranges)
    return DataSummary(
        centre={k: float(np.mean(np.log(ranges[k]))) for k in law.inputs},
        mean_log_loss=math.log(REFERENCE_LOSS["mean"]),
        min_log_loss=math.log(REFERENCE_LOSS["min"]),
        max_log_loss=math.log(REFERENCE_LOSS["max"]),
        n_runs=n_runs,
    )


def sbc_priors(
    law: str | Law,
    *,
    summary: DataSummary | None = None,
    groups: int = 0,
    pool: Mapping[str, str] | None = None,
    likelihood: str = "normal",
    priors: Mapping[str, Prior | Mapping[str, Any]] | None = None,
) -> dict[str, Prior]:
    """Return the fixed prior of an SBC run: the law's defaults at ``summary``, overridden.

    Parameters
    ----------
    law : str or Law
        The law.
    summary : DataSummary, optional
        Summary the defaults are scaled to (default :func:`reference_summary`).
    groups : int
        Number of groups (0: pooled); with groups, partially pooled latents get population
        priors (``mu_*``, ``tau_*``) as in :func:`bayescale.model.build.default_priors`.
    pool : mapping, optional
        Pooling per parameter, as for :func:`bayescale.fitting.pipeline.fit`.
    likelihood : {"normal", "student_t"}
        Likelihood of the log loss.
    priors : mapping, optional
        Overrides by parameter name.
    """
    law = get_law(law)
    pooling = _pooling(law, groups, pool, n_runs=max(groups, 1))
    defaults = default_priors(
        law,
        summary or reference_summary(law),
        likelihood=check_likelihood(likelihood),
        pooling=pooling,
    )
    return merge_priors(defaults, priors, law_name=law.name)


def _ranges(
    law: Law, ranges: Mapping[str, tuple[float, float]] | None
) -> dict[str, tuple[float, float]]:
    given = {**DESIGN_RANGES, **(ranges or {})}
    out = {}
    for k in law.inputs:
        if k not in given:
            raise ConfigError(
                f"law {law.name!r} needs a design range for input {k!r}: pass ranges="
            )
        low, high = (float(v) for v in given[k])
        if not (0 < low < high and math.isfinite(high)):
            raise ConfigError(f"design range of {k!r} must be 0 < low < high, got ({low}, {high})")
        out[k] = (low, high)
    return out


def _labels(groups: int, n_runs: int) -> np.ndarray:
    # Zero-padded so the sorted labels (the fit's group order) follow the group numbers.
    width = len(str(max(groups - 1, 0)))
    return np.array([f"g{j:0{width}d}" for j in np.arange(n_runs) % groups])


def _pooling(law: Law, groups: int, pool: Mapping[str, str] | None, *, n_runs: int) -> Any:

    if groups == 0:
        if pool:
            raise ConfigError("pool= needs groups >= 2")
        return None
    return resolve_pooling(
        law.latents,
        _labels(groups, n_runs),
        dim=GROUP,
        pool=pool,
        aliases=law.aliases,
        shared=law.shared,
    )


# --------------------------------------------------------------------------------------------
# One simulation (runs on a worker)
# --------------------------------------------------------------------------------------------
def _draw(prior: Prior, rng: np.random.Generator, size: int | None = None) -> Any:
    return prior.scipy().rvs(size=size, random_state=rng)


def _draw_truth(
    law: Law, priors: Mapping[str, Prior], pooling: Any, rng: np.random.Generator
) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    r"""Draw every sampled parameter from the prior; return ranked truths and per-run latents.

    Written from the model's definition (see :mod:`bayescale.model.pooling`), not from its code:
    a partially pooled latent has :math:`h(z_g) \sim N(\mu, \tau)` with ``h`` the log for
    latents with LogNormal priors (population names ``mu_log_*``), the identity otherwise.
    """
    truth: dict[str, float] = {}
    z_run: dict[str, np.ndarray] = {}
    n_groups = 0 if pooling is None else len(pooling.labels)
    for k in law.latents:
        mode = "pooled" if pooling is None else pooling.modes[k]
        if mode == "pooled":
            truth[k] = float(_draw(priors[k], rng))
            z_run[k] = np.asarray(truth[k])
            continue
        if mode == "none":
            values = np.asarray(_draw(priors[k], rng, size=n_groups), dtype=float)
        else:
            log_scale = f"mu_log_{k}" in priors
            stem = f"log_{k}" if log_scale else k
            mu = float(_draw(priors[f"mu_{stem}"], rng))
            tau = float(_draw(priors[f"tau_{stem}"], rng))
            truth[f"mu_{stem}"], truth[f"tau_{stem}"] = mu, tau
            h = mu + tau * rng.standard_normal(n_groups)
            values = np.exp(h) if log_scale else h
        for label, v in zip(pooling.labels, values, strict=True):
            truth[f"{k}[{label}]"] = float(v)
        z_run[k] = values[pooling.index]
    truth["sigma"] = float(_draw(priors["sigma"], rng))
    if "nu" in priors:
        truth["nu"] = float(_draw(priors["nu"], rng))
    return truth, z_run


def _posterior_draws(post: xr.Dataset, name: str) -> np.ndarray:
    """Draws ``(chain, draw)`` of a ranked name (``alpha_N`` or ``alpha_N[g1]``)."""
    if name.endswith("]"):
        var, label = name[:-1].split("[", 1)
        return post[var].sel({GROUP: label}).values
    return post[name].values


def _thinned_ranks(
    draws: dict[str, np.ndarray], truth: Mapping[str, float], thin: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rank, number of ranked draws and fractional rank (PIT) of each truth.

    Ties (a constant posterior, or the rare exact equality) are broken at random, so the rank
    stays uniform under a correct posterior.
    """
    ranks, counts, pits = [], [], []
    for name, value in truth.items():
        kept = draws[name][:, ::thin].ravel()
        below = int(np.sum(kept < value))
        ties = int(np.sum(kept == value))
        rank = below + int(rng.integers(0, ties + 1))
        ranks.append(rank)
        counts.append(kept.size)
        pits.append((rank + rng.random()) / (kept.size + 1))
    return np.array(ranks), np.array(counts), np.array(pits)


def _thinning(diagnostics: Any, n_draws: int) -> int:
    """Stride leaving about one ranked draw per effective sample.

    The smallest bulk or tail ESS over every posterior quantity (Diagnostics of the fit) is
    conservative for the ranked parameters: derived quantities mix no faster than the
    latents they are computed from.
    """
    if diagnostics.independent:
        return 1
    ess = min(diagnostics.min_ess_bulk, diagnostics.min_ess_tail)
    if not math.isfinite(ess):  # every quantity constant: nothing to thin
        return 1
    return max(1, math.ceil(n_draws / max(ess, 1.0)))


def simulate_and_rank(spec: Mapping[str, Any], index: int) -> xr.Dataset:
    """Run simulation ``index`` of an SBC configuration ``spec`` (see :func:`sbc`).

    Returns a Dataset along ``parameter`` with the true value, its rank among the thinned
    posterior draws, the number of ranked draws and the fractional rank, plus the fit's
    diagnostics. Module-level so Dask workers can import it.
    """
    # pandas, xarray, scipy and arviz_stats are imported where used: Dask workers
    # import this module to run one replicate and need numpy only until it returns
    import pandas as pd
    import xarray as xr

    from bayescale.fitting.pipeline import fit
    from bayescale.runs.table import load_runs

    law = get_law(spec["law"])
    rng = np.random.default_rng([int(spec["seed"]), int(index)])
    sim_priors = {k: Prior.from_dict(v) for k, v in spec["sim_priors"].items()}
    fit_priors = {k: Prior.from_dict(v) for k, v in spec["fit_priors"].items()}
    n_runs, groups = int(spec["n_runs"]), int(spec["groups"])
    pooling = _pooling(law, groups, spec["pool"], n_runs=n_runs)

    inputs = {
        k: np.exp(rng.uniform(np.log(lo), np.log(hi), n_runs)) for k, (lo, hi) in spec["ranges"]
    }
    truth, z_run = _draw_truth(law, sim_priors, pooling, rng)
    # The fit centres each input on the mean of its logs; so does the simulation.
    u = {k: np.log(v) - np.mean(np.log(v)) for k, v in inputs.items()}
    noise = rng.standard_normal(n_runs)
    if spec["likelihood"] == "student_t":
        noise = rng.standard_t(truth["nu"], n_runs)
    with np.errstate(over="ignore"):
        loss = np.exp(law.log_loss(z_run, u, np) + truth["sigma"] * noise)
    frame = pd.DataFrame(inputs | {"loss": loss})
    if pooling is not None:
        frame[GROUP] = _labels(groups, n_runs)
    # A prior draw may put the loss anywhere; the plausibility limit on the loss (20 nats) is
    # there to catch another metric in a user's table, not to censor the prior.
    table = load_runs(
        frame,
        required=(*law.inputs, "loss"),
        groups=[GROUP] if pooling is not None else [],
        max_loss=np.inf,
    )

    kwargs = {
        "priors": fit_priors,
        "likelihood": spec["likelihood"],
        "sampler": spec["sampler"],
        "draws": int(spec["draws"]),
        "tune": int(spec["tune"]),
        "chains": int(spec["chains"]),
        "seed": int(rng.integers(2**31)),
        "groups": GROUP if pooling is not None else (),
        "pool": spec["pool"] or None,
    }
    retries = 0
    while True:
        try:
            with warnings.catch_warnings():
                # Sampler trouble is recorded below; as warnings it would repeat per fit.
                warnings.simplefilter("ignore", SamplingWarning)
                fitted = fit(table, law, **kwargs)
            break
        except RuntimeError as exc:
            # nutpie asks for each chain's initial point from that chain's thread, and a
            # compiled PyTensor function is not re-entrant: concurrent calls intermittently
            # return None (nutpie issue #169; seen once in 100 hierarchical fits). The race
            # does not depend on the data, so a retry cannot bias the ranks; any other error
            # is a finding and is reported.
            if _INIT_RACE not in str(exc) or retries >= 2:
                raise
            retries += 1
    if fitted.priors != fit_priors:
        changed = sorted(
            k for k in {*fitted.priors, *fit_priors} if fitted.priors.get(k) != fit_priors.get(k)
        )
        raise ConfigError(f"the fit used other priors than SBC fixed for {', '.join(changed)}")

    post = fitted.posterior
    names = list(truth)
    draws = {n: _posterior_draws(post, n) for n in names}
    d = fitted.diagnostics
    thin = _thinning(d, int(spec["draws"]) * int(spec["chains"]))
    rank, count, pit = _thinned_ranks(draws, truth, thin, rng)
    return xr.Dataset(
        {
            "truth": (PARAMETER, np.array([truth[n] for n in names])),
            "rank": (PARAMETER, rank.astype(float)),
            "n_ranked": (PARAMETER, count.astype(float)),
            "pit": (PARAMETER, pit),
            "divergences": ((), float(d.divergences)),
            "max_r_hat": ((), float(d.max_r_hat)),
            "min_ess": ((), min(d.min_ess_bulk, d.min_ess_tail)),
            "thin": ((), float(thin)),
            "retries": ((), float(retries)),
        },
        coords={PARAMETER: np.array(names, dtype=str)},
    )


# --------------------------------------------------------------------------------------------
# The SBC run
# --------------------------------------------------------------------------------------------
def sbc(
    law: str | Law,
    *,
    n_sims: int = 200,
    n_runs: int = 30,
    groups: int = 0,
    pool: Mapping[str, str] | None = None,
    ranges: Mapping[str, tuple[float, float]] | None = None,
    summary: DataSummary | None = None,
    priors: Mapping[str, Prior | Mapping[str, Any]] | None = None,
    fit_priors: Mapping[str, Prior | Mapping[str, Any]] | None = None,
    likelihood: str = "normal",
    sampler: str = "auto",
    draws: int = 1000,
    tune: int = 1000,
    chains: int = 4,
    seed: int = 0,
    alpha: float = ALPHA,
    store: str | Path | None = None,
    client: Client | None = None,
    scheduler: str | None = None,
    n_workers: int | None = None,
    progress: bool = False,
) -> xr.Dataset:
    """Simulation-based calibration of a law's fit: ranks of prior draws among posteriors.

    Parameters
    ----------
    law : str or Law
        Law to check.
    n_sims : int
        Number of simulated ladders (fits). The fast configuration :data:`FAST` uses 100.
    n_runs : int
        Runs per simulated ladder (in all groups together).
    groups : int
        Split the runs evenly into this many groups (column ``group``) and fit hierarchically;
        0 (default) fits pooled. Must be 0 or at least 2.
    pool : mapping, optional
        Pooling per parameter, as for :func:`bayescale.fitting.pipeline.fit` (default: the law's).
    ranges : mapping, optional
        Log-uniform input ranges per input in canonical units (default :data:`DESIGN_RANGES`).
    summary : DataSummary, optional
        Data summary the default priors are scaled to (default :func:`reference_summary`);
        pass your own ladder's (``DataSummary.from_arrays``) to check calibration at its
        scale.
    priors : mapping, optional
        Overrides of the default priors, used both to simulate and to fit.
    fit_priors : mapping, optional
        Further overrides used **only** to fit: a deliberately wrong prior, to see that SBC
        detects miscalibration.
    likelihood : {"normal", "student_t"}
        Likelihood (and simulated scatter) of the log loss.
    sampler : {"auto", "nutpie", "pymc", "exact"}
        ``"auto"``: the exact conjugate posterior for pooled log-linear laws with Normal
        priors, nutpie otherwise.
    draws, tune, chains : int
        Sampler settings of each fit.
    seed : int
        Seed; simulation ``i`` uses the stream ``(seed, i)``, so results do not depend on
        the order or the place the simulations ran.
    alpha : float
        Significance level of the uniformity verdict (see :func:`sbc_uniformity`).
    store, client, scheduler, n_workers, progress
        Where and how the fits run (:class:`~bayescale.fitting.batch.BatchOptions`); see
        :func:`bayescale.fitting.batch.run_batch`. With ``store`` an interrupted run resumes
        where it stopped.

    Returns
    -------
    xarray.Dataset
        Dims ``simulation`` and ``parameter``: ``truth``, ``rank``, ``n_ranked`` and ``pit``
        per simulation and parameter (NaN for failed fits); ``divergences``, ``max_r_hat``,
        ``min_ess``, ``thin`` (stride of the ranked draws), ``retries`` (fits restarted after
        nutpie's initial-point race), ``status``, ``error``, ``seconds``
        (fit time) and ``reused`` (loaded from ``store``) per simulation; ``p_pot_c``,
        ``p_chi2`` and ``reject`` per parameter (see :func:`sbc_uniformity`). Attributes:
        ``law``, ``config`` (JSON of every setting and both priors), ``n_failed`` and
        ``passed`` (1 when no parameter is rejected).

    Examples
    --------
    >>> from bayescale.calibration.sbc import sbc
    >>> result = sbc("power_n", n_sims=50, draws=100, chains=1, scheduler="serial")
    >>> result["pit"].sizes
    Frozen({'simulation': 50, 'parameter': 3})
    """
    import xarray as xr

    from bayescale.fitting.samplers import list_samplers

    law = get_law(law)
    for name, value, low in (
        ("n_sims", n_sims, 1),
        ("n_runs", n_runs, 1),
        ("draws", draws, 1),
        ("tune", tune, 0),
        ("chains", chains, 1),
        ("groups", groups, 0),
    ):
        if not isinstance(value, int | np.integer) or value < low:
            raise ConfigError(f"{name} must be an integer >= {low}, got {value!r}")
    if groups == 1:
        raise ConfigError("groups must be 0 (pooled) or at least 2")
    if groups and n_runs < 2 * groups:
        raise ConfigError(f"n_runs={n_runs} leaves fewer than 2 runs in each of {groups} groups")
    if not 0 < alpha < 1:
        raise ConfigError(f"alpha must be between 0 and 1, got {alpha}")
    likelihood = check_likelihood(likelihood)
    sim_priors = sbc_priors(
        law, summary=summary, groups=groups, pool=pool, likelihood=likelihood, priors=priors
    )

    used_priors = merge_priors(sim_priors, fit_priors, law_name=law.name)
    if sampler == "auto":
        exact_ok = (
            law.log_linear
            and not groups
            and likelihood == "normal"
            and all(used_priors[k].dist == "Normal" for k in law.latents)
        )
        sampler = "exact" if exact_ok else "nutpie"
    elif sampler not in list_samplers():
        raise UnknownNameError(
            f"unknown sampler {sampler!r}. " + did_you_mean(sampler, ["auto", *list_samplers()])
        )
    spec = {
        "law": law.name,
        "n_runs": int(n_runs),
        "groups": int(groups),
        "pool": dict(pool or {}),
        "ranges": [[k, list(v)] for k, v in _ranges(law, ranges).items()],
        "sim_priors": {k: p.to_dict() for k, p in sim_priors.items()},
        "fit_priors": {k: p.to_dict() for k, p in used_priors.items()},
        "likelihood": likelihood,
        "sampler": sampler,
        "draws": int(draws),
        "tune": int(tune),
        "chains": int(chains),
        "seed": int(seed),
    }
    # Fixed-width names: a rerun with more simulations reuses the stored ones.
    tasks = {f"sim{i:06d}": {"spec": spec, "index": i} for i in range(n_sims)}
    tree = BatchOptions(store, client, scheduler, n_workers, progress).run(simulate_and_rank, tasks)
    root = tree.to_dataset()
    done = [k for k in tasks if k in tree.children]
    index = xr.DataArray(np.arange(n_sims), dims=SIMULATION)
    if done:
        stacked = xr.concat(
            [cast("xr.DataTree", tree[k]).to_dataset(inherit=False) for k in done],
            dim=SIMULATION,
            coords="minimal",
            join="exact",
        )
        stacked = stacked.assign_coords({SIMULATION: [tasks[k]["index"] for k in done]})
        result = stacked.reindex({SIMULATION: index.values})
    else:
        result = xr.Dataset(coords={SIMULATION: index.values})
    result = result.drop_attrs()
    result["status"] = (SIMULATION, root["status"].values)
    result["error"] = (SIMULATION, root["error"].values)
    result["seconds"] = (SIMULATION, root["seconds"].values)
    result["reused"] = (SIMULATION, root["reused"].values)
    result.attrs = {
        "law": law.name,
        "config": json.dumps(spec),
        "n_failed": int(root.attrs["n_failed"]),
    }
    if not done:
        raise ConfigError(
            f"every SBC fit of {law.name} failed; first error: {root['error'].values[0]}"
        )
    if len(done) >= 2:
        verdict = sbc_uniformity(result, alpha=alpha)
    else:  # one simulation (a smoke run) cannot be tested
        nan = np.full(result.sizes[PARAMETER], np.nan)
        verdict = xr.Dataset(
            {"p_pot_c": (PARAMETER, nan), "p_chi2": (PARAMETER, nan)},
            attrs={"alpha": alpha, "n_used": len(done), "passed": 0},
        )
    result.update(verdict)
    result.attrs.update(verdict.attrs)
    return result


# --------------------------------------------------------------------------------------------
# Uniformity and ECDF data
# --------------------------------------------------------------------------------------------
def _chi2_bins(n: int) -> int:
    # At least 5 expected ranks per bin for the chi-square approximation; at most 20 bins
    # (Talts et al. use 20), so the test keeps power against smooth departures.
    return int(min(20, max(2, n // 5)))


def sbc_uniformity(result: xr.Dataset, *, alpha: float = ALPHA) -> xr.Dataset:
    """Test the fractional ranks of each parameter for uniformity.

    Two tests per parameter, on the simulations that finished: ``pot_c`` (ArviZ's
    pointwise order-statistic test with Cauchy combination; power against local departures
    of any kind) and Pearson's chi-square on binned ranks (Talts et al. 2018; ``n // 5``
    bins, at most 20). A parameter is rejected when either p-value is below
    ``alpha / (2 * n_parameters)``: the Bonferroni bound keeps the chance that a correct
    posterior fails anywhere below ``alpha``.

    Parameters
    ----------
    result : xarray.Dataset
        Output of :func:`sbc` (needs ``pit`` along ``simulation`` and ``parameter``).
    alpha : float
        Family-wise significance level.

    Returns
    -------
    xarray.Dataset
        ``p_pot_c``, ``p_chi2`` and ``reject`` along ``parameter``; attributes ``alpha``,
        ``threshold``, ``n_used`` (simulations tested) and ``passed`` (1 or 0).
    """
    import arviz_stats  # noqa: F401  (registers the .azstats accessor)
    import xarray as xr
    from scipy import stats

    finished = result["pit"].transpose(PARAMETER, SIMULATION).dropna(SIMULATION, how="any")
    pit = finished.values
    n_params, n = pit.shape
    if n < 2:
        raise ConfigError(f"uniformity needs at least 2 finished simulations, got {n}")
    p_pot, _, _ = finished.azstats.uniformity_test(dim=SIMULATION, method="pot_c")
    bins = _chi2_bins(n)
    counts = np.stack([np.histogram(row, bins=bins, range=(0.0, 1.0))[0] for row in pit])
    p_chi2 = stats.chisquare(counts, axis=-1).pvalue
    threshold = alpha / (2 * n_params)
    reject = (p_pot.values < threshold) | (p_chi2 < threshold)
    return xr.Dataset(
        {
            "p_pot_c": (PARAMETER, np.asarray(p_pot.values, dtype=float)),
            "p_chi2": (PARAMETER, np.asarray(p_chi2, dtype=float)),
            "reject": (PARAMETER, reject),
        },
        coords={PARAMETER: result[PARAMETER].values},
        attrs={
            "alpha": alpha,
            "threshold": threshold,
            "n_used": int(n),
            "passed": int(not reject.any()),
        },
    )


def sbc_ecdf_data(
    result: xr.Dataset, *, prob: float = 0.95, n_simulations: int = 1000, seed: int = 0
) -> xr.Dataset:
    """ECDF of the fractional ranks minus the uniform CDF, with a simultaneous band.

    The data of an ECDF-difference plot (Säilynoja et al. 2022, Statistics and Computing
    32:32): under a correct posterior the whole curve of every parameter stays inside the
    band with probability ``prob``.

    Parameters
    ----------
    result : xarray.Dataset
        Output of :func:`sbc`.
    prob : float
        Simultaneous coverage of the band.
    n_simulations : int
        Monte Carlo draws used to calibrate the band.
    seed : int
        Seed of those draws.

    Returns
    -------
    xarray.Dataset
        Coordinate ``x`` (fractional rank, 0-1); ``ecdf_difference`` (``parameter``, ``x``):
        ECDF minus ``x``; ``band`` (``x``, ``ci_bound`` = lower/upper): the band minus ``x``,
        with attributes ``ci_kind = "simultaneous"`` and ``ci_prob``.
    """
    import xarray as xr
    from arviz_stats.ecdf_utils import compute_ecdf, ecdf_pit

    check_prob(prob)
    pit = result["pit"].transpose(PARAMETER, SIMULATION).values
    ok = np.all(np.isfinite(pit), axis=0)
    pit = pit[:, ok]
    n = pit.shape[1]
    rng = np.random.default_rng(seed)
    x, _, lower, upper = ecdf_pit(np.linspace(0, 1, n), prob, n_simulations, rng=rng)
    ecdf = np.stack([compute_ecdf(row, x) for row in pit])
    return xr.Dataset(
        {
            "ecdf_difference": ((PARAMETER, "x"), ecdf - x),
            "band": (("x", "ci_bound"), np.column_stack([lower - x, upper - x])),
        },
        coords={PARAMETER: result[PARAMETER].values, "x": x, "ci_bound": ["lower", "upper"]},
        attrs={"ci_kind": "simultaneous", "ci_prob": prob, "n_used": int(n)},
    )


def save_sbc(result: xr.Dataset, path: str | Path) -> Path:
    """Write an SBC result to netCDF (atomically)."""
    path = Path(path)
    if not path.parent.exists():
        raise ConfigError(f"cannot write {str(path)!r}: directory {str(path.parent)!r} missing")
    with atomic_path(path) as tmp:
        result.to_netcdf(tmp, engine="h5netcdf")
    return path


def load_sbc(path: str | Path) -> xr.Dataset:
    """Read an SBC result written by :func:`save_sbc`."""
    import xarray as xr

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"SBC result {str(path)!r} does not exist")
    with xr.open_dataset(path, engine="h5netcdf") as handle:
        out = handle.load()
    if "pit" not in out or "law" not in out.attrs:
        raise ConfigError(f"{str(path)!r} is not an SBC result (no 'pit' variable or 'law')")
    return out
