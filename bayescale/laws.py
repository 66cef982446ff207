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

==============  ==========================================================================
``power_n``     :math:`L = (N_c/N)^{\alpha_N}`                       (Kaplan 2020, eq. 1.1)
``power_d``     :math:`L = (D_c/D)^{\alpha_D}`                       (Kaplan 2020, eq. 1.2)
``power_c``     :math:`L = (C_c/C)^{\alpha_C}`                       (Kaplan 2020, eq. 1.3)
``power_n_e``   :math:`L = E + (N_c/N)^{\alpha_N}`
``power_d_e``   :math:`L = E + (D_c/D)^{\alpha_D}`
``power_c_e``   :math:`L = E + (C_c/C)^{\alpha_C}`
``kaplan_nd``   :math:`L = [(N_c/N)^{\alpha_N/\alpha_D} + D_c/D]^{\alpha_D}`  (Kaplan 2020, eq. 1.5)
``chinchilla``  :math:`L = E + A/N^{\alpha} + B/D^{\beta}`             (Hoffmann 2022, eq. 2)
==============  ==========================================================================
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import numpy as np

from bayescale.errors import UnknownNameError, did_you_mean
from bayescale.priors import Prior

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

    @property
    def n_params(self) -> int:
        """Number of law parameters (noise excluded)."""
        return len(self.latents)

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
        latents = ("log_E", "log_R0", alpha)

        def log_loss(z: Mapping, u: Mapping, xp: ModuleType) -> Array:
            return xp.logaddexp(z["log_E"], z["log_R0"] - z[alpha] * u[x])

        def to_params(z: Mapping, c: Mapping, xp: ModuleType) -> dict:
            return {
                "E": xp.exp(z["log_E"]),
                alpha: z[alpha],
                scale: xp.exp(c[x] + z["log_R0"] / z[alpha]),
            }

        def from_params(p: Mapping, c: Mapping, xp: ModuleType) -> dict:
            a = xp.asarray(p[alpha])
            return {"log_E": xp.log(p["E"]), "log_R0": a * (xp.log(p[scale]) - c[x]), alpha: a}

        def priors(s: DataSummary) -> dict[str, Prior]:
            return {
                "log_E": _log_e_prior(s),
                "log_R0": _reducible_at_centre(s),
                alpha: _REDUCIBLE_EXPONENT,
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
        aliases={scale: "log_R0", "E": "log_E"} if with_e else {scale: "log_L0"},
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
    )
)
