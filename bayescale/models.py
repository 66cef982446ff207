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
depends only on the law, the prior families, the likelihood and the number of runs, and one
compiled model serves every dataset of that shape (see :mod:`bayescale.fit`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from bayescale.errors import ConfigError, did_you_mean
from bayescale.laws import DataSummary, Law
from bayescale.priors import Prior

if TYPE_CHECKING:
    import pymc as pm

__all__ = ["LIKELIHOODS", "ModelData", "build_model", "default_priors", "graph_key"]

RUN = "run"
#: Likelihoods for the log loss. Student-t (with learned degrees of freedom) tolerates outlier
#: runs (a diverged or mis-logged run) without dragging the law.
LIKELIHOODS = ("normal", "student_t")
#: Prefix of the ``pm.Data`` holding prior hyperparameters; dropped from saved results.
HYPER_PREFIX = "prior__"


@dataclass(frozen=True)
class ModelData:
    """Numbers a model is built from: centred log inputs and the observed log loss.

    Attributes
    ----------
    u : dict of str to ndarray
        ``log(X) - centre[X]`` for each law input, shape ``(n_runs,)``.
    log_loss : ndarray
        Natural log of the observed loss (nats/token), shape ``(n_runs,)``.
    summary : DataSummary
        Centre and loss statistics used by default priors.
    """

    u: dict[str, np.ndarray]
    log_loss: np.ndarray
    summary: DataSummary

    @classmethod
    def from_arrays(
        cls, inputs: Mapping[str, Any], loss: Any, *, summary: DataSummary | None = None
    ) -> ModelData:
        """Build from raw inputs (canonical units) and losses; the centre defaults to the data's."""
        summary = summary or DataSummary.from_arrays(inputs, loss)
        u = {k: np.log(np.asarray(v, dtype=float)) - summary.centre[k] for k, v in inputs.items()}
        return cls(u=u, log_loss=np.log(np.asarray(loss, dtype=float)), summary=summary)

    @property
    def n_runs(self) -> int:
        """Number of observations."""
        return int(self.log_loss.size)


def default_priors(
    law: Law, summary: DataSummary, *, likelihood: str = "normal"
) -> dict[str, Prior]:
    """Default priors of every sampled parameter of ``law``'s model, scaled to the data.

    ``sigma`` (scatter of log loss) is HalfNormal(0.1): run-to-run scatter on published ladders
    is 0.5-2 % (Kaplan: ~0.02), and 10 % would be an unusually bad ladder. ``nu`` (Student-t
    degrees of freedom) is Gamma(2, 0.1), the Juarez & Steel (2010) default.
    """
    priors = dict(law.default_priors(summary))
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


def graph_key(law: Law, priors: Mapping[str, Prior], likelihood: str, n_runs: int) -> tuple:
    """Everything that changes the model's graph (not its data): the compile-cache key."""
    return (law.name, tuple(sorted((k, p.dist) for k, p in priors.items())), likelihood, n_runs)


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
        Centred log inputs and observed log losses.
    priors : mapping of str to Prior
        A prior for every latent of the law plus ``sigma`` (and ``nu`` for Student-t); see
        :func:`default_priors`.
    likelihood : {"normal", "student_t"}
        Likelihood of the log loss.

    Returns
    -------
    pymc.Model
        Model with latents, the papers' parameters and derived quantities as deterministics,
        and the observed variable ``log_loss``.
    """
    import pymc as pm
    import pytensor.tensor as pt

    check_likelihood(likelihood)
    needed = [*law.latents, "sigma", *(["nu"] if likelihood == "student_t" else [])]
    missing = [k for k in needed if k not in priors]
    if missing:
        raise ConfigError(f"no prior given for {', '.join(missing)} of law {law.name!r}")

    coords = {RUN: np.arange(data.n_runs)}
    with pm.Model(coords=coords) as model:
        u = {k: pm.Data(f"u_{k}", data.u[k], dims=RUN) for k in law.inputs}
        centre = {k: pm.Data(f"centre_{k}", data.summary.centre[k]) for k in law.inputs}
        observed = pm.Data("log_loss_obs", data.log_loss, dims=RUN)
        hyper = hyper_values(priors)

        def rv(name: str) -> Any:
            prior = priors[name]
            args = {
                a: pm.Data(f"{HYPER_PREFIX}{name}__{a}", hyper[f"{HYPER_PREFIX}{name}__{a}"])
                for a in prior.params
            }
            return prior.create(name, **args)

        z = {name: rv(name) for name in law.latents}
        params = law.to_params(z, centre, pt)
        for name in law.params:
            if name not in z:  # exponents are often both latent and reported
                pm.Deterministic(name, params[name])
        for name, value in law.derived(params, pt).items():
            pm.Deterministic(name, value)

        # The per-run mean is not stored: on large tables it would dominate memory. Predictions
        # recompute it from the latents on demand.
        mu = law.log_loss(z, u, pt)
        sigma = rv("sigma")
        if likelihood == "normal":
            pm.Normal("log_loss", mu=mu, sigma=sigma, observed=observed, dims=RUN)
        else:
            pm.StudentT("log_loss", nu=rv("nu"), mu=mu, sigma=sigma, observed=observed, dims=RUN)
    return model
