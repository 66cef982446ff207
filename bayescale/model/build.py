r"""PyMC models for scaling laws.

The likelihood is on the natural log of the loss:

.. math::

    \log L_i \sim \mathcal{N}(\log f(x_i; \theta), \sigma)
    \quad\text{or}\quad
    \log L_i \sim t_\nu(\log f(x_i; \theta), \sigma),

so :math:`\sigma` is a relative scatter (0.01 = 1 % of the loss). The law ``f`` is evaluated on
centred log inputs with well-conditioned latents (see :mod:`bayescale.laws.base`); the papers'
parameters are deterministics.

Everything that depends on the data (centred inputs, observed log losses, the centre itself,
and every numeric prior hyperparameter) enters the graph as ``pm.Data``. The graph therefore
depends only on the law, the prior families, the likelihood, the pooling structure and the
number of runs, and one compiled model serves every dataset of that shape (see
:mod:`bayescale.fitting.pipeline`).

Groups (see :mod:`bayescale.model.pooling`): each law latent is pooled, partially pooled or
unpooled across the levels of a group column; the papers' parameters then carry the group
dimension. Transfer offsets (:class:`Offsets`) add a constant to the log loss per level of
another column, so laws can vary by one factor (model family) and offsets by another (eval set).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from bayescale.core.dims import RUN
from bayescale.core.errors import ConfigError, did_you_mean
from bayescale.core.priors import Prior
from bayescale.laws.base import DataSummary, Law
from bayescale.model.pooling import Pooling, population_priors, transform_of

if TYPE_CHECKING:
    import pymc as pm

__all__ = [
    "DISCREPANCIES",
    "LIKELIHOODS",
    "ModelData",
    "Offsets",
    "RunEffect",
    "build_model",
    "default_priors",
    "discrepancy_distance",
    "graph_key",
]

#: Likelihoods for the log loss. Student-t (with learned degrees of freedom) tolerates outlier
#: runs (a diverged or mis-logged run) without dragging the law.
LIKELIHOODS = ("normal", "student_t")
#: Prefix of the ``pm.Data`` holding prior hyperparameters; dropped from saved results.
HYPER_PREFIX = "prior__"
#: Model-discrepancy terms (Kennedy & O'Hagan 2001: the law is not the truth).
#: ``"gp"``: a Gaussian-process residual over the standardised log inputs, squared-exponential
#: kernel with amplitude ``eta`` and one lengthscale ``ell_<input>`` per input; the runs then
#: follow ``MvNormal(law, K + sigma^2 I)``, so ``sigma`` is the scatter between reruns and the
#: structured misfit goes to the GP, whose variance returns to ``eta^2`` away from the data.
#: ``"distance"``: the scatter of log loss grows with the standardised distance ``d`` of a run
#: from the centre of the data, ``sd = sqrt(sigma^2 + (kappa d)^2)`` (see
#: :func:`discrepancy_distance`).
DISCREPANCIES = ("gp", "distance")
#: GP amplitude: the law's misfit on published ladders is 0.3-1 % of the loss.
ETA_PRIOR = Prior("HalfNormal", sigma=0.01)
#: GP lengthscale in data-sds of each log input: 94 % of the mass in 0.4-2.7, so the misfit is
#: smooth on the scale of the ladder rather than run to run (which is what ``sigma`` is for).
LENGTHSCALE_PRIOR = Prior("LogNormal", mu=0.0, sigma=0.5)
#: Added to the GP covariance diagonal (log loss squared) for a stable Cholesky factor.
GP_JITTER = 1e-10
#: Prior of ``kappa``, the discrepancy sd of log loss per data-sd of distance from the centre.
#: Published ladders fit their own runs to 0.3-1 % of the loss; HalfNormal(0.01) expects the
#: law to drift by about that much per data-sd beyond them, and lets the data say more or less.
KAPPA_PRIOR = Prior("HalfNormal", sigma=0.01)


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


#: Prior of ``tau_run``, the sd of the per-run offset in log loss (within-run correlation of
#: learning curves). Seeds of one configuration differ by 1-2 % (Kaplan sec. 4.2) and model
#: shapes at one size by a few % (Kaplan fig. 5); HalfNormal(0.05) covers both.
TAU_RUN_PRIOR = Prior("HalfNormal", sigma=0.05)
#: Prior of ``ell_run``, the correlation length of the AR(1) residual along a curve, in
#: e-folds of steps (natural log). Logged curves span 3-6 e-folds; LogNormal(log 0.5, 1) puts
#: 94 % of the mass in 0.08-3.3, from nearly white noise to drifts over most of a run.
ELL_RUN_PRIOR = Prior("LogNormal", mu=float(np.log(0.5)), sigma=1.0)
#: Prior of ``drift_run``, the AR(1) residual's innovation sd per square root of an e-fold of
#: steps (its stationary sd is ``drift_run * sqrt(ell_run / 2)``). Checkpoint noise of 0.5-2 %
#: decorrelating within 0.1 e-folds gives 0.02-0.1, smooth drifts of 0.5 % over several e-folds
#: ~0.005; HalfNormal(0.1) covers both.
DRIFT_RUN_PRIOR = Prior("HalfNormal", sigma=0.1)


@dataclass(frozen=True)
class RunEffect:
    """A random offset in log loss shared by all rows of one run (learning curves).

    Successive points of a training curve are not independent: a run that sits 2 % above the
    law at one step sits about 2 % above it at the next (same seed, data order and
    initialisation). Each run gets an offset of scale ``tau_run`` added to its log loss,
    with ``tau_run`` learned, so the likelihood counts a run as one draw of its level plus
    point-to-point scatter ``sigma``, and the early points of a run inform its later ones.
    The offsets sum to zero over the runs, so the law is that of the average run.

    Attributes
    ----------
    dim : str
        The run-id column's name (used as a dimension).
    labels : tuple of str
        Run ids, in order of first appearance.
    index : ndarray of int
        Run of each row.
    centred : tuple of bool
        Centred (True) or non-centred form of the run offsets (all runs alike); entered as
        data, so it never changes the compiled graph (see
        :func:`bayescale.model.centring.pilot_run_centring`).
    ar1 : bool
        Also model the residual around the run's offset as an AR(1) (Ornstein-Uhlenbeck)
        process in log step: the residual of a row is ``rho`` times the previous row's plus
        an innovation, ``rho = exp(-gap/ell_run)`` with ``gap`` the log-step distance, so
        ``sigma`` is its stationary sd. Neighbouring checkpoints share a deviation that fades
        over ``ell_run`` e-folds of steps.
    previous : ndarray of int
        Row of the same run logged just before each row (the row itself for a run's first).
    gap : ndarray
        Natural-log step distance to that row; for a run's first row, the run's median gap.
    first : ndarray of bool
        The run's first row. Its residual starts from zero one median gap earlier, so its
        variance is ``sigma^2 (1 - exp(-2 gap/ell_run))``: the run's level is its offset's to
        carry. A stationary start would give every run a second, free level of sd ``sigma``
        once ``ell_run`` exceeds the logged span, and the sampler cannot tell the two apart.
    projector : ndarray, optional
        ``(runs, runs)`` projection applied to the free offsets; default the centring matrix
        (offsets sum to zero). Entered as data.
    """

    dim: str
    labels: tuple[str, ...]
    index: np.ndarray
    centred: tuple[bool, ...] = ()
    ar1: bool = False
    previous: np.ndarray | None = None
    gap: np.ndarray | None = None
    first: np.ndarray | None = None
    projector: np.ndarray | None = None

    @classmethod
    def from_labels(cls, dim: str, labels: Any, *, steps: Any = None) -> RunEffect:
        """Build from the run id of each row (ids kept as text, in order of appearance).

        With ``steps`` (one per row, increasing within each run), the AR(1) residual is on.
        """
        values = np.asarray(labels).astype(str)
        ordered = tuple(dict.fromkeys(values.tolist()))
        lookup = {name: i for i, name in enumerate(ordered)}
        index = np.array([lookup[v] for v in values], dtype=np.int64)
        effect = cls(dim, ordered, index, (False,) * len(ordered))
        if steps is None:
            return effect
        log_t = np.log(np.asarray(steps, dtype=float))
        previous = np.arange(index.size)
        gap = np.ones(index.size)
        first = np.zeros(index.size, dtype=bool)
        for run in range(len(ordered)):
            rows = np.flatnonzero(index == run)
            previous[rows[1:]] = rows[:-1]
            gap[rows[1:]] = np.diff(log_t[rows])
            gap[rows[0]] = float(np.median(gap[rows[1:]])) if rows.size > 1 else 1.0
            first[rows[0]] = True
        return replace(effect, ar1=True, previous=previous, gap=gap, first=first)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable description (stored in fit files)."""
        # Directions the projector removes (mean, trends), for a new run's offset variance.
        removed = len(self.labels) - float(np.trace(self.projection))
        return {
            "dim": self.dim,
            "labels": list(self.labels),
            "ar1": self.ar1,
            "projected": round(removed),
        }

    @property
    def projection(self) -> np.ndarray:
        """The projector of the free offsets (the centring matrix when none was set)."""
        if self.projector is not None:
            return self.projector
        n = len(self.labels)
        return np.eye(n) - np.full((n, n), 1.0 / n)


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
    discrepancy : str, optional
        Model-discrepancy term, one of :data:`DISCREPANCIES`.
    run_effect : RunEffect, optional
        Per-run random offsets in log loss (rows of one learning curve share one).
    """

    u: dict[str, np.ndarray]
    log_loss: np.ndarray
    summary: DataSummary
    pooling: Pooling | None = None
    offsets: Offsets | None = None
    discrepancy: str | None = None
    run_effect: RunEffect | None = None

    @classmethod
    def from_arrays(
        cls,
        inputs: Mapping[str, Any],
        loss: Any,
        *,
        summary: DataSummary | None = None,
        pooling: Pooling | None = None,
        offsets: Offsets | None = None,
        discrepancy: str | None = None,
        run_effect: RunEffect | None = None,
    ) -> ModelData:
        """Build from raw inputs (canonical units) and losses; the centre defaults to the data's."""
        summary = summary or DataSummary.from_arrays(inputs, loss)
        u = {k: np.log(np.asarray(v, dtype=float)) - summary.centre[k] for k, v in inputs.items()}
        log_loss = np.log(np.asarray(loss, dtype=float))
        return cls(
            u=u,
            log_loss=log_loss,
            summary=summary,
            pooling=pooling,
            offsets=offsets,
            discrepancy=discrepancy,
            run_effect=run_effect,
        )

    @property
    def n_runs(self) -> int:
        """Number of observations."""
        return int(self.log_loss.size)

    @property
    def distance_scale(self) -> dict[str, float]:
        """Spread (sd) of each centred log input over the runs; the unit of discrepancy distance.

        An input that does not vary gets scale 1 (distance along it is then in e-folds).
        """
        return {k: float(np.std(v)) or 1.0 for k, v in self.u.items()}

    @property
    def discrepancy_inputs(self) -> np.ndarray:
        """Log inputs in data-sds from the centre, shape ``(n_runs, n_inputs)`` (GP inputs)."""
        scale = self.distance_scale
        return np.column_stack([self.u[k] / scale[k] for k in self.u])


def check_discrepancy(discrepancy: str | None, likelihood: str = "normal") -> str | None:
    """Validate a discrepancy name (None: no discrepancy term) and return it."""
    if discrepancy is not None and discrepancy not in DISCREPANCIES:
        raise ConfigError(
            f"unknown discrepancy {discrepancy!r}. " + did_you_mean(discrepancy, DISCREPANCIES)
        )
    if discrepancy == "gp" and likelihood != "normal":
        raise ConfigError(
            "discrepancy='gp' needs the normal likelihood (a GP residual with Student-t noise "
            "has no closed-form marginal); use discrepancy='distance' with student_t"
        )
    return discrepancy


def gp_covariance(z1: Any, z2: Any, eta: Any, ell: Any, xp: Any = np) -> Any:
    r"""Squared-exponential covariance of the GP discrepancy (log loss squared).

    .. math::

        k(z, z') = \eta^2 \exp\left(-\tfrac12 \textstyle\sum_k (z_k - z'_k)^2 / \ell_k^2\right)

    ``z1`` ``(..., n, K)`` and ``z2`` ``(..., m, K)`` are standardised log inputs
    (:attr:`ModelData.discrepancy_inputs`); ``eta`` ``(...)`` and ``ell`` ``(..., K)`` broadcast
    over leading (draw) axes. Returns ``(..., n, m)``.
    """
    ell = ell[..., None, None, :]
    diff = (z1[..., :, None, :] - z2[..., None, :, :]) / ell
    return eta[..., None, None] ** 2 * xp.exp(-0.5 * (diff**2).sum(axis=-1))


def discrepancy_distance(u: Mapping[str, Any], scale: Mapping[str, float]) -> Any:
    r"""Standardised distance of points from the centre of the fitted data.

    .. math::

        d = \sqrt{\textstyle\sum_k (u_k / s_k)^2},

    with :math:`u_k = \log X_k - c_k` the centred log input and :math:`s_k` its spread over
    the fitted runs (:attr:`ModelData.distance_scale`), so ``d = 1`` is one data-sd from the
    centre along one input, whatever its unit. Works on numpy, xarray and pytensor values.
    """
    return sum((u[k] / s) ** 2 for k, s in scale.items()) ** 0.5


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
    discrepancy: str | None = None,
    run_effect: RunEffect | None = None,
) -> dict[str, Prior]:
    """Default priors of every sampled parameter of ``law``'s model, scaled to the data.

    ``sigma`` (scatter of log loss) is HalfNormal(0.1): run-to-run scatter on published ladders
    is 0.5-2 % (Kaplan: ~0.02), and 10 % would be an unusually bad ladder. ``nu`` (Student-t
    degrees of freedom) is Gamma(2, 0.1), the Juarez & Steel (2010) default.

    A partially pooled latent ``z`` is replaced by its population location and scale
    (``mu_z``, ``tau_z``; ``mu_log_z``, ``tau_log_z`` when pooled on the log scale), see
    :func:`bayescale.model.pooling.population_priors`. Transfer offsets get Normal(0, 0.5) in log
    loss: a factor of 1.6 either way is a generous range for the gap between eval sets.
    ``kappa`` (distance discrepancy) is :data:`KAPPA_PRIOR`, ``eta`` and ``ell_<input>`` (GP
    discrepancy) :data:`ETA_PRIOR` and :data:`LENGTHSCALE_PRIOR`; ``tau_run`` (with per-run
    offsets) is :data:`TAU_RUN_PRIOR` and ``ell_run`` (AR(1) residual) :data:`ELL_RUN_PRIOR`.
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
    if discrepancy == "distance":
        priors["kappa"] = KAPPA_PRIOR
    elif discrepancy == "gp":
        priors["eta"] = ETA_PRIOR
        priors |= {f"ell_{k}": LENGTHSCALE_PRIOR for k in law.inputs}
    if run_effect is not None:
        priors["tau_run"] = TAU_RUN_PRIOR
        if run_effect.ar1:  # sigma is then drift_run * sqrt(ell_run / 2), see _ar1_sigma
            del priors["sigma"]
            priors["drift_run"], priors["ell_run"] = DRIFT_RUN_PRIOR, ELL_RUN_PRIOR
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
        # The dim name is part of the graph: variables carry it as a dimension.
        structure = (pooling.dim, len(pooling.labels), tuple(sorted(pooling.modes.items())))
    offsets = None if data.offsets is None else (data.offsets.dim, len(data.offsets.labels))
    dists = tuple(sorted((k, p.dist) for k, p in priors.items()))
    key: tuple[Any, ...] = (
        law.name,
        dists,
        likelihood,
        data.n_runs,
        structure,
        offsets,
        data.discrepancy,
    )
    if data.run_effect is not None:
        key += ((data.run_effect.dim, len(data.run_effect.labels), data.run_effect.ar1),)
    return key


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
        values |= {
            f"centring_{k}": np.asarray(flags, dtype=float)
            for k, flags in data.pooling.centred.items()
        }
    if data.offsets is not None:
        values["offset_index"] = data.offsets.index
    if data.discrepancy == "distance":
        values["discrepancy_distance"] = discrepancy_distance(data.u, data.distance_scale)
    elif data.discrepancy == "gp":
        values["discrepancy_inputs"] = data.discrepancy_inputs
    if data.run_effect is not None:
        values["run_effect_index"] = data.run_effect.index
        values["run_effect_centring"] = np.asarray(float(all(data.run_effect.centred)))
        values["run_effect_projector"] = data.run_effect.projection
        if data.run_effect.ar1:
            values["run_ar_previous"] = data.run_effect.previous
            values["run_ar_gap"] = data.run_effect.gap
            assert data.run_effect.first is not None  # from_labels sets it with ar1
            values["run_ar_first"] = data.run_effect.first.astype(float)
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
    # pymc and pytensor are imported where used (~0.7 s): the model's data, priors and
    # discrepancy helpers serve the exact and least-squares fits and predictions without them
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
    if data.run_effect is not None:
        coords[data.run_effect.dim] = list(data.run_effect.labels)
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
            assert pooling is not None  # every latent is pooled without a Pooling
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
        if data.run_effect is not None:
            mu = mu + _run_offsets(rv, data.run_effect)
        if data.run_effect is not None and data.run_effect.ar1:
            sigma = _ar1_sigma(rv)
        else:
            sigma = rv("sigma")
        if data.discrepancy == "gp":
            z = pm.Data("discrepancy_inputs", data.discrepancy_inputs)
            ell = pt.stack([rv(f"ell_{k}") for k in law.inputs])
            cov = gp_covariance(z, z, rv("eta"), ell, pt)
            cov = cov + (sigma**2 + GP_JITTER) * pt.eye(data.n_runs)
            pm.MvNormal("log_loss", mu=mu, cov=cov, observed=observed, dims=RUN)
            return model
        if data.discrepancy == "distance":
            dist = pm.Data(
                "discrepancy_distance",
                discrepancy_distance(data.u, data.distance_scale),
                dims=RUN,
            )
            sigma = pt.sqrt(sigma**2 + (rv("kappa") * dist) ** 2)
        if data.run_effect is not None and data.run_effect.ar1:
            mu, sigma = _ar1_conditional(rv, data.run_effect, mu, sigma, observed)
        if likelihood == "normal":
            pm.Normal("log_loss", mu=mu, sigma=sigma, observed=observed, dims=RUN)
        else:
            pm.StudentT("log_loss", nu=rv("nu"), mu=mu, sigma=sigma, observed=observed, dims=RUN)
    return model


def _run_offsets(rv: Any, effect: RunEffect) -> Any:
    """Per-row offset in log loss: the random offset of the row's run, scale ``tau_run``.

    The free offsets are projected (:attr:`RunEffect.projection`, by default onto zero sum),
    so the law is that of the average run: left free, the offsets' mean trades off against
    the law's level along a ridge of width ``tau_run/sqrt(runs)``, which cut the effective
    sample size tenfold on the Gemstones curves. A new run's offset then has variance
    ``tau_run^2 (1 + 1/runs)``. (Projecting out the offsets' trend in log N as well removes
    their correlation with ``alpha_N``, but forces the law to carry differences between model
    shapes at one N and made extrapolated runs worse on the Gemstones curves, 0.3-1.4 %
    errors instead of 0.1-0.6 %.)

    Centred or non-centred by the data flag ``run_effect_centring`` (as
    :func:`_partially_pooled`): centred when every run's points pin its offset down, so the
    funnel between ``tau_run`` and the offsets does not appear when ``tau_run`` is small.
    """
    import pymc as pm
    import pytensor.tensor as pt

    dim = effect.dim
    w = pm.Data("run_effect_centring", float(all(effect.centred)))
    projector = pm.Data("run_effect_projector", effect.projection)
    tau = rv("tau_run")
    free = pm.Normal("run_offset_free", mu=0.0, sigma=tau**w, dims=dim)
    offset = pm.Deterministic("run_offset", tau ** (1.0 - w) * pt.dot(projector, free), dims=dim)
    return offset[pm.Data("run_effect_index", effect.index, dims=RUN)]


def _ar1_sigma(rv: Any) -> Any:
    """Stationary sd of the AR(1) residual from its innovation scale and correlation length.

    For gaps much shorter than ``ell_run`` the data measure the innovation variance per unit
    log step, ``2 sigma^2 / ell_run``, not ``sigma`` and ``ell_run`` apart; sampling
    ``drift_run = sigma sqrt(2 / ell_run)`` and ``ell_run`` instead of ``sigma`` and ``ell_run``
    removes that ridge (on the Gemstones curves it raised the ESS of both ~5x).
    """
    import pymc as pm
    import pytensor.tensor as pt

    return pm.Deterministic("sigma", rv("drift_run") * pt.sqrt(rv("ell_run") / 2.0))


def _ar1_conditional(rv: Any, effect: RunEffect, mu: Any, sigma: Any, observed: Any) -> Any:
    """Mean and sd of each row's log loss given the run's previous row (AR(1) residual).

    The joint density of a run's rows is the product of these conditionals, so the observed
    variable stays a plain Normal (or Student-t) and needs no covariance matrix.
    """
    import pymc as pm
    import pytensor.tensor as pt

    previous = pm.Data("run_ar_previous", effect.previous, dims=RUN)
    gap = pm.Data("run_ar_gap", effect.gap, dims=RUN)
    assert effect.first is not None  # from_labels sets it with ar1
    later = 1.0 - pm.Data("run_ar_first", effect.first.astype(float), dims=RUN)
    ell = pm.modelcontext(None)["ell_run"]
    rho = pt.exp(-gap / ell)
    conditional_mu = mu + later * rho * (observed[previous] - mu[previous])
    return conditional_mu, sigma * pt.sqrt(-pt.expm1(-2.0 * gap / ell))


def _partially_pooled(name: str, priors: Mapping[str, Prior], rv: Any, pooling: Pooling) -> Any:
    """Group values of a partially pooled latent, centred or non-centred per group.

    ``centring_<name>`` (data: 1 centred, 0 non-centred per group) selects the form of each
    group, see :mod:`bayescale.model.pooling`; being data, it never changes the compiled graph.
    """
    import pymc as pm
    import pytensor.tensor as pt

    stem = f"log_{name}" if pooling.pooled_on_log_scale(name, priors) else name
    mu, tau = rv(f"mu_{stem}"), rv(f"tau_{stem}")
    dim = pooling.dim
    w = pm.Data(f"centring_{name}", np.asarray(pooling.centred[name], dtype=float), dims=dim)
    free = pm.Normal(f"{stem}_free", mu=w * mu, sigma=tau**w, dims=dim)
    h = mu + tau ** (1.0 - w) * (free - w * mu)
    if stem == name:
        return pm.Deterministic(name, h, dims=dim)
    pm.Deterministic(f"mu_{name}", pt.exp(mu))  # population geometric mean
    return pm.Deterministic(name, pt.exp(h), dims=dim)


def _dims(value: Any, group_dim: str | None) -> str | None:
    """Return the group dim for quantities that vary by group, None for scalars."""
    return group_dim if group_dim is not None and getattr(value, "ndim", 0) == 1 else None
