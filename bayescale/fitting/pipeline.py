"""Fitting a law to a runs table, and the :class:`Fit` result with save/load.

Samplers are registered by name: ``"nutpie"`` (default; NUTS compiled with numba), ``"pymc"``
(PyMC's own NUTS) and ``"exact"`` (the conjugate posterior of log-linear laws, see
:mod:`bayescale.fitting.exact`).

nutpie compiles a model in seconds; since every data-dependent number is ``pm.Data`` (see
:mod:`bayescale.model.build`), compiled models are cached in-process by graph and reused with new
data, so repeated fits (groups, backtests, calibration) pay compilation once.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bayescale import __version__
from bayescale.core.errors import (
    ConfigError,
    FitFileError,
    SamplingWarning,
    UnknownNameError,
    did_you_mean,
)
from bayescale.core.files import atomic_write_netcdf
from bayescale.core.priors import Prior, merge_priors
from bayescale.laws.base import DataSummary, Law, get_law
from bayescale.model.build import (
    HYPER_PREFIX,
    RUN,
    ModelData,
    Offsets,
    build_model,
    check_discrepancy,
    check_likelihood,
    data_values,
    default_priors,
)
from bayescale.model.centring import pilot_centring
from bayescale.model.pooling import Pooling, resolve_pooling

if TYPE_CHECKING:
    import pandas as pd
    import xarray as xr

__all__ = ["Diagnostics", "Fit", "fit", "list_samplers", "load_fit"]

FORMAT_VERSION = 1
#: Probability of the HDI in the summary stored with a saved fit.
SUMMARY_PROB = 0.94
#: R-hat above this is reported (Vehtari et al. 2021 recommend 1.01).
RHAT_MAX = 1.01
#: Bulk/tail ESS below this many draws per chain is reported (Vehtari et al. 2021: 100 per chain).
ESS_PER_CHAIN_MIN = 100


# --------------------------------------------------------------------------------------------
# Diagnostics
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Diagnostics:
    """Sampler health.

    Attributes
    ----------
    divergences : int
        Number of divergent transitions after tuning.
    max_r_hat : float
        Largest rank-normalised split R-hat over all posterior quantities.
    min_ess_bulk, min_ess_tail : float
        Smallest bulk and tail effective sample sizes.
    chains : int
        Number of chains (ESS thresholds scale with it).
    independent : bool
        Draws are independent (the exact sampler): R-hat and ESS then measure Monte Carlo
        noise, not convergence, and are not reported as problems.
    """

    divergences: int
    max_r_hat: float
    min_ess_bulk: float
    min_ess_tail: float
    chains: int
    independent: bool = False

    @property
    def problems(self) -> list[str]:
        """Human-readable list of what is wrong (empty when the sampler looks healthy)."""
        out = []
        if self.independent:
            return out
        if self.divergences:
            out.append(f"{self.divergences} divergent transitions: the posterior may be biased")
        if self.chains > 1 and self.max_r_hat > RHAT_MAX:
            out.append(f"max R-hat {self.max_r_hat:.3f} > {RHAT_MAX}: chains disagree")
        ess_min = ESS_PER_CHAIN_MIN * self.chains
        if min(self.min_ess_bulk, self.min_ess_tail) < ess_min:
            out.append(
                f"low effective sample size (bulk {self.min_ess_bulk:.0f}, tail "
                f"{self.min_ess_tail:.0f} < {ess_min}): draw more or reparametrise"
            )
        return out

    @classmethod
    def from_tree(cls, tree: xr.DataTree) -> Diagnostics:
        """Compute diagnostics from a DataTree with ``posterior`` (and ``sample_stats``)."""
        from bayescale.core import stats as diagnostics

        post = tree["posterior"].to_dataset()
        stats = tree["sample_stats"].to_dataset() if "sample_stats" in tree.children else None
        divergences = (
            int(stats["diverging"].sum()) if stats is not None and "diverging" in stats else 0
        )
        chains = int(post.sizes["chain"])
        independent = post.attrs.get("inference_library") == "bayescale.fitting.exact"
        if independent:
            # Every independent draw is an effective sample and chains cannot disagree; the
            # rank-normalised estimates would only add noise, and 60 % of the exact path's time.
            n_draws = float(chains * post.sizes["draw"])
            return cls(divergences, 1.0, n_draws, n_draws, chains, independent)
        # Constant quantities (e.g. a fixed parameter) have undefined R-hat/ESS: ignore them.
        # Draws of a scale such as N_c overflow to inf when their exponent is near zero (a
        # prior-dominated fit); the rank-based diagnostics are still defined, so the float
        # overflow in the moments is silenced rather than reported.
        with np.errstate(over="ignore", invalid="ignore"):
            varying = [v for v in post.data_vars if float(post[v].std()) > 0]
        if not varying:
            return cls(divergences, 1.0, math.inf, math.inf, chains, independent)
        draws = [post[v].transpose("chain", "draw", ...).to_numpy() for v in varying]
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            rhat = [diagnostics.rhat(x) for x in draws] if chains > 1 else None
            bulk = [diagnostics.ess_bulk(x) for x in draws]
            tail = [diagnostics.ess_tail(x) for x in draws]

        def extreme(values: list[np.ndarray], pick: Callable[..., Any]) -> float:
            return float(pick(np.concatenate([np.ravel(v) for v in values])))

        return cls(
            divergences=divergences,
            max_r_hat=extreme(rhat, np.nanmax) if rhat is not None else 1.0,
            min_ess_bulk=extreme(bulk, np.nanmin),
            min_ess_tail=extreme(tail, np.nanmin),
            chains=chains,
            independent=independent,
        )


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
    import pandas as pd

    from bayescale.fitting import nutpie as _nutpie
    from bayescale.fitting.cache import compiled_model
    from bayescale.model.start import (
        check_mode,
        initial_point_fn,
        pymc_initial_point_fn,
        start_point,
    )

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
    attempts = (NUTPIE_ADAPTATION, "diag") if data.pooling is None else ("diag",)
    for adaptation in attempts:
        target = req.target_accept
        if adaptation == "low_rank":
            target = max(target, LOW_RANK_TARGET_ACCEPT)
        trace = _nutpie.sample(
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
    from bayescale.fitting.exact import sample_exact

    return sample_exact(
        req.law,
        req.data,
        req.priors,
        likelihood=req.likelihood,
        draws=req.draws,
        chains=req.chains,
        seed=req.seed,
    )


# --------------------------------------------------------------------------------------------
# The fit result
# --------------------------------------------------------------------------------------------
@dataclass
class Fit:
    """A fitted scaling law: posterior draws plus everything needed to predict with them.

    Attributes
    ----------
    law : Law
        The fitted law.
    tree : xarray.DataTree
        ArviZ DataTree with groups ``posterior``, ``sample_stats``, ``observed_data`` (log loss),
        ``constant_data`` (inputs in canonical units), ``runs`` (the whole runs table) and, if
        drawn, ``prior``/``prior_predictive``.
    priors : dict of str to Prior
        Priors used, on the sampling-space parameters.
    data_summary : DataSummary
        Centre of the log inputs and loss statistics (needed to map latents to predictions).
    settings : dict
        Sampler name, draws, tune, chains, seed, likelihood.
    diagnostics : Diagnostics
        Divergences, R-hat and ESS.
    """

    law: Law
    tree: xr.DataTree
    priors: dict[str, Prior]
    data_summary: DataSummary
    settings: dict[str, Any]
    diagnostics: Diagnostics
    meta: dict[str, Any] = field(default_factory=dict)

    # -- access ------------------------------------------------------------------------------
    @property
    def posterior(self) -> xr.Dataset:
        """Posterior draws (dims ``chain``, ``draw``)."""
        return self.tree["posterior"].to_dataset()

    @property
    def runs(self) -> xr.Dataset:
        """The runs table the law was fitted to (dim ``run``)."""
        return self.tree["runs"].to_dataset()

    @property
    def n_runs(self) -> int:
        """Number of runs fitted."""
        return int(self.runs.sizes["run"])

    @property
    def reported(self) -> list[str]:
        """Names of the quantities a summary reports.

        The papers' parameters and derived quantities (per group when they vary), the
        population location and scale of partially pooled parameters, transfer offsets and the
        noise.
        """
        post = self.posterior
        derived = self.law.derived(dict.fromkeys(self.law.params, 1.0), np)
        names = [*self.law.params, *derived]
        pooling = self.pooling
        if pooling is not None:
            for latent, mode in pooling.modes.items():
                if mode == "partial":
                    stem = pooling.population_stem(latent, post)
                    names += [f"mu_{stem}", f"tau_{stem}"]
                    if stem != latent and latent in self.law.params:
                        names.append(f"mu_{latent}")
        discrepancy = ("kappa", "eta", *(f"ell_{k}" for k in self.law.inputs))
        names += [v for v in ("offset", "sigma", "nu", *discrepancy) if v in post]
        # Learning curves: run-offset scale and AR(1) residual (bayescale.questions.curves).
        names += [v for v in ("tau_run", "ell_run", "drift_run") if v in post]
        return [n for n in dict.fromkeys(names) if n in post]

    @property
    def pooling(self) -> Pooling | None:
        """How the law's latents vary across groups (None for a pooled fit)."""
        spec = self.meta.get("pooling")
        if not spec:
            return None
        return Pooling.from_dict(spec)

    def latents(
        self, *, group: str | None = None, new_group: bool = False, seed: int = 0
    ) -> dict[str, xr.DataArray]:
        """Posterior draws of the law's latents, for one group or for a new, unseen group.

        Parameters
        ----------
        group : str, optional
            Label of an existing group. Required for hierarchical fits unless ``new_group``.
        new_group : bool
            Draw the latents of a group not in the data from the population distribution
            (one draw per posterior draw), so predictions carry the between-group spread.
        seed : int
            Seed for the new-group draws.

        Raises
        ------
        UnknownNameError
            For a group label not in the fit.
        ConfigError
            For a new group when a parameter is unpooled (it has no population to draw from),
            or when no group is named in a hierarchical fit.
        """
        import xarray as xr

        post = self.posterior
        pooling = self.pooling
        if pooling is None:
            if group is not None or new_group:
                raise ConfigError("this fit has no groups; drop group=/new_group=")
            return {k: post[k] for k in self.law.latents}
        if group is not None and new_group:
            raise ConfigError("give either group= or new_group=True, not both")
        if group is None and not new_group:
            raise ConfigError(
                f"this fit varies by {pooling.dim!r}: name a group (one of "
                f"{', '.join(pooling.labels)}) or ask for a new group"
            )
        if group is not None and group not in pooling.labels:
            raise UnknownNameError(
                f"no group {group!r} in column {pooling.dim!r}. "
                + did_you_mean(group, list(pooling.labels))
            )
        rng = np.random.default_rng(seed)
        out = {}
        for k in self.law.latents:
            mode = pooling.modes[k]
            if mode == "pooled":
                out[k] = post[k]
            elif group is not None:
                out[k] = post[k].sel({pooling.dim: group}, drop=True)
            elif mode == "none":
                raise ConfigError(
                    f"parameter {k!r} is unpooled, so it has no population distribution to draw "
                    "a new group from; refit with it partially pooled"
                )
            else:
                log_scale = pooling.pooled_on_log_scale(k, post)
                stem = pooling.population_stem(k, post)
                mu, tau = post[f"mu_{stem}"], post[f"tau_{stem}"]
                h = mu + tau * xr.DataArray(rng.standard_normal(mu.shape), dims=mu.dims)
                out[k] = np.exp(h) if log_scale else h
        return out

    def expected_log_loss(
        self,
        inputs: Mapping[str, Any],
        *,
        group: str | None = None,
        new_group: bool = False,
        offset: str | None = None,
        seed: int = 0,
    ) -> xr.DataArray:
        """Posterior draws of the law's log loss (nats/token, logged) at new inputs.

        Parameters
        ----------
        inputs : mapping
            Arrays of the law's inputs in canonical units (broadcast together); the result has
            a ``point`` dim along them.
        group, new_group, seed
            See :meth:`latents`.
        offset : str, optional
            Level of the offset column (default: the reference level, offset 0).

        Returns
        -------
        xarray.DataArray
            Dims ``(chain, draw, point)``.
        """
        import xarray as xr

        missing = [k for k in self.law.inputs if k not in inputs]
        if missing:
            raise ConfigError(f"law {self.law.name!r} needs input {missing[0]!r} to predict")
        arrays = np.broadcast_arrays(
            *(np.atleast_1d(np.asarray(inputs[k], dtype=float)) for k in self.law.inputs)
        )
        for k, a in zip(self.law.inputs, arrays, strict=True):
            if not np.all(np.isfinite(a) & (a > 0)):
                raise ConfigError(f"input {k!r} must be positive and finite to predict, got {a}")
        centre = self.data_summary.centre
        u = {
            k: xr.DataArray(np.log(a.ravel()) - centre[k], dims="point")
            for k, a in zip(self.law.inputs, arrays, strict=True)
        }
        z = self.latents(group=group, new_group=new_group, seed=seed)
        log_loss = self.law.log_loss(z, u, np)
        if offset is not None:
            spec = self.meta.get("offsets")
            if not spec:
                raise ConfigError("this fit has no offsets; drop offset=")
            if offset not in spec["labels"]:
                raise UnknownNameError(
                    f"no level {offset!r} in column {spec['dim']!r}. "
                    + did_you_mean(offset, list(spec["labels"]))
                )
            log_loss = log_loss + self.posterior["offset"].sel({spec["dim"]: offset}, drop=True)
        return log_loss.transpose("chain", "draw", "point")

    def fitted_log_loss(self) -> xr.DataArray:
        """Posterior draws of the law's log loss at every fitted run, with its group and offset.

        Returns
        -------
        xarray.DataArray
            Dims ``(chain, draw, run)``: the mean of each run's log loss under the model.
        """
        import xarray as xr

        post, data = self.posterior, self.tree["constant_data"].to_dataset()
        centre = self.data_summary.centre
        u = {k: np.log(data[k]) - centre[k] for k in self.law.inputs}
        pooling = self.pooling
        z = {}
        for k in self.law.latents:
            if pooling is not None and pooling.varies(k):
                index = _label_index(self._run_labels(self.meta["groups"]), pooling.labels)
                z[k] = post[k].isel({pooling.dim: xr.DataArray(index, dims="run")}, drop=True)
            else:
                z[k] = post[k]
        log_loss = self.law.log_loss(z, u, np)
        spec = self.meta.get("offsets")
        if spec:
            index = _label_index(self._run_labels([spec["dim"]]), spec["labels"])
            shift = post["offset"].isel({spec["dim"]: xr.DataArray(index, dims="run")}, drop=True)
            log_loss = log_loss + shift
        spec = self.meta.get("run_effect")
        if spec:  # learning curves: each row carries its run's offset
            index = _label_index(self._run_labels([spec["dim"]]), spec["labels"])
            which = {spec["dim"]: xr.DataArray(index, dims="run")}
            log_loss = log_loss + post["run_offset"].isel(which, drop=True)
        return log_loss.transpose("chain", "draw", "run")

    def log_likelihood(self) -> xr.DataArray:
        """Pointwise log density of each run's observed log loss, per posterior draw.

        What :func:`arviz.loo` needs; computed on demand (it has the size of the runs table
        times the number of draws) rather than stored.

        Returns
        -------
        xarray.DataArray
            Dims ``(chain, draw, run)``, named ``log_loss``.
        """
        import xarray as xr
        from scipy import stats

        mu = self.fitted_log_loss()
        y = self.tree["observed_data"]["log_loss"]
        post = self.posterior
        if self.settings.get("likelihood") == "student_t":
            dens = xr.apply_ufunc(stats.t.logpdf, y, post["nu"], mu, post["sigma"])
        else:
            dens = xr.apply_ufunc(stats.norm.logpdf, y, mu, post["sigma"])
        return dens.transpose("chain", "draw", "run").rename("log_loss")

    def replicate_sets(self) -> np.ndarray:
        """Give each set of replicate runs (same inputs, groups and offset level) a number.

        Returns
        -------
        numpy.ndarray of int
            One set number per run (see :func:`bayescale.runs.table.replicate_sets`).
        """
        from bayescale.runs.table import replicate_sets

        offsets = self.meta.get("offsets")
        labels = [*self.meta.get("groups", []), *([offsets["dim"]] if offsets else [])]
        return replicate_sets(self.runs, self.law.inputs, labels)

    def _run_labels(self, columns: Sequence[str]) -> np.ndarray:
        return _group_labels(self.runs, columns)

    # -- summaries ---------------------------------------------------------------------------
    def summary(
        self, *, prob: float = 0.94, var_names: Sequence[str] | None = None
    ) -> pd.DataFrame:
        """Posterior summary table: mean, sd, HDI bounds, ESS and R-hat of each quantity.

        Parameters
        ----------
        prob : float, default 0.94
            Probability mass of the highest-density interval.
        var_names : sequence of str, optional
            Quantities to include (default: :attr:`reported`).
        """
        from bayescale.core.stats import summary_table

        _check_prob(prob)
        names = list(var_names) if var_names is not None else self.reported
        # Fixed elements (the reference offset) have undefined R-hat: NaN without a warning;
        # scales of draws with a near-zero exponent are inf (see Diagnostics.from_tree).
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            table = summary_table(self.tree["posterior"], var_names=names, prob=prob)
        pct = _pct(prob)
        return table.rename(columns={f"hdi{pct}_lb": "hdi_low", f"hdi{pct}_ub": "hdi_high"})

    def summary_dict(self, *, prob: float = 0.94) -> dict[str, Any]:
        """JSON-ready summary: ``{"law", "n_runs", "prob", "params", "diagnostics"}``."""
        table = self.summary(prob=prob)
        cols = ("mean", "sd", "hdi_low", "hdi_high", "r_hat", "ess_bulk")
        params = {str(name): {c: _num(row[c]) for c in cols} for name, row in table.iterrows()}
        d = self.diagnostics
        sets = np.bincount(self.replicate_sets())
        return {
            "law": self.law.name,
            "formula": self.law.formula,
            "n_runs": self.n_runs,
            "replicates": {
                "n_points": int(sets.size),
                "n_sets": int(np.sum(sets > 1)),
                "n_runs_in_sets": int(np.sum(sets[sets > 1])),
            },
            "lack_of_fit": self._lack_of_fit() if np.any(sets > 1) else None,
            "sampler": self.settings.get("sampler"),
            "chains": self.settings.get("chains"),
            "draws": self.settings.get("draws"),
            "prob": prob,
            "params": params,
            "diagnostics": {
                "divergences": d.divergences,
                "max_r_hat": _num(d.max_r_hat),
                "min_ess_bulk": _num(d.min_ess_bulk),
                "min_ess_tail": _num(d.min_ess_tail),
                "warnings": d.problems,
            },
        }

    def _lack_of_fit(self) -> dict[str, Any] | None:
        # Learning-curve fits have no replicates worth the name (rows of a run share N, but
        # their steps differ), and the F test's residuals ignore run offsets.
        if self.meta.get("run_effect"):
            return None
        from bayescale.questions.backtest import lack_of_fit

        return lack_of_fit(self).to_dict()

    # -- persistence -------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write the fit to a netCDF file (atomically: no partial file, even if killed).

        The file holds the posterior, the data it was fitted to, the law, priors, units,
        column mapping, sampler settings and the bayescale version.
        """
        import xarray as xr

        path = Path(path)
        tree = self.tree.copy()
        # Object-dtype sampler messages cannot be stored in netCDF and carry no information.
        if "sample_stats" in tree.children:
            stats = tree["sample_stats"].to_dataset()
            tree["sample_stats"] = xr.DataTree(
                stats.drop_vars([v for v in stats.data_vars if stats[v].dtype == object])
            )
        tree["runs"] = xr.DataTree(_storable(self.runs))
        tree.attrs = {
            "bayescale_format": FORMAT_VERSION,
            "bayescale_version": __version__,
            "law": self.law.name,
            "priors": json.dumps({k: p.to_dict() for k, p in self.priors.items()}),
            "data_summary": json.dumps(self.data_summary.to_dict()),
            "settings": json.dumps(self.settings),
            "meta": json.dumps(self.meta),
            # Read by `bayescale summary` without loading the posterior (see stored_summary).
            "summary": json.dumps(self.summary_dict(prob=SUMMARY_PROB)),
        }
        if not path.parent.exists():
            raise FitFileError(
                f"cannot write {str(path)!r}: directory {str(path.parent)!r} does not exist"
            )
        atomic_write_netcdf(tree, path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> Fit:
        """Read a fit written by :meth:`save`; raise :class:`FitFileError` if it is not one."""
        return load_fit(path)


def stored_summary(path: str | Path, prob: float = SUMMARY_PROB) -> dict[str, Any] | None:
    """Read the summary saved with a fit (:meth:`Fit.summary_dict`) without loading the fit.

    A command-line ``bayescale summary`` of a fresh fit then reads one attribute instead of
    importing xarray and reading every draw. Returns None when the file has no stored summary
    for ``prob`` or is not a readable, complete bayescale fit of this format:
    :func:`load_fit` then reads it (and reports what is wrong with it).
    """
    import h5py

    try:
        with h5py.File(path, "r") as handle:
            attrs = handle.attrs
            if not {"posterior", "runs"} <= set(handle.keys()):
                return None
            if int(np.ravel(attrs["bayescale_format"])[0]) > FORMAT_VERSION:
                return None
            summary = json.loads(attrs["summary"])
    except Exception:  # any problem: the full reader explains it
        return None
    if not isinstance(summary, dict) or summary.get("prob") != prob:
        return None
    return summary


def load_fit(path: str | Path) -> Fit:
    """Read a fit written by :meth:`Fit.save`.

    Raises
    ------
    FitFileError
        If the file is missing, unreadable, corrupt, not a bayescale fit, or incompatible.
    """
    import xarray as xr

    path = Path(path)
    if not path.is_file():
        raise FitFileError(f"fit file {str(path)!r} does not exist")
    try:
        with xr.open_datatree(path, engine="h5netcdf") as handle:
            tree = handle.load()
    except Exception as exc:  # h5py/netCDF raise many types for a corrupt file
        raise FitFileError(
            f"cannot read {str(path)!r} as a bayescale fit (not a netCDF file or corrupt): "
            f"{type(exc).__name__}: {exc}"
        ) from None
    attrs = tree.attrs
    if "bayescale_format" not in attrs:
        raise FitFileError(
            f"{str(path)!r} is a netCDF file but not a bayescale fit "
            "(no 'bayescale_format' attribute)"
        )
    if int(attrs["bayescale_format"]) > FORMAT_VERSION:
        raise FitFileError(
            f"{str(path)!r} was written by a newer bayescale (format {attrs['bayescale_format']}, "
            f"this version reads up to {FORMAT_VERSION}); upgrade bayescale"
        )
    try:
        law = get_law(str(attrs["law"]))
    except UnknownNameError as exc:
        raise FitFileError(f"{str(path)!r} holds a fit of an unknown law: {exc}") from None
    try:
        priors = {k: Prior.from_dict(v) for k, v in json.loads(attrs["priors"]).items()}
        summary = DataSummary.from_dict(json.loads(attrs["data_summary"]))
        settings = json.loads(attrs["settings"])
        meta = json.loads(attrs.get("meta", "{}"))
    except (KeyError, ValueError, TypeError) as exc:
        raise FitFileError(f"{str(path)!r} has damaged bayescale metadata: {exc}") from None
    for group in ("posterior", "runs"):
        if group not in tree.children:
            raise FitFileError(f"{str(path)!r} has no '{group}' group; it is incomplete")
    missing = [v for v in law.latents if v not in tree["posterior"].data_vars]
    if missing:
        raise FitFileError(
            f"{str(path)!r} does not match law {law.name!r}: posterior lacks {', '.join(missing)}"
        )
    return Fit(
        law=law,
        tree=tree,
        priors=priors,
        data_summary=summary,
        settings=settings,
        diagnostics=Diagnostics.from_tree(tree),
        meta=meta,
    )


# --------------------------------------------------------------------------------------------
# fit()
# --------------------------------------------------------------------------------------------
def fit(
    runs: Any,
    law: str | Law,
    *,
    columns: Mapping[str, str] | str | None = None,
    compute_unit: str = "flops",
    derive_compute: bool = False,
    priors: Mapping[str, Prior | Mapping[str, Any]] | str | Path | None = None,
    likelihood: str = "normal",
    sampler: str = "nutpie",
    draws: int = 1000,
    tune: int = 1000,
    chains: int = 4,
    seed: int = 0,
    prior_draws: int = 0,
    progressbar: bool = False,
    groups: Sequence[str] | str = (),
    pool: Mapping[str, str] | None = None,
    centred: bool | Mapping[str, bool] | None = None,
    offset_by: str | None = None,
    offset_reference: str | None = None,
    target_accept: float | None = None,
    discrepancy: str | None = None,
    run_id: str | None = None,
    run_noise: str = "ar1",
) -> Fit:
    """Fit a scaling law to a table of training runs, pooled or hierarchically over groups.

    Parameters
    ----------
    runs : DataFrame, path, bundled dataset name or xarray.Dataset
        The runs table (see :func:`bayescale.runs.table.load_runs`).
    law : str or Law
        Law to fit, e.g. ``"chinchilla"`` (see :func:`bayescale.laws.base.list_laws`).
    columns : mapping or str, optional
        Map canonical names to the table's columns, e.g. ``"N=params,D=tokens"``.
    compute_unit : {"flops", "pf-days"}
        Unit of the ``C`` column in the table (1 PF-day = 8.64e19 FLOPs).
    derive_compute : bool
        Set ``C = 6 N D`` (FLOPs) from ``N`` and ``D``.
    priors : mapping or path, optional
        Overrides of the default priors by parameter name (``{"alpha": {"dist": "Normal",
        "mu": 0.3, "sigma": 0.05}}``), or a JSON/TOML file of them.
    likelihood : {"normal", "student_t"}
        Likelihood of the log loss; Student-t resists outlier runs.
    sampler : {"nutpie", "pymc", "exact"}
        ``"exact"`` draws from the conjugate posterior (log-linear laws with Normal priors).
    draws, tune, chains : int
        Posterior draws per chain, tuning steps per chain, number of chains.
    seed : int
        Random seed; the same seed gives the same draws.
    prior_draws : int
        If positive, also draw this many samples from the prior and prior predictive.
    progressbar : bool
        Show sampling progress.
    groups : str or sequence of str
        Group columns (model family, shape, dataset...). Law parameters then vary by group
        according to ``pool``. Several columns are crossed into one group label ``a/b``.
    pool : mapping, optional
        Pooling per parameter: ``"partial"`` (group values drawn from a learned population;
        the default for exponents and scales), ``"pooled"`` (one shared value; the default for
        the irreducible loss ``E``, a property of the data rather than the model) or ``"none"``
        (independent per group). Keys are latent names or the papers' names where they map to
        one latent (``alpha_N``, ``E``, ``N_c`` of single-input laws, ``A``, ``B``).
    centred : bool or mapping, optional
        Force the centred (True) or non-centred (False) form of partially pooled parameters;
        default: chosen per parameter and group from the data (see
        :func:`bayescale.model.centring.pilot_centring`).
    offset_by : str, optional
        Column whose levels shift the log loss by a constant (Kaplan's transfer offsets, e.g.
        the eval set); the most common level (or ``offset_reference``) is the reference.
    offset_reference : str, optional
        Reference level of ``offset_by``.
    target_accept : float, optional
        NUTS target acceptance rate. Default 0.8, and 0.95 for fits with groups: the
        curvature of a hierarchical posterior changes with the population scale, and smaller
        steps keep its narrow regions free of divergences for a modest cost. Also 0.95 with a
        discrepancy term, whose scale trades off against ``sigma`` in the same way, and with
        ``run_id``, whose run-offset scale has the same funnel when runs barely differ.
    discrepancy : {None, "gp", "distance"}
        Model-discrepancy term (see :data:`bayescale.model.build.DISCREPANCIES`): ``"gp"`` adds a
        Gaussian-process residual over the log inputs, so structured misfit is not mistaken
        for noise and bands widen away from the data; ``"distance"`` lets the scatter grow
        with the distance from the centre of the data, ``sqrt(sigma^2 + (kappa d)^2)``.
        Predictions use it (see :mod:`bayescale.questions.predict`).
    run_id : str, optional
        Column naming the run of each row, for learning-curve tables (one row per logged
        checkpoint). The curves are checked (:func:`bayescale.runs.curves.load_curves`) and each
        run gets a random offset in log loss (scale ``tau_run``, summing to zero over runs),
        so the points of one curve are not counted as independent runs (see
        :mod:`bayescale.questions.curves`).
    run_noise : {"ar1", "offset"}
        Residual around each run's offset (with ``run_id``): ``"ar1"`` (default), an AR(1)
        process along the run's log steps with correlation length ``ell_run`` (e-folds of
        steps) and stationary sd ``sigma``; ``"offset"``, independent scatter ``sigma``. AR(1)
        is the default because it is what makes bands for later steps of a run honest (see
        :mod:`bayescale.questions.curves`).

    Returns
    -------
    Fit
        The posterior with diagnostics. A :class:`~bayescale.core.errors.SamplingWarning` is issued
        when diagnostics show trouble.

    Examples
    --------
    >>> import bayescale as bs
    >>> f = bs.fit("kaplan_ladder", "kaplan_nd", draws=200, tune=200, chains=2)  # doctest: +SKIP
    >>> f.summary()  # doctest: +SKIP
    """
    import xarray as xr

    from bayescale.core.priors import load_priors
    from bayescale.runs.table import check_enough_points, load_runs, stored_column

    law = get_law(law)
    likelihood = check_likelihood(likelihood)
    discrepancy = check_discrepancy(discrepancy, likelihood)
    if sampler not in _SAMPLERS:
        raise UnknownNameError(
            f"unknown sampler {sampler!r}. " + did_you_mean(sampler, list(_SAMPLERS))
        )
    for name, value, low in (
        ("draws", draws, 1),
        ("tune", tune, 0),
        ("chains", chains, 1),
        ("prior_draws", prior_draws, 0),
    ):
        if not isinstance(value, int | np.integer) or value < low:
            raise ConfigError(f"{name} must be an integer >= {low}, got {value!r}")
    if isinstance(priors, str | Path):
        priors = load_priors(priors)
    group_cols = [groups] if isinstance(groups, str) else list(groups)
    if offset_by is not None and offset_by in group_cols:
        raise ConfigError(f"column {offset_by!r} cannot be both a group and the offset column")
    if sampler == "exact" and discrepancy is not None:
        raise ConfigError(
            "the exact sampler needs a constant scatter; use sampler='nutpie' with discrepancy"
        )
    if sampler == "exact" and (group_cols or offset_by or run_id):
        raise ConfigError(
            "the exact sampler fits pooled laws only; use sampler='nutpie' with groups"
        )
    if not group_cols and (pool or centred is not None):
        raise ConfigError("pool= and centred= need groups=; no group column was given")
    label_cols = [*group_cols, *([offset_by] if offset_by else [])]

    if run_id is not None:
        from bayescale.runs.curves import load_curves

        table = load_curves(
            runs,
            run_id=run_id,
            columns=columns,
            required=law.inputs,
            groups=label_cols,
            law_name=law.name,
            compute_unit=compute_unit,
            derive_compute=derive_compute,
        )
    elif isinstance(runs, xr.Dataset):
        table = runs
        absent = [c for c in (*law.inputs, "loss", *label_cols) if c not in table]
        if absent:
            from bayescale.core.errors import RunsTableError

            raise RunsTableError(
                f"runs table has no column {absent[0]!r} (needed by law {law.name!r})"
            )
    else:
        table = load_runs(
            runs,
            columns=columns,
            compute_unit=compute_unit,
            derive_compute=derive_compute,
            required=(*law.inputs, "loss"),
            groups=label_cols,
            law_name=law.name,
        )
    check_enough_points(table, law.inputs, law.n_params, law.name)
    # From here on, columns are named as the loaded table stores them ("run" as "run_label").
    group_cols = [stored_column(g) for g in group_cols]
    offset_by = None if offset_by is None else stored_column(offset_by)
    if run_id is not None:
        run_id = table.attrs.get("run_id", stored_column(run_id))
    _check_group_sizes(table, group_cols)

    pooling = offsets = None
    if group_cols:
        labels = _group_labels(table, group_cols)
        dim = "_".join(group_cols)
        pooling = resolve_pooling(
            law.latents,
            labels,
            dim=dim,
            pool=pool,
            centred=centred,
            aliases=law.aliases,
            shared=law.shared,
        )
    if offset_by is not None:
        offsets = Offsets.from_labels(offset_by, table[offset_by].values, offset_reference)
    run_effect = None
    if run_id is not None:
        from bayescale.model.build import RunEffect
        from bayescale.model.centring import RUN_NOISES
        from bayescale.runs.curves import order_column

        if run_noise not in RUN_NOISES:
            raise ConfigError(
                f"unknown run_noise {run_noise!r}. " + did_you_mean(run_noise, RUN_NOISES)
            )
        steps = table[order_column(table)].values if run_noise == "ar1" else None
        run_effect = RunEffect.from_labels(run_id, table[run_id].values, steps=steps)
    inputs = {k: table[k].values for k in law.inputs}
    data = ModelData.from_arrays(
        inputs,
        table["loss"].values,
        pooling=pooling,
        offsets=offsets,
        discrepancy=discrepancy,
        run_effect=run_effect,
    )
    defaults = default_priors(
        law,
        data.summary,
        likelihood=likelihood,
        pooling=pooling,
        offsets=offsets,
        discrepancy=discrepancy,
        run_effect=run_effect,
    )
    used = merge_priors(defaults, priors, law_name=law.name)
    if pooling is not None and set(pooling.centred) - set(pooling.forced):
        base = {k: used.get(k, p) for k, p in law.default_priors(data.summary).items()}
        chosen = pilot_centring(law.log_loss, data.u, data.log_loss, pooling, base)
        pooling = pooling.with_centring(chosen)
        data = replace(data, pooling=pooling)
    if run_effect is not None:
        from bayescale.model.centring import pilot_run_centring

        base = {k: used.get(k, p) for k, p in law.default_priors(data.summary).items()}
        run_effect = pilot_run_centring(law, data.u, data.log_loss, run_effect, base)
        data = replace(data, run_effect=run_effect)
    if target_accept is None:
        # Two scales (noise and discrepancy) trade off near zero much as a hierarchy's do.
        target_accept = (
            0.95
            if pooling is not None or discrepancy is not None or run_effect is not None
            else 0.8
        )
    elif not 0 < target_accept < 1:
        raise ConfigError(f"target_accept must be between 0 and 1, got {target_accept}")
    req = SamplerRequest(
        law, data, used, likelihood, draws, tune, chains, seed, progressbar, target_accept
    )
    raw = _SAMPLERS[sampler](req)

    tree = _assemble(raw, law, table, data)
    if run_effect is not None:
        # A compiled model reused with new data keeps the run ids it was compiled with.
        post = tree["posterior"].to_dataset()
        tree["posterior"] = xr.DataTree(post.assign_coords({run_id: list(run_effect.labels)}))
    if prior_draws:
        tree = _add_prior(tree, law, data, used, likelihood, prior_draws, seed)
    settings = {
        "sampler": sampler,
        "draws": draws,
        "tune": tune,
        "chains": chains,
        "seed": seed,
        "likelihood": likelihood,
        "target_accept": target_accept,
    }
    if discrepancy is not None:
        # With its unit of distance, so saved fits predict with the scale they were fitted.
        settings |= {"discrepancy": discrepancy, "discrepancy_scale": data.distance_scale}
    diagnostics = Diagnostics.from_tree(tree)
    for problem in diagnostics.problems:
        warnings.warn(f"{law.name} fit: {problem}", SamplingWarning, stacklevel=2)
    meta = {
        "source": str(table.attrs.get("source", "")),
        "columns": table.attrs.get("columns", "{}"),
        "groups": group_cols,
        "pooling": None if pooling is None else pooling.to_dict(),
        "offsets": None if offsets is None else offsets.to_dict(),
        "run_effect": None if run_effect is None else run_effect.to_dict(),
    }
    return Fit(law, tree, used, data.summary, settings, diagnostics, meta)


#: Fewest runs a group of a hierarchical fit may have: one run cannot tell the group's own
#: curve from its noise, so its parameters would be the population's prior and nothing else.
MIN_GROUP_RUNS = 2


def _check_group_sizes(table: xr.Dataset, columns: Sequence[str]) -> None:
    if not columns:
        return
    labels = _group_labels(table, columns)
    names, counts = np.unique(labels, return_counts=True)
    small = names[counts < MIN_GROUP_RUNS]
    if small.size:
        from bayescale.core.errors import RunsTableError

        which = ", ".join(repr(str(n)) for n in small[:5]) + (
            f" and {small.size - 5} more" if small.size > 5 else ""
        )
        raise RunsTableError(
            f"group column {'/'.join(columns)!r}: group {which} has fewer than "
            f"{MIN_GROUP_RUNS} runs; a hierarchical fit needs at least {MIN_GROUP_RUNS} runs per "
            "group. Drop those runs or merge the group into another."
        )


def _group_labels(table: xr.Dataset, columns: Sequence[str]) -> np.ndarray:
    """One label per run: the group column's value, or values of several joined by '/'."""
    values = [np.asarray(table[c].values, dtype=str) for c in columns]
    if len(values) == 1:
        return values[0]
    return np.array(["/".join(parts) for parts in zip(*values, strict=True)])


