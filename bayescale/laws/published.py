r"""Published scaling-law fits: a registry usable as priors and as overlays.

Each :class:`ReferenceFit` records a law from :mod:`bayescale.laws.base` with the paper's parameter
values in bayescale's canonical units (``N`` parameters, ``D`` tokens, ``C`` FLOPs, loss in
nats/token), the source, and the conventions that make its numbers comparable (or not) with
yours: what ``N`` counts, which text and tokenizer the loss is measured on, how it was fitted.
Losses on different eval sets or tokenizers are not comparable in level, so exponents transfer
between setups far better than scales or irreducible losses; :func:`reference_priors` therefore
puts priors on the exponents by default.

Registered fits (see :func:`list_references`):

============================  ===================  =============================================
name                          law                  what
============================  ===================  =============================================
``kaplan2020_n``              ``power_n``          :math:`L(N)`, Kaplan 2020 eq. 1.1
``kaplan2020_d``              ``power_d``          :math:`L(D)`, eq. 1.2
``kaplan2020_cmin``           ``power_c``          :math:`L(C_{min})`, eq. 1.3
``kaplan2020_nd``             ``kaplan_nd``        joint :math:`L(N, D)`, eq. 1.5
``kaplan2020_ns``             ``kaplan_ns``        learning curves :math:`L(N, S_{min})`, eq. 1.6
``kaplan2020_ns_bcrit``       ``kaplan_ns_bcrit``  the same at a batch, with :math:`B_{crit}(L)`
``chinchilla_hoffmann2022``   ``chinchilla``       Approach 3, Hoffmann 2022 (unrounded)
``chinchilla_besiroglu2024``  ``chinchilla``       refit of Approach 3, Besiroglu 2024
``muennighoff2023``           ``chinchilla``       data-constrained base fit (unique data)
============================  ===================  =============================================
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import xarray as xr

from bayescale.core.errors import ConfigError, UnknownNameError, did_you_mean
from bayescale.core.priors import Prior
from bayescale.laws.base import DataSummary, Law, evaluate, get_law
from bayescale.runs.table import PF_DAY_FLOPS

__all__ = [
    "ReferenceFit",
    "effective_data",
    "get_reference",
    "list_references",
    "plot_reference",
    "reference_curve",
    "reference_priors",
    "register_reference",
]

#: Relative sd assumed for a parameter whose paper gives no standard error (10 % of its value).
DEFAULT_REL_SD = 0.1


@dataclass(frozen=True)
class ReferenceFit:
    """A published fit of a registered law.

    Attributes
    ----------
    name : str
        Registry name, e.g. ``"chinchilla_hoffmann2022"``.
    law : str
        Name of the law in :mod:`bayescale.laws.base`.
    params : dict of str to float
        The paper's parameter values, in bayescale's names and canonical units.
    source : str
        Citation (authors, year, arXiv id, equation or table).
    conventions : str
        What the inputs count and what the loss is measured on.
    se : dict of str to float
        Published standard errors (same units as ``params``), where the paper gives them.
    interval : dict of str to (float, float)
        Published 95 % confidence intervals, where given.
    extra : dict of str to float
        Other published constants of the same fit that are not law parameters.
    """

    name: str
    law: str
    params: Mapping[str, float]
    source: str
    conventions: str
    se: Mapping[str, float] = field(default_factory=dict)
    interval: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    extra: Mapping[str, float] = field(default_factory=dict)

    def get_law(self) -> Law:
        """Return the registered law this fit is of."""
        return get_law(self.law)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable description."""
        law = self.get_law()
        return {
            "name": self.name,
            "law": self.law,
            "formula": law.formula,
            "params": dict(self.params),
            "units": {k: law.units.get(k, "") for k in self.params},
            "derived": {k: float(v) for k, v in law.derived(dict(self.params), np).items()},
            "se": dict(self.se),
            "interval": {k: list(v) for k, v in self.interval.items()},
            "extra": dict(self.extra),
            "source": self.source,
            "conventions": self.conventions,
        }


_REGISTRY: dict[str, ReferenceFit] = {}


def register_reference(ref: ReferenceFit) -> ReferenceFit:
    """Add ``ref`` to the registry (replacing one of the same name) and return it.

    Raises
    ------
    ConfigError
        If its parameters are not exactly the law's parameters.
    """
    law = get_law(ref.law)
    if set(ref.params) != set(law.params):
        raise ConfigError(
            f"reference {ref.name!r} must give every parameter of law {law.name!r} "
            f"({', '.join(law.params)}); got {', '.join(ref.params)}"
        )
    _REGISTRY[ref.name] = ref
    return ref


