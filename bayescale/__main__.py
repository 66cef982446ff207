"""``python -m bayescale`` runs the command line."""

import sys

from bayescale.cli.app import main

sys.exit(main())
