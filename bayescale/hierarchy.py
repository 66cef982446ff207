r"""Pooling across groups of runs: pooled, partially pooled (hierarchical) or unpooled latents.

For a latent :math:`z` with prior :math:`p(z)` and groups :math:`g = 1..G`:

* ``"pooled"`` (``"complete"``): one :math:`z` shared by every group;
* ``"none"`` (unpooled): independent :math:`z_g \sim p(z)`;
* ``"partial"``: :math:`h(z_g) \sim \mathcal{N}(\mu, \tau)` with :math:`\mu \sim p(h(z))`
  and :math:`\tau \sim \text{HalfNormal}(s)`, where :math:`h` maps the latent to an
  unbounded scale (identity for Normal priors, log for LogNormal ones, so a positive exponent
  stays positive in every group). The population quantities are reported as ``mu_<latent>`` and
  ``tau_<latent>``.

Partial pooling is sampled in the **centred** form (:math:`h(z_g)` drawn directly) when every
group is well determined by its own runs, and in the **non-centred** form
(:math:`h(z_g) = \mu + \tau\,\varepsilon_g`, :math:`\varepsilon_g \sim \mathcal{N}(0, 1)`) when
some group has few runs: the non-centred form removes the funnel between :math:`\tau` and the
group values when the likelihood is weak, but creates one when it is strong (Betancourt &
Girolami 2015; Papaspiliopoulos et al. 2007). :func:`choose_centred` makes that choice from the
data; users can force either.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from bayescale.errors import ConfigError, UnknownNameError, did_you_mean
from bayescale.priors import Prior

__all__ = ["POOLING", "Pooling", "choose_centred", "resolve_pooling"]

#: Pooling choices, with accepted spellings.
POOLING = {
    "partial": "partial",
    "pooled": "pooled",
    "complete": "pooled",
    "none": "none",
    "unpooled": "none",
}


@dataclass(frozen=True)
class Pooling:
    """How each latent varies across groups.

    Attributes
    ----------
    dim : str
        Name of the group dimension (the group column's own name).
    labels : tuple of str
        Group labels, in the order of the dimension's coordinate.
    index : ndarray of int
        Group index of each run.
    modes : dict of str to str
        ``"pooled"``, ``"partial"`` or ``"none"`` per latent.
    centred : dict of str to bool
        Parametrization of each partially pooled latent.
    """

    dim: str
    labels: tuple[str, ...]
    index: np.ndarray
    modes: dict[str, str]
    centred: dict[str, bool]

    def varies(self, latent: str) -> bool:
        """Return True when ``latent`` takes a value per group."""
        return self.modes.get(latent, "pooled") != "pooled"

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable description (stored in fit files)."""
        return {
            "dim": self.dim,
            "labels": list(self.labels),
            "modes": self.modes,
            "centred": self.centred,
        }


def transform_of(prior: Prior, latent: str) -> str:
    """Return the unbounded scale on which a latent is pooled: ``"identity"`` or ``"log"``."""
    if prior.dist in ("Normal", "StudentT"):
        return "identity"
    if prior.dist == "LogNormal":
        return "log"
    raise ConfigError(
        f"cannot pool {latent!r} across groups with a {prior.dist} prior; partial pooling needs a "
        "Normal or LogNormal prior (set the pooling of this parameter to 'pooled' or 'none')"
    )


def population_priors(prior: Prior, latent: str) -> tuple[Prior, Prior]:
    """Priors of the population location and scale of a partially pooled latent.

    The location gets the latent's own prior (on the unbounded scale). The scale is
    HalfNormal with half the prior's sd: groups are expected to differ by less than what is
    unknown a priori about the population value (on Kaplan's ladders exponents vary by a few
    per cent across shapes).
    """
    kind = transform_of(prior, latent)
    sd = prior.params["sigma"]
    loc = Prior("Normal", mu=prior.params["mu"], sigma=sd) if kind == "log" else prior
    return loc, Prior("HalfNormal", sigma=0.5 * sd)


def choose_centred(counts: np.ndarray, n_varying: int) -> bool:
    """Centred parametrization when every group has enough runs to pin its own values down.

    A group with more runs than the latents that vary by group identifies its own values
    (the likelihood dominates the population prior), which is where the non-centred form
    produces divergences; scaling ladders (many sizes per family) are in this regime. With
    fewer runs in some group the posterior of that group leans on the population, a funnel in
    the centred form, so the non-centred form is used.
    """
    return bool(np.min(counts) > n_varying)


def resolve_pooling(
    latents: tuple[str, ...],
    labels: np.ndarray,
    *,
    dim: str,
    pool: Mapping[str, str] | None = None,
    centred: bool | Mapping[str, bool] | None = None,
    aliases: Mapping[str, str] | None = None,
) -> Pooling:
    """Work out the pooling of every latent for runs labelled ``labels``.

    Parameters
    ----------
    latents : tuple of str
        The law's latents.
    labels : array of str
        Group label of each run.
    dim : str
        Name of the group dimension.
    pool : mapping, optional
        Pooling per parameter (latent or paper-parameter name through ``aliases``): one of
        ``"partial"`` (default for every law latent), ``"pooled"``, ``"none"``.
    centred : bool or mapping, optional
        Force the parametrization of every (or of named) partially pooled latents; ``None``
        chooses from the data (:func:`choose_centred`).
    aliases : mapping, optional
        Paper-parameter names accepted for latents, e.g. ``{"N_c": "log_L0"}``.
    """
    aliases = dict(aliases or {})
    names, index = np.unique(np.asarray(labels, dtype=str), return_inverse=True)
    counts = np.bincount(index, minlength=names.size)
    modes = dict.fromkeys(latents, "partial")
    for key, value in (pool or {}).items():
        latent = aliases.get(key, key)
        if latent not in modes:
            valid = [*latents, *aliases]
            raise UnknownNameError(
                f"cannot set pooling of {key!r}: no such parameter. " + did_you_mean(key, valid)
            )
        mode = POOLING.get(str(value).lower())
        if mode is None:
            raise ConfigError(
                f"pooling of {key!r} must be one of partial, pooled, none; got {value!r}"
            )
        modes[latent] = mode
    auto = choose_centred(counts, sum(mode != "pooled" for mode in modes.values()))
    chosen: dict[str, bool] = {}
    for latent, mode in modes.items():
        if mode != "partial":
            continue
        if isinstance(centred, Mapping):
            key = next((k for k in centred if aliases.get(k, k) == latent), None)
            chosen[latent] = bool(centred[key]) if key is not None else auto
        else:
            chosen[latent] = auto if centred is None else bool(centred)
    return Pooling(
        dim=dim, labels=tuple(str(n) for n in names), index=index, modes=modes, centred=chosen
    )
