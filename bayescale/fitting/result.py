"""The result of a fit: :class:`Fit`, its sampler :class:`Diagnostics` and its file format.

A :class:`Fit` holds the posterior, the data, the law, priors and settings; it is saved as
netCDF, written atomically; :func:`load_fit` checks what it reads and :func:`stored_summary`
reads the summary without loading the draws.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import xarray as xr

from bayescale import __version__
from bayescale.core import stats as diagnostics
from bayescale.core.checks import check_prob
from bayescale.core.errors import (
    ConfigError,
    FitFileError,
    UnknownNameError,
    did_you_mean,
)
from bayescale.core.files import atomic_write_netcdf
from bayescale.core.priors import Prior
from bayescale.core.stats import summary_table
from bayescale.fitting.quality import lack_of_fit
from bayescale.laws.base import DataSummary, Law, get_law
from bayescale.model.pooling import Pooling
from bayescale.runs.table import group_labels, replicate_sets

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["FORMAT_VERSION", "Diagnostics", "Fit", "load_fit", "stored_summary"]

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
        out: list[str] = []
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
                # numpy's stubs type a ufunc of a DataArray as an ndarray; it is a DataArray.
                out[k] = cast("xr.DataArray", np.exp(h)) if log_scale else h
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
        # scipy and h5py are imported where used: log_likelihood alone needs scipy.stats
        # (~0.7 s), stored_summary alone h5py
        from scipy import stats

        mu = self.fitted_log_loss()
        y = self.tree["observed_data"]["log_loss"]
        post = self.posterior
        if self.settings.get("likelihood") == "student_t":
            dens = xr.apply_ufunc(stats.t.logpdf, y, post["nu"], mu, post["sigma"])
        else:
            dens = xr.apply_ufunc(stats.norm.logpdf, y, mu, post["sigma"])
        return dens.transpose("chain", "draw", "run").rename("log_loss")

    def group_label(self, spec: str | None) -> str | None:
        """Return the group named by ``"COL=VALUE"`` (the CLI's ``--group``), checked.

        Parameters
        ----------
        spec : str or None
            ``"family=small"``: the fit's group column and one of its labels; None for none.

        Returns
        -------
        str or None
            The label, to pass as ``group=`` to the questions.

        Raises
        ------
        ConfigError
            If ``spec`` is not ``COL=VALUE``, the fit has no groups, ``COL`` is not its group
            column, or ``VALUE`` is not one of its groups.
        """
        if spec is None:
            return None
        column, sep, label = (part.strip() for part in spec.partition("="))
        if not sep or not column or not label:
            raise ConfigError(f"--group expects COL=VALUE, got {spec!r}")
        pooling = self.pooling
        if pooling is None:
            raise ConfigError("this fit has no groups; drop --group")
        if column != pooling.dim:
            raise ConfigError(
                f"this fit is grouped by {pooling.dim!r}, not {column!r}; "
                f"use --group {pooling.dim}=VALUE"
            )
        if label not in pooling.labels:
            raise ConfigError(
                f"no group {label!r} in column {column!r}. Valid choices: "
                + ", ".join(map(str, pooling.labels))
                + "."
            )
        return label

    def replicate_sets(self) -> np.ndarray:
        """Give each set of replicate runs (same inputs, groups and offset level) a number.

        Returns
        -------
        numpy.ndarray of int
            One set number per run (see :func:`bayescale.runs.table.replicate_sets`).
        """
        offsets = self.meta.get("offsets")
        labels = [*self.meta.get("groups", []), *([offsets["dim"]] if offsets else [])]
        return replicate_sets(self.runs, self.law.inputs, labels)

    def _run_labels(self, columns: Sequence[str]) -> np.ndarray:
        return group_labels(self.runs, columns)

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
        check_prob(prob)
        names = list(var_names) if var_names is not None else self.reported
        # Fixed elements (the reference offset) have undefined R-hat: NaN without a warning;
        # scales of draws with a near-zero exponent are inf (see Diagnostics.from_tree).
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            posterior = cast("xr.DataTree", self.tree["posterior"])  # a group, not a variable
            table = summary_table(posterior, var_names=names, prob=prob)
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
        return lack_of_fit(self).to_dict()

    # -- persistence -------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write the fit to a netCDF file (atomically: no partial file, even if killed).

        The file holds the posterior, the data it was fitted to, the law, priors, units,
        column mapping, sampler settings and the bayescale version.
        """
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


def _label_index(values: np.ndarray, labels: Sequence[str]) -> np.ndarray:
    """Position of each value in ``labels``."""
    lookup = {label: i for i, label in enumerate(labels)}
    return np.array([lookup[str(v)] for v in values], dtype=int)


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


def _pct(prob: float) -> str:
    # ArviZ names HDI columns like hdi94_lb; keep its formatting for non-integer percentages.
    pct = prob * 100
    return f"{pct:g}"


def _num(x: Any) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None
