r"""Scaling laws: a registry of named functional forms.

Each law is written **once**, as a function of well-conditioned *latent* parameters and centred
log inputs, with an array namespace ``xp`` (``numpy`` or ``pytensor.tensor``) so the same code
builds the PyMC model and evaluates predictions. Every law also knows how to map its latents to
the parameters used in the papers (``to_params``) and back (``from_params``), so fits report
``alpha_N``, ``N_c``, ``E``, ``A``... while the sampler works in a space where the posterior is
close to Gaussian.

Centring: with :math:`u_X = \log X - c_X` where :math:`c_X` is the mean of :math:`\log X` over the
runs (the log of their geometric mean), the loss at the centre of the data is one latent
parameter, nearly uncorrelated with the exponents. Sampling :math:`(\log L_0, \alpha)` rather
than :math:`(\log N_c, \alpha)` removes the banana-shaped correlation between scale and exponent.

Registered laws (see :func:`get_law` and :func:`list_laws`):

=================== ==============================================================================
``power_n``         :math:`L = (N_c/N)^{\alpha_N}`                       (Kaplan 2020, eq. 1.1)
``power_d``         :math:`L = (D_c/D)^{\alpha_D}`                       (Kaplan 2020, eq. 1.2)
``power_c``         :math:`L = (C_c/C)^{\alpha_C}`                       (Kaplan 2020, eq. 1.3)
``power_n_e``       :math:`L = E + (N_c/N)^{\alpha_N}`
``power_d_e``       :math:`L = E + (D_c/D)^{\alpha_D}`
``power_c_e``       :math:`L = E + (C_c/C)^{\alpha_C}`
``kaplan_nd``       :math:`L = [(N_c/N)^{\alpha_N/\alpha_D} + D_c/D]^{\alpha_D}` (Kaplan 2020, 1.5)
``chinchilla``      :math:`L = E + A/N^{\alpha} + B/D^{\beta}`             (Hoffmann 2022, eq. 2)
``kaplan_ns``       :math:`L = (N_c/N)^{\alpha_N} + (S_c/S)^{\alpha_S}`     (Kaplan 2020, eq. 1.6)
``kaplan_ns_bcrit`` the same with :math:`S_{min} = S/(1 + B_{crit}(L)/B)` (eqs. 1.4, 5.4)
``critical_batch``  :math:`L = E + (S_c/S_{min})^{\alpha_S}` at one N (eqs. 5.1-5.4)
=================== ==============================================================================
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import numpy as np

from bayescale.core.errors import UnknownNameError, did_you_mean
from bayescale.core.priors import Prior

__all__ = ["DataSummary", "Law", "evaluate", "get_law", "list_laws", "register_law"]

#: Units of each input and paper parameter, used in summaries, reports and plots.
INPUT_UNITS = {
    "N": "parameters (non-embedding)",
    "D": "tokens",
    "C": "FLOPs",
    "step": "optimizer steps",
    "batch": "tokens per step",
}
Array = Any
LawFn = Callable[[Mapping[str, Array], Mapping[str, Array], ModuleType], Array]


@dataclass(frozen=True)
class DataSummary:
    """What default priors need to know about a runs table.

    Attributes
    ----------
    centre : dict
        Mean of the natural log of each input (log of the geometric mean; inputs in their
        canonical units: parameters, tokens, FLOPs).
    mean_log_loss, min_log_loss, max_log_loss : float
        Statistics of the natural log of the loss (loss in nats/token).
    n_runs : int
        Number of rows.
    """

    centre: dict[str, float]
    mean_log_loss: float
    min_log_loss: float
    max_log_loss: float
    n_runs: int

    @classmethod
    def from_arrays(cls, inputs: Mapping[str, Array], loss: Array) -> DataSummary:
        """Summarise raw inputs and losses (not logged)."""
        log_loss = np.log(np.asarray(loss, dtype=float))
        return cls(
            centre={
                k: float(np.mean(np.log(np.asarray(v, dtype=float)))) for k, v in inputs.items()
            },
            mean_log_loss=float(log_loss.mean()),
            min_log_loss=float(log_loss.min()),
            max_log_loss=float(log_loss.max()),
            n_runs=int(log_loss.size),
        )

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict."""
        return {
            "centre": dict(self.centre),
            "mean_log_loss": self.mean_log_loss,
            "min_log_loss": self.min_log_loss,
            "max_log_loss": self.max_log_loss,
            "n_runs": self.n_runs,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> DataSummary:
        """Inverse of :meth:`to_dict`."""
        return cls(
            centre={str(k): float(v) for k, v in d["centre"].items()},
            mean_log_loss=float(d["mean_log_loss"]),
            min_log_loss=float(d["min_log_loss"]),
            max_log_loss=float(d["max_log_loss"]),
            n_runs=int(d["n_runs"]),
        )


@dataclass(frozen=True)
class Law:
    """A scaling law: inputs, parameters, and one definition usable with numpy and pytensor.

    Attributes
    ----------
    name : str
        Registry name, e.g. ``"chinchilla"``.
    formula : str
        The law in LaTeX, in the papers' parameters.
    inputs : tuple of str
        Canonical input columns (``"N"``, ``"D"``, ``"C"``).
    params : tuple of str
        Parameters as reported in the papers (deterministics of the model).
    latents : tuple of str
        Sampling-space parameters (what the priors are placed on).
    log_loss : callable
        ``log_loss(z, u, xp)``: natural log of the loss from latents ``z`` and centred log
        inputs ``u`` (``u[X] = log X - centre[X]``).
    to_params : callable
        ``to_params(z, centre, xp)``: paper parameters from latents.
    from_params : callable
        ``from_params(p, centre, xp)``: latents from paper parameters (inverse of ``to_params``).
    default_priors : callable
        ``default_priors(summary)``: ``{latent: Prior}`` scaled to the data.
    derived : callable
        ``derived(p, xp)``: extra named quantities from paper parameters (e.g. allocation
        exponents); reported as deterministics.
    units : dict
        Unit of each paper parameter.
    log_linear : bool
        True when log loss is linear in the latents (exact conjugate posterior exists).
    reference : str
        Where the form comes from.
    aliases : dict
        Paper parameters that correspond to exactly one latent (``{"N_c": "log_L0"}``), so
        users can name them when setting pooling or priors.
    shared : tuple of str
        Latents pooled across groups by default (all others are partially pooled). The
        irreducible loss ``E`` is a property of the data distribution (its entropy), not of the
        model family, so it is shared; groups that differ in data (eval sets) are modelled by
        transfer offsets or by pooling ``E`` partially on request.
    """

    name: str
    formula: str
    inputs: tuple[str, ...]
    params: tuple[str, ...]
    latents: tuple[str, ...]
    log_loss: LawFn
    to_params: Callable[[Mapping[str, Array], Mapping[str, float], ModuleType], dict[str, Array]]
    from_params: Callable[[Mapping[str, Array], Mapping[str, float], ModuleType], dict[str, Array]]
    default_priors: Callable[[DataSummary], dict[str, Prior]]
    derived: Callable[[Mapping[str, Array], ModuleType], dict[str, Array]] = field(
        default=lambda p, xp: {}
    )
    units: Mapping[str, str] = field(default_factory=dict)
    log_linear: bool = False
    reference: str = ""
    aliases: Mapping[str, str] = field(default_factory=dict)
    shared: tuple[str, ...] = ()

    @property
    def n_params(self) -> int:
        """Number of law parameters (noise excluded)."""
        return len(self.latents)

    def params_of(self, z: Mapping[str, Array], centre: Mapping[str, float]) -> dict[str, Array]:
        """Paper parameters and derived quantities from latent draws, with numpy.

        A draw with an exponent near zero has a scale (``N_c`` ...) that is infinite; that is
        what the draw says, so the overflow is returned as ``inf`` without a warning.
        """
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
            params = self.to_params(z, centre, np)
            return {**params, **self.derived(params, np)}

    def __repr__(self) -> str:
        return f"<Law {self.name}: {self.formula}>"


_REGISTRY: dict[str, Law] = {}


def register_law(law: Law) -> Law:
    """Add ``law`` to the registry (replacing one of the same name) and return it."""
    _REGISTRY[law.name] = law
    return law


def get_law(name: str | Law) -> Law:
    """Return the registered law called ``name``.

    Raises
    ------
    UnknownNameError
        If no law has that name; the message lists the valid names.
    """
    if isinstance(name, Law):
        return name
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownNameError(
            f"unknown law {name!r}. " + did_you_mean(name, list(_REGISTRY))
        ) from None


def list_laws() -> list[str]:
    """Names of all registered laws."""
    return list(_REGISTRY)


def evaluate(
    law: str | Law, params: Mapping[str, Array], inputs: Mapping[str, Array]
) -> np.ndarray:
    """Loss (nats/token) predicted by ``law`` at ``inputs`` for paper parameters ``params``.

    Parameters
    ----------
    law : str or Law
        Law or its registry name.
    params : mapping
        Paper parameters, e.g. ``{"alpha_N": 0.076, "N_c": 8.8e13}``; arrays broadcast.
    inputs : mapping
        Inputs in canonical units (parameters, tokens, FLOPs).

    Examples
    --------
    >>> loss = evaluate("power_n", {"alpha_N": 0.076, "N_c": 8.8e13}, {"N": 1e9})
    >>> round(float(loss), 4)
    2.3756
    """
    law = get_law(law)
    centre = dict.fromkeys(law.inputs, 0.0)
    z = law.from_params(params, centre, np)
    u = {k: np.log(np.asarray(inputs[k], dtype=float)) for k in law.inputs}
    return np.exp(law.log_loss(z, u, np))


# --------------------------------------------------------------------------------------------
# Default prior scales, shared by the laws. Each choice is documented where it is made.
# --------------------------------------------------------------------------------------------
def _log_l0_prior(s: DataSummary) -> Prior:
    # Loss at the data's centre: the data pin it down; one unit of log loss (a factor e) is wide.
    return Prior("Normal", mu=s.mean_log_loss, sigma=0.5)


def _log_e_prior(s: DataSummary) -> Prior:
    # Irreducible loss: below the smallest observed loss. Published ladders put E at 0.5-0.9 of
    # the smallest loss (Chinchilla: 1.69 vs ~2.0), so centre at 0.6x with a factor-1.6 sd.
    return Prior("Normal", mu=s.min_log_loss + np.log(0.6), sigma=0.5)


def _reducible_at_centre(s: DataSummary, share: float = 1.0) -> Prior:
    # Reducible loss at the centre: what remains after the E prior's centre, split between terms.
    mean_loss = float(np.exp(s.mean_log_loss))
    reducible = max(mean_loss - 0.6 * float(np.exp(s.min_log_loss)), 0.05 * mean_loss)
    return Prior("Normal", mu=float(np.log(share * reducible)), sigma=1.0)


# Exponents of pure power laws (no E) are small: Kaplan's alpha_N, alpha_D, alpha_C are
# 0.05-0.1. A Normal (not LogNormal) keeps power_n/d/c log-linear, so the exact conjugate
# posterior exists and equals what NUTS samples.
_PURE_EXPONENT = Prior("Normal", mu=0.1, sigma=0.1)
# Exponents on a reducible term (with E) are larger: Chinchilla 0.28-0.37, Muennighoff 0.35.
# LogNormal(log 0.3, 0.6) puts 94% of its mass in 0.1-0.9.
_REDUCIBLE_EXPONENT = Prior("LogNormal", mu=float(np.log(0.3)), sigma=0.6)
# Local slope -dlog L/dlog X at the centre of the data, for laws with an irreducible term:
# published ladders have 0.02-0.3 (Chinchilla's N term at 400M params and 8B tokens: ~0.07).
# Normal(log 0.1, 1) on its log puts 94% of the mass in 0.015-0.65.
_LOG_SLOPE = Prior("Normal", mu=float(np.log(0.1)), sigma=1.0)
# Kaplan's joint L(N, D) exponents: alpha_N 0.076, alpha_D 0.103; 94% mass in 0.024-0.42.
_KAPLAN_EXPONENT = Prior("LogNormal", mu=float(np.log(0.1)), sigma=0.75)


def _softplus(x: Array, xp: ModuleType) -> Array:
    return xp.logaddexp(x, 0.0)


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
        latents = ("log_E", "log_R0", slope)

        def exponent(z: Mapping, xp: ModuleType) -> Array:
            return xp.exp(z[slope] + _softplus(z["log_E"] - z["log_R0"], xp))

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
                slope: xp.log(a) - _softplus(log_e - log_r0, xp),
            }

        def priors(s: DataSummary) -> dict[str, Prior]:
            return {
                "log_E": _log_e_prior(s),
                "log_R0": _reducible_at_centre(s),
                slope: _LOG_SLOPE,
            }

        params = ("E", alpha, scale)
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
            return {"log_L0": _log_l0_prior(s), alpha: _PURE_EXPONENT}

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


