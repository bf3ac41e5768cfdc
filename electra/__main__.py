"""`python -m electra ...`: the `electra` command where the console script is not on PATH
(a venv that is not activated, or a user install outside PATH)."""

import sys

from electra.cli import main

sys.exit(main())
