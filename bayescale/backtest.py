r"""Leave-largest-out backtests and the lack-of-fit check: when should a band be trusted.

**Backtest.** Fit a law on all but the ``K`` largest runs (largest by one column, e.g. ``N``
or ``C``), predict the held-out runs, and score the predictions the way they will be used:

* *coverage*: the fraction of held-out losses inside the highest-density interval of the
  observed-loss predictive (nominal: ``prob``);
* *width* of that interval (nats/token);
* the *interval score* (Gneiting & Raftery 2007, eq. 43) of the interval :math:`[l, u]` with
  :math:`\alpha = 1 - \text{prob}`,

  .. math::

      S_\alpha(l, u; y) = (u - l) + \tfrac{2}{\alpha}(l - y)\,[y < l]
      + \tfrac{2}{\alpha}(y - u)\,[y > u],

  which rewards narrow intervals and penalises misses in proportion to how far they miss
  (lower is better; on the loss scale, nats/token). It is proper for the central interval;
  the predictive distributions here are unimodal and nearly symmetric, so the HDI and the
  central interval agree to well within Monte Carlo error;
* the *log score*: log predictive density of the held-out loss (higher is better), see
  :meth:`bayescale.predict.Prediction.log_density`.

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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from bayescale.errors import ConfigError, RunsTableError

if TYPE_CHECKING:
    import pandas as pd
    import xarray as xr

    from bayescale.fitting import Fit
    from bayescale.laws import Law

__all__ = ["Backtest", "LackOfFit", "backtest", "interval_score", "lack_of_fit"]

#: p-value of the lack-of-fit F test below which a fit is reported as not fitting its runs.
LACK_OF_FIT_ALPHA = 0.01


def interval_score(lower: Any, upper: Any, y: Any, prob: float) -> np.ndarray:
    """Interval score of Gneiting & Raftery (2007) for the interval ``[lower, upper]``.

    Parameters
    ----------
    lower, upper : array-like
        Interval bounds (same unit as ``y``).
    y : array-like
        Observed values.
    prob : float
        Nominal probability of the interval (``alpha = 1 - prob``).

    Returns
    -------
    ndarray
        ``(upper - lower) + 2/alpha * (lower - y) * [y < lower] + 2/alpha * (y - upper) *
        [y > upper]``; lower is better.

    Examples
    --------
    >>> float(interval_score(1.0, 2.0, 2.5, prob=0.9))
    11.0
    """
    lower, upper, y = (np.asarray(v, dtype=float) for v in (lower, upper, y))
    alpha = 1.0 - prob
    below = np.clip(lower - y, 0.0, None)
    above = np.clip(y - upper, 0.0, None)
    return (upper - lower) + 2.0 / alpha * (below + above)


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
    import pandas as pd
    from scipy import stats

    from bayescale.predict import residuals

    runs = fit.runs
    res = residuals(fit).values
    n = res.size
    key = pd.DataFrame({k: runs[k].values for k in fit.law.inputs})
    for column in _label_columns(fit):
        key[column] = np.asarray(runs[column].values, dtype=str)
    point = key.groupby(list(key.columns), sort=False).ngroup().to_numpy()
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


@dataclass(frozen=True)
class Backtest:
    """Result of a leave-largest-out backtest.

    Attributes
    ----------
    law : str
        The law fitted.
    by : str
        Column whose largest values were held out.
    prob : float
        Probability of the predictive intervals.
    fit : Fit
        The law fitted to the kept runs.
    held_out : pandas.DataFrame
        One row per held-out run (index: its run number in the table): inputs, ``loss``
        (observed), ``loss_mean``, ``lo`` and ``hi`` (observed-loss HDI), ``inside``,
        ``width``, ``interval_score``, ``log_score``, ``extrapolation_<input>`` (decades) and
        the run's group when the fit has groups.
    lack_of_fit : LackOfFit
        Residual against replicate scatter of the fit to the kept runs.
    """

    law: str
    by: str
    prob: float
    fit: Fit
    held_out: pd.DataFrame
    lack_of_fit: LackOfFit
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def totals(self) -> dict[str, float]:
        """Coverage, mean width, mean interval score and mean log score over held-out runs."""
        h = self.held_out
        return {
            "n_held_out": len(h),
            "n_fit": self.fit.n_runs,
            "coverage": float(h["inside"].mean()),
            "mean_width": float(h["width"].mean()),
            "mean_interval_score": float(h["interval_score"].mean()),
            "mean_log_score": float(h["log_score"].mean()),
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready result: settings, ``runs`` (one dict per held-out run), ``totals``."""
        rows = []
        for index, row in self.held_out.iterrows():
            d = {"run": int(index)}
            for column, value in row.items():
                d[str(column)] = value.item() if hasattr(value, "item") else value
            rows.append(d)
        return {
            "law": self.law,
            "by": self.by,
            "holdout_top": len(self.held_out),
            "prob": self.prob,
            "discrepancy": self.fit.settings.get("discrepancy"),
            "runs": rows,
            "totals": self.totals,
            "lack_of_fit": self.lack_of_fit.to_dict(),
        }


