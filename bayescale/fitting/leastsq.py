r"""Least-squares baseline: a Huber fit of the log loss from a grid of starts, with a bootstrap.

This is the point-estimate method of Hoffmann et al. (2022, Approach 3) and of the replication by
Besiroglu et al. (2024), written for any registered law so bayescale can be compared with it on
the same runs. The law's parameters :math:`\theta` minimise the sum of Huber losses of the
residuals of the log loss,

.. math::

    \hat\theta = \arg\min_\theta \sum_i \rho_\delta\big(\log f(x_i; \theta) - \log L_i\big),
    \qquad
    \rho_\delta(r) = \begin{cases} r^2/2 & |r| \le \delta \\
    \delta\,(|r| - \delta/2) & |r| > \delta \end{cases}

with :math:`\delta = 10^{-3}` as in both papers, by L-BFGS-B from every point of a grid of
starts, keeping the best optimum. The optimisation runs in the law's latent space (centred log
inputs, loss at the centre of the data as a parameter), with the latents whose default prior
is positive moved on the log scale as the sampler does, so one grid of starts suits every
ladder; the grid is made from quantiles of the law's default priors
(:meth:`bayescale.laws.base.Law.default_priors`), plus the law's data-driven first guess where it
has one (:attr:`bayescale.laws.base.Law.guess`).

Uncertainty comes from the bootstrap over runs (Efron & Tibshirani 1993, ch. 9): runs are
resampled with replacement and the law refitted, each refit starting from the full-data optimum
and from the other best local optima of the full-data fit. The predictive of an observed loss
is the residual bootstrap's: a parameter replicate plus a residual drawn from the full-data
residuals, inflated by :math:`\sqrt{n/(n-p)}` for the :math:`p` fitted parameters (Davison &
Hinkley 1997, ch. 6), so its intervals cover *observed* losses like bayescale's observed-loss
bands.
"""

from __future__ import annotations

import contextlib
import itertools
import math
from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from bayescale.core.checks import check_prob
from bayescale.core.errors import ConfigError, RunsTableError
from bayescale.laws.base import DataSummary, Law, get_law, law_points
from bayescale.model.build import ModelData
from bayescale.model.start import positive_support

if TYPE_CHECKING:
    import pandas as pd
    import xarray as xr

__all__ = ["BOOTSTRAP", "LeastSquaresFit", "fit_least_squares", "start_grid"]

#: Dim of the bootstrap replicates.
BOOTSTRAP = "bootstrap"
#: Quantiles of each latent's default prior that make the grid of starts: three levels while
#: the grid stays at most :data:`MAX_GRID` points, else two (plus the all-median point).
GRID_LEVELS = ((0.1, 0.5, 0.9), (0.2, 0.8))
MAX_GRID = 81
#: Bootstrap refits start from the full-data optimum and from up to this many other local
#: optima of the full-data fit (the next best distinct ones), so a resample that prefers
#: another basin can reach it.
EXTRA_STARTS = 3
#: Two optima are distinct when some coordinate (log scale or centred latent) differs by this.
DISTINCT = 1e-2
#: Relative step of the central differences that give the gradient.
_STEP = 1e-6
#: Residual given to a point where the law is not finite (an overflowing trial step).
_BAD_RESIDUAL = 1e3
_LBFGS = {"maxiter": 2000, "maxcor": 20, "ftol": 1e-13, "gtol": 1e-9}


