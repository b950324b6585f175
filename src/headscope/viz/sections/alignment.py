"""The report's alignment section: cross-attention readings turned into word links and scored.

Every cross-attention reading of the pair (each head, each layer's mean, the all-heads mean and,
when captured in full, the encoder-decoder rollout) gives a word map (:func:`headscope.align.word_maps`);
its argmax links are scored by AER against the gold links of this one sentence pair
(:func:`headscope.align.aer`). Without gold links the section says it is *not scored*; a model
without cross attention makes :mod:`headscope.align` raise
:class:`~headscope.errors.NotApplicableError`, and the report marks the section not applicable.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Union

import numpy as np

from headscope import align
from headscope.align.baselines import diagonal_links
from headscope.errors import InputError
from headscope.inspection import Inspection
from headscope.readings import Head, HeadsMean, Reading

from ..figures import aer_heatmap, alignment_matrix
from ..page import Section, escape
from ..words import words_of

__all__ = ["Gold", "alignment_section", "parse_gold"]

Link = tuple[int, int]
#: Gold links as given by a user: a Pharaoh / talp string, a ``(sure, possible)`` pair, a mapping
#: with ``"sure"`` (and ``"possible"``), or a plain collection of links (all sure).
Gold = Union[str, tuple[Iterable[Sequence[int]], Iterable[Sequence[int]]], Mapping[str, Iterable[Sequence[int]]],
             Iterable[Sequence[int]]]

_NOT_SCORED = ("<b>Not scored</b>: no gold links were given for this sentence pair, so nothing here says whether "
               "the attention marks real correspondences. Pass <code>gold=</code> (Pharaoh links such as "
               "<code>0-0 1-2 2-1</code>) or <code>--gold</code> on the command line. The pictures below, under "
               "<i>Plausible</i>, are views only.")


def parse_gold(gold: Gold | None) -> tuple[set[Link], set[Link]] | None:
    """Gold links of the inspected pair as ``(sure, possible)``, possible ⊇ sure.

    Parameters
    ----------
    gold
        A Pharaoh / talp string over 0-based word indices of the source and the target
        (``"0-0 1-2 2-1 3p3"``: ``p`` or ``?`` marks a possible link); a ``(sure, possible)``
        pair of link collections; a mapping with ``"sure"`` (and ``"possible"``) as in a
        :func:`headscope.align.load_gold` row; or a plain collection of links (all sure).

    Returns
    -------
    tuple of (set, set) or None
        ``(sure, possible)`` links ``(source word, target word)``; ``None`` when ``gold`` is.

    Raises
    ------
    headscope.errors.InputError
        A link that is not a pair, or a mapping without ``"sure"``.
    headscope.errors.GoldFormatError
        A malformed string.
    """
    if gold is None:
        return None
    if isinstance(gold, str):
        sure, possible = align.parse_alignment_line(gold, index_base=0)
    elif isinstance(gold, Mapping):
        if "sure" not in gold:
            raise InputError("a gold mapping needs a 'sure' entry (and optionally 'possible')")
        sure, possible = _links(gold["sure"]), _links(gold.get("possible") or [])
    elif isinstance(gold, tuple) and len(gold) == 2 and all(
            isinstance(part, (set, frozenset, list)) and all(isinstance(link, (tuple, list)) for link in part)
            for part in gold):
        sure, possible = _links(gold[0]), _links(gold[1])
    else:
        sure, possible = _links(gold), set()
    return set(sure), set(possible) | set(sure)


def _links(items: Iterable[Sequence[int]]) -> set[Link]:
    """``(source, target)`` integer pairs; anything that is not a pair is refused."""
    out = set()
    for item in items:
        if len(item) != 2:
            raise InputError(f"a link is a (source, target) pair, not {item!r}")
        out.add((int(item[0]), int(item[1])))
    return out


def _check_range(possible: set[Link], src_words: list[str], tgt_words: list[str]) -> None:
    """Refuse gold links outside the pair's words, naming the words."""
    bad = sorted(link for link in possible if not (0 <= link[0] < len(src_words) and 0 <= link[1] < len(tgt_words)))
    if bad:
        raise InputError(f"gold links {bad[:5]} fall outside the {len(src_words)} source x {len(tgt_words)} target "
                         f"words ({src_words} / {tgt_words}); gold indices count whitespace words from 0")


