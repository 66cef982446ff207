"""Scaling laws: one functional form per law, its parameters, priors and closed forms."""

import importlib
import pkgutil

from bayescale.core.lazy import lazy_exports

# Every other module of this package defines laws and registers them when imported, so a new
# law is one new file here and the registry (and every test parametrised over it) has it.
# The built-in families first, in the order `bayescale laws` lists them; then any other.
_SHARED = {"base", "scales", "published"}
_FAMILIES = ("power", "kaplan", "chinchilla", "learning")
_found = sorted(m.name for m in pkgutil.iter_modules(__path__) if m.name not in _SHARED)
for _name in sorted(_found, key=lambda n: (_FAMILIES.index(n) if n in _FAMILIES else 99, n)):
    importlib.import_module(f"{__name__}.{_name}")

_EXPORTS = {
    "DataSummary": "bayescale.laws.base",
    "Law": "bayescale.laws.base",
    "evaluate": "bayescale.laws.base",
    "get_law": "bayescale.laws.base",
    "list_laws": "bayescale.laws.base",
    "register_law": "bayescale.laws.base",
    "unregister_law": "bayescale.laws.base",
    "laws_with": "bayescale.laws.base",
    "Allocation": "bayescale.laws.base",
    "DataNeed": "bayescale.laws.base",
}
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
