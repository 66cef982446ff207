"""The ``bayescale`` command line: ``main`` (entry point), shared options, one module per command in ``commands``."""
