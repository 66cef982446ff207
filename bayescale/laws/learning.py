"""Learning-curve laws: loss against optimizer steps, with the critical batch (Kaplan 2020, sec. 5).

Also the published critical batch :data:`KAPLAN_BCRIT` and Kaplan's compute-efficient frontier
exponents (:func:`frontier_exponents`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import ModuleType

import numpy as np

from bayescale.core.priors import Prior
from bayescale.laws.base import Array, DataSummary, Law, register_law
from bayescale.laws.scales import (
    KAPLAN_EXPONENT,
    log_e_prior,
    log_l0_prior,
    reducible_at_centre,
    softplus,
)

# --------------------------------------------------------------------------------------------
# Learning curves (Kaplan 2020, sec. 5): loss against optimizer steps S at model size N.
#
# kaplan_ns        L = (N_c/N)^alpha_N + (S_c/S)^alpha_S, the step taken as S_min.
# kaplan_ns_bcrit  the same with S_min = S / (1 + B_crit(L)/B), B_crit(L) = B*/L^(1/alpha_B).
# critical_batch   L = E + (S_c/S_min)^alpha_S with that S_min, at one model size.
#
# B_crit depends on the loss, so the last two define L implicitly. It is solved by Newton's
# method on l = log L (see _solve_bcrit); the steps carry no gradient and one final step at the
# solution gives the exact implicit-function gradient, so the sampler differentiates a short
# expression instead of an unrolled loop.
# --------------------------------------------------------------------------------------------
#: Newton steps for the implicit loss. g(l) = l - log(floor + S-term(l)) has slope in
#: [1, 1 + alpha_S/alpha_B]; from the lower bound log(floor + S-term at S_min = S) six steps
#: reach 1e-14 over the whole prior range (checked in tests/test_curves.py).
_NEWTON_STEPS = 6
#: Reference loss at which the critical batch is a latent: B_crit(e nats) = B* e^(-1/alpha_B).
#: Published curves sit at 2-6 nats, so this decorrelates B* from alpha_B (log B* alone moves
#: by 1/alpha_B ~ 5 for every unit of 1/alpha_B).
_LOG_L_REF = 1.0
# Kaplan's data-limited exponent alpha_S = 0.76; curves of other setups have 0.3-1.5.
# LogNormal(log 0.6, 0.6) puts 94% of its mass in 0.19-1.9.
_STEP_EXPONENT = Prior("LogNormal", mu=float(np.log(0.6)), sigma=0.6)
# Kaplan's alpha_B = 0.21 (B_crit doubles for every 13% drop in loss); 94% in 0.08-0.56.
_BATCH_EXPONENT = Prior("LogNormal", mu=float(np.log(0.21)), sigma=0.5)
#: Kaplan et al.'s critical-batch fit, B_crit(L) = B*/L^(1/alpha_B) (their eq. 1.4, tokens):
#: the prior's centre, and what the questions use when no fit with B* and alpha_B is given. It
#: depends on the data and tokenizer.
KAPLAN_BCRIT = {"B_star": 2e8, "alpha_B": 0.21}
# Kaplan's B_crit at L = e nats: B* e^(-1/alpha_B) = 2e8 * e^-4.76 ~ 1.7e6 tokens.
_KAPLAN_BCRIT_AT_E = KAPLAN_BCRIT["B_star"] * float(np.exp(-_LOG_L_REF / KAPLAN_BCRIT["alpha_B"]))


def _stop_gradient(xp: ModuleType) -> Callable[[Array], Array]:
    if xp.__name__.startswith("pytensor"):
        # pytensor is imported where used: laws are evaluated with numpy unless a model
        # is being built
        from pytensor.gradient import zero_grad

        return zero_grad
    return lambda x: x


def _solve_bcrit(
    log_floor: Array, log_term: Array, log_k: Array, alpha_s: Array, alpha_b: Array, xp: ModuleType
) -> Array:
    r"""Solve :math:`l = \log(e^{a} + e^{t + \alpha_S \mathrm{softplus}(k - l/\alpha_B)})` for l.

    ``log_floor`` is :math:`a` (the loss the S term decays to), ``log_term`` is :math:`t`, the
    log of the S term with :math:`S_{min} = S`, and ``log_k`` is :math:`k = \log(B_*/B)`, so
    :math:`k - l/\alpha_B = \log(B_{crit}(L)/B)` and
    :math:`\alpha_S\,\mathrm{softplus}(\cdot) = \alpha_S \log(S/S_{min})`.
    """

    def g_and_slope(ell: Array) -> tuple[Array, Array]:
        x = log_k - ell / alpha_b
        rhs_term = log_term + alpha_s * softplus(x, xp)
        rhs = xp.logaddexp(log_floor, rhs_term)
        share = xp.exp(rhs_term - rhs)  # S term / loss
        b_share = xp.exp(x - softplus(x, xp))  # B_crit / (B + B_crit)
        return ell - rhs, 1.0 + share * alpha_s / alpha_b * b_share

    stop = _stop_gradient(xp)
    ell = stop(xp.logaddexp(log_floor, log_term))
    for _ in range(_NEWTON_STEPS):
        g, slope = g_and_slope(ell)
        ell = stop(ell - g / slope)
    g, slope = g_and_slope(ell)
    return ell - g / stop(slope)


def _log_bcrit_ref(log_b_star: Array, alpha_b: Array, xp: ModuleType) -> Array:
    """Log of B_crit at the reference loss, from log B* and alpha_B."""
    return log_b_star - _LOG_L_REF / alpha_b


def _bcrit_priors(s: DataSummary) -> dict[str, Prior]:
    # B_crit at L = e relative to the batch at the centre of the data: centred on Kaplan's
    # 1.7e6 tokens, sd 2 (a factor 50 either way at 94%), since B_crit depends on the data
    # and tokenizer.
    mu = float(np.log(_KAPLAN_BCRIT_AT_E)) - s.centre.get("batch", 0.0)
    return {"log_bcrit_e": Prior("Normal", mu=mu, sigma=2.0), "alpha_B": _BATCH_EXPONENT}


def frontier_exponents(p: Mapping, xp: ModuleType) -> dict[str, Array]:
    """Kaplan's compute-efficient frontier (sec. 6, app. B) from the three exponents.

    Training at B = B_crit with the loss split so the S term is alpha_N/alpha_S of the N term,
    L ∝ C_min^-alpha_C_min with 1/alpha_C_min = 1/alpha_N + 1/alpha_S + 1/alpha_B, and
    N ∝ C^(alpha_C_min/alpha_N), B ∝ C^(alpha_C_min/alpha_B), S ∝ C^(alpha_C_min/alpha_S),
    so tokens D = B S ∝ C^(1 - alpha_C_min/alpha_N): Kaplan's "convergence is inefficient",
    D ∝ C^0.27 while N ∝ C^0.73.
    """
    a_c = 1.0 / (1.0 / p["alpha_N"] + 1.0 / p["alpha_S"] + 1.0 / p["alpha_B"])
    return {
        "alpha_C_min": a_c,
        "frontier_exponent_N": a_c / p["alpha_N"],
        "frontier_exponent_B": a_c / p["alpha_B"],
        "frontier_exponent_S": a_c / p["alpha_S"],
        "frontier_exponent_D": 1.0 - a_c / p["alpha_N"],
    }


_CURVE_UNITS = {
    "alpha_N": "dimensionless",
    "alpha_S": "dimensionless",
    "alpha_B": "dimensionless",
    "N_c": "parameters",
    "S_c": "optimizer steps",
    "B_star": "tokens per step",
    "E": "nats/token",
}
_KAPLAN_CURVES = "Kaplan et al. 2020, arXiv:2001.08361, eqs. 1.4, 1.6, 5.4, 5.6"


# kaplan_ns: latents as kaplan_nd, log_L0 (log loss at the centre) and w (log ratio of the N
# term to the S term there), with the two exponents.
def _kaplan_ns_terms(z: Mapping, xp: ModuleType) -> tuple[Array, Array]:
    return z["log_L0"] - softplus(-z["w"], xp), z["log_L0"] - softplus(z["w"], xp)


def _kaplan_ns_log_loss(z: Mapping, u: Mapping, xp: ModuleType) -> Array:
    a0, t0 = _kaplan_ns_terms(z, xp)
    return xp.logaddexp(a0 - z["alpha_N"] * u["N"], t0 - z["alpha_S"] * u["step"])


def _kaplan_ns_to_params(z: Mapping, c: Mapping, xp: ModuleType) -> dict:
    a0, t0 = _kaplan_ns_terms(z, xp)
    return {
        "alpha_N": z["alpha_N"],
        "alpha_S": z["alpha_S"],
        "N_c": xp.exp(c["N"] + a0 / z["alpha_N"]),
        "S_c": xp.exp(c["step"] + t0 / z["alpha_S"]),
    }


def _kaplan_ns_from_params(p: Mapping, c: Mapping, xp: ModuleType) -> dict:
    a_n, a_s = xp.asarray(p["alpha_N"]), xp.asarray(p["alpha_S"])
    a0 = a_n * (xp.log(p["N_c"]) - c["N"])
    t0 = a_s * (xp.log(p["S_c"]) - c["step"])
    return {"log_L0": xp.logaddexp(a0, t0), "w": a0 - t0, "alpha_N": a_n, "alpha_S": a_s}


register_law(
    Law(
        name="kaplan_ns",
        formula=r"L = (N_c/N)^{\alpha_N} + (S_c/S)^{\alpha_S}",
        inputs=("N", "step"),
        params=("alpha_N", "alpha_S", "N_c", "S_c"),
        latents=("log_L0", "w", "alpha_N", "alpha_S"),
        log_loss=_kaplan_ns_log_loss,
        to_params=_kaplan_ns_to_params,
        from_params=_kaplan_ns_from_params,
        default_priors=lambda s: {
            "log_L0": log_l0_prior(s),
            # Log ratio of the N term to the S term at the centre: e^{+-4} either way is weak.
            "w": Prior("Normal", mu=0.0, sigma=2.0),
            "alpha_N": KAPLAN_EXPONENT,
            "alpha_S": _STEP_EXPONENT,
        },
        units={k: _CURVE_UNITS[k] for k in ("alpha_N", "alpha_S", "N_c", "S_c")},
        reference=_KAPLAN_CURVES + " (S read as S_min: runs at B >> B_crit or one fixed batch)",
    )
)


# kaplan_ns_bcrit: latents log_a0 and log_t0 (logs of the N term and of the S term with
# S_min = S at the centre of the data), the exponents, and log B_crit at L = e relative to the
# centre batch.
def _ns_bcrit_log_loss(z: Mapping, u: Mapping, xp: ModuleType) -> Array:
    return _solve_bcrit(
        z["log_a0"] - z["alpha_N"] * u["N"],
        z["log_t0"] - z["alpha_S"] * u["step"],
        z["log_bcrit_e"] + _LOG_L_REF / z["alpha_B"] - u["batch"],
        z["alpha_S"],
        z["alpha_B"],
        xp,
    )


def _bcrit_to_params(z: Mapping, c: Mapping, xp: ModuleType) -> dict:
    return {
        "alpha_S": z["alpha_S"],
        "alpha_B": z["alpha_B"],
        "S_c": xp.exp(c["step"] + z["log_t0"] / z["alpha_S"]),
        "B_star": xp.exp(c["batch"] + z["log_bcrit_e"] + _LOG_L_REF / z["alpha_B"]),
    }


def _bcrit_from_params(p: Mapping, c: Mapping, xp: ModuleType) -> dict:
    a_s, a_b = xp.asarray(p["alpha_S"]), xp.asarray(p["alpha_B"])
    return {
        "log_t0": a_s * (xp.log(p["S_c"]) - c["step"]),
        "alpha_S": a_s,
        "log_bcrit_e": _log_bcrit_ref(xp.log(p["B_star"]), a_b, xp) - c["batch"],
        "alpha_B": a_b,
    }


register_law(
    Law(
        name="kaplan_ns_bcrit",
        formula=(
            r"L = (N_c/N)^{\alpha_N} + (S_c/S_{min})^{\alpha_S},\ "
            r"S_{min} = S/(1 + B_*/(B L^{1/\alpha_B}))"
        ),
        inputs=("N", "step", "batch"),
        params=("alpha_N", "alpha_S", "alpha_B", "N_c", "S_c", "B_star"),
        latents=("log_a0", "log_t0", "alpha_N", "alpha_S", "log_bcrit_e", "alpha_B"),
        log_loss=_ns_bcrit_log_loss,
        to_params=lambda z, c, xp: (
            _bcrit_to_params(z, c, xp)
            | {"alpha_N": z["alpha_N"], "N_c": xp.exp(c["N"] + z["log_a0"] / z["alpha_N"])}
        ),
        from_params=lambda p, c, xp: (
            _bcrit_from_params(p, c, xp)
            | {
                "log_a0": xp.asarray(p["alpha_N"]) * (xp.log(p["N_c"]) - c["N"]),
                "alpha_N": xp.asarray(p["alpha_N"]),
            }
        ),
        default_priors=lambda s: (
            {
                # The N term at the centre N is the loss that size converges to: below the mean
                # loss, near the smallest.
                "log_a0": Prior("Normal", mu=s.min_log_loss, sigma=0.5),
                "log_t0": reducible_at_centre(s),
                "alpha_N": KAPLAN_EXPONENT,
                "alpha_S": _STEP_EXPONENT,
            }
            | _bcrit_priors(s)
        ),
        derived=frontier_exponents,
        units={k: _CURVE_UNITS[k] for k in ("alpha_N", "alpha_S", "alpha_B", "N_c", "S_c")}
        | {"B_star": _CURVE_UNITS["B_star"]},
        reference=_KAPLAN_CURVES,
        aliases={"N_c": "log_a0", "S_c": "log_t0", "B_star": "log_bcrit_e"},
    )
)


# critical_batch: one model size, a batch-size sweep. log_E is the loss that size converges
# to; the rest as kaplan_ns_bcrit.
register_law(
    Law(
        name="critical_batch",
        formula=(
            r"L = E + (S_c/S_{min})^{\alpha_S},\ S_{min} = S/(1 + B_{crit}(L)/B),\ "
            r"B_{crit} = B_*/L^{1/\alpha_B}"
        ),
        inputs=("step", "batch"),
        params=("E", "alpha_S", "alpha_B", "S_c", "B_star"),
        latents=("log_E", "log_t0", "alpha_S", "log_bcrit_e", "alpha_B"),
        log_loss=lambda z, u, xp: _solve_bcrit(
            z["log_E"],
            z["log_t0"] - z["alpha_S"] * u["step"],
            z["log_bcrit_e"] + _LOG_L_REF / z["alpha_B"] - u["batch"],
            z["alpha_S"],
            z["alpha_B"],
            xp,
        ),
        to_params=lambda z, c, xp: _bcrit_to_params(z, c, xp) | {"E": xp.exp(z["log_E"])},
        from_params=lambda p, c, xp: _bcrit_from_params(p, c, xp) | {"log_E": xp.log(p["E"])},
        default_priors=lambda s: (
            {
                "log_E": log_e_prior(s),
                "log_t0": reducible_at_centre(s),
                "alpha_S": _STEP_EXPONENT,
            }
            | _bcrit_priors(s)
        ),
        units={k: _CURVE_UNITS[k] for k in ("E", "alpha_S", "alpha_B", "S_c", "B_star")},
        reference=(
            "Kaplan et al. 2020, arXiv:2001.08361, eqs. 5.1-5.4 (steps S and examples E = BS "
            "to reach a loss obey (S/S_min - 1)(E/E_min - 1) = 1 with B_crit = E_min/S_min)"
        ),
        aliases={"E": "log_E", "S_c": "log_t0", "B_star": "log_bcrit_e"},
        shared=("log_E",),
    )
)
