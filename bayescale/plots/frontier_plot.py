"""The compute-optimal frontier of a law of N and D."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

import numpy as np

from bayescale.core.dims import SAMPLE_DIMS
from bayescale.core.errors import ConfigError

if TYPE_CHECKING:
    import xarray as xr
    from matplotlib.figure import Figure

    from bayescale.fitting.result import Fit

from bayescale.plots.style import LABELS, PALETTE, log_axes, runs_column, style
from bayescale.questions.optimal import optimal

__all__ = ["frontier", "plot_frontier"]


def frontier(
    fit: Fit, C: Any = None, *, group: str | None = None, prob: float = 0.94
) -> xr.Dataset:
    """Compute-optimal N, D and loss against compute, with HDI bands.

    Parameters
    ----------
    fit : Fit
        A ``kaplan_nd`` or ``chinchilla`` fit.
    C : array, optional
        Budgets in FLOPs (default the grid of :func:`bayescale.questions.optimal.optimal`).
    group : str, optional
        Group of a hierarchical fit (required there).
    prob : float, default 0.94
        HDI probability.

    Returns
    -------
    xarray.Dataset
        ``N_opt`` (parameters), ``D_opt`` (tokens), ``L_opt`` (nats/token): posterior mean of
        each (geometric for N and D), dim ``C`` (FLOPs); and ``<name>_band`` with
        ``ci_bound``.
    """
    if fit.pooling is not None and group is None:
        raise ConfigError(
            f"this fit varies by {fit.pooling.dim!r}: name one group for the frontier plot"
        )
    result = optimal(fit, C, prob=prob, group=group)
    draws = result.draws
    bands = result.bands()
    out = bands.rename({k: f"{k}_band" for k in ("N_opt", "D_opt", "L_opt")})
    with np.errstate(invalid="ignore", divide="ignore"):
        for k in ("N_opt", "D_opt"):
            # numpy's stubs type a ufunc of a DataArray as an ndarray; it is a DataArray.
            log_draws = cast("xr.DataArray", np.log(draws[k]))
            out[k] = np.exp(log_draws.mean(SAMPLE_DIMS, skipna=True))
        out["L_opt"] = draws["L_opt"].mean(SAMPLE_DIMS, skipna=True)
    return out.assign_attrs(law=fit.law.name, prob=prob, p_interior=float(result.p_interior.min()))


def plot_frontier(fit: Fit, C: Any = None, **options: Any) -> Figure:
    """Plot N_opt, D_opt and L_opt against compute in three panels with bands.

    Parameters
    ----------
    fit : Fit
        A ``kaplan_nd`` or ``chinchilla`` fit.
    C : array, optional
        Budgets in FLOPs.
    **options
        Passed to :func:`frontier`.

    Returns
    -------
    matplotlib.figure.Figure
    """
    # matplotlib is imported where used: the data function (frontier) needs no figure
    from matplotlib.figure import Figure

    data = frontier(fit, C, **options)
    c = data["C"].values
    with style():
        fig = Figure(figsize=(10.5, 3.3), layout="constrained")
        axes = fig.subplots(1, 3)
        runs_c = (
            runs_column(fit, "C")
            if "C" in fit.runs
            else 6 * runs_column(fit, "N") * runs_column(fit, "D")
        )
        for ax, key, label, colour in zip(
            axes,
            ("N_opt", "D_opt", "L_opt"),
            (
                "optimal model size N_opt (parameters)",
                "optimal data D_opt (tokens)",
                LABELS["loss"],
            ),
            PALETTE[1:4],
            strict=True,
        ):
            band = data[f"{key}_band"]
            ax.fill_between(
                c,
                band.sel(ci_bound="lower").values,
                band.sel(ci_bound="upper").values,
                color=colour,
                alpha=0.3,
                lw=0,
                label=f"{data.attrs['prob']:.0%} HDI",
            )
            ax.plot(c, data[key].values, color=colour, lw=1.6, label="posterior mean")
            ax.axvspan(runs_c.max(), c[-1], color="0.85", zorder=0, label="extrapolation")
            ax.set_xlabel(LABELS["C"])
            ax.set_ylabel(label)
            log_axes(ax)
        axes[0].legend(loc="upper left", frameon=False)
        fig.suptitle(f"compute-optimal frontier ({data.attrs['law']}, C = 6ND)")
    return fig
