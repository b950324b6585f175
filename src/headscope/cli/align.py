"""``headscope align``: score every cross-attention head of a translator against gold alignments.

    headscope align MODEL --gold NAME_OR_FILES [--convention naive|shift|both] [--out DIR] [--limit N]

``--gold`` takes a built-in set (``hansards-en-fr``), ``SENTENCES ALIGNMENTS`` (``src ||| tgt``
lines and Pharaoh / talp links) or ``SOURCE TARGET ALIGNMENTS`` (parallel files).
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from headscope.align.evaluate import head_name
from headscope.align.extract import SYMMETRIZATIONS
from headscope.align.words import CONVENTIONS, DEFAULT_CONVENTION, POOLINGS
from headscope.errors import InputError

__all__ = ["register"]


def _out_dir(model: str) -> Path:
    return Path("headscope-align-" + re.sub(r"[^A-Za-z0-9._-]+", "_", Path(model).name or model))


def _align(args: argparse.Namespace) -> int:
    from headscope.align.evaluate import evaluate

    gold = args.gold[0] if len(args.gold) == 1 else tuple(args.gold)
    if len(args.gold) > 3:
        raise InputError(
            f"--gold takes a built-in name, SENTENCES ALIGNMENTS or SOURCE TARGET ALIGNMENTS; got {len(args.gold)} values"
        )
    if args.extraction == "threshold":
        extraction: object = ("threshold", args.threshold)
    elif args.threshold is not None:
        raise InputError("--threshold goes with --extraction threshold")
    else:
        extraction = "argmax"
    sources = tuple(args.sources.split(",")) if args.sources else None
    kwargs = {} if sources is None else {"sources": sources}
    report = evaluate(
        args.model,
        gold,
        convention=args.convention,
        extraction=extraction,
        batch_size=args.batch_size,
        limit=args.limit,
        progress=not args.no_progress,
        reverse=args.reverse,
        index_base=args.index_base,
        src_pool=args.src_pool,
        tgt_pool=args.tgt_pool,
        **kwargs,
    )
    print(report.table())
    print()
    print(report.summary())
    if args.symmetrize:
        if args.convention != "both":
            raise InputError("--symmetrize combines the naive and shift links: add --convention both")
        sym = report.symmetrized(args.symmetrize)
        best_agg = min(sym.aggregates.items(), key=lambda kv: kv[1]["aer"], default=None)
        print(f"  {sym.convention}: best head {head_name(*sym.best_head)} AER {sym.best_aer:.3f}"
              + (f"; best aggregate {best_agg[0]} AER {best_agg[1]['aer']:.3f}" if best_agg else ""))
    out = Path(args.out) if args.out else _out_dir(args.model)
    report.save(out)
    print(f"saved report.json, scores.csv, links.jsonl and aer_heatmap.png to {out}/")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``align`` verb."""
    p = subparsers.add_parser(
        "align",
        help="score every cross-attention head as a word aligner (precision, recall, AER) against gold alignments",
        description="Force each gold target through MODEL, turn every cross-attention head (and the layer "
        "means, all-heads mean and rollout) into word links, and score them against the gold links. "
        "Prints the AER table (layers x heads, best head marked *) and writes a report folder.",
    )
    p.add_argument("model", metavar="MODEL", help="translator: shipped name (headscope/en-fr), folder or hub name")
    p.add_argument("--gold", nargs="+", required=True, metavar="NAME_OR_FILES",
                   help="built-in gold set (hansards-en-fr), or SENTENCES ALIGNMENTS ('src ||| tgt' lines), "
                   "or SOURCE TARGET ALIGNMENTS")
    p.add_argument("--convention", choices=[*CONVENTIONS, "both"], default=DEFAULT_CONVENTION,
                   help=f"decoder step standing for a target word (default {DEFAULT_CONVENTION}; 'both' reports "
                   "naive and shift side by side)")
    p.add_argument("--extraction", choices=["argmax", "threshold"], default="argmax",
                   help="links per target word: its argmax source word (default) or every word above --threshold")
    p.add_argument("--threshold", type=float, default=None, metavar="P", help="probability for --extraction threshold")
    p.add_argument("--symmetrize", choices=SYMMETRIZATIONS, default=None,
                   help="also score each source's naive and shift links combined by this method (needs --convention both)")
    p.add_argument("--sources", default=None,
                   help="comma-separated map sources (heads,layer_mean,all_mean,rollout; default all)")
    p.add_argument("--src-pool", choices=POOLINGS, default="sum",
                   help="pool source subwords into words by sum (default), mean or max")
    p.add_argument("--tgt-pool", choices=POOLINGS, default="mean",
                   help="pool target subwords into words by mean (default), sum or max")
    p.add_argument("--index-base", type=int, choices=[0, 1], default=None,
                   help="0- or 1-based links in gold files (default: inferred when unambiguous)")
    p.add_argument("--reverse", action="store_true", help="swap the gold direction (source <-> target)")
    p.add_argument("--limit", type=int, default=None, metavar="N", help="score only the first N sentences")
    p.add_argument("--batch-size", type=int, default=32, help="sentences per forward pass (default 32)")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="report folder (default ./headscope-align-MODEL)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(handler=_align)
