"""The ``bayescale`` command line: the entry point ``main`` and one module per command."""
