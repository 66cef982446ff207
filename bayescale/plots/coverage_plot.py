"""Backtest coverage: held-out runs against their predictive bands."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from bayescale.questions.backtest import Backtest

from bayescale.plots.style import LABELS, PALETTE, figure_axes, log_axes, runs_column, style

__all__ = ["coverage", "plot_coverage"]


def coverage(result: Backtest) -> pd.DataFrame:
    """Held-out runs of a backtest: observed loss, predictive HDI and whether it covered it.

    Returns
    -------
    pandas.DataFrame
        One row per held-out run: the ranking column, ``loss``, ``loss_mean``, ``lo``, ``hi``
        (nats/token) and ``inside``; attrs ``by``, ``prob``, ``coverage``.
    """
    cols = [result.by, "loss", "loss_mean", "lo", "hi", "inside"]
    table = result.held_out[[c for c in dict.fromkeys(cols) if c in result.held_out]].copy()
    table.attrs = {"by": result.by, "prob": result.prob, "coverage": result.totals["coverage"]}
    return table


def plot_coverage(result: Backtest, *, ax: Axes | None = None) -> Figure:
    """Plot each held-out run's predictive interval and its observed loss.

    Parameters
    ----------
    result : Backtest
        A leave-largest-out backtest (:func:`bayescale.questions.backtest.backtest`).
    ax : matplotlib.axes.Axes, optional
        Axes to draw on.

    Returns
    -------
    matplotlib.figure.Figure
    """
    table = coverage(result)
    by = table.attrs["by"]
    fit = result.fit
    with style():
        fig, ax = figure_axes(ax)
        if by in fit.runs:
            ax.plot(
                runs_column(fit, by),
                runs_column(fit, "loss"),
                ".",
                color="0.5",
                label="fitted runs",
            )
        x = table[by].to_numpy(float)
        ax.vlines(
            x,
            table["lo"],
            table["hi"],
            color=PALETTE[1],
            lw=3,
            alpha=0.6,
            label=f"{table.attrs['prob']:.0%} predictive HDI",
        )
        inside = table["inside"].to_numpy(bool)
        ax.plot(
            x[inside], table["loss"][inside], "o", color=PALETTE[3], ms=5, label="held out: inside"
        )
        ax.plot(
            x[~inside],
            table["loss"][~inside],
            "X",
            color=PALETTE[4],
            ms=7,
            label="held out: outside",
        )
        ax.set_xlabel(LABELS.get(by, by))
        ax.set_ylabel(LABELS["loss"])
        ax.set_title(
            f"backtest ({result.law}): coverage {table.attrs['coverage']:.0%} of {len(table)} "
            f"(nominal {table.attrs['prob']:.0%})"
        )
        log_axes(ax)
        ax.legend(loc="best", frameon=False)
    return fig
