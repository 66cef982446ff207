"""bayescale: Bayesian scaling-law inference.

Fit power laws (Kaplan 2020, Chinchilla 2022) to ladders of training runs and get posteriors,
predictive bands for extrapolation, and diagnostics, instead of single least-squares curves.

Heavy dependencies (PyMC, ArviZ) are imported lazily so that ``import bayescale`` is fast.
Functions named like their module (``predict``, ``overfit``, ``optimal``, ``compare``,
``design``, ``backtest``) are imported from it, e.g. ``from bayescale.optimal import optimal``:
importing a submodule binds its name on the package, so a same-named export would be shadowed.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "fit": "bayescale.fitting",
    "Fit": "bayescale.fitting",
    "load_fit": "bayescale.fitting",
    "Diagnostics": "bayescale.fitting",
    "list_samplers": "bayescale.fitting",
    "Law": "bayescale.laws",
    "get_law": "bayescale.laws",
    "list_laws": "bayescale.laws",
    "evaluate": "bayescale.laws",
    "Prior": "bayescale.priors",
    "load_runs": "bayescale.runs",
    "list_datasets": "bayescale.runs",
    "lack_of_fit": "bayescale.backtest",
    "compute_frontier": "bayescale.optimal",
    "runs_needed": "bayescale.design",
    "plan": "bayescale.design",
    "reference_priors": "bayescale.reference",
    "get_reference": "bayescale.reference",
    "list_references": "bayescale.reference",
    "compare_fits": "bayescale.selection",
    "loo": "bayescale.selection",
    "BayescaleError": "bayescale.errors",
    "RunsTableError": "bayescale.errors",
    "UnknownNameError": "bayescale.errors",
    "ConfigError": "bayescale.errors",
    "FitFileError": "bayescale.errors",
    "SamplingWarning": "bayescale.errors",
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
