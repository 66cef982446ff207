"""The figures' shared style and drawing helpers: palette, axes, bands, saving.

Okabe-Ito colours (distinguishable under the common forms of colour blindness), log axes with
engineering tick labels, highest-density bands, and file metadata without dates so that saving
the same figure twice gives the same bytes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bayescale.core.dims import SAMPLE_DIMS
from bayescale.core.errors import ConfigError
from bayescale.core.files import atomic_path
from bayescale.questions.overfit import run_groups

if TYPE_CHECKING:
    import xarray as xr
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from bayescale.fitting.result import Fit

__all__ = [
    "LABELS",
    "MAX_PAIR_PARAMS",
    "MAX_PANEL_PARAMS",
    "NAMED_SERIES",
    "PALETTE",
    "PROBS",
    "STYLE",
    "curve_dataset",
    "draw_bands",
    "figure_axes",
    "file_metadata",
    "hdi_bands",
    "log_axes",
    "log_grid",
    "runs_column",
    "runs_mask",
    "save_figure",
    "style",
]

#: Okabe & Ito (2008) colour-blind-safe palette (black first: data).
PALETTE = (
    "#000000",
    "#0072B2",
    "#E69F00",
    "#009E73",
    "#D55E00",
    "#CC79A7",
    "#56B4E9",
    "#F0E442",
)
#: Most groups or runs named in a legend: as many as there are colours for them (PALETTE minus
#: black), since past that the colours repeat and a name no longer identifies one series.
NAMED_SERIES = len(PALETTE) - 1
#: Probabilities of the drawn bands: 50 % (dark) and 94 % (light), ArviZ's default.
PROBS = (0.5, 0.94)
#: Axis labels of the canonical columns, with units.
LABELS = {
    "N": "model size N (parameters)",
    "D": "dataset size D (tokens)",
    "C": "compute C (FLOPs)",
    "step": "optimizer steps S",
    "batch": "batch size B (tokens/step)",
    "loss": "loss L (nats/token)",
}
#: Most quantities in a pair plot. Its grid is n x n panels: 6 gives 36, inside ArviZ's default
#: limit of 40 subplots (``rcParams["plot.max_subplots"]``) and about what stays legible.
MAX_PAIR_PARAMS = 6
#: Most quantities (one panel each) in rank and prior-posterior plots: a 4 x 4 grid.
MAX_PANEL_PARAMS = 16
#: Fixed rendering settings so that figures (and the image tests' baselines) are reproducible.
STYLE = {
    "font.family": "DejaVu Sans",
    "font.size": 9.0,
    "axes.titlesize": 10.0,
    "axes.labelsize": 9.0,
    "legend.fontsize": 8.0,
    "figure.dpi": 100.0,
    "savefig.dpi": 100.0,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.prop_cycle": None,  # set in style (cycler import is lazy)
    "svg.hashsalt": "bayescale",
    "svg.fonttype": "none",
    "pdf.fonttype": 42,
    "path.simplify": False,
}


@contextlib.contextmanager
def style() -> Iterator[None]:
    """Context in which figures are drawn: the package's rc settings and palette."""
    # matplotlib, cycler, xarray and arviz_stats are imported where used: every plot
    # module and the report import this one, and their data functions draw nothing
    import matplotlib as mpl
    from cycler import cycler

    # Any keys: matplotlib's stubs want a dict keyed by its Literal rc names (dict is invariant).
    rc: dict[Any, Any] = {**STYLE, "axes.prop_cycle": cycler(color=PALETTE[1:])}
    with mpl.rc_context(rc):
        yield


def figure_axes(ax: Axes | None, figsize: tuple[float, float] = (5.0, 3.6)) -> tuple[Figure, Axes]:
    """Return ``(figure, axes)``: the given Axes' figure, or a new one-panel figure."""
    if ax is not None:
        return ax.get_figure(root=True), ax  # type: ignore[return-value]
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, layout="constrained")
    return fig, fig.add_subplot()


def log_axes(ax: Axes, *, x: bool = True, y: bool = True) -> None:
    """Log scales with engineering tick labels; short ranges get labelled minor ticks too."""
    from matplotlib.ticker import EngFormatter, LogFormatterSciNotation

    for flag, axis, scale in ((x, ax.xaxis, ax.set_xscale), (y, ax.yaxis, ax.set_yscale)):
        if not flag:
            continue
        scale("log")
        axis.set_major_formatter(EngFormatter(sep=""))
        lo, hi = ax.get_xlim() if axis is ax.xaxis else ax.get_ylim()
        if lo > 0 and hi / lo < 30:  # under ~1.5 decades the major ticks alone are too few
            axis.set_minor_formatter(EngFormatter(sep="", places=1))
        else:
            axis.set_minor_formatter(LogFormatterSciNotation(minor_thresholds=(0, 0)))