# --------------------------------------------------------------------------------------------
# Kaplan's joint law L(N, D) = [(N_c/N)^(alpha_N/alpha_D) + D_c/D]^alpha_D.
# Latents: log_L0 (log loss at the centre), w = log of the ratio of the N term to the D term at
# the centre, and the two exponents. Both terms at the centre follow from (log_L0, w).
# --------------------------------------------------------------------------------------------
def _kaplan_terms(z: Mapping, xp: ModuleType) -> tuple[Array, Array]:
    """Log of the N and D terms inside the bracket, at the centre of the data."""
    t_d = z["log_L0"] / z["alpha_D"] - _softplus(z["w"], xp)
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
            "log_L0": _log_l0_prior(s),
            # Log ratio of N term to D term at the centre: e^{+-4} either way is weak.
            "w": Prior("Normal", mu=0.0, sigma=2.0),
            "alpha_N": _KAPLAN_EXPONENT,
            "alpha_D": _KAPLAN_EXPONENT,
        },
        derived=lambda p, xp: {"alpha_N_over_alpha_D": p["alpha_N"] / p["alpha_D"]},
        units={
            "alpha_N": "dimensionless",
            "alpha_D": "dimensionless",
            "N_c": "parameters",
            "D_c": "tokens",
        },
        reference="Kaplan et al. 2020, arXiv:2001.08361, eq. 1.5",
    )
)


