"""Fragmentation: how the single-map reading breaks apart across heads, layers and scale.

* :mod:`.disagreement` — pairwise JS divergence, rank correlation, effective number of maps;
* :mod:`.taxonomy` — head behaviours (sink, diagonal, previous/next, broad, focused/alignment-like);
* :mod:`.agreement` — Kendall τ between readings; stability of the best head over a gold set;
* :mod:`.measure` — :func:`fragmentation` for one inspection;
* :mod:`.corpus` — :func:`fragmentation_corpus` over many texts (resumable; across processes);
* :mod:`.result` — its typed result, :class:`Fragmentation`: summary, table, save and load.

fragment computes and saves numbers; :mod:`headscope.viz` draws them.

>>> frag = headscope.fragment.fragmentation(insp)     # doctest: +SKIP
>>> print(frag.table())                               # doctest: +SKIP
"""

from __future__ import annotations

from .agreement import agreement_matrix, best_head_stability, row_kendall
from .corpus import fragmentation_corpus, long_input_reductions
from .disagreement import effective_maps, js_divergence, pairwise_js, pairwise_rank_correlation
from .measure import (
    FAITHFUL_METHODS,
    attention_readings,
    decision_rows,
    fragmentation,
    kind_fragmentation,
)
from .result import Fragmentation, KindFragmentation, ReadingKey, key_label, key_name, key_of
from .taxonomy import LABELS, classify_head, classify_heads, head_profile, sink_positions

__all__ = [
    "FAITHFUL_METHODS",
    "LABELS",
    "Fragmentation",
    "KindFragmentation",
    "ReadingKey",
    "agreement_matrix",
    "attention_readings",
    "best_head_stability",
    "classify_head",
    "classify_heads",
    "decision_rows",
    "effective_maps",
    "fragmentation",
    "fragmentation_corpus",
    "long_input_reductions",
    "head_profile",
    "js_divergence",
    "key_label",
    "key_name",
    "key_of",
    "kind_fragmentation",
    "pairwise_js",
    "pairwise_rank_correlation",
    "row_kendall",
    "sink_positions",
]
