"""The ``bayescale`` command line: the entry point ``main`` (in ``app``), one module per command."""

from bayescale.core.lazy import lazy_exports

_EXPORTS = {"main": "bayescale.cli.app", "build_parser": "bayescale.cli.app"}
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
