"""``python -m vigil.cli``: the same as the ``vigil`` command."""

import sys

from vigil.cli.main import app

sys.exit(app())