def get_reference(name: str | ReferenceFit) -> ReferenceFit:
    """Return the registered reference fit called ``name``.

    Raises
    ------
    UnknownNameError
        If there is none; the message lists the valid names.
    """
    if isinstance(name, ReferenceFit):
        return name
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownNameError(
            f"unknown reference fit {name!r}. " + did_you_mean(name, list(_REGISTRY))
        ) from None


def list_references() -> list[str]:
    """Names of all registered reference fits."""
    return list(_REGISTRY)


# --------------------------------------------------------------------------------------------
# Priors from a reference fit
# --------------------------------------------------------------------------------------------
def reference_priors(
    name: str | ReferenceFit,
    *,
    params: Sequence[str] | None = None,
    widen: float = 1.0,
    centre: Mapping[str, float] | None = None,
    rel_sd: float = DEFAULT_REL_SD,
    draws: int = 4000,
    seed: int = 0,
) -> dict[str, Prior]:
    r"""Priors on a law's sampled latents centred on a published fit, for ``fit(priors=...)``.

    The published parameters are mapped onto the latents with the law's ``from_params`` (at
    your data's centre where a latent depends on it). Each prior's scale is the spread of the
    latent when the published parameters vary by their standard errors (or by ``rel_sd`` of
    their value where none is published: scales on the log scale, exponents additively),
    times ``widen``. A published fit comes from another model family, data and tokenizer, so
    ``widen`` well above 1 is usually right for anything but a sanity check. Papers publish
    standard errors without their correlations, so they are treated as independent; for a
    latent that combines a scale and an exponent (``log_a0 = log A - alpha c_N``) this
    overstates the spread, which errs on the wide side.

    The prior keeps the family of the law's default prior for that latent (LogNormal for
    positive exponents, Normal otherwise), so pooling and the exact sampler work unchanged.

    Parameters
    ----------
    name : str or ReferenceFit
        Registered reference fit (see :func:`list_references`).
    params : sequence of str, optional
        Parameters to put priors on, by paper name (``"alpha"``, ``"E"``, ``"A"``) or latent
        name. Default: the exponents (the dimensionless parameters), which transfer across
        setups. Scale parameters need ``centre``.
    widen : float, default 1.0
        Factor applied to every prior scale.
    centre : mapping, optional
        Mean of the natural log of each input over the runs you will fit (e.g.
        ``{"N": np.log(runs["N"]).mean()}``, or ``fit.data_summary.centre``). Needed for latents
        defined at the data's centre (the loss or a reducible term at the centre).
    rel_sd : float, default 0.1
        Relative uncertainty assumed where the paper gives no standard error.
    draws : int, default 4000
        Monte Carlo draws used to propagate the uncertainty onto the latents.
    seed : int
        Seed of those draws.

    Returns
    -------
    dict of str to Prior
        Keyed by latent name.

    Raises
    ------
    ConfigError
        For a parameter that is not one latent of the law, a latent that needs ``centre``
        when none is given, or a non-positive ``widen``/``rel_sd``.

    Examples
    --------
    >>> priors = reference_priors("chinchilla_hoffmann2022", widen=3)
    >>> sorted(priors)
    ['alpha', 'beta']
    >>> round(priors["alpha"].params["mu"], 4)  # log of 0.339
    -1.0813
    """
    ref = get_reference(name)
    law = ref.get_law()
    for label, value in (("widen", widen), ("rel_sd", rel_sd)):
        if not (np.isfinite(value) and value > 0):
            raise ConfigError(f"{label} must be a positive number, got {value}")
    if not isinstance(draws, int) or draws < 2:
        raise ConfigError(f"draws must be an integer >= 2, got {draws!r}")
    wanted = _latents_for(law, params)
    depends = _centre_dependent(law)
    needs = [k for k in wanted if k in depends]
    if needs and centre is None:
        raise ConfigError(
            f"the prior on {needs[0]!r} depends on where your runs are centred; pass centre= "
            "(mean of log N, log D... over your runs, e.g. fit.data_summary.centre)"
        )
    c = {k: float((centre or {}).get(k, 0.0)) for k in law.inputs}
    missing = [k for k in law.inputs if needs and centre is not None and k not in centre]
    if missing:
        raise ConfigError(f"centre needs the mean log of input {missing[0]!r}")

    rng = np.random.default_rng(seed)
    sampled = {}
    for k, v in ref.params.items():
        exponent = law.units.get(k) == "dimensionless"
        sd = ref.se.get(k, rel_sd * abs(v))
        if exponent:
            sampled[k] = v + sd * rng.standard_normal(draws)
        else:  # positive scale: vary on the log scale by the relative sd
            sampled[k] = v * np.exp(sd / v * rng.standard_normal(draws))
    at_value = law.from_params(dict(ref.params), c, np)
    spread = law.from_params(sampled, c, np)
    families = law.default_priors(_placeholder_summary(law))
    out = {}
    for k in wanted:
        value, values = float(at_value[k]), np.asarray(spread[k], dtype=float)
        if families[k].dist == "LogNormal":
            out[k] = Prior("LogNormal", mu=np.log(value), sigma=widen * np.std(np.log(values)))
        else:
            out[k] = Prior("Normal", mu=value, sigma=widen * np.std(values))
    return out


