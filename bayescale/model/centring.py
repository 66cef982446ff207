"""Centred or non-centred: chosen per parameter and group, and for run offsets, before sampling.

A centred parameter samples cleanly when its group (or each learning curve) pins it down, a
non-centred one when groups barely differ; a funnel follows from the wrong choice. Which regime a
table is in is read from quick penalised least-squares fits: :func:`pilot_centring` for groups
(:class:`~bayescale.model.pooling.Pooling`), :func:`pilot_run_centring` for run offsets.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np

from bayescale.core.priors import Prior
from bayescale.model.pooling import Pooling

if TYPE_CHECKING:
    from bayescale.laws.base import Law
    from bayescale.model.build import RunEffect

__all__ = ["RUN_NOISES", "pilot_centring", "pilot_run_centring"]

#: Noise models of learning curves (``fit(..., run_noise=...)``): ``"offset"``, a random offset
#: per run plus independent scatter; ``"ar1"``, the offset plus an AR(1) residual along the
#: run's log steps (see :mod:`bayescale.questions.curves`).
RUN_NOISES = ("ar1", "offset")


# --------------------------------------------------------------------------------------------
# Parametrization of the run offsets
# --------------------------------------------------------------------------------------------
def pilot_run_centring(
    law: Law,
    u: Mapping[str, np.ndarray],
    log_loss: np.ndarray,
    effect: RunEffect,
    priors: Mapping[str, Prior],
    *,
    margin: float = 3.0,
    noise_floor: float = 0.002,
) -> RunEffect:
    r"""Choose the centred or non-centred form of the run offsets from a quick MAP fit.

    The law's latents are fitted by least squares (held near their priors), then one offset
    per run with them. With :math:`\hat\sigma` the residual scatter and
    :math:`n_r` the rows of run :math:`r`, an offset's standard error is
    :math:`s_r = \hat\sigma/\sqrt{n_r}` and the spread of the offsets is estimated by moments,
    :math:`\hat\tau^2 = \max(0, \mathrm{var}(\hat\delta) - \overline{s_r^2})`. Every run is
    centred when :math:`\text{margin}\cdot s_r < \hat\tau` for all runs (each curve pins its
    own level down, the usual case for curves of tens of points), else none is: with
    :math:`\hat\tau \approx 0` (runs that all follow the law) the centred form has a funnel.

    Returns
    -------
    RunEffect
        ``effect`` with :attr:`~bayescale.model.build.RunEffect.centred` set.
    """
    # scipy is imported where used: only the pilot fits need scipy.optimize
    from scipy.optimize import least_squares

    latents = list(law.latents)
    scale = {k: _map_scale(priors[k]) for k in latents}
    m = np.array([scale[k][1] for k in latents])
    s = np.array([scale[k][2] for k in latents])
    n_runs = len(effect.labels)

    n_law = len(latents)

    def residuals(h: np.ndarray, with_offsets: bool) -> np.ndarray:
        z = {
            k: np.exp(v) if scale[k][0] == "log" else v
            for k, v in zip(latents, h[:n_law], strict=True)
        }
        offsets = h[n_law:]
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            fitted = law.log_loss(z, u, np) + (offsets[effect.index] if with_offsets else 0.0)
        parts = [(log_loss - fitted) / noise_floor, (h[:n_law] - m) / s]
        if with_offsets:
            # A loose pseudo-prior (sd 0.1) pins the mean offset, which the law's level could
            # otherwise absorb.
            parts.append(offsets / 0.1)
        r = np.concatenate(parts)
        return np.where(np.isfinite(r), r, 1e6)

    # The law alone first, then the offsets from there: fitted jointly from the prior means,
    # the offsets can absorb a misplaced law and stop in a worse optimum.
    pooled = least_squares(residuals, m, args=(False,), method="trf")
    start = np.concatenate([pooled.x, np.zeros(n_runs)])
    result = least_squares(residuals, start, args=(True,), method="trf")
    offsets = result.x[n_law:]
    resid = result.fun[: log_loss.size] * noise_floor
    counts = np.bincount(effect.index, minlength=n_runs)
    dof = max(log_loss.size - len(latents) - n_runs, 1)
    sigma = max(float(np.sqrt(np.sum(resid**2) / dof)), noise_floor)
    se = sigma / np.sqrt(counts)
    tau = np.sqrt(max(float(np.var(offsets)) - float(np.mean(se**2)), 0.0))
    centred = bool(n_runs > 1 and np.all(margin * se < tau))
    return replace(effect, centred=(centred,) * n_runs)


def pilot_centring(
    log_loss_fn: Any,
    u: Mapping[str, np.ndarray],
    log_loss: np.ndarray,
    pooling: Pooling,
    priors: Mapping[str, Prior],
    *,
    noise_floor: float = 0.003,
    margin: float = 1.8,
) -> dict[str, tuple[bool, ...]]:
    r"""Choose the parametrization of partially pooled latents from quick MAP fits.

    1. A pooled MAP fit (all latents shared) gives a starting point.
    2. Each group gets its own MAP fit of every latent, with the prior as pseudo-observations
       so a group with fewer runs than parameters still has a finite curvature; the
       Gauss-Newton covariance, scaled by the residual scatter of all groups, gives the
       standard error :math:`s_g` of each varying latent on its pooling scale. Shared latents
       are free in these fits so that :math:`s_g` includes the trade-off with them (E against
       each group's reducible term).
    3. The between-group spread is estimated by moments,
       :math:`\hat\tau^2 = \max(0, \mathrm{var}_g(\hat h_g) - \overline{s_g^2})`.
    4. The centred form is used when, for every partially pooled latent and every group,
       :math:`1.8 s_g < \tau_{low}`, where :math:`\tau_{low} = \hat\tau\,(1 - 2/\sqrt{2(G-1)})`
       is a plausible low value of the scale given :math:`G` groups: each group's own runs
       determine its values clearly better than the population does (typical of a ladder of
       many well-measured families). Any
       latent whose groups barely differ (:math:`\hat\tau \approx 0`) or any thin group
       makes the whole model non-centred: in simulations with 4-10 groups, mixing the two
       forms across latents or groups mixed worse than either form alone.

    Parameters
    ----------
    log_loss_fn : callable
        ``log_loss(z, u, xp)`` of the law.
    u : mapping
        Centred log inputs per input name, shape ``(n_runs,)``.
    log_loss : ndarray
        Observed log losses.
    pooling : Pooling
        Pooling with the run index.
    priors : mapping
        The law's own (not population) priors of each latent.
    noise_floor : float
        Smallest residual scatter of log loss assumed (guards against near-perfect fits).
    margin : float
        Required ratio ``tau_low / s_g``. The moment estimate of the population scale from a
        handful of groups is rough and the posterior of the scale reaches towards zero, where
        the centred form has its funnel; near the boundary the non-centred form is the safer
        choice.

    Returns
    -------
    dict of str to tuple of bool
        Centring per group for every partially pooled latent (the same for all, see 4.).
    """
    from scipy.optimize import least_squares

    latents = list(pooling.modes)
    partial = [k for k in latents if pooling.modes[k] == "partial"]
    if not partial:
        return {}
    scale = {k: _map_scale(priors[k]) for k in latents}
    m = np.array([scale[k][1] for k in latents])
    s = np.array([scale[k][2] for k in latents])

    def residuals(h: np.ndarray, uu: Mapping[str, np.ndarray], y: np.ndarray) -> np.ndarray:
        z = {k: np.exp(v) if scale[k][0] == "log" else v for k, v in zip(latents, h, strict=True)}
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            fit_r = (y - log_loss_fn(z, uu, np)) / noise_floor
        r = np.concatenate([fit_r, (h - m) / s])
        return np.where(np.isfinite(r), r, 1e6)

    pooled = least_squares(residuals, m, args=(u, log_loss), method="trf")
    varying = [k for k in latents if pooling.modes[k] != "pooled"]
    cols = [latents.index(k) for k in varying]
    estimates, jacobians, sq_resid = [], [], 0.0
    for g in range(len(pooling.labels)):
        # Every latent is free in the group's fit, so the standard errors of the varying ones
        # include their correlation with shared latents (E trades off against each group's
        # reducible term): fixing the shared ones would make groups look better determined
        # than they are and pick the centred form where it produces divergences.
        rows = pooling.index == g
        ug = {k: v[rows] for k, v in u.items()}
        res = least_squares(residuals, pooled.x, args=(ug, log_loss[rows]), method="trf")
        n_g = int(rows.sum())
        estimates.append(res.x[cols])
        jacobians.append((res.jac, n_g))
        sq_resid += float(np.sum((res.fun[:n_g] * noise_floor) ** 2))
    dof = max(len(log_loss) - len(varying) * len(pooling.labels), 1)
    sigma = max(np.sqrt(sq_resid / dof), noise_floor)
    ses = []
    for jac, n_g in jacobians:
        # Rescale the data rows from the floor to the estimated scatter; prior rows stay.
        j = jac.copy()
        j[:n_g] *= noise_floor / sigma
        ses.append(np.sqrt(np.diag(np.linalg.pinv(j.T @ j)))[cols])
    est, se = np.array(estimates), np.array(ses)
    # A plausible low value of the population scale: its moment estimate from G groups has a
    # relative sd of about 1/sqrt(2(G - 1)), so with 4 groups the posterior reaches far
    # towards zero, where the centred form has its funnel.
    n_groups = len(pooling.labels)
    low = max(0.0, 1.0 - 2.0 / np.sqrt(2.0 * max(n_groups - 1, 1)))
    clear = True
    for col, k in enumerate(varying):
        if k not in partial:
            continue
        tau2 = max(0.0, float(np.var(est[:, col], ddof=1)) - float(np.mean(se[:, col] ** 2)))
        clear = clear and bool(np.all(se[:, col] * margin < low * np.sqrt(tau2)))
    return {k: (clear,) * len(pooling.labels) for k in partial}


def _map_scale(prior: Prior) -> tuple[str, float, float]:
    """Scale (identity/log), mean and sd of a latent's prior on the scale MAP fits work on."""
    if prior.dist == "LogNormal":
        return "log", prior.params["mu"], prior.params["sigma"]
    dist = prior.scipy()
    return "identity", float(dist.mean()), float(dist.std())
