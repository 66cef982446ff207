"""Learning curves of a curve fit, with bands."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from bayescale.core.checks import check_probs
from bayescale.core.errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd
    import xarray as xr
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from bayescale.fitting.result import Fit

from bayescale.plots.style import (
    LABELS,
    NAMED_SERIES,
    PALETTE,
    PROBS,
    curve_dataset,
    draw_bands,
    figure_axes,
    log_axes,
    log_grid,
    runs_column,
    style,
)
from bayescale.questions.curves import predict_runs

__all__ = ["curve_bands", "plot_curves"]


def curve_bands(
    fit: Fit,
    *,
    steps: Any = None,
    runs: Sequence[str] | None = None,
    extend: float = 1.0,
    n_grid: int = 30,
    probs: Sequence[float] = PROBS,
    seed: int = 0,
) -> xr.Dataset:
    """Posterior of each run's learning curve, extrapolated past its last fitted step.

    Parameters
    ----------
    fit : Fit
        A curve law fitted with ``run_id`` (:mod:`bayescale.questions.curves`).
    steps : array, optional
        Steps to predict at (default log-spaced from the first fitted step to ``extend``
        decades past the last).
    runs : sequence of str, optional
        Runs to show (default all).
    extend : float, default 1.0
        Decades past the last fitted step for the default grid.
    n_grid : int, default 30
        Points of the default grid.
    probs : sequence of float
        HDI probabilities.
    seed : int
        Seed of the noise draws.

    Returns
    -------
    xarray.Dataset
        ``mean`` (nats/token, dim ``point``) and ``band`` (``prob``, ``point``, ``ci_bound``)
        of each run's expected loss; ``point`` coords ``run`` (id) and ``step``; attr
        ``run_id`` (the run id column).
    """
    probs = check_probs(probs)
    spec = fit.meta.get("run_effect")
    if not spec:
        raise ConfigError(
            "learning-curve plots need a curve fit with run_id= (bayescale.questions.curves)"
        )
    run_id = spec["dim"]
    labels = list(runs) if runs is not None else [str(r) for r in spec["labels"]]
    s = runs_column(fit, "step")
    grid = log_grid(s.min(), s.max() * 10**extend, n_grid) if steps is None else np.asarray(steps)
    pred = predict_runs(fit, grid, runs=labels, seed=seed)
    expected = pred.expected
    out = curve_dataset(expected, np.asarray(pred.inputs["step"], dtype=float), probs)
    ids = np.asarray(expected[run_id].values).astype(str)
    out = out.drop_vars(run_id, errors="ignore")
    out = out.assign_coords(run=("point", ids), step=("point", out["x"].values))
    return out.assign_attrs(run_id=run_id, last_fitted=float(s.max()))


def plot_curves(
    fit: Fit,
    *,
    later: pd.DataFrame | None = None,
    ax: Axes | None = None,
    **options: Any,
) -> Figure:
    """Plot learning curves: fitted points, each run's band, and (optionally) the later truth.

    Parameters
    ----------
    fit : Fit
        A curve law fitted with ``run_id`` to the early part of the curves.
    later : pandas.DataFrame, optional
        Rows logged after the fitted ones (run id, ``step``, ``loss``), drawn as open circles
        to show how the early-extrapolation bands did.
    ax : matplotlib.axes.Axes, optional
        Axes to draw on.
    **options
        Passed to :func:`curve_bands`.

    Returns
    -------
    matplotlib.figure.Figure
    """
    data = curve_bands(fit, **options)
    run_id = data.attrs["run_id"]
    ids = np.asarray(fit.runs[run_id].values).astype(str)
    labels = list(dict.fromkeys(data["run"].values.tolist()))
    with style():
        fig, ax = figure_axes(ax, figsize=(5.6, 4.0))
        for i, r in enumerate(labels):
            colour = PALETTE[1 + i % (len(PALETTE) - 1)]
            one = data.isel(point=np.flatnonzero(data["run"].values == r))
            x = one["step"].values
            draw_bands(ax, x, one["band"].isel(prob=[0]), colour, label="_run")
            ax.plot(x, one["mean"].values, color=colour, lw=1.2)
            rows = ids == r
            ax.plot(
                runs_column(fit, "step")[rows],
                runs_column(fit, "loss")[rows],
                ".",
                color=colour,
                ms=4,
                label=r if len(labels) <= NAMED_SERIES else None,
            )
            if later is not None:
                late = later[later[run_id].astype(str) == r]
                ax.plot(late["step"], late["loss"], "o", mfc="none", mec=colour, ms=3.5)
        ax.axvline(data.attrs["last_fitted"], color="0.4", ls=":", lw=1, label="last fitted step")
        ax.set_xlabel(LABELS["step"])
        ax.set_ylabel(LABELS["loss"])
        ax.set_title(f"learning curves ({fit.law.name}), {float(data['prob'][0]):.0%} bands")
        log_axes(ax)
        ax.legend(loc="upper right", frameon=False, fontsize=7)
    return fig
