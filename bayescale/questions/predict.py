r"""Posterior predictions of a fitted law at new inputs: bands, P(loss < target), extrapolation.

For each posterior draw :math:`s` and new point :math:`x` (inputs in canonical units),

.. math::

    \log \hat L_s(x) &= \log f(x; \theta_s) + \text{offset}_s
        &&\text{(the law's curve)}\\
    \log L^{\text{exp}}_s(x) &= \log \hat L_s(x) + m_s(x) + s_s(x)\, z_s
        &&\text{(expected loss: curve plus model discrepancy)}\\
    \log L^{\text{obs}}_s(x) &= \log L^{\text{exp}}_s(x) + \sigma_s\, \varepsilon_s
        &&\text{(observed loss of one run)}

with :math:`z_s \sim \mathcal{N}(0, 1)` and :math:`\varepsilon_s` standard Normal (Student-t
with :math:`\nu_s` degrees of freedom for ``student_t`` fits). :math:`m_s, s_s` are the mean
and sd of the fit's discrepancy term at :math:`x` (see :func:`discrepancy`): for
``discrepancy="gp"`` the Gaussian process conditioned on the fitted runs' residuals, for
``"distance"`` zero and :math:`\kappa_s d(x)`. Fits without a discrepancy term have
:math:`m = s = 0`: the expected loss is the law's curve and its band is purely epistemic
(parameter uncertainty). The observed band adds the run-to-run scatter and is what a single new
training run should fall in.

Nothing is stored in the fit: predictions are computed on demand from its posterior draws.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import xarray as xr

from bayescale.core.checks import check_prob
from bayescale.core.dims import POINT, SAMPLE_DIMS
from bayescale.core.errors import ConfigError, did_you_mean
from bayescale.core.mixture import mixture_cdf, mixture_hdi, mixture_mean, mixture_quantile
from bayescale.fitting.quality import residuals, run_log_loss
from bayescale.laws.base import law_points
from bayescale.model.build import GP_JITTER, discrepancy_distance, gp_covariance
from bayescale.runs.table import group_labels

if TYPE_CHECKING:
    import pandas as pd

    from bayescale.fitting.result import Fit

__all__ = ["Prediction", "discrepancy", "extrapolation", "predict", "residuals", "run_log_loss"]

#: Dimension of the summary that separates the expected and the observed loss.
QUANTITY = "quantity"
#: Dimension of :meth:`Prediction.p_below` when several target losses are given.
TARGET = "target"
_KINDS = ("expected", "observed")


@dataclass(frozen=True)
class Prediction:
    """Posterior predictive draws of the loss at new points.

    Attributes
    ----------
    law : str
        Name of the fitted law.
    inputs : dict of str to ndarray
        Inputs of each point in canonical units (``N`` parameters, ``D`` tokens, ``C`` FLOPs).
    curve : xarray.DataArray
        The law's loss at each point (nats/token), dims ``(chain, draw, point)``: parameter
        uncertainty only.
    expected : xarray.DataArray
        Expected loss (nats/token): the curve plus the model-discrepancy draw where the fit has
        a discrepancy term (then identical to ``curve`` without one). Dims as ``curve``.
    observed : xarray.DataArray
        Loss of one new run (nats/token): ``expected`` plus the fit's run-to-run noise.
    noise : xarray.Dataset
        Per draw, on log loss: ``sigma`` (chain, draw); ``discrepancy_mean`` and
        ``discrepancy_sd`` (chain, draw, point; zero without a discrepancy term), the
        discrepancy's conditional distribution at each point; ``nu`` for Student-t fits.
    extrapolation : xarray.Dataset
        Per input, decades beyond the fitted range at each point: positive above the largest
        fitted value, negative below the smallest, 0 inside (dims ``point``).
    prob : float
        Probability of the highest-density intervals.
    target_loss : float, optional
        Target loss (nats/token) reported by :meth:`to_dict`.
    group, offset : str, optional
        Group label (``"new"`` for a new group) and offset level predicted for.
    """

    law: str
    inputs: dict[str, np.ndarray]
    curve: xr.DataArray
    expected: xr.DataArray
    observed: xr.DataArray
    noise: xr.Dataset
    extrapolation: xr.Dataset
    prob: float = 0.94
    target_loss: float | None = None
    group: str | None = None
    offset: str | None = None

    @property
    def n_points(self) -> int:
        """Number of prediction points."""
        return int(self.expected.sizes[POINT])

    def summary(self, *, prob: float | None = None) -> xr.Dataset:
        """Mean, median and HDI of the expected and the observed loss at each point.

        Parameters
        ----------
        prob : float, optional
            HDI probability (default: :attr:`prob`).

        Returns
        -------
        xarray.Dataset
            ``mean`` and ``median`` (dims ``quantity``, ``point``) and ``hdi`` (dims
            ``quantity``, ``point``, ``ci_bound`` = lower/upper; attrs ``ci_kind``,
            ``ci_prob``), with ``quantity`` = expected/observed; nats/token. The inputs and the
            extrapolation distances (``extrapolation_<input>``, decades) are ``point`` coords.
        """
        # arviz_stats and scipy are imported where used (arviz_stats ~1 s): a prediction's
        # draws need neither; its summaries and densities do
        import arviz_stats as azs

        prob = self.prob if prob is None else check_prob(prob)
        expected = self.expected
        with np.errstate(invalid="ignore", divide="ignore"):
            hdi = azs.hdi(expected, prob=prob, dim=list(SAMPLE_DIMS))
        # The observed loss: exact in the noise, see observed_hdi.
        loc, scale, df = self._observed_components()
        # A Student-t mixture has no finite mean: the draws' mean stands in for it.
        mean = self.observed.mean(SAMPLE_DIMS) if df is not None else mixture_mean(loc, scale)
        stats = {
            "mean": expected.mean(SAMPLE_DIMS),
            "median": expected.median(SAMPLE_DIMS),
            "hdi": hdi.transpose(POINT, "ci_bound"),
        }
        observed = {
            "mean": np.asarray(mean),
            "median": np.exp(mixture_quantile(0.5, loc, scale, df)),
            "hdi": mixture_hdi(loc, scale, prob, df),  # observed_hdi's numbers, components reused
        }
        kinds = xr.DataArray(list(_KINDS), dims=QUANTITY)
        out = xr.Dataset(
            {
                name: xr.concat(
                    [value.drop_attrs(), value.drop_attrs().copy(data=observed[name])],
                    dim=kinds,
                )
                for name, value in stats.items()
            }
        )
        out["hdi"] = out["hdi"].assign_attrs(ci_kind="hdi", ci_prob=prob)
        extra = {f"extrapolation_{k}": (POINT, v.values) for k, v in self.extrapolation.items()}
        for name in out.data_vars:
            out[name].attrs["units"] = "nats/token"
        return out.assign_coords(extra).assign_attrs(ci_kind="hdi", ci_prob=prob, law=self.law)

    def observed_hdi(self, prob: float | None = None) -> xr.DataArray:
        """HDI of the loss of one new run at each point (nats/token), exact in the noise.

        The observed loss is summarised from the mixture over posterior draws with the
        run-to-run noise integrated out (:mod:`bayescale.core.mixture`), not from one noise
        draw per posterior draw, whose Monte Carlo error moved the band's edge enough to change
        a held-out run's interval score threefold between seeds of one fit.

        Parameters
        ----------
        prob : float, optional
            HDI probability (default: :attr:`prob`).

        Returns
        -------
        xarray.DataArray
            Dims ``(point, ci_bound)``, ``ci_bound`` = lower/upper; the inputs as coords.
        """
        prob = self.prob if prob is None else check_prob(prob)
        loc, scale, df = self._observed_components()
        bounds = mixture_hdi(loc, scale, prob, df)
        coords = {k: (POINT, v) for k, v in self.inputs.items()}
        return xr.DataArray(
            bounds, dims=(POINT, "ci_bound"), coords={**coords, "ci_bound": ["lower", "upper"]}
        ).assign_attrs(units="nats/token", ci_kind="hdi", ci_prob=prob)

    def p_below(self, target: Any, *, kind: str = "expected") -> xr.DataArray:
        """Posterior probability that the loss is below ``target``.

        For the expected loss, the fraction of posterior draws below; for the observed loss,
        the mean over draws of the probability that a new run's noise lands below (exact in
        the noise, as :meth:`observed_hdi`).

        Parameters
        ----------
        target : float or array-like
            Target loss(es) in nats/token, positive.
        kind : {"expected", "observed"}
            Probability for the expected loss, or for the loss of one new run (wider).

        Returns
        -------
        xarray.DataArray
            Dims ``(point,)`` for a scalar target, ``(target, point)`` for several.
        """
        draws = self._draws(kind)
        values = np.asarray(target, dtype=float)
        if values.size == 0 or not np.all(np.isfinite(values) & (values > 0)):
            raise ConfigError(f"target loss must be positive and finite, got {target!r}")
        targets = xr.DataArray(values.ravel(), dims=TARGET, coords={TARGET: values.ravel()})
        if kind == "observed":
            # Exact in the run-to-run noise (see summary): a mean of component CDFs.
            loc, scale, df = self._observed_components()
            rows = [mixture_cdf(np.log(t), loc, scale, df) for t in values.ravel()]
            below = xr.DataArray(np.array(rows), dims=(TARGET, POINT), coords=targets.coords)
            below = below.assign_coords(draws[POINT].coords)
        else:
            below = (draws < targets).mean(SAMPLE_DIMS).transpose(TARGET, POINT)
        if values.ndim == 0:
            below = below.isel({TARGET: 0}, drop=True)
        return below.drop_attrs(deep=False).assign_attrs(kind=kind)

    def log_density(self, loss: Any) -> np.ndarray:
        """Log posterior predictive density of observed losses, one per point (per nat/token).

        The density of :attr:`observed` at ``loss`` (nats/token, one value per point), averaged
        over posterior draws: for a Normal likelihood the discrepancy is integrated exactly
        (log loss Normal with sd ``sqrt(sigma^2 + discrepancy_sd^2)``); for Student-t the
        discrepancy draws are averaged over. Includes the Jacobian of the log, so it is a
        density on the loss scale (the log score of Gneiting & Raftery 2007).
        """
        from scipy import stats
        from scipy.special import logsumexp

        y = np.broadcast_to(np.asarray(loss, dtype=float), (self.n_points,))
        if not np.all(np.isfinite(y) & (y > 0)):
            raise ConfigError(f"losses must be positive and finite, got {loss!r}")
        log_y = np.log(y)
        loc, scale, df = self._observed_components()
        if df is not None:
            logp = stats.t.logpdf(log_y, df=df, loc=loc, scale=scale)
        else:
            logp = stats.norm.logpdf(log_y, loc=loc, scale=scale)
        return logsumexp(logp, axis=0) - np.log(logp.shape[0]) - log_y

    def _observed_components(self) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Location, scale and Student-t df per draw of the observed log loss, a mixture.

        Arrays shaped ``(sample, point)``. For a Normal likelihood the discrepancy is
        integrated exactly (sd ``sqrt(sigma^2 + discrepancy_sd^2)``); for Student-t each
        component is centred on its discrepancy draw.
        """

        def flat(values: xr.DataArray) -> np.ndarray:
            # sigma is per draw, or per draw and point (learning curves' run offsets).
            return (
                values.broadcast_like(self.curve)
                .transpose(*self.curve.dims)
                .values.reshape(-1, self.n_points)
            )

        sigma = flat(self.noise["sigma"])
        if "nu" in self.noise:
            loc = np.log(self.expected.values).reshape(-1, self.n_points)
            return loc, sigma, flat(self.noise["nu"])
        curve = np.log(self.curve.values) + self.noise["discrepancy_mean"].values
        loc = curve.reshape(-1, self.n_points)
        disc_sd = self.noise["discrepancy_sd"].values.reshape(-1, self.n_points)
        return loc, np.sqrt(sigma**2 + disc_sd**2), None

    def to_dict(self, *, prob: float | None = None) -> dict[str, Any]:
        """JSON-ready summary: ``{"law", "prob", "group", "offset", "target_loss", "points"}``.

        Each point has its inputs, ``loss_mean``, ``loss_median``, ``loss_lo``, ``loss_hi``
        (expected loss), ``observed_mean``, ``observed_lo``, ``observed_hi`` (one new run),
        ``extrapolation`` (decades per input) and, with a target loss, ``p_below_target``
        (expected loss) and ``p_below_target_observed``.
        """
        s = self.summary(prob=prob)
        below = below_obs = None
        if self.target_loss is not None:
            below = self.p_below(self.target_loss).values
            below_obs = self.p_below(self.target_loss, kind="observed").values
        exp, obs = s.sel({QUANTITY: "expected"}), s.sel({QUANTITY: "observed"})
        points = []
        for j in range(self.n_points):
            row: dict[str, Any] = {k: float(v[j]) for k, v in self.inputs.items()}
            row |= {
                "loss_mean": float(exp["mean"][j]),
                "loss_median": float(exp["median"][j]),
                "loss_lo": float(exp["hdi"][j, 0]),
                "loss_hi": float(exp["hdi"][j, 1]),
                "observed_mean": float(obs["mean"][j]),
                "observed_lo": float(obs["hdi"][j, 0]),
                "observed_hi": float(obs["hdi"][j, 1]),
                "extrapolation": {k: float(v[j]) for k, v in self.extrapolation.items()},
            }
            if below is not None and below_obs is not None:
                row["p_below_target"] = float(below[j])
                row["p_below_target_observed"] = float(below_obs[j])
            points.append(row)
        return {
            "law": self.law,
            "prob": s.attrs["ci_prob"],
            "group": self.group,
            "offset": self.offset,
            "target_loss": self.target_loss,
            "points": points,
        }

    def _draws(self, kind: str) -> xr.DataArray:
        if kind not in _KINDS:
            raise ConfigError(f"unknown kind {kind!r}. " + did_you_mean(kind, list(_KINDS)))
        return self.expected if kind == "expected" else self.observed


