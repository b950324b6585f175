"""``headscope faithful [MODEL] TEXT_OR_FILE [--out DIR]``: is the attention faithful on these inputs?

Prints per-head ablation effects (with the confidence / entropy / gradient proxies), Kendall tau
between attention and gradient / leave-one-out rankings, and the fraction of tokens erased before
the decision flips under each ranking; ``--out`` writes ``faithful.json``, ``heads.csv`` and
``examples.csv`` (:meth:`headscope.faithful.FaithfulnessReport.save`).

``TEXT_OR_FILE`` is a file (one text per line) when such a file exists; an argument that looks
like a file name (no spaces, and a ``/`` or a suffix such as ``.txt``) but names no file is an
error rather than a text to analyse. ``--text`` analyses the argument as a text in any case.

A file runs as a resumable corpus run (:func:`headscope.faithful.faithfulness_corpus`, chunks of
``--chunk-size`` texts): finished chunks are kept in ``DIR.partial/`` beside the ``--out`` folder
(without ``--out``: ``headscope-out/faithful/<model>/<file>.partial/``) until the run ends, and the
same command run again after an interruption continues where it stopped, with the same result.
Ctrl-C prints one line and exits with status 130.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path
from typing import Any

from ..errors import InputError
from .common import add_corpus_options, add_model_and_text, add_threads, default_out, read_texts
from .resume import interruptible, resuming, work_folder


def register(subparsers: Any) -> None:
    """Add the ``faithful`` verb."""
    p = subparsers.add_parser("faithful", help="head ablation, attention vs gradient/LOO, erasure flips",
                              description="Is the attention faithful on these inputs? Head ablation, Kendall τ of the "
                              "attention ranking against gradient and leave-one-out rankings, and erasure until the "
                              "decision flips.")
    add_model_and_text(p, "TEXT_OR_FILE", "a text, or a file with one text per line")
    p.add_argument("--out", help="folder for faithful.json, heads.csv and examples.csv")
    p.add_argument("--top", type=int, default=12, help="heads to show in the ablation table (default 12)")
    p.add_argument("--no-ablation", action="store_true", help="skip head ablation")
    p.add_argument("--batch-size", type=int, default=64, help="rows per forward pass in head ablation")
    add_corpus_options(p)
    add_threads(p)
    p.set_defaults(handler=run)


def _compared(report: Any) -> str:
    """Which attention reading the taus are of, and over which decisions (so that they can be matched
    with ``headscope fragment`` and ``headscope report``, which use the same reading names and rows)."""
    from ..readings import parse_reading

    names = sorted({c.reading for c in report.comparisons if c.reading})
    readings = ", ".join(f"{parse_reading(n).label} ({n})" for n in names) or "attention"
    decisions = sum(len(c.rows) for c in report.comparisons)
    return (f"attention = {readings}; Kendall τ per decision, {decisions} decision(s) explained "
            "(special output tokens such as </s> are not explained; headscope fragment and report use the same rows)")


def run(args: argparse.Namespace) -> int:
    """Run the verb: compute the report, print its tables, save it with ``--out``."""
    texts, from_file = read_texts(args.text, args.limit, args.as_text)
    work = None
    if from_file:
        out = Path(args.out) if args.out else default_out("faithful", args.model, Path(args.text).name)
        work = work_folder(out)
    return interruptible(lambda: _run(args, texts, work), work, "chunks")


def _run(args: argparse.Namespace, texts: list[str], work: Path | None) -> int:
    from ..faithful import faithfulness_corpus, faithfulness_report
    from ..models.loading import load

    if args.out:
        from .. import storage

        storage.check_destination(Path(args.out), marker="faithful.json", what="faithfulness report")
    ablation = 0 if args.no_ablation else None
    if work is None and args.processes not in (None, 1):
        raise InputError(f"--processes {args.processes} shares out the texts of a file; one text runs in one process: "
                         "drop --processes, or give a file with one text per line")
    if work is None:
        report = faithfulness_report(load(args.model), texts, ablation_texts=ablation, batch_size=args.batch_size,
                                     progress=False)
    else:
        resuming(work, "chunks")
        report = faithfulness_corpus(args.model, texts, chunk_size=args.chunk_size, work_dir=work,
                                     ablation_texts=ablation, batch_size=args.batch_size,
                                     progress=not args.no_progress, processes=args.processes)
    if report.ablation is not None:
        print(report.ablation.table(args.top))
        print()
    print(f"{report.model_name} ({report.architecture}), {len(texts)} text(s)")
    print(_compared(report))
    print(report.table())
    if args.out:
        report.save(args.out)
        print(f"wrote faithful.json, heads.csv, examples.csv to {args.out}/")
    if work is not None:
        shutil.rmtree(work, ignore_errors=True)  # the run is complete (and saved with --out)
    return 0
