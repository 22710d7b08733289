"""`python -m kseries`: the one module entry point, the same as the `kseries` command."""

import sys

from kseries.cli import main

sys.exit(main())