def predict(
    fit: Fit,
    inputs: Mapping[str, Any] | pd.DataFrame,
    *,
    group: str | None = None,
    new_group: bool = False,
    offset: str | None = None,
    prob: float = 0.94,
    target_loss: float | None = None,
    seed: int = 0,
) -> Prediction:
    r"""Posterior predictive loss of a fitted law at new inputs.

    Parameters
    ----------
    fit : Fit
        A fitted law (:func:`bayescale.fit` or :func:`bayescale.load_fit`).
    inputs : mapping or DataFrame
        The law's inputs in canonical units (``N`` parameters, ``D`` tokens, ``C`` FLOPs):
        scalars or arrays, broadcast together into points, or a table with one row per point.
        Extra table columns are ignored; in a mapping they are an error.
    group : str, optional
        Group label of a hierarchical fit to predict for.
    new_group : bool
        Predict for a group not in the data: its parameters are drawn from the population, so
        the band carries the between-group spread.
    offset : str, optional
        Level of the fit's offset column (default: the reference level).
    prob : float, default 0.94
        Probability of the highest-density intervals.
    target_loss : float, optional
        Target loss (nats/token) whose probability :meth:`Prediction.to_dict` reports.
    seed : int
        Seed of the new-group, discrepancy and noise draws.

    Returns
    -------
    Prediction
        Draws of the curve, the expected and the observed loss, dims ``(chain, draw,
        point)``, and the extrapolation distance of each point.

    Raises
    ------
    ConfigError
        For a missing or non-positive input, a bad ``prob`` or ``target_loss``, or a group
        request the fit cannot serve.
    UnknownNameError
        For an input the law does not take, or a group or offset level not in the fit.

    Examples
    --------
    >>> import bayescale as bs
    >>> f = bs.fit("kaplan_ladder", "kaplan_nd", draws=300, tune=300)  # doctest: +SKIP
    >>> p = predict(f, {"N": [1e10, 1e11], "D": 2e11}, target_loss=2.5)  # doctest: +SKIP
    >>> p.summary()["hdi"].sel(quantity="observed")  # doctest: +SKIP
    """
    check_prob(prob)
    if target_loss is not None and not (np.isfinite(target_loss) and target_loss > 0):
        raise ConfigError(f"target loss must be positive and finite, got {target_loss}")
    points = law_points(fit.law, inputs)
    log_curve = fit.expected_log_loss(
        points, group=group, new_group=new_group, offset=offset, seed=seed
    )
    coords = {k: (POINT, v) for k, v in points.items()}
    log_curve = log_curve.assign_coords(coords)
    post = fit.posterior
    rng = np.random.default_rng([seed, 1])  # a stream apart from the new-group draws
    sigma = post["sigma"]
    if "tau_run" in post:
        # Learning-curve fits (bayescale.questions.curves): a new run also draws its own offset,
        # whose variance includes that of the runs' average (the fitted offsets sum to zero).
        n_runs = len(fit.meta["run_effect"]["labels"])
        # numpy's stubs type a ufunc of a DataArray as an ndarray (here and below).
        sigma = cast("xr.DataArray", np.sqrt(sigma**2 + post["tau_run"] ** 2 * (1 + 1 / n_runs)))
    disc_mean, disc_sd = discrepancy(fit, points)
    dims = log_curve.dims
    log_expected = (
        log_curve
        + disc_mean
        + disc_sd * xr.DataArray(rng.standard_normal(log_curve.shape), dims=dims)
    )
    if "nu" in post:
        eps = rng.standard_t(post["nu"].values[..., None], size=log_curve.shape)
    else:
        eps = rng.standard_normal(log_curve.shape)
    log_observed = log_expected + sigma * xr.DataArray(eps, dims=dims)
    noise = xr.Dataset(
        {
            "sigma": sigma,
            "discrepancy_mean": disc_mean.assign_coords(coords),
            "discrepancy_sd": disc_sd.assign_coords(coords),
        }
    )
    if "nu" in post:
        noise["nu"] = post["nu"]
    units = {"units": "nats/token"}
    curve = cast("xr.DataArray", np.exp(log_curve))
    expected = cast("xr.DataArray", np.exp(log_expected))
    observed = cast("xr.DataArray", np.exp(log_observed.transpose(*SAMPLE_DIMS, POINT)))
    return Prediction(
        law=fit.law.name,
        inputs=points,
        curve=curve.assign_attrs(units),
        expected=expected.assign_attrs(units),
        observed=observed.assign_attrs(units),
        noise=noise,
        extrapolation=extrapolation(fit, points, group=group),
        prob=prob,
        target_loss=None if target_loss is None else float(target_loss),
        group="new" if new_group else group,
        offset=offset,
    )


