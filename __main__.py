"""``python -m ppuu`` is the ``ppuu`` command line."""

import sys

from ppuu.app.cli import main

sys.exit(main())
