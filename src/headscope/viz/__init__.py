"""Views a person can look at: bertviz pages that open offline, static figures, a one-page report.

viz is the only package that draws: ``align``, ``faithful`` and ``fragment`` compute and save
numbers, and their figures are here.

* :func:`to_bertviz` - bertviz head / model view of an inspection as a self-contained page;
* :mod:`~headscope.viz.figures` - matplotlib figures: word-level alignment matrix (with gold
  links), the bipartite link picture, layer x head heatmaps (AER, ablation), Kendall τ matrix;
* :func:`word_map` - the word-level map of any typed reading (:mod:`headscope.readings`);
* :func:`report` - one HTML page per input with the output and every view, each section
  headed by the claim it supports (alignment, plausible, faithful, fragmentation).

Views show; they do not measure. Only sections scored against gold links (alignment) or
built from interventions on the model (faithful) support more than plausibility.

>>> import headscope, headscope.viz                                   # doctest: +SKIP
>>> insp = headscope.inspect("headscope/en-fr", "A man in a red shirt.")  # doctest: +SKIP
>>> headscope.viz.report(insp, "reports/red-shirt")                    # doctest: +SKIP
>>> headscope.viz.to_bertviz(insp, "head", path="head.html")           # doctest: +SKIP
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
)
from .report import build_report, report
from .sections.alignment import parse_gold
from .words import word_map, words_of

__all__ = [
    "HTMLPage",
    "ablation_heatmap",
    "aer_heatmap",
    "alignment_matrix",
    "bars",
    "bipartite",
    "build_report",
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
