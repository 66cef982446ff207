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
  :meth:`bayescale.questions.predict.Prediction.log_density`.

**Held-out split.** By default the ``holdout_top`` runs largest in one column are held out;
``holdout={"column": value}`` (or a boolean mask, one entry per run) holds out a split the
table ships itself, such as a benchmark's own train/test column.

**Other methods.** ``method=`` fits a baseline (e.g.
:func:`bayescale.fitting.leastsq.fit_least_squares`) on the same kept runs instead of the Bayesian
fit; its observed-loss predictive draws at the held-out runs are scored by :func:`score_draws` with
the same HDI, width and interval score, and a log score from a Normal fitted to the draws of log
loss, so methods are compared on one scale.

The lack-of-fit check against replicate runs is :func:`bayescale.fitting.quality.lack_of_fit`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import xarray as xr

from bayescale.core.checks import check_prob
from bayescale.core.errors import ConfigError, RunsTableError
from bayescale.fitting.pipeline import fit as fit_law
from bayescale.fitting.quality import LackOfFit, lack_of_fit
from bayescale.laws.base import get_law
from bayescale.questions.predict import predict
from bayescale.runs.source import read_table
from bayescale.runs.table import columns_text, stored_column

if TYPE_CHECKING:
    from bayescale.fitting.result import Fit
    from bayescale.laws.base import Law

__all__ = [
    "Backtest",
    "backtest",
    "interval_score",
    "score_draws",
]


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


def score_draws(draws: Any, y: Any, prob: float) -> pd.DataFrame:
    r"""Score predictive draws of the observed loss against the observed losses.

    The same scores as the Bayesian backtest, computed from draws alone, so any method that
    can draw from its predictive distribution (a bootstrap, another package) is scored alike.

    Parameters
    ----------
    draws : array-like, shape (point, n)
        Draws of the observed loss at each point (nats/token), positive.
    y : array-like, shape (point,)
        Observed losses (nats/token).
    prob : float
        Probability of the highest-density interval.

    Returns
    -------
    pandas.DataFrame
        One row per point: ``loss`` (observed), ``loss_mean`` (mean of the draws), ``lo`` and
        ``hi`` (HDI of the draws), ``inside``, ``width``, ``interval_score`` (nats/token) and
        ``log_score``: log density of ``y`` under a Normal fitted to the draws of log loss
        (their mean and sd), with the Jacobian of the log, so it is a density on the loss
        scale (per nat/token) like :meth:`bayescale.questions.predict.Prediction.log_density`.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> draws = np.exp(rng.normal(np.log([[3.0], [2.5]]), 0.01, (2, 4000)))
    >>> scores = score_draws(draws, [3.0, 2.0], prob=0.94)
    >>> scores["inside"].tolist()
    [True, False]
    """
    # arviz_stats and scipy are imported where used: only scoring the held-out
    # runs needs them (arviz_stats ~1 s)
    import arviz_stats as azs
    from scipy import stats

    draws = np.asarray(draws, dtype=float)
    y = np.asarray(y, dtype=float).reshape(-1)
    if draws.ndim != 2 or draws.shape[0] != y.size:
        raise ConfigError(
            f"draws must have shape (point, n) with one point per observed loss; got draws "
            f"{draws.shape} for {y.size} losses"
        )
    if not (np.all(np.isfinite(draws)) and np.all(draws > 0)):
        raise ConfigError("predictive draws of the loss must be positive and finite")
    check_prob(prob)
    with np.errstate(invalid="ignore", divide="ignore"):
        hdi = azs.hdi(xr.DataArray(draws, dims=("point", "draw")), prob=prob, dim="draw")
    lo = hdi.sel(ci_bound="lower").values
    hi = hdi.sel(ci_bound="upper").values
    # A Normal fitted to the draws of log loss, not a kernel density: a kernel's narrow tails
    # would turn a miss by many predictive sds into a log score of -1000s, set by the
    # bandwidth rather than by the predictive.
    log_draws = np.log(draws)
    centre = log_draws.mean(axis=1)
    # The floor keeps the density finite when every draw is identical (a degenerate fit).
    spread = np.maximum(log_draws.std(axis=1, ddof=1), 1e-9)
    log_score = stats.norm.logpdf(np.log(y), centre, spread) - np.log(y)
    return pd.DataFrame(
        {
            "loss": y,
            "loss_mean": draws.mean(axis=1),
            "lo": lo,
            "hi": hi,
            "inside": (lo <= y) & (y <= hi),
            "width": hi - lo,
            "interval_score": interval_score(lo, hi, y, prob),
            "log_score": log_score,
        }
    )