def backtest(
    runs: Any,
    law: str | Law,
    *,
    holdout_top: int,
    by: str = "N",
    prob: float = 0.94,
    columns: Mapping[str, str] | str | None = None,
    compute_unit: str = "flops",
    derive_compute: bool = False,
    file_pattern: str | None = None,
    value_map: Mapping[str, Mapping[str, float]] | None = None,
    last_per_run: Sequence[str] | str | None = None,
    seed: int = 0,
    **fit_kwargs: Any,
) -> Backtest:
    """Fit on all but the ``holdout_top`` largest runs and score predictions of those runs.

    Parameters
    ----------
    runs : DataFrame, path, bundled dataset name or xarray.Dataset
        The runs table (see :func:`bayescale.runs.load_runs`). Replicate runs are allowed:
        they feed the lack-of-fit check.
    law : str or Law
        Law to fit.
    holdout_top : int
        Number of runs to hold out: those with the largest ``by``, ties broken by the law's
        inputs (largest first), so "the largest model, most data first".
    by : str, default "N"
        Numeric column ranking the runs (``N``, ``D``, ``C`` or any other).
    prob : float, default 0.94
        Probability of the predictive intervals scored.
    columns, compute_unit, derive_compute, file_pattern, value_map, last_per_run
        How to read the table, as in :func:`bayescale.runs.load_runs`.
    seed : int
        Seed of the fit and of the predictive draws.
    **fit_kwargs
        Passed to :func:`bayescale.fit` (``draws``, ``sampler``, ``groups``, ``offset_by``,
        ``discrepancy``...).

    Returns
    -------
    Backtest
        Per-run scores of the held-out runs, totals, and the lack-of-fit check.

    Raises
    ------
    ConfigError
        If ``holdout_top`` leaves no run to hold out or too few to fit, or ``prob`` is bad.
    RunsTableError
        If ``by`` is not a numeric column.

    Examples
    --------
    >>> result = backtest("kaplan_ladder", "kaplan_nd", holdout_top=5)  # doctest: +SKIP
    >>> result.totals["coverage"]  # doctest: +SKIP
    """
    import pandas as pd
    import xarray as xr

    from bayescale.fitting import fit as fit_law
    from bayescale.laws import get_law
    from bayescale.predict import predict
    from bayescale.runs import _columns_text, load_runs

    law = get_law(law)
    if not 0 < prob < 1:
        raise ConfigError(f"prob must be between 0 and 1 (exclusive), got {prob}")
    groups = fit_kwargs.get("groups") or ()
    group_cols = [groups] if isinstance(groups, str) else list(groups)
    offset_by = fit_kwargs.get("offset_by")
    labels = [*group_cols, *([offset_by] if offset_by else [])]
    if isinstance(runs, xr.Dataset):
        table = runs
    else:
        table = load_runs(
            runs,
            columns=columns,
            compute_unit=compute_unit,
            derive_compute=derive_compute,
            required=(*law.inputs, "loss"),
            groups=labels,
            allow_replicates=True,
            law_name=law.name,
            file_pattern=file_pattern,
            value_map=value_map,
            last_per_run=last_per_run,
        )
    n = int(table.sizes["run"])
    if by not in table.data_vars or not np.issubdtype(table[by].dtype, np.number):
        numeric = [str(v) for v in table.data_vars if _numeric(table[v])]
        raise RunsTableError(
            f"cannot rank runs by {by!r}: not a numeric column of the runs table "
            f"(numeric columns: {_columns_text(numeric)})"
        )
    if not isinstance(holdout_top, int | np.integer) or not 1 <= holdout_top < n:
        raise ConfigError(
            f"holdout_top must be a whole number from 1 to {n - 1} (the table has {n} runs), "
            f"got {holdout_top!r}"
        )
    keys = [table[k].values for k in reversed([*law.inputs]) if k != by]
    order = np.lexsort((*keys, table[by].values))[::-1]  # largest `by` first
    held = np.sort(order[:holdout_top])
    kept = np.sort(order[holdout_top:])
    result = fit_law(table.isel(run=kept), law, seed=seed, **fit_kwargs)

    test = table.isel(run=held)
    rows = []
    for position in range(holdout_top):
        one = test.isel(run=position)
        group = _run_group(result, one)
        offset = _run_offset(result, one)
        pred = predict(
            result,
            {k: float(one[k]) for k in law.inputs},
            group=group if group != "new" else None,
            new_group=group == "new",
            offset=offset,
            prob=prob,
            seed=seed + position,
        )
        y = float(one["loss"])
        summary = pred.summary().sel(quantity="observed")
        lo, hi = (float(v) for v in summary["hdi"].values[0])
        row: dict[str, Any] = {k: float(one[k]) for k in law.inputs}
        if group is not None:
            row["group"] = group
        row |= {
            "loss": y,
            "loss_mean": float(summary["mean"].values[0]),
            "lo": lo,
            "hi": hi,
            "inside": bool(lo <= y <= hi),
            "width": hi - lo,
            "interval_score": float(interval_score(lo, hi, y, prob)),
            "log_score": float(pred.log_density(y)[0]),
        }
        row |= {f"extrapolation_{k}": float(v.values[0]) for k, v in pred.extrapolation.items()}
        rows.append(row)
    held_out = pd.DataFrame(rows, index=pd.Index(test["run"].values, name="run"))
    return Backtest(
        law=law.name,
        by=by,
        prob=prob,
        fit=result,
        held_out=held_out,
        lack_of_fit=lack_of_fit(result),
        settings={"holdout_top": holdout_top, "seed": seed},
    )


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------
def _numeric(values: xr.DataArray) -> bool:
    return bool(np.issubdtype(values.dtype, np.number))


