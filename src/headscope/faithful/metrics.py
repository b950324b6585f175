"""Does a token ranking reflect what the model computes? Agreement and erasure metrics.

* :func:`kendall_tau` - Kendall tau-b between two importance vectors (Jain & Wallace 2019,
  "Attention is not Explanation"), :func:`tau_summary` for its distribution over a dataset;
* :func:`erasure_flip` - erase tokens in descending importance until the decision flips and
  report the fraction erased (Serrano & Smith 2019, "Is Attention Interpretable?");
* :func:`eraser_aopc` - ERASER comprehensiveness and sufficiency, averaged over top-k% bins
  (AOPC; DeYoung et al. 2020, "ERASER: A Benchmark to Evaluate Rationalized NLP Models").

The erasure metrics take a ``predict`` callable: given a boolean ``[R, S]`` matrix whose row
``r`` marks the tokens to erase, it returns ``R`` decisions (labels) or probabilities of the
original decision. :func:`decision_functions` builds both for an encoded example of a model.

>>> kendall_tau([0.1, 0.5, 0.4], [1, 3, 2])
1.0
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy import stats

from ..errors import InputError
from ._common import Example, chunked, score
from .importance import edited_sources

Predict = Callable[[np.ndarray], np.ndarray]
BINS = (1, 5, 10, 20, 50)


def _vector(x: Any, name: str) -> np.ndarray:
    arr = np.asarray(x.detach().cpu() if isinstance(x, torch.Tensor) else x, dtype=float)
    if arr.ndim != 1:
        raise InputError(f"{name} must be a 1-D importance vector, got shape {arr.shape}")
    return arr


def kendall_tau(a: Any, b: Any, mask: Any = None) -> float:
    """Kendall tau-b between importance vectors ``a`` and ``b`` (ties handled as in tau-b).

    ``mask`` (boolean) keeps only some positions, e.g. non-special tokens. NaN when either
    vector is constant over the kept positions or fewer than two are kept.

    >>> kendall_tau([3, 2, 1, 0], [0, 1, 2, 3])
    -1.0
    """
    x, y = _vector(a, "a"), _vector(b, "b")
    if x.shape != y.shape:
        raise InputError(f"a and b must have the same length, got {len(x)} and {len(y)}")
    if mask is not None:
        keep = np.asarray(mask, dtype=bool)
        if keep.shape != x.shape:
            raise InputError(f"mask has {keep.shape[0] if keep.ndim else 0} entries for vectors of length {len(x)}")
        x, y = x[keep], y[keep]
    if len(x) < 2 or np.all(x == x[0]) or np.all(y == y[0]):
        return float("nan")
    return float(stats.kendalltau(x, y, variant="b").statistic)


def kendall_tau_rows(a: Any, b: Any, mask: Any = None) -> np.ndarray:
    """Row-wise :func:`kendall_tau` of two ``[T, S]`` matrices (encoder-decoder importance)."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.shape != y.shape or x.ndim != 2:
        raise InputError(f"expected two [T, S] matrices of the same shape, got {x.shape} and {y.shape}")
    return np.array([kendall_tau(x[t], y[t], mask) for t in range(x.shape[0])])


def tau_summary(taus: Sequence[float]) -> dict[str, float]:
    """Distribution of taus over a dataset: n, mean, std, quartiles, and the shares of taus
    above 0.5 and below 0 (NaNs, from constant vectors, are counted and dropped).

    >>> tau_summary([0.2, 0.4, float("nan")])["n"]
    2
    """
    arr = np.asarray(taus, dtype=float)
    ok = arr[~np.isnan(arr)]
    if len(ok) == 0:
        return {"n": 0, "nan": int(np.isnan(arr).sum())}
    q25, q50, q75 = np.percentile(ok, [25, 50, 75])
    return {"n": int(len(ok)), "nan": int(np.isnan(arr).sum()), "mean": float(ok.mean()), "std": float(ok.std()),
            "q25": float(q25), "median": float(q50), "q75": float(q75),
            "frac_above_0.5": float((ok > 0.5).mean()), "frac_below_0": float((ok < 0).mean())}


# ---- Serrano & Smith: erase until the decision flips -------------------------------------------

