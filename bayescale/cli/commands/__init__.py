"""Subcommands of the ``bayescale`` command line, one module per question asked of a fit.

Each module defines ``register(sub)``, which adds its parser(s) to the ``argparse``
subparsers ``sub`` and sets ``func`` to a function ``(args) -> exit code``. Modules import the
library lazily inside those functions so ``bayescale --help`` stays fast. Like
:mod:`bayescale.cli.app`, commands only call the public library API.
"""
