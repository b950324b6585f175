"""``python -m headscope.cli``: the headscope command."""

import sys

from . import main

sys.exit(main())
