"""Fragmentation: how the single-map reading breaks apart across heads, layers and scale.

* :mod:`.disagreement` — pairwise JS divergence, rank correlation, effective number of maps;
* :mod:`.taxonomy` — head behaviours (sink, diagonal, previous/next, broad, focused/alignment-like);
* :mod:`.agreement` — Kendall τ between readings; stability of the best head over a gold set;
* :mod:`.report` — :func:`fragmentation` for one inspection, with a three-claims summary.
"""

from __future__ import annotations

from .agreement import agreement_matrix, best_head_stability, row_kendall
from .disagreement import effective_maps, js_divergence, pairwise_js, pairwise_rank_correlation
from .report import Fragmentation, KindFragmentation, attention_readings, fragmentation, kind_fragmentation
from .taxonomy import LABELS, classify_head, classify_heads, head_profile, sink_positions

__all__ = [
    "LABELS",
    "Fragmentation",
    "KindFragmentation",
    "agreement_matrix",
    "attention_readings",
    "best_head_stability",
    "classify_head",
    "classify_heads",
    "effective_maps",
    "fragmentation",
    "head_profile",
    "js_divergence",
    "kind_fragmentation",
    "pairwise_js",
    "pairwise_rank_correlation",
    "row_kendall",
    "sink_positions",
]
