"""Disagreement between attention heads, and the effective number of distinct maps.

Each head's map is a stack of row distributions (query ``i`` over keys ``j``). Two heads are
compared row by row:

* Jensen–Shannon divergence (base 2, so in ``[0, 1]``) averaged over rows (Lin 1991);
* Spearman rank correlation of the two rows averaged over rows (or Kendall's τ-b).

The effective number of distinct maps is the exponential of the Shannon entropy of the
normalised eigenvalue spectrum of the similarity matrix ``1 − JS`` — the *effective rank*
of Roy & Vetterli (2007). We use the spectrum rather than a clustering because it has no
threshold to tune and is exact on the two limiting cases: ``N`` identical heads give a
rank-one all-ones matrix (one map); ``N`` heads with disjoint support give the identity
(``N`` maps). In between it counts near-duplicates fractionally.

>>> import numpy as np
>>> same = np.tile(np.eye(3)[None], (4, 1, 1))   # four identical heads
>>> round(effective_maps(1 - pairwise_js(same)), 6)
1.0
"""

from __future__ import annotations

import numpy as np
from scipy.stats import kendalltau, rankdata

from ..errors import ShapeError


def _as_maps(maps: object) -> np.ndarray:
    """``[N, q, k]`` float64 from numpy/torch, rows checked to be distributions."""
    if hasattr(maps, "detach"):
        maps = maps.detach().float().cpu().numpy()  # type: ignore[union-attr]
    arr = np.asarray(maps, dtype=np.float64)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise ShapeError(f"expected maps of shape [heads, query, key], got {arr.shape}; flatten layers first "
                         "(att.reshape(-1, q, k))")
    if not np.isfinite(arr).all() or (arr < 0).any():
        raise ShapeError("attention maps must be finite and non-negative")
    return arr


def js_divergence(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Jensen–Shannon divergence (base 2) between distributions along the last axis.

    >>> float(js_divergence(np.array([1.0, 0.0]), np.array([0.0, 1.0])))
    1.0
    """
    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    m = 0.5 * (p + q)

    def kl(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = np.where(a > 0, a * np.log2(np.where(a > 0, a, 1) / np.where(b > 0, b, 1)), 0.0)
        return terms.sum(-1)

    return np.clip(0.5 * kl(p, m) + 0.5 * kl(q, m), 0.0, 1.0)


def pairwise_js(maps: object) -> np.ndarray:
    """Mean-over-rows JS divergence between every pair of maps: ``[N, q, k]`` -> ``[N, N]``."""
    arr = _as_maps(maps)
    return js_divergence(arr[:, None], arr[None, :]).mean(-1)


def pairwise_rank_correlation(maps: object, method: str = "spearman") -> np.ndarray:
    """Mean-over-rows rank correlation between every pair of maps: ``[N, q, k]`` -> ``[N, N]``.

    ``method`` is ``"spearman"`` (vectorised, average ranks for ties) or ``"kendall"`` (τ-b).
    Rows that are constant in either map contribute 0.
    """
    arr = _as_maps(maps)
    n, q, _ = arr.shape
    if method == "spearman":
        ranks = rankdata(arr, axis=-1)
        ranks = ranks - ranks.mean(-1, keepdims=True)
        norms = np.linalg.norm(ranks, axis=-1)
        num = np.einsum("aqk,bqk->abq", ranks, ranks)
        den = norms[:, None] * norms[None, :]
        with np.errstate(divide="ignore", invalid="ignore"):
            corr = np.where(den > 0, num / np.where(den > 0, den, 1), 0.0)
        return corr.mean(-1)
    if method == "kendall":
        out = np.eye(n)
        for a in range(n):
            for b in range(a + 1, n):
                taus = [kendalltau(arr[a, r], arr[b, r]).statistic for r in range(q)]
                out[a, b] = out[b, a] = float(np.mean(np.nan_to_num(taus)))
        return out
    raise ShapeError(f"unknown rank correlation {method!r}; choose 'spearman' or 'kendall'")


def effective_maps(similarity: np.ndarray) -> float:
    """Effective number of distinct maps: ``exp(H(λ / Σλ))`` of a similarity matrix's spectrum.

    ``similarity`` is symmetric with ones on the diagonal (e.g. ``1 − pairwise_js(maps)``).
    Roy & Vetterli (2007), "The effective rank: a measure of effective dimensionality".
    """
    sim = np.asarray(similarity, dtype=np.float64)
    if sim.ndim != 2 or sim.shape[0] != sim.shape[1]:
        raise ShapeError(f"similarity must be a square matrix, got shape {sim.shape}")
    eig = np.clip(np.linalg.eigvalsh(0.5 * (sim + sim.T)), 0.0, None)
    total = eig.sum()
    if total <= 0:
        raise ShapeError("similarity matrix has no positive eigenvalue; pass 1 - pairwise_js(maps)")
    p = eig[eig > 0] / total
    return float(np.exp(-(p * np.log(p)).sum()))
