r"""Joint comparison of arms (architectures, data mixes, optimizers) of one hierarchical fit.

For a fit grouped by an "arm" column, every posterior draw :math:`s` holds the law's latents of
every arm at once, so for two arms :math:`a, b` and a target :math:`x^\star`

.. math::

    \Delta_s(x^\star) = L(x^\star; \theta_{a,s}) - L(x^\star; \theta_{b,s})

is a draw from the posterior of the loss difference (nats/token). Shared (pooled) parameters
and the correlation that partial pooling induces between arms cancel draw by draw, which is why
this interval is narrower, and correct, where subtracting two independent fits is not. From the
same draws:

* ``P(a better)`` :math:`= \Pr(\Delta < 0)`, the fraction of draws where ``a`` has the lower
  loss;
* the **crossover**: for each draw, the smallest value of one input (``along``, the others held
  at the target) inside a stated range where :math:`\Delta` changes sign, found on a fine
  log-spaced grid and refined by linear interpolation of :math:`\Delta` in :math:`\log x`.
  Draws without a sign change in the range have no crossover; the crossover posterior is
  summarised over the draws that do have one, next to the fraction that do;
* **exponent differences** :math:`\alpha_a - \alpha_b` for each exponent that varies by arm.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from bayescale.core.checks import check_prob
from bayescale.core.errors import ConfigError, UnknownNameError, did_you_mean

if TYPE_CHECKING:
    import xarray as xr

    from bayescale.fitting.result import Fit
    from bayescale.model.pooling import Pooling

__all__ = ["Comparison", "compare"]

#: Dimension of arm pairs.
PAIR = "pair"
#: Grid points per crossover search. Over six decades the spacing is 0.012 decades, and the
#: linear interpolation between grid points is far finer than the posterior spread.
_CROSSOVER_GRID = 512
#: Below this fraction of draws with a crossover, the crossover is reported as absent (null):
#: a mean and interval over a handful of draws would describe noise.
MIN_CROSSOVER_FRACTION = 0.05


@dataclass(frozen=True)
class Comparison:
    """Posterior comparison of every pair of arms, from the joint draws of one fit.

    Attributes
    ----------
    arm : str
        The arm (group) column.
    prob : float
        Probability of the highest-density intervals.
    at : dict of str to ndarray
        Target inputs, one value per point (parameters, tokens, FLOPs).
    along : str
        Input along which crossovers are searched.
    crossover_range : tuple of float
        Range of ``along`` searched for crossovers (its canonical unit).
    diff : xarray.DataArray
        ``loss(a) - loss(b)`` in nats/token, dims ``(pair, chain, draw, point)``; the ``pair``
        dim has coordinates ``a`` and ``b``.
    crossover : xarray.DataArray
        Smallest crossover of each draw in the range (unit of ``along``), NaN where none; dims
        ``(pair, chain, draw, point)``.
    exponents : xarray.Dataset
        ``param(a) - param(b)`` for each exponent that varies by arm, dims
        ``(pair, chain, draw)``.
    """

    arm: str
    prob: float
    at: dict[str, np.ndarray]
    along: str
    crossover_range: tuple[float, float]
    diff: xr.DataArray
    crossover: xr.DataArray
    exponents: xr.Dataset

    @property
    def p_a_better(self) -> xr.DataArray:
        """Probability that arm ``a`` has the lower loss at each target, dims ``(pair, point)``."""
        return (self.diff < 0).mean(("chain", "draw"))

    @property
    def p_crossover(self) -> xr.DataArray:
        """Fraction of draws with a crossover in :attr:`crossover_range`, dims ``(pair, point)``."""
        return self.crossover.notnull().mean(("chain", "draw"))

    def diff_interval(self) -> xr.DataArray:
        """HDI of the loss difference, dims ``(pair, point, ci_bound)``."""
        # xarray and arviz_stats are imported where used: importing a question costs
        # numpy only (see bayescale.plots, which imports questions)
        import arviz_stats as azs

        out = azs.hdi(self.diff, prob=self.prob, dim=["chain", "draw"])
        return out.assign_attrs(ci_kind="hdi", ci_prob=self.prob)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary: one row per pair of arms and target point.

        Rows have ``a``, ``b``, ``diff_mean``, ``diff_lo``, ``diff_hi`` (loss(a) − loss(b),
        nats/token), ``p_a_better``, ``crossover`` (``{"mean", "lo", "hi"}`` over the draws
        that cross, or None when fewer than :data:`MIN_CROSSOVER_FRACTION` of them do),
        ``p_crossover`` (that fraction), the target inputs, and ``exponents`` (per exponent
        that varies by arm: ``diff_mean``, ``diff_lo``, ``diff_hi``, ``p_a_larger``).
        The crossover ``mean`` is the geometric mean (the mean of ``log x``), and ``lo``/``hi``
        the HDI of ``log x``, transformed back: scales are compared in decades.
        """
        from arviz_stats.base import array_stats

        mean = self.diff.mean(("chain", "draw"))
        interval = self.diff_interval()
        p_better = self.p_a_better
        p_cross = self.p_crossover
        exps = {}
        for name in self.exponents.data_vars:
            d = self.exponents[name]
            hdi = array_stats.hdi(_flat(d), self.prob, axis=-1)
            exps[name] = {
                "mean": d.mean(("chain", "draw")),
                "hdi": hdi,
                "p": (d > 0).mean(("chain", "draw")),
            }
        rows = []
        for i in range(self.diff.sizes[PAIR]):
            for j in range(self.diff.sizes["point"]):
                cross = _flat(self.crossover.isel({PAIR: i, "point": j}))
                row: dict[str, Any] = {
                    "a": str(self.diff["a"].values[i]),
                    "b": str(self.diff["b"].values[i]),
                    **{k: float(v[j]) for k, v in self.at.items()},
                    "diff_mean": float(mean[i, j]),
                    "diff_lo": float(interval[i, j, 0]),
                    "diff_hi": float(interval[i, j, 1]),
                    "p_a_better": float(p_better[i, j]),
                    "crossover": _crossover_summary(cross, self.prob),
                    "p_crossover": float(p_cross[i, j]),
                    "exponents": {
                        name: {
                            "diff_mean": float(e["mean"][i]),
                            "diff_lo": float(e["hdi"][i, 0]),
                            "diff_hi": float(e["hdi"][i, 1]),
                            "p_a_larger": float(e["p"][i]),
                        }
                        for name, e in exps.items()
                    },
                }
                rows.append(row)
        return {
            "arm": self.arm,
            "prob": self.prob,
            "along": self.along,
            "crossover_range": list(self.crossover_range),
            "pairs": rows,
        }


