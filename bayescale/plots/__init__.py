"""Figures: every plot_x has a partner returning the data it draws."""

from bayescale.core.lazy import lazy_exports

_EXPORTS = {
    "PALETTE": "bayescale.plots.figures",
    "coverage": "bayescale.plots.figures",
    "curve_bands": "bayescale.plots.figures",
    "diagnostic_draws": "bayescale.plots.figures",
    "fan": "bayescale.plots.figures",
    "frontier": "bayescale.plots.figures",
    "group_curves": "bayescale.plots.figures",
    "law_curve": "bayescale.plots.figures",
    "overfit_map": "bayescale.plots.figures",
    "plot_coverage": "bayescale.plots.figures",
    "plot_curves": "bayescale.plots.figures",
    "plot_fan": "bayescale.plots.figures",
    "plot_frontier": "bayescale.plots.figures",
    "plot_groups": "bayescale.plots.figures",
    "plot_law": "bayescale.plots.figures",
    "plot_overfit_map": "bayescale.plots.figures",
    "plot_pair": "bayescale.plots.figures",
    "plot_prior_posterior": "bayescale.plots.figures",
    "plot_rank": "bayescale.plots.figures",
    "plot_sbc": "bayescale.plots.figures",
    "save_figure": "bayescale.plots.figures",
}
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