def extrapolation(fit: Fit, inputs: Mapping[str, Any], *, group: str | None = None) -> xr.Dataset:
    """Decades beyond the fitted range of each input, per point.

    Parameters
    ----------
    fit : Fit
        The fit whose runs define the range.
    inputs : mapping
        Arrays of the law's inputs (canonical units), one value per point.
    group : str, optional
        Measure against the range of this group's runs (its parameters rest on them); default
        all runs.

    Returns
    -------
    xarray.Dataset
        One variable per input (dims ``point``, units decades): ``log10(x / max)`` above the
        largest fitted value, ``log10(x / min)`` (negative) below the smallest, 0 inside.
    """
    runs = fit.runs
    if group is not None and fit.pooling is not None:
        runs = runs.isel(run=group_labels(runs, fit.meta["groups"]) == group)
    out = {}
    for k in fit.law.inputs:
        x = np.log10(np.asarray(inputs[k], dtype=float))
        fitted = np.log10(np.asarray(runs[k].values, dtype=float))
        lo, hi = fitted.min(), fitted.max()
        out[k] = xr.DataArray(
            np.where(x > hi, x - hi, np.where(x < lo, x - lo, 0.0)),
            dims=POINT,
            attrs={"units": "decades"},
        )
    return xr.Dataset(out)