# --------------------------------------------------------------------------------------------
# The fitted baseline
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LeastSquaresFit:
    r"""A least-squares (Huber) fit of a law, with bootstrap replicates.

    Attributes
    ----------
    law : Law
        The fitted law.
    params : dict of str to float
        The papers' parameters (and the law's derived quantities) at the optimum, in their units
        (see ``law.units``).
    latents : dict of str to float
        The optimum in the law's latent space (centred on ``summary.centre``).
    boot_latents : xarray.Dataset
        Latents refitted on each bootstrap resample, one variable per latent, dim
        ``bootstrap``; failed refits are left out (``n_failed`` counts them).
    sigma : float
        Residual scale of the log loss: 1.4826 times the median absolute deviation of the
        residuals from their median (a robust standard deviation), times the degrees-of-freedom
        factor :math:`\sqrt{n/(n-p)}` that also inflates the resampled residuals.
    n_runs : int
        Number of runs fitted.
    residuals : ndarray
        Observed minus fitted log loss of each run, shape ``(n_runs,)``.
    summary : DataSummary
        Centre of the log inputs (maps latents to predictions) and loss statistics.
    objective : float
        Sum of Huber losses at the optimum (log loss units).
    n_failed : int
        Bootstrap refits that found no finite optimum.
    huber_delta : float
        Huber threshold used (log loss units).
    n_starts : int
        Number of starting points of the full-data fit.
    """

    law: Law
    params: dict[str, float]
    latents: dict[str, float]
    boot_latents: xr.Dataset
    sigma: float
    n_runs: int
    residuals: np.ndarray
    summary: DataSummary
    objective: float
    n_failed: int
    huber_delta: float
    n_starts: int

    @property
    def n_bootstrap(self) -> int:
        """Number of successful bootstrap replicates."""
        return int(self.boot_latents.sizes.get(BOOTSTRAP, 0))

    @property
    def boot_params(self) -> xr.Dataset:
        """The papers' parameters and derived quantities of every bootstrap replicate."""
        # xarray, pandas, scipy and threadpoolctl are imported where used: importing the
        # least-squares baseline costs numpy only; its results, optimiser and thread limit the rest
        import xarray as xr

        z = {k: self.boot_latents[k].values for k in self.law.latents}
        params = self.law.params_of(z, self.summary.centre)
        return xr.Dataset({k: (BOOTSTRAP, np.asarray(v, dtype=float)) for k, v in params.items()})

    def predict(self, inputs: Mapping[str, Any]) -> np.ndarray:
        """Loss of the fitted curve at ``inputs`` (nats/token), shape ``(point,)``.

        Parameters
        ----------
        inputs : mapping
            The law's inputs in canonical units (parameters, tokens, FLOPs), broadcast together.
        """
        u = self._centred(inputs)
        return np.exp(self.law.log_loss(self.latents, u, np))

    def predictive_draws(
        self, inputs: Mapping[str, Any], *, n: int = 1000, seed: int = 0
    ) -> np.ndarray:
        r"""Draws of the observed loss at ``inputs`` (nats/token), shape ``(point, n)``.

        Each draw takes one bootstrap replicate of the parameters (shared by all points, so a
        column is one curve) and adds to its log loss a residual resampled from the full-data
        fit, independently per point and inflated by :math:`\sqrt{n_{runs}/(n_{runs} - p)}`.
        Without replicates (``n_bootstrap=0`` or all failed) the optimum is used.

        Parameters
        ----------
        inputs : mapping
            The law's inputs in canonical units (parameters, tokens, FLOPs), scalars or arrays
            broadcast together into points.
        n : int
            Number of draws per point.
        seed : int
            Seed of the choice of replicates and residuals.

        Raises
        ------
        ConfigError
            For a missing or non-positive input or a bad ``n``.
        """
        if not isinstance(n, int | np.integer) or n < 1:
            raise ConfigError(f"n must be a positive integer, got {n!r}")
        u = self._centred(inputs)
        rng = np.random.default_rng(seed)
        if self.n_bootstrap:
            pick = rng.integers(self.n_bootstrap, size=n)
            z = {k: self.boot_latents[k].values[pick][None, :] for k in self.law.latents}
        else:
            z = {k: np.full((1, n), v) for k, v in self.latents.items()}
        with np.errstate(over="ignore"):
            log_curve = self.law.log_loss(z, {k: v[:, None] for k, v in u.items()}, np)
        size = (next(iter(u.values())).size, n)
        noise = self.residuals[rng.integers(self.n_runs, size=size)] * self._inflation
        return np.exp(log_curve + noise)

    def interval(
        self, inputs: Mapping[str, Any], prob: float = 0.94, *, n: int = 4000, seed: int = 0
    ) -> tuple[np.ndarray, np.ndarray]:
        """Equal-tailed interval of the observed loss at ``inputs`` (nats/token).

        Parameters
        ----------
        inputs : mapping
            The law's inputs in canonical units, broadcast together into points.
        prob : float
            Probability inside the interval.
        n, seed : int
            Draws per point and their seed (see :meth:`predictive_draws`).

        Returns
        -------
        lower, upper : ndarray
            Bounds per point, shape ``(point,)``.
        """
        check_prob(prob)
        draws = self.predictive_draws(inputs, n=n, seed=seed)
        lower, upper = np.quantile(draws, [(1 - prob) / 2, (1 + prob) / 2], axis=1)
        return lower, upper

    def summary_table(self, *, prob: float = 0.94) -> pd.DataFrame:
        """Optimum and bootstrap sd and equal-tailed interval of each parameter.

        Parameters
        ----------
        prob : float
            Probability of the bootstrap percentile interval.

        Returns
        -------
        pandas.DataFrame
            One row per paper parameter and derived quantity; columns ``estimate``, ``sd``,
            ``lower``, ``upper`` (NaN without replicates).
        """
        import pandas as pd

        check_prob(prob)
        boot = self.boot_params
        rows = {}
        for name, value in self.params.items():
            draws = boot[name].values if self.n_bootstrap else np.array([np.nan])
            with np.errstate(invalid="ignore"):
                lo, hi = np.quantile(draws, [(1 - prob) / 2, (1 + prob) / 2])
                sd = float(np.std(draws, ddof=1)) if draws.size > 1 else np.nan
            rows[name] = {"estimate": value, "sd": sd, "lower": lo, "upper": hi}
        return pd.DataFrame.from_dict(rows, orient="index")

    @property
    def _inflation(self) -> float:
        return math.sqrt(self.n_runs / max(self.n_runs - self.law.n_params, 1))

    def _centred(self, inputs: Mapping[str, Any]) -> dict[str, np.ndarray]:
        points = law_points(self.law, inputs)
        return {k: np.log(v) - self.summary.centre[k] for k, v in points.items()}

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={self.params[k]:.4g}" for k in self.law.params)
        return (
            f"<LeastSquaresFit {self.law.name}: {shown}; {self.n_runs} runs, "
            f"{self.n_bootstrap} bootstrap replicates>"
        )


