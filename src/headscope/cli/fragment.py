"""``headscope fragment [MODEL] TEXT [--target T] [--out DIR]``: how the single-map reading breaks apart."""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    """Add the ``fragment`` verb."""
    p = subparsers.add_parser("fragment", help="head disagreement, behaviours and agreement between readings")
    p.add_argument("args", nargs="+", metavar="[MODEL] TEXT", help="model (default headscope/en-fr) and the text")
    p.add_argument("--target", help="force this output (encoder-decoders)")
    p.add_argument("--no-faithful", action="store_true", help="skip gradient and leave-one-out readings")
    p.add_argument("--out", help="folder for fragmentation.json")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Inspect the text, print the fragmentation summary and the τ of each reading with LOO."""
    from .common import model_and_text
    from ..run import inspect

    model, text = model_and_text(args)
    frag = inspect(model, text, target=args.target).fragmentation(faithful=not args.no_faithful)
    print(frag.summary())
    if "loo" in frag.reading_names:
        print("Kendall τ of each reading with leave-one-out, best first:")
        for name, tau in frag.tau_with("loo").items():
            print(f"  {name:<16} {tau:+.3f}")
    if args.out:
        print(f"saved to {frag.save(args.out)}/fragmentation.json")
    return 0
