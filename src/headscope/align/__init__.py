"""Word alignment: gold sets, attention-to-word-link extraction and AER scoring.

Pure functions over plain data (no model needed):

- :mod:`~headscope.align.gold`: read gold alignments (Pharaoh / talp) into a ``datasets.Dataset``;
  the built-in set ``hansards-en-fr``.
- :mod:`~headscope.align.words`: subword attention to word maps; decoder-step conventions.
- :mod:`~headscope.align.extract`: word maps to links (argmax, threshold); symmetrisation.
- :mod:`~headscope.align.metrics`: corpus precision, recall and AER (Och & Ney 2003).

With a model:

- :mod:`~headscope.align.evaluate`: :func:`evaluate` scores every cross-attention head (and the
  layer means, all-heads mean and rollout) of a translation model against a gold set, in one
  pass, and returns an :class:`AlignmentReport` (tables, best head, CSV / JSON / heatmap).

Links are ``(source index, target index)``, 0-based, everywhere.
"""

from headscope.align.evaluate import (
    SOURCES,
    AlignmentReport,
    ConventionScores,
    evaluate,
    evaluate_inspections,
    word_maps,
)
from headscope.align.extract import (
    SYMMETRIZATIONS,
    argmax,
    argmax_mask,
    grow_diag,
    grow_diag_final,
    intersection,
    links_to_mask,
    mask_to_links,
    symmetrize,
    threshold,
    threshold_mask,
    union,
)
from headscope.align.gold import (
    list_gold_sets,
    load_gold,
    parse_alignment_line,
    read_alignments,
    read_parallel,
    read_sentence_pairs,
)
from headscope.align.metrics import AERCounts, AlignmentScore, aer
from headscope.align.words import (
    CONVENTIONS,
    DEFAULT_CONVENTION,
    POOLINGS,
    select_rows,
    subword_to_word,
)

__all__ = [
    # evaluate
    "evaluate",
    "evaluate_inspections",
    "AlignmentReport",
    "ConventionScores",
    "word_maps",
    "SOURCES",
    # gold
    "load_gold",
    "list_gold_sets",
    "parse_alignment_line",
    "read_alignments",
    "read_sentence_pairs",
    "read_parallel",
    # metrics
    "aer",
    "AERCounts",
    "AlignmentScore",
    # words
    "subword_to_word",
    "select_rows",
    "CONVENTIONS",
    "DEFAULT_CONVENTION",
    "POOLINGS",
    # extract
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
]