def _label_columns(fit: Fit) -> list[str]:
    """Group and offset columns: runs with different labels are not replicates."""
    offsets = fit.meta.get("offsets")
    return [*fit.meta.get("groups", []), *([offsets["dim"]] if offsets else [])]


def _n_params(fit: Fit) -> int:
    """Law parameters, counting each per-group value, plus estimated offsets."""
    pooling = fit.pooling
    n_groups = 1 if pooling is None else len(pooling.labels)
    p = sum(n_groups if pooling is not None and pooling.varies(k) else 1 for k in fit.law.latents)
    offsets = fit.meta.get("offsets")
    return p + (len(offsets["labels"]) - 1 if offsets else 0)


def _run_group(fit: Fit, run: xr.Dataset) -> str | None:
    """Group label of a held-out run: its own group if fitted, ``"new"`` if not."""
    pooling = fit.pooling
    if pooling is None:
        return None
    label = "/".join(str(run[c].values) for c in fit.meta["groups"])
    return label if label in pooling.labels else "new"


def _run_offset(fit: Fit, run: xr.Dataset) -> str | None:
    spec = fit.meta.get("offsets")
    if not spec:
        return None
    level = str(run[spec["dim"]].values)
    if level not in spec["labels"]:
        raise ConfigError(
            f"held-out run has {spec['dim']}={level!r}, a level with no kept run, so its offset "
            "is unknown; hold out fewer runs or drop offset_by"
        )
    return level
