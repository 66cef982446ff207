"""Figures: every ``plot_x(..., ax=None)`` draws what its partner ``x(...)`` returns.

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

from bayescale.core.lazy import lazy_exports

_EXPORTS = {
    "MAX_PAIR_PARAMS": "bayescale.plots.style",
    "MAX_PANEL_PARAMS": "bayescale.plots.style",
    "NAMED_SERIES": "bayescale.plots.style",
    "PALETTE": "bayescale.plots.style",
    "coverage": "bayescale.plots.coverage_plot",
    "curve_bands": "bayescale.plots.curves_plot",
    "diagnostic_draws": "bayescale.plots.diagnostics_plot",
    "diagnostic_params": "bayescale.plots.diagnostics_plot",
    "fan": "bayescale.plots.fan_plot",
    "frontier": "bayescale.plots.frontier_plot",
    "group_curves": "bayescale.plots.groups_plot",
    "law_curve": "bayescale.plots.law_plot",
    "overfit_map": "bayescale.plots.overfit_map_plot",
    "plot_coverage": "bayescale.plots.coverage_plot",
    "plot_curves": "bayescale.plots.curves_plot",
    "plot_fan": "bayescale.plots.fan_plot",
    "plot_frontier": "bayescale.plots.frontier_plot",
    "plot_groups": "bayescale.plots.groups_plot",
    "plot_law": "bayescale.plots.law_plot",
    "plot_overfit_map": "bayescale.plots.overfit_map_plot",
    "plot_pair": "bayescale.plots.diagnostics_plot",
    "plot_prior_posterior": "bayescale.plots.diagnostics_plot",
    "plot_rank": "bayescale.plots.diagnostics_plot",
    "plot_sbc": "bayescale.plots.sbc_plot",
    "save_figure": "bayescale.plots.style",
}
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
