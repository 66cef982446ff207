r"""Figures of fitted scaling laws, each a compute/plot pair.

Every ``plot_x(..., ax=None)`` draws what its partner ``x(...)`` returns (an
:class:`xarray.Dataset` or a table), so the numbers behind a figure can be checked, saved or
redrawn elsewhere. Plot functions take an optional Axes (or, for multi-panel figures, make their
own), return the :class:`matplotlib.figure.Figure` and never call ``show``: figures are built
with :class:`matplotlib.figure.Figure` directly, without pyplot, so nothing depends on a display
and nothing accumulates in pyplot's figure manager.

Bands are highest-density intervals of the posterior at ``probs`` (default 50 % and 94 %), the
line is the posterior mean. Axes are log-log with engineering tick labels (``1 G`` = 1e9);
colours are the Okabe-Ito palette, which stays distinguishable under the common forms of colour
blindness.

Figures stay readable however many parameters and groups a fit has: the diagnostic plots show
at most :data:`MAX_PAIR_PARAMS` (pair plot) or :data:`MAX_PANEL_PARAMS` (rank and prior-posterior
plots) scalar quantities, chosen by :func:`diagnostic_params` (population level first, never
one panel per group), and legends name groups or runs only while each has a colour of its own.

The figures:

=========================  =============================================  ==================
compute                    plot                                           for
=========================  =============================================  ==================
:func:`law_curve`          :func:`plot_law`                               any law
:func:`fan`                :func:`plot_fan`                               any law
:func:`group_curves`       :func:`plot_groups`                            hierarchical fits
:func:`overfit_map`        :func:`plot_overfit_map`                       kaplan_nd, chinchilla
:func:`frontier`           :func:`plot_frontier`                          kaplan_nd, chinchilla
:func:`curve_bands`        :func:`plot_curves`                            curve fits (run_id)
:func:`diagnostic_draws`   :func:`plot_pair`, :func:`plot_rank`,          any fit
                           :func:`plot_prior_posterior`
:func:`coverage`           :func:`plot_coverage`                          a backtest
:func:`sbc_ecdf_data`      :func:`plot_sbc`                               an SBC result
=========================  =============================================  ==================
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bayescale.errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd
    import xarray as xr
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from bayescale.backtest import Backtest
    from bayescale.fitting import Fit
    from bayescale.predict import Prediction

__all__ = [
    "PALETTE",
    "coverage",
    "curve_bands",
    "diagnostic_draws",
    "diagnostic_params",
    "fan",
    "frontier",
    "group_curves",
    "law_curve",
    "overfit_map",
    "plot_coverage",
    "plot_curves",
    "plot_fan",
    "plot_frontier",
    "plot_groups",
    "plot_law",
    "plot_overfit_map",
    "plot_pair",
    "plot_prior_posterior",
    "plot_rank",
    "plot_sbc",
    "save_figure",
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
#: Kaplan et al. (2020) eq. 4.4: the data that keeps overfitting below ~2 %, D = 5e3 N^0.74.
KAPLAN_D_COEF, KAPLAN_D_EXP = 5.0e3, 0.74
SAMPLE_DIMS = ("chain", "draw")
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
    "axes.prop_cycle": None,  # set in _style (cycler import is lazy)
    "svg.hashsalt": "bayescale",
    "svg.fonttype": "none",
    "pdf.fonttype": 42,
    "path.simplify": False,
}


# --------------------------------------------------------------------------------------------
# Shared helpers
# --------------------------------------------------------------------------------------------
@contextlib.contextmanager
def _style() -> Iterator[None]:
    import matplotlib as mpl
    from cycler import cycler

    rc = {**STYLE, "axes.prop_cycle": cycler(color=PALETTE[1:])}
    with mpl.rc_context(rc):
        yield


def _axes(ax: Axes | None, figsize: tuple[float, float] = (5.0, 3.6)) -> tuple[Figure, Axes]:
    """Return ``(figure, axes)``: the given Axes' figure, or a new one-panel figure."""
    if ax is not None:
        return ax.get_figure(root=True), ax  # type: ignore[return-value]
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, layout="constrained")
    return fig, fig.add_subplot()


def _log_axes(ax: Axes, *, x: bool = True, y: bool = True) -> None:
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


