"""``python -m headscope.cli``: the headscope command."""

from . import run

run()
