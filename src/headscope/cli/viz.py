"""Verbs ``headscope report`` and ``headscope bertviz``.

    headscope report [MODEL] TEXT [--target T] [--gold LINKS] [--out DIR]
    headscope bertviz [MODEL] TEXT [--target T] [--view head|model] [--layers 0 2] [--heads 0 1] [--out FILE]

Without ``--out`` the page goes under ``headscope-out/report/<model>/<text>/report.html`` and
``headscope-out/bertviz/<model>/<text>/bertviz_<view>.html``.

``--gold`` takes Pharaoh / talp links for the given sentence pair, over 0-based indices of the
whitespace-separated words of TEXT (source) and of ``--target`` (``"0-0 1-2 2-1 3p3"``; ``p`` or
``?`` marks a possible link). It needs ``--target`` (links of an output that was not given
make no sense), and then both sides are inspected word by word (split on whitespace) so the
indices match.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import InputError
from .common import add_model_and_text, add_threads, default_out

if TYPE_CHECKING:  # the model and drawing stacks are imported when a verb runs, not when the parser is built
    from ..inspection import Inspection


def _inspect(args: argparse.Namespace, words: bool) -> Inspection:
    """The inspection a verb asked for; ``words``: source and target split on whitespace (for gold links)."""
    from ..run import inspect

    model, text = args.model, args.text
    if words:
        return inspect(model, text.split(), target=args.target.split(), is_split_into_words=True)
    return inspect(model, text, target=args.target)


def _report(args: argparse.Namespace) -> int:
    """``headscope report``: write the one-page report."""
    from ..viz import parse_gold, report

    if args.gold is not None and args.target is None:
        raise InputError("--gold links need the sentence pair: give the output with --target as well")
    gold = parse_gold(args.gold) if args.gold is not None else None
    insp = _inspect(args, words=gold is not None)
    out = args.out or default_out("report", args.model, args.text)
    path = report(insp, out, gold=gold, faithful=not args.no_faithful, bertviz=not args.no_bertviz,
                  bertviz_layers=args.layers, bertviz_heads=args.heads, decimals=args.decimals,
                  convention=args.convention, fragmentation=not args.no_fragmentation)
    print(insp.summary())
    print(f"report written to {path}")
    return 0


def _bertviz(args: argparse.Namespace) -> int:
    """``headscope bertviz``: write one bertviz view that opens offline."""
    from ..viz import to_bertviz

    insp = _inspect(args, words=False)
    out = Path(args.out or default_out("bertviz", args.model, args.text))
    if out.suffix.lower() not in (".html", ".htm"):
        out = out / f"bertviz_{args.view}.html"
    page = to_bertviz(insp, args.view, path=out, layers=args.layers, heads=args.heads, decimals=args.decimals,
                      kinds=args.kinds, display=False)
    print(f"bertviz {args.view} view written to {out} ({len(page.encode('utf-8')) / 1e6:.2f} MB; opens offline)")
    return 0


def _common(p: argparse.ArgumentParser) -> None:
    """The arguments both verbs take."""
    add_model_and_text(p)
    p.add_argument("--target", help="force this output (encoder-decoders) instead of generating")
    p.add_argument("--layers", type=int, nargs="+", metavar="L",
                   help="model layer indices shown in the bertviz views (default all)")
    p.add_argument("--heads", type=int, nargs="+", metavar="H", help="head indices shown in the bertviz views (default all)")
    p.add_argument("--decimals", type=int, default=3, help="decimals kept for the bertviz weights (default 3)")
    add_threads(p)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``report`` and ``bertviz`` verbs.

    Parameters
    ----------
    subparsers
        The ``headscope`` command's verb parsers.
    """
    p = subparsers.add_parser("report", help="write one self-contained HTML page: output, alignment, views, faithfulness",
                              description="Inspect TEXT and write one self-contained HTML page (opens offline) with "
                              "the output, alignment (with --target and --gold), the plausible views, the faithfulness "
                              "tests and the fragmentation, each under the claim it supports.")
    _common(p)
    p.add_argument("--gold", metavar="LINKS",
                   help="gold links for TEXT/--target, Pharaoh format over 0-based whitespace words, e.g. '0-0 1-2 2-1 3p3'")
    p.add_argument("--convention", choices=("naive", "shift"), help="decoder-step rows used to score alignment")
    p.add_argument("--no-faithful", action="store_true", help="skip head ablation and token importance")
    p.add_argument("--no-fragmentation", action="store_true", help="skip the fragmentation section")
    p.add_argument("--no-bertviz", action="store_true", help="leave the bertviz views out (smaller page)")
    p.add_argument("--out", metavar="DIR", help="folder (gets report.html) or .html file "
                   "(default headscope-out/report/MODEL/TEXT/)")
    p.set_defaults(handler=_report)

    p = subparsers.add_parser("bertviz", help="write a bertviz head/model view that opens offline",
                              description="Inspect TEXT and write a bertviz view as one HTML file that opens offline "
                              "(its scripts inline).")
    _common(p)
    p.add_argument("--view", choices=("head", "model"), default="head",
                   help="bertviz's head view (one layer at a time, lines between tokens; default) or model view "
                   "(a grid of every layer x head)")
    p.add_argument("--kinds", nargs="+", choices=("encoder", "decoder", "cross"), help="attention kinds to show")
    p.add_argument("--out", metavar="FILE", help="folder or .html file (default "
                   "headscope-out/bertviz/MODEL/TEXT/bertviz_VIEW.html)")
    p.set_defaults(handler=_bertviz)
