"""``headscope fragment [MODEL] TEXT [--target T] [--out DIR]``: how the single-map reading breaks apart."""

from __future__ import annotations

import argparse
from typing import Any

from .common import add_model_and_text, add_threads


def register(subparsers: Any) -> None:
    """Add the ``fragment`` verb."""
    p = subparsers.add_parser(
        "fragment", help="head disagreement, behaviours and agreement between readings",
        description="Inspect TEXT, then measure how far the heads disagree (JS divergence, effective number of "
        "maps, behaviours) and how far the readings (heads, layer means, all-heads mean, rollout, flow) agree "
        "with gradient and leave-one-out importance (Kendall τ over the output tokens that are words).")
    add_model_and_text(p)
    p.add_argument("--target", help="force this output (encoder-decoders)")
    p.add_argument("--no-faithful", action="store_true", help="skip gradient and leave-one-out readings")
    p.add_argument("--table", action="store_true", help="also print one row per head and per reading")
    p.add_argument("--out", metavar="DIR", help="also save fragmentation.json and fragmentation.csv to this folder")
    add_threads(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Inspect the text, print the fragmentation summary and the τ of each reading with LOO."""
    from ..fragment import fragmentation, key_label
    from ..run import inspect

    frag = fragmentation(inspect(args.model, args.text, target=args.target), faithful=not args.no_faithful)
    print(frag.summary())
    if "loo" in frag.references:
        print("Kendall τ of each reading with leave-one-out, best first (mean over the decisions; special "
              "output tokens such as </s> left out, as in headscope faithful):")
        for reading, tau in frag.tau_with("loo").items():
            print(f"  {key_label(reading):<16} {tau:+.3f}")
    if args.table:
        print(frag.table())
    if args.out:
        print(f"saved to {frag.save(args.out)}/ (Fragmentation.load reads it back)")
    return 0
