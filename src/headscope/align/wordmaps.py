"""Word maps of the cross-attention readings of one forced translation, and their links.

Every map align scores is a typed reading of :mod:`headscope.readings` of kind ``cross``: a head
(``cross.2.3``), a layer's head mean (``cross.2.mean``), the all-heads mean (``cross.mean``) or
the encoder-decoder rollout (``cross.rollout``). Its subword map comes from
:func:`headscope.aggregate.reading_map`; :func:`word_maps` pools the maps of many readings to
words in one call, :func:`align_inspection` gives one reading's word map and links.

>>> import headscope                                                          # doctest: +SKIP
>>> insp = headscope.inspect("headscope/en-fr", ["the", "house"], target=["la", "maison"],
...                          is_split_into_words=True)                        # doctest: +SKIP
>>> word_map, links = align_inspection(insp, "cross.2.1")                     # doctest: +SKIP
"""

from __future__ import annotations

import operator
from collections.abc import Sequence

import torch

from headscope.aggregate import map_readings, reading_map
from headscope.align.extract import Extraction, extraction_mask, mask_to_links
from headscope.align.options import CONVENTIONS, DEFAULT_CONVENTION, SOURCES
from headscope.align.words import Pool, select_rows, subword_to_word
from headscope.errors import InputError, NotApplicableError
from headscope.inspection import Inspection
from headscope.readings import Alti, GradRollout, Head, HeadsMean, LayerMean, Norm, Reading, Rollout, Site, parse_reading

__all__ = ["align_inspection", "as_cross_reading", "cross_readings", "reading_stack", "word_maps"]

Link = tuple[int, int]
ReadingLike = str | Reading | Site | tuple[int, int]

#: The reading type of each group of :data:`~headscope.align.SOURCES`.
_SOURCE_TYPES: dict[str, type[Reading]] = dict(zip(SOURCES, (Head, LayerMean, HeadsMean, Rollout, Norm, Alti,
                                                                GradRollout)))


def as_cross_reading(reading: ReadingLike) -> Reading:
    """The cross-attention reading that ``reading`` names (a name, Reading, head Site or ``(layer, head)``).

    >>> as_cross_reading((2, 3)), as_cross_reading("cross.mean").label
    (Head(kind='cross', layer=2, head=3), 'all-heads mean')
    """
    if isinstance(reading, tuple):
        try:
            layer, head = (operator.index(x) for x in reading)
        except (TypeError, ValueError):
            raise InputError(f"a head is (layer, head), got {reading!r}") from None
        reading = Head("cross", layer, head)
    r = parse_reading(reading)
    if r.kind != "cross":
        raise InputError(f"word alignment reads cross attention; {r.name!r} is {r.kind} attention. Give a cross "
                         "reading: 'cross.2.3' (head), 'cross.2.mean', 'cross.mean' or 'cross.rollout'")
    return r


def check_sources(sources: str | Sequence[str]) -> tuple[str, ...]:
    """The groups of :data:`SOURCES` asked for, in :data:`SOURCES` order.

    >>> check_sources(("rollout", "heads"))
    ('heads', 'rollout')
    """
    if isinstance(sources, str):
        sources = (sources,)
    bad = [s for s in sources if s not in SOURCES]
    if bad or not sources:
        raise InputError(f"sources must be a non-empty selection of {SOURCES}, got {tuple(sources)!r}")
    return tuple(s for s in SOURCES if s in sources)


def check_translation(insp: Inspection) -> None:
    """Refuse an inspection that is not a forced translation with cross attention."""
    if "cross" not in insp.attentions:
        if not insp.architecture.has_target:
            raise NotApplicableError(f"{insp.model_name} is {insp.architecture.name}-only: word alignment needs "
                                     "the cross attention of an encoder-decoder (translation) model")
        raise InputError("the inspection has no cross attention; inspect with kinds including 'cross'")
    if insp.target_word_ids is None:
        raise InputError("word alignment needs a translation: inspect an encoder-decoder with a target")


def cross_readings(insp: Inspection, sources: str | Sequence[str] = SOURCES) -> list[Reading]:
    """The cross readings of ``insp`` in the groups ``sources`` (see :data:`SOURCES`), in the order of
    :func:`headscope.aggregate.map_readings`: heads, layer means, all-heads mean, rollout.

    Rollout is left out when the inspection lacks the encoder and decoder self-attention it needs.

    >>> [r.name for r in cross_readings(insp, "all_mean")]                   # doctest: +SKIP
    ['cross.mean']
    """
    wanted = tuple(_SOURCE_TYPES[s] for s in check_sources(sources))
    return [r for r in map_readings(insp, "cross") if isinstance(r, wanted)]


