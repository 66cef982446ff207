r"""Exact posterior of log-linear laws (``power_n``, ``power_d``, ``power_c``).

For :math:`L = (X_c/X)^{\alpha}` the model is linear in log space:

.. math::

    \log L_i = \log L_0 - \alpha\, u_i + \varepsilon_i,\qquad
    \varepsilon_i \sim \mathcal{N}(0, \sigma^2),\qquad u_i = \log X_i - c_X,

with independent Normal priors on :math:`\beta = (\log L_0, \alpha)` and any prior on
:math:`\sigma`. Given :math:`\sigma` the posterior of :math:`\beta` is Gaussian with precision
:math:`P(\sigma) = X^\top X/\sigma^2 + V_0^{-1}`, and the marginal likelihood is available in
closed form:

.. math::

    \log p(y\mid\sigma) = -\tfrac{n}{2}\log 2\pi - n\log\sigma - \tfrac12\log|V_0|
    - \tfrac12\log|P| - \tfrac12\left(y^\top y/\sigma^2 + m_0^\top V_0^{-1} m_0 - b^\top P b\right),

so the one-dimensional posterior of :math:`\log\sigma` is computed on a fine adaptive grid and
the joint posterior is an exact mixture of Gaussians (up to the grid, whose error is far below
Monte Carlo error). Draws cost microseconds; this is the fast path (``sampler="exact"``) and
the oracle that NUTS is tested against.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from bayescale.core.errors import ConfigError
from bayescale.core.priors import Prior
from bayescale.laws.base import Law
from bayescale.model.build import ModelData

if TYPE_CHECKING:
    import xarray as xr

__all__ = ["ExactPosterior", "exact_posterior", "sample_exact"]

_GRID = 4000


@dataclass(frozen=True)
class ExactPosterior:
    r"""Posterior of a log-linear law as a grid mixture over :math:`\log\sigma`.

    Attributes
    ----------
    log_sigma : ndarray, shape (G,)
        Uniform grid of :math:`\log\sigma` (sigma is the scatter of log loss).
    weights : ndarray, shape (G,)
        Posterior probability of each grid cell (sums to 1).
    means : ndarray, shape (G, 2)
        Conditional posterior mean of (intercept, exponent) at each grid point.
    covs : ndarray, shape (G, 2, 2)
        Conditional posterior covariance at each grid point.
    names : tuple of str
        Latent names in the order of the last axis, e.g. ``("log_L0", "alpha_N")``.
    """

    log_sigma: np.ndarray
    weights: np.ndarray
    means: np.ndarray
    covs: np.ndarray
    names: tuple[str, str]
    _suff: tuple[np.ndarray, np.ndarray, np.ndarray]

    def moments(self) -> dict[str, tuple[float, float]]:
        """Exact posterior ``(mean, sd)`` of each latent and of ``sigma``."""
        w = self.weights
        mean = w @ self.means
        second = np.einsum(
            "g,gij->ij", w, self.covs + self.means[:, :, None] * self.means[:, None, :]
        )
        cov = second - np.outer(mean, mean)
        sigma = np.exp(self.log_sigma)
        s_mean = float(w @ sigma)
        s_sd = float(np.sqrt(max(w @ sigma**2 - s_mean**2, 0.0)))
        out = {
            name: (float(mean[i]), float(np.sqrt(cov[i, i]))) for i, name in enumerate(self.names)
        }
        out["sigma"] = (s_mean, s_sd)
        return out

    def sample(self, size: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Independent draws of the latents and ``sigma``."""
        step = self.log_sigma[1] - self.log_sigma[0]
        idx = rng.choice(self.log_sigma.size, size=size, p=self.weights)
        # Spread each draw uniformly over its grid cell so sigma is continuous.
        log_sigma = self.log_sigma[idx] + (rng.random(size) - 0.5) * step
        xtx, xty, m0_vinv = self._suff
        vinv_m0, vinv = m0_vinv[0], m0_vinv[1:]
        sig2 = np.exp(2 * log_sigma)[:, None, None]
        prec = xtx[None] / sig2 + vinv[None]
        cov = np.linalg.inv(prec)
        mean = np.einsum("sij,sj->si", cov, xty[None] / sig2[:, :, 0] + vinv_m0[None])
        chol = np.linalg.cholesky(cov)
        beta = mean + np.einsum("sij,sj->si", chol, rng.standard_normal((size, 2)))
        return {self.names[0]: beta[:, 0], self.names[1]: beta[:, 1], "sigma": np.exp(log_sigma)}