def compare(
    fit: Fit,
    *,
    arm: str | None = None,
    at: Mapping[str, Any],
    prob: float = 0.94,
    along: str | None = None,
    crossover_range: tuple[float, float] | None = None,
    offset: str | None = None,
) -> Comparison:
    r"""Compare every pair of arms of a hierarchical fit at target inputs, from joint draws.

    Parameters
    ----------
    fit : Fit
        A fit grouped by the arm column (``fit(runs, law, groups="arm", ...)``).
    arm : str, optional
        The arm column; must be the fit's group column (default: that column).
    at : mapping
        Target inputs in canonical units (``N`` parameters, ``D`` tokens, ``C`` FLOPs), one value
        or an array per law input; arrays broadcast into target points.
    prob : float, default 0.94
        Probability of the highest-density intervals.
    along : str, optional
        Input along which to search for crossovers (default: the law's first input); the other
        inputs are held at each target point.
    crossover_range : (float, float), optional
        Range of ``along`` searched (its canonical unit). Default: from the smallest fitted value
        to ten times the larger of the target and the largest fitted value, i.e. the data, the
        extrapolation to the target and a decade beyond it.
    offset : str, optional
        Level of the fit's offset column at which losses are compared (default: reference).

    Returns
    -------
    Comparison
        Loss differences, P(a better), crossovers and exponent differences per pair of arms.

    Raises
    ------
    ConfigError
        If the fit has no groups, is grouped by another column, has fewer than two arms, or
        the target or range is invalid.

    Examples
    --------
    >>> result = compare(fit, arm="arch", at={"N": 1e11})  # doctest: +SKIP
    >>> result.to_dict()["pairs"][0]["p_a_better"]  # doctest: +SKIP
    0.97
    """
    import xarray as xr

    check_prob(prob)
    pooling = _arm_pooling(fit, arm)
    labels = pooling.labels
    law = fit.law
    points = _target_points(law.inputs, at)
    along = law.inputs[0] if along is None else along
    if along not in law.inputs:
        raise UnknownNameError(
            f"cannot search crossovers along {along!r}: law {law.name!r} has inputs "
            + ", ".join(law.inputs)
        )
    lo, hi = _crossover_range(fit, along, points[along], crossover_range)

    pairs = list(itertools.combinations(labels, 2))
    pair_coords = {
        "a": (PAIR, [a for a, _ in pairs]),
        "b": (PAIR, [b for _, b in pairs]),
    }
    # One evaluation per arm; every pair then differences the same draws.
    log_loss = {g: fit.expected_log_loss(points, group=g, offset=offset) for g in labels}
    # numpy's stubs type a ufunc of a DataArray as an ndarray; these are DataArrays.
    diff = xr.concat(
        [cast("xr.DataArray", np.exp(log_loss[a]) - np.exp(log_loss[b])) for a, b in pairs],
        dim=PAIR,
    ).assign_coords(pair_coords)
    diff.attrs["units"] = "nats/token"

    grid = np.geomspace(lo, hi, _CROSSOVER_GRID)
    n_points = points[along].size
    crossings = np.full((len(pairs), *diff.shape[1:3], n_points), np.nan)
    for j in range(n_points):
        inputs = {k: (grid if k == along else v[j]) for k, v in points.items()}
        curves = {g: fit.expected_log_loss(inputs, group=g, offset=offset).values for g in labels}
        for i, (a, b) in enumerate(pairs):
            crossings[i, ..., j] = first_crossing(curves[a] - curves[b], np.log(grid))
    crossover = xr.DataArray(
        np.exp(crossings),
        dims=(PAIR, "chain", "draw", "point"),
        coords={"chain": diff.chain, "draw": diff.draw, **pair_coords},
        attrs={"input": along},
    )
    return Comparison(
        arm=pooling.dim,
        prob=prob,
        at=points,
        along=along,
        crossover_range=(lo, hi),
        diff=diff,
        crossover=crossover,
        exponents=_exponent_diffs(fit, pairs, pair_coords),
    )