# --------------------------------------------------------------------------------------------
# Chinchilla: L = E + A/N^alpha + B/D^beta. Latents: log_E and the log of each reducible term at
# the centre of the data (log_a0 = log A - alpha c_N), which decorrelates A from alpha.
# --------------------------------------------------------------------------------------------
def _chinchilla_log_loss(z: Mapping, u: Mapping, xp: ModuleType) -> Array:
    n_term = z["log_a0"] - z["alpha"] * u["N"]
    d_term = z["log_b0"] - z["beta"] * u["D"]
    return xp.logaddexp(xp.logaddexp(z["log_E"], n_term), d_term)


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
            "log_E": _log_e_prior(s),
            "log_a0": _reducible_at_centre(s, share=0.5),
            "log_b0": _reducible_at_centre(s, share=0.5),
            "alpha": _REDUCIBLE_EXPONENT,
            "beta": _REDUCIBLE_EXPONENT,
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
    )
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
# Kaplan's B_crit at L = e nats: B* e^(-1/alpha_B) = 2e8 * e^-4.76 ~ 1.7e6 tokens.
_KAPLAN_BCRIT_AT_E = 2e8 * float(np.exp(-_LOG_L_REF / 0.21))


def _stop_gradient(xp: ModuleType) -> Callable[[Array], Array]:
    if xp.__name__.startswith("pytensor"):
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
        rhs_term = log_term + alpha_s * _softplus(x, xp)
        rhs = xp.logaddexp(log_floor, rhs_term)
        share = xp.exp(rhs_term - rhs)  # S term / loss
        b_share = xp.exp(x - _softplus(x, xp))  # B_crit / (B + B_crit)
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


def _frontier_exponents(p: Mapping, xp: ModuleType) -> dict[str, Array]:
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
    return z["log_L0"] - _softplus(-z["w"], xp), z["log_L0"] - _softplus(z["w"], xp)


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
            "log_L0": _log_l0_prior(s),
            # Log ratio of the N term to the S term at the centre: e^{+-4} either way is weak.
            "w": Prior("Normal", mu=0.0, sigma=2.0),
            "alpha_N": _KAPLAN_EXPONENT,
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
                "log_t0": _reducible_at_centre(s),
                "alpha_N": _KAPLAN_EXPONENT,
                "alpha_S": _STEP_EXPONENT,
            }
            | _bcrit_priors(s)
        ),
        derived=_frontier_exponents,
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
                "log_E": _log_e_prior(s),
                "log_t0": _reducible_at_centre(s),
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