@dataclass(frozen=True)
class Backtest:
    """Result of a leave-largest-out backtest.

    Attributes
    ----------
    law : str
        The law fitted.
    by : str
        Column whose largest values were held out (with ``holdout``, as given: a label).
    prob : float
        Probability of the predictive intervals.
    fit : Fit or object
        The law fitted to the kept runs: a :class:`~bayescale.fitting.result.Fit`, or what
        ``method`` returned.
    held_out : pandas.DataFrame
        One row per held-out run (index: its run number in the table): inputs, ``loss``
        (observed), ``loss_mean``, ``lo`` and ``hi`` (observed-loss HDI), ``inside``,
        ``width``, ``interval_score``, ``log_score``, ``extrapolation_<input>`` (decades) and
        the run's group when the fit has groups.
    lack_of_fit : LackOfFit or None
        Residual against replicate scatter of the fit to the kept runs (None for a ``method``).
    settings : dict
        ``holdout_top`` or ``holdout``, ``seed``, ``n_fit`` (runs fitted), ``method`` (None for
        bayescale's own fit, else the method's name) and ``discrepancy``.
    """

    law: str
    by: str
    prob: float
    fit: Fit | Any
    held_out: pd.DataFrame
    lack_of_fit: LackOfFit | None
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def totals(self) -> dict[str, float | None]:
        """Coverage, mean width, mean interval score and mean log score over held-out runs."""
        h = self.held_out
        return {
            "n_held_out": len(h),
            "n_fit": self.settings.get("n_fit", getattr(self.fit, "n_runs", None)),
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
            "method": self.settings.get("method"),
            "discrepancy": self.settings.get("discrepancy"),
            "runs": rows,
            "totals": self.totals,
            "lack_of_fit": None if self.lack_of_fit is None else self.lack_of_fit.to_dict(),
        }


