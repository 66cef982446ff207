"""The Chinchilla form L = E + A/N^alpha + B/D^beta (Hoffmann 2022, eq. 2).

Besides the law, its closed forms (compute-optimal allocation, data needed) and a global first
guess by variable projection (:func:`chinchilla_projection`): for every exponent pair on a grid
the best non-negative coefficients are exact, so the guess needs no starting point.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from types import ModuleType
from typing import Any

import numpy as np

from bayescale.laws.base import Allocation, Array, DataNeed, Law, Params, register_law
from bayescale.laws.scales import REDUCIBLE_EXPONENT, log_e_prior, reducible_at_centre


# --------------------------------------------------------------------------------------------
# Chinchilla: L = E + A/N^alpha + B/D^beta. Latents: log_E and the log of each reducible term at
# the centre of the data (log_a0 = log A - alpha c_N), which decorrelates A from alpha.
# --------------------------------------------------------------------------------------------
def _chinchilla_log_loss(z: Mapping, u: Mapping, xp: ModuleType) -> Array:
    n_term = z["log_a0"] - z["alpha"] * u["N"]
    d_term = z["log_b0"] - z["beta"] * u["D"]
    return xp.logaddexp(xp.logaddexp(z["log_E"], n_term), d_term)


#: Exponent grid of the variable projection: 60 log-spaced values from 0.02 to 2.
EXPONENT_GRID = np.geomspace(0.02, 2.0, 60)


def chinchilla_projection(
    u_n: np.ndarray,
    u_d: np.ndarray,
    loss: np.ndarray,
    *,
    alphas: np.ndarray = EXPONENT_GRID,
    betas: np.ndarray = EXPONENT_GRID,
) -> tuple[dict[str, float], float]:
    r"""Best non-negative :math:`(E, a_0, b_0)` for each grid :math:`(\alpha, \beta)`; the best.

    Minimises :math:`\sum_i \left[(L_i - E - a_0 e^{-\alpha u_{N,i}} - b_0 e^{-\beta
    u_{D,i}})/L_i\right]^2` exactly over non-negative coefficients at every grid point (all
    3 x 3 normal equations solved at once; the non-negative solution of a three-column problem
    is the best feasible solution over the seven column subsets).

    Parameters
    ----------
    u_n, u_d : ndarray
        Centred log inputs :math:`\log N - c_N` and :math:`\log D - c_D`, shape ``(n_runs,)``.
    loss : ndarray
        Observed loss (nats/token), shape ``(n_runs,)``.
    alphas, betas : ndarray
        Exponent grids (dimensionless).

    Returns
    -------
    latents : dict
        ``log_E, log_a0, log_b0, alpha, beta`` of the best grid point (a coefficient at the
        non-negativity bound is replaced by a tiny positive value so its log is finite).
    rss : float
        Its sum of squared relative residuals.

    Examples
    --------
    >>> u_n, u_d = np.linspace(-2, 2, 30), np.tile([-1.0, 0.0, 1.0], 10)
    >>> loss = 1.7 + 0.3 * np.exp(-0.34 * u_n) + 0.4 * np.exp(-0.28 * u_d)
    >>> z, rss = chinchilla_projection(u_n, u_d, loss, alphas=np.array([0.3, 0.34]),
    ...                                betas=np.array([0.28, 0.5]))
    >>> round(z["alpha"], 2), round(z["beta"], 2), round(math.exp(z["log_E"]), 3)
    (0.34, 0.28, 1.7)
    """
    w = 1.0 / np.asarray(loss, dtype=float)  # relative residuals: rows divided by the loss
    ones = w
    p = w * np.exp(-np.outer(alphas, u_n))  # (n_alpha, n_runs)
    q = w * np.exp(-np.outer(betas, u_d))  # (n_beta, n_runs)
    y = np.ones_like(w)  # loss / loss
    # Gram matrices and right-hand sides for every (alpha, beta) pair, by broadcasting.
    na, nb = len(alphas), len(betas)
    g = np.empty((na, nb, 3, 3))
    g[..., 0, 0] = ones @ ones
    g[..., 0, 1] = g[..., 1, 0] = (p @ ones)[:, None]
    g[..., 0, 2] = g[..., 2, 0] = (q @ ones)[None, :]
    g[..., 1, 1] = np.einsum("ar,ar->a", p, p)[:, None]
    g[..., 2, 2] = np.einsum("br,br->b", q, q)[None, :]
    g[..., 1, 2] = g[..., 2, 1] = p @ q.T
    b = np.empty((na, nb, 3))
    b[..., 0] = ones @ y
    b[..., 1] = (p @ y)[:, None]
    b[..., 2] = (q @ y)[None, :]
    yy = float(y @ y)

    best_rss = np.full((na, nb), np.inf)
    best_coef = np.zeros((na, nb, 3))
    for mask in range(1, 8):
        cols = [j for j in range(3) if mask >> j & 1]
        sub_g = g[..., cols, :][..., :, cols]
        sub_b = b[..., cols]
        with np.errstate(all="ignore"):
            coef = np.linalg.solve(sub_g + 1e-12 * np.eye(len(cols)), sub_b[..., None])[..., 0]
        rss = (
            yy
            - 2 * np.einsum("...i,...i", coef, sub_b)
            + np.einsum("...i,...ij,...j", coef, sub_g, coef)
        )
        ok = np.all(coef >= 0, axis=-1) & np.isfinite(rss) & (rss < best_rss)
        best_rss = np.where(ok, rss, best_rss)
        full = np.zeros((na, nb, 3))
        full[..., cols] = coef
        best_coef = np.where(ok[..., None], full, best_coef)
    i, j = np.unravel_index(np.argmin(best_rss), best_rss.shape)
    floor = 1e-6 * float(np.mean(loss))
    e, a0, b0 = np.maximum(best_coef[i, j], floor)
    latents = {
        "log_E": math.log(e),
        "log_a0": math.log(a0),
        "log_b0": math.log(b0),
        "alpha": float(alphas[i]),
        "beta": float(betas[j]),
    }
    return latents, float(max(best_rss[i, j], 0.0))


def _guess(u: Mapping[str, np.ndarray], loss: np.ndarray) -> dict[str, float]:
    latents, _ = chinchilla_projection(u["N"], u["D"], loss)
    return latents


def _d_min(p: Params, n: Any, eps: float) -> Any:
    floor = p["E"] + p["A"] * n ** (-p["alpha"])
    return (p["B"] / (eps * floor)) ** (1.0 / p["beta"])


def _data_exponent(p: Params, n: Any, eps: float) -> Any:
    n_term = p["A"] * n ** (-p["alpha"])
    return p["alpha"] / p["beta"] * n_term / (p["E"] + n_term)


register_law(
    Law(
        name="chinchilla",
        formula=r"L = E + A/N^{\alpha} + B/D^{\beta}",
        inputs=("N", "D"),
        params=("E", "A", "B", "alpha", "beta"),
        latents=("log_E", "log_a0", "log_b0", "alpha", "beta"),
        log_loss=_chinchilla_log_loss,
        to_params=lambda z, c, xp: {
            "E": xp.exp(z["log_E"]),
            "A": xp.exp(z["log_a0"] + z["alpha"] * c["N"]),
            "B": xp.exp(z["log_b0"] + z["beta"] * c["D"]),
            "alpha": z["alpha"],
            "beta": z["beta"],
        },
        from_params=lambda p, c, xp: {
            "log_E": xp.log(p["E"]),
            "log_a0": xp.log(p["A"]) - xp.asarray(p["alpha"]) * c["N"],
            "log_b0": xp.log(p["B"]) - xp.asarray(p["beta"]) * c["D"],
            "alpha": xp.asarray(p["alpha"]),
            "beta": xp.asarray(p["beta"]),
        },
        default_priors=lambda s: {
            "log_E": log_e_prior(s),
            "log_a0": reducible_at_centre(s, share=0.5),
            "log_b0": reducible_at_centre(s, share=0.5),
            "alpha": REDUCIBLE_EXPONENT,
            "beta": REDUCIBLE_EXPONENT,
        },
        # Compute-optimal allocation exponents under C = 6ND: N_opt ∝ C^a, D_opt ∝ C^b.
        derived=lambda p, xp: {
            "a": p["beta"] / (p["alpha"] + p["beta"]),
            "b": p["alpha"] / (p["alpha"] + p["beta"]),
        },
        units={
            "E": "nats/token",
            "A": "nats/token x parameters^alpha",
            "B": "nats/token x tokens^beta",
            "alpha": "dimensionless",
            "beta": "dimensionless",
        },
        reference="Hoffmann et al. 2022, arXiv:2203.15556, eq. 2 (Approach 3)",
        aliases={"E": "log_E", "A": "log_a0", "B": "log_b0"},
        shared=("log_E",),
        allocation=Allocation(
            log_g=lambda p: (
                np.log(p["alpha"] * p["A"] / (p["beta"] * p["B"])) / (p["alpha"] + p["beta"])
            ),
            a=lambda p: p["beta"] / (p["alpha"] + p["beta"]),
            interior=lambda p: (p["alpha"] > 0) & (p["beta"] > 0),
        ),
        data_need=DataNeed(d_min=_d_min, exponent=_data_exponent),
        guess=_guess,
    )
)
