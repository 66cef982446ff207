"""bayescale: Bayesian scaling-law inference.

Fit power laws (Kaplan 2020, Chinchilla 2022) to ladders of training runs and get posteriors,
predictive bands for extrapolation, and diagnostics, instead of single least-squares curves.

Heavy dependencies (PyMC, ArviZ) are imported lazily so that ``import bayescale`` is fast.
Functions named like their module (``predict``, ``overfit``, ``optimal``, ``compare``,
``design``, ``backtest``) are imported from it, e.g. ``from bayescale.questions.optimal import optimal``:
importing a submodule binds its name on the package, so a same-named export would be shadowed.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "fit": "bayescale.fitting.pipeline",
    "Fit": "bayescale.fitting.pipeline",
    "load_fit": "bayescale.fitting.pipeline",
    "Diagnostics": "bayescale.fitting.pipeline",
    "list_samplers": "bayescale.fitting.pipeline",
    "Law": "bayescale.laws.base",
    "get_law": "bayescale.laws.base",
    "list_laws": "bayescale.laws.base",
    "evaluate": "bayescale.laws.base",
    "Prior": "bayescale.core.priors",
    "load_runs": "bayescale.runs.table",
    "list_datasets": "bayescale.runs.table",
    "lack_of_fit": "bayescale.questions.backtest",
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


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'bayescale' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
