r"""Starting points for the sampler, and a check that the chains found the best mode.

NUTS spends its warm-up reaching the typical set, and a start far from it can strand a chain in
a poor local mode. The Chinchilla form :math:`L = E + A N^{-\alpha} + B D^{-\beta}` is the case
that matters: fitted directly it is badly conditioned and multimodal (a large :math:`A` with a
large :math:`\alpha` mimics a small pair over a ladder's range).

It is also *separable*: for fixed exponents the loss is linear in :math:`(E, A, B)`, so a
**variable projection** solves the linear least-squares problem on a grid of
:math:`(\alpha, \beta)` and keeps the best (Golub & Pereyra 1973; the approach Hoffmann et al.
2022 approximate with a grid of L-BFGS starts). With centred inputs :math:`u_X = \log X - c_X`
the columns are :math:`1, e^{-\alpha u_N}, e^{-\beta u_D}` and the coefficients are exactly the
law's latents :math:`E, a_0, b_0`. Residuals are relative (divided by the observed loss), which
is the first-order form of the model's likelihood on the log loss.

Every law (with or without such a guess, which is registered by law name in :data:`GUESSES`) is
then refined by penalised least squares on the log loss in the sampler's unconstrained
coordinates, the penalty being a Gaussian approximation of each prior. That is the posterior
mode for a fixed noise scale; its Gauss-Newton covariance is a Laplace approximation, and chains
start at independent draws from it (widened by :data:`OVERDISPERSION`), so they begin dispersed
on the scale of the posterior rather than the unit box PyMC jitters in.

The same optimum gives a cheap check after sampling (:func:`check_mode`): the best draw of every
chain must come close to it, otherwise that chain is stuck in a worse mode.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from bayescale.core.priors import Prior
from bayescale.laws.base import Law
from bayescale.model.build import ModelData

if TYPE_CHECKING:
    import xarray as xr

__all__ = [
    "Start",
    "check_mode",
    "free_vars",
    "initial_point_fn",
    "pymc_initial_point_fn",
    "start_point",
]

#: Chains start at draws from the Laplace approximation with its standard deviations times this.
OVERDISPERSION = 2.0
#: A chain whose best draw is worse than the optimum by more than this in penalised chi-square
#: (twice the log-density gap) missed the mode. Posterior draws sit about chi-square(p) above
#: the optimum (p <= 7 here), so 30 is beyond its 99.99 % quantile for every law.
MODE_TOLERANCE = 30.0
#: Smallest noise scale (log loss) used to weight residuals: noiseless data must not divide by 0.
MIN_SIGMA = 1e-4


# --------------------------------------------------------------------------------------------
# Penalised least squares in the sampler's coordinates
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Start:
    """The penalised least-squares optimum of a pooled law, and its Laplace approximation.

    Attributes
    ----------
    latents : dict of str to float
        The law's latents at the optimum (sampling-space values, not transformed).
    log_scale : tuple of str
        Latents whose unconstrained coordinate is their log (positive priors).
    theta : ndarray
        The optimum in unconstrained coordinates, in the order of ``law.latents``.
    cov : ndarray
        Laplace covariance of ``theta`` (Gauss-Newton, noise scale fixed at ``sigma``).
    sigma : float
        Root-mean-square residual of the log loss at the optimum (at least :data:`MIN_SIGMA`).
    objective : float
        Penalised chi-square at the optimum: squared residuals over ``sigma**2`` plus the prior
        penalty.
    n_runs : int
        Number of runs fitted.
    """

    latents: dict[str, float]
    log_scale: tuple[str, ...]
    theta: np.ndarray
    cov: np.ndarray
    sigma: float
    objective: float
    n_runs: int


def _prior_gauss(prior: Prior, log: bool) -> tuple[float, float]:
    """Median and a standard deviation of a prior in the coordinate the sampler uses."""
    q16, q50, q84 = (float(v) for v in prior.ppf([0.158655, 0.5, 0.841345]))
    if log:
        q16, q50, q84 = (math.log(max(v, 1e-300)) for v in (q16, q50, q84))
    return q50, max((q84 - q16) / 2.0, 1e-12)


def positive_support(prior: Prior) -> bool:
    """Tell whether the prior lives on the positive half-line (so PyMC samples its log)."""
    return prior.dist in {"HalfNormal", "LogNormal", "Gamma", "Exponential", "HalfStudentT"}


def start_point(
    law: Law,
    data: ModelData,
    priors: Mapping[str, Prior],
    *,
    log_scale: Sequence[str] | None = None,
) -> Start:
    """Posterior mode of a pooled law for a fixed noise scale, and its Laplace approximation.

    Parameters
    ----------
    law : Law
        The law (pooled: one value per latent).
    data : ModelData
        Centred log inputs and observed log loss.
    priors : mapping of str to Prior
        Priors of the law's latents (others are ignored).
    log_scale : sequence of str, optional
        Latents the sampler moves on the log scale; default: those with a positive prior.

    Returns
    -------
    Start
    """
    names = list(law.latents)
    if log_scale is None:
        log_scale = [k for k in names if positive_support(priors[k])]
    logs = np.array([k in log_scale for k in names])
    centre, spread = np.array(
        [_prior_gauss(priors[k], bool(lg)) for k, lg in zip(names, logs, strict=True)]
    ).T

    def latents_of(theta: np.ndarray) -> dict[str, float]:
        values = np.where(logs, np.exp(np.minimum(theta, 700.0)), theta)
        return dict(zip(names, values.tolist(), strict=True))

    def data_residuals(theta: np.ndarray) -> np.ndarray:
        with np.errstate(all="ignore"):
            r = law.log_loss(latents_of(theta), data.u, np) - data.log_loss
        return np.where(np.isfinite(r), r, 1e3)

    if law.guess is not None:
        z0 = law.guess(data.u, np.exp(data.log_loss))
        theta0 = np.array(
            [math.log(z0[k]) if lg else z0[k] for k, lg in zip(names, logs, strict=True)]
        )
    else:
        theta0 = centre.copy()
    # The noise scale weighs data against prior: take it from the first guess, then once more
    # from the refined fit (two passes settle it; the optimum barely moves after that).
    theta = theta0
    for _ in range(2):
        r0 = data_residuals(theta)
        sigma = max(float(np.sqrt(np.mean(r0**2))), MIN_SIGMA)

        def residuals(t: np.ndarray, s: float = sigma) -> np.ndarray:
            return np.concatenate([data_residuals(t) / s, (t - centre) / spread])

        theta = levenberg_marquardt(residuals, theta)[0]
    r = data_residuals(theta)
    sigma = max(float(np.sqrt(np.mean(r**2))), MIN_SIGMA)
    theta, fun, jac = levenberg_marquardt(
        lambda t: np.concatenate([data_residuals(t) / sigma, (t - centre) / spread]), theta
    )
    cov = np.linalg.pinv(jac.T @ jac)
    objective = float(np.sum(fun**2))
    return Start(
        latents=latents_of(theta),
        log_scale=tuple(k for k, lg in zip(names, logs, strict=True) if lg),
        theta=theta,
        cov=(cov + cov.T) / 2.0,
        sigma=sigma,
        objective=objective,
        n_runs=data.n_runs,
    )


def levenberg_marquardt(
    residuals: Callable[[np.ndarray], np.ndarray],
    x0: np.ndarray,
    *,
    max_iter: int = 500,
    tol: float = 1e-12,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""Minimise ``sum(residuals(x)**2)`` by Levenberg-Marquardt; return x, residuals, Jacobian.

    A start point only needs a few parameters fitted to a few hundred residuals, for which
    this is as good as MINPACK's (``scipy.optimize.least_squares(method="lm")``) and spares a
    command-line fit the half second SciPy's optimisers take to import. Damping is scaled by
    the largest diagonal of :math:`J^\top J` seen so far (MINPACK's ``x_scale="jac"``), updated
    as in Nielsen (1999); the Jacobian is by central differences.

    Parameters
    ----------
    residuals : callable
        ``x -> r`` with finite values (map failures to large residuals).
    x0 : ndarray
        Starting point.
    max_iter : int
        Most steps tried.
    tol : float
        Stop when a step changes the sum of squares by less than ``tol`` relatively, or moves
        ``x`` by less than ``tol`` relatively.

    Returns
    -------
    x, r, jac : ndarray
        The minimiser, its residuals and their Jacobian there.
    """

    def jacobian(x: np.ndarray) -> np.ndarray:
        h = np.cbrt(np.finfo(float).eps) * np.maximum(np.abs(x), 1.0)
        cols = []
        for i in range(x.size):
            e = np.zeros_like(x)
            e[i] = h[i]
            cols.append((residuals(x + e) - residuals(x - e)) / (2.0 * h[i]))
        return np.stack(cols, axis=1)

    x = np.asarray(x0, dtype=float).copy()
    r = residuals(x)
    cost = float(r @ r)
    jac = jacobian(x)
    scale = np.maximum(np.sum(jac**2, axis=0), np.finfo(float).tiny)
    mu, nu = 1e-3, 2.0
    for _ in range(max_iter):
        a, g = jac.T @ jac, jac.T @ r
        scale = np.maximum(scale, np.diag(a))
        try:
            step = np.linalg.solve(a + mu * np.diag(scale), -g)
        except np.linalg.LinAlgError:
            step = np.linalg.lstsq(a + mu * np.diag(scale), -g, rcond=None)[0]
        if np.linalg.norm(step) <= tol * (np.linalg.norm(x) + tol):
            break
        r_new = residuals(x + step)
        cost_new = float(r_new @ r_new)
        predicted = float(step @ (mu * scale * step - g))  # model decrease of cost / 2
        gain = (cost - cost_new) / (2.0 * predicted) if predicted > 0 else -1.0
        if gain > 0:
            x, r, done = x + step, r_new, cost - cost_new <= tol * cost
            cost = cost_new
            jac = jacobian(x)
            mu *= max(1.0 / 3.0, 1.0 - (2.0 * gain - 1.0) ** 3)
            nu = 2.0
            if done:
                break
        else:
            mu *= nu
            nu *= 2.0
    return x, r, jac