def first_crossing(diff: np.ndarray, log_x: np.ndarray) -> np.ndarray:
    """Log of the first point where ``diff`` changes sign along its last axis, NaN if none.

    Parameters
    ----------
    diff : ndarray, shape (..., G)
        Difference of two curves on the grid ``log_x``.
    log_x : ndarray, shape (G,)
        Increasing grid (natural log of the input).

    Returns
    -------
    ndarray, shape (...)
        Interpolated ``log x`` of the first sign change (linear in ``log x`` between the
        bracketing grid points), NaN where the sign never changes.
    """
    left, right = diff[..., :-1], diff[..., 1:]
    change = (left == 0) | (np.sign(left) * np.sign(right) < 0)
    has = change.any(axis=-1)
    k = np.argmax(change, axis=-1)
    d0 = np.take_along_axis(left, k[..., None], axis=-1)[..., 0]
    d1 = np.take_along_axis(right, k[..., None], axis=-1)[..., 0]
    with np.errstate(invalid="ignore", divide="ignore"):
        t = np.where(d0 == 0, 0.0, d0 / (d0 - d1))
    step = np.diff(log_x)[k]
    return np.where(has, log_x[k] + t * step, np.nan)


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------
def _arm_pooling(fit: Fit, arm: str | None) -> Pooling:
    """Return the fit's grouping, checked to be by ``arm`` with arms that can differ."""
    pooling = fit.pooling
    if pooling is None:
        raise ConfigError(
            "this fit has no groups; compare needs a fit grouped by the arm column "
            "(fit(..., groups='arm'))"
        )
    if arm is not None and arm != pooling.dim:
        raise ConfigError(
            f"the fit is grouped by {pooling.dim!r}, not {arm!r}; compare arms of the fit's own "
            "group column (refit with groups=" + repr(arm) + ")"
        )
    if len(pooling.labels) < 2:
        raise ConfigError(f"column {pooling.dim!r} has one level; there is nothing to compare")
    if all(mode == "pooled" for mode in pooling.modes.values()):
        raise ConfigError(
            f"every law parameter is pooled across {pooling.dim!r}, so the arms are identical "
            "by construction; refit with some parameters partially pooled or unpooled"
        )
    return pooling


