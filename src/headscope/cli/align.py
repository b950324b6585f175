"""``headscope align``: score every cross-attention head of a translator against gold alignments.

    headscope align [MODEL] --gold NAME_OR_FILE [--gold FILE ...] [--convention naive|shift|both] [--out DIR] [--limit N]

``--gold`` takes one value each time: a built-in set (``--gold hansards-en-fr``), or files given
one per ``--gold``: ``SENTENCES ALIGNMENTS`` (``src ||| tgt`` lines and Pharaoh / talp links) or
``SOURCE TARGET ALIGNMENTS`` (parallel files); so it never swallows the model. The report goes to
``--out`` or ``headscope-out/align/<model>/<gold>/``. Beside the readings every table shows two
baselines scored on the same gold: the diagonal (no model) and eflomal, when installed
(``pip install 'headscope[aligners]'``), trained on the gold pairs plus ``--aligner-text SRC TGT``
(``--no-aligner``: the diagonal only; :mod:`headscope.align.baselines`). The report
folder gets the numbers (:meth:`headscope.align.AlignmentReport.save`) and one AER heatmap per
convention, drawn by :func:`headscope.viz.figures.aer_heatmap`, in one atomic step.

The run is resumable: every scored batch is saved at once in ``OUT.partial/`` beside the report
folder, and the same command run again after an interruption (Ctrl-C, a kill) scores only the
batches not saved yet, ending with the same report as an uninterrupted run
(:mod:`headscope.cli.resume`). Ctrl-C prints one line and exits with status 130.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from headscope.align.options import CONVENTIONS, DEFAULT_CONVENTION, DEFAULT_SOURCES, POOLINGS, SOURCES, SYMMETRIZATIONS
from headscope.cli.common import add_model
from headscope.cli.resume import interruptible, resuming, work_folder
from headscope.errors import InputError
from headscope.readings import parse_reading

if TYPE_CHECKING:  # torch and the scoring modules load when the verb runs, not for ``headscope --help``
    from headscope.align.report import AlignmentReport

__all__ = ["draw_heatmaps", "register"]


def _out_dir(model: str, gold: list[str]) -> Path:
    """The report folder without ``--out``: ``headscope-out/align/<model>/<gold>``."""
    from headscope.cli.common import default_out

    return default_out("align", model, Path(gold[0]).name or gold[0])


def draw_heatmaps(report: "AlignmentReport", folder: str | Path) -> list[Path]:
    """Write ``aer_heatmap_<convention>.png`` (AER per layer x head, best head outlined) for each
    scored convention into ``folder``; returns the files.

    >>> draw_heatmaps(report, "align-en-fr")                                  # doctest: +SKIP
    [PosixPath('align-en-fr/aer_heatmap_naive.png'), PosixPath('align-en-fr/aer_heatmap_shift.png')]
    """
    from headscope.viz.files import write_atomic

    return [write_atomic(Path(folder) / name, data) for name, data in heatmap_files(report).items()]


def heatmap_files(report: "AlignmentReport") -> dict[str, bytes]:
    """``{"aer_heatmap_<convention>.png": PNG bytes}`` for each scored convention (for
    :meth:`~headscope.align.AlignmentReport.save`'s ``extra_files``)."""
    from headscope.viz.figures import aer_heatmap, to_bytes

    out = {}
    for conv, sc in report.by_convention.items():
        fig = aer_heatmap(sc.aer, layers=report.layers, best=sc.best_head,
                          title=f"AER, {conv} (best {sc.best.name} {sc.best_aer:.3f})")
        out[f"aer_heatmap_{conv}.png"] = to_bytes(fig, "png")
    return out


def _align(args: argparse.Namespace) -> int:
    out = Path(args.out) if args.out else _out_dir(args.model, args.gold)
    work = work_folder(out)
    return interruptible(lambda: _align_in(args, out, work), work, "batches")


def _align_in(args: argparse.Namespace, out: Path, work: Path) -> int:
    import shutil

    import torch

    from headscope import storage
    from headscope.align import evaluate
    from headscope.align.store import REPORT

    if args.threads < 1:
        raise InputError(f"--threads takes a positive number, not {args.threads}")
    torch.set_num_threads(args.threads)
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
    storage.check_destination(out, marker=REPORT, what="alignment report")  # before the work, not after
    resuming(work, "batches")
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
        work_dir=work,
        processes=args.processes,
        aligner=None if args.no_aligner else "eflomal",
        aligner_text=tuple(args.aligner_text) if args.aligner_text else None,
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
        print(f"  {sym.convention}: best head {sym.best.name} AER {sym.best_aer:.3f}"
              + (f"; best aggregate {parse_reading(best_agg[0]).label} AER {best_agg[1]['aer']:.3f}"
                 if best_agg else ""))
    pictures = heatmap_files(report)
    report.save(out, extra_files=pictures)  # numbers and pictures in one atomic step
    shutil.rmtree(work, ignore_errors=True)  # the report is saved: the finished batches are no longer needed
    print(f"saved report.json, scores.csv, links.jsonl and {', '.join(pictures)} to {out}/")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``align`` verb."""
    p = subparsers.add_parser(
        "align",
        help="score every cross-attention head as a word aligner (precision, recall, AER) against gold alignments",
        description="Force each gold target through MODEL, turn every cross-attention head (and the layer "
        "means, all-heads mean and rollout) into word links, and score them against the gold links. "
        "Prints the AER table (layers x heads, best head marked *) beside two baselines (the diagonal, and "
        "eflomal when installed) and writes a report folder.",
    )
    add_model(p, "translator")
    p.add_argument("--gold", action="append", required=True, metavar="NAME_OR_FILE",
                   help="built-in gold set (hansards-en-fr); or files, one per --gold: SENTENCES then ALIGNMENTS "
                   "('src ||| tgt' lines, then Pharaoh/talp links), or SOURCE, TARGET, ALIGNMENTS")
    p.add_argument("--convention", choices=[*CONVENTIONS, "both"], default=DEFAULT_CONVENTION,
                   help=f"decoder step standing for a target word (default {DEFAULT_CONVENTION}; 'both' reports "
                   "naive and shift side by side)")
    p.add_argument("--extraction", choices=["argmax", "threshold"], default="argmax",
                   help="links per target word: its argmax source word (default) or every word above --threshold")
    p.add_argument("--threshold", type=float, default=None, metavar="P", help="probability for --extraction threshold")
    p.add_argument("--symmetrize", choices=SYMMETRIZATIONS, default=None,
                   help="also score each source's naive and shift links combined by this method (needs --convention both)")
    p.add_argument("--sources", default=None,
                   help=f"comma-separated groups of readings to score ({','.join(SOURCES)}; default "
                   f"{','.join(DEFAULT_SOURCES)}: the raw attention readings)")
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
                   help="report folder (default headscope-out/align/MODEL/GOLD); finished batches are kept in DIR.partial/ "
                   "until it is saved, so the same command run again after an interruption continues")
    p.add_argument("--threads", type=int, default=1, metavar="N",
                   help="torch threads (default 1: small translators on few busy cores run fastest on one)")
    p.add_argument("--processes", type=int, default=None, metavar="N",
                   help="score the batches in N processes (one GPU each where there are GPUs, one torch thread each "
                   "on the CPU) with accelerate; the report equals a one-process report (docs/scale.md)")
    p.add_argument("--aligner-text", nargs=2, default=None, metavar=("SRC", "TGT"),
                   help="parallel text (one sentence per line, words separated by spaces) to train the eflomal "
                   "baseline on, besides the gold pairs")
    p.add_argument("--no-aligner", action="store_true",
                   help="score the diagonal baseline only, not the statistical aligner (eflomal)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(handler=_align)
