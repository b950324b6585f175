"""Faithfulness: does an attention map reflect the computation?

Change the heads or the input tokens and see whether the output changes the way the map says:

* :func:`head_ablation` - remove heads (batched) and measure the change of the decision, with
  confidence / entropy / gradient proxies (Michel et al. 2019; Voita et al. 2019);
* :func:`token_importance` - attention, rollout, flow, gradient, grad x input, integrated
  gradients, leave-one-out (:func:`list_methods`);
* :func:`kendall_tau`, :func:`erasure_flip`, :func:`eraser_aopc` - Jain & Wallace (2019),
  Serrano & Smith (2019), DeYoung et al. (2020).
"""

from __future__ import annotations

from .ablation import AblationResult, HeadSpace, head_ablation, rank_correlations
from .importance import TokenImportance, list_methods, token_importance
from .metrics import (
    ErasureOracle,
    FlipResult,
    compare_rankings,
    decision_functions,
    eraser_aopc,
    erasure_flip,
    kendall_tau,
    kendall_tau_rows,
    random_ranking,
    tau_summary,
    top_k_count,
)

__all__ = [
    "AblationResult",
    "ErasureOracle",
    "FlipResult",
    "HeadSpace",
    "TokenImportance",
    "compare_rankings",
    "decision_functions",
    "eraser_aopc",
    "erasure_flip",
    "head_ablation",
    "kendall_tau",
    "kendall_tau_rows",
    "list_methods",
    "random_ranking",
    "rank_correlations",
    "tau_summary",
    "token_importance",
    "top_k_count",
]
