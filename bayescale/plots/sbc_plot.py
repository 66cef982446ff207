"""Simulation-based calibration: ECDF differences of the ranks."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from bayescale.core.errors import ConfigError

if TYPE_CHECKING:
    import xarray as xr
    from matplotlib.figure import Figure


import json

from bayescale.calibration.sbc import sbc_ecdf_data, sbc_uniformity
from bayescale.plots.style import PALETTE, style

__all__ = ["plot_sbc"]


def plot_sbc(
    result: xr.Dataset,
    *,
    parameters: Sequence[str] | None = None,
    prob: float = 0.95,
    ncols: int = 4,
    seed: int = 0,
) -> Figure:
    """Plot the ECDF difference of each parameter's fractional ranks with its simultaneous band.

    One panel per parameter (the data of :func:`bayescale.calibration.sbc.sbc_ecdf_data`): the ECDF
    of the fractional ranks minus the uniform CDF, inside a band that a calibrated posterior
    leaves anywhere with probability ``1 - prob``. A curve above the band in the middle means
    posteriors too wide, an S through the band ends too narrow, a hump to one side a bias.
    Rejected parameters (:func:`bayescale.calibration.sbc.sbc_uniformity`) are drawn in vermilion.

    Parameters
    ----------
    result : xarray.Dataset
        Output of :func:`bayescale.calibration.sbc.sbc` (or
        :func:`~bayescale.calibration.sbc.load_sbc`).
    parameters : sequence of str, optional
        Parameters to draw, in order (default all).
    prob : float, default 0.95
        Simultaneous coverage of the band.
    ncols : int, default 4
        Panels per row.
    seed : int, default 0
        Seed of the Monte Carlo calibration of the band.

    Returns
    -------
    matplotlib.figure.Figure
    """
    # matplotlib is imported where used: the data function (sbc_ecdf_data) needs no
    # figure
    from matplotlib.figure import Figure

    names = [str(p) for p in result["parameter"].values]
    chosen = list(parameters) if parameters is not None else names
    unknown = [p for p in chosen if p not in names]
    if unknown or not chosen:
        raise ConfigError(
            f"SBC result has no parameter {unknown[0]!r}; it has {', '.join(names)}"
            if unknown
            else "plot_sbc needs at least one parameter"
        )
    if not isinstance(ncols, int) or ncols < 1:
        raise ConfigError(f"ncols must be a whole number >= 1, got {ncols!r}")
    verdict = result if "p_pot_c" in result else sbc_uniformity(result)
    data = sbc_ecdf_data(result.sel(parameter=chosen), prob=prob, seed=seed)
    x = data["x"].values
    band = data["band"]
    cols = min(ncols, len(chosen))
    rows = -(-len(chosen) // cols)
    with style():
        fig = Figure(figsize=(2.7 * cols, 2.2 * rows + 0.4), layout="constrained")
        axes = np.atleast_1d(fig.subplots(rows, cols, sharex=True, sharey=True, squeeze=False))
        for ax, name in zip(axes.ravel(), chosen, strict=False):
            rejected = bool(verdict["reject"].sel(parameter=name))
            colour = PALETTE[4] if rejected else PALETTE[1]
            ax.fill_between(
                x,
                band.sel(ci_bound="lower").values,
                band.sel(ci_bound="upper").values,
                color="0.6",
                alpha=0.3,
                lw=0,
                step="post",
                label=f"{prob:.0%} simultaneous band",
            )
            ax.axhline(0.0, color="0.4", lw=0.8)
            ax.step(
                x,
                data["ecdf_difference"].sel(parameter=name).values,
                where="post",
                color=colour,
                lw=1.3,
                label="ECDF − uniform",
            )
            p_pot = float(verdict["p_pot_c"].sel(parameter=name))
            p_chi2 = float(verdict["p_chi2"].sel(parameter=name))
            ax.set_title(f"{name}\np = {p_pot:.2g} (pot_c), {p_chi2:.2g} (χ²)", fontsize=8.5)
        for ax in axes.ravel()[len(chosen) :]:
            ax.set_visible(False)
        # The lowest panel of each column carries the x axis (the last row may be short).
        for ax in axes.ravel()[max(0, len(chosen) - cols) : len(chosen)]:
            ax.xaxis.set_tick_params(labelbottom=True)
            ax.set_xlabel("fractional rank (PIT)")
        for ax in axes[:, 0]:
            ax.set_ylabel("ECDF difference")
        axes.ravel()[0].legend(loc="lower left", frameon=False, fontsize=7)
        status = "uniform" if verdict.attrs["passed"] else "NOT uniform"
        groups = json.loads(result.attrs.get("config", "{}")).get("groups", 0)
        law = result.attrs.get("law", "a law") + (f" over {groups} groups" if groups else "")
        fig.suptitle(
            f"SBC of {law}: {data.attrs['n_used']} simulations, "
            f"{status} at family-wise α = {verdict.attrs['alpha']:g}"
        )
    return fig
