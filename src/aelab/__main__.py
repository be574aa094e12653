"""``python -m aelab``: the CLI, for launchers that start a module (``torchrun -m aelab train ...``)."""

import sys

from .cli import main

sys.exit(main())