def _latents_for(law: Law, params: Sequence[str] | None) -> list[str]:
    """Latent names for paper or latent names (default: the exponents)."""
    if params is None:
        return [p for p in law.params if law.units.get(p) == "dimensionless" and p in law.latents]
    out = []
    for p in params:
        latent = p if p in law.latents else law.aliases.get(p)
        if latent is None:
            valid = sorted({*law.latents, *law.aliases})
            raise ConfigError(
                f"law {law.name!r} has no single latent for {p!r}, so no prior can be put on it "
                f"from a reference fit; choose from {', '.join(valid)}"
            )
        out.append(latent)
    return list(dict.fromkeys(out))


def _centre_dependent(law: Law) -> set[str]:
    """Latents whose value depends on the data's centre (defined at the centre)."""
    params = {k: 0.3 if law.units.get(k) == "dimensionless" else 2.0 for k in law.params}
    a = law.from_params(params, dict.fromkeys(law.inputs, 0.0), np)
    b = law.from_params(params, dict.fromkeys(law.inputs, 1.0), np)
    return {k for k in law.latents if not np.isclose(float(a[k]), float(b[k]))}


def _placeholder_summary(law: Law) -> DataSummary:
    # Only the prior families are read from it, which do not depend on the data.
    return DataSummary(dict.fromkeys(law.inputs, 0.0), 1.0, 0.5, 1.5, 10)


# --------------------------------------------------------------------------------------------
# Overlays
# --------------------------------------------------------------------------------------------
def reference_curve(name: str | ReferenceFit, inputs: Mapping[str, Any]) -> xr.DataArray:
    """Loss (nats/token) of a reference fit at ``inputs``: the data an overlay draws.

    Parameters
    ----------
    name : str or ReferenceFit
        Registered reference fit.
    inputs : mapping
        The law's inputs in canonical units; scalars and arrays broadcast. When one input is an
        array, the result's dim is named after it (with its values as coordinate); otherwise
        the dim is ``point``.

    Returns
    -------
    xarray.DataArray
        Loss, with the reference name and units in attrs.
    """
    ref = get_reference(name)
    law = ref.get_law()
    missing = [k for k in law.inputs if k not in inputs]
    if missing:
        raise ConfigError(f"reference {ref.name!r} ({law.name}) needs input {missing[0]!r}")
    arrays = {k: np.atleast_1d(np.asarray(inputs[k], dtype=float)) for k in law.inputs}
    varying = [k for k, a in arrays.items() if a.size > 1]
    flat = dict(
        zip(arrays, (a.ravel() for a in np.broadcast_arrays(*arrays.values())), strict=True)
    )
    loss = evaluate(law, ref.params, flat)
    dim = varying[0] if len(varying) == 1 else "point"
    coords = {dim: flat[dim]} if dim != "point" else {k: ("point", v) for k, v in flat.items()}
    return xr.DataArray(
        loss, dims=dim, coords=coords, attrs={"units": "nats/token", "reference": ref.name}
    )


