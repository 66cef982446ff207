r"""How well a fitted law matches its own runs: residuals, and lack of fit against replicates.

**Lack of fit.** Where runs are repeated at the same inputs (reruns with another seed), their
scatter measures pure noise. The classical lack-of-fit F test compares the residual scatter
around the fitted curve with it:

.. math::

    F = \frac{(SS_{\text{res}} - SS_{\text{pe}})/(m - p)}{SS_{\text{pe}}/(n - m)},

with :math:`SS_{\text{pe}}` the within-replicate sum of squares of log loss, :math:`m` the number
of distinct input points, :math:`n` runs and :math:`p` fitted law parameters. A large F (tiny
p-value) says the law misses the runs by more than their noise: bands that rest on the noise
alone will be too narrow when extrapolating, which is what a discrepancy term
(``fit(..., discrepancy="distance")``) is for.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import pandas as pd
import xarray as xr

from bayescale.core.dims import SAMPLE_DIMS
from bayescale.runs.table import group_labels

if TYPE_CHECKING:
    from bayescale.fitting.result import Fit

__all__ = ["LACK_OF_FIT_ALPHA", "LackOfFit", "lack_of_fit", "residuals", "run_log_loss"]

#: p-value of the lack-of-fit F test below which a fit is reported as not fitting its runs.
LACK_OF_FIT_ALPHA = 0.01


def run_log_loss(fit: Fit) -> xr.DataArray:
    """Return the law's log loss at each fitted run, with the run's own group and offset level.

    Returns
    -------
    xarray.DataArray
        Natural log of the loss (nats/token), dims ``(chain, draw, run)``.
    """
    runs = fit.runs
    n = fit.n_runs
    groups: np.ndarray = np.full(n, None, dtype=object)
    if fit.pooling is not None:
        groups = group_labels(runs, fit.meta["groups"]).astype(object)
    spec = fit.meta.get("offsets")
    levels: np.ndarray = np.full(n, None, dtype=object)
    if spec:
        levels = np.asarray(runs[spec["dim"]].values, dtype=str).astype(object)
        # The reference level is offset 0, which is what offset=None predicts.
        levels[levels == spec["labels"][0]] = None
    inputs = {k: np.asarray(runs[k].values, dtype=float) for k in fit.law.inputs}
    post = fit.posterior
    out = np.empty((post.sizes["chain"], post.sizes["draw"], n))
    for key in dict.fromkeys(zip(groups, levels, strict=True)):
        rows = np.flatnonzero([(g, o) == key for g, o in zip(groups, levels, strict=True)])
        sub = {k: v[rows] for k, v in inputs.items()}
        out[..., rows] = fit.expected_log_loss(sub, group=key[0], offset=key[1]).values
    return xr.DataArray(
        out,
        dims=(*SAMPLE_DIMS, "run"),
        coords={"chain": post["chain"], "draw": post["draw"], "run": runs["run"]},
    )


def residuals(fit: Fit) -> xr.DataArray:
    """Observed minus posterior-mean fitted log loss of each run (relative residual).

    Returns
    -------
    xarray.DataArray
        Dims ``run``; 0.01 means the run's loss is 1 % above the fitted curve.
    """
    observed = np.log(np.asarray(fit.runs["loss"].values, dtype=float))
    fitted = run_log_loss(fit).mean(SAMPLE_DIMS)
    # numpy's stubs type ndarray - DataArray as an ndarray; xarray makes it a DataArray.
    residual = cast("xr.DataArray", observed - fitted)
    return residual.assign_attrs(units="log loss (relative)")


@dataclass(frozen=True)
class LackOfFit:
    """Residual scatter against replicate scatter (all on log loss, i.e. relative).

    Attributes
    ----------
    n_runs, n_points : int
        Runs, and distinct input points (with their group and offset labels).
    n_params : int
        Law parameters counted in the residual degrees of freedom (for hierarchical fits,
        every per-group value counts: an upper bound under partial pooling).
    residual_sd : float
        Root mean square of the residuals around the posterior-mean curve, per residual
        degree of freedom.
    replicate_sd : float or None
        Pooled sd of log loss within replicate sets (None without replicates).
    n_replicate_sets : int
        Input points with more than one run.
    ratio : float or None
        ``residual_sd / replicate_sd``.
    f_statistic, p_value : float or None
        Lack-of-fit F test (None without replicates or without spare degrees of freedom).
    """

    n_runs: int
    n_points: int
    n_params: int
    residual_sd: float
    replicate_sd: float | None
    n_replicate_sets: int
    ratio: float | None
    f_statistic: float | None
    p_value: float | None

    @property
    def lack_of_fit(self) -> bool | None:
        """True when the F test rejects a fit to the noise (p < :data:`LACK_OF_FIT_ALPHA`)."""
        return None if self.p_value is None else self.p_value < LACK_OF_FIT_ALPHA

    @property
    def message(self) -> str:
        """One sentence for people."""
        if self.replicate_sd is None:
            return (
                f"residual scatter {self.residual_sd:.2%} of the loss; no replicate runs, so "
                "lack of fit cannot be told apart from noise"
            )
        text = (
            f"residual scatter {self.residual_sd:.2%} vs replicate scatter "
            f"{self.replicate_sd:.2%} ({self.ratio:.1f}x, {self.n_replicate_sets} replicate sets)"
        )
        if self.lack_of_fit:
            return (
                text + f": the law misses the runs by more than their noise (F test p = "
                f"{self.p_value:.2g}); consider discrepancy='distance'"
            )
        return text + ": consistent with noise"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields, plus ``lack_of_fit`` and ``message``."""
        return {
            "n_runs": self.n_runs,
            "n_points": self.n_points,
            "n_params": self.n_params,
            "residual_sd": self.residual_sd,
            "replicate_sd": self.replicate_sd,
            "n_replicate_sets": self.n_replicate_sets,
            "ratio": self.ratio,
            "f_statistic": self.f_statistic,
            "p_value": self.p_value,
            "lack_of_fit": self.lack_of_fit,
            "message": self.message,
        }