def _hdi(draws: xr.DataArray, probs: Sequence[float]) -> xr.DataArray:
    """HDI of draws over (chain, draw) at each probability: dims ``prob``, ..., ``ci_bound``."""
    import arviz_stats as azs
    import xarray as xr

    with np.errstate(invalid="ignore", divide="ignore"):
        bands = [azs.hdi(draws, prob=p, dim=list(SAMPLE_DIMS), skipna=True) for p in probs]
    return xr.concat(bands, dim="prob").assign_coords(prob=list(probs))


def _check_probs(probs: Sequence[float]) -> tuple[float, ...]:
    probs = tuple(float(p) for p in probs)
    if not probs or not all(0 < p < 1 for p in probs):
        raise ConfigError(f"band probabilities must be between 0 and 1, got {list(probs)}")
    return tuple(sorted(probs, reverse=True))  # widest first, so narrow bands draw on top


def _grid(lo: float, hi: float, n: int) -> np.ndarray:
    return np.geomspace(lo, hi, n)


def _draw_bands(
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


def _runs_column(fit: Fit, name: str) -> np.ndarray:
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
    from bayescale._io import atomic_path

    path = Path(path)
    valid = ("png", "svg", "pdf")
    wanted = list(formats) if formats else [path.suffix.lstrip(".").lower()]
    bad = [f for f in wanted if f not in valid]
    if bad:
        raise ConfigError(f"figure format {bad[0]!r} is not one of {', '.join(valid)}")
    out = []
    for f in wanted:
        target = path.with_suffix(f".{f}")
        with atomic_path(target) as tmp, _style():
            fig.savefig(tmp, format=f, metadata=_metadata(f))
        out.append(target)
    return out


def _metadata(fmt: str) -> dict[str, Any]:
    # Dates and software versions in the metadata would make every save differ.
    if fmt == "png":
        return {"Software": None}
    if fmt == "svg":
        return {"Date": None, "Creator": None}
    return {"CreationDate": None, "Producer": None, "Creator": None}


# --------------------------------------------------------------------------------------------
# 1. Data + law + bands (Kaplan et al. 2020, Fig. 1)
# --------------------------------------------------------------------------------------------
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
    from bayescale.predict import predict

    probs = _check_probs(probs)
    name = input or fit.law.inputs[0]
    if name not in fit.law.inputs:
        raise ConfigError(
            f"law {fit.law.name!r} has inputs {', '.join(fit.law.inputs)}; not {name!r}"
        )
    x = _runs_column(fit, name)
    lo, hi = float(x.min()), float(x.max())
    grid = _grid(lo, hi * 10.0**extend, n_grid)
    others = {k: float(_runs_column(fit, k).max()) for k in fit.law.inputs if k != name}
    others |= dict(fixed or {})
    pred = predict(fit, {name: grid, **others}, group=group, new_group=new_group)
    expected = pred.expected
    return _curve_dataset(expected, grid, probs).assign_attrs(
        input=name, fixed=str(others), fitted_min=lo, fitted_max=hi
    )


def _curve_dataset(expected: xr.DataArray, grid: np.ndarray, probs: Sequence[float]) -> Any:
    import xarray as xr

    return xr.Dataset(
        {
            "mean": expected.mean(SAMPLE_DIMS).assign_attrs(units="nats/token"),
            # A new group's draws have heavy tails (its exponent can be small), which drag the
            # mean far above the typical curve; the median is the curve to draw for it.
            "median": expected.median(SAMPLE_DIMS).assign_attrs(units="nats/token"),
            "band": _hdi(expected, probs),
        },
        coords={"x": ("point", grid)},
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
        reach = np.log10(max(targets) / _runs_column(fit, name).max())
        options["extend"] = max(options.get("extend", 1.0), float(reach) + 0.1)
    data = law_curve(fit, input=name, **options)
    with _style():
        fig, ax = _axes(ax)
        x = data["x"].values
        _draw_bands(ax, x, data["band"], PALETTE[1])
        ax.plot(x, data["mean"].values, color=PALETTE[1], lw=1.6, label="posterior mean")
        group = options.get("group")
        runs = _runs_mask(fit, group)
        ax.plot(
            _runs_column(fit, name)[runs],
            _runs_column(fit, "loss")[runs],
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
        _log_axes(ax)
        ax.legend(loc="best", frameon=False)
    return fig


def _runs_mask(fit: Fit, group: str | None) -> np.ndarray:
    if group is None or fit.pooling is None:
        return np.ones(fit.n_runs, dtype=bool)
    from bayescale.overfit import run_groups

    return run_groups(fit) == group


# --------------------------------------------------------------------------------------------
# 2. Extrapolation fan
# --------------------------------------------------------------------------------------------
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
        See :func:`bayescale.predict.predict`.

    Returns
    -------
    xarray.Dataset
        ``median`` (dim ``point``) and ``band`` (dims ``prob``, ``point``, ``ci_bound``) of the
        observed loss (nats/token), and ``draws`` (``chain``, ``draw``, ``point``); the inputs
        are ``point`` coords.
    """
    import xarray as xr

    from bayescale.predict import predict

    probs = _check_probs(probs)
    pred: Prediction = predict(fit, inputs, group=group, new_group=new_group, seed=seed)
    obs = pred.observed
    return xr.Dataset(
        {"median": obs.median(SAMPLE_DIMS), "band": _hdi(obs, probs), "draws": obs},
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
    with _style():
        fig, ax = _axes(ax)
        ax.plot(
            _runs_column(fit, name),
            _runs_column(fit, "loss"),
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
        _log_axes(ax)
        ax.legend(loc="best", frameon=False)
    return fig


# --------------------------------------------------------------------------------------------
# 3. Grouped fits
# --------------------------------------------------------------------------------------------
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
    import xarray as xr

    pooling = fit.pooling
    if pooling is None:
        raise ConfigError("group plots need a hierarchical fit (fit with groups=...)")
    name = input or fit.law.inputs[0]
    x = _runs_column(fit, name)
    opts = {"input": name, "extend": extend, "n_grid": n_grid, "probs": probs}
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
    from bayescale.overfit import run_groups

    data = group_curves(fit, **options)
    name = data.attrs["input"]
    labels = [str(g) for g in data["group"].values]
    x = data["x"].values
    members = run_groups(fit)
    with _style():
        fig, ax = _axes(ax)
        new = data.sel(group="new group")
        _draw_bands(ax, x, new["band"].isel(prob=[0]), "0.5", label="new group")
        ax.plot(x, new["median"].values, color="0.35", lw=1.2, ls="--", label="new group median")
        groups = labels[:-1]
        named = len(groups) <= NAMED_SERIES
        for i, g in enumerate(groups):
            colour = PALETTE[1 + i % (len(PALETTE) - 1)]
            one = data.sel(group=g)
            _draw_bands(ax, x, one["band"].isel(prob=[-1]), colour, label="_group")
            ax.plot(x, one["mean"].values, color=colour, lw=1.4)
            mask = members == g
            ax.plot(
                _runs_column(fit, name)[mask],
                _runs_column(fit, "loss")[mask],
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
        _log_axes(ax)
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


# --------------------------------------------------------------------------------------------
# 4. Overfitting map L(N, D)
# --------------------------------------------------------------------------------------------
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
    import xarray as xr

    from bayescale.overfit import latent_draws, overfit, penalty

    if fit.law.name not in ("kaplan_nd", "chinchilla"):
        raise ConfigError(
            f"the overfitting map needs a law of N and D (kaplan_nd, chinchilla), not "
            f"{fit.law.name!r}"
        )
    if fit.pooling is not None and group is None:
        raise ConfigError(
            f"this fit varies by {fit.pooling.dim!r}: name one group for the overfitting map"
        )
    n_runs, d_runs = _runs_column(fit, "N"), _runs_column(fit, "D")
    n = xr.DataArray(_grid(n_runs.min(), n_runs.max() * 10**extend, n_grid), dims="N", name="N")
    d = xr.DataArray(
        _grid(d_runs.min() / 10**extend, d_runs.max() * 10**extend, n_grid), dims="D", name="D"
    )
    z = latent_draws(fit, group)
    with np.errstate(over="ignore", invalid="ignore"):
        delta = penalty(fit, z, n, d).mean(SAMPLE_DIMS).transpose("D", "N")
    check = overfit(fit, epsilon=epsilon, inputs={"N": n.values}, prob=prob, group=group)
    d_min = check.points["D_min"]
    log_band = _hdi(np.log(d_min), [prob]).isel(prob=0, drop=True)
    mask = _runs_mask(fit, group)
    out = xr.Dataset(
        {
            "delta_L": delta.assign_attrs(units="relative"),
            "D_min": ("N", np.exp(np.log(d_min).mean(SAMPLE_DIMS)).values, {"units": "tokens"}),
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
    with _style():
        fig, ax = _axes(ax, figsize=(5.4, 4.0))
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
        _log_axes(ax)
        ax.legend(loc="lower right", frameon=True, framealpha=0.8)
    return fig


# --------------------------------------------------------------------------------------------
# 5. Compute-optimal frontier
# --------------------------------------------------------------------------------------------
def frontier(
    fit: Fit, C: Any = None, *, group: str | None = None, prob: float = 0.94
) -> xr.Dataset:
    """Compute-optimal N, D and loss against compute, with HDI bands.

    Parameters
    ----------
    fit : Fit
        A ``kaplan_nd`` or ``chinchilla`` fit.
    C : array, optional
        Budgets in FLOPs (default the grid of :func:`bayescale.optimal.optimal`).
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
    from bayescale.optimal import optimal

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
            out[k] = np.exp(np.log(draws[k]).mean(SAMPLE_DIMS, skipna=True))
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
    from matplotlib.figure import Figure

    data = frontier(fit, C, **options)
    c = data["C"].values
    with _style():
        fig = Figure(figsize=(10.5, 3.3), layout="constrained")
        axes = fig.subplots(1, 3)
        runs_c = (
            _runs_column(fit, "C")
            if "C" in fit.runs
            else 6 * _runs_column(fit, "N") * _runs_column(fit, "D")
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
            _log_axes(ax)
        axes[0].legend(loc="upper left", frameon=False)
        fig.suptitle(f"compute-optimal frontier ({data.attrs['law']}, C = 6ND)")
    return fig


# --------------------------------------------------------------------------------------------
# 6. Learning curves
# --------------------------------------------------------------------------------------------
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
        A curve law fitted with ``run_id`` (:mod:`bayescale.curves`).
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
    from bayescale.curves import predict_runs

    probs = _check_probs(probs)
    spec = fit.meta.get("run_effect")
    if not spec:
        raise ConfigError("learning-curve plots need a curve fit with run_id= (bayescale.curves)")
    run_id = spec["dim"]
    labels = list(runs) if runs is not None else [str(r) for r in spec["labels"]]
    s = _runs_column(fit, "step")
    grid = _grid(s.min(), s.max() * 10**extend, n_grid) if steps is None else np.asarray(steps)
    pred = predict_runs(fit, grid, runs=labels, seed=seed)
    expected = pred.expected
    out = _curve_dataset(expected, np.asarray(pred.inputs["step"], dtype=float), probs)
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
    with _style():
        fig, ax = _axes(ax, figsize=(5.6, 4.0))
        for i, r in enumerate(labels):
            colour = PALETTE[1 + i % (len(PALETTE) - 1)]
            one = data.isel(point=np.flatnonzero(data["run"].values == r))
            x = one["step"].values
            _draw_bands(ax, x, one["band"].isel(prob=[0]), colour, label="_run")
            ax.plot(x, one["mean"].values, color=colour, lw=1.2)
            rows = ids == r
            ax.plot(
                _runs_column(fit, "step")[rows],
                _runs_column(fit, "loss")[rows],
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
        _log_axes(ax)
        ax.legend(loc="upper right", frameon=False, fontsize=7)
    return fig


# --------------------------------------------------------------------------------------------
# 7. Posterior diagnostics (arviz-plots)
# --------------------------------------------------------------------------------------------
def diagnostic_params(fit: Fit, *, limit: int | None = None) -> list[str]:
    """Return the scalar quantities the diagnostic plots show, the most important first.

    In order:

    1. the law's paper parameters that are one number for the whole fit: all of them in a
       pooled fit, the shared ones (such as Chinchilla's ``E``) in a hierarchical one;
    2. the population locations ``mu_*`` of the parameters that vary by group: for one pooled
       on the log scale its geometric mean ``mu_<param>`` (in the parameter's units) rather
       than ``mu_log_<param>``, the same quantity, and else the location of its latent;
    3. the noise scale ``sigma`` (of the log loss);
    4. the population scales ``tau_*`` (and ``tau_run``, the run-offset scale of curve fits).

    Values per group are never included: one panel per group and parameter does not scale
    (a 20-group Chinchilla fit has 80 of them) and the summary table lists them all. Nor are
    constant quantities or those with non-finite draws, which have no distribution to draw.

    Parameters
    ----------
    fit : Fit
        A fitted law.
    limit : int, optional
        Keep only the first ``limit`` names.

    Returns
    -------
    list of str
        Names of posterior variables with dims ``(chain, draw)``.

    Raises
    ------
    ConfigError
        If ``limit`` is not a whole number >= 1.
    """
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        raise ConfigError(f"limit must be a whole number >= 1, got {limit!r}")
    post = fit.posterior
    reported = fit.reported
    locations = [
        n
        for n in reported
        if n.startswith("mu_")
        and not (n.startswith("mu_log_") and f"mu_{n.removeprefix('mu_log_')}" in post)
    ]
    scales = [n for n in reported if n.startswith("tau_")]
    names = [*fit.law.params, *locations, "sigma", *scales]
    names = [n for n in dict.fromkeys(names) if n in post and post[n].dims == SAMPLE_DIMS]
    return _plottable(post, names)[:limit]


def _plottable(post: xr.Dataset, names: Sequence[str]) -> list[str]:
    """Return the names of variables in ``post`` whose draws are finite and not all equal."""
    with np.errstate(over="ignore", invalid="ignore"):
        # The std of draws that overflowed to inf is nan, so those fail the test too.
        return [n for n in dict.fromkeys(names) if n in post and float(post[n].std()) > 0]


def diagnostic_draws(
    fit: Fit, var_names: Sequence[str] | None = None, *, limit: int | None = None
) -> xr.DataTree:
    """Return the posterior (and prior, if drawn) of the law's parameters and the noise.

    Parameters
    ----------
    fit : Fit
        A fitted law.
    var_names : sequence of str, optional
        Quantities to keep (default :func:`diagnostic_params`: the scalar parameters,
        population locations and scales, and ``sigma``).
    limit : int, optional
        With the default quantities, keep the first ``limit`` (see :func:`diagnostic_params`).

    Returns
    -------
    xarray.DataTree
        Groups ``posterior``, ``sample_stats`` and, if the fit has prior draws, ``prior``.
    """
    import xarray as xr

    post = fit.posterior
    if var_names is None:
        names = diagnostic_params(fit, limit=limit)
    else:
        names = _plottable(post, list(var_names))
    groups = {"posterior": post[names]}
    if "sample_stats" in fit.tree.children:
        groups["sample_stats"] = fit.tree["sample_stats"].to_dataset()
    if "prior" in fit.tree.children:
        prior = fit.tree["prior"].to_dataset()
        groups["prior"] = prior[[n for n in names if n in prior]]
    return xr.DataTree.from_dict(groups)


def _diagnostic_tree(
    fit: Fit, var_names: Sequence[str] | None, limit: int, what: str
) -> xr.DataTree:
    """Draws of at most ``limit`` quantities for one diagnostic plot (``what`` names it)."""
    if var_names is not None and len(var_names) > limit:
        raise ConfigError(
            f"a {what} shows at most {limit} quantities, got {len(var_names)} var_names"
        )
    tree = diagnostic_draws(fit, var_names, limit=limit)
    if not tree["posterior"].data_vars:
        raise ConfigError(f"no quantity of this fit has finite, varying draws for a {what}")
    return tree


def _arviz_figure(plot: Any, tree: xr.DataTree, **kwargs: Any) -> Figure:
    with _style(), np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        pc = plot(tree, backend="matplotlib", **kwargs)
    fig = pc.viz["figure"].item()
    # arviz-plots makes its figures with pyplot: release pyplot's reference so figures do not
    # pile up in long sessions (the Figure itself stays usable).
    import matplotlib.pyplot as plt

    plt.close(fig)
    return fig


def plot_pair(fit: Fit, *, var_names: Sequence[str] | None = None, **kwargs: Any) -> Figure:
    """Pair plot of the law's exponents and scales (:func:`arviz_plots.plot_pair`).

    Parameters
    ----------
    fit : Fit
        A fitted law.
    var_names : sequence of str, optional
        At most :data:`MAX_PAIR_PARAMS` quantities (default the first of
        :func:`diagnostic_params`).
    **kwargs
        Passed to :func:`arviz_plots.plot_pair`.

    Returns
    -------
    matplotlib.figure.Figure
    """
    tree = _diagnostic_tree(fit, var_names, MAX_PAIR_PARAMS, "pair plot")
    return _arviz_figure(_azp("plot_pair"), tree, **kwargs)


def plot_rank(fit: Fit, *, var_names: Sequence[str] | None = None, **kwargs: Any) -> Figure:
    """Rank plots of each chain (:func:`arviz_plots.plot_rank`): flat when chains agree.

    Parameters
    ----------
    fit : Fit
        A fitted law with at least two chains.
    var_names : sequence of str, optional
        At most :data:`MAX_PANEL_PARAMS` quantities, one panel each (default the first of
        :func:`diagnostic_params`).
    **kwargs
        Passed to :func:`arviz_plots.plot_rank`.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ConfigError
        If the fit has one chain: ranks compare chains with each other.
    """
    if fit.posterior.sizes["chain"] < 2:
        raise ConfigError("rank plots compare chains; this fit has one (refit with chains=2)")
    tree = _diagnostic_tree(fit, var_names, MAX_PANEL_PARAMS, "rank plot")
    return _arviz_figure(_azp("plot_rank"), tree, **kwargs)


def plot_prior_posterior(
    fit: Fit, *, var_names: Sequence[str] | None = None, **kwargs: Any
) -> Figure:
    """Prior against posterior densities (:func:`arviz_plots.plot_prior_posterior`).

    Parameters
    ----------
    fit : Fit
        A fitted law with prior draws.
    var_names : sequence of str, optional
        At most :data:`MAX_PANEL_PARAMS` quantities, one panel each (default the first of
        :func:`diagnostic_params`).
    **kwargs
        Passed to :func:`arviz_plots.plot_prior_posterior`.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ConfigError
        If the fit has no prior draws (fit with ``prior_draws=``).
    """
    no_prior = ConfigError("this fit has no prior draws; refit with prior_draws=500")
    if "prior" not in fit.tree.children:
        raise no_prior
    tree = _diagnostic_tree(fit, var_names, MAX_PANEL_PARAMS, "prior-posterior plot")
    if not tree["prior"].data_vars:
        raise no_prior
    return _arviz_figure(_azp("plot_prior_posterior"), tree, **kwargs)


def _azp(name: str) -> Any:
    import arviz_plots

    return getattr(arviz_plots, name)


# --------------------------------------------------------------------------------------------
# 8. Backtest coverage
# --------------------------------------------------------------------------------------------
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
        A leave-largest-out backtest (:func:`bayescale.backtest.backtest`).
    ax : matplotlib.axes.Axes, optional
        Axes to draw on.

    Returns
    -------
    matplotlib.figure.Figure
    """
    table = coverage(result)
    by = table.attrs["by"]
    fit = result.fit
    with _style():
        fig, ax = _axes(ax)
        if by in fit.runs:
            ax.plot(
                _runs_column(fit, by),
                _runs_column(fit, "loss"),
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
        _log_axes(ax)
        ax.legend(loc="best", frameon=False)
    return fig


# --------------------------------------------------------------------------------------------
# 9. Simulation-based calibration
# --------------------------------------------------------------------------------------------
def plot_sbc(
    result: xr.Dataset,
    *,
    parameters: Sequence[str] | None = None,
    prob: float = 0.95,
    ncols: int = 4,
    seed: int = 0,
) -> Figure:
    """Plot the ECDF difference of each parameter's fractional ranks with its simultaneous band.

    One panel per parameter (the data of :func:`bayescale.validate.sbc_ecdf_data`): the ECDF
    of the fractional ranks minus the uniform CDF, inside a band that a calibrated posterior
    leaves anywhere with probability ``1 - prob``. A curve above the band in the middle means
    posteriors too wide, an S through the band ends too narrow, a hump to one side a bias.
    Rejected parameters (:func:`bayescale.validate.sbc_uniformity`) are drawn in vermilion.

    Parameters
    ----------
    result : xarray.Dataset
        Output of :func:`bayescale.validate.sbc` (or :func:`~bayescale.validate.load_sbc`).
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
    import json

    from matplotlib.figure import Figure

    from bayescale.validate import sbc_ecdf_data, sbc_uniformity

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
    with _style():
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
