"""Word links from word maps, and symmetrisation of two link sets.

A word map is ``[T_words, S_words]``: one row per target word (from
:func:`headscope.align.subword_to_word`). Links are ``(source index, target index)`` pairs,
0-based, as in the gold dataset columns. A mask is the boolean form of a link set in the map
layout: ``mask[..., j, i]`` is True for link ``(i, j)``.

Extraction: :func:`argmax` links each target word to its highest-scoring source word (the usual
attention aligner); :func:`threshold` keeps every cell above a probability. The ``*_mask``
forms work on any leading dimensions (layers, heads) at once.

Symmetrisation combines two link sets for the same sentence pair, e.g. from the two translation
directions or the two decoder-step conventions: :func:`intersection`, :func:`union`,
:func:`grow_diag` and :func:`grow_diag_final` (Och & Ney 2003; Koehn, Och & Marcu 2003,
"Statistical Phrase-Based Translation"). Both inputs must be in (source, target) orientation:
flip links of a reverse-direction aligner first, ``{(j, i) for i, j in links}``.

Example
-------
>>> import numpy as np
>>> m = np.array([[0.7, 0.2, 0.1],    # target word 0
...               [0.1, 0.3, 0.6]])   # target word 1
>>> sorted(argmax(m)), sorted(threshold(m, 0.25))
([(0, 0), (2, 1)], [(0, 0), (1, 1), (2, 1)])
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Literal, TypeVar, Union

import numpy as np
import torch

from headscope.align.options import SYMMETRIZATIONS
from headscope.errors import InputError, ShapeError

__all__ = [
    "argmax",
    "argmax_mask",
    "threshold",
    "threshold_mask",
    "links_to_mask",
    "mask_to_links",
    "intersection",
    "union",
    "grow_diag",
    "grow_diag_final",
    "symmetrize",
    "SYMMETRIZATIONS",
    "Extraction",
    "check_extraction",
    "extraction_mask",
    "extraction_name",
]

Link = tuple[int, int]
Array = TypeVar("Array", np.ndarray, torch.Tensor)
#: How links are read off a word map: ``"argmax"`` or ``("threshold", p)`` with ``0 <= p < 1``.
Extraction = Union[str, tuple[str, float]]
Symmetrization = Literal["intersection", "union", "grow-diag", "grow-diag-final", "grow-diag-final-and"]

# the order of Koehn's pseudo-code (Moses documentation, "grow-diag-final")
_NEIGHBOURS = ((-1, 0), (0, -1), (1, 0), (0, 1), (-1, -1), (-1, 1), (1, -1), (1, 1))


def _check_map(m: np.ndarray | torch.Tensor, min_ndim: int = 2) -> None:
    if not isinstance(m, (np.ndarray, torch.Tensor)):
        raise InputError(f"a word map must be a numpy array or torch tensor, not {type(m).__name__}")
    if m.ndim < min_ndim:
        raise ShapeError(f"word map of shape {tuple(m.shape)}: expected [..., target words, source words]")


def argmax_mask(word_map: Array) -> Array:
    """Boolean mask ``[..., T, S]`` with one True per row: each target word's best source word.

    Ties go to the first source word. Works on any leading dimensions; returns the input's type.

    >>> import numpy as np
    >>> argmax_mask(np.array([[0.1, 0.9], [0.6, 0.4]])).tolist()
    [[False, True], [True, False]]
    """
    _check_map(word_map)
    if word_map.shape[-1] == 0:
        raise ShapeError(f"word map of shape {tuple(word_map.shape)} has no source words")
    if isinstance(word_map, np.ndarray):
        best = word_map.argmax(axis=-1)
        return np.arange(word_map.shape[-1]) == best[..., None]
    best = word_map.argmax(dim=-1)
    return torch.arange(word_map.shape[-1], device=word_map.device) == best[..., None]


def threshold_mask(word_map: Array, p: float) -> Array:
    """Boolean mask ``[..., T, S]`` of the cells strictly above ``p``.

    >>> import numpy as np
    >>> threshold_mask(np.array([[0.5, 0.5], [0.8, 0.2]]), 0.5).tolist()
    [[False, False], [True, False]]
    """
    _check_map(word_map)
    return word_map > p


def check_extraction(extraction: Extraction) -> tuple[str, float | None]:
    """``("argmax", None)`` or ``("threshold", p)``; anything else is refused.

    >>> check_extraction("argmax"), check_extraction(("threshold", 0.25))
    (('argmax', None), ('threshold', 0.25))
    """
    if extraction == "argmax":
        return "argmax", None
    if (
        isinstance(extraction, (tuple, list))
        and len(extraction) == 2
        and extraction[0] == "threshold"
        and isinstance(extraction[1], (int, float))
        and 0.0 <= float(extraction[1]) < 1.0
    ):
        return "threshold", float(extraction[1])
    raise InputError(f"extraction must be 'argmax' or ('threshold', p) with 0 <= p < 1, not {extraction!r}")


def extraction_mask(word_map: Array, extraction: Extraction) -> Array:
    """The link mask ``[..., T, S]`` of ``word_map`` under ``extraction`` (:func:`argmax_mask` or
    :func:`threshold_mask`).

    >>> import numpy as np
    >>> extraction_mask(np.array([[0.6, 0.4]]), ("threshold", 0.3)).tolist()
    [[True, True]]
    """
    how, p = check_extraction(extraction)
    return argmax_mask(word_map) if how == "argmax" else threshold_mask(word_map, p)


def extraction_name(extraction: Extraction) -> str:
    """How an extraction is written in reports: ``"argmax"`` or ``"threshold 0.5"``.

    >>> extraction_name(("threshold", 0.5))
    'threshold 0.5'
    """
    how, p = check_extraction(extraction)
    return how if p is None else f"{how} {p:g}"


def mask_to_links(mask: np.ndarray | torch.Tensor) -> set[Link]:
    """Links ``{(source, target)}`` of a 2-D mask ``[T, S]``.

    >>> import numpy as np
    >>> sorted(mask_to_links(np.array([[True, False], [True, True]])))
    [(0, 0), (0, 1), (1, 1)]
    """
    if isinstance(mask, torch.Tensor):
        mask = mask.detach().cpu().numpy()
    if not isinstance(mask, np.ndarray) or mask.ndim != 2:
        raise ShapeError(f"expected a 2-D mask [target words, source words], got {getattr(mask, 'shape', type(mask))}")
    tgt, src = np.nonzero(mask)
    return set(zip(src.tolist(), tgt.tolist()))


def links_to_mask(links: Iterable[Sequence[int]], n_src: int, n_tgt: int) -> np.ndarray:
    """Boolean mask ``[n_tgt, n_src]`` of a link set; links outside the sentence are refused.

    >>> links_to_mask({(1, 0)}, n_src=2, n_tgt=1).tolist()
    [[False, True]]
    """
    m = np.zeros((n_tgt, n_src), dtype=bool)
    for i, j in links:
        if not (0 <= i < n_src and 0 <= j < n_tgt):
            raise InputError(f"link {(i, j)} is outside a sentence of {n_src} source and {n_tgt} target words")
        m[j, i] = True
    return m


def argmax(word_map: np.ndarray | torch.Tensor) -> set[Link]:
    """Links ``{(argmax source word, target word)}``, one per row of a 2-D word map ``[T, S]``.

    >>> import numpy as np
    >>> sorted(argmax(np.array([[0.1, 0.9], [0.6, 0.4]])))
    [(0, 1), (1, 0)]
    """
    _check_map(word_map)
    if word_map.ndim != 2:
        raise ShapeError(f"argmax takes one 2-D word map, got shape {tuple(word_map.shape)}; use argmax_mask for batches")
    return mask_to_links(argmax_mask(word_map))


def threshold(word_map: np.ndarray | torch.Tensor, p: float) -> set[Link]:
    """Links ``{(source, target)}`` whose weight in a 2-D word map is strictly above ``p``.

    >>> import numpy as np
    >>> sorted(threshold(np.array([[0.5, 0.5], [0.8, 0.2]]), 0.4))
    [(0, 0), (0, 1), (1, 0)]
    """
    _check_map(word_map)
    if word_map.ndim != 2:
        raise ShapeError(f"threshold takes one 2-D word map, got shape {tuple(word_map.shape)}; use threshold_mask for batches")
    return mask_to_links(threshold_mask(word_map, p))


def _as_set(links: Iterable[Sequence[int]]) -> set[Link]:
    return {(int(i), int(j)) for i, j in links}


def intersection(a: Iterable[Sequence[int]], b: Iterable[Sequence[int]]) -> set[Link]:
    """Links in both sets (high precision).

    >>> sorted(intersection({(0, 0), (1, 1)}, {(0, 0), (1, 2)}))
    [(0, 0)]
    """
    return _as_set(a) & _as_set(b)


def union(a: Iterable[Sequence[int]], b: Iterable[Sequence[int]]) -> set[Link]:
    """Links in either set (high recall).

    >>> sorted(union({(0, 0)}, {(1, 2)}))
    [(0, 0), (1, 2)]
    """
    return _as_set(a) | _as_set(b)


def grow_diag(a: Iterable[Sequence[int]], b: Iterable[Sequence[int]]) -> set[Link]:
    """Grow the intersection towards the union through neighbouring links (diagonals included).

    Koehn's heuristic (Koehn, Och & Marcu 2003; after Och & Ney 2003): start from ``a ∩ b``;
    repeatedly, visiting aligned points in (source, target) order, add any neighbour
    (horizontal, vertical or diagonal) that is in ``a ∪ b`` and whose source or target word is
    still unaligned; stop when a pass adds nothing.

    >>> sorted(grow_diag({(0, 0), (1, 1)}, {(0, 0), (2, 1)}))  # (1, 1) touches (0, 0), (2, 1) touches (1, 1)
    [(0, 0), (1, 1), (2, 1)]
    >>> sorted(grow_diag({(0, 0), (2, 2)}, {(0, 0), (2, 1)}))  # nothing next to (0, 0)
    [(0, 0)]
    """
    a, b = _as_set(a), _as_set(b)
    both = a | b
    aligned = a & b
    src_done = {i for i, _ in aligned}
    tgt_done = {j for _, j in aligned}
    points = sorted(both)  # the only points that can ever be aligned, in grid order
    grew = True
    while grew:
        grew = False
        for e, f in points:
            if (e, f) not in aligned:
                continue
            for de, df in _NEIGHBOURS:
                new = (e + de, f + df)
                if new in both and new not in aligned and (new[0] not in src_done or new[1] not in tgt_done):
                    aligned.add(new)
                    src_done.add(new[0])
                    tgt_done.add(new[1])
                    grew = True
    return aligned


def _final(aligned: set[Link], extra: set[Link], both_unaligned: bool) -> None:
    src_done = {i for i, _ in aligned}
    tgt_done = {j for _, j in aligned}
    for e, f in sorted(extra):
        if (e, f) in aligned:
            continue
        free_e, free_f = e not in src_done, f not in tgt_done
        if (free_e and free_f) if both_unaligned else (free_e or free_f):
            aligned.add((e, f))
            src_done.add(e)
            tgt_done.add(f)


def grow_diag_final(
    a: Iterable[Sequence[int]], b: Iterable[Sequence[int]], *, final_and: bool = False
) -> set[Link]:
    """:func:`grow_diag`, then add links of ``a`` and then of ``b`` that touch an unaligned word.

    FINAL adds a link whose source *or* target word is unaligned; with ``final_and=True``
    ("grow-diag-final-and") only links whose source *and* target words are both unaligned
    (Koehn et al. 2003; Moses).

    >>> sorted(grow_diag_final({(0, 0), (2, 2)}, {(0, 0), (2, 1)}))
    [(0, 0), (2, 1), (2, 2)]
    >>> sorted(grow_diag_final({(0, 0), (2, 2)}, {(0, 0), (2, 1)}, final_and=True))
    [(0, 0), (2, 2)]
    """
    a, b = _as_set(a), _as_set(b)
    aligned = grow_diag(a, b)
    _final(aligned, a, final_and)
    _final(aligned, b, final_and)
    return aligned


def symmetrize(
    a: Iterable[Sequence[int]], b: Iterable[Sequence[int]], method: Symmetrization = "grow-diag-final"
) -> set[Link]:
    """Combine two link sets with one of :data:`SYMMETRIZATIONS`.

    >>> sorted(symmetrize({(0, 0)}, {(0, 0), (0, 1)}, "intersection"))
    [(0, 0)]
    """
    if method == "intersection":
        return intersection(a, b)
    if method == "union":
        return union(a, b)
    if method == "grow-diag":
        return grow_diag(a, b)
    if method == "grow-diag-final":
        return grow_diag_final(a, b)
    if method == "grow-diag-final-and":
        return grow_diag_final(a, b, final_and=True)
    raise InputError(f"symmetrisation method must be one of {SYMMETRIZATIONS}, not {method!r}")