def backtest(
    runs: Any,
    law: str | Law,
    *,
    holdout_top: int | None = None,
    holdout: Mapping[str, Any] | Sequence[bool] | np.ndarray | None = None,
    by: str = "N",
    prob: float = 0.94,
    columns: Mapping[str, str] | str | None = None,
    compute_unit: str = "flops",
    derive_compute: bool = False,
    file_pattern: str | None = None,
    value_map: Mapping[str, Mapping[str, float]] | None = None,
    last_per_run: Sequence[str] | str | bool | None = None,
    drop_copies: bool = False,
    allow_replicates: bool = True,
    max_loss: float | None = None,
    seed: int = 0,
    method: Callable[..., Any] | None = None,
    n_draws: int = 1000,
    **fit_kwargs: Any,
) -> Backtest:
    """Fit on all but the ``holdout_top`` largest runs and score predictions of those runs.

    Parameters
    ----------
    runs : DataFrame, path, bundled dataset name or xarray.Dataset
        The runs table (see :func:`bayescale.runs.table.load_runs`). Replicate runs are allowed:
        they feed the lack-of-fit check.
    law : str or Law
        Law to fit.
    holdout_top : int, optional
        Number of runs to hold out: those with the largest ``by``, ties broken by the law's
        inputs (largest first), so "the largest model, most data first".
    holdout : mapping or array of bool, optional
        Instead of ``holdout_top``, the held-out runs themselves: ``{column: value}`` holds
        out the runs whose ``column`` equals ``value`` (e.g. ``{"Training": 0}`` for a table
        that ships its own split), or a boolean mask with one entry per run of the loaded
        table (True = held out). Give exactly one of ``holdout_top`` and ``holdout``.
    by : str, default "N"
        Numeric column ranking the runs (``N``, ``D``, ``C`` or any other); with
        ``holdout``, only recorded.
    prob : float, default 0.94
        Probability of the predictive intervals scored.
    columns, compute_unit, derive_compute, file_pattern, value_map, last_per_run
        How to read the table, as in :func:`bayescale.runs.table.load_runs`.
    drop_copies, allow_replicates, max_loss
        How to check it, as in :func:`bayescale.runs.table.load_runs` (``max_loss`` None: its
        default).
    seed : int
        Seed of the fit and of the predictive draws.
    method : callable, optional
        A baseline fitted instead of bayescale's model: ``method(kept_runs, law, seed=seed,
        **fit_kwargs)`` gets the kept runs (an xarray.Dataset in canonical units) and returns
        an object with ``predictive_draws(inputs, n=..., seed=...)`` giving draws of the
        observed loss, shape (point, n), e.g. :func:`bayescale.fitting.leastsq.fit_least_squares`.
        The draws are scored by :func:`score_draws`.
    n_draws : int, default 1000
        Predictive draws per held-out run asked of ``method``.
    **fit_kwargs
        Passed to :func:`bayescale.fit` (``draws``, ``sampler``, ``groups``, ``offset_by``,
        ``discrepancy``...), or to ``method``.

    Returns
    -------
    Backtest
        Per-run scores of the held-out runs, totals, and the lack-of-fit check.

    Raises
    ------
    ConfigError
        If ``holdout_top`` or ``holdout`` leaves no run to hold out or too few to fit, both or
        neither are given, or ``prob`` is bad.
    RunsTableError
        If ``by`` is not a numeric column, or the ``holdout`` column is not in the table.

    Examples
    --------
    >>> result = backtest("kaplan_ladder", "kaplan_nd", holdout_top=5)  # doctest: +SKIP
    >>> result.totals["coverage"]  # doctest: +SKIP
    """
    law = get_law(law)
    check_prob(prob)
    groups = fit_kwargs.get("groups") or ()
    group_cols = [groups] if isinstance(groups, str) else list(groups)
    offset_by = fit_kwargs.get("offset_by")
    labels = [*group_cols, *([offset_by] if offset_by else [])]
    limits: dict[str, Any] = {} if max_loss is None else {"max_loss": max_loss}
    table = read_table(
        runs,
        required=(*law.inputs, "loss"),
        groups=labels,
        law_name=law.name,
        columns=columns,
        compute_unit=compute_unit,
        derive_compute=derive_compute,
        allow_replicates=allow_replicates,
        drop_copies=drop_copies,
        file_pattern=file_pattern,
        value_map=value_map,
        last_per_run=last_per_run,
        **limits,
    )
    held = _held_out(table, law, holdout_top, holdout, by)
    kept = np.setdiff1d(np.arange(int(table.sizes["run"])), held)
    test = table.isel(run=held)
    settings = {
        **({"holdout_top": holdout_top} if holdout is None else {"holdout": _split_text(holdout)}),
        "seed": seed,
        "n_fit": len(kept),
        "method": None if method is None else getattr(method, "__name__", str(method)),
        "discrepancy": fit_kwargs.get("discrepancy"),
    }
    if method is not None:
        baseline = method(table.isel(run=kept), law, seed=seed, **fit_kwargs)
        points = {k: test[k].values.astype(float) for k in law.inputs}
        draws = baseline.predictive_draws(points, n=n_draws, seed=seed)
        scores = score_draws(draws, test["loss"].values, prob)
        scores.index = pd.Index(test["run"].values, name="run")
        beyond = _decades_beyond(table.isel(run=kept), test, law.inputs)
        held_out = pd.concat([pd.DataFrame(points, index=scores.index), scores, beyond], axis=1)
        return Backtest(law.name, by, prob, baseline, held_out, None, settings)

    result = fit_law(table.isel(run=kept), law, seed=seed, **fit_kwargs)
    rows = []
    for position in range(len(held)):
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
        settings=settings,
    )


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------
def _numeric(values: xr.DataArray) -> bool:
    return bool(np.issubdtype(values.dtype, np.number))


