"""``python -m fastkl``: the ``fastkl`` command line (see :mod:`fastkl.cli`)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
