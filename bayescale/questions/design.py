r"""Bayesian experiment design: which run to train next, and how many runs are enough.

The quantity to shrink is the width of the central ``prob`` band of the law's loss at a
**target** (nats/token): at given inputs (``N`` and ``D``, or ``C`` for a compute law), or, for
a law of ``N`` and ``D`` given only a compute budget ``C``, the compute-optimal loss
:math:`\min_N L(N, C/6N)` (minimised on a log grid of ``N`` from :math:`10^{-4}` to
:math:`10^{4}` times :math:`\sqrt{C/6}`). The band is of the *expected* loss (the law): the
run-to-run noise ``sigma`` is a floor that no run removes.

A candidate run :math:`x` with cost :math:`c(x)` (FLOPs :math:`6ND` by default, ``C`` for a
compute law, or a cost column in any unit) is scored by the expected width reduction per unit cost,

.. math::

    \text{score}(x) = \frac{w_0 - \mathbb{E}_{y \sim p(y \mid x, \mathcal{D})}
        \left[w(\mathcal{D} \cup \{(x, y)\})\right]}{c(x)},

where :math:`w_0` is the current width and the expectation is over the run's outcome under the
posterior predictive. Three estimators of the expected width after the run:

``"reweight"`` (default)
    Importance reweighting: simulate ``outcomes`` outcomes :math:`y_k` from the posterior
    predictive, weight each posterior draw :math:`s` by the likelihood
    :math:`p(y_k \mid \theta_s, x)` (the exact Bayes update of the draws), and take the
    weighted quantiles of the target. Exact up to Monte Carlo error while one run does not
    move the posterior far (the reported effective-sample fraction says when it does). The same
    simulated outcomes (common random numbers) are used for every candidate, so rankings are
    not noisier than the widths.
``"laplace"``
    Linearised Gaussian update: the posterior covariance of the latents :math:`\Sigma` is
    updated with the Fisher information of the new runs,
    :math:`\Sigma' = (\Sigma^{-1} + \bar\kappa \sum_i J_i J_i^\top)^{-1}`, where :math:`J_i`
    is the statistical linearisation of the log loss at run :math:`i` over the posterior draws
    and :math:`\bar\kappa = 1/\mathbb{E}[\sigma^2]` is the information of one run at the
    posterior-mean noise variance (times :math:`(\nu+1)/(\nu+3)` for a Student-t
    likelihood; :math:`\mathbb{E}[1/\sigma^2]` would overstate it when the noise is poorly
    known, and did by 10-25 % against refits on 8-run ladders); the draws are mapped
    affinely so their covariance becomes :math:`\Sigma'` and the target band is read from
    them (so the law's curvature at the target is kept). It ignores the shift of the
    posterior mean, which in a linear-Gaussian model does not change the width, and what a
    run teaches about the noise scale (so it undervalues runs when the noise is poorly known,
    e.g. runs inside the data). Cheap for many runs at once: :func:`runs_needed` and
    :func:`plan` use it.
``"refit"``
    Simulate outcomes and refit the law with the fit's own settings and priors; the reference
    the other two are validated against (slow unless the fit used ``sampler="exact"``).

Hierarchical fits are handled for one group at a time (``group=``): the candidate runs and the
target belong to that group. Offsets are taken at their reference level.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bayescale.core.checks import check_prob
from bayescale.core.errors import (
    ConfigError,
    RunsTableError,
    SamplingWarning,
    UnknownNameError,
    did_you_mean,
)

if TYPE_CHECKING:
    import pandas as pd

    from bayescale.fitting.result import Fit

__all__ = ["METHODS", "Design", "RunPlan", "design", "load_candidates", "plan", "runs_needed"]

#: Estimators of the expected width after a run.
METHODS = ("reweight", "laplace", "refit")
#: Grid of N (relative to sqrt(C/6)) over which a compute target is minimised.
_C_GRID = np.geomspace(1e-4, 1e4, 401)


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Design:
    """Candidate runs ranked by expected band reduction at the target per unit cost.

    Attributes
    ----------
    target : dict of str to float
        The target inputs (canonical units).
    prob : float
        Probability of the band.
    method : str
        Estimator used (see :data:`METHODS`).
    width_now : float
        Current width of the band at the target (nats/token).
    table : pandas.DataFrame
        One row per candidate, best first: the candidate's columns, ``cost``, ``width_after``
        (expected width after adding the run), ``reduction`` (``width_now - width_after``),
        ``reduction_per_cost``, ``ess_fraction`` (reweighting only: mean effective sample size
        of the reweighted draws over the number of draws) and ``rank`` (1 = best).
    """

    target: dict[str, float]
    prob: float
    method: str
    width_now: float
    table: pd.DataFrame

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``{"target", "prob", "method", "width_now", "candidates": [...]}``."""
        return {
            "target": dict(self.target),
            "prob": self.prob,
            "method": self.method,
            "width_now": self.width_now,
            "candidates": _records(self.table),
        }


