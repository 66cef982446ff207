r"""Compute-optimal allocation of a budget between model size and data, and the frontier.

With training compute :math:`C \approx 6ND` FLOPs (2 forward + 4 backward FLOPs per parameter
per token), the compute-optimal model minimises :math:`L(N, C/6N)` over :math:`N`. Both laws of
:math:`N` and :math:`D` give a power-law allocation

.. math::

    N_{\rm opt}(C) = G\, (C/6)^{a}, \qquad D_{\rm opt}(C) = G^{-1} (C/6)^{b}, \qquad a + b = 1,

with, for ``chinchilla`` (:math:`L = E + A/N^{\alpha} + B/D^{\beta}`; Hoffmann et al. 2022,
eq. 4),

.. math::

    a = \frac{\beta}{\alpha + \beta}, \quad b = \frac{\alpha}{\alpha + \beta}, \quad
    G = \left(\frac{\alpha A}{\beta B}\right)^{1/(\alpha + \beta)},

and for ``kaplan_nd`` (:math:`L = [(N_c/N)^{r} + D_c/D]^{\alpha_D}`, :math:`r =
\alpha_N/\alpha_D`): :math:`L` is an increasing function of the bracket
:math:`f(N) = (N_c/N)^r + 6 D_c N / C`, whose derivative :math:`-r N_c^r N^{-r-1} + 6D_c/C`
vanishes at

.. math::

    N_{\rm opt} = \left(\frac{r N_c^{r}}{D_c}\right)^{1/(1+r)} \left(\frac{C}{6}\right)^{1/(1+r)},
    \quad a = \frac{1}{1+r} = \frac{\alpha_D}{\alpha_N + \alpha_D}, \quad
    b = \frac{\alpha_N}{\alpha_N + \alpha_D},

where :math:`f` is :math:`(1+r)(N_c/N_{\rm opt})^{r}`, so the frontier is itself a power law,
:math:`L_{\rm opt} = (1+r)^{\alpha_D} (N_c/N_{\rm opt})^{\alpha_N} \propto
C^{-\alpha_N \alpha_D/(\alpha_N + \alpha_D)}`.

Both minima are interior and unique exactly when both exponents are positive: the loss is then
the sum (or an increasing function of the sum) of a term falling and a term rising in
:math:`\log N`, each convex. A draw with a non-positive exponent has no interior optimum (the
loss falls all the way to one end of the range of :math:`N`); such draws are reported as NaN
and counted in ``p_interior``.

:math:`L_{\rm opt}(C)` is the law's own formula (:attr:`bayescale.laws.base.Law.log_loss`) at
:math:`(N_{\rm opt}, D_{\rm opt})`.

:func:`compute_frontier` extracts the empirical counterpart from a runs table: the lower
envelope of loss against compute over all rows (final runs or checkpoints), to which
``power_c`` can be fitted to reproduce Kaplan's :math:`L(C_{\min}) = (C_c/C_{\min})^{\alpha_C}`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from bayescale.core.checks import check_prob
from bayescale.core.dims import SAMPLE_DIMS
from bayescale.core.errors import ConfigError, RunsTableError, did_you_mean
from bayescale.laws.base import laws_with
from bayescale.questions.overfit import (
    latent_draws,
    pick,
    summarise,
    summary_json,
)

if TYPE_CHECKING:
    import pandas as pd
    import xarray as xr

    from bayescale.fitting.result import Fit

__all__ = ["Optimal", "compute_frontier", "optimal"]

#: Accepted compute units (1 PF-day = 1e15 FLOP/s x 86400 s = 8.64e19 FLOPs).
COMPUTE_UNITS = ("flops", "pf-days")
#: Dimension of the compute grid.
COMPUTE = "C"
#: Default frontier grid: points from the smallest training compute of the runs to
#: ``_GRID_REACH`` times the largest.
_GRID_POINTS = 41
_GRID_REACH = 1e3


@dataclass(frozen=True)
class Optimal:
    r"""Posterior of the compute-optimal model size, data and loss over a grid of budgets.

    Attributes
    ----------
    law : str
        Name of the fitted law.
    prob : float
        Probability of the highest-density intervals.
    compute_unit : str
        Unit in which ``C`` was given and is reported by :meth:`to_dict` (``"flops"`` or
        ``"pf-days"``); the ``C`` coordinate of the draws is always FLOPs.
    group_dim : str or None
        Name of the group dimension for hierarchical fits.
    draws : xarray.Dataset
        ``N_opt`` (parameters), ``D_opt`` (tokens), ``L_opt`` (nats/token), dims
        ``(chain, draw, C)`` plus the group dim where parameters vary by group; ``a`` and ``b``
        (allocation exponents, :math:`N_{\rm opt} \propto C^a`, :math:`D_{\rm opt}
        \propto C^b`) and ``interior`` (True where the draw has an interior optimum), dims
        ``(chain, draw)`` plus the group dim. Draws without an interior optimum are NaN.
    """

    law: str
    prob: float
    compute_unit: str
    group_dim: str | None
    draws: xr.Dataset

    @property
    def C(self) -> np.ndarray:
        """Budgets in FLOPs."""
        return np.asarray(self.draws[COMPUTE].values, dtype=float)

    @property
    def p_interior(self) -> xr.DataArray:
        """Fraction of draws with an interior optimum (per group for hierarchical fits)."""
        return self.draws["interior"].mean(SAMPLE_DIMS)

    def bands(self) -> xr.Dataset:
        """Return the frontier as bands: HDI of ``N_opt``, ``D_opt`` and ``L_opt`` over the grid.

        Returns
        -------
        xarray.Dataset
            Dims ``(C, ci_bound)`` (plus the group dim) with ``ci_bound`` = ``lower``/``upper``
            and attributes ``ci_kind="hdi"``, ``ci_prob``; draws without an interior optimum
            are left out.
        """
        # xarray, pandas and arviz_stats are imported where used: importing a question
        # costs numpy only (the report and the frontier plot import this one)
        import arviz_stats as azs

        with np.errstate(invalid="ignore", divide="ignore"):
            out = azs.hdi(
                self.draws[["N_opt", "D_opt", "L_opt"]],
                prob=self.prob,
                dim=list(SAMPLE_DIMS),
                skipna=True,
            )
        return out.assign_attrs(ci_kind="hdi", ci_prob=self.prob)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary.

        Keys: ``law``, ``prob``, ``compute_unit``, ``p_interior``, ``points`` (one row per
        budget: ``C`` in ``compute_unit``, ``N_opt``, ``D_opt`` and ``loss``, each
        ``{"mean", "lo", "hi"}``) and ``exponents`` (``a`` and ``b``, each
        ``{"mean", "lo", "hi"}``), plus ``note`` when some draws have no interior optimum.
        ``N_opt`` and ``D_opt`` are summarised in decades (geometric mean, HDI of the log).
        For hierarchical fits, point rows carry their ``group`` and exponents (and
        ``p_interior``) become one entry per group.
        """
        factor = unit_flops(self.compute_unit)
        prob, dim = self.prob, self.group_dim
        s = {
            "N_opt": summarise(self.draws["N_opt"], prob, log=True),
            "D_opt": summarise(self.draws["D_opt"], prob, log=True),
            "loss": summarise(self.draws["L_opt"], prob),
        }
        groups = (
            [None]
            if dim is None or dim not in self.draws["N_opt"].dims
            else [str(g) for g in self.draws[dim].values]
        )
        rows = []
        for g in groups:
            for j, c in enumerate(self.C):
                at: dict[str, Any] = {COMPUTE: j}
                row: dict[str, Any] = {}
                if g is not None and dim is not None:
                    at[dim] = g
                    row["group"] = g
                row["C"] = float(c / factor)
                for key, summary in s.items():
                    row[key] = {k: pick(summary[k], at) for k in ("mean", "lo", "hi")}
                rows.append(row)
        p_int = self.p_interior
        doc: dict[str, Any] = {
            "law": self.law,
            "prob": prob,
            "compute_unit": self.compute_unit,
            "p_interior": float(p_int)
            if p_int.ndim == 0
            else {str(g): float(p_int.sel({dim: g})) for g in p_int[dim].values},
            "points": rows,
            "exponents": {k: summary_json(self.draws[k], prob, dim) for k in ("a", "b")},
        }
        if float(p_int.min()) < 1:
            doc["note"] = (
                f"{1 - float(p_int.min()):.1%} of draws have a non-positive exponent and no "
                "interior optimum (the loss falls towards one end of the range of N); they are "
                "left out of the summaries"
            )
        return doc