def plot_reference(
    name: str | ReferenceFit,
    inputs: Mapping[str, Any],
    *,
    ax: Any = None,
    **line_kwargs: Any,
) -> Any:
    """Draw a reference fit's loss curve along one input (log-log axes).

    Parameters
    ----------
    name : str or ReferenceFit
        Registered reference fit.
    inputs : mapping
        As for :func:`reference_curve`; exactly one input must be an array (the x axis).
    ax : matplotlib Axes, optional
        Axes to draw on (default: the current axes).
    **line_kwargs
        Passed to ``Axes.plot`` (default label: the reference's name, dashed line).

    Returns
    -------
    matplotlib.lines.Line2D
        The line drawn.
    """
    # matplotlib is imported where used: only drawing a reference curve needs it
    import matplotlib.pyplot as plt

    curve = reference_curve(name, inputs)
    if curve.dims == ("point",):
        raise ConfigError("give exactly one input as an array of values to draw a curve along")
    ax = plt.gca() if ax is None else ax
    kwargs = {"label": curve.attrs["reference"], "linestyle": "--"} | line_kwargs
    (line,) = ax.plot(curve[curve.dims[0]].values, curve.values, **kwargs)
    ax.set_xscale("log")
    ax.set_yscale("log")
    return line


# --------------------------------------------------------------------------------------------
# Muennighoff et al. 2023: repeated data
# --------------------------------------------------------------------------------------------
def effective_data(unique_tokens: Any, tokens: Any, *, r_star: float | None = None) -> np.ndarray:
    r"""Effective data of repeated tokens (Muennighoff et al. 2023).

    .. math::

        D' = U_D + U_D R^*_D \left(1 - e^{-R_D / R^*_D}\right), \qquad R_D = D/U_D - 1,

    where :math:`U_D` is the number of unique tokens, :math:`D` the tokens trained on and
    :math:`R_D` the number of repetitions (epochs minus one). Repeated tokens are worth less
    and less: :math:`D'` never exceeds :math:`(1 + R^*_D) U_D`.

    Parameters
    ----------
    unique_tokens : array-like
        Unique tokens :math:`U_D`.
    tokens : array-like
        Tokens trained on, :math:`D \ge U_D`.
    r_star : float, optional
        Decay constant :math:`R^*_D` (default: the paper's fit, 15.39).

    Returns
    -------
    ndarray
        Effective tokens :math:`D'` (use it as ``D`` in the base law).
    """
    r = get_reference("muennighoff2023").extra["R_star_D"] if r_star is None else r_star
    u = np.asarray(unique_tokens, dtype=float)
    d = np.asarray(tokens, dtype=float)
    if np.any(u <= 0) or np.any(d < u):
        raise ConfigError("need 0 < unique_tokens <= tokens")
    repeats = d / u - 1.0
    return u + u * r * (1.0 - np.exp(-repeats / r))


# --------------------------------------------------------------------------------------------
# The registry
# --------------------------------------------------------------------------------------------
_KAPLAN = "Kaplan et al. 2020, Scaling Laws for Neural Language Models, arXiv:2001.08361"
_KAPLAN_CONVENTIONS = (
    "N counts non-embedding parameters; D tokens; loss in nats/token on WebText2 test text "
    "(GPT-2 byte-pair encoding, 1024-token context). Losses on other text or tokenizers differ "
    "in level."
)