def discrepancy(fit: Fit, inputs: Mapping[str, Any]) -> tuple[xr.DataArray, xr.DataArray]:
    r"""Mean and sd of the fit's model discrepancy (log loss) at new points, per draw.

    ``"distance"``: mean 0, sd :math:`\kappa\, d(x)`. ``"gp"``: the GP conditioned on the
    fitted runs' residuals :math:`r = \log L - \log f(x; \theta)` for each draw,

    .. math::

        m(x) = k_x^\top (K + \sigma^2 I)^{-1} r, \qquad
        s^2(x) = \eta^2 - k_x^\top (K + \sigma^2 I)^{-1} k_x,

    so near the runs the structured misfit they show is carried over, and far from them the
    sd returns to ``eta``. Without a discrepancy term both are zero.

    Returns
    -------
    tuple of xarray.DataArray
        ``(mean, sd)``, dims ``(chain, draw, point)``.
    """
    post = fit.posterior
    shape = (post.sizes["chain"], post.sizes["draw"])
    n_points = len(next(iter(inputs.values())))
    coords = {"chain": post["chain"], "draw": post["draw"]}
    dims = (*SAMPLE_DIMS, POINT)
    kind = fit.settings.get("discrepancy")
    mean = np.zeros((*shape, n_points))
    sd = np.zeros((*shape, n_points))
    if kind is not None:
        centre, scale = fit.data_summary.centre, fit.settings["discrepancy_scale"]
        z_new = {k: (np.log(np.asarray(inputs[k], dtype=float)) - centre[k]) for k in scale}
    if kind == "distance":
        distance = discrepancy_distance(z_new, scale)
        sd = post["kappa"].values[..., None] * distance
    elif kind == "gp":
        mean, sd = _gp_conditional(fit, np.column_stack([z_new[k] / scale[k] for k in scale]))
    return xr.DataArray(mean, dims=dims, coords=coords), xr.DataArray(sd, dims=dims, coords=coords)