# --------------------------------------------------------------------------------------------
# Fitting
# --------------------------------------------------------------------------------------------
def fit_least_squares(
    runs: Any,
    law: str | Law,
    *,
    columns: Mapping[str, str] | str | None = None,
    huber_delta: float = 1e-3,
    n_bootstrap: int = 500,
    seed: int = 0,
    **load_kwargs: Any,
) -> LeastSquaresFit:
    """Fit ``law`` by Huber regression of the log loss, with a bootstrap over runs.

    The fit is pooled (group columns of the table are ignored): L-BFGS-B from every point of
    :func:`start_grid`, keeping the best optimum; then each bootstrap resample of the runs
    (with replacement, as many as there are runs) is refitted from that optimum and from up to
    :data:`EXTRA_STARTS` other distinct local optima of the full-data fit, keeping the best.

    Parameters
    ----------
    runs : DataFrame, path, bundled dataset name or xarray.Dataset
        The runs table (see :func:`bayescale.runs.table.load_runs`); a Dataset is taken as loaded.
    law : str or Law
        Law to fit, e.g. ``"chinchilla"`` (see :func:`bayescale.laws.base.list_laws`).
    columns : mapping or str, optional
        Map canonical names to the table's columns, e.g. ``"N=params,D=tokens"``.
    huber_delta : float
        Huber threshold on the residual of the log loss (1e-3 in Hoffmann et al. 2022).
    n_bootstrap : int
        Bootstrap resamples of the runs (0 for the optimum alone).
    seed : int
        Seed of the resampling.
    **load_kwargs
        Other options of :func:`bayescale.runs.table.load_runs` (``compute_unit``,
        ``value_map``...).

    Returns
    -------
    LeastSquaresFit

    Raises
    ------
    UnknownNameError
        For an unknown law.
    RunsTableError
        For a bad runs table, or fewer distinct input points than the law has parameters + 1.
    ConfigError
        For a bad ``huber_delta`` or ``n_bootstrap``.

    Examples
    --------
    >>> ls = fit_least_squares("chinchilla_ladder", "chinchilla", n_bootstrap=20)
    >>> sorted(ls.params)[:3]
    ['A', 'B', 'E']
    >>> lower, upper = ls.interval({"N": 1e9, "D": 2e10}, prob=0.9)
    """
    from bayescale.runs.table import check_enough_points

    law = get_law(law)
    try:
        delta = float(huber_delta)
    except (TypeError, ValueError):
        delta = math.nan
    if not (math.isfinite(delta) and delta > 0):
        raise ConfigError(f"huber_delta must be a positive number, got {huber_delta!r}")
    if not isinstance(n_bootstrap, int | np.integer) or n_bootstrap < 0:
        raise ConfigError(f"n_bootstrap must be an integer >= 0, got {n_bootstrap!r}")
    table = _load_table(runs, law, columns, load_kwargs)
    check_enough_points(table, law.inputs, law.n_params, law.name)
    data = ModelData.from_arrays({k: table[k].values for k in law.inputs}, table["loss"].values)
    problem = _Problem(law, data, delta)

    with _one_blas_thread():
        return _fit(law, data, problem, n_bootstrap, seed)