register_reference(
    ReferenceFit(
        name="kaplan2020_n",
        law="power_n",
        params={"alpha_N": 0.076, "N_c": 8.8e13},
        source=f"{_KAPLAN}, eq. 1.1",
        conventions=_KAPLAN_CONVENTIONS + " Models trained on ample data with early stopping.",
    )
)
register_reference(
    ReferenceFit(
        name="kaplan2020_d",
        law="power_d",
        params={"alpha_D": 0.095, "D_c": 5.4e13},
        source=f"{_KAPLAN}, eq. 1.2",
        conventions=_KAPLAN_CONVENTIONS + " Large models trained on D tokens, early-stopped.",
    )
)
register_reference(
    ReferenceFit(
        name="kaplan2020_cmin",
        law="power_c",
        params={"alpha_C": 0.050, "C_c": 3.1e8 * PF_DAY_FLOPS},
        source=f"{_KAPLAN}, eq. 1.3 (C_c = 3.1e8 PF-days, converted to FLOPs)",
        conventions=_KAPLAN_CONVENTIONS
        + " C is C_min, the compute of the compute-efficient frontier at the critical batch "
        "size, C = 6 N B S without embedding FLOPs (1 PF-day = 8.64e19 FLOPs).",
    )
)
register_reference(
    ReferenceFit(
        name="kaplan2020_nd",
        law="kaplan_nd",
        params={"alpha_N": 0.076, "alpha_D": 0.103, "N_c": 6.4e13, "D_c": 1.8e13},
        source=f"{_KAPLAN}, eq. 1.5 (joint fit L(N, D))",
        conventions=_KAPLAN_CONVENTIONS + " Early-stopped runs over a grid of N and D.",
    )
)
register_reference(
    ReferenceFit(
        name="kaplan2020_ns",
        law="kaplan_ns",
        params={"alpha_N": 0.077, "alpha_S": 0.76, "N_c": 6.5e13, "S_c": 2.1e3},
        source=f"{_KAPLAN}, eq. 1.6 (learning curves L(N, S))",
        conventions=_KAPLAN_CONVENTIONS
        + " S is S_min, the optimizer steps at a batch far above the critical batch; use "
        "kaplan2020_ns_bcrit for steps at a given batch.",
    )
)
register_reference(
    ReferenceFit(
        name="kaplan2020_ns_bcrit",
        law="kaplan_ns_bcrit",
        params={
            "alpha_N": 0.077,
            "alpha_S": 0.76,
            "alpha_B": 0.21,
            "N_c": 6.5e13,
            "S_c": 2.1e3,
            "B_star": 2e8,
        },
        source=(
            f"{_KAPLAN}, eqs. 1.4 and 1.6: L(N, S) with S_min = S/(1 + B_crit/B) and "
            "the critical batch B_crit(L) = B*/L^(1/alpha_B)"
        ),
        conventions=_KAPLAN_CONVENTIONS + " batch B in tokens per step.",
    )
)
_CHINCHILLA_CONVENTIONS = (
    "N counts all parameters (embeddings included); D tokens; loss in nats/token on "
    "MassiveText (SentencePiece tokenizer). Fitted by minimising a Huber "
    "loss (delta = 1e-3) of log-loss residuals with L-BFGS from a grid of starts."
)
register_reference(
    ReferenceFit(
        name="chinchilla_hoffmann2022",
        law="chinchilla",
        params={
            "E": float(np.exp(0.5267228)),
            "A": float(np.exp(6.0073404)),
            "B": float(np.exp(6.0179186)),
            "alpha": 0.33917084,
            "beta": 0.2849083,
        },
        source=(
            "Hoffmann et al. 2022, Training Compute-Optimal Large Language Models, "
            "arXiv:2203.15556, Approach 3 (unrounded; printed as E = 1.69, A = 406.4, "
            "B = 410.7, alpha = 0.34, beta = 0.28)"
        ),
        conventions=_CHINCHILLA_CONVENTIONS,
    )
)
register_reference(
    ReferenceFit(
        name="chinchilla_besiroglu2024",
        law="chinchilla",
        params={"E": 1.82, "A": 482.0, "B": 2085.4, "alpha": 0.348, "beta": 0.366},
        source=(
            "Besiroglu et al. 2024, Chinchilla Scaling: A replication attempt, arXiv:2404.10102 "
            "(refit of Approach 3 on 240 points digitised from Hoffmann et al.)"
        ),
        conventions=_CHINCHILLA_CONVENTIONS
        + " Same data as Hoffmann et al. (digitised); Hoffmann's parameters are rejected "
        "against this fit (likelihood-ratio p ~ 1e-16).",
        se={"E": 0.026, "A": 124.5, "B": 1293.3, "alpha": 0.015, "beta": 0.021},
        interval={
            "E": (1.769, 1.871),
            "A": (285.0, 744.0),
            "B": (1042.0, 5810.0),
            "alpha": (0.317, 0.373),
            "beta": (0.331, 0.415),
        },
        extra={"a": 0.513, "a_se": 0.020},
    )
)
register_reference(
    ReferenceFit(
        name="muennighoff2023",
        law="chinchilla",
        params={
            "E": float(np.exp(0.6254804)),
            "A": float(np.exp(6.255414)),
            "B": float(np.exp(7.3049974)),
            "alpha": 0.3526596,
            "beta": 0.3526596,
        },
        source=(
            "Muennighoff et al. 2023, Scaling Data-Constrained Language Models, "
            "arXiv:2305.16264 (base fit L = 1.87 + 521/N^0.353 + 1488/D^0.353)"
        ),
        conventions=(
            "N parameters, D tokens of unique (non-repeated) data, loss in nats/token on "
            "held-out text of the training corpus (C4 in the main experiments). With repeated "
            "data use the effective data D' of effective_data() in place of D (and N' for "
            "excess parameters)."
        ),
        extra={"R_star_D": 15.387756, "R_star_N": 5.309743},
    )
)
