"""Alignment error rate, precision and recall of predicted word links against gold links.

Corpus-level scores in the sure / possible scheme of Och & Ney (2003), "A Systematic Comparison
of Various Statistical Alignment Models", Computational Linguistics 29(1). With A the predicted
links, S the sure gold links and P ⊇ S the possible ones, all summed over the corpus::

    precision = |A ∩ P| / |A|
    recall    = |A ∩ S| / |S|
    AER       = 1 − (|A ∩ S| + |A ∩ P|) / (|A| + |S|)

P is always taken as S ∪ possible, so passing only the possible-only links is the same as
passing P. Counts are summed over sentences before dividing (a corpus score, not a mean of
sentence scores).

Degenerate cases: a ratio whose denominator is zero is reported as ``zero_division``
(default ``0.0``, the scikit-learn convention), so an empty prediction (|A| = 0) has
precision 0, gold with no sure links (|S| = 0) has recall 0, and |A| + |S| = 0 has AER
``zero_division``. Pass ``zero_division=float("nan")`` to see undefined values as NaN. AER itself
is defined whenever |S| > 0: an empty prediction then has AER 1.

Links are ``(source index, target index)`` pairs, 0-based, as in the columns of
:func:`headscope.align.load_gold`.

Example
-------
>>> s = aer([{(0, 0), (1, 2)}], sure=[{(0, 0), (1, 1)}], possible=[{(1, 2)}])
>>> s.precision, s.recall, round(s.aer, 3)
(1.0, 0.5, 0.25)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Union

import numpy as np

from headscope.errors import InputError, ShapeError

__all__ = ["AlignmentScore", "AERCounts", "aer"]

Link = tuple[int, int]
Links = Iterable[Sequence[int]]
Number = Union[float, np.ndarray]
Count = Union[int, np.ndarray]


@dataclass(frozen=True)
class AlignmentScore:
    """Precision, recall and AER with the counts they come from.

    Fields are Python scalars for a single aligner, or arrays of the accumulator's shape
    (e.g. ``[layers, heads]``) for many.
    """

    precision: Number
    recall: Number
    aer: Number
    n_predicted: Count  #: |A|
    n_sure: Count  #: |S|
    n_predicted_sure: Count  #: |A ∩ S|
    n_predicted_possible: Count  #: |A ∩ P|

    def as_dict(self) -> dict[str, Any]:
        """Fields as a dict (arrays become nested lists), e.g. for JSON."""
        return {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in asdict(self).items()}


def _ratio(num: np.ndarray, den: np.ndarray, zero_division: float) -> Number:
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    out = np.where(den > 0, num / np.where(den > 0, den, 1.0), zero_division)
    return float(out) if out.ndim == 0 else out


def _scalar(x: np.ndarray) -> Count:
    return int(x) if np.ndim(x) == 0 else np.array(x)


def _as_links(
    links: Links | None, what: str, k: int, lengths: tuple[int, int] | None
) -> set[Link]:
    """Validate one sentence's links into a set of int pairs."""
    if links is None:
        return set()
    if isinstance(links, (str, bytes)) or not isinstance(links, Iterable):
        raise InputError(f"sentence {k}: {what} links must be a collection of (source, target) pairs")
    out: set[Link] = set()
    for link in links:
        try:
            i, j = link
            if not (float(i).is_integer() and float(j).is_integer()):
                raise ValueError
            i, j = int(i), int(j)
        except (TypeError, ValueError):
            raise InputError(
                f"sentence {k}: {what} link {link!r} is not a (source index, target index) pair"
            ) from None
        if i < 0 or j < 0:
            raise InputError(f"sentence {k}: {what} link {(i, j)} has a negative index")
        if lengths is not None and (i >= lengths[0] or j >= lengths[1]):
            raise InputError(
                f"sentence {k}: {what} link {(i, j)} is outside the sentence "
                f"({lengths[0]} source words, {lengths[1]} target words)"
            )
        out.add((i, j))
    return out


