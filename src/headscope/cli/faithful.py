"""``headscope faithful MODEL TEXT_OR_FILE [--out DIR]``: is the attention faithful on these inputs?

Prints per-head ablation effects (with the confidence / entropy / gradient proxies), Kendall tau
between attention and gradient / leave-one-out rankings, and the fraction of tokens erased before
the decision flips under each ranking; ``--out`` writes ``faithful.json``, ``heads.csv`` and
``examples.csv`` (:meth:`headscope.faithful.FaithfulnessReport.save`). A file argument is read as
one text per line.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from ..errors import InputError


def register(subparsers: Any) -> None:
    """Add the ``faithful`` verb."""
    p = subparsers.add_parser("faithful", help="head ablation, attention vs gradient/LOO, erasure flips")
    p.add_argument("model", help="model name or folder (e.g. headscope/sentiment, headscope/en-fr)")
    p.add_argument("text", metavar="TEXT_OR_FILE", help="a text, or a file with one text per line")
    p.add_argument("--out", help="folder for faithful.json, heads.csv and examples.csv")
    p.add_argument("--limit", type=int, default=None, help="use only the first N lines of a file")
    p.add_argument("--top", type=int, default=12, help="heads to show in the ablation table (default 12)")
    p.add_argument("--no-ablation", action="store_true", help="skip head ablation")
    p.add_argument("--batch-size", type=int, default=64, help="rows per forward pass in head ablation")
    p.set_defaults(handler=run)


def read_texts(arg: str, limit: int | None = None) -> list[str]:
    """One text, or the non-empty lines of a file."""
    if os.path.isfile(arg):
        lines = [ln.strip() for ln in Path(arg).read_text(encoding="utf-8").splitlines()]
        texts = [ln for ln in lines if ln]
        if not texts:
            raise InputError(f"{arg} has no non-empty lines; put one text per line")
    else:
        texts = [arg]
    return texts[:limit] if limit else texts


def run(args: argparse.Namespace) -> int:
    """Run the verb: compute the report, print its tables, save it with ``--out``."""
    from ..faithful import faithfulness_report
    from ..models.loading import load

    texts = read_texts(args.text, args.limit)
    report = faithfulness_report(load(args.model), texts, ablation_texts=0 if args.no_ablation else None,
                                 batch_size=args.batch_size, progress=len(texts) > 1)
    if report.ablation is not None:
        print(report.ablation.table(args.top))
        print()
    print(f"{report.model_name} ({report.architecture}), {len(texts)} text(s)")
    print(report.table())
    if args.out:
        report.save(args.out)
        print(f"wrote faithful.json, heads.csv, examples.csv to {args.out}/")
    return 0