def alignment_section(insp: Inspection, gold: tuple[set[Link], set[Link]] | None, convention: str) -> Section:
    """The alignment section of ``insp``'s report.

    Parameters
    ----------
    insp
        A translation (an encoder-decoder inspection with a target).
    gold
        ``(sure, possible)`` links from :func:`parse_gold`, or ``None`` (then: not scored).
    convention
        Decoder-step rows (``"naive"`` or ``"shift"``, see :func:`headscope.align.select_rows`).

    Returns
    -------
    Section
        The AER table (best single head, layer means, all-heads mean, rollout, and the diagonal
        baseline), the AER heatmap
        per head, and the best head's and the all-heads mean's word maps with the gold links.

    Raises
    ------
    headscope.errors.NotApplicableError
        The model has no cross attention (raised by :func:`headscope.align.word_maps`).
    headscope.errors.InputError
        Gold links outside the pair's words.
    """
    maps, readings = align.word_maps(insp, convention=convention)
    section = Section("alignment")
    if gold is None:
        section.note(_NOT_SCORED)
        return section
    sure, possible = gold
    src_words = words_of(insp.source_tokens, insp.source_word_ids)
    tgt_words = words_of(insp.target_tokens or [], insp.target_word_ids or [])
    _check_range(possible, src_words, tgt_words)
    word_maps: dict[Reading, np.ndarray] = {r: maps[i].double().numpy() for i, r in enumerate(readings)}
    links = {r: align.argmax(m) for r, m in word_maps.items()}
    scores = {r: align.aer([links[r]], [sure], [possible]) for r in readings}
    heads = [r for r in readings if isinstance(r, Head)]
    best = min(heads, key=lambda r: scores[r].aer)
    mean = HeadsMean("cross")
    layers = insp.layer_indices("cross")
    grid = np.array([[scores[Head("cross", layer, h)].aer for h in range(insp.shape("cross")[1])]
                     for layer in layers])
    section.add(f"<p>Each reading is turned into links by argmax (each target word linked to its highest-weight "
                f"source word), rows chosen by the <code>{escape(convention)}</code> decoder-step convention, and "
                f"scored by AER against {len(sure)} sure / {len(possible)} possible gold links "
                "(lower is better; 0 = every link right).</p>")
    rows = [(f"{best.label} (best single head)", scores[best])]
    rows += [(r.label, scores[r]) for r in readings if not isinstance(r, Head)]
    diagonal = align.aer([diagonal_links(len(src_words), len(tgt_words))], [sure], [possible])
    rows.append(("diagonal, no model (baseline)", diagonal))
    section.add("<table><tr><th>reading</th><th>AER</th><th>precision</th><th>recall</th></tr>" + "".join(
        f"<tr><td>{escape(name)}</td><td>{s.aer:.3f}</td><td>{s.precision:.3f}</td><td>{s.recall:.3f}</td></tr>"
        for name, s in rows) + "</table>")
    section.note(f"Baseline: the <b>diagonal</b> (target word <i>j</i> of <i>m</i> linked to source word "
                 f"min(<i>n</i> − 1, round(<i>j·n</i>/<i>m</i>)) of <i>n</i>, no model) scores AER {diagonal.aer:.3f} "
                 "on this pair; a reading that does no better reads word order, not correspondence. A statistical "
                 "aligner needs a corpus: <code>headscope align</code> scores eflomal beside every reading over a "
                 "gold set.")
    section.note("One sentence pair is an anecdote: the best head here is selected on the very links it is scored "
                 "against. Score heads over a gold set (<code>headscope.align.evaluate</code>) before trusting one.")
    section.figure(aer_heatmap(grid, layers=layers, best=best,
                               title=f"cross-attention AER per head ({convention})"),
                   "AER of each cross-attention head's argmax links against the gold links of this pair "
                   "(dark = low error; outlined: the best head).")
    for reading, caption in (
            (best, f"<b>{escape(best.label)}</b>, the best head, at word level; red squares: sure gold links, "
                   "dashed orange: possible gold links, blue dots: its argmax links."),
            (mean, f"<b>{escape(mean.label)}</b>: every cross-attention head of every layer averaged, with the same "
                   "gold links.")):
        section.figure(alignment_matrix(word_maps[reading], src_words, tgt_words, sure=sure, possible=possible,
                                        predicted=links[reading],
                                        title=f"{reading.label}: AER {scores[reading].aer:.2f}"), caption)
    return section
