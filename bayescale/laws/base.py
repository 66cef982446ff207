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

Each law lives in its own module of this package (``power``, ``kaplan``, ``chinchilla``,
``learning``), registered on import; this module holds what they share: :class:`Law`, its
closed-form capabilities (:class:`Allocation`, :class:`DataNeed`, :data:`Guess`) and the
registry.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import numpy as np

from bayescale.core.errors import ConfigError, UnknownNameError, did_you_mean
from bayescale.core.priors import Prior

__all__ = [
    "Allocation",
    "DataNeed",
    "DataSummary",
    "Guess",
    "Law",
    "evaluate",
    "get_law",
    "law_points",
    "laws_with",
    "list_laws",
    "register_law",
    "unregister_law",
]

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
#: Paper parameters (or posterior draws of them) by name.
Params = Mapping[str, Any]


@dataclass(frozen=True)
class Allocation:
    r"""Closed-form compute-optimal allocation of a law of N and D under :math:`C = 6ND`.

    With :math:`N_{opt} = G (C/6)^a` and :math:`D_{opt} = (C/6)/N_{opt}`, for paper
    parameters ``p`` (floats or posterior draws):

    Attributes
    ----------
    log_g : callable
        ``log_g(p)``: :math:`\log G` (G in parameters per FLOP^a).
    a : callable
        ``a(p)``: the exponent of :math:`N_{opt}` in compute (dimensionless).
    interior : callable
        ``interior(p)``: True where the optimum is finite (both exponents positive).
    """

    log_g: Callable[[Params], Any]
    a: Callable[[Params], Any]
    interior: Callable[[Params], Any]


@dataclass(frozen=True)
class DataNeed:
    r"""Closed forms of the overfitting check of a law of N and D.

    Attributes
    ----------
    d_min : callable
        ``d_min(p, n, eps)``: tokens needed at model size ``n`` (parameters) for the finite-data
        penalty :math:`L(N, D)/L(N, \infty) - 1` to be ``eps``.
    exponent : callable
        ``exponent(p, n, eps)``: local exponent :math:`d\log D_{min}/d\log N` there
        (Kaplan's 0.74 for ``kaplan_nd``).
    """

    d_min: Callable[[Params, Any, float], Any]
    exponent: Callable[[Params, Any, float], Any]


#: ``guess(u, loss)``: latents of a global first fit from centred log inputs ``u`` and losses
#: (nats/token), like lmfit's ``Model.guess``; start points and least squares begin there.
Guess = Callable[[Mapping[str, np.ndarray], np.ndarray], dict[str, float]]


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
    allocation : Allocation, optional
        Closed-form compute-optimal allocation (laws of N and D); used by
        :func:`bayescale.questions.optimal.optimal`.
    data_need : DataNeed, optional
        Closed forms of the overfitting check; used by
        :func:`bayescale.questions.overfit.overfit`.
    guess : callable, optional
        ``guess(u, loss)``: a global first guess of the latents from the data (see
        :data:`Guess`); laws without one start from their priors' medians.
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
    allocation: Allocation | None = None
    data_need: DataNeed | None = None
    guess: Guess | None = None

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


def unregister_law(name: str) -> None:
    """Remove the law called ``name`` from the registry (a no-op if there is none)."""
    _REGISTRY.pop(name, None)


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


def laws_with(capability: str) -> list[str]:
    """Names of the registered laws that have ``capability`` (e.g. ``"allocation"``), sorted."""
    return sorted(name for name, law in _REGISTRY.items() if getattr(law, capability) is not None)


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


def law_points(law: Law, inputs: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Broadcast the inputs at which ``law`` is asked into flat arrays, one value per point.

    Parameters
    ----------
    law : Law
        The law asked.
    inputs : mapping or pandas.DataFrame
        Values of each of the law's inputs in canonical units (scalars or arrays that
        broadcast); a DataFrame may have other columns too.

    Returns
    -------
    dict of str to numpy.ndarray
        One flat float array per input, all of one length.

    Raises
    ------
    UnknownNameError
        If a mapping names an input the law does not take.
    ConfigError
        If an input is missing, the arrays do not broadcast, or a value is not positive and
        finite.
    """
    if hasattr(inputs, "columns"):  # a DataFrame: take the law's columns, ignore the rest
        table = {k: inputs[k].to_numpy() for k in law.inputs if k in inputs.columns}
    else:
        unknown = [k for k in inputs if k not in law.inputs]
        if unknown:
            raise UnknownNameError(
                f"law {law.name!r} does not take input {unknown[0]!r} (its inputs: "
                f"{', '.join(law.inputs)})"
            )
        table = dict(inputs)
    missing = [k for k in law.inputs if k not in table]
    if missing:
        raise ConfigError(
            f"law {law.name!r} needs input {missing[0]!r} to predict (its inputs: "
            f"{', '.join(law.inputs)})"
        )
    try:
        arrays = np.broadcast_arrays(
            *(np.atleast_1d(np.asarray(table[k], dtype=float)) for k in law.inputs)
        )
    except ValueError:
        sizes = ", ".join(f"{k}: {np.size(table[k])}" for k in law.inputs)
        raise ConfigError(
            f"inputs must have one value or the same number of values ({sizes})"
        ) from None
    out = {k: a.ravel() for k, a in zip(law.inputs, arrays, strict=True)}
    for k, a in out.items():
        if not np.all(np.isfinite(a) & (a > 0)):
            raise ConfigError(f"input {k!r} must be positive and finite, got {a.tolist()}")
    return out
