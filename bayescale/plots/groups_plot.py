"""Grouped fits: one curve per group and the new-group band."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from bayescale.core.errors import ConfigError

if TYPE_CHECKING:
    import xarray as xr
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from bayescale.fitting.result import Fit

from bayescale.plots.law_plot import law_curve
from bayescale.plots.style import (
    LABELS,
    NAMED_SERIES,
    PALETTE,
    PROBS,
    draw_bands,
    figure_axes,
    log_axes,
    runs_column,
    style,
)
from bayescale.questions.overfit import run_groups

__all__ = ["group_curves", "plot_groups"]


def group_curves(
    fit: Fit,
    *,
    input: str | None = None,
    extend: float = 1.0,
    n_grid: int = 50,
    probs: Sequence[float] = PROBS,
) -> xr.Dataset:
    """Per-group laws and the band of a new, unseen group, along one input.

    Returns
    -------
    xarray.Dataset
        ``mean`` (dims ``group``, ``point``) and ``band`` (``group``, ``prob``, ``point``,
        ``ci_bound``); the group coordinate holds each label and ``"new group"`` last (its
        parameters drawn from the population). Attrs ``input``, ``group_dim``.
    """
    # xarray is imported where used: importing a plot module costs numpy only
    import xarray as xr

    pooling = fit.pooling
    if pooling is None:
        raise ConfigError("group plots need a hierarchical fit (fit with groups=...)")
    name = input or fit.law.inputs[0]
    x = runs_column(fit, name)
    opts: dict[str, Any] = {"input": name, "extend": extend, "n_grid": n_grid, "probs": probs}
    curves = [law_curve(fit, group=str(g), **opts) for g in pooling.labels]
    curves.append(law_curve(fit, new_group=True, **opts))
    labels = [*map(str, pooling.labels), "new group"]
    out = xr.concat(curves, dim="group").assign_coords(group=labels)
    out["x"] = curves[0]["x"]
    return out.assign_attrs(
        input=name, group_dim=pooling.dim, fitted_max=float(x.max()), fitted_min=float(x.min())
    )


def plot_groups(fit: Fit, *, ax: Axes | None = None, **options: Any) -> Figure:
    """Plot each group's runs and law in its own colour, and the new-group band in grey.

    The legend names the groups while each has a colour of its own (at most
    :data:`NAMED_SERIES`); with more, colours repeat and one entry stands for all their runs.

    Parameters
    ----------
    fit : Fit
        A hierarchical fit.
    ax : matplotlib.axes.Axes, optional
        Axes to draw on.
    **options
        Passed to :func:`group_curves`.

    Returns
    -------
    matplotlib.figure.Figure
    """
    data = group_curves(fit, **options)
    name = data.attrs["input"]
    labels = [str(g) for g in data["group"].values]
    x = data["x"].values
    members = run_groups(fit)
    with style():
        fig, ax = figure_axes(ax)
        new = data.sel(group="new group")
        draw_bands(ax, x, new["band"].isel(prob=[0]), "0.5", label="new group")
        ax.plot(x, new["median"].values, color="0.35", lw=1.2, ls="--", label="new group median")
        groups = labels[:-1]
        named = len(groups) <= NAMED_SERIES
        for i, g in enumerate(groups):
            colour = PALETTE[1 + i % (len(PALETTE) - 1)]
            one = data.sel(group=g)
            draw_bands(ax, x, one["band"].isel(prob=[-1]), colour, label="_group")
            ax.plot(x, one["mean"].values, color=colour, lw=1.4)
            mask = members == g
            ax.plot(
                runs_column(fit, name)[mask],
                runs_column(fit, "loss")[mask],
                "o",
                color=colour,
                mec="black",
                mew=0.4,
                ms=4,
                label=g if named else (f"runs of the {len(groups)} groups" if i == 0 else None),
            )
        ax.set_xlabel(LABELS.get(name, name))
        ax.set_ylabel(LABELS["loss"])
        n = len(groups)
        ax.set_title(f"{fit.law.name} by {data.attrs['group_dim']} ({n} group{'s' * (n != 1)})")
        log_axes(ax)
        # Group labels are user text: matplotlib draws them as text, never as markup (mathtext
        # is only parsed between $...$, which the legend escapes below).
        handles, names = ax.get_legend_handles_labels()
        ax.legend(
            handles,
            [n.replace("$", r"\$") for n in names],
            loc="upper right",
            frameon=False,
            ncols=2,
        )
    return fig