def penalised_objective(
    law: Law, data: ModelData, priors: Mapping[str, Prior], start: Start, z: Mapping[str, Any]
) -> np.ndarray:
    """Penalised chi-square of latent draws ``z`` (arrays of any shape), as in :class:`Start`.

    Evaluated run by run so memory stays proportional to the number of draws.
    """
    names = list(law.latents)
    shape = np.shape(np.asarray(z[names[0]]))
    flat = {k: np.asarray(z[k], dtype=float).reshape(-1) for k in names}
    rss = np.zeros(flat[names[0]].size)
    chunk = max(1, 2_000_000 // max(rss.size, 1))
    for lo in range(0, data.n_runs, chunk):
        u = {k: v[lo : lo + chunk][None, :] for k, v in data.u.items()}
        zz = {k: v[:, None] for k, v in flat.items()}
        with np.errstate(all="ignore"):
            res = law.log_loss(zz, u, np) - data.log_loss[None, lo : lo + chunk]
        rss += np.sum(res**2, axis=1)
    penalty = np.zeros_like(rss)
    for k in names:
        centre, spread = _prior_gauss(priors[k], k in start.log_scale)
        with np.errstate(all="ignore"):
            t = np.log(flat[k]) if k in start.log_scale else flat[k]
        penalty += ((t - centre) / spread) ** 2
    out = rss / start.sigma**2 + penalty
    return np.where(np.isfinite(out), out, np.inf).reshape(shape)


def check_mode(
    law: Law,
    data: ModelData,
    priors: Mapping[str, Prior],
    start: Start,
    posterior: Mapping[str, Any] | xr.Dataset,
    *,
    max_draws: int = 100,
) -> list[int]:
    """Chains whose best draw is far worse than the least-squares optimum (stuck in a mode).

    Parameters
    ----------
    law, data, priors, start
        As given to :func:`start_point`.
    posterior : mapping or xarray.Dataset
        Draws of the law's latents with leading dims ``(chain, draw)``.
    max_draws : int
        Evenly spaced draws per chain to evaluate (keeps the check cheap on large tables).

    Returns
    -------
    list of int
        Indices of chains that missed the mode (empty when all are fine).
    """
    z = {k: np.asarray(posterior[k], dtype=float) for k in law.latents}
    n_draws = z[law.latents[0]].shape[1]
    pick = np.unique(np.linspace(0, n_draws - 1, min(max_draws, n_draws)).astype(int))
    best = penalised_objective(law, data, priors, start, {k: v[:, pick] for k, v in z.items()})
    gap = best.min(axis=1) - start.objective
    return [int(c) for c in np.flatnonzero(gap > MODE_TOLERANCE)]


# --------------------------------------------------------------------------------------------
# Initial points for nutpie
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FreeVar:
    """One free variable of a compiled model: where it sits in the sampler's flat vector.

    Attributes
    ----------
    value : str
        Name of the unconstrained value (``alpha_log__``).
    name : str
        Name of the random variable (``alpha``).
    transform : str or None
        ``"log"`` or None (identity); other transforms are named by their class.
    start, stop : int
        Slice of the flat vector.
    """

    value: str
    name: str
    transform: str | None
    start: int
    stop: int


#: PyMC transform classes by the name :class:`FreeVar` gives them (None, no transform, is
#: looked up too and kept).
_TRANSFORMS: dict[str | None, str] = {"LogTransform": "log"}


def free_vars(model: Any) -> tuple[FreeVar, ...]:
    """List the free variables of a PyMC model in the order nutpie flattens them."""
    point = model.initial_point()
    out, offset = [], 0
    for rv in model.free_RVs:
        value = model.rvs_to_values[rv].name
        transform = model.rvs_to_transforms.get(rv)
        kind = None if transform is None else type(transform).__name__
        size = int(np.size(point[value]))
        out.append(FreeVar(value, rv.name, _TRANSFORMS.get(kind, kind), offset, offset + size))
        offset += size
    return tuple(out)


def initial_point_fn(
    law: Law,
    free: Sequence[FreeVar],
    start: Start,
    priors: Mapping[str, Prior],
    n_dim: int,
) -> Callable[[int], np.ndarray] | None:
    r"""Seeded function giving each chain its starting point in nutpie's flat coordinates.

    The law's latents are drawn from the Laplace approximation of :func:`start_point` (standard
    deviations times :data:`OVERDISPERSION`), ``log sigma`` from the residual scale with its
    large-sample spread :math:`1/\sqrt{2n}`, any other scalar (Student-t ``nu``) at its prior
    median with a jitter of 0.5 on the log scale.

    Returns None when the model has a free variable this cannot place (group-level variables,
    offsets, or a transform other than log), so the caller keeps PyMC's default.
    """
    index = {k: i for i, k in enumerate(law.latents)}
    if sum(v.stop - v.start for v in free) != n_dim:
        return None
    for v in free:
        expected = "log" if (v.name in start.log_scale or v.name not in index) else None
        if v.stop - v.start != 1 or v.transform != expected:
            return None
        if v.name not in index and v.name not in ("sigma", "nu"):
            return None
    chol = np.linalg.cholesky(start.cov + 1e-12 * np.eye(len(index))) * OVERDISPERSION

    def init(seed: int) -> np.ndarray:
        rng = np.random.default_rng(seed)
        theta = start.theta + chol @ rng.standard_normal(len(index))
        x = np.empty(n_dim)
        for v in free:
            if v.name in index:
                x[v.start] = theta[index[v.name]]
            elif v.name == "sigma":
                jitter = OVERDISPERSION * rng.standard_normal() / math.sqrt(2 * start.n_runs)
                x[v.start] = math.log(start.sigma) + jitter
            else:
                median, _ = _prior_gauss(priors[v.name], log=True)
                x[v.start] = median + rng.uniform(-0.5, 0.5)
        return x

    return init


def pymc_initial_point_fn(model: Any, free: Sequence[FreeVar], n_dim: int) -> Callable[[int], Any]:
    """PyMC's default start (support points jittered by U(-1, 1)) in nutpie's flat coordinates.

    Used for models :func:`initial_point_fn` cannot place; built from ``model`` so it reads this
    dataset's prior hyperparameters.
    """
    # pymc is imported where used (~0.7 s): only PyMC's own initial points need it
    from pymc.initial_point import make_initial_point_fn

    point = make_initial_point_fn(
        model=model,
        default_strategy="support_point",
        jitter_rvs=set(model.free_RVs),
        return_transformed=True,
    )

    lock = threading.Lock()

    def init(seed: int) -> np.ndarray:
        # nutpie calls this from its chain threads at once; a compiled PyTensor function is
        # not re-entrant (concurrent calls intermittently fail to start a chain).
        with lock:
            values = point(seed)
        x = np.empty(n_dim)
        for v in free:
            x[v.start : v.stop] = np.asarray(values[v.value], dtype=float).ravel()
        return x

    return init
