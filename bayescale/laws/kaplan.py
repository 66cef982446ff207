"""Kaplan's joint law of model size and data, L(N, D) (Kaplan 2020, eq. 1.5).

Also Kaplan's published rule for the data a model needs, ``D >~ KAPLAN_D_COEF * N^KAPLAN_D_EXP``
(their eq. 4.4), which figures draw beside the fitted one.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import ModuleType
from typing import Any

import numpy as np

from bayescale.core.priors import Prior
from bayescale.laws.base import Allocation, Array, DataNeed, Law, Params, register_law
from bayescale.laws.scales import KAPLAN_EXPONENT, log_l0_prior, softplus

__all__ = ["KAPLAN_D_COEF", "KAPLAN_D_EXP"]


# --------------------------------------------------------------------------------------------
# Kaplan's joint law L(N, D) = [(N_c/N)^(alpha_N/alpha_D) + D_c/D]^alpha_D.
# Latents: log_L0 (log loss at the centre), w = log of the ratio of the N term to the D term at
# the centre, and the two exponents. Both terms at the centre follow from (log_L0, w).
# --------------------------------------------------------------------------------------------
def _kaplan_terms(z: Mapping, xp: ModuleType) -> tuple[Array, Array]:
    """Log of the N and D terms inside the bracket, at the centre of the data."""
    t_d = z["log_L0"] / z["alpha_D"] - softplus(z["w"], xp)
    return t_d + z["w"], t_d


def _kaplan_log_loss(z: Mapping, u: Mapping, xp: ModuleType) -> Array:
    t_n, t_d = _kaplan_terms(z, xp)
    ratio = z["alpha_N"] / z["alpha_D"]
    return z["alpha_D"] * xp.logaddexp(t_n - ratio * u["N"], t_d - u["D"])


def _kaplan_to_params(z: Mapping, c: Mapping, xp: ModuleType) -> dict:
    t_n, t_d = _kaplan_terms(z, xp)
    ratio = z["alpha_N"] / z["alpha_D"]
    return {
        "alpha_N": z["alpha_N"],
        "alpha_D": z["alpha_D"],
        "N_c": xp.exp(c["N"] + t_n / ratio),
        "D_c": xp.exp(c["D"] + t_d),
    }


def _kaplan_from_params(p: Mapping, c: Mapping, xp: ModuleType) -> dict:
    a_n, a_d = xp.asarray(p["alpha_N"]), xp.asarray(p["alpha_D"])
    t_n = a_n / a_d * (xp.log(p["N_c"]) - c["N"])
    t_d = xp.log(p["D_c"]) - c["D"]
    return {"log_L0": a_d * xp.logaddexp(t_n, t_d), "w": t_n - t_d, "alpha_N": a_n, "alpha_D": a_d}


#: Kaplan et al. (2020) eq. 4.4: the data that keeps overfitting below ~2 %, D = 5e3 N^0.74.
KAPLAN_D_COEF, KAPLAN_D_EXP = 5.0e3, 0.74


def _ratio(p: Params) -> Any:
    return p["alpha_N"] / p["alpha_D"]


def _log_g(p: Params) -> Any:
    r = _ratio(p)
    return (np.log(r) + r * np.log(p["N_c"]) - np.log(p["D_c"])) / (1.0 + r)


def _d_min(p: Params, n: Any, eps: float) -> Any:
    r = _ratio(p)
    # (1 + eps)^(1/alpha_D) - 1 written with expm1/log1p: exact for small eps.
    log_k = np.log(p["D_c"]) - r * np.log(p["N_c"]) - np.log(np.expm1(np.log1p(eps) / p["alpha_D"]))
    return np.exp(log_k + r * np.log(n))


register_law(
    Law(
        name="kaplan_nd",
        formula=r"L = \left[(N_c/N)^{\alpha_N/\alpha_D} + D_c/D\right]^{\alpha_D}",
        inputs=("N", "D"),
        params=("alpha_N", "alpha_D", "N_c", "D_c"),
        latents=("log_L0", "w", "alpha_N", "alpha_D"),
        log_loss=_kaplan_log_loss,
        to_params=_kaplan_to_params,
        from_params=_kaplan_from_params,
        default_priors=lambda s: {
            "log_L0": log_l0_prior(s),
            # Log ratio of N term to D term at the centre: e^{+-4} either way is weak.
            "w": Prior("Normal", mu=0.0, sigma=2.0),
            "alpha_N": KAPLAN_EXPONENT,
            "alpha_D": KAPLAN_EXPONENT,
        },
        derived=lambda p, xp: {"alpha_N_over_alpha_D": p["alpha_N"] / p["alpha_D"]},
        units={
            "alpha_N": "dimensionless",
            "alpha_D": "dimensionless",
            "N_c": "parameters",
            "D_c": "tokens",
        },
        reference="Kaplan et al. 2020, arXiv:2001.08361, eq. 1.5",
        allocation=Allocation(
            log_g=_log_g,
            a=lambda p: p["alpha_D"] / (p["alpha_N"] + p["alpha_D"]),
            interior=lambda p: (p["alpha_N"] > 0) & (p["alpha_D"] > 0),
        ),
        # D_min grows as N^(alpha_N/alpha_D) at every size: Kaplan's D >~ 5e3 N^0.74.
        data_need=DataNeed(d_min=_d_min, exponent=lambda p, n, eps: _ratio(p) + 0.0 * n),
    )
)
