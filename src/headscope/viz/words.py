"""Word-level maps of readings: the data every word picture draws.

A figure of an attention map shows words, not subwords: :func:`word_map` takes any typed
reading of an inspection (``"cross.2.3"``, ``LayerMean("encoder", 1)``, ``"cross.rollout"``, ...
see :mod:`headscope.readings`), gets its ``[query, key]`` map from
:func:`headscope.aggregate.reading_map` and pools it to words the way :mod:`headscope.align`
does (key subwords summed: the mass put on a word; query subwords averaged).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from headscope import aggregate, align
from headscope.errors import ShapeError
from headscope.inspection import Inspection
from headscope.readings import Reading, Site, parse_reading

__all__ = ["word_map", "words_of"]


def words_of(tokens: Sequence[str], word_ids: Sequence[int | None]) -> list[str]:
    """Words rebuilt from subword tokens and their word ids (special tokens left out).

    Parameters
    ----------
    tokens
        Subword tokens (SentencePiece ``▁``, byte-level ``Ġ`` and WordPiece ``##`` markers are
        removed).
    word_ids
        The word index of each token; ``None`` for special tokens.

    Returns
    -------
    list of str
        One string per word, in word order (``"·"`` for a word whose pieces are all markers).

    Examples
    --------
    >>> words_of(["▁un", "▁hom", "me", "</s>"], [0, 1, 1, None])
    ['un', 'homme']
    """
    n = max((w for w in word_ids if w is not None), default=-1) + 1
    parts: list[list[str]] = [[] for _ in range(n)]
    for tok, w in zip(tokens, word_ids):
        if w is not None:
            parts[w].append(tok)
    out = []
    for pieces in parts:
        text = "".join(p[2:] if p.startswith("##") else p for p in pieces)
        out.append(text.replace("▁", "").replace("Ġ", "").replace("</w>", "") or "·")
    return out


def _word_ids(insp: Inspection, target_side: bool) -> list[int | None]:
    if target_side and insp.target_word_ids is not None:
        return list(insp.target_word_ids)
    return list(insp.source_word_ids)


def word_map(insp: Inspection, reading: str | Reading | Site, *, convention: str = align.DEFAULT_CONVENTION,
             src_pool: str = "sum", tgt_pool: str = "mean") -> tuple[np.ndarray, list[str], list[str]]:
    """The word-level map of one reading of ``insp``.

    Parameters
    ----------
    insp
        The inspection.
    reading
        A typed reading or its name, e.g. ``"cross.mean"`` (all heads), ``"cross.1.mean"`` (a
        layer's heads), ``"cross.1.2"`` (one head), ``"cross.rollout"``, ``"encoder.flow"``.
    convention
        Decoder-step rows of cross attention (``"naive"``: the step that outputs the word;
        ``"shift"``: the step that reads it; see :func:`headscope.align.select_rows`). Other
        kinds keep their rows.
    src_pool, tgt_pool
        How key subwords and query subwords pool into words (``"sum"``, ``"mean"``, ``"max"``).

    Returns
    -------
    matrix : numpy.ndarray
        ``[query words, key words]``.
    key_words, query_words : list of str
        The words labelling the columns and the rows.

    Raises
    ------
    headscope.errors.InputError
        A reading name that does not parse, or a kind, layer or head that was not captured.
    """
    r = parse_reading(reading)
    subword = aggregate.reading_map(insp, r).double().numpy()
    q_tokens, k_tokens = insp.query_tokens(r.kind), insp.key_tokens(r.kind)
    q_ids = _word_ids(insp, insp.architecture.query_is_target(r.kind))
    k_ids = _word_ids(insp, insp.architecture.key_is_target(r.kind))
    if subword.shape != (len(q_tokens), len(k_tokens)):
        raise ShapeError(f"the map of {r.name} has shape {subword.shape}, which does not fit "
                         f"{len(q_tokens)} x {len(k_tokens)} tokens")
    if r.kind == "cross":
        subword = np.asarray(align.select_rows(subword, convention))
    matrix = np.asarray(align.subword_to_word(subword, k_ids, q_ids, src_pool=src_pool, tgt_pool=tgt_pool))
    return matrix, words_of(k_tokens, k_ids), words_of(q_tokens, q_ids)
