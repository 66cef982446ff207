"""``python -m bayescale`` runs the command line."""

import sys

from bayescale.cli.main import main

sys.exit(main())