def _fit(
    law: Law, data: ModelData, problem: _Problem, n_bootstrap: int, seed: int
) -> LeastSquaresFit:
    starts = start_grid(law, data.summary, data=data)
    weights = np.ones(data.n_runs)
    results = sorted((problem.minimise(theta, weights) for theta in starts), key=lambda r: r[1])
    best_theta, best_value = results[0]
    if not np.isfinite(best_value):
        raise RunsTableError(
            f"the least-squares fit of law {law.name!r} found no finite optimum from "
            f"{len(starts)} starts; check the runs table"
        )
    # Other local optima, best first, to restart each bootstrap refit from.
    restarts = [best_theta]
    for theta, value in results[1:]:
        if len(restarts) > EXTRA_STARTS or not np.isfinite(value):
            break
        if all(np.max(np.abs(theta - t)) > DISTINCT for t in restarts):
            restarts.append(theta)

    rng = np.random.default_rng(seed)
    counts = rng.multinomial(data.n_runs, np.full(data.n_runs, 1.0 / data.n_runs), n_bootstrap)
    boot, n_failed = [], 0
    for w in counts:
        fits = [problem.minimise(theta, w.astype(float)) for theta in restarts]
        theta, value = min(fits, key=lambda r: r[1])
        if np.isfinite(value) and np.all(np.isfinite(theta)):
            boot.append(theta)
        else:
            n_failed += 1

    latents = problem.latents_of(best_theta)
    point = {k: float(v) for k, v in latents.items()}
    residuals = data.log_loss - law.log_loss(point, data.u, np)
    inflation = math.sqrt(data.n_runs / max(data.n_runs - law.n_params, 1))
    mad = float(np.median(np.abs(residuals - np.median(residuals))))
    return LeastSquaresFit(
        law=law,
        params={k: float(v) for k, v in law.params_of(point, data.summary.centre).items()},
        latents=point,
        boot_latents=_boot_dataset(law, problem, boot),
        sigma=1.4826 * mad * inflation,
        n_runs=data.n_runs,
        residuals=residuals,
        summary=data.summary,
        objective=float(best_value) * problem.delta,
        n_failed=n_failed,
        huber_delta=problem.delta,
        n_starts=len(starts),
    )


def start_grid(law: Law, summary: DataSummary, *, data: Any = None) -> list[np.ndarray]:
    """Return the optimiser's starting points, in its coordinates (log scale for positive latents).

    A product grid over quantiles of each latent's default prior (:data:`GRID_LEVELS`), which
    scale to the data through ``summary``; with more latents than a three-level grid allows
    within :data:`MAX_GRID` points, two levels plus the all-median point. The law's first guess
    from the data (:attr:`bayescale.laws.base.Law.guess`), if it has one and ``data`` is given,
    comes first.

    Parameters
    ----------
    law : Law
        The law.
    summary : DataSummary
        Summary of the runs (centre and loss statistics).
    data : ModelData, optional
        Centred log inputs and log loss, for the law's guess.

    Returns
    -------
    list of ndarray
        Points of length ``law.n_params``, in the order of ``law.latents``.
    """
    priors = law.default_priors(summary)
    logs = _log_scale(law, summary)
    quantiles = next(
        (q for q in GRID_LEVELS if len(q) ** law.n_params <= MAX_GRID), GRID_LEVELS[-1]
    )
    levels = []
    for k, log in zip(law.latents, logs, strict=True):
        values = np.asarray(priors[k].scipy().ppf([*quantiles, 0.5]), dtype=float)
        levels.append(np.log(values) if log else values)
    grid = [np.array(p) for p in itertools.product(*(v[:-1] for v in levels))]
    if 0.5 not in quantiles:
        grid.append(np.array([v[-1] for v in levels]))
    if law.guess is not None and data is not None:
        z0 = law.guess(data.u, np.exp(data.log_loss))
        grid.insert(
            0,
            np.array(
                [math.log(z0[k]) if lg else z0[k] for k, lg in zip(law.latents, logs, strict=True)]
            ),
        )
    return grid