def hdi_bands(draws: xr.DataArray, probs: Sequence[float]) -> xr.DataArray:
    """HDI of draws over (chain, draw) at each probability: dims ``prob``, ..., ``ci_bound``."""
    import arviz_stats as azs
    import xarray as xr

    with np.errstate(invalid="ignore", divide="ignore"):
        bands = [azs.hdi(draws, prob=p, dim=list(SAMPLE_DIMS), skipna=True) for p in probs]
    return xr.concat(bands, dim="prob").assign_coords(prob=list(probs))


def log_grid(lo: float, hi: float, n: int) -> np.ndarray:
    """``n`` log-spaced values from ``lo`` to ``hi``."""
    return np.geomspace(lo, hi, n)


def draw_bands(
    ax: Axes, x: np.ndarray, band: xr.DataArray, colour: str, label: str | None = None
) -> None:
    """Fill each probability's band, lighter for wider ones (a label starting "_" is hidden)."""
    probs = [float(p) for p in band["prob"].values]
    for i, p in enumerate(probs):
        b = band.sel(prob=p)
        alpha = 0.18 + 0.22 * i / max(len(probs) - 1, 1)
        ax.fill_between(
            x,
            b.sel(ci_bound="lower").values,
            b.sel(ci_bound="upper").values,
            color=colour,
            alpha=alpha,
            linewidth=0,
            label=f"{label} {p:.0%} HDI" if label else f"{p:.0%} HDI",
        )


def runs_column(fit: Fit, name: str) -> np.ndarray:
    """Return a numeric column of the fitted runs as floats."""
    return np.asarray(fit.runs[name].values, dtype=float)


def save_figure(
    fig: Figure, path: str | Path, *, formats: Sequence[str] | None = None
) -> list[Path]:
    """Write a figure as PNG, SVG and/or PDF (atomically), chosen by suffix or ``formats``.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        The figure.
    path : str or Path
        Output file; its suffix picks the format unless ``formats`` is given, in which case
        one file per format is written next to it (``fig.png``, ``fig.svg``...).
    formats : sequence of {"png", "svg", "pdf"}, optional
        Formats to write.

    Returns
    -------
    list of Path
        The files written.
    """
    path = Path(path)
    valid = ("png", "svg", "pdf")
    wanted = list(formats) if formats else [path.suffix.lstrip(".").lower()]
    bad = [f for f in wanted if f not in valid]
    if bad:
        raise ConfigError(f"figure format {bad[0]!r} is not one of {', '.join(valid)}")
    out = []
    for f in wanted:
        target = path.with_suffix(f".{f}")
        with atomic_path(target) as tmp, style():
            fig.savefig(tmp, format=f, metadata=file_metadata(f))
        out.append(target)
    return out


def file_metadata(fmt: str) -> dict[str, Any]:
    """Metadata for ``savefig`` without dates or versions, so saves are reproducible."""
    # Dates and software versions in the metadata would make every save differ.
    if fmt == "png":
        return {"Software": None}
    if fmt == "svg":
        return {"Date": None, "Creator": None}
    return {"CreationDate": None, "Producer": None, "Creator": None}


def curve_dataset(expected: xr.DataArray, grid: np.ndarray, probs: Sequence[float]) -> Any:
    """Mean, median and HDI bands of expected-loss draws along a grid ``x``."""
    import xarray as xr

    return xr.Dataset(
        {
            "mean": expected.mean(SAMPLE_DIMS).assign_attrs(units="nats/token"),
            # A new group's draws have heavy tails (its exponent can be small), which drag the
            # mean far above the typical curve; the median is the curve to draw for it.
            "median": expected.median(SAMPLE_DIMS).assign_attrs(units="nats/token"),
            "band": hdi_bands(expected, probs),
        },
        coords={"x": ("point", grid)},
    )


def runs_mask(fit: Fit, group: str | None) -> np.ndarray:
    """Select the runs of ``group`` (all runs for pooled fits or ``group=None``)."""
    if group is None or fit.pooling is None:
        return np.ones(fit.n_runs, dtype=bool)

    return run_groups(fit) == group