def optimal(
    fit: Fit,
    C: Any = None,
    *,
    prob: float = 0.94,
    compute_unit: str = "flops",
    group: str | None = None,
) -> Optimal:
    r"""Posterior of the compute-optimal :math:`N`, :math:`D` and loss at budgets :math:`C`.

    Parameters
    ----------
    fit : Fit
        A fit of ``chinchilla`` or ``kaplan_nd``.
    C : float or array, optional
        Training budgets, in ``compute_unit``. Default: the frontier grid, 41 log-spaced budgets
        from the smallest :math:`6ND` of the fitted runs to 1000 times the largest.
    prob : float, default 0.94
        Probability of the highest-density intervals.
    compute_unit : {"flops", "pf-days"}
        Unit of ``C`` (1 PF-day = 8.64e19 FLOPs).
    group : str, optional
        For a hierarchical fit, one group. Default: every group, along the group dim.

    Returns
    -------
    Optimal
        Draws of :math:`N_{\rm opt}`, :math:`D_{\rm opt}`, :math:`L_{\rm opt}` (dim ``C``, in
        FLOPs), the allocation exponents ``a`` and ``b``, and which draws have an interior
        optimum.

    Raises
    ------
    ConfigError
        If the law has no closed form here, ``C`` is not positive, or an option is invalid.

    Examples
    --------
    >>> import bayescale as bs
    >>> f = bs.fit("chinchilla_ladder", "chinchilla")  # doctest: +SKIP
    >>> optimal(f, [1e21, 1e23]).to_dict()["exponents"]["a"]  # doctest: +SKIP
    {'mean': 0.45, 'lo': 0.42, 'hi': 0.49}
    """
    import xarray as xr

    law = fit.law
    alloc = law.allocation
    if alloc is None:
        raise ConfigError(
            f"no compute-optimal allocation for law {law.name!r} (inputs "
            f"{', '.join(law.inputs)}): it needs a law of both N and D; laws supported: "
            + ", ".join(laws_with("allocation"))
        )
    check_prob(prob)
    unit = _compute_unit(compute_unit)
    if C is None:
        flops = _default_grid(fit)
    else:
        given = np.atleast_1d(np.asarray(C, dtype=float)).ravel()
        if given.size == 0 or not np.all(np.isfinite(given) & (given > 0)):
            raise ConfigError(
                f"compute budgets C must be positive finite numbers, got {given.tolist()}"
            )
        flops = given * unit_flops(unit)

    z = latent_draws(fit, group)
    params = law.to_params(z, fit.data_summary.centre, np)
    interior = alloc.interior(params)
    # Mask before the closed form: its logs are undefined where an exponent is not positive.
    params = {k: v.where(interior) for k, v in params.items()}
    a, log_g = alloc.a(params), alloc.log_g(params)
    log_half = xr.DataArray(np.log(flops / 6.0), dims=COMPUTE)
    log_n = log_g + a * log_half
    log_d = log_half - log_n
    centre = fit.data_summary.centre
    with np.errstate(invalid="ignore"):  # NaN where there is no interior optimum
        log_loss = law.log_loss(z, {"N": log_n - centre["N"], "D": log_d - centre["D"]}, np)
    draws = xr.Dataset(
        {
            "N_opt": np.exp(log_n).assign_attrs(units="parameters"),
            "D_opt": np.exp(log_d).assign_attrs(units="tokens"),
            "L_opt": np.exp(log_loss).assign_attrs(units="nats/token"),
            "a": a.assign_attrs(units="dimensionless"),
            "b": (1.0 - a).assign_attrs(units="dimensionless"),
            "interior": interior,
        },
        coords={COMPUTE: (COMPUTE, flops, {"units": "FLOPs"})},
    ).transpose(*SAMPLE_DIMS, ..., COMPUTE)
    dim = fit.pooling.dim if fit.pooling is not None and group is None else None
    return Optimal(law=law.name, prob=float(prob), compute_unit=unit, group_dim=dim, draws=draws)


