"""`python -m dispytch ...`: the `dispytch` command, wherever console scripts are not on PATH."""

import sys

from dispytch.cli import main

sys.exit(main())
