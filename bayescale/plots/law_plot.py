"""Data, law and bands (Kaplan et al. 2020, Fig. 1)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from bayescale.core.checks import check_probs
from bayescale.core.errors import ConfigError

if TYPE_CHECKING:
    import xarray as xr
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from bayescale.fitting.result import Fit

from bayescale.plots.style import (
    LABELS,
    PALETTE,
    PROBS,
    curve_dataset,
    draw_bands,
    figure_axes,
    log_axes,
    log_grid,
    runs_column,
    runs_mask,
    style,
)

__all__ = ["law_curve", "plot_law"]


def law_curve(
    fit: Fit,
    *,
    input: str | None = None,
    fixed: Mapping[str, float] | None = None,
    group: str | None = None,
    new_group: bool = False,
    extend: float = 1.0,
    n_grid: int = 60,
    probs: Sequence[float] = PROBS,
) -> xr.Dataset:
    """Posterior of the law's loss along one input: mean and HDI bands.

    Parameters
    ----------
    fit : Fit
        A fitted law.
    input : str, optional
        Input along the x axis (``N`` parameters, ``D`` tokens, ``C`` FLOPs, ``step``...);
        default the law's first input.
    fixed : mapping, optional
        Values of the law's other inputs (canonical units); default the largest fitted value
        of each, the best-trained runs, as in Kaplan et al.'s Fig. 1.
    group, new_group
        Group of a hierarchical fit, or a new group (see :meth:`bayescale.Fit.latents`).
    extend : float, default 1.0
        Decades beyond the largest fitted value to extrapolate to (shaded in the plot).
    n_grid : int, default 60
        Points of the log-spaced grid.
    probs : sequence of float
        HDI probabilities of the bands.

    Returns
    -------
    xarray.Dataset
        ``mean`` (nats/token, dim ``point``) and ``band`` (dims ``prob``, ``point``,
        ``ci_bound``) of the expected loss; coords ``x`` (the input's values along ``point``);
        attrs ``input``, ``fixed``, ``fitted_min``, ``fitted_max``.
    """
    # the predictions are imported where used: importing a plot module costs numpy only
    from bayescale.questions.predict import predict

    probs = check_probs(probs)
    name = input or fit.law.inputs[0]
    if name not in fit.law.inputs:
        raise ConfigError(
            f"law {fit.law.name!r} has inputs {', '.join(fit.law.inputs)}; not {name!r}"
        )
    x = runs_column(fit, name)
    lo, hi = float(x.min()), float(x.max())
    grid = log_grid(lo, hi * 10.0**extend, n_grid)
    others = {k: float(runs_column(fit, k).max()) for k in fit.law.inputs if k != name}
    others |= dict(fixed or {})
    pred = predict(fit, {name: grid, **others}, group=group, new_group=new_group)
    expected = pred.expected
    return curve_dataset(expected, grid, probs).assign_attrs(
        input=name, fixed=str(others), fitted_min=lo, fitted_max=hi
    )


def plot_law(
    fit: Fit,
    *,
    input: str | None = None,
    targets: Sequence[float] = (),
    ax: Axes | None = None,
    **options: Any,
) -> Figure:
    """Plot the runs, the posterior-mean law and its bands on log-log axes.

    Parameters
    ----------
    fit : Fit
        A fitted law.
    input : str, optional
        Input on the x axis (see :func:`law_curve`).
    targets : sequence of float
        Input values to mark (e.g. the model sizes you plan to train), same units as ``input``.
    ax : matplotlib.axes.Axes, optional
        Axes to draw on; default a new figure.
    **options
        Passed to :func:`law_curve` (``fixed``, ``group``, ``extend``, ``probs``...).

    Returns
    -------
    matplotlib.figure.Figure
    """
    name = input or fit.law.inputs[0]
    if len(targets) and name in fit.runs:
        # Reach the largest target, so its band is drawn where the line marks it.
        reach = np.log10(max(targets) / runs_column(fit, name).max())
        options["extend"] = max(options.get("extend", 1.0), float(reach) + 0.1)
    data = law_curve(fit, input=name, **options)
    with style():
        fig, ax = figure_axes(ax)
        x = data["x"].values
        draw_bands(ax, x, data["band"], PALETTE[1])
        ax.plot(x, data["mean"].values, color=PALETTE[1], lw=1.6, label="posterior mean")
        group = options.get("group")
        runs = runs_mask(fit, group)
        ax.plot(
            runs_column(fit, name)[runs],
            runs_column(fit, "loss")[runs],
            "o",
            color=PALETTE[0],
            ms=3.5,
            label=f"runs ({int(runs.sum())})",
        )
        ax.axvspan(data.attrs["fitted_max"], x[-1], color="0.85", zorder=0, label="extrapolation")
        for i, t in enumerate(targets):
            ax.axvline(t, color=PALETTE[4], ls="--", lw=1, label="target" if i == 0 else None)
        ax.set_xlabel(LABELS.get(name, name))
        ax.set_ylabel(LABELS["loss"])
        title = f"{fit.law.name}: {fit.law.formula}"
        ax.set_title(title if len(title) < 70 else fit.law.name)
        log_axes(ax)
        ax.legend(loc="best", frameon=False)
    return fig
