"""The extrapolation fan from the largest run to the asked target."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from bayescale.core.checks import check_probs
from bayescale.core.dims import SAMPLE_DIMS

if TYPE_CHECKING:
    import xarray as xr
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from bayescale.fitting.result import Fit
    from bayescale.questions.predict import Prediction

from bayescale.plots.style import (
    LABELS,
    PALETTE,
    PROBS,
    figure_axes,
    log_axes,
    runs_column,
    style,
)

__all__ = ["fan", "plot_fan"]


def fan(
    fit: Fit,
    inputs: Mapping[str, Any],
    *,
    probs: Sequence[float] = PROBS,
    group: str | None = None,
    new_group: bool = False,
    seed: int = 0,
) -> xr.Dataset:
    """Predictive distribution of the loss of one new run at each of several inputs.

    Parameters
    ----------
    fit : Fit
        A fitted law.
    inputs : mapping
        The law's inputs at the points to predict (canonical units), broadcast together.
    probs : sequence of float
        HDI probabilities.
    group, new_group, seed
        See :func:`bayescale.questions.predict.predict`.

    Returns
    -------
    xarray.Dataset
        ``median`` (dim ``point``) and ``band`` (dims ``prob``, ``point``, ``ci_bound``) of the
        observed loss (nats/token), and ``draws`` (``chain``, ``draw``, ``point``); the inputs
        are ``point`` coords.
    """
    # xarray and the predictions are imported where used: every plot module is a lazy
    # export of bayescale.plots, and importing one costs numpy only
    import xarray as xr

    from bayescale.questions.predict import predict

    probs = check_probs(probs)
    pred: Prediction = predict(fit, inputs, group=group, new_group=new_group, seed=seed)
    obs = pred.observed
    # Bands exact in the run-to-run noise, the same numbers as Prediction.summary.
    band = xr.concat([pred.observed_hdi(p).drop_attrs() for p in probs], dim="prob")
    band = band.assign_coords(prob=list(probs))
    return xr.Dataset(
        {"median": obs.median(SAMPLE_DIMS), "band": band, "draws": obs},
    ).assign_attrs(law=fit.law.name, units="nats/token")


def plot_fan(
    fit: Fit,
    inputs: Mapping[str, Any],
    *,
    input: str | None = None,
    ax: Axes | None = None,
    **options: Any,
) -> Figure:
    """Plot the predictive loss at larger inputs as interval bars beside the fitted runs.

    Parameters
    ----------
    fit : Fit
        A fitted law.
    inputs : mapping
        Inputs to predict at (see :func:`fan`).
    input : str, optional
        Input on the x axis (default the law's first input).
    ax : matplotlib.axes.Axes, optional
        Axes to draw on.
    **options
        Passed to :func:`fan`.

    Returns
    -------
    matplotlib.figure.Figure
    """
    data = fan(fit, inputs, **options)
    name = input or fit.law.inputs[0]
    x = np.asarray(data[name].values, dtype=float)
    with style():
        fig, ax = figure_axes(ax)
        ax.plot(
            runs_column(fit, name),
            runs_column(fit, "loss"),
            "o",
            color=PALETTE[0],
            ms=3,
            alpha=0.6,
            label="runs",
        )
        probs = [float(p) for p in data["prob"].values]
        for i, p in enumerate(probs):
            b = data["band"].sel(prob=p)
            lo, hi = b.sel(ci_bound="lower").values, b.sel(ci_bound="upper").values
            ax.vlines(
                x, lo, hi, color=PALETTE[1], lw=1.5 + 3.5 * i, label=f"{p:.0%} predictive HDI"
            )
        ax.plot(x, data["median"].values, "o", color="white", mec=PALETTE[1], ms=5, label="median")
        ax.set_xlabel(LABELS.get(name, name))
        ax.set_ylabel(LABELS["loss"])
        ax.set_title(f"predicted loss of one new run ({fit.law.name})")
        log_axes(ax)
        ax.legend(loc="best", frameon=False)
    return fig
