"""A small taxonomy of head behaviours, computed from the maps alone.

Each head's map ``[q, k]`` is summarised by where its mass goes, averaged over query rows,
and given the first label whose rule holds (rules in this order; thresholds are arguments):

1. ``sink``        — at least ``threshold`` of the mass on sink tokens (EOS, CLS/SEP, BOS,
   punctuation-only tokens): attention parked where it carries little information
   (Clark et al. 2019, "What does BERT look at?"; Kobayashi et al. 2020).
2. ``diagonal``    — self-attention: at least ``threshold`` on the query's own position;
   cross-attention: on the source position proportional to the target position (monotone).
3. ``previous``    — self-attention: at least ``threshold`` on position ``i - 1``.
4. ``next``        — self-attention: at least ``threshold`` on position ``i + 1``.
5. ``broad``       — mean row entropy at least ``broad`` of the uniform entropy over the
   row's keys (nearly uniform attention).
6. ``focused``     — mean row maximum at least ``threshold`` on non-sink tokens; for cross
   attention this is what an aligner looks like (``alignment-like``).
7. ``mixed``       — none of the above.

The sink mass is reported for every head on its own: much of what looks like attention goes
to uninformative tokens.

>>> import numpy as np
>>> classify_head(np.eye(4), kind="encoder")
'diagonal'
"""

from __future__ import annotations

import string
from collections import Counter
from collections.abc import Sequence

import numpy as np

from ..errors import ShapeError

LABELS = ("sink", "diagonal", "previous", "next", "broad", "focused", "alignment-like", "mixed")

_SPECIAL = {"</s>", "<s>", "[CLS]", "[SEP]", "<pad>", "[PAD]", "<|endoftext|>", "<unk>", "[UNK]"}
_STRIP = "▁Ġ#"


def sink_positions(tokens: Sequence[str]) -> np.ndarray:
    """Boolean mask of sink tokens: special tokens and punctuation-only tokens.

    >>> sink_positions(["[CLS]", "good", ",", "film", "[SEP]"]).tolist()
    [True, False, True, False, True]
    """
    out = []
    for tok in tokens:
        core = tok.strip(_STRIP)
        out.append(tok in _SPECIAL or (bool(core) and all(c in string.punctuation for c in core)) or not core)
    return np.array(out, dtype=bool)


def _to_numpy(att: object) -> np.ndarray:
    if hasattr(att, "detach"):
        att = att.detach().float().cpu().numpy()  # type: ignore[union-attr]
    return np.asarray(att, dtype=np.float64)


