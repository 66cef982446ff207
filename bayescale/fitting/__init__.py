"""Fitting: the pipeline, samplers, the exact path, the compiled-model cache, the Fit and its file format, batches of fits."""

from bayescale.core.lazy import lazy_exports

_EXPORTS = {
    "Diagnostics": "bayescale.fitting.pipeline",
    "Fit": "bayescale.fitting.pipeline",
    "fit": "bayescale.fitting.pipeline",
    "list_samplers": "bayescale.fitting.pipeline",
    "load_fit": "bayescale.fitting.pipeline",
}
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
