"""`python -m dispytch.cli ...`, the same as `dispytch ...`."""

import sys

from dispytch.cli import main

sys.exit(main())
