"""Argument helpers shared by the verbs of the ``headscope`` command."""

from __future__ import annotations

import argparse

from ..errors import HeadscopeError


def model_and_text(args: argparse.Namespace) -> tuple[str, str]:
    """``(model, text)`` from the positional ``[MODEL] TEXT`` of a verb (default model when one is given)."""
    from ..models import DEFAULT_MODEL

    if len(args.args) == 1:
        return DEFAULT_MODEL, args.args[0]
    if len(args.args) == 2:
        return args.args[0], args.args[1]
    raise HeadscopeError("give TEXT, or MODEL TEXT (e.g. headscope inspect headscope/en-fr \"A man in a red shirt.\")")
