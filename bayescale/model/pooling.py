r"""Pooling across groups of runs: pooled, partially pooled (hierarchical) or unpooled latents.

For a latent :math:`z` with prior :math:`p(z)` and groups :math:`g = 1..G`:

* ``"pooled"`` (``"complete"``): one :math:`z` shared by every group;
* ``"none"`` (unpooled): independent :math:`z_g \sim p(z)`;
* ``"partial"``: :math:`h(z_g) \sim \mathcal{N}(\mu, \tau)` with :math:`\mu \sim p(h(z))`
  and :math:`\tau \sim \text{HalfNormal}(s)`, where :math:`h` maps the latent to an
  unbounded scale (identity for Normal priors, log for LogNormal ones, so a positive exponent
  stays positive in every group). The population quantities are reported as ``mu_<latent>`` and
  ``tau_<latent>``.

Partial pooling is sampled in the **centred** form (:math:`h(z_g)` drawn directly) where a
group's own runs pin its value down better than the population spread does, and in the
**non-centred** form (:math:`h(z_g) = \mu + \tau\,\varepsilon_g`,
:math:`\varepsilon_g \sim \mathcal{N}(0, 1)`) where they do not: the non-centred form removes
the funnel between :math:`\tau` and the group values when the likelihood is weak (few or noisy
runs, or groups that barely differ), but creates one when it is strong (Betancourt & Girolami
2015; Papaspiliopoulos et al. 2007). :func:`bayescale.model.centring.pilot_centring` makes the
choice from cheap per-group MAP fits; users can force either form per latent. Both forms are one
expression,

.. math::

    \tilde h_g \sim \mathcal{N}(w_g \mu, \tau^{w_g}), \qquad
    h(z_g) = \mu + \tau^{1 - w_g} (\tilde h_g - w_g \mu),

with :math:`w_g = 1` (centred) or :math:`0` (non-centred) given as data, so the choice never
changes the compiled model.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from bayescale.core.errors import ConfigError, UnknownNameError, did_you_mean
from bayescale.core.priors import Prior

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
    centred : dict of str to tuple of bool
        Parametrization of each partially pooled latent, per group (True: centred).
    forced : tuple of str
        Latents whose parametrization the user chose (the others are chosen from the data).
    """

    dim: str
    labels: tuple[str, ...]
    index: np.ndarray
    modes: dict[str, str]
    centred: dict[str, tuple[bool, ...]]
    forced: tuple[str, ...] = ()

    def varies(self, latent: str) -> bool:
        """Return True when ``latent`` takes a value per group."""
        return self.modes.get(latent, "pooled") != "pooled"

    def pooled_on_log_scale(self, latent: str, names: Any) -> bool:
        """Return True when a partially pooled latent's population is on the log scale.

        ``names`` is anything supporting ``in`` over variable names (a posterior Dataset, a
        priors dict): the population location is then called ``mu_log_<latent>``.
        """
        return self.modes.get(latent) == "partial" and f"mu_log_{latent}" in names

    def population_stem(self, latent: str, names: Any) -> str:
        """Stem of the population names of ``latent``: ``log_<latent>`` or ``<latent>``."""
        return f"log_{latent}" if self.pooled_on_log_scale(latent, names) else latent

    def counts(self) -> np.ndarray:
        """Return the number of runs in each group."""
        return np.bincount(self.index, minlength=len(self.labels))

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable description (stored in fit files)."""
        return {
            "dim": self.dim,
            "labels": list(self.labels),
            "modes": self.modes,
            "centred": {k: list(v) for k, v in self.centred.items()},
            "forced": list(self.forced),
        }

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any]) -> Pooling:
        """Rebuild from :meth:`to_dict` output (the run index is not stored)."""
        labels = tuple(spec["labels"])
        centred = {
            k: tuple(bool(b) for b in (v if isinstance(v, list) else [v] * len(labels)))
            for k, v in spec["centred"].items()
        }
        return cls(
            dim=spec["dim"],
            labels=labels,
            index=np.zeros(0, dtype=int),
            modes=dict(spec["modes"]),
            centred=centred,
            forced=tuple(spec.get("forced", ())),
        )

    def with_centring(self, chosen: Mapping[str, Any]) -> Pooling:
        """Return a copy with the data-chosen centring of every latent the user did not force."""
        centred = dict(self.centred)
        for latent, flags in chosen.items():
            if latent in centred and latent not in self.forced:
                centred[latent] = tuple(bool(b) for b in flags)
        return replace(self, centred=centred)


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


def choose_centred(counts: np.ndarray, n_varying: int) -> np.ndarray:
    """Centre a group when it has more runs than the latents that vary by group.

    The fallback from group sizes alone, used when :func:`~bayescale.model.centring.pilot_centring`
    cannot run (it needs the law and data); a group with fewer runs than that leans on the
    population, a funnel in the centred form.
    """
    return np.asarray(counts) > n_varying


def resolve_pooling(
    latents: tuple[str, ...],
    labels: np.ndarray,
    *,
    dim: str,
    pool: Mapping[str, str] | None = None,
    centred: bool | Mapping[str, bool] | None = None,
    aliases: Mapping[str, str] | None = None,
    shared: tuple[str, ...] = (),
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
    shared : tuple of str
        Latents pooled unless ``pool`` says otherwise (:attr:`bayescale.laws.base.Law.shared`).
    """
    aliases = dict(aliases or {})
    names, index = np.unique(np.asarray(labels, dtype=str), return_inverse=True)
    counts = np.bincount(index, minlength=names.size)
    modes = {k: "pooled" if k in shared else "partial" for k in latents}
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
    auto = tuple(
        bool(b) for b in choose_centred(counts, sum(m != "pooled" for m in modes.values()))
    )
    chosen: dict[str, tuple[bool, ...]] = {}
    forced: list[str] = []
    if isinstance(centred, Mapping):
        for key in centred:
            if aliases.get(key, key) not in latents:
                raise UnknownNameError(
                    f"cannot set centring of {key!r}: no such parameter. "
                    + did_you_mean(key, [*latents, *aliases])
                )
    for latent, mode in modes.items():
        if mode != "partial":
            continue
        if isinstance(centred, Mapping):
            given = next((k for k in centred if aliases.get(k, k) == latent), None)
            force = None if given is None else bool(centred[given])
        else:
            force = None if centred is None else bool(centred)
        if force is None:
            chosen[latent] = auto
        else:
            chosen[latent] = (force,) * len(names)
            forced.append(latent)
    return Pooling(
        dim=dim,
        labels=tuple(str(n) for n in names),
        index=index,
        modes=modes,
        centred=chosen,
        forced=tuple(forced),
    )
