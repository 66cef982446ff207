r"""PyMC models for scaling laws.

The likelihood is on the natural log of the loss:

.. math::

    \log L_i \sim \mathcal{N}(\log f(x_i; \theta), \sigma)
    \quad\text{or}\quad
    \log L_i \sim t_\nu(\log f(x_i; \theta), \sigma),

so :math:`\sigma` is a relative scatter (0.01 = 1 % of the loss). The law ``f`` is evaluated on
centred log inputs with well-conditioned latents (see :mod:`bayescale.laws`); the papers'
parameters are deterministics.

Everything that depends on the data (centred inputs, observed log losses, the centre itself,
and every numeric prior hyperparameter) enters the graph as ``pm.Data``. The graph therefore
depends only on the law, the prior families, the likelihood, the pooling structure and the
number of runs, and one compiled model serves every dataset of that shape (see
:mod:`bayescale.fitting`).

Groups (see :mod:`bayescale.hierarchy`): each law latent is pooled, partially pooled or
unpooled across the levels of a group column; the papers' parameters then carry the group
dimension. Transfer offsets (:class:`Offsets`) add a constant to the log loss per level of
another column, so laws can vary by one factor (model family) and offsets by another (eval set).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from bayescale.errors import ConfigError, did_you_mean
from bayescale.hierarchy import Pooling, population_priors, transform_of
from bayescale.laws import DataSummary, Law
from bayescale.priors import Prior

if TYPE_CHECKING:
    import pymc as pm

__all__ = ["LIKELIHOODS", "ModelData", "Offsets", "build_model", "default_priors", "graph_key"]

RUN = "run"
#: Likelihoods for the log loss. Student-t (with learned degrees of freedom) tolerates outlier
#: runs (a diverged or mis-logged run) without dragging the law.
LIKELIHOODS = ("normal", "student_t")
#: Prefix of the ``pm.Data`` holding prior hyperparameters; dropped from saved results.
HYPER_PREFIX = "prior__"


@dataclass(frozen=True)
class Offsets:
    """A constant offset in log loss per level of a column (Kaplan's transfer offsets).

    The offset is in **log-loss** space: a level with offset 0.05 has a loss ``exp(0.05)``,
    i.e. 5.1 %, higher than the reference level at every scale. Log space keeps the loss
    positive and matches the multiplicative scatter of the likelihood. The first label is the
    reference level (offset fixed at 0, which keeps the law's scale identifiable).

    Attributes
    ----------
    dim : str
        The offset column's name (used as a dimension).
    labels : tuple of str
        Levels, reference first.
    index : ndarray of int
        Level index of each run.
    """

    dim: str
    labels: tuple[str, ...]
    index: np.ndarray

    @classmethod
    def from_labels(cls, dim: str, labels: Any, reference: str | None = None) -> Offsets:
        """Levels from run labels; the reference is ``reference`` or the most common level."""
        values = np.asarray(labels, dtype=str)
        names, counts = np.unique(values, return_counts=True)
        ref = reference if reference is not None else str(names[np.argmax(counts)])
        if ref not in names:
            raise ConfigError(
                f"reference level {ref!r} is not a value of column {dim!r}; "
                f"values: {', '.join(map(str, names))}"
            )
        ordered = (ref, *(str(n) for n in names if n != ref))
        lookup = {name: i for i, name in enumerate(ordered)}
        return cls(dim, ordered, np.array([lookup[v] for v in values]))

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable description (stored in fit files)."""
        return {"dim": self.dim, "labels": list(self.labels)}


@dataclass(frozen=True)
class ModelData:
    """Numbers a model is built from: centred log inputs, observed log loss, group structure.

    Attributes
    ----------
    u : dict of str to ndarray
        ``log(X) - centre[X]`` for each law input, shape ``(n_runs,)``.
    log_loss : ndarray
        Natural log of the observed loss (nats/token), shape ``(n_runs,)``.
    summary : DataSummary
        Centre and loss statistics used by default priors.
    pooling : Pooling, optional
        How the law's latents vary across groups.
    offsets : Offsets, optional
        Per-level constant offsets in log loss.
    """

    u: dict[str, np.ndarray]
    log_loss: np.ndarray
    summary: DataSummary
    pooling: Pooling | None = None
    offsets: Offsets | None = None

    @classmethod
    def from_arrays(
        cls,
        inputs: Mapping[str, Any],
        loss: Any,
        *,
        summary: DataSummary | None = None,
        pooling: Pooling | None = None,
        offsets: Offsets | None = None,
    ) -> ModelData:
        """Build from raw inputs (canonical units) and losses; the centre defaults to the data's."""
        summary = summary or DataSummary.from_arrays(inputs, loss)
        u = {k: np.log(np.asarray(v, dtype=float)) - summary.centre[k] for k, v in inputs.items()}
        log_loss = np.log(np.asarray(loss, dtype=float))
        return cls(u=u, log_loss=log_loss, summary=summary, pooling=pooling, offsets=offsets)

    @property
    def n_runs(self) -> int:
        """Number of observations."""
        return int(self.log_loss.size)


def pooled_stem(name: str, prior: Prior) -> str:
    """Return the stem of a pooled latent's population names (``log_<name>`` on the log scale)."""
    return f"log_{name}" if transform_of(prior, name) == "log" else name


def default_priors(
    law: Law,
    summary: DataSummary,
    *,
    likelihood: str = "normal",
    pooling: Pooling | None = None,
    offsets: Offsets | None = None,
) -> dict[str, Prior]:
    """Default priors of every sampled parameter of ``law``'s model, scaled to the data.

    ``sigma`` (scatter of log loss) is HalfNormal(0.1): run-to-run scatter on published ladders
    is 0.5-2 % (Kaplan: ~0.02), and 10 % would be an unusually bad ladder. ``nu`` (Student-t
    degrees of freedom) is Gamma(2, 0.1), the Juarez & Steel (2010) default.

    A partially pooled latent ``z`` is replaced by its population location and scale
    (``mu_z``, ``tau_z``; ``mu_log_z``, ``tau_log_z`` when pooled on the log scale), see
    :func:`bayescale.hierarchy.population_priors`. Transfer offsets get Normal(0, 0.5) in log
    loss: a factor of 1.6 either way is a generous range for the gap between eval sets.
    """
    priors: dict[str, Prior] = {}
    for name, prior in law.default_priors(summary).items():
        if pooling is not None and pooling.modes.get(name) == "partial":
            loc, scale = population_priors(prior, name)
            stem = pooled_stem(name, prior)
            priors[f"mu_{stem}"], priors[f"tau_{stem}"] = loc, scale
        else:
            priors[name] = prior
    if offsets is not None:
        priors["offset"] = Prior("Normal", mu=0.0, sigma=0.5)
    priors["sigma"] = Prior("HalfNormal", sigma=0.1)
    if likelihood == "student_t":
        priors["nu"] = Prior("Gamma", alpha=2.0, beta=0.1)
    return priors


def check_likelihood(likelihood: str) -> str:
    """Validate a likelihood name and return it."""
    if likelihood not in LIKELIHOODS:
        raise ConfigError(
            f"unknown likelihood {likelihood!r}. " + did_you_mean(likelihood, list(LIKELIHOODS))
        )
    return likelihood


def graph_key(law: Law, data: ModelData, priors: Mapping[str, Prior], likelihood: str) -> tuple:
    """Everything that changes the model's graph (not its data): the compile-cache key."""
    pooling = data.pooling
    structure = None
    if pooling is not None:
        structure = (
            len(pooling.labels),
            tuple(sorted(pooling.modes.items())),
            tuple(sorted(pooling.centred.items())),
        )
    offsets = None if data.offsets is None else len(data.offsets.labels)
    dists = tuple(sorted((k, p.dist) for k, p in priors.items()))
    return (law.name, dists, likelihood, data.n_runs, structure, offsets)


def hyper_values(priors: Mapping[str, Prior]) -> dict[str, float]:
    """``pm.Data`` names and values of every prior hyperparameter."""
    return {
        f"{HYPER_PREFIX}{name}__{arg}": v
        for name, p in priors.items()
        for arg, v in p.params.items()
    }


def data_values(law: Law, data: ModelData, priors: Mapping[str, Prior]) -> dict[str, Any]:
    """Values of every ``pm.Data`` in the model, for swapping data into a compiled model."""
    values: dict[str, Any] = {f"u_{k}": data.u[k] for k in law.inputs}
    values |= {f"centre_{k}": np.asarray(data.summary.centre[k]) for k in law.inputs}
    values["log_loss_obs"] = data.log_loss
    if data.pooling is not None:
        values["group_index"] = data.pooling.index
    if data.offsets is not None:
        values["offset_index"] = data.offsets.index
    values |= {k: np.asarray(v) for k, v in hyper_values(priors).items()}
    return values


def build_model(
    law: Law,
    data: ModelData,
    *,
    priors: Mapping[str, Prior],
    likelihood: str = "normal",
) -> pm.Model:
    """Build the PyMC model of ``law`` for ``data``.

    Parameters
    ----------
    law : Law
        The scaling law.
    data : ModelData
        Centred log inputs, observed log losses and (optionally) groups and offsets.
    priors : mapping of str to Prior
        A prior for every sampled parameter (law latents or their population location and
        scale, offsets, ``sigma``, ``nu`` for Student-t); see :func:`default_priors`.
    likelihood : {"normal", "student_t"}
        Likelihood of the log loss.

    Returns
    -------
    pymc.Model
        Model with latents, the papers' parameters and derived quantities as deterministics
        (with the group dimension where they vary), and the observed variable ``log_loss``.
    """
    import pymc as pm
    import pytensor.tensor as pt

    check_likelihood(likelihood)
    pooling, offsets = data.pooling, data.offsets
    coords: dict[str, Any] = {RUN: np.arange(data.n_runs)}
    if pooling is not None:
        coords[pooling.dim] = list(pooling.labels)
    if offsets is not None:
        coords[offsets.dim] = list(offsets.labels)
        coords[f"{offsets.dim}_estimated"] = list(offsets.labels[1:])
    with pm.Model(coords=coords) as model:
        u = {k: pm.Data(f"u_{k}", data.u[k], dims=RUN) for k in law.inputs}
        centre = {k: pm.Data(f"centre_{k}", data.summary.centre[k]) for k in law.inputs}
        observed = pm.Data("log_loss_obs", data.log_loss, dims=RUN)
        hyper = hyper_values(priors)

        def rv(name: str, dims: str | None = None, *, label: str | None = None) -> Any:
            """Random variable ``label`` (default ``name``) with the prior called ``name``."""
            if name not in priors:
                raise ConfigError(f"no prior given for {name!r} of law {law.name!r}")
            args = {
                a: pm.Data(f"{HYPER_PREFIX}{name}__{a}", hyper[f"{HYPER_PREFIX}{name}__{a}"])
                for a in priors[name].params
            }
            return priors[name].create(label or name, dims=dims, **args)

        z_group: dict[str, Any] = {}  # value per group (a scalar when pooled)
        z_run: dict[str, Any] = {}  # value for each run
        if pooling is not None:
            group_index = pm.Data("group_index", pooling.index, dims=RUN)
        for name in law.latents:
            mode = "pooled" if pooling is None else pooling.modes[name]
            if mode == "pooled":
                z_group[name] = z_run[name] = rv(name)
                continue
            if mode == "none":
                z_group[name] = rv(name, dims=pooling.dim)
            else:
                z_group[name] = _partially_pooled(name, priors, rv, pooling)
            z_run[name] = z_group[name][group_index]

        params = law.to_params(z_group, centre, pt)
        group_dim = pooling.dim if pooling is not None else None
        for name in law.params:
            if name not in z_group:  # exponents are often both latent and reported
                pm.Deterministic(name, params[name], dims=_dims(params[name], group_dim))
        for name, value in law.derived(params, pt).items():
            pm.Deterministic(name, value, dims=_dims(value, group_dim))

        # The per-run mean is not stored: on large tables it would dominate memory. Predictions
        # recompute it from the latents on demand.
        mu = law.log_loss(z_run, u, pt)
        if offsets is not None:
            raw = rv("offset", dims=f"{offsets.dim}_estimated", label="offset_free")
            shift = pm.Deterministic("offset", pt.concatenate([pt.zeros(1), raw]), dims=offsets.dim)
            mu = mu + shift[pm.Data("offset_index", offsets.index, dims=RUN)]
        sigma = rv("sigma")
        if likelihood == "normal":
            pm.Normal("log_loss", mu=mu, sigma=sigma, observed=observed, dims=RUN)
        else:
            pm.StudentT("log_loss", nu=rv("nu"), mu=mu, sigma=sigma, observed=observed, dims=RUN)
    return model


def _partially_pooled(name: str, priors: Mapping[str, Prior], rv: Any, pooling: Pooling) -> Any:
    """Group values of a partially pooled latent, in the centred or non-centred form."""
    import pymc as pm
    import pytensor.tensor as pt

    log_scale = f"mu_log_{name}" in priors
    stem = f"log_{name}" if log_scale else name
    mu, tau = rv(f"mu_{stem}"), rv(f"tau_{stem}")
    dim = pooling.dim
    if pooling.centred[name]:
        # Sampled directly; on the log scale under its own name so the latent stays reportable.
        h = pm.Normal(f"{stem}_{dim}" if log_scale else name, mu=mu, sigma=tau, dims=dim)
        if not log_scale:
            return h
    else:
        h = mu + tau * pm.Normal(f"{stem}_z", 0.0, 1.0, dims=dim)
        if not log_scale:
            return pm.Deterministic(name, h, dims=dim)
    pm.Deterministic(f"mu_{name}", pt.exp(mu))  # population geometric mean
    return pm.Deterministic(name, pt.exp(h), dims=dim)


def _dims(value: Any, group_dim: str | None) -> str | None:
    """Return the group dim for quantities that vary by group, None for scalars."""
    return group_dim if group_dim is not None and getattr(value, "ndim", 0) == 1 else None
