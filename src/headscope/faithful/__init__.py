"""Faithfulness: does an attention map reflect the computation?

Change the heads or the input tokens and see whether the model's own decision changes the way the
map says. faithful computes and saves numbers; :mod:`headscope.viz` draws them.

* :func:`head_ablation` - remove heads (batched) and measure the change of the decision, with
  confidence / entropy / gradient proxies (Michel et al. 2019; Voita et al. 2019):
  an :class:`AblationResult`;
* :func:`token_importance` - attention readings (any :class:`~headscope.readings.Reading`),
  rollout, flow, gradient, grad x input, integrated gradients, leave-one-out
  (:func:`list_methods`): a :class:`TokenImportance` ``[decisions, source tokens]``;
* :func:`kendall_tau`, :func:`erasure_flip`, :func:`eraser_aopc` - Jain & Wallace (2019),
  Serrano & Smith (2019), DeYoung et al. (2020);
* :func:`compare_rankings` - all of them for one input: a :class:`RankingComparison`, one row per
  decision; :func:`summarise` pools many into a :class:`RankingSummary`;
* :func:`counterfactual` - replace heads' attention during the forward (uniform, permuted,
  adversarial within a TVD bound, or a given map; Jain & Wallace 2019 section 4, Wiegreffe &
  Pinter 2019) and measure the output change: a :class:`CounterfactualResult`;
* :func:`faithfulness_report` - ablation and comparisons over a set of texts, saved as
  ``faithful.json`` + CSV tables (:class:`FaithfulnessReport`); :func:`faithfulness_corpus` does it a
  chunk at a time over a corpus, resumable after an interruption.

>>> import headscope
>>> insp = headscope.inspect("headscope/sentiment", "A dull film.")   # doctest: +SKIP
>>> print(head_ablation(insp))                                        # doctest: +SKIP
"""

from __future__ import annotations

from .ablation import AblationResult, HeadSpace, head_ablation, rank_correlations
from .comparison import RankingComparison, RankingSummary, RowComparison, compare_rankings, summarise
from .counterfactual import CounterfactualResult, counterfactual  # issue 15
from .importance import ImportanceMethod, TokenImportance, list_methods, token_importance
from .metrics import (
    ErasureOracle,
    FlipResult,
    decision_functions,
    eraser_aopc,
    erasure_flip,
    kendall_tau,
    kendall_tau_rows,
    random_ranking,
    tau_summary,
    top_k_count,
)
from .report import FaithfulnessReport, faithfulness_report
from .corpus import faithfulness_corpus  # issue 13: resumable corpus runs

__all__ = [
    "AblationResult",
    "CounterfactualResult",
    "ErasureOracle",
    "FaithfulnessReport",
    "FlipResult",
    "HeadSpace",
    "ImportanceMethod",
    "RankingComparison",
    "RankingSummary",
    "RowComparison",
    "TokenImportance",
    "compare_rankings",
    "counterfactual",
    "decision_functions",
    "eraser_aopc",
    "erasure_flip",
    "faithfulness_corpus",
    "faithfulness_report",
    "head_ablation",
    "kendall_tau",
    "kendall_tau_rows",
    "list_methods",
    "random_ranking",
    "rank_correlations",
    "summarise",
    "tau_summary",
    "token_importance",
    "top_k_count",
]
