"""Fitting: pipeline, samplers, exact path, model cache, the Fit and its file format, batches."""

from bayescale.core.lazy import lazy_exports

_EXPORTS = {
    "Diagnostics": "bayescale.fitting.result",
    "Fit": "bayescale.fitting.result",
    "fit": "bayescale.fitting.pipeline",
    "list_samplers": "bayescale.fitting.samplers",
    "register_sampler": "bayescale.fitting.samplers",
    "load_fit": "bayescale.fitting.result",
    "stored_summary": "bayescale.fitting.result",
    "lack_of_fit": "bayescale.fitting.quality",
}
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
