r"""The overfitting check: the penalty of finite data, and the data a model size needs.

Kaplan et al. (2020, sec. 4.2) measure overfitting by how much a finite dataset raises the loss
above that of the same model trained on unlimited data,

.. math::

    \delta L(N, D) = \frac{L(N, D)}{L(N, \infty)} - 1 ,

and ask for the data :math:`D_{\min}(N)` that keeps :math:`\delta L` below :math:`\varepsilon`,
the run-to-run variation of the loss (about 2 %, hence the default ``epsilon=0.02``).

``kaplan_nd``, :math:`L = [(N_c/N)^{\alpha_N/\alpha_D} + D_c/D]^{\alpha_D}`, has
:math:`L(N, \infty) = (N_c/N)^{\alpha_N}`, so

.. math::

    \delta L = \left[1 + \frac{D_c}{D}\left(\frac{N}{N_c}\right)^{\alpha_N/\alpha_D}
    \right]^{\alpha_D} - 1, \qquad
    D_{\min}(N) = k\, N^{\alpha_N/\alpha_D}, \quad
    k = \frac{D_c\, N_c^{-\alpha_N/\alpha_D}}{(1 + \varepsilon)^{1/\alpha_D} - 1}

(Kaplan eq. 4.4: :math:`D \gtrsim 5 \times 10^3\, N^{0.74}` tokens).

``chinchilla``, :math:`L = E + A/N^{\alpha} + B/D^{\beta}`, by the same definition has
:math:`L(N, \infty) = E + A/N^{\alpha}`, so

.. math::

    \delta L = \frac{B/D^{\beta}}{E + A/N^{\alpha}}, \qquad
    D_{\min}(N) = \left[\frac{B}{\varepsilon\,(E + A/N^{\alpha})}\right]^{1/\beta} .

This is not a power law in :math:`N`: its local exponent

.. math::

    \gamma(N) = \frac{d \log D_{\min}}{d \log N}
    = \frac{\alpha}{\beta}\, \frac{A/N^{\alpha}}{E + A/N^{\alpha}}

falls from :math:`\alpha/\beta` for small models (where the reducible :math:`N` term dominates
the loss) towards 0 for large ones (where the floor :math:`E` dominates, and the data needed
to stay within :math:`\varepsilon` of :math:`L(N, \infty)` approaches
:math:`(B/\varepsilon E)^{1/\beta}`). The exponent and coefficient are therefore read at a
reference model size :math:`N_{\rm ref}` (default: the largest fitted :math:`N`, where
extrapolation starts), with :math:`k = D_{\min}(N_{\rm ref}) / N_{\rm ref}^{\gamma}`, so that
:math:`D_{\min} \approx k N^{\gamma}` near :math:`N_{\rm ref}`. For ``kaplan_nd`` the exponent
is the constant :math:`\alpha_N/\alpha_D` and :math:`k` is exact whatever :math:`N_{\rm ref}`.

Every quantity is computed draw by draw, so each has a posterior. :math:`\delta L` itself is
evaluated with the law's own formula (:attr:`bayescale.laws.base.Law.log_loss`) at :math:`D` and at
:math:`D = \infty`; only :math:`D_{\min}` and :math:`\gamma` need per-law closed forms.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from bayescale.core.checks import check_prob
from bayescale.core.dims import POINT, SAMPLE_DIMS
from bayescale.core.errors import ConfigError, UnknownNameError, did_you_mean
from bayescale.laws.base import DataNeed, Params, get_law, laws_with

if TYPE_CHECKING:
    import xarray as xr

    from bayescale.fitting.result import Fit

__all__ = ["Overfit", "overfit"]

#: Kaplan et al.'s run-to-run variation of the loss between random seeds (sec. 4.2).
DEFAULT_EPSILON = 0.02
#: Dimension of the (N, D) points asked about.


@dataclass(frozen=True)
class Overfit:
    r"""Posterior of the overfitting penalty and of the data needed per model size.

    Attributes
    ----------
    law : str
        Name of the fitted law.
    epsilon : float
        Tolerated penalty :math:`\varepsilon` (relative: 0.02 = 2 % above :math:`L(N, \infty)`).
    prob : float
        Probability of the highest-density intervals.
    reference_N : float
        Model size (parameters) at which ``exponent`` and ``coefficient`` are read; irrelevant
        for ``kaplan_nd``, whose data requirement is an exact power law.
    group_dim : str or None
        Name of the group dimension for hierarchical fits (the group column).
    exponent : xarray.DataArray
        :math:`d \log D_{\min} / d \log N` at ``reference_N`` (``kaplan_nd``:
        :math:`\alpha_N/\alpha_D`), dimensionless; dims ``(chain, draw)`` plus the group dim
        where the fit's parameters vary by group.
    coefficient : xarray.DataArray
        :math:`k` in :math:`D_{\min} \approx k N^{\gamma}` (tokens / parameters^exponent),
        dims as ``exponent``.
    runs : xarray.Dataset
        ``delta_L`` of each fitted run (relative, dims ``(chain, draw, run)``) with coordinates
        ``N``, ``D`` and, for hierarchical fits, ``group``.
    points : xarray.Dataset
        At the asked model sizes (dim ``point``, coordinate ``N`` and, if asked, ``D``):
        ``D_min`` (tokens) and, where ``D`` was given, ``delta_L``.
    """

    law: str
    epsilon: float
    prob: float
    reference_N: float
    group_dim: str | None
    exponent: xr.DataArray
    coefficient: xr.DataArray
    runs: xr.Dataset
    points: xr.Dataset

    @property
    def p_overfit(self) -> xr.DataArray:
        """Posterior probability that each run's penalty exceeds ``epsilon``, dims ``run``."""
        return (self.runs["delta_L"] > self.epsilon).mean(SAMPLE_DIMS)

    @property
    def flagged(self) -> xr.DataArray:
        """Runs whose penalty is more likely than not above ``epsilon``, dims ``run``."""
        return self.p_overfit > 0.5

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary.

        Keys: ``law``, ``epsilon``, ``prob``, ``reference_N``, ``exponent`` and
        ``coefficient`` (each ``{"mean", "lo", "hi"}``), ``runs`` (one row per fitted run:
        ``index``, ``N``, ``D``, ``delta_L_mean``, ``delta_L_hi`` (upper HDI bound),
        ``p_overfit``, ``overfit``) and ``points`` (one row per asked ``N``: ``N``, ``D_min``
        as ``{"mean", "lo", "hi"}`` and, where ``D`` was asked, ``D``, ``delta_L_mean``,
        ``delta_L_hi``, ``p_overfit``, ``overfit``).

        Scales (``coefficient``, ``D_min``) are summarised in decades: ``mean`` is the
        geometric mean and ``lo``/``hi`` the HDI of the log, transformed back. For hierarchical
        fits run rows carry their ``group``; without ``group=``, a quantity that varies by group
        becomes a list of such dicts, each with a ``group`` key, and point rows are repeated per
        group with their ``group``.
        """
        doc: dict[str, Any] = {
            "law": self.law,
            "epsilon": self.epsilon,
            "prob": self.prob,
            "reference_N": self.reference_N,
            "exponent": summary_json(self.exponent, self.prob, self.group_dim),
            "coefficient": summary_json(self.coefficient, self.prob, self.group_dim, log=True),
        }
        delta = summarise(self.runs["delta_L"], self.prob)
        p_over = self.p_overfit
        rows = []
        for i in range(self.runs.sizes["run"]):
            row: dict[str, Any] = {"index": int(self.runs["run"].values[i])}
            if "group" in self.runs.coords:
                row["group"] = str(self.runs["group"].values[i])
            row |= {
                "N": float(self.runs["N"].values[i]),
                "D": float(self.runs["D"].values[i]),
                "delta_L_mean": float(delta["mean"].values[i]),
                "delta_L_hi": float(delta["hi"].values[i]),
                "p_overfit": float(p_over.values[i]),
                "overfit": bool(p_over.values[i] > 0.5),
            }
            rows.append(row)
        doc["runs"] = rows
        doc["points"] = self._point_rows()
        return doc

    def _point_rows(self) -> list[dict[str, Any]]:
        pts = self.points
        if pts.sizes.get(POINT, 0) == 0:
            return []
        d_min = summarise(pts["D_min"], self.prob, log=True)
        has_d = "delta_L" in pts
        if has_d:
            delta = summarise(pts["delta_L"], self.prob)
            p_over = (pts["delta_L"] > self.epsilon).mean(SAMPLE_DIMS)
        groups = _labels(d_min, self.group_dim)
        rows = []
        for g in groups:
            # A group label g comes from _labels, so then group_dim is a str.
            sel = {} if g is None else {cast(str, self.group_dim): g}
            for j in range(pts.sizes[POINT]):
                at = {**sel, POINT: j}
                row: dict[str, Any] = {} if g is None else {"group": g}
                row["N"] = float(pts["N"].values[j])
                row["D_min"] = _triple(d_min, at)
                if has_d:
                    p = pick(p_over, at)
                    row |= {
                        "D": float(pts["D"].values[j]),
                        "delta_L_mean": pick(delta["mean"], at),
                        "delta_L_hi": pick(delta["hi"], at),
                        "p_overfit": p,
                        "overfit": p > 0.5,
                    }
                rows.append(row)
        return rows


def overfit(
    fit: Fit,
    *,
    epsilon: float = DEFAULT_EPSILON,
    inputs: Mapping[str, Any] | None = None,
    prob: float = 0.94,
    group: str | None = None,
    reference_N: float | None = None,
) -> Overfit:
    r"""Posterior of the overfitting penalty :math:`\delta L` and of the data needed per size.

    Parameters
    ----------
    fit : Fit
        A fit of a law of ``N`` and ``D``: ``kaplan_nd`` or ``chinchilla`` (see the module
        docstring for the analogous definition used for ``chinchilla``).
    epsilon : float, default 0.02
        Tolerated penalty, relative to :math:`L(N, \infty)` (0.02 = 2 %, Kaplan's run-to-run
        variation).
    inputs : mapping, optional
        Model sizes ``N`` (parameters) at which to report :math:`D_{\min}` and, if ``D``
        (tokens) is also given, the penalty at each :math:`(N, D)`; arrays broadcast into
        points.
    prob : float, default 0.94
        Probability of the highest-density intervals.
    group : str, optional
        For a hierarchical fit, report one group (its runs only). Default: every group, with
        the group dimension on group-varying quantities.
    reference_N : float, optional
        Model size (parameters) at which the local exponent and coefficient of
        :math:`D_{\min}(N)` are read; default the largest fitted ``N``. Only matters for laws
        where :math:`D_{\min}` is not an exact power law (``chinchilla``).

    Returns
    -------
    Overfit
        Exponent and coefficient of :math:`D_{\min}(N) = k N^{\gamma}`, the penalty of every
        fitted run (flagged where :math:`P(\delta L > \varepsilon) > 0.5`) and the asked points.

    Raises
    ------
    ConfigError
        If the law has no ``D`` (no overfitting to speak of), has no closed form here, or an
        option is out of range.

    Examples
    --------
    >>> import bayescale as bs
    >>> f = bs.fit("kaplan_ladder", "kaplan_nd", draws=500, tune=500)  # doctest: +SKIP
    >>> check = overfit(f, inputs={"N": 1e10})  # doctest: +SKIP
    >>> check.to_dict()["exponent"]  # doctest: +SKIP
    {'mean': 0.74, 'lo': 0.71, 'hi': 0.78}
    """
    # xarray and arviz_stats are imported where used: importing a question costs
    # numpy only (the plots' style and the report import this one)
    import xarray as xr

    law = fit.law
    need = _data_need(law.name, law.inputs)
    if not (np.isfinite(epsilon) and epsilon > 0):
        raise ConfigError(f"epsilon must be a positive number (0.02 = 2 %), got {epsilon}")
    check_prob(prob)
    dim = fit.pooling.dim if fit.pooling is not None else None
    z = latent_draws(fit, group)
    centre = fit.data_summary.centre
    params = law.to_params(z, centre, np)

    table = fit.runs
    n_run = xr.DataArray(np.asarray(table["N"].values, dtype=float), dims="run")
    d_run = xr.DataArray(np.asarray(table["D"].values, dtype=float), dims="run")
    coords: dict[str, Any] = {"run": table["run"].values, "N": n_run, "D": d_run}
    z_run = z
    if dim is not None:
        labels = run_groups(fit)
        keep = np.ones(labels.size, dtype=bool) if group is None else labels == group
        coords |= {"run": coords["run"][keep], "N": n_run[keep], "D": d_run[keep]}
        coords["group"] = ("run", labels[keep])
        n_run, d_run = n_run[keep], d_run[keep]
        if group is None:
            which = xr.DataArray(labels[keep], dims="run")
            z_run = {
                k: v.sel({dim: which}, drop=True) if dim in v.dims else v for k, v in z.items()
            }
    delta_run = penalty(fit, z_run, n_run, d_run).transpose(*SAMPLE_DIMS, "run")
    runs = xr.Dataset({"delta_L": delta_run.assign_attrs(units="relative")}, coords=coords)

    if reference_N is None:
        reference_N = float(np.max(table["N"].values))
    elif not (np.isfinite(reference_N) and reference_N > 0):
        raise ConfigError(f"reference_N must be a positive number of parameters, got {reference_N}")
    exponent = need.exponent(params, reference_N, epsilon)
    coefficient = need.d_min(params, reference_N, epsilon) / reference_N**exponent
    points = _points_dataset(fit, need, params, z, inputs, epsilon)
    return Overfit(
        law=law.name,
        epsilon=float(epsilon),
        prob=float(prob),
        reference_N=float(reference_N),
        group_dim=dim if group is None else None,
        exponent=_ordered(exponent).assign_attrs(units="dimensionless"),
        coefficient=_ordered(coefficient).assign_attrs(units="tokens / parameters^exponent"),
        runs=runs,
        points=points,
    )


def penalty(fit: Fit, z: Mapping[str, Any], n: Any, d: Any) -> xr.DataArray:
    r"""Return the penalty :math:`\delta L = L(N, D)/L(N, \infty) - 1` from the law's formula.

    Parameters
    ----------
    fit : Fit
        The fit (for its law and the centre of its inputs).
    z : mapping
        Latent draws (xarray), as from :func:`latent_draws`.
    n, d : xarray.DataArray
        Model sizes (parameters) and dataset sizes (tokens), broadcast by dim name.

    Returns
    -------
    xarray.DataArray
        Relative penalty, 0.02 = 2 % above the loss at unlimited data.
    """
    import xarray as xr

    centre = fit.data_summary.centre
    u_n = np.log(n) - centre["N"]
    u_d = np.log(d) - centre["D"]
    finite = fit.law.log_loss(z, {"N": u_n, "D": u_d}, np)
    unlimited = fit.law.log_loss(z, {"N": u_n, "D": xr.full_like(u_d, np.inf)}, np)
    return np.expm1(finite - unlimited)


# --------------------------------------------------------------------------------------------
# Helpers shared with bayescale.questions.optimal
# --------------------------------------------------------------------------------------------
def latent_draws(fit: Fit, group: str | None) -> dict[str, xr.DataArray]:
    """Posterior draws of the law's latents: one group's, or every group's along its dim.

    A pooled fit refuses ``group``; a hierarchical fit without ``group`` keeps the group dim
    on the latents that vary by group (:meth:`bayescale.fitting.result.Fit.latents` asks for one).
    """
    if group is not None or fit.pooling is None:
        return fit.latents(group=group)
    post = fit.posterior
    return {k: post[k] for k in fit.law.latents}


def run_groups(fit: Fit) -> np.ndarray:
    """Group label of each fitted run (hierarchical fits)."""
    from bayescale.runs.table import group_labels

    return np.asarray(group_labels(fit.runs, fit.meta["groups"]), dtype=str)


def summarise(da: xr.DataArray, prob: float, *, log: bool = False) -> xr.Dataset:
    """Mean and HDI over ``(chain, draw)``, skipping NaN draws; ``log``: in decades.

    Returns
    -------
    xarray.Dataset
        ``mean``, ``lo``, ``hi`` with the remaining dims of ``da``. With ``log=True`` the mean
        is geometric and the interval the HDI of the log, transformed back.
    """
    import arviz_stats as azs
    import xarray as xr

    # numpy's stubs type a ufunc of an xarray object as an ndarray (here and in the return).
    values = cast("xr.DataArray", np.log(da)) if log else da
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = values.mean(SAMPLE_DIMS, skipna=True)
        interval = azs.hdi(values, prob=prob, dim=list(SAMPLE_DIMS), skipna=True)
    out = xr.Dataset(
        {
            "mean": mean,
            "lo": interval.sel(ci_bound="lower", drop=True),
            "hi": interval.sel(ci_bound="upper", drop=True),
        }
    )
    return cast("xr.Dataset", np.exp(out)) if log else out


def summary_json(
    da: xr.DataArray, prob: float, group_dim: str | None, *, log: bool = False
) -> dict[str, float] | list[dict[str, Any]]:
    """``{"mean", "lo", "hi"}`` of a draw array, or one such dict per group."""
    s = summarise(da, prob, log=log)
    groups = _labels(s, group_dim)
    if groups == [None]:
        return _triple(s, {})
    assert group_dim is not None  # _labels found the group dim
    return [{"group": g, **_triple(s, {group_dim: g})} for g in groups]


def _triple(s: xr.Dataset, at: Mapping[str, Any]) -> dict[str, float]:
    return {k: pick(s[k], at) for k in ("mean", "lo", "hi")}


def pick(da: xr.DataArray, at: Mapping[str, Any]) -> float:
    """Return one value of ``da``: labels along group dims, positions along others."""
    by_label = {k: v for k, v in at.items() if k in da.dims and isinstance(v, str)}
    by_pos = {k: v for k, v in at.items() if k in da.dims and not isinstance(v, str)}
    return float(da.sel(by_label).isel(by_pos).values)


def _labels(obj: Any, group_dim: str | None) -> list[Any]:
    if group_dim is None or group_dim not in obj.dims:
        return [None]
    return [str(v) for v in obj[group_dim].values]


def _ordered(da: Any) -> xr.DataArray:
    """Put ``chain`` and ``draw`` first (the group dim, if any, after them)."""
    return da.transpose(*SAMPLE_DIMS, ...)


def _data_need(name: str, inputs: tuple[str, ...]) -> DataNeed:
    if "D" not in inputs or "N" not in inputs:
        raise ConfigError(
            f"the overfitting check needs a law of model size N and data D (kaplan_nd or "
            f"chinchilla); this fit is of {name!r}, whose inputs are {', '.join(inputs)}, so "
            "there is no finite-data penalty to measure. Refit with --law kaplan_nd"
        )
    need = get_law(name).data_need
    if need is None:
        raise ConfigError(
            f"no overfitting closed form for law {name!r}; laws supported: "
            + ", ".join(laws_with("data_need"))
        )
    return need


def _points_dataset(
    fit: Fit,
    need: DataNeed,
    params: Params,
    z: Mapping[str, Any],
    inputs: Mapping[str, Any] | None,
    epsilon: float,
) -> xr.Dataset:
    import xarray as xr

    if not inputs:
        return xr.Dataset(coords={"N": (POINT, np.zeros(0))})
    unknown = [k for k in inputs if k not in ("N", "D")]
    if unknown:
        raise UnknownNameError(
            f"the overfitting check takes inputs N and D, not {unknown[0]!r}. "
            + did_you_mean(unknown[0], ["N", "D"])
        )
    if "N" not in inputs:
        raise ConfigError("give the model sizes N at which to report the data needed")
    names = [k for k in ("N", "D") if k in inputs]
    arrays = np.broadcast_arrays(
        *(np.atleast_1d(np.asarray(inputs[k], dtype=float)) for k in names)
    )
    flat = {k: a.ravel() for k, a in zip(names, arrays, strict=True)}
    for k, a in flat.items():
        if not np.all(np.isfinite(a) & (a > 0)):
            raise ConfigError(f"input {k!r} must be positive and finite, got {a.tolist()}")
    coords = {k: (POINT, a) for k, a in flat.items()}
    n = xr.DataArray(flat["N"], dims=POINT)
    out = {"D_min": _ordered(need.d_min(params, n, epsilon)).assign_attrs(units="tokens")}
    if "D" in flat:
        d = xr.DataArray(flat["D"], dims=POINT)
        out["delta_L"] = _ordered(penalty(fit, z, n, d)).assign_attrs(units="relative")
    return xr.Dataset(out, coords=coords)
