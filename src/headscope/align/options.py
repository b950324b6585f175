"""The names of align's options, importable without torch (``headscope --help`` builds from them).

>>> CONVENTIONS, DEFAULT_CONVENTION
(('naive', 'shift'), 'naive')
"""

from __future__ import annotations

from typing import Final

__all__ = ["CONVENTIONS", "DEFAULT_CONVENTION", "DEFAULT_SOURCES", "MIXING_SOURCES", "POOLINGS", "SOURCES",
           "SYMMETRIZATIONS"]

#: Decoder-step conventions (see :func:`headscope.align.select_rows`).
CONVENTIONS: tuple[str, ...] = ("naive", "shift")
#: Default decoder-step convention: ``naive``. Chen et al. (2020) found ``shift`` better for their
#: large models; on headscope's shipped translators ``naive`` is the better aligner on Hansards
#: (docs/alignment.md) and the only one that recovers adjective–noun crossings
#: (``examples/reordering_attention.py``). Score both with ``convention="both"``.
DEFAULT_CONVENTION: Final = "naive"
#: How subwords pool into words (see :func:`headscope.align.subword_to_word`).
POOLINGS: tuple[str, ...] = ("sum", "mean", "max")
#: Groups of cross readings :func:`headscope.align.evaluate` can score: heads (``cross.2.3``), layer
#: means (``cross.2.mean``), the all-heads mean (``cross.mean``), rollout (``cross.rollout``), and the
#: readings beyond the raw weights (:mod:`headscope.mixing`, computed only when asked for): norm-based
#: attention (``cross.2.3.norm``, ``cross.2.norm``), ALTI+ source contributions (``cross.2.alti``,
#: ``cross.alti``) and gradient-weighted rollout (``cross.gradrollout``).
SOURCES: tuple[str, ...] = ("heads", "layer_mean", "all_mean", "rollout", "norm", "alti", "gradrollout")
#: The groups that need :func:`headscope.inspect`'s ``readings=`` (the names it takes).
MIXING_SOURCES: tuple[str, ...] = ("norm", "alti", "gradrollout")
#: The groups scored by default: the raw attention readings.
DEFAULT_SOURCES: tuple[str, ...] = ("heads", "layer_mean", "all_mean", "rollout")
#: Ways to combine two link sets (see :func:`headscope.align.symmetrize`).
SYMMETRIZATIONS: tuple[str, ...] = ("intersection", "union", "grow-diag", "grow-diag-final", "grow-diag-final-and")