def _label_index(values: np.ndarray, labels: Sequence[str]) -> np.ndarray:
    """Position of each value in ``labels``."""
    lookup = {label: i for i, label in enumerate(labels)}
    return np.array([lookup[str(v)] for v in values], dtype=int)


def _assemble(raw: xr.DataTree, law: Law, table: xr.Dataset, data: ModelData) -> xr.DataTree:
    """Keep posterior and sample stats from the sampler; add data groups in a fixed layout."""
    import xarray as xr

    post = raw["posterior"].to_dataset()
    post = post.drop_vars([v for v in post.data_vars if v.startswith(HYPER_PREFIX)])
    groups: dict[str, Any] = {"posterior": post}
    if "sample_stats" in raw.children:
        groups["sample_stats"] = raw["sample_stats"].to_dataset()
    run = {"run": table["run"].values}
    groups["observed_data"] = xr.Dataset({"log_loss": ("run", data.log_loss)}, coords=run)
    groups["constant_data"] = xr.Dataset(
        {k: ("run", table[k].values) for k in law.inputs}, coords=run
    )
    groups["runs"] = table
    return xr.DataTree.from_dict(groups)


def _add_prior(
    tree: xr.DataTree,
    law: Law,
    data: ModelData,
    priors: dict[str, Prior],
    likelihood: str,
    draws: int,
    seed: int,
) -> xr.DataTree:
    import pymc as pm
    import xarray as xr

    model = build_model(law, data, priors=priors, likelihood=likelihood)
    prior = pm.sample_prior_predictive(draws=draws, model=model, random_seed=seed)
    for group in ("prior", "prior_predictive"):
        ds = prior[group].to_dataset()
        tree[group] = xr.DataTree(
            ds.drop_vars([v for v in ds.data_vars if v.startswith(HYPER_PREFIX)])
        )
    return tree


def _storable(ds: xr.Dataset) -> xr.Dataset:
    """Convert object columns to fixed strings so netCDF can store them."""
    out = ds.copy()
    for name in list(out.data_vars) + list(out.coords):
        if out[name].dtype == object:
            out[name] = out[name].astype(str)
    out.attrs = {
        # Numbers read back from a fit file are NumPy scalars; netCDF stores them as they are.
        k: (v if isinstance(v, str | int | float | np.number) else json.dumps(v))
        for k, v in ds.attrs.items()
    }
    return out


def _check_prob(prob: float) -> None:
    if not 0 < prob < 1:
        raise ConfigError(f"prob must be between 0 and 1 (exclusive), got {prob}")


def _pct(prob: float) -> str:
    # ArviZ names HDI columns like hdi94_lb; keep its formatting for non-integer percentages.
    pct = prob * 100
    return f"{pct:g}"


def _num(x: Any) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None
