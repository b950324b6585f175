"""Views a person can look at: bertviz pages that open offline, static figures, a one-page report.

* :func:`to_bertviz` - bertviz head / model view of an inspection as a self-contained page;
* :mod:`~headscope.viz.figures` - matplotlib figures: word-level alignment matrix (with gold
  links), the bipartite link picture, layer x head heatmaps (AER, ablation), Kendall τ matrix;
* :func:`report` - one HTML page per input with the output and every view, each section
  headed by the claim it supports (alignment, plausible, faithful).

Views show; they do not measure. Only sections scored against gold links (alignment) or
built from interventions on the model (faithful) support more than plausibility.
"""

from __future__ import annotations

from .bertviz import HTMLPage, offline_scripts, to_bertviz
from .figures import (
    ablation_heatmap,
    aer_heatmap,
    alignment_matrix,
    bars,
    bipartite,
    fragmentation_summary,
    heatmap,
    kendall_matrix,
    layer_head_heatmap,
    save,
    word_map,
    words_of,
)
from .report import parse_gold, report

__all__ = [
    "HTMLPage",
    "ablation_heatmap",
    "aer_heatmap",
    "alignment_matrix",
    "bars",
    "bipartite",
    "fragmentation_summary",
    "heatmap",
    "kendall_matrix",
    "layer_head_heatmap",
    "offline_scripts",
    "parse_gold",
    "report",
    "save",
    "to_bertviz",
    "word_map",
    "words_of",
]
