"""Scaling laws: one functional form per law, its parameters, priors and closed forms."""

from bayescale.core.lazy import lazy_exports

_EXPORTS = {
    "DataSummary": "bayescale.laws.base",
    "Law": "bayescale.laws.base",
    "evaluate": "bayescale.laws.base",
    "get_law": "bayescale.laws.base",
    "list_laws": "bayescale.laws.base",
    "register_law": "bayescale.laws.base",
}
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