def _held_out(
    table: xr.Dataset,
    law: Law,
    holdout_top: int | None,
    holdout: Mapping[str, Any] | Sequence[bool] | np.ndarray | None,
    by: str,
) -> np.ndarray:
    """Sorted positions of the held-out runs, from ``holdout_top`` or ``holdout``."""
    n = int(table.sizes["run"])
    if (holdout_top is None) == (holdout is None):
        raise ConfigError("give exactly one of holdout_top (a number of runs) and holdout")
    if holdout is None:
        if by not in table.data_vars or not _numeric(table[by]):
            numeric = [str(v) for v in table.data_vars if _numeric(table[v])]
            raise RunsTableError(
                f"cannot rank runs by {by!r}: not a numeric column of the runs table "
                f"(numeric columns: {columns_text(numeric)})"
            )
        if not isinstance(holdout_top, int | np.integer) or not 1 <= holdout_top < n:
            raise ConfigError(
                f"holdout_top must be a whole number from 1 to {n - 1} (the table has {n} "
                f"runs), got {holdout_top!r}"
            )
        keys = [table[k].values for k in reversed([*law.inputs]) if k != by]
        order = np.lexsort((*keys, table[by].values))[::-1]  # largest `by` first
        return np.sort(order[:holdout_top])
    if isinstance(holdout, Mapping):
        mask = np.ones(n, dtype=bool)
        for name, value in holdout.items():
            column = stored_column(name)
            if column not in table.data_vars:
                raise RunsTableError(
                    f"holdout column {name!r} is not in the runs table (columns: "
                    f"{columns_text([str(v) for v in table.data_vars])})"
                )
            values = table[column].values
            mask &= values == (str(value) if values.dtype.kind in "OUT" else value)
    else:
        mask = np.asarray(holdout)
        if mask.dtype != bool or mask.shape != (n,):
            raise ConfigError(
                f"holdout must be a {{column: value}} mapping or {n} booleans (one per run); "
                f"got an array of {mask.dtype} with shape {mask.shape}"
            )
    if not 1 <= int(mask.sum()) < n:
        raise ConfigError(
            f"holdout {_split_text(holdout)} selects {int(mask.sum())} of {n} runs; it must "
            "leave at least one run to hold out and one to fit"
        )
    return np.flatnonzero(mask)


def _split_text(holdout: Any) -> Any:
    """Return the ``holdout`` option as stored in results (the mapping, or a count)."""
    if isinstance(holdout, Mapping):
        return {str(k): v.item() if hasattr(v, "item") else v for k, v in holdout.items()}
    return f"mask of {int(np.sum(holdout))} runs"


def _decades_beyond(kept: xr.Dataset, test: xr.Dataset, inputs: Sequence[str]) -> pd.DataFrame:
    """Decades of each held-out input beyond the kept runs' range (as Prediction.extrapolation)."""
    out = {}
    for k in inputs:
        x = np.log10(test[k].values.astype(float))
        lo, hi = np.log10(float(kept[k].min())), np.log10(float(kept[k].max()))
        out[f"extrapolation_{k}"] = np.where(x > hi, x - hi, np.where(x < lo, x - lo, 0.0))
    return pd.DataFrame(out, index=pd.Index(test["run"].values, name="run"))


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