def _gp_conditional(fit: Fit, z_new: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """GP discrepancy mean and sd at standardised inputs ``z_new`` (points, K), per draw."""
    post = fit.posterior
    law = fit.law
    centre, scale = fit.data_summary.centre, fit.settings["discrepancy_scale"]
    runs = fit.runs
    z_runs = np.column_stack(
        [(np.log(np.asarray(runs[k].values, dtype=float)) - centre[k]) / scale[k] for k in scale]
    )
    shape = (post.sizes["chain"], post.sizes["draw"])
    residual = np.log(np.asarray(runs["loss"].values, dtype=float)) - run_log_loss(fit).values
    residual = residual.reshape(-1, z_runs.shape[0])
    eta = post["eta"].values.ravel()
    ell = np.column_stack([post[f"ell_{k}"].values.ravel() for k in law.inputs])
    noise = post["sigma"].values.ravel() ** 2 + GP_JITTER
    n = z_runs.shape[0]
    mean = np.empty((eta.size, z_new.shape[0]))
    var = np.empty_like(mean)
    # Chunks of draws bound the memory of the (draws, runs, runs) covariance stack.
    step = max(1, 2**22 // max(n * n, n * z_new.shape[0]))
    for lo in range(0, eta.size, step):
        sl = slice(lo, lo + step)
        k_runs = gp_covariance(z_runs, z_runs, eta[sl], ell[sl])
        k_runs = k_runs + noise[sl, None, None] * np.eye(n)
        k_cross = gp_covariance(z_runs, z_new, eta[sl], ell[sl])
        chol = np.linalg.cholesky(k_runs)
        v = np.linalg.solve(chol, k_cross)
        w = np.linalg.solve(chol, residual[sl, :, None])
        mean[sl] = (v * w).sum(axis=-2)
        var[sl] = eta[sl, None] ** 2 - (v**2).sum(axis=-2)
    sd = np.sqrt(np.clip(var, 0.0, None))
    return mean.reshape(*shape, -1), sd.reshape(*shape, -1)


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------