def _one_blas_thread() -> AbstractContextManager[Any]:
    # L-BFGS-B calls BLAS on vectors of a few elements; multi-threaded BLAS then spends its time
    # waking threads, which on a busy machine makes a fit 20-50 times slower.
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - installed with PyMC
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def _log_scale(law: Law, summary: DataSummary) -> list[bool]:
    # Latents the sampler moves on the log scale (positive priors): the optimiser does too, so
    # exponents stay positive and a trial step cannot divide by zero.
    priors = law.default_priors(summary)
    return [positive_support(priors[k]) for k in law.latents]


def _load_table(
    runs: Any, law: Law, columns: Mapping[str, str] | str | None, load_kwargs: Mapping[str, Any]
) -> xr.Dataset:
    import xarray as xr

    from bayescale.runs.source import read_table

    if isinstance(runs, xr.Dataset) and (columns is not None or load_kwargs):
        raise ConfigError(
            "columns= and loading options apply to a runs file or DataFrame; this runs "
            "table is an already loaded Dataset"
        )
    return read_table(
        runs, required=(*law.inputs, "loss"), law_name=law.name, columns=columns, **load_kwargs
    )


def _boot_dataset(law: Law, problem: _Problem, thetas: list[np.ndarray]) -> xr.Dataset:
    import xarray as xr

    stacked = np.array(thetas, dtype=float).reshape(len(thetas), law.n_params)
    z = problem.latents_of(stacked.T)
    return xr.Dataset(
        {k: (BOOTSTRAP, np.asarray(z[k], dtype=float)) for k in law.latents},
        attrs={"method": "bootstrap over runs"},
    )


class _Problem:
    """The Huber objective of one law and one table, in the optimiser's coordinates.

    Coordinates are the latents, on the log scale for those with a positive default prior.
    The objective is divided by ``delta`` (it is then close to the sum of absolute residuals,
    of order one per run) so L-BFGS-B's tolerances mean the same for any ``delta``. The gradient
    is by central differences of the residuals, all evaluated in one broadcast call of the law.
    """

    def __init__(self, law: Law, data: ModelData, delta: float):
        self.law = law
        self.logs = np.array(_log_scale(law, data.summary))
        self.u = {k: np.asarray(v, dtype=float)[None, :] for k, v in data.u.items()}
        self.y = np.asarray(data.log_loss, dtype=float)
        self.delta = delta
        p = law.n_params
        self._offsets = np.vstack([np.zeros(p), np.eye(p), -np.eye(p)])

    def latents_of(self, theta: np.ndarray) -> dict[str, np.ndarray]:
        """Latents from coordinates; ``theta`` has the latents along its first axis."""
        theta = np.asarray(theta, dtype=float)
        return {
            k: (np.exp(np.minimum(t, 700.0)) if log else t)
            for k, t, log in zip(self.law.latents, theta, self.logs, strict=True)
        }

    def value_and_grad(self, theta: np.ndarray, weights: np.ndarray) -> tuple[float, np.ndarray]:
        """Weighted Huber objective (over ``delta``) and its gradient."""
        h = _STEP * np.maximum(1.0, np.abs(theta))
        points = theta[None, :] + self._offsets * h[None, :]
        z = self.latents_of(points.T[:, :, None])
        with np.errstate(all="ignore"):
            r = self.law.log_loss(z, self.u, np) - self.y
        r = np.where(np.isfinite(r), r, _BAD_RESIDUAL)
        r0 = r[0]
        a = np.abs(r0)
        d = self.delta
        # min(a, d) keeps the unused branch finite: r0**2 overflows for wild residuals.
        value = float(weights @ np.where(a <= d, 0.5 * np.minimum(a, d) ** 2 / d, a - 0.5 * d))
        psi = weights * np.clip(r0, -d, d) / d
        p = theta.size
        jac = (r[1 : p + 1] - r[p + 1 :]) / (2.0 * h[:, None])
        return value, jac @ psi

    def minimise(self, theta0: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, float]:
        """L-BFGS-B from ``theta0``; the optimum and its objective (inf when it fails)."""
        from scipy.optimize import minimize

        try:
            res = minimize(
                self.value_and_grad,
                np.asarray(theta0, dtype=float),
                args=(weights,),
                jac=True,
                method="L-BFGS-B",
                options=_LBFGS,
            )
        except (ValueError, FloatingPointError, np.linalg.LinAlgError):
            return np.full(self.law.n_params, np.nan), math.inf
        value = float(res.fun)
        return res.x, value if np.isfinite(value) and np.all(np.isfinite(res.x)) else math.inf