def lack_of_fit(fit: Fit) -> LackOfFit:
    """Compare the residual scatter of a fit with the scatter between replicate runs.

    Replicates are runs with identical law inputs and identical group and offset labels.

    Parameters
    ----------
    fit : Fit
        A fitted law.

    Returns
    -------
    LackOfFit
        Scatter of residuals and of replicates, their ratio and the F test.
    """
    # scipy is imported where used: stored summaries and residuals need no F test
    from scipy import stats

    runs = fit.runs
    res = residuals(fit).values
    n = res.size
    point = fit.replicate_sets()
    m = int(point.max()) + 1
    log_loss = np.log(np.asarray(runs["loss"].values, dtype=float))
    set_mean = pd.Series(log_loss).groupby(point).transform("mean").to_numpy()
    ss_pe = float(np.sum((log_loss - set_mean) ** 2))
    counts = np.bincount(point)
    n_sets = int(np.sum(counts > 1))
    p = _n_params(fit)
    ss_res = float(np.sum(res**2))
    residual_sd = math.sqrt(ss_res / max(n - p, 1))
    replicate_sd = ratio = f_stat = p_value = None
    if n_sets and n > m:
        replicate_sd = math.sqrt(ss_pe / (n - m))
        ratio = residual_sd / replicate_sd if replicate_sd > 0 else math.inf
        if m > p and ss_pe > 0:
            f_stat = max(ss_res - ss_pe, 0.0) / (m - p) / (ss_pe / (n - m))
            p_value = float(stats.f.sf(f_stat, m - p, n - m))
    return LackOfFit(n, m, p, residual_sd, replicate_sd, n_sets, ratio, f_stat, p_value)


def _n_params(fit: Fit) -> int:
    """Law parameters, counting each per-group value, plus estimated offsets."""
    pooling = fit.pooling
    n_groups = 1 if pooling is None else len(pooling.labels)
    p = sum(n_groups if pooling is not None and pooling.varies(k) else 1 for k in fit.law.latents)
    offsets = fit.meta.get("offsets")
    return p + (len(offsets["labels"]) - 1 if offsets else 0)
