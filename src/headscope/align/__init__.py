"""Word alignment: gold sets, attention-to-word-link extraction and AER scoring.

Pure functions over plain data (no model needed):

- :mod:`~headscope.align.gold`: read gold alignments (Pharaoh / talp) into a ``datasets.Dataset``;
  the built-in set ``hansards-en-fr``.
- :mod:`~headscope.align.words`: subword attention to word maps; decoder-step conventions.
- :mod:`~headscope.align.extract`: word maps to links (argmax, threshold); symmetrisation.
- :mod:`~headscope.align.metrics`: corpus precision, recall and AER (Och & Ney 2003).

With an inspection or a model (every map is a typed cross reading of :mod:`headscope.readings`:
``cross.2.3``, ``cross.2.mean``, ``cross.mean``, ``cross.rollout``):

- :mod:`~headscope.align.wordmaps`: :func:`word_maps` and :func:`align_inspection`, the word maps
  and links of readings of one forced translation.
- :mod:`~headscope.align.scoring`: the one-pass scorer of every reading against gold links.
- :mod:`~headscope.align.evaluation`: :func:`evaluate` scores every cross-attention head (and the
  layer means, all-heads mean and rollout) of a translation model against a gold set;
  :func:`evaluate_inspections` scores captured inspections.
- :mod:`~headscope.align.baselines`: the reference aligners every report carries: the diagonal (no
  model) and eflomal (``pip install 'headscope[aligners]'``), scored on the same gold.
- :mod:`~headscope.align.report`: the :class:`AlignmentReport` they return (summary, tables,
  rows, save / load; :mod:`~headscope.align.store` holds its files). ``headscope align`` draws it
  with :func:`headscope.viz.figures.aer_heatmap`.

Links are ``(source index, target index)``, 0-based, everywhere. Importing the package is cheap:
its functions (and torch) are imported on first use.

>>> from headscope import align
>>> align.DEFAULT_CONVENTION, align.aer([{(0, 0)}], sure=[{(0, 0)}]).aer
('naive', 0.0)
"""

from __future__ import annotations

import importlib
from typing import Any

from headscope.align.options import CONVENTIONS, DEFAULT_CONVENTION, DEFAULT_SOURCES, POOLINGS, SOURCES, SYMMETRIZATIONS

# public name -> module of headscope.align that defines it (imported on first access, PEP 562)
_LAZY: dict[str, str] = {
    **dict.fromkeys(("evaluate", "evaluate_inspections"), "evaluation"),
    **dict.fromkeys(("AlignmentReport", "ConventionScores"), "report"),
    **dict.fromkeys(("Baseline", "diagonal_links", "score_baselines"), "baselines"),
    **dict.fromkeys(("align_inspection", "word_maps"), "wordmaps"),
    **dict.fromkeys(("IndexBaseWarning", "list_gold_sets", "load_gold", "parse_alignment_line", "read_alignments",
                     "read_parallel", "read_sentence_pairs"), "gold"),
    **dict.fromkeys(("AERCounts", "AlignmentScore", "aer"), "metrics"),
    **dict.fromkeys(("select_rows", "subword_to_word"), "words"),
    **dict.fromkeys(("argmax", "argmax_mask", "grow_diag", "grow_diag_final", "intersection", "links_to_mask",
                     "mask_to_links", "symmetrize", "threshold", "threshold_mask", "union"), "extract"),
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'headscope.align' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"headscope.align.{_LAZY[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__all__ = ["CONVENTIONS", "DEFAULT_CONVENTION", "DEFAULT_SOURCES", "POOLINGS", "SOURCES", "SYMMETRIZATIONS", *_LAZY]
