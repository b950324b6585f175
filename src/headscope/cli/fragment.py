"""``headscope fragment [MODEL] TEXT_OR_FILE [--target T] [--out DIR]``: how the single-map reading breaks apart.

A file (one text per line, read as ``headscope faithful`` reads it) runs as a resumable corpus run
(:func:`headscope.fragment.fragmentation_corpus`, chunks of ``--chunk-size`` texts, shared out over
``--processes N``): finished chunks are kept in ``DIR.partial/`` beside the ``--out`` folder until
the run ends; it prints one line per text, and ``--out`` saves each text's fragmentation in
``DIR/text-0000/``, ``DIR/text-0001/``, ...
"""

from __future__ import annotations

import argparse
from typing import Any

from .common import add_corpus_options, add_model_and_text, add_threads, default_out, read_texts
from .resume import interruptible, resuming, work_folder


def register(subparsers: Any) -> None:
    """Add the ``fragment`` verb."""
    p = subparsers.add_parser(
        "fragment", help="head disagreement, behaviours and agreement between readings",
        description="Inspect TEXT, then measure how far the heads disagree (JS divergence, effective number of "
        "maps, behaviours) and how far the readings (heads, layer means, all-heads mean, rollout, flow) agree "
        "with gradient and leave-one-out importance (Kendall τ over the output tokens that are words).")
    add_model_and_text(p, "TEXT_OR_FILE", "a text, or a file with one text per line")
    p.add_argument("--target", help="force this output (encoder-decoders)")
    p.add_argument("--no-faithful", action="store_true", help="skip gradient and leave-one-out readings")
    p.add_argument("--table", action="store_true", help="also print one row per head and per reading")
    p.add_argument("--out", metavar="DIR", help="also save fragmentation.json and fragmentation.csv to this folder")
    add_corpus_options(p)
    add_threads(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Inspect the text, print the fragmentation summary and the τ of each reading with LOO (a file:
    one line per text)."""
    from pathlib import Path

    from ..errors import InputError

    texts, from_file = read_texts(args.text, args.limit, args.as_text)
    if from_file:
        if args.target is not None:
            raise InputError("--target forces the output of one text; with a file of texts leave it out")
        out = Path(args.out) if args.out else default_out("fragment", args.model, Path(args.text).name)
        work = work_folder(out)
        return interruptible(lambda: _corpus(args, texts, out, work), work, "chunks")
    if args.processes not in (None, 1):
        raise InputError(f"--processes {args.processes} shares out the texts of a file; one text runs in one "
                         "process: drop --processes, or give a file with one text per line")
    from ..fragment import fragmentation, key_label, long_input_reductions
    from ..models import load
    from ..run import inspect

    loaded = load(args.model)  # a text past LONG_INPUT tokens is read from reductions, as in a corpus run
    reduce = long_input_reductions(loaded, [args.text], None if args.target is None else [args.target])[0]
    insp = inspect(loaded, args.text, target=args.target, reduce=reduce)
    if loaded.architecture.reads_images and not args.no_faithful:
        from ..vision import image_fragmentation  # leave-one-patch-out and gradient saliency as the references

        frag = image_fragmentation(insp)
    else:
        frag = fragmentation(insp, faithful=not args.no_faithful)
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


def _corpus(args: argparse.Namespace, texts: list[str], out: Any, work: Any) -> int:
    """Fragmentation of every text of a file: one line per text; ``--out`` saves each."""
    import shutil

    from ..fragment import fragmentation_corpus, key_label
    from ..readings import Reading

    resuming(work, "chunks")
    frags = fragmentation_corpus(args.model, texts, chunk_size=args.chunk_size, faithful=not args.no_faithful,
                                 work_dir=work, processes=args.processes, progress=not args.no_progress)
    for k, (text, frag) in enumerate(zip(texts, frags)):
        kf = frag.kinds[frag.kind]
        line = (f"#{k:<4} {frag.kind}: {kf.n_heads} heads, {kf.effective_maps:.1f} effective maps, "
                f"mean JS {kf.mean_js:.3f}")
        if "loo" in frag.references:
            best, tau = next((r, t) for r, t in frag.tau_with("loo").items() if isinstance(r, Reading))
            line += f"; best attention reading by τ with LOO: {key_label(best)} {tau:+.2f}"
        print(f"{line}  | {text[:40]}")
    if args.out:
        for k, frag in enumerate(frags):
            frag.save(out / f"text-{k:04d}")
        print(f"saved {len(frags)} fragmentations to {out}/text-NNNN/ (Fragmentation.load reads each back)")
    shutil.rmtree(work, ignore_errors=True)  # the run is complete
    return 0