@dataclass(frozen=True)
class FlipResult:
    """Tokens erased (in ranking order) when the decision first changed; ``flipped=False``
    when it never did (then ``n_erased == n_erasable`` and ``fraction`` is 1)."""

    n_erased: int
    n_erasable: int
    flipped: bool

    @property
    def fraction(self) -> float:
        """``n_erased / n_erasable`` (NaN when nothing could be erased)."""
        return self.n_erased / self.n_erasable if self.n_erasable else float("nan")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict, with the fraction."""
        return {"n_erased": self.n_erased, "n_erasable": self.n_erasable, "flipped": self.flipped,
                "fraction": self.fraction}


def _order(ranking: Any, erasable: np.ndarray) -> np.ndarray:
    scores = _vector(ranking, "ranking")
    if scores.shape != erasable.shape:
        raise InputError(f"ranking has {len(scores)} entries for an input of {len(erasable)} tokens")
    idx = np.flatnonzero(erasable)
    return idx[np.argsort(-scores[idx], kind="stable")]


def _erasable(n: int, erasable: Any) -> np.ndarray:
    mask = np.ones(n, dtype=bool) if erasable is None else np.asarray(erasable, dtype=bool)
    if mask.shape != (n,):
        raise InputError(f"erasable must be a boolean vector of length {n}")
    return mask


def erasure_flip(predict: Predict, ranking: Any, erasable: Any = None) -> FlipResult:
    """Erase tokens from the most to the least important until ``predict`` changes its decision.

    ``predict(erase)`` maps a boolean ``[R, S]`` erase matrix to ``R`` labels. Only ``erasable``
    positions (default all; e.g. non-special tokens) are erased; ties keep position order.
    Prefixes are scored in doubling blocks, stopping at the first flip. Serrano & Smith (2019), sec. 4.

    >>> predict = lambda erase: (erase[:, [1, 2]].sum(1) >= 2).astype(int)   # flips once 1 and 2 are gone
    >>> erasure_flip(predict, [0.1, 0.9, 0.2, 0.5]).n_erased                  # order 1, 3, 2
    3
    """
    n = len(_vector(ranking, "ranking"))
    mask = _erasable(n, erasable)
    order = _order(ranking, mask)
    erase = np.zeros((len(order) + 1, n), dtype=bool)
    for k, pos in enumerate(order):
        erase[k + 1:, pos] = True
    original = np.asarray(predict(erase[:1]))[0]
    start, size = 1, 4  # prefixes in doubling blocks: stop at the first flip
    while start <= len(order):
        labels = np.asarray(predict(erase[start:start + size]))
        changed = np.flatnonzero(labels != original)
        if len(changed):
            return FlipResult(start + int(changed[0]), len(order), True)
        start, size = start + size, size * 2
    return FlipResult(len(order), len(order), False)


def random_ranking(n: int, seed: int | np.random.Generator | None = 0) -> np.ndarray:
    """A random importance vector (the baseline ranking of Serrano & Smith)."""
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    return rng.permutation(n).astype(float)


# ---- ERASER: comprehensiveness, sufficiency, AOPC ---------------------------------------------

def top_k_count(n: int, percent: float) -> int:
    """Tokens in the top ``percent``% of ``n``: ``ceil(percent * n / 100)``, at least 1.

    >>> [top_k_count(12, p) for p in (1, 5, 10, 20, 50)]
    [1, 1, 2, 3, 6]
    """
    return max(1, math.ceil(percent * n / 100 - 1e-9))


def eraser_aopc(predict_prob: Predict, ranking: Any, erasable: Any = None,
                bins: Sequence[float] = BINS) -> dict[str, Any]:
    """ERASER comprehensiveness and sufficiency over top-k% bins and their averages (AOPC).

    ``predict_prob(erase)`` returns the probability of the *original* decision for each erase
    row. For each bin ``k``, with ``top`` the ``top_k_count(n, k)`` most important erasable tokens:
    ``comprehensiveness_k = p(x) - p(x without top)``, ``sufficiency_k = p(x) - p(top only)``
    (every other erasable token erased). AOPC averages over bins (DeYoung et al. 2020, sec. 4).

    >>> prob = lambda erase: 1.0 - 0.5 * erase[:, 0] - 0.25 * erase[:, 1]
    >>> out = eraser_aopc(prob, [0.9, 0.5, 0.1, 0.0], bins=(25, 50))
    >>> out["comprehensiveness"], out["sufficiency"]
    (0.625, 0.125)
    """
    n = len(_vector(ranking, "ranking"))
    mask = _erasable(n, erasable)
    order = _order(ranking, mask)
    m = len(order)
    if m == 0:
        raise InputError("no erasable tokens: ERASER scores need at least one token that may be erased")
    rows = [np.zeros(n, dtype=bool)]
    for k in bins:
        top = order[: top_k_count(m, k)]
        without = np.zeros(n, dtype=bool)
        without[top] = True
        only = mask.copy()
        only[top] = False
        rows += [without, only]
    probs = np.asarray(predict_prob(np.stack(rows)), dtype=float)
    full = probs[0]
    comp = full - probs[1::2]
    suff = full - probs[2::2]
    return {"comprehensiveness": float(comp.mean()), "sufficiency": float(suff.mean()),
            "comprehensiveness_bins": comp.tolist(), "sufficiency_bins": suff.tolist(), "bins": list(bins),
            "p_full": float(full)}


# ---- model-backed predictors ------------------------------------------------------------------

class ErasureOracle:
    """Decisions of one encoded example under erasures, cached per erase pattern.

    For every erase row it keeps, per decision of the example (one for a label or a next token,
    one per target token of an encoder-decoder, whose teacher forcing keeps the target prefix),
    the argmax and the log-probability of the *original* argmax. Erased tokens are removed
    (``variant="remove"``) or replaced by the mask token (``"mask"``).
    """

    def __init__(self, ex: Example, variant: str = "remove", batch_size: int = 64) -> None:
        self.ex, self.variant, self.batch_size = ex, variant, batch_size
        self._cache: dict[bytes, tuple[np.ndarray, np.ndarray]] = {}
        self.original: np.ndarray | None = None
        self.original = self._run(np.zeros((1, len(ex.source_ids)), dtype=bool))[0][0]

    @torch.no_grad()
    def _run(self, erase: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        ex = self.ex
        erase = np.asarray(erase, dtype=bool)
        todo = list(dict.fromkeys(i for i, r in enumerate(erase) if r.tobytes() not in self._cache))
        sources = edited_sources(ex, erase[todo], self.variant)
        for part in chunked(len(todo), self.batch_size):
            for i, r in zip(todo[part], score([ex] * (part.stop - part.start), sources[part])):
                logp = torch.log_softmax(r.logits.double(), -1)
                labels = logp.argmax(-1).numpy()
                ref = labels if self.original is None else self.original
                chosen = logp.gather(-1, torch.as_tensor(ref)[:, None])[:, 0].numpy()
                self._cache[erase[i].tobytes()] = (labels, chosen)
        return [self._cache[r.tobytes()] for r in erase]

    def labels(self, erase: np.ndarray, row: int = 0) -> np.ndarray:
        """The decision (class / token id) for each erase row, at decision ``row``."""
        return np.array([labels[row] for labels, _ in self._run(erase)])

    def probs(self, erase: np.ndarray, row: int = 0) -> np.ndarray:
        """The probability of the original decision for each erase row, at decision ``row``."""
        return np.array([np.exp(chosen[row]) for _, chosen in self._run(erase)])


def decision_functions(ex: Example, row: int | None = None, variant: str = "remove",
                       batch_size: int = 64, oracle: ErasureOracle | None = None) -> tuple[Predict, Predict]:
    """``(predict_label, predict_prob)`` for :func:`erasure_flip` / :func:`eraser_aopc` on one example.

    For decision ``row`` of the example (needed when it makes several, one per target token of
    an encoder-decoder): the argmax under each erasure, and the probability of the original
    argmax. See :class:`ErasureOracle`.

    >>> label, prob = decision_functions(as_examples(insp)[0])               # doctest: +SKIP
    >>> erasure_flip(label, token_importance(insp, "loo").scores[0]).fraction  # doctest: +SKIP
    0.25
    """
    if row is None:
        if len(ex.decisions) > 1:
            raise InputError(f"this example makes {len(ex.decisions)} decisions (one per target token): "
                             "pass row= (the decision whose prediction is tested)")
        row = 0
    oracle = oracle or ErasureOracle(ex, variant, batch_size)
    return (lambda erase: oracle.labels(erase, row)), (lambda erase: oracle.probs(erase, row))
