"""The report's plausible section: pictures of the weights, which show and measure nothing.

The maps drawn are those that explain the output (the architecture's ``decision_kind``):
cross attention for a translation, self-attention otherwise. Every map is a typed reading
(:mod:`headscope.readings`) and is titled with its label: the all-heads mean, the last layer's
mean, rollout. Then the bertviz head and model views.
"""

from __future__ import annotations

from collections.abc import Sequence

from headscope import aggregate, fragment
from headscope.inspection import Inspection, display_token
from headscope.readings import HeadsMean, LayerMean, Reading, Rollout

from ..bertviz import bertviz_fragment
from ..figures import alignment_matrix, bars, bipartite, heatmap
from ..page import Section, escape
from ..words import word_map

__all__ = ["plausible_section"]


def _title(reading: Reading) -> str:
    """A figure title naming the reading: ``"cross attention, all-heads mean"``."""
    return f"{reading.kind} attention, {reading.label}"


def _caption(reading: Reading, text: str) -> str:
    """A caption that starts with the reading's title (the figure's own title is inside the image)."""
    return f"<b>{escape(_title(reading))}</b>. {text}"


def _target_side(section: Section, insp: Inspection, kind: str, last: int, convention: str,
                 min_weight: float) -> None:
    """Views of a map whose rows are output words: bipartite links and word matrices."""
    mean = HeadsMean(kind)
    m, src_words, tgt_words = word_map(insp, mean, convention=convention)
    section.figure(bipartite(m, src_words, tgt_words, min_weight=min_weight, title=_title(mean)),
                   _caption(mean, f"Source words along the bottom, output words along the top; one curve per word "
                                  f"pair with mean weight ≥ {min_weight:g}, thicker and darker for more weight. "
                                  "Crossing curves are reorderings (e.g. adjective-noun)."))
    section.figure(alignment_matrix(m, src_words, tgt_words, title=_title(mean)),
                   _caption(mean, "The same averaged map as flat blocks, one per word pair (no smoothing)."))
    layer = LayerMean(kind, last)
    m, src_words, tgt_words = word_map(insp, layer, convention=convention)
    section.figure(alignment_matrix(m, src_words, tgt_words, title=_title(layer)),
                   _caption(layer, "The last layer only, its heads averaged."))


def _source_side(section: Section, insp: Inspection, kind: str, last: int) -> None:
    """Views of a self-attention map: the word x word matrix and what the deciding position reads."""
    layer = LayerMean(kind, last)
    m, keys, queries = word_map(insp, layer)
    section.figure(heatmap(m, queries, keys, title=_title(layer), cmap="Greys", vmin=0.0, colorbar_label="weight",
                           xlabel="attended word", ylabel="attending word", annotate=False),
                   _caption(layer, "Word-level self-attention of the last layer (special tokens left out), "
                                   "flat blocks."))
    row = fragment.decision_rows(insp, kind)
    if isinstance(row, int):
        tokens = [display_token(t) for t in insp.key_tokens(kind)]
        reader = display_token(insp.query_tokens(kind)[row])
        weights = aggregate.reading_map(insp, layer)[row]
        section.figure(bars(weights.tolist(), tokens, xlabel="weight", title=f"{_title(layer)}: what {reader} reads"),
                       _caption(layer, f"What the position that carries the decision (token {row}, "
                                       f"{escape(reader)}) reads: its weight on every token."))


def plausible_section(insp: Inspection, *, convention: str, bertviz: bool, bertviz_layers: Sequence[int] | None,
                      bertviz_heads: Sequence[int] | None, decimals: int, min_weight: float) -> Section:
    """The plausible section of ``insp``'s report.

    Parameters
    ----------
    insp
        The inspection.
    convention
        Decoder-step rows of cross-attention word maps (see :func:`headscope.align.select_rows`).
    bertviz
        Include the bertviz head and model views.
    bertviz_layers, bertviz_heads, decimals
        Their layers, heads and rounding (see :func:`headscope.viz.to_bertviz`).
    min_weight
        Lightest link drawn in the bipartite picture.

    Returns
    -------
    Section
        Static figures of the all-heads mean, the last layer's mean and rollout, then the bertviz views.
    """
    section = Section("plausible")
    section.add("<p>Pictures of the weights. A reading that looks right is not thereby an alignment (see "
                "<i>Alignment</i>) nor a cause of the output (see <i>Faithful</i>).</p>")
    kind = insp.architecture.decision_kind()
    last = insp.layer_indices(kind)[-1]
    if insp.architecture.query_is_target(kind):
        _target_side(section, insp, kind, last, convention, min_weight)
    else:
        _source_side(section, insp, kind, last)
    rollout = Rollout(kind)
    if rollout in aggregate.map_readings(insp, kind, heads=False):
        m, keys, queries = word_map(insp, rollout, convention=convention)
        section.figure(alignment_matrix(m, keys, queries, title=_title(rollout)),
                       _caption(rollout, "Aggregate over layers with the residual path (headscope.aggregate; for a "
                                         "translation the encoder-decoder rollout of Chefer et al. 2021). A reading "
                                         "too: it is scored under Alignment when gold links are given."))
    else:
        section.note("No rollout view: rollout needs every layer captured (and, for a translation, the encoder "
                     "and decoder self-attention too).")
    if bertviz:
        for view in ("head", "model"):
            section.add(f"<h3>bertviz {view} view</h3>")
            section.add(bertviz_fragment(insp, view, layers=bertviz_layers, heads=bertviz_heads, decimals=decimals))
    return section
