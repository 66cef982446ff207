"""Single-input power laws L(X), with and without an irreducible loss (Kaplan 2020, 1.1-1.3)."""

from __future__ import annotations

from collections.abc import Mapping
from types import ModuleType

from bayescale.core.priors import Prior
from bayescale.laws.base import INPUT_UNITS, Array, DataSummary, Law, register_law
from bayescale.laws.scales import (
    LOG_SLOPE,
    PURE_EXPONENT,
    log_e_prior,
    log_l0_prior,
    reducible_at_centre,
    softplus,
)


# --------------------------------------------------------------------------------------------
# Single-input power laws, with and without an irreducible term.
# --------------------------------------------------------------------------------------------
def _power_law(x: str, *, with_e: bool) -> Law:
    alpha, scale = f"alpha_{x}", f"{x}_c"
    unit = INPUT_UNITS[x].split(" (")[0]

    if with_e:
        # Latents: log E, log of the reducible term at the centre (log_R0) and the log of the
        # local slope -dlog L/du at the centre, s = alpha R0 / (E + R0). The data pin down the
        # loss and its slope at the centre, so (log_R0, log_slope) are nearly orthogonal to the
        # weakly identified split between E and the curvature; sampling alpha directly instead
        # correlates all three latents (|r| ~ 0.97) and halves the ESS per draw.
        slope = f"log_slope_{x}"
        latents: tuple[str, ...] = ("log_E", "log_R0", slope)

        def exponent(z: Mapping, xp: ModuleType) -> Array:
            return xp.exp(z[slope] + softplus(z["log_E"] - z["log_R0"], xp))

        def log_loss(z: Mapping, u: Mapping, xp: ModuleType) -> Array:
            return xp.logaddexp(z["log_E"], z["log_R0"] - exponent(z, xp) * u[x])

        def to_params(z: Mapping, c: Mapping, xp: ModuleType) -> dict:
            a = exponent(z, xp)
            return {"E": xp.exp(z["log_E"]), alpha: a, scale: xp.exp(c[x] + z["log_R0"] / a)}

        def from_params(p: Mapping, c: Mapping, xp: ModuleType) -> dict:
            a = xp.asarray(p[alpha])
            log_e, log_r0 = xp.log(p["E"]), a * (xp.log(p[scale]) - c[x])
            return {
                "log_E": log_e,
                "log_R0": log_r0,
                slope: xp.log(a) - softplus(log_e - log_r0, xp),
            }

        def priors(s: DataSummary) -> dict[str, Prior]:
            return {
                "log_E": log_e_prior(s),
                "log_R0": reducible_at_centre(s),
                slope: LOG_SLOPE,
            }

        params: tuple[str, ...] = ("E", alpha, scale)
        formula = rf"L = E + ({x}_c/{x})^{{\alpha_{x}}}"
    else:
        latents = ("log_L0", alpha)

        def log_loss(z: Mapping, u: Mapping, xp: ModuleType) -> Array:
            return z["log_L0"] - z[alpha] * u[x]

        def to_params(z: Mapping, c: Mapping, xp: ModuleType) -> dict:
            return {alpha: z[alpha], scale: xp.exp(c[x] + z["log_L0"] / z[alpha])}

        def from_params(p: Mapping, c: Mapping, xp: ModuleType) -> dict:
            a = xp.asarray(p[alpha])
            return {"log_L0": a * (xp.log(p[scale]) - c[x]), alpha: a}

        def priors(s: DataSummary) -> dict[str, Prior]:
            return {"log_L0": log_l0_prior(s), alpha: PURE_EXPONENT}

        params = (alpha, scale)
        formula = rf"L = ({x}_c/{x})^{{\alpha_{x}}}"

    units = {alpha: "dimensionless", scale: unit, "E": "nats/token"}
    return Law(
        name=f"power_{x.lower()}" + ("_e" if with_e else ""),
        formula=formula,
        inputs=(x,),
        params=params,
        latents=latents,
        log_loss=log_loss,
        to_params=to_params,
        from_params=from_params,
        default_priors=priors,
        units={k: v for k, v in units.items() if k in params},
        log_linear=not with_e,
        reference="Kaplan et al. 2020, arXiv:2001.08361, eqs. 1.1-1.3",
        aliases={scale: "log_R0", "E": "log_E", alpha: f"log_slope_{x}"}
        if with_e
        else {scale: "log_L0"},
        shared=("log_E",) if with_e else (),
    )


for _x in ("N", "D", "C"):
    register_law(_power_law(_x, with_e=False))
for _x in ("N", "D", "C"):
    register_law(_power_law(_x, with_e=True))