@dataclass(frozen=True)
class RunPlan:
    """A sequence of runs chosen with the linearised update, and the band it is expected to give.

    Attributes
    ----------
    target : dict of str to float
        The target inputs.
    prob : float
        Probability of the band.
    width_now : float
        Current width of the band (nats/token).
    runs : pandas.DataFrame
        Chosen runs in order: the candidate's columns, ``candidate`` (row of the candidate
        table), ``cost``, ``total_cost`` and ``width_after`` (expected width once this run and
        the ones before it are added).
    reached : bool
        For a width goal, whether the band got that narrow within the run limit; for a budget,
        whether planning stopped because no further candidate fits the budget (rather than at
        the run limit).
    goal : dict
        ``{"width": w}`` or ``{"budget": b}``.
    """

    target: dict[str, float]
    prob: float
    width_now: float
    runs: pd.DataFrame
    reached: bool
    goal: dict[str, float]

    @property
    def n_runs(self) -> int:
        """Number of runs in the plan."""
        return len(self.runs)

    @property
    def width_after(self) -> float:
        """Expected width once every planned run is added."""
        return float(self.runs["width_after"].iloc[-1]) if len(self.runs) else self.width_now

    @property
    def total_cost(self) -> float:
        """Sum of the planned runs' costs."""
        return float(self.runs["cost"].sum())

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary of the plan."""
        return {
            "target": dict(self.target),
            "prob": self.prob,
            **self.goal,
            "width_now": self.width_now,
            "width_after": self.width_after,
            "reached": self.reached,
            "n_runs": self.n_runs,
            "total_cost": self.total_cost,
            "runs": _records(self.runs),
        }


# --------------------------------------------------------------------------------------------
# Public functions
# --------------------------------------------------------------------------------------------
def design(
    fit: Fit,
    candidates: pd.DataFrame | str | Path,
    *,
    target: Mapping[str, float],
    cost: str | None = None,
    group: str | None = None,
    prob: float = 0.94,
    method: str = "reweight",
    outcomes: int = 64,
    seed: int = 0,
) -> Design:
    """Rank candidate runs by the expected reduction of the band at ``target`` per unit cost.

    Parameters
    ----------
    fit : Fit
        The current posterior.
    candidates : DataFrame or path
        One row per candidate run with the law's inputs (``N`` parameters, ``D`` tokens, ``C``
        FLOPs); a CSV or Parquet file is read (see :func:`load_candidates`).
    target : mapping
        ``{"N": ..., "D": ...}`` (the law's inputs), or ``{"C": ...}`` for the compute-optimal
        loss of an ``N, D`` law (FLOPs).
    cost : str, optional
        Column of ``candidates`` holding each run's cost (any unit). Default: a column named
        ``cost`` if there is one, else ``C`` (FLOPs), else ``6 N D`` FLOPs.
    group : str, optional
        Group of a hierarchical fit the candidates and the target belong to.
    prob : float, default 0.94
        Probability of the band.
    method : {"reweight", "laplace", "refit"}
        Estimator of the expected width after a run (see the module docstring).
    outcomes : int, default 64
        Simulated outcomes per candidate (``"reweight"`` and ``"refit"``).
    seed : int
        Seed of the simulated outcomes.

    Returns
    -------
    Design
        Candidates ranked best first.

    Examples
    --------
    >>> ranked = design(fit, "grid.csv", target={"N": 7e9, "D": 4e12})  # doctest: +SKIP
    >>> ranked.table.head(3)  # doctest: +SKIP
    """
    # pandas, xarray and scipy are imported where used: importing a question costs
    # numpy only
    import pandas as pd

    if method not in METHODS:
        raise UnknownNameError(
            f"unknown design method {method!r}. " + did_you_mean(method, METHODS)
        )
    _check_positive_int(outcomes, "outcomes")
    setup = _Setup.build(fit, target, group=group, prob=prob)
    table = load_candidates(candidates, inputs=fit.law.inputs)
    costs = _costs(table, cost)
    x = {k: table[k].to_numpy(dtype=float) for k in fit.law.inputs}
    ess = np.full(len(table), np.nan)
    if method == "reweight":
        after, ess = _reweight_widths(setup, x, outcomes, seed)
    elif method == "laplace":
        lin = _Linearised.build(setup, x)
        after = np.array([lin.width({i: 1}) for i in range(len(table))])
    else:
        after = _refit_widths(fit, setup, x, outcomes, seed, group)
    out = table.copy()
    out["cost"] = costs
    out["width_after"] = after
    out["reduction"] = setup.width_now - after
    out["reduction_per_cost"] = out["reduction"] / costs
    out["ess_fraction"] = ess
    out = out.sort_values("reduction_per_cost", ascending=False, kind="stable")
    out["rank"] = np.arange(1, len(out) + 1)
    return Design(
        target=setup.target,
        prob=prob,
        method=method,
        width_now=setup.width_now,
        table=pd.DataFrame(out).reset_index(drop=True),
    )


def runs_needed(
    fit: Fit,
    grid: pd.DataFrame | str | Path,
    *,
    target: Mapping[str, float],
    width: float,
    cost: str | None = None,
    group: str | None = None,
    prob: float = 0.94,
    order: str = "greedy",
    max_runs: int = 1000,
) -> RunPlan:
    """How many more runs on ``grid`` are expected to bring the band at ``target`` below ``width``.

    Runs are added one at a time (a grid point may be run several times, e.g. with other
    seeds) and the band is updated with the linearised update (``"laplace"`` in
    :func:`design`).

    Parameters
    ----------
    fit : Fit
        The current posterior.
    grid : DataFrame or path
        The grid of runs one would train (see :func:`design` for the columns).
    target : mapping
        See :func:`design`.
    width : float
        Width of the ``prob`` band at the target to reach (nats/token).
    cost, group, prob
        See :func:`design`.
    order : {"greedy", "cycle"}
        ``"greedy"``: each next run is the grid point with the largest expected variance
        reduction per unit cost given the runs already planned; ``"cycle"``: go through the
        grid rows in order, repeatedly (the grid trained as a whole).
    max_runs : int, default 1000
        Give up (``reached=False``) after this many runs.

    Returns
    -------
    RunPlan
        The runs, in order, with the expected width after each.
    """
    if not (np.isfinite(width) and width > 0):
        raise ConfigError(f"width must be a positive number of nats/token, got {width}")
    if order not in ("greedy", "cycle"):
        raise ConfigError(f"order must be 'greedy' or 'cycle', got {order!r}")
    _check_positive_int(max_runs, "max_runs")
    return _plan(
        fit, grid, target, cost, group, prob, width=width, budget=None, repeat=True,
        order=order, max_runs=max_runs,
    )  # fmt: skip


def plan(
    fit: Fit,
    candidates: pd.DataFrame | str | Path,
    *,
    target: Mapping[str, float],
    budget: float,
    cost: str | None = None,
    group: str | None = None,
    prob: float = 0.94,
    repeat: bool = False,
) -> RunPlan:
    """Choose runs whose total cost fits in ``budget`` to narrow the band at ``target`` most.

    Greedy: each next run is the affordable candidate with the largest expected variance
    reduction at the target per unit cost, given the runs already chosen (linearised update).

    Parameters
    ----------
    fit, candidates, target, cost, group, prob
        See :func:`design`.
    budget : float
        Total cost available, in the unit of the costs (FLOPs by default).
    repeat : bool, default False
        Allow a candidate to be chosen more than once.
    """
    if not (np.isfinite(budget) and budget > 0):
        raise ConfigError(f"budget must be a positive number, got {budget}")
    return _plan(
        fit, candidates, target, cost, group, prob, width=None, budget=budget, repeat=repeat,
        order="greedy", max_runs=10_000,
    )  # fmt: skip


def load_candidates(
    source: pd.DataFrame | str | Path,
    *,
    inputs: tuple[str, ...] = (),
    columns: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Read and check a table of candidate runs.

    Parameters
    ----------
    source : DataFrame or path
        Candidates; ``.csv``/``.tsv``/``.parquet`` files are read.
    inputs : tuple of str
        Canonical columns every row needs (the law's inputs).
    columns : mapping, optional
        Canonical name to column name, e.g. ``{"N": "params"}``.

    Raises
    ------
    RunsTableError
        If the file cannot be read, a column is missing, or a value is not a positive finite
        number (the message names the column and the 1-based row).
    """
    import pandas as pd

    if isinstance(source, pd.DataFrame):
        frame = source.copy()
    else:
        path = Path(source)
        readers = {".csv": pd.read_csv, ".tsv": lambda p: pd.read_csv(p, sep="\t")}
        readers |= {".parquet": pd.read_parquet, ".pq": pd.read_parquet}
        reader = readers.get(path.suffix.lower())
        if reader is None:
            raise RunsTableError(
                f"cannot read candidates from {str(path)!r}: use a .csv, .tsv or .parquet file"
            )
        try:
            frame = reader(path)
        except (OSError, ValueError) as exc:
            raise RunsTableError(f"cannot read candidates from {str(path)!r}: {exc}") from None
    frame = frame.rename(columns={v: k for k, v in (columns or {}).items()})
    if len(frame) == 0:
        raise RunsTableError("the candidate table has no rows")
    for k in inputs:
        if k not in frame.columns:
            raise RunsTableError(
                f"the candidate table has no column {k!r} (the law's inputs: {', '.join(inputs)}); "
                f"columns: {', '.join(map(str, frame.columns))}"
            )
        frame[k] = _positive_column(frame, k)
    return frame.reset_index(drop=True)


# --------------------------------------------------------------------------------------------
# The posterior as flat arrays, and the target
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Setup:
    law: Any
    centre: dict[str, float]
    z: dict[str, np.ndarray]  # latents, one value per draw (S,)
    sigma: np.ndarray
    nu: np.ndarray | None
    target: dict[str, float]
    target_fn: Callable[[Mapping[str, np.ndarray]], np.ndarray]  # latents -> target loss (S,)
    prob: float
    width_now: float

    @classmethod
    def build(
        cls, fit: Fit, target: Mapping[str, float], *, group: str | None, prob: float
    ) -> _Setup:
        check_prob(prob)
        law, centre = fit.law, fit.data_summary.centre
        z = {
            k: np.asarray(v.values, dtype=float).ravel()
            for k, v in fit.latents(group=group).items()
        }
        post = fit.posterior
        sigma = np.asarray(post["sigma"].values, dtype=float).ravel()
        nu = np.asarray(post["nu"].values, dtype=float).ravel() if "nu" in post else None
        spec, target_fn = _target_function(law, centre, target)
        values = target_fn(z)
        width = band_width(values, np.full(values.size, 1.0 / values.size), prob)
        return cls(law, centre, z, sigma, nu, spec, target_fn, prob, float(width))

    def log_loss(self, z: Mapping[str, np.ndarray], x: Mapping[str, np.ndarray]) -> np.ndarray:
        """Log loss of every draw at every run: shape (S, R)."""
        return _log_loss(self.law, self.centre, z, x)

    def loglik(self, y: np.ndarray, mu: np.ndarray) -> np.ndarray:
        """Log likelihood of outcomes ``y`` (K, 1) under draws' means ``mu`` (1, S): (K, S)."""
        from scipy import stats

        if self.nu is None:
            return stats.norm.logpdf(y, loc=mu, scale=self.sigma)
        return stats.t.logpdf(y, df=self.nu, loc=mu, scale=self.sigma)

    def info_scale(self) -> float:
        """Return the expected Fisher information of one log-loss observation about its mean."""
        variance = self.sigma**2
        if self.nu is not None:
            variance = variance * (self.nu + 3.0) / (self.nu + 1.0)
        return float(1.0 / np.mean(variance))


def _log_loss(
    law: Any, centre: Mapping[str, float], z: Mapping[str, np.ndarray], x: Mapping[str, Any]
) -> np.ndarray:
    zz = {k: np.asarray(v)[:, None] for k, v in z.items()}
    u = {k: (np.log(np.asarray(x[k], dtype=float)) - centre[k])[None, :] for k in law.inputs}
    return np.asarray(law.log_loss(zz, u, np))


def _target_function(
    law: Any, centre: Mapping[str, float], target: Mapping[str, float]
) -> tuple[dict[str, float], Callable[[Mapping[str, np.ndarray]], np.ndarray]]:
    """Validate the target and return it with a function latents -> target loss per draw."""
    spec = {}
    for k, v in target.items():
        try:
            value = float(v)
        except (TypeError, ValueError):
            raise ConfigError(f"target {k!r} must be a number, got {v!r}") from None
        if not (np.isfinite(value) and value > 0):
            raise ConfigError(f"target {k!r} must be positive and finite, got {value}")
        spec[k] = value
    inputs = set(law.inputs)
    if set(spec) == inputs:
        point = {k: np.array([spec[k]]) for k in law.inputs}
        return spec, lambda z: np.exp(_log_loss(law, centre, z, point)[:, 0])
    if set(spec) == {"C"} and inputs == {"N", "D"}:
        n_grid = _C_GRID * np.sqrt(spec["C"] / 6.0)
        grid = {"N": n_grid, "D": spec["C"] / (6.0 * n_grid)}
        return spec, lambda z: np.exp(_log_loss(law, centre, z, grid).min(axis=1))
    need = " and ".join(law.inputs) + (" (or C alone)" if inputs == {"N", "D"} else "")
    raise ConfigError(
        f"law {law.name!r} needs a target of {need}; got {', '.join(spec) or 'nothing'}"
    )


def band_width(values: np.ndarray, weights: np.ndarray, prob: float) -> np.ndarray:
    """Width of the central ``prob`` interval of weighted draws.

    Parameters
    ----------
    values : ndarray, shape (S,)
        Draws of the quantity.
    weights : ndarray, shape (S,) or (K, S)
        Normalised weights (each row sums to 1).
    prob : float
        Probability of the interval.

    Returns
    -------
    ndarray or float
        Width per row of ``weights``: upper minus lower weighted quantile (inverse CDF).
    """
    order = np.argsort(values)
    sorted_values = values[order]
    cum = np.cumsum(np.atleast_2d(weights)[:, order], axis=-1)
    tail = (1.0 - prob) / 2.0
    lo = np.array([np.searchsorted(row, tail) for row in cum])
    hi = np.array([np.searchsorted(row, 1.0 - tail) for row in cum])
    hi = np.minimum(hi, values.size - 1)
    width = sorted_values[hi] - sorted_values[lo]
    return width if np.ndim(weights) == 2 else width[0]


# --------------------------------------------------------------------------------------------
# Estimators
# --------------------------------------------------------------------------------------------
def _simulated_noise(setup: _Setup, outcomes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Draw indices and standardised noise shared by every candidate (common random numbers)."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, setup.sigma.size, size=outcomes)
    if setup.nu is None:
        eps = rng.standard_normal(outcomes)
    else:
        eps = rng.standard_t(setup.nu[idx])
    return idx, eps


def _reweight_widths(
    setup: _Setup, x: Mapping[str, np.ndarray], outcomes: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    mu = setup.log_loss(setup.z, x)  # (S, R)
    values = setup.target_fn(setup.z)
    idx, eps = _simulated_noise(setup, outcomes, seed)
    widths, ess = np.empty(mu.shape[1]), np.empty(mu.shape[1])
    for r in range(mu.shape[1]):
        y = (mu[idx, r] + setup.sigma[idx] * eps)[:, None]
        logw = setup.loglik(y, mu[None, :, r])
        logw -= logw.max(axis=1, keepdims=True)
        w = np.exp(logw)
        w /= w.sum(axis=1, keepdims=True)
        widths[r] = float(np.mean(band_width(values, w, setup.prob)))
        ess[r] = float(np.mean(1.0 / np.sum(w**2, axis=1))) / values.size
    return widths, ess


def _refit_widths(
    fit: Fit,
    setup: _Setup,
    x: Mapping[str, np.ndarray],
    outcomes: int,
    seed: int,
    group: str | None,
) -> np.ndarray:
    """Return the expected width from refits with each simulated outcome added."""
    import xarray as xr

    from bayescale.fitting.pipeline import fit as refit

    mu = setup.log_loss(setup.z, x)
    idx, eps = _simulated_noise(setup, outcomes, seed)
    runs = fit.runs
    meta, settings = fit.meta, fit.settings
    groups = list(meta.get("groups") or [])
    offsets = meta.get("offsets")
    columns = [*fit.law.inputs, "loss", *groups, *([offsets["dim"]] if offsets else [])]
    pool = None
    if fit.pooling is not None:
        pool = dict(fit.pooling.modes)
        if len(groups) != 1:
            raise ConfigError("method='refit' supports fits grouped by one column")
    widths = np.empty(mu.shape[1])
    for r in range(mu.shape[1]):
        w = []
        for k in range(outcomes):
            row = {c: np.asarray(x[c][r]) for c in fit.law.inputs}
            row["loss"] = np.exp(mu[idx[k], r] + setup.sigma[idx[k]] * eps[k])
            for g in groups:
                row[g] = np.asarray(group)
            if offsets:
                row[offsets["dim"]] = np.asarray(offsets["labels"][0])
            table = xr.Dataset(
                {c: ("run", np.append(runs[c].values, row[c])) for c in columns},
                coords={"run": np.arange(runs.sizes["run"] + 1)},
            )
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", SamplingWarning)
                new = refit(
                    table,
                    fit.law,
                    priors=dict(fit.priors),  # refit under the same assumptions
                    likelihood=settings.get("likelihood", "normal"),
                    sampler=settings.get("sampler", "nutpie"),
                    draws=int(settings.get("draws", 1000)),
                    tune=int(settings.get("tune", 1000)),
                    chains=int(settings.get("chains", 4)),
                    seed=int(settings.get("seed", 0)) + 1 + k,
                    groups=groups,
                    pool=pool,
                    offset_by=offsets["dim"] if offsets else None,
                    offset_reference=offsets["labels"][0] if offsets else None,
                )
            new_setup = _Setup.build(new, setup.target, group=group, prob=setup.prob)
            w.append(new_setup.width_now)
        widths[r] = float(np.mean(w))
    return widths


@dataclass(frozen=True)
class _Linearised:
    """Gaussian approximation of the latents' posterior, updated by new runs' information."""

    setup: _Setup
    names: tuple[str, ...]
    theta: np.ndarray  # (S, p)
    mean: np.ndarray
    cov: np.ndarray
    jac: np.ndarray  # (R, p): d log loss at each run / d latents
    grad: np.ndarray  # (p,): d target / d latents
    kappa: float

    @classmethod
    def build(cls, setup: _Setup, x: Mapping[str, np.ndarray]) -> _Linearised:
        names = tuple(setup.z)
        theta = np.column_stack([setup.z[k] for k in names])
        mean = theta.mean(axis=0)
        centred = theta - mean
        cov = np.atleast_2d(np.cov(theta, rowvar=False))
        mu = setup.log_loss(setup.z, x)
        # Statistical linearisation: least-squares slope of each output on the draws.
        jac = np.linalg.lstsq(centred, mu - mu.mean(axis=0), rcond=None)[0].T
        values = setup.target_fn(setup.z)
        grad = np.linalg.lstsq(centred, values - values.mean(), rcond=None)[0]
        return cls(setup, names, theta, mean, cov, jac, grad, setup.info_scale())

    def updated_cov(self, counts: Mapping[int, float]) -> np.ndarray:
        info = sum(
            (n * self.kappa * np.outer(self.jac[i], self.jac[i]) for i, n in counts.items()),
            start=np.zeros_like(self.cov),
        )
        precision = np.linalg.pinv(self.cov, hermitian=True) + info
        return np.linalg.pinv(precision, hermitian=True)

    def width_for_cov(self, new_cov: np.ndarray) -> float:
        # Affine map of the draws taking covariance cov to new_cov (keeps their shape).
        old = _psd_sqrt(self.cov)
        new = _psd_sqrt(new_cov)
        transform = new @ np.linalg.pinv(old)
        theta = self.mean + (self.theta - self.mean) @ transform.T
        z = {k: theta[:, j] for j, k in enumerate(self.names)}
        values = self.setup.target_fn(z)
        weights = np.full(values.size, 1.0 / values.size)
        return float(band_width(values, weights, self.setup.prob))

    def width(self, counts: Mapping[int, float]) -> float:
        return self.width_for_cov(self.updated_cov(counts))


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    vals, vecs = np.linalg.eigh(matrix)
    return (vecs * np.sqrt(np.clip(vals, 0.0, None))) @ vecs.T


def _plan(
    fit: Fit,
    candidates: Any,
    target: Mapping[str, float],
    cost: str | None,
    group: str | None,
    prob: float,
    *,
    width: float | None,
    budget: float | None,
    repeat: bool,
    order: str,
    max_runs: int,
) -> RunPlan:
    import pandas as pd

    setup = _Setup.build(fit, target, group=group, prob=prob)
    table = load_candidates(candidates, inputs=fit.law.inputs)
    costs = _costs(table, cost)
    lin = _Linearised.build(setup, {k: table[k].to_numpy(dtype=float) for k in fit.law.inputs})
    cov = lin.cov.copy()
    chosen: list[int] = []
    widths: list[float] = []
    spent = 0.0
    current = setup.width_now
    reached = width is not None and current <= width
    while not reached and len(chosen) < max_runs:
        affordable = np.ones(len(table), dtype=bool)
        if budget is not None:
            affordable &= spent + costs <= budget
        if not repeat:
            affordable[chosen] = False
        if not affordable.any():
            reached = budget is not None
            break
        if order == "cycle":
            pick = len(chosen) % len(table)
        else:
            # Variance of the target removed by one more run at each candidate (rank one).
            cj = lin.jac @ cov  # (R, p)
            gain = (cj @ lin.grad) ** 2 * lin.kappa / (1.0 + lin.kappa * np.sum(cj * lin.jac, 1))
            score = np.where(affordable, gain / costs, -np.inf)
            pick = int(np.argmax(score))
        j = lin.jac[pick]
        cj = cov @ j
        cov = cov - lin.kappa * np.outer(cj, cj) / (1.0 + lin.kappa * j @ cj)
        chosen.append(pick)
        spent += costs[pick]
        current = lin.width_for_cov(cov)
        widths.append(current)
        if width is not None and current <= width:
            reached = True
    runs = table.iloc[chosen].copy()
    runs.insert(0, "candidate", chosen)
    runs["cost"] = costs[chosen]
    runs["total_cost"] = np.cumsum(costs[chosen])
    runs["width_after"] = widths
    goal = {"width": float(width)} if width is not None else {"budget": float(budget or 0.0)}
    return RunPlan(
        target=setup.target,
        prob=prob,
        width_now=setup.width_now,
        runs=pd.DataFrame(runs).reset_index(drop=True),
        reached=bool(reached),
        goal=goal,
    )


# --------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------
def _costs(table: pd.DataFrame, column: str | None) -> np.ndarray:
    """Cost of each candidate: a named column, else ``cost``, else C, else 6 N D (FLOPs)."""
    if column is None and "cost" in table.columns:
        column = "cost"
    if column is not None:
        if column not in table.columns:
            raise RunsTableError(
                f"the candidate table has no cost column {column!r}; columns: "
                + ", ".join(map(str, table.columns))
            )
        return _positive_column(table, column)
    if "C" in table.columns:
        return _positive_column(table, "C")
    if {"N", "D"} <= set(table.columns):
        return 6.0 * _positive_column(table, "N") * _positive_column(table, "D")
    raise RunsTableError(
        "cannot tell what the candidate runs cost: give a cost column, a C column (FLOPs), or "
        "N and D columns (cost 6 N D)"
    )


def _positive_column(table: pd.DataFrame, column: str) -> np.ndarray:
    import pandas as pd

    values = pd.to_numeric(table[column], errors="coerce").to_numpy(dtype=float)
    bad = np.flatnonzero(~(np.isfinite(values) & (values > 0)))
    if bad.size:
        row = int(bad[0])
        raise RunsTableError(
            f"candidate column {column!r} must hold positive numbers; row {row + 1} has "
            f"{table[column].iloc[row]!r}"
        )
    return values


def _check_positive_int(value: Any, name: str) -> None:
    if not isinstance(value, int | np.integer) or value < 1:
        raise ConfigError(f"{name} must be an integer >= 1, got {value!r}")


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    out = []
    for row in frame.to_dict(orient="records"):
        out.append({str(k): (v.item() if isinstance(v, np.generic) else v) for k, v in row.items()})
    return out
