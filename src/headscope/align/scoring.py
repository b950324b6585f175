"""Score cross-attention readings against gold links in one pass over a corpus.

A :class:`Scorer` takes one forced translation at a time with its gold row, turns every reading
into word maps and links under each decoder-step convention, and adds the AER counts of all of
them at once (one boolean mask ``[readings, target words, source words]`` per sentence and
convention). :meth:`Scorer.report` gives the :class:`~headscope.align.AlignmentReport`.

>>> row = {"source_words": ["a", "b"], "target_words": ["x", "y"], "sure": [[0, 0]], "possible": []}
>>> scorer = Scorer(("naive",), "argmax", ("heads",), n_sentences=1)
>>> scorer.add(0, insp, row)                                                   # doctest: +SKIP
>>> scorer.report(model_name="m", gold_name="g", gold=[row], seconds=0.1).best_head  # doctest: +SKIP
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from headscope.align.extract import Extraction, extraction_mask, extraction_name, mask_to_links
from headscope.align.metrics import AERCounts
from headscope.align.options import CONVENTIONS, DEFAULT_CONVENTION, POOLINGS
from headscope.align.report import AlignmentReport, ConventionScores
from headscope.align.wordmaps import check_sources, check_translation, cross_readings, reading_stack
from headscope.align.words import select_rows, subword_to_word
from headscope.errors import InputError
from headscope.inspection import Inspection
from headscope.readings import Reading, Rollout

__all__ = ["Scorer", "check_conventions", "check_pools"]


def check_conventions(convention: str) -> tuple[str, ...]:
    """The conventions ``convention`` asks for: ``"naive"``, ``"shift"`` or ``"both"``.

    >>> check_conventions("both")
    ('naive', 'shift')
    """
    if convention == "both":
        return CONVENTIONS
    if convention in CONVENTIONS:
        return (convention,)
    raise InputError(f"convention must be 'naive', 'shift' or 'both', not {convention!r}")


def check_pools(src_pool: str, tgt_pool: str) -> tuple[str, str]:
    """``(src_pool, tgt_pool)``, each one of :data:`~headscope.align.POOLINGS`.

    >>> check_pools("sum", "max")
    ('sum', 'max')
    """
    for name, how in (("src_pool", src_pool), ("tgt_pool", tgt_pool)):
        if how not in POOLINGS:
            raise InputError(f"{name} must be one of {POOLINGS}, not {how!r}")
    return src_pool, tgt_pool


def _check_words(word_ids: Sequence[int | None], words: Sequence[str], side: str, k: int) -> None:
    """Refuse a sentence whose tokenizer words are not exactly the gold words."""
    seen = sorted({w for w in word_ids if w is not None})
    if seen == list(range(len(words))):
        return
    n_tok = (seen[-1] + 1) if seen else 0
    missing = [i for i in range(len(words)) if i not in set(seen)]
    detail = ""
    if missing:
        detail = f"; gold {side} word #{missing[0]} {words[missing[0]]!r} got no token"
    elif n_tok > len(words):
        detail = f"; the tokenizer has word #{n_tok - 1}, past the last gold word"
    raise InputError(
        f"sentence {k} (line {k + 1} of the gold files): the tokenizer's {side} words do not match the gold "
        f"{side} words ({len(words)} gold words, tokenizer word ids cover {len(seen)} of them, up to {n_tok - 1})"
        f"{detail}. The gold sentence must be tokenised into the words the model's tokenizer keeps (use a fast "
        "tokenizer: words are passed with is_split_into_words=True)"
    )


class Scorer:
    """AER counts of every reading under every convention, accumulated one sentence at a time.

    Parameters
    ----------
    conventions : from :func:`check_conventions`.
    extraction : ``"argmax"`` or ``("threshold", p)``.
    sources : groups of readings to score (:data:`~headscope.align.SOURCES`).
    n_sentences : number of gold sentences (links are kept per sentence).
    pools : ``(src_pool, tgt_pool)`` subword pooling.
    """

    def __init__(self, conventions: tuple[str, ...], extraction: Extraction, sources: Sequence[str],
                 n_sentences: int, pools: tuple[str, str] = ("sum", "mean")) -> None:
        self.conventions = conventions
        self.extraction = extraction
        self.sources = check_sources(sources)
        self.pools = check_pools(*pools)
        self.readings: list[Reading] | None = None
        self.layers: list[int] = []
        self.n_heads = 0
        self.counts: dict[str, AERCounts] = {}
        self.masks: dict[str, list[np.ndarray | None]] = {c: [None] * n_sentences for c in conventions}
        self.warned_eos = False

    def add(self, k: int, insp: Inspection, row: dict[str, Any]) -> None:
        """Score sentence ``k``: its forced inspection and gold row (``source_words``,
        ``target_words``, ``sure``, ``possible``)."""
        src_words, tgt_words = row["source_words"], row["target_words"]
        check_translation(insp)
        _check_words(insp.source_word_ids, src_words, "source", k)
        _check_words(insp.target_word_ids, tgt_words, "target", k)
        readings = cross_readings(insp, self.sources)
        if self.readings is None:
            self.readings, self.layers, self.n_heads = readings, insp.layer_indices("cross"), insp.shape("cross")[1]
            self.counts = {c: AERCounts((len(readings),)) for c in self.conventions}
        elif readings != self.readings:
            raise InputError(f"sentence {k}: readings {[r.name for r in readings]} differ from the first "
                             f"sentence's {[r.name for r in self.readings]}")
        if "shift" in self.conventions and insp.target_word_ids[-1] is not None and not self.warned_eos:
            self.warned_eos = True
            warnings.warn(f"sentence {k}: the target does not end with a special token (EOS); under the shift "
                          "convention its last word keeps its own (naive) row", stacklevel=3)
        stack = reading_stack(insp, readings)
        masks = {}
        for conv in self.conventions:
            word_maps = subword_to_word(select_rows(stack, conv), insp.source_word_ids, insp.target_word_ids,
                                        *self.pools, n_src_words=len(src_words), n_tgt_words=len(tgt_words))
            masks[conv] = extraction_mask(word_maps, self.extraction).numpy()
        self._count(k, row, masks)

    # ---- resumable runs: a sentence's link masks, saved and added back -------------------------
    def saved(self, k: int) -> dict[str, np.ndarray]:
        """The link masks ``{convention: bool [readings, target words, source words]}`` of sentence ``k``."""
        return {c: self.masks[c][k] for c in self.conventions}

    def restore(self, k: int, row: dict[str, Any], masks: dict[str, np.ndarray], readings: list[Reading],
                layers: list[int], n_heads: int) -> None:
        """Add sentence ``k`` from its saved masks (:meth:`saved`) and the readings they belong to;
        the counts equal those :meth:`add` gives."""
        if self.readings is None:
            self.readings, self.layers, self.n_heads = list(readings), list(layers), n_heads
            self.counts = {c: AERCounts((len(readings),)) for c in self.conventions}
        elif list(readings) != self.readings or list(layers) != self.layers or n_heads != self.n_heads:
            raise InputError(f"sentence {k}: saved readings {[r.name for r in readings]} differ from "
                             f"{[r.name for r in self.readings]}; delete the work folder and run again")
        n_src, n_tgt = len(row["source_words"]), len(row["target_words"])
        for conv in self.conventions:
            mask = masks.get(conv)
            if mask is None or mask.dtype != np.bool_ or mask.shape != (len(readings), n_tgt, n_src):
                raise InputError(f"sentence {k}: saved links do not fit the gold sentence "
                                 f"({None if mask is None else mask.shape} for {(len(readings), n_tgt, n_src)})")
        self._count(k, row, masks)

    def _count(self, k: int, row: dict[str, Any], masks: dict[str, np.ndarray]) -> None:
        sure = [tuple(x) for x in row["sure"]]
        possible = [tuple(x) for x in row["possible"]]
        for conv in self.conventions:
            self.counts[conv].add(masks[conv], sure, possible)
            self.masks[conv][k] = masks[conv]

    def report(self, *, model_name: str, gold_name: str, gold: list[dict[str, Any]],
               seconds: float) -> AlignmentReport:
        """The report of everything added (every sentence must have been added)."""
        if self.readings is None:
            raise InputError("no sentences to score")
        readings = self.readings
        by_conv = {c: ConventionScores.from_score(c, self.counts[c].score(), readings, self.layers, self.n_heads)
                   for c in self.conventions}
        links = {c: [[mask_to_links(m[s]) for s in range(len(readings))] for m in masks]
                 for c, masks in self.masks.items()}
        pooling = "" if self.pools == ("sum", "mean") else f", pooling {self.pools[0]}/{self.pools[1]}"
        notes = []
        if "rollout" in self.sources and not any(isinstance(r, Rollout) for r in readings):
            notes.append("rollout not scored: encoder/decoder self-attention was not captured")
        return AlignmentReport(
            model_name=model_name, gold_name=gold_name,
            convention=DEFAULT_CONVENTION if DEFAULT_CONVENTION in self.conventions else self.conventions[0],
            extraction=extraction_name(self.extraction) + pooling, layers=self.layers, n_heads=self.n_heads,
            by_convention=by_conv, readings=readings, n_sentences=len(gold), seconds=seconds, notes=notes,
            links=links, gold=gold,
        )