def _links_mask(links: set[Link], n_src: int, n_tgt: int) -> np.ndarray:
    m = np.zeros((n_tgt, n_src), dtype=bool)
    if links:
        idx = np.array(sorted(links))
        m[idx[:, 1], idx[:, 0]] = True
    return m


class AERCounts:
    """Accumulator of AER counts over a corpus, for one aligner or an array of them.

    ``shape`` is the shape of the count arrays (``()`` for one aligner, ``(layers, heads)`` for
    every head). :meth:`add` takes one sentence at a time; :meth:`score` gives the corpus
    :class:`AlignmentScore`. For ``shape != ()`` predictions are boolean masks of shape
    ``[*shape, T_words, S_words]`` (rows target words, columns source words, like the word maps
    of :func:`headscope.align.subword_to_word`), so a sentence is scored for all heads at once.

    >>> import numpy as np
    >>> c = AERCounts(shape=(2,))
    >>> pred = np.zeros((2, 2, 2), bool)      # 2 heads, 2 target words x 2 source words
    >>> pred[0, 0, 0] = pred[0, 1, 1] = True  # head 0: links (0, 0), (1, 1)
    >>> pred[1, 0, 1] = True                  # head 1: link (1, 0)
    >>> c.add(pred, sure={(0, 0), (1, 1)})
    >>> c.score().aer.tolist()
    [0.0, 1.0]
    """

    def __init__(self, shape: int | tuple[int, ...] = ()) -> None:
        self.shape: tuple[int, ...] = (shape,) if isinstance(shape, int) else tuple(shape)
        self.n_predicted = np.zeros(self.shape, dtype=np.int64)
        self.n_sure = np.zeros(self.shape, dtype=np.int64)
        self.n_predicted_sure = np.zeros(self.shape, dtype=np.int64)
        self.n_predicted_possible = np.zeros(self.shape, dtype=np.int64)
        self.n_sentences = 0

    def add(
        self,
        predicted: Any,
        sure: Links,
        possible: Links | None = None,
        *,
        lengths: tuple[int, int] | None = None,
    ) -> None:
        """Add one sentence.

        ``predicted`` is a collection of links (only when ``shape == ()``) or a boolean array
        ``[*shape, T_words, S_words]`` (numpy or torch). ``lengths = (n_source, n_target)``
        refuses out-of-range links; a mask implies them.
        """
        k = self.n_sentences
        if hasattr(predicted, "detach"):  # torch tensor
            predicted = predicted.detach().cpu().numpy()
        if isinstance(predicted, np.ndarray):
            if predicted.ndim != len(self.shape) + 2 or predicted.shape[:-2] != self.shape:
                raise ShapeError(
                    f"sentence {k}: prediction mask has shape {predicted.shape}, expected "
                    f"[*{self.shape}, target words, source words]"
                )
            n_tgt, n_src = predicted.shape[-2:]
            if lengths is not None and tuple(lengths) != (n_src, n_tgt):
                raise ShapeError(
                    f"sentence {k}: prediction mask is {n_tgt} target x {n_src} source words but "
                    f"lengths are {tuple(lengths)} (source, target)"
                )
            s = _as_links(sure, "sure", k, (n_src, n_tgt))
            p = _as_links(possible, "possible", k, (n_src, n_tgt)) | s
            mask = predicted.astype(bool, copy=False).reshape(*self.shape, n_tgt * n_src)
            s_m = _links_mask(s, n_src, n_tgt).reshape(-1)
            p_m = _links_mask(p, n_src, n_tgt).reshape(-1)
            self.n_predicted += np.count_nonzero(mask, axis=-1)
            self.n_predicted_sure += np.count_nonzero(mask & s_m, axis=-1)
            self.n_predicted_possible += np.count_nonzero(mask & p_m, axis=-1)
            self.n_sure += len(s)
        else:
            if self.shape != ():
                raise ShapeError(
                    f"an accumulator of shape {self.shape} needs boolean prediction masks "
                    f"[*{self.shape}, target words, source words], not a link collection"
                )
            lengths = None if lengths is None else (int(lengths[0]), int(lengths[1]))
            a = _as_links(predicted, "predicted", k, lengths)
            s = _as_links(sure, "sure", k, lengths)
            p = _as_links(possible, "possible", k, lengths) | s
            self.n_predicted += len(a)
            self.n_sure += len(s)
            self.n_predicted_sure += len(a & s)
            self.n_predicted_possible += len(a & p)
        self.n_sentences += 1

    def __iadd__(self, other: AERCounts) -> AERCounts:
        """Merge the counts of another accumulator of the same shape (e.g. from another shard)."""
        if not isinstance(other, AERCounts) or other.shape != self.shape:
            raise ShapeError(f"can only merge AERCounts of shape {self.shape}")
        self.n_predicted += other.n_predicted
        self.n_sure += other.n_sure
        self.n_predicted_sure += other.n_predicted_sure
        self.n_predicted_possible += other.n_predicted_possible
        self.n_sentences += other.n_sentences
        return self

    def score(self, zero_division: float = 0.0) -> AlignmentScore:
        """Corpus precision, recall and AER of everything added so far."""
        a, s = self.n_predicted, self.n_sure
        a_s, a_p = self.n_predicted_sure, self.n_predicted_possible
        quality = _ratio(a_s + a_p, a + s, np.nan)
        aer_ = np.where(np.isnan(quality), zero_division, 1.0 - np.asarray(quality))
        return AlignmentScore(
            precision=_ratio(a_p, a, zero_division),
            recall=_ratio(a_s, s, zero_division),
            aer=float(aer_) if aer_.ndim == 0 else aer_,
            n_predicted=_scalar(a),
            n_sure=_scalar(s),
            n_predicted_sure=_scalar(a_s),
            n_predicted_possible=_scalar(a_p),
        )

    def __repr__(self) -> str:
        return f"AERCounts(shape={self.shape}, n_sentences={self.n_sentences})"