def reading_stack(insp: Inspection, readings: Sequence[Reading]) -> torch.Tensor:
    """The subword maps ``[N, target tokens, source tokens]`` of ``readings`` (float32).

    Equal to stacking :func:`headscope.aggregate.reading_map` of each; the heads, layer means and
    all-heads mean are taken from one float copy of the cross maps in one step each.

    >>> reading_stack(insp, [Head("cross", 0, 1), HeadsMean("cross")]).shape  # doctest: +SKIP
    torch.Size([2, 6, 5])
    """
    cross = insp.kind_maps("cross").float()
    index = {layer: i for i, layer in enumerate(insp.layer_indices("cross"))}
    layer_means = cross.mean(dim=1) if any(isinstance(r, LayerMean) for r in readings) else None
    parts = []
    for r in readings:
        if isinstance(r, Head) and r.kind == "cross" and r.layer in index and 0 <= r.head < cross.shape[1]:
            parts.append(cross[index[r.layer], r.head])
        elif isinstance(r, LayerMean) and r.kind == "cross" and r.layer in index:
            parts.append(layer_means[index[r.layer]])
        elif isinstance(r, HeadsMean) and r.kind == "cross":
            parts.append(cross.mean(dim=(0, 1)))
        else:
            parts.append(reading_map(insp, r))
    return torch.stack(parts)


def word_maps(
    insp: Inspection,
    readings: Sequence[ReadingLike] | None = None,
    *,
    convention: str = DEFAULT_CONVENTION,
    src_pool: Pool = "sum",
    tgt_pool: Pool = "mean",
) -> tuple[torch.Tensor, list[Reading]]:
    """Word maps ``[N, target words, source words]`` of cross readings of one forced translation.

    Parameters
    ----------
    insp : a forced translation (``headscope.inspect(model, words, target=words, is_split_into_words=True)``).
    readings : reading names, :class:`~headscope.readings.Reading` s, head ``Site`` s or ``(layer, head)``;
        ``None``: every cross reading the inspection supports (:func:`cross_readings`).
    convention : ``"naive"`` or ``"shift"`` decoder step per target word (:func:`~headscope.align.select_rows`).
    src_pool, tgt_pool : how subwords pool into words (:func:`~headscope.align.subword_to_word`).

    Returns
    -------
    The word maps (rows target words, columns source words; special tokens dropped) and the readings.

    >>> maps, readings = word_maps(insp, ["cross.0.1", "cross.mean"])         # doctest: +SKIP
    >>> maps.shape, readings[1].label                                         # doctest: +SKIP
    (torch.Size([2, 2, 2]), 'all-heads mean')
    """
    check_translation(insp)
    if convention not in CONVENTIONS:
        raise InputError(f"word_maps takes one convention, 'naive' or 'shift', not {convention!r}")
    chosen = cross_readings(insp) if readings is None else [as_cross_reading(r) for r in readings]
    stack = select_rows(reading_stack(insp, chosen), convention)
    return subword_to_word(stack, insp.source_word_ids, insp.target_word_ids, src_pool, tgt_pool), chosen


def align_inspection(
    insp: Inspection,
    reading: ReadingLike = "cross.mean",
    *,
    convention: str = DEFAULT_CONVENTION,
    extraction: Extraction = "argmax",
    src_pool: Pool = "sum",
    tgt_pool: Pool = "mean",
) -> tuple[torch.Tensor, set[Link]]:
    """The word map ``[target words, source words]`` of one cross reading of a forced translation,
    and its links ``{(source word, target word)}``.

    ``reading`` is a name (``"cross.2.3"``, ``"cross.2.mean"``, ``"cross.mean"``, ``"cross.rollout"``),
    a :class:`~headscope.readings.Reading`, a head ``Site`` or ``(layer, head)``; ``extraction`` is
    ``"argmax"`` or ``("threshold", p)``.

    >>> word_map, links = align_inspection(insp, "cross.2.1", convention="shift")  # doctest: +SKIP
    >>> sorted(links)                                                             # doctest: +SKIP
    [(0, 0), (1, 1)]
    """
    maps, _ = word_maps(insp, [reading], convention=convention, src_pool=src_pool, tgt_pool=tgt_pool)
    word_map = maps[0]
    return word_map, mask_to_links(extraction_mask(word_map, extraction))
