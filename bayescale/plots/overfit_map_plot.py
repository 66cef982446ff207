"""The overfitting map of L(N, D): penalty contours and the data needed."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

import numpy as np

from bayescale.core.dims import SAMPLE_DIMS
from bayescale.core.errors import ConfigError

if TYPE_CHECKING:
    import xarray as xr
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from bayescale.fitting.result import Fit

from bayescale.laws.base import laws_with
from bayescale.laws.kaplan import KAPLAN_D_COEF, KAPLAN_D_EXP
from bayescale.plots.style import (
    LABELS,
    PALETTE,
    figure_axes,
    hdi_bands,
    log_axes,
    log_grid,
    runs_column,
    runs_mask,
    style,
)
from bayescale.questions.overfit import latent_draws, overfit, penalty

__all__ = ["overfit_map", "plot_overfit_map"]


def overfit_map(
    fit: Fit,
    *,
    epsilon: float = 0.02,
    group: str | None = None,
    n_grid: int = 40,
    extend: float = 1.0,
    prob: float = 0.94,
) -> xr.Dataset:
    r"""Posterior mean of the overfitting penalty over an (N, D) grid, and the data needed.

    Parameters
    ----------
    fit : Fit
        A ``kaplan_nd`` or ``chinchilla`` fit.
    epsilon : float, default 0.02
        Tolerated penalty :math:`\delta L = L(N,D)/L(N,\infty) - 1` of the fitted line
        :math:`D_{\min}(N)`.
    group : str, optional
        Group of a hierarchical fit (required there).
    n_grid : int, default 40
        Grid points per axis.
    extend : float, default 1.0
        Decades beyond the fitted ranges.
    prob : float, default 0.94
        HDI probability of the :math:`D_{\min}` band.

    Returns
    -------
    xarray.Dataset
        ``delta_L`` (posterior mean, relative, dims ``D``, ``N``); ``D_min`` (tokens, dim
        ``N``), its HDI ``D_min_band`` (``N``, ``ci_bound``) and ``D_kaplan`` (Kaplan's
        :math:`5\times10^3 N^{0.74}`); run variables ``run_N``, ``run_D``, ``run_p_overfit``
        (dim ``run``).
    """
    # xarray and matplotlib are imported where used: importing a plot module
    # costs numpy only
    import xarray as xr

    if fit.law.data_need is None:
        raise ConfigError(
            f"the overfitting map needs a law of N and D with a data-need closed form "
            f"({', '.join(laws_with('data_need'))}), not {fit.law.name!r}"
        )
    if fit.pooling is not None and group is None:
        raise ConfigError(
            f"this fit varies by {fit.pooling.dim!r}: name one group for the overfitting map"
        )
    n_runs, d_runs = runs_column(fit, "N"), runs_column(fit, "D")
    n = xr.DataArray(log_grid(n_runs.min(), n_runs.max() * 10**extend, n_grid), dims="N", name="N")
    d = xr.DataArray(
        log_grid(d_runs.min() / 10**extend, d_runs.max() * 10**extend, n_grid), dims="D", name="D"
    )
    z = latent_draws(fit, group)
    with np.errstate(over="ignore", invalid="ignore"):
        delta = penalty(fit, z, n, d).mean(SAMPLE_DIMS).transpose("D", "N")
    check = overfit(fit, epsilon=epsilon, inputs={"N": n.values}, prob=prob, group=group)
    d_min = check.points["D_min"]
    # numpy's stubs type a ufunc of a DataArray as an ndarray; these are DataArrays.
    log_d_min = cast("xr.DataArray", np.log(d_min))
    log_band = hdi_bands(log_d_min, [prob]).isel(prob=0, drop=True)
    mask = runs_mask(fit, group)
    out = xr.Dataset(
        {
            "delta_L": delta.assign_attrs(units="relative"),
            "D_min": (
                "N",
                cast("xr.DataArray", np.exp(log_d_min.mean(SAMPLE_DIMS))).values,
                {"units": "tokens"},
            ),
            "D_min_band": (("N", "ci_bound"), np.exp(log_band.transpose("point", ...).values)),
            "D_kaplan": ("N", KAPLAN_D_COEF * n.values**KAPLAN_D_EXP, {"units": "tokens"}),
            "run_N": ("run", n_runs[mask]),
            "run_D": ("run", d_runs[mask]),
            "run_p_overfit": ("run", check.p_overfit.values),
        },
        coords={"N": n.values, "D": d.values, "ci_bound": ["lower", "upper"]},
    )
    return out.assign_attrs(epsilon=epsilon, prob=prob, law=fit.law.name)


def plot_overfit_map(fit: Fit, *, ax: Axes | None = None, **options: Any) -> Figure:
    r"""Plot contours of the overfitting penalty over (N, D) with the data-needed lines.

    The fitted :math:`D_{\min}(N)` (with its band) is drawn beside Kaplan et al.'s
    :math:`D = 5\times10^3 N^{0.74}`; runs are marked, flagged runs (penalty more likely than
    not above epsilon) with a red cross.

    Parameters
    ----------
    fit : Fit
        A ``kaplan_nd`` or ``chinchilla`` fit.
    ax : matplotlib.axes.Axes, optional
        Axes to draw on.
    **options
        Passed to :func:`overfit_map`.

    Returns
    -------
    matplotlib.figure.Figure
    """
    data = overfit_map(fit, **options)
    n, d = data["N"].values, data["D"].values
    eps = data.attrs["epsilon"]
    with style():
        fig, ax = figure_axes(ax, figsize=(5.4, 4.0))
        levels = np.array([0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0])
        delta = np.clip(data["delta_L"].values, 1e-6, None)
        from matplotlib.colors import LogNorm

        filled = ax.contourf(
            n, d, delta, levels=levels, cmap="cividis_r", extend="both", norm=LogNorm(1e-3, 1.0)
        )
        fig.colorbar(filled, ax=ax, label="posterior mean δL = L(N,D)/L(N,∞) − 1")
        band = data["D_min_band"]
        ax.fill_between(
            n,
            band.sel(ci_bound="lower").values,
            band.sel(ci_bound="upper").values,
            color=PALETTE[1],
            alpha=0.3,
            lw=0,
        )
        ax.plot(n, data["D_min"].values, color=PALETTE[1], lw=1.8, label=f"fitted δL = {eps:g}")
        ax.plot(
            n,
            data["D_kaplan"].values,
            color=PALETTE[2],
            lw=1.5,
            ls="--",
            label="Kaplan D = 5e3·N^0.74",
        )
        flagged = data["run_p_overfit"].values > 0.5
        rn, rd = data["run_N"].values, data["run_D"].values
        ax.plot(rn[~flagged], rd[~flagged], "o", color="white", mec="black", ms=4, label="runs")
        if flagged.any():
            ax.plot(rn[flagged], rd[flagged], "x", color=PALETTE[4], ms=6, mew=1.6, label="flagged")
        ax.set_xlim(n[0], n[-1])
        ax.set_ylim(d[0], d[-1])
        ax.set_xlabel(LABELS["N"])
        ax.set_ylabel(LABELS["D"])
        ax.set_title(f"overfitting penalty ({data.attrs['law']})")
        log_axes(ax)
        ax.legend(loc="lower right", frameon=True, framealpha=0.8)
    return fig
