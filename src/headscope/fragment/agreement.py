"""Agreement between readings, and how stable the "best" head is.

A *reading* is any importance map over the same input: one head, a layer mean, the all-heads
mean, rollout, flow, gradient or leave-one-out importance. Readings are ``[rows, keys]``
arrays (one row per target token, or a single row for a classifier); two readings agree as
much as the Kendall τ-b between their rows, averaged over rows (Jain & Wallace 2019 compare
attention with gradient and leave-one-out rankings this way).

>>> import numpy as np
>>> names, tau = agreement_matrix({"a": np.array([0.1, 0.2, 0.7]), "b": np.array([0.7, 0.2, 0.1])})
>>> float(tau[0, 1])
-1.0
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import TypeVar

import numpy as np
from scipy.stats import kendalltau

from ..errors import ShapeError

K = TypeVar("K", bound=Hashable)


def _rows(reading: object) -> np.ndarray:
    if hasattr(reading, "detach"):
        reading = reading.detach().float().cpu().numpy()  # type: ignore[union-attr]
    arr = np.asarray(reading, dtype=np.float64)
    return arr[None] if arr.ndim == 1 else arr


def row_kendall(a: object, b: object) -> float:
    """Mean over rows of Kendall τ-b between two readings of the same shape.

    Rows where τ is undefined (a constant row) are left out of the mean, as in
    :func:`headscope.faithful.compare_rankings`, so that the two report the same number for the
    same reading and rows; 0 when no row defines it.
    """
    x, y = _rows(a), _rows(b)
    if x.shape != y.shape or x.ndim != 2:
        raise ShapeError(f"readings must have the same [rows, keys] shape, got {x.shape} and {y.shape}")
    taus = np.asarray([kendalltau(x[r], y[r]).statistic for r in range(x.shape[0])], dtype=np.float64)
    finite = taus[np.isfinite(taus)]
    return float(finite.mean()) if finite.size else 0.0


def agreement_matrix(readings: Mapping[K, object]) -> tuple[list[K], np.ndarray]:
    """Kendall τ matrix between keyed readings: ``(keys, tau [R, R])``, ones on the diagonal.

    Keys are whatever names the readings (``headscope.readings.Reading`` objects, method names).
    """
    names = list(readings)
    if len(names) < 2:
        raise ShapeError("need at least two readings to compare")
    tau = np.eye(len(names))
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            tau[i, j] = tau[j, i] = row_kendall(readings[names[i]], readings[names[j]])
    return names, tau


def best_head_stability(per_sentence_aer: object) -> tuple[np.ndarray, np.ndarray]:
    """How often each head is the best aligner, sentence by sentence.

    ``per_sentence_aer`` is ``[sentences, layers, heads]`` (NaN for sentences a head cannot be
    scored on). Returns ``(share [layers, heads], spread [sentences])``: the fraction of
    sentences on which each head has the lowest AER (ties shared equally), and per sentence the
    spread max − min of AER across heads.

    >>> share, spread = best_head_stability(np.array([[[0.1, 0.5]], [[0.4, 0.2]]]))
    >>> share.tolist(), spread.round(2).tolist()
    ([[0.5, 0.5]], [0.4, 0.2])
    """
    arr = np.asarray(per_sentence_aer, dtype=np.float64)
    if arr.ndim != 3:
        raise ShapeError(f"expected per-sentence AER [sentences, layers, heads], got shape {arr.shape}")
    flat = arr.reshape(arr.shape[0], -1)
    valid = ~np.isnan(flat).all(1)
    flat = flat[valid]
    share = np.zeros(flat.shape[1])
    if flat.shape[0]:
        best = np.nanmin(flat, axis=1, keepdims=True)
        winners = np.isclose(flat, best) & ~np.isnan(flat)
        share = (winners / winners.sum(1, keepdims=True)).sum(0) / flat.shape[0]
    spread = np.nanmax(flat, axis=1) - np.nanmin(flat, axis=1) if flat.shape[0] else np.zeros(0)
    return share.reshape(arr.shape[1:]), spread