def compute_frontier(
    runs: Any,
    *,
    bins_per_decade: float = 5.0,
    columns: Mapping[str, str] | str | None = None,
    compute_unit: str = "flops",
    drop_edges: bool = True,
) -> pd.DataFrame:
    r"""Extract the compute-efficient frontier: the lower envelope of loss against compute.

    Rows may be final runs or checkpoints along learning curves (``D`` = tokens seen so far);
    each is a (compute, loss) point. The frontier keeps, in each log-spaced compute bin, the
    row with the lowest loss, and of those only the ones below every frontier point at smaller
    compute, so the loss falls strictly along it and no row of the table has both less compute
    and a lower loss than a frontier point. Fitting ``power_c`` to it gives Kaplan et al.'s
    :math:`L(C_{\min}) = (C_c/C_{\min})^{\alpha_C}` (their fig. 13 / eq. 1.4).

    Parameters
    ----------
    runs : DataFrame, path, bundled dataset name or xarray.Dataset
        The runs table (see :func:`bayescale.runs.table.load_runs`); compute comes from its ``C``
        column or, without one, from ``C = 6 N D``.
    bins_per_decade : float, default 5
        Compute bins per factor of 10, aligned on powers of 10. Finer bins follow the envelope
        more closely; coarser ones pick fewer, less noisy-minimum points.
    columns : mapping or str, optional
        Map canonical names to the table's columns, e.g. ``"N=params,D=tokens,loss=val"``.
    compute_unit : {"flops", "pf-days"}
        Unit of the table's ``C`` column; the frontier's ``C`` is always FLOPs.
    drop_edges : bool, default True
        Leave out frontier points reached by the smallest or the largest model size of the
        table (when it has ``N`` with at least three sizes). There the best model at that
        compute may lie outside the sizes trained, so the point sits above the true envelope and
        would bend the fitted exponent.

    Returns
    -------
    pandas.DataFrame
        One row per frontier point, sorted by compute: ``C`` (FLOPs), ``loss`` (nats/token),
        ``row`` (0-based row of the table it came from) and the table's other columns of that
        row (``N``, ``D``...).

    Raises
    ------
    RunsTableError
        If the table has neither ``C`` nor both ``N`` and ``D``, or the frontier has fewer
        than 3 points (``power_c`` needs 3).

    Examples
    --------
    >>> import bayescale as bs
    >>> front = compute_frontier("kaplan_ladder")
    >>> bool(front["loss"].is_monotonic_decreasing)
    True
    >>> fit = bs.fit(front, "power_c", sampler="exact")  # doctest: +SKIP
    """
    import pandas as pd

    from bayescale.runs.source import read_table

    if not (np.isfinite(bins_per_decade) and bins_per_decade > 0):
        raise ConfigError(f"bins_per_decade must be a positive number, got {bins_per_decade}")
    unit = _compute_unit(compute_unit)
    # Checkpoints of one run share N: replicates by design.
    table = read_table(runs, columns=columns, compute_unit=unit, allow_replicates=True)
    if "C" in table:
        compute = np.asarray(table["C"].values, dtype=float)
    elif "N" in table and "D" in table:
        compute = 6.0 * np.asarray(table["N"].values * table["D"].values, dtype=float)
    else:
        raise RunsTableError(
            "the compute frontier needs compute: a 'C' column, or 'N' and 'D' to derive "
            "C = 6 N D; the table has " + ", ".join(map(str, table.data_vars))
        )
    loss = np.asarray(table["loss"].values, dtype=float)
    log_c = np.log10(compute) * bins_per_decade
    bin_of = np.floor(log_c + 1e-9).astype(int)  # 1e-9: budgets on a bin edge stay in it
    order = np.lexsort((loss, bin_of))  # by bin, then by loss: first of each bin is its min
    first = order[np.r_[True, np.diff(bin_of[order]) != 0]]
    kept, best = [], np.inf
    for i in first[np.argsort(compute[first], kind="stable")]:
        if loss[i] < best:
            kept.append(i)
            best = loss[i]
    rows = np.asarray(kept, dtype=int)
    if drop_edges and "N" in table:
        sizes = np.asarray(table["N"].values, dtype=float)
        if np.unique(sizes).size >= 3:
            edge = (sizes[rows] == sizes.min()) | (sizes[rows] == sizes.max())
            rows = rows[~edge]
    if rows.size < 3:
        raise RunsTableError(
            f"the compute frontier of this table has {rows.size} point(s) and power_c needs at "
            "least 3: add runs, use more bins per decade"
            + (", or keep the edge model sizes (drop_edges=False)" if drop_edges else "")
        )
    frame = table.isel(run=rows).to_dataframe().reset_index(drop=True)
    frame = frame.drop(columns=["C"], errors="ignore")
    frame.insert(0, "row", rows)
    frame.insert(0, "loss", frame.pop("loss"))
    frame.insert(0, "C", compute[rows])
    return pd.DataFrame(frame)


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------
def _compute_unit(unit: str) -> str:
    """Canonical spelling of a compute unit (``pfdays`` and ``pf_days`` also accepted)."""
    key = str(unit).strip().lower().replace("_", "-")
    key = "pf-days" if key == "pfdays" else key
    if key not in COMPUTE_UNITS:
        raise ConfigError(
            f"unknown compute unit {unit!r}. " + did_you_mean(str(unit), list(COMPUTE_UNITS))
        )
    return key


def unit_flops(unit: str) -> float:
    """FLOPs in one ``unit`` (``"flops"`` or ``"pf-days"``)."""
    from bayescale.runs.table import PF_DAY_FLOPS

    return PF_DAY_FLOPS if _compute_unit(unit) == "pf-days" else 1.0


def _default_grid(fit: Fit) -> np.ndarray:
    runs = fit.runs
    flops = 6.0 * np.asarray(runs["N"].values, dtype=float) * np.asarray(runs["D"].values)
    return np.geomspace(flops.min(), _GRID_REACH * flops.max(), _GRID_POINTS)
