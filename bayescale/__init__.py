"""bayescale: Bayesian scaling-law inference.

Fit power laws (Kaplan 2020, Chinchilla 2022) to ladders of training runs and get posteriors,
predictive bands for extrapolation, and diagnostics, instead of single least-squares curves.

Heavy dependencies (PyMC, ArviZ) are imported lazily so that ``import bayescale`` is fast.
The package's folders follow the data flow: ``runs`` → ``laws`` → ``model`` → ``fitting`` →
``questions`` → ``plots`` / ``report`` / ``cli``, with ``core`` below them all (see the
architecture page of the documentation).
"""

from __future__ import annotations

from bayescale.core.lazy import lazy_exports

__version__ = "0.1.0"

_EXPORTS = {
    "fit": "bayescale.fitting.pipeline",
    "Fit": "bayescale.fitting.result",
    "load_fit": "bayescale.fitting.result",
    "Diagnostics": "bayescale.fitting.result",
    "list_samplers": "bayescale.fitting.samplers",
    "Law": "bayescale.laws.base",
    "get_law": "bayescale.laws.base",
    "list_laws": "bayescale.laws.base",
    "evaluate": "bayescale.laws.base",
    "Prior": "bayescale.core.priors",
    "load_runs": "bayescale.runs.table",
    "list_datasets": "bayescale.runs.table",
    "lack_of_fit": "bayescale.fitting.quality",
    "predict": "bayescale.questions.predict",
    "Prediction": "bayescale.questions.predict",
    "overfit": "bayescale.questions.overfit",
    "optimal": "bayescale.questions.optimal",
    "compare": "bayescale.questions.compare",
    "design": "bayescale.questions.design",
    "backtest": "bayescale.questions.backtest",
    "extrapolate": "bayescale.questions.curves",
    "predict_runs": "bayescale.questions.curves",
    "minimum_steps": "bayescale.questions.efficiency",
    "compute_efficient": "bayescale.questions.efficiency",
    "Overfit": "bayescale.questions.overfit",
    "Optimal": "bayescale.questions.optimal",
    "Comparison": "bayescale.questions.compare",
    "Backtest": "bayescale.questions.backtest",
    "Design": "bayescale.questions.design",
    "load_curves": "bayescale.runs.curves",
    "sbc": "bayescale.calibration.sbc",
    "compute_frontier": "bayescale.questions.optimal",
    "runs_needed": "bayescale.questions.design",
    "plan": "bayescale.questions.design",
    "reference_priors": "bayescale.laws.published",
    "get_reference": "bayescale.laws.published",
    "list_references": "bayescale.laws.published",
    "compare_fits": "bayescale.questions.selection",
    "loo": "bayescale.questions.selection",
    "BayescaleError": "bayescale.core.errors",
    "RunsTableError": "bayescale.core.errors",
    "UnknownNameError": "bayescale.core.errors",
    "ConfigError": "bayescale.core.errors",
    "FitFileError": "bayescale.core.errors",
    "SamplingWarning": "bayescale.core.errors",
}

__all__ = ["__version__", *_EXPORTS]


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