def _target_points(inputs: tuple[str, ...], at: Mapping[str, Any]) -> dict[str, np.ndarray]:
    unknown = [k for k in at if k not in inputs]
    if unknown:
        raise UnknownNameError(
            f"target input {unknown[0]!r} is not an input of this law. "
            + did_you_mean(unknown[0], list(inputs))
        )
    missing = [k for k in inputs if k not in at]
    if missing:
        raise ConfigError(
            f"give the target's {missing[0]!r} (the law's inputs: {', '.join(inputs)})"
        )
    arrays = np.broadcast_arrays(*(np.atleast_1d(np.asarray(at[k], dtype=float)) for k in inputs))
    out = {k: a.ravel() for k, a in zip(inputs, arrays, strict=True)}
    for k, a in out.items():
        if not np.all(np.isfinite(a) & (a > 0)):
            raise ConfigError(f"target {k!r} must be positive and finite, got {a.tolist()}")
    return out


def _crossover_range(
    fit: Fit, along: str, target: np.ndarray, given: tuple[float, float] | None
) -> tuple[float, float]:
    if given is not None:
        lo, hi = (float(v) for v in given)
        if not (np.isfinite(lo) and np.isfinite(hi) and 0 < lo < hi):
            raise ConfigError(
                f"crossover range must be two positive numbers, low < high; got ({lo}, {hi})"
            )
        return lo, hi
    fitted = np.asarray(fit.runs[along].values, dtype=float)
    return float(fitted.min()), 10.0 * float(max(fitted.max(), target.max()))


def _exponent_diffs(
    fit: Fit, pairs: list[tuple[str, str]], pair_coords: Mapping[str, Any]
) -> xr.Dataset:
    """Differences of the dimensionless law parameters that vary by arm (exponents)."""
    import xarray as xr

    law = fit.law
    exponents = [p for p in law.params if law.units.get(p) == "dimensionless"]
    centre = fit.data_summary.centre
    per_arm = {
        g: law.to_params(fit.latents(group=g), centre, np) for g in {x for p in pairs for x in p}
    }
    out = {}
    for name in exponents:
        d = xr.concat([per_arm[a][name] - per_arm[b][name] for a, b in pairs], dim=PAIR)
        if np.any(d.values != 0):  # pooled exponents are identical across arms
            out[name] = d.assign_coords(pair_coords).transpose(PAIR, "chain", "draw")
    return xr.Dataset(out)


def _flat(da: xr.DataArray) -> np.ndarray:
    """Values with ``chain`` and ``draw`` merged into one last axis."""
    other = [d for d in da.dims if d not in ("chain", "draw")]
    values = da.transpose(*other, "chain", "draw").values
    return values.reshape(*values.shape[: len(other)], -1)


def _crossover_summary(values: np.ndarray, prob: float) -> dict[str, float] | None:
    from arviz_stats.base import array_stats

    hit = np.log(values[np.isfinite(values)])
    if hit.size < max(2, MIN_CROSSOVER_FRACTION * values.size):
        return None
    lo, hi = array_stats.hdi(hit, prob)
    return {"mean": float(np.exp(hit.mean())), "lo": float(np.exp(lo)), "hi": float(np.exp(hi))}
