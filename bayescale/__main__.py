"""``python -m bayescale`` runs the command line."""

import sys

from bayescale.cli import main

sys.exit(main())