def _check(law: Law, priors: Mapping[str, Prior], likelihood: str) -> None:
    if not law.log_linear:
        raise ConfigError(
            "the exact sampler needs a log-linear law (power_n, power_d, power_c); "
            f"{law.name!r} is not. "
            "Use sampler='nutpie' or 'pymc'."
        )
    if likelihood != "normal":
        raise ConfigError(
            "the exact sampler needs the normal likelihood; use sampler='nutpie' for student_t"
        )
    for name in law.latents:
        if priors[name].dist != "Normal":
            raise ConfigError(
                f"the exact sampler needs a Normal prior on {name!r} (got {priors[name].dist}); "
                "use sampler='nutpie' for other priors"
            )


def exact_posterior(
    law: Law, data: ModelData, priors: Mapping[str, Prior], *, likelihood: str = "normal"
) -> ExactPosterior:
    """Compute the exact posterior of a log-linear law.

    Parameters
    ----------
    law : Law
        A law with ``log_linear=True``.
    data : ModelData
        Centred log inputs and log losses.
    priors : mapping
        Normal priors on both latents; any supported prior on ``sigma``.
    likelihood : str
        Must be ``"normal"``.
    """
    _check(law, priors, likelihood)
    (x_name,) = law.inputs
    u, y = data.u[x_name], data.log_loss
    n = y.size
    design = np.column_stack([np.ones(n), -u])
    xtx, xty, yty = design.T @ design, design.T @ y, float(y @ y)
    m0 = np.array([priors[k].params["mu"] for k in law.latents])
    v0 = np.array([priors[k].params["sigma"] ** 2 for k in law.latents])
    vinv = np.diag(1.0 / v0)
    sigma_prior = priors["sigma"].scipy()

    def log_post(log_sigma: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        sig2 = np.exp(2 * log_sigma)[:, None, None]
        prec = xtx[None] / sig2 + vinv[None]
        cov = np.linalg.inv(prec)
        rhs = xty[None] / sig2[:, :, 0] + (vinv @ m0)[None]
        b = np.einsum("gij,gj->gi", cov, rhs)
        _, logdet = np.linalg.slogdet(prec)
        quad = yty / sig2[:, 0, 0] + m0 @ vinv @ m0 - np.einsum("gi,gi->g", b, rhs)
        log_lik = (
            -n * log_sigma
            - 0.5 * np.log(v0).sum()
            - 0.5 * logdet
            - 0.5 * quad
            - 0.5 * n * np.log(2 * np.pi)
        )
        # Density of log(sigma): prior density times the Jacobian sigma.
        lp = log_lik + sigma_prior.logpdf(np.exp(log_sigma)) + log_sigma
        return lp, b, cov

    resid = y - design @ np.linalg.lstsq(design, y, rcond=None)[0]
    s_hat = max(float(np.sqrt(resid @ resid / max(n - 2, 1))), 1e-8)
    upper = max(s_hat, float(sigma_prior.ppf(0.9999)) if hasattr(sigma_prior, "ppf") else s_hat)
    coarse = np.linspace(np.log(s_hat) - 12.0, np.log(upper) + 3.0, _GRID)
    lp, _, _ = log_post(coarse)
    keep = np.flatnonzero(lp > lp.max() - 40.0)
    step = coarse[1] - coarse[0]
    fine = np.linspace(coarse[keep[0]] - step, coarse[keep[-1]] + step, _GRID)
    lp, b, cov = log_post(fine)
    w = np.exp(lp - lp.max())
    w /= w.sum()
    suff = (xtx, xty, np.vstack([vinv @ m0, vinv]))
    return ExactPosterior(fine, w, b, cov, (law.latents[0], law.latents[1]), suff)


def sample_exact(
    law: Law,
    data: ModelData,
    priors: Mapping[str, Prior],
    *,
    likelihood: str = "normal",
    draws: int,
    chains: int,
    seed: int,
) -> xr.DataTree:
    """Independent posterior draws laid out like an MCMC result (dims ``chain``, ``draw``)."""
    # xarray is imported where used: the conjugate posterior is numpy; only the result
    # is labelled
    import xarray as xr

    post = exact_posterior(law, data, priors, likelihood=likelihood)
    rng = np.random.default_rng(seed)
    flat = post.sample(chains * draws, rng)
    z = {k: v.reshape(chains, draws) for k, v in flat.items()}
    quantities = {**z, **law.params_of(z, data.summary.centre)}
    dims = ("chain", "draw")
    coords = {"chain": np.arange(chains), "draw": np.arange(draws)}
    posterior = xr.Dataset(
        {k: (dims, np.asarray(v, dtype=float)) for k, v in quantities.items()}, coords=coords
    )
    stats = xr.Dataset({"diverging": (dims, np.zeros((chains, draws), dtype=bool))}, coords=coords)
    posterior.attrs["inference_library"] = "bayescale.fitting.exact"
    return xr.DataTree.from_dict({"posterior": posterior, "sample_stats": stats})