def aer(
    predicted: Sequence[Links],
    sure: Sequence[Links],
    possible: Sequence[Links | None] | None = None,
    *,
    lengths: Sequence[tuple[int, int]] | None = None,
    zero_division: float = 0.0,
) -> AlignmentScore:
    """Corpus-level precision, recall and AER (Och & Ney 2003) over lists of link sets.

    One entry per sentence in ``predicted``, ``sure`` and ``possible`` (P ⊇ S, or the
    possible-only links: S is added either way; ``None`` means P = S). Links are
    ``(source, target)`` pairs, 0-based; lists of ``[i, j]`` as in the gold dataset columns work
    too. ``lengths`` (one ``(n_source, n_target)`` per sentence) refuses out-of-range links.
    See the module docstring for ``zero_division``.

    >>> s = aer([{(0, 0)}, set()], sure=[{(0, 0)}, set()], possible=[None, {(0, 1)}])
    >>> s.precision, s.recall, s.aer
    (1.0, 1.0, 0.0)
    """
    n = len(predicted)
    if len(sure) != n or (possible is not None and len(possible) != n) or (
        lengths is not None and len(lengths) != n
    ):
        got = [len(predicted), len(sure)]
        names = "predicted, sure"
        if possible is not None:
            got.append(len(possible))
            names += ", possible"
        if lengths is not None:
            got.append(len(lengths))
            names += ", lengths"
        raise InputError(f"need one entry per sentence in each of {names}; got {got}")
    counts = AERCounts()
    for k in range(n):
        counts.add(
            predicted[k],
            sure[k],
            None if possible is None else possible[k],
            lengths=None if lengths is None else lengths[k],
        )
    return counts.score(zero_division)
