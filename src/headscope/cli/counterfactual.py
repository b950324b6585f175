"""``headscope counterfactual [MODEL] TEXT_OR_FILE``: can the attention be swapped without changing the output?

Replaces the attention of each chosen head set during the forward pass - uniform, randomly
permuted, or adversarial within a total-variation bound (Jain & Wallace 2019 section 4) - and
prints how far the output moved (:func:`headscope.faithful.counterfactual`). ``--out`` saves
``counterfactual.json`` and ``effects.csv`` (:meth:`CounterfactualResult.save`). A file argument
is read as one text per line.

    headscope counterfactual headscope/sentiment "A dull, lifeless film." --method adversarial
    headscope counterfactual headscope/en-fr sentences.txt --sites cross.2.mean cross.mean --epsilon 0.01 0.05
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from ..errors import InputError
from .common import add_model_and_text


def register(subparsers: Any) -> None:
    """Add the ``counterfactual`` verb."""
    p = subparsers.add_parser(
        "counterfactual",
        help="replace attention (uniform, permuted, adversarial) during the forward and measure the output change")
    add_model_and_text(p, "TEXT_OR_FILE", "a text, or a file with one text per line")
    p.add_argument("--sites", nargs="+", default=None,
                   help="head sets, each replaced on its own: a head (cross.2.3), a layer (cross.2.mean), every "
                        "head of a kind (cross.mean), or several joined with '+' (cross.0.1+cross.2.3); default: "
                        "each layer of the decision kind and all of its heads")
    p.add_argument("--method", nargs="+", default=["uniform", "permute", "adversarial"],
                   choices=["uniform", "permute", "adversarial"], help="interventions (default: all three)")
    p.add_argument("--epsilon", nargs="+", type=float, default=[0.01, 0.05],
                   help="TVD bounds of the adversarial search (default 0.01 0.05)")
    p.add_argument("--rows", choices=["all", "decision"], default="all",
                   help="replace every real query row (default) or only the rows decisions are read from")
    p.add_argument("--target", help="force this output (encoder-decoders; one text only)")
    p.add_argument("--permutations", type=int, default=10, help="random permutations per example (default 10)")
    p.add_argument("--steps", type=int, default=40, help="adversarial search steps per epsilon (default 40)")
    p.add_argument("--seed", type=int, default=0, help="seed of the permutations and the adversarial search (default 0)")
    p.add_argument("--limit", type=int, default=None, help="use only the first N lines of a file")
    p.add_argument("--batch-size", type=int, default=16, help="examples per forward pass")
    p.add_argument("--out", help="folder for counterfactual.json and effects.csv")
    p.set_defaults(handler=run)


def _model_and_texts(args: argparse.Namespace) -> tuple[str, list[str]]:
    model, arg = args.model, args.text  # [MODEL] TEXT_OR_FILE (headscope.cli.common)
    if os.path.isfile(arg):
        texts = [ln.strip() for ln in Path(arg).read_text(encoding="utf-8").splitlines() if ln.strip()]
        if not texts:
            raise InputError(f"{arg} has no non-empty lines; put one text per line")
    else:
        texts = [arg]
    return model, texts[: args.limit] if args.limit else texts


def run(args: argparse.Namespace) -> int:
    """Run the verb: print the summary and the table, save with ``--out``."""
    from ..faithful import counterfactual
    from ..models.loading import load

    model, texts = _model_and_texts(args)
    if args.target is not None and len(texts) != 1:
        raise InputError("--target forces the output of one text; give one text, not a file")
    sites = None if args.sites is None else list(args.sites)
    res = counterfactual(load(model), texts if len(texts) > 1 else texts[0], target=args.target, sites=sites,
                         method=args.method, epsilon=args.epsilon, rows=args.rows,
                         permutations=args.permutations, steps=args.steps, seed=args.seed,
                         batch_size=args.batch_size, progress=len(texts) > args.batch_size)
    print(res.summary())
    print()
    print(res.table())
    if args.out:
        res.save(args.out)
        print(f"wrote counterfactual.json and effects.csv to {args.out}/")
    return 0