def head_profile(att: object, sinks: np.ndarray | None = None, positions: Sequence[int] | None = None,
                 n_query: int | None = None) -> dict[str, float]:
    """Where one head's mass goes: ``sink``, ``diagonal``, ``previous``, ``next`` mass, normalised
    ``entropy`` and non-sink ``max`` — each averaged over query rows.

    ``att`` may hold only some query rows of a map with ``n_query`` rows (the rows a reduced capture
    kept, ``headscope.inspect(..., reduce=["rows=0,-1"])``): ``positions`` gives the query position of
    each; the profile is then that of the full map averaged over those rows only.

    >>> head_profile(np.eye(4)[[0, 3]], positions=[0, 3], n_query=4)["diagonal"]
    1.0
    """
    m = _to_numpy(att)
    if m.ndim != 2:
        raise ShapeError(f"one head's map must be [query, key], got shape {m.shape}")
    q, k = m.shape
    sinks = np.zeros(k, dtype=bool) if sinks is None else np.asarray(sinks, dtype=bool)
    if sinks.shape != (k,):
        raise ShapeError(f"sink mask has {sinks.shape[0]} entries but the map has {k} keys")
    rows, n_query = _row_positions(q, positions, n_query)
    if n_query == k:
        diag_cols = rows
    else:  # cross-attention: the monotone diagonal of a q x k grid
        diag_cols = np.minimum((rows * k) // max(n_query, 1), k - 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ent = -np.where(m > 0, m * np.log(np.where(m > 0, m, 1)), 0.0).sum(1)
    uniform = np.log(k) if k > 1 else 1.0
    square = n_query == k
    prev = np.array([m[r, i - 1] if 0 < i <= k else 0.0 for r, i in enumerate(rows)]) if square else np.zeros(q)
    nxt = np.array([m[r, i + 1] if i + 1 < k else 0.0 for r, i in enumerate(rows)]) if square else np.zeros(q)
    has_prev, has_next = rows > 0, rows < n_query - 1  # the first row has no previous token, the last no next
    non_sink = m[:, ~sinks] if (~sinks).any() else np.zeros((q, 1))
    return {
        "sink": float(m[:, sinks].sum(1).mean()) if sinks.any() else 0.0,
        "diagonal": float(m[np.arange(q), diag_cols].mean()),
        "previous": float(prev[has_prev].mean()) if has_prev.any() else 0.0,
        "next": float(nxt[has_next].mean()) if has_next.any() else 0.0,
        "entropy": float((ent / uniform).mean()),
        "max": float(non_sink.max(1).mean()),
    }


def _row_positions(q: int, positions: Sequence[int] | None, n_query: int | None) -> tuple[np.ndarray, int]:
    """The query position of each of ``q`` rows, and the full map's number of query rows."""
    if positions is None:
        return np.arange(q), q if n_query is None else int(n_query)
    rows = np.asarray(list(positions), dtype=int)
    n_query = int(rows.max()) + 1 if n_query is None else int(n_query)
    if rows.shape != (q,) or (rows < 0).any() or (rows >= n_query).any():
        raise ShapeError(f"positions {rows.tolist()} must give one query position in 0..{n_query - 1} per row "
                         f"of the {q}-row map")
    return rows, n_query


def classify_head(att: object, kind: str = "encoder", sinks: np.ndarray | None = None,
                  threshold: float = 0.5, broad: float = 0.8, positions: Sequence[int] | None = None,
                  n_query: int | None = None) -> str:
    """The behaviour label of one head's ``[query, key]`` map (rules in the module docstring);
    ``positions`` / ``n_query`` as in :func:`head_profile` when ``att`` holds only some query rows."""
    p = head_profile(att, sinks, positions, n_query)
    if p["sink"] >= threshold:
        return "sink"
    if p["diagonal"] >= threshold:
        return "diagonal"
    if kind != "cross":
        if p["previous"] >= threshold:
            return "previous"
        if p["next"] >= threshold:
            return "next"
    if p["entropy"] >= broad:
        return "broad"
    if p["max"] >= threshold:
        return "alignment-like" if kind == "cross" else "focused"
    return "mixed"


def classify_heads(att: object, kind: str, query_tokens: Sequence[str] | None = None,
                   key_tokens: Sequence[str] | None = None, threshold: float = 0.5,
                   broad: float = 0.8, positions: Sequence[int] | None = None,
                   n_query: int | None = None) -> tuple[np.ndarray, np.ndarray, dict[str, float]]:
    """Label every head of ``att`` ``[layers, heads, q, k]``; ``positions`` / ``n_query`` as in
    :func:`head_profile` when ``att`` holds only some query rows (a reduced capture's kept rows).

    Returns ``(labels [layers, heads], sink_mass [layers, heads], shares {label: fraction})``.
    """
    arr = _to_numpy(att)
    if arr.ndim != 4:
        raise ShapeError(f"expected [layers, heads, query, key], got shape {arr.shape}")
    sinks = sink_positions(key_tokens) if key_tokens is not None else None
    labels = np.empty(arr.shape[:2], dtype=object)
    sink_mass = np.zeros(arr.shape[:2])
    for layer in range(arr.shape[0]):
        for head in range(arr.shape[1]):
            labels[layer, head] = classify_head(arr[layer, head], kind, sinks, threshold, broad, positions, n_query)
            sink_mass[layer, head] = head_profile(arr[layer, head], sinks, positions, n_query)["sink"]
    counts = Counter(labels.ravel().tolist())
    shares = {label: counts.get(label, 0) / labels.size for label in LABELS if counts.get(label, 0)}
    return labels, sink_mass, shares
