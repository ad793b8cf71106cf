"""``python -m tradestore``: the ``tradestore`` command, for a copy of the folder vendored
into a project (no console script is installed then)."""

import sys

from .cli import main

sys.exit(main())
