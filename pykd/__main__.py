"""``python -m pykd ...``: the same CLI as the ``pykd`` command."""

import sys

from pykd.cli import main

sys.exit(main())
