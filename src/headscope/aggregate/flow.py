"""Attention flow (Abnar & Zuidema 2020), exact and fast.

Attention flow treats the stack of attention maps as a flow network (see
:func:`headscope.aggregate.attention_graph`): one node per (layer, position),
edges from each position to every position of the layer below with capacity
``A'_l[i, j]`` (head-fused attention mixed with the identity for the residual
connection, rows summing to 1). The flow from output position ``i`` to input
position ``j`` is the value of a maximum flow from node ``(L, i)`` down to node
``(0, j)``; each row of the result is normalised to sum to 1.

Reference: Samira Abnar and Willem Zuidema, "Quantifying Attention Flow in
Transformers", ACL 2020.

The reference algorithm, one ``networkx`` Edmonds-Karp max-flow per
(output, input) pair, takes minutes for 12 layers x 24 tokens. :func:`flow`
returns the same values (to ~1e-8, with a checked bound, see below) hundreds of
times faster:

* The network is rebuilt once into a compact form per pair: only the source's
  row of the top layer and the sink's column of the first layer differ
  between pairs, so those capacities are patched into fixed CSR arrays.
* Every pair gets cheap **upper bounds** from a family of cuts (the cut around
  the source, the cut around the sink, and every minimum cut found so far,
  re-priced for all pairs at once with a few matrix products), and a cheap
  **lower bound** from a compiled max-flow (``scipy.sparse.csgraph.maximum_flow``,
  Dinic) on a sparsified network that keeps only the strongest edges of the
  middle layers, with capacities scaled by ``2**30`` and rounded *down* to
  integers. Rounding down keeps every integer flow feasible for the true
  capacities, so ``flow_value / 2**30`` is a true lower bound. 32 pairs are
  solved per call, as disjoint copies between a super-source and a super-sink,
  to spare scipy's per-call overhead.
* Where the bounds meet (within ``1e-7``) the value returned is the upper bound,
  the exact float capacity of a real cut, so it can only be off by the gap.
  Otherwise the pair is solved on the full network; the minimum cut is read off
  the residual network (breadth-first search) and priced exactly in floats,
  giving a new upper bound that also joins the family.
* The gaps give an a-posteriori bound on every normalised entry. Rows whose
  bound exceeds ``tol`` are refined: the residual network of the integer flow,
  capacities clipped at the remaining gap ``D`` and rescaled by ``2**30 / D``,
  is solved again, shrinking the gap by a factor of about ``2**30``.

Every returned entry is therefore within ``tol`` (default ``1e-8``) of the exact
float max-flow computation, apart from float rounding of the order of 1e-15.
``method="reference"`` runs the reference algorithm itself.

Example
-------
>>> import numpy as np
>>> from headscope.aggregate import flow, rollout
>>> att = np.array([[[[1.0, 0.0], [1.0, 0.0]]]] * 2)   # 2 layers: everyone reads token 0
>>> flow(att).round(6)                # raw max-flows of row 1: [1.0, 0.5]
array([[1.      , 0.      ],
       [0.666667, 0.333333]])
>>> rollout(att).round(6)
array([[1.  , 0.  ],
       [0.75, 0.25]])
"""

from __future__ import annotations

from typing import Any, Iterable

import numpy as np

from ..errors import InputError
from .rollout import fuse_layers

__all__ = ["flow", "reference_flow"]

_SCALE = float(2**30)  # capacities <= 1 become integers <= 2**30 (int32-safe)
_PAIR_TOL = 1e-7  # bound gap under which a pair counts as solved before the row check
_SPARSE_K = 4  # strongest in- and out-edges per middle node kept for the lower bound
_BATCH = 32  # pairs per lower-bound max-flow call


def flow(
    att: Any,
    residual: float = 0.5,
    head_fusion: str = "mean",
    discard_ratio: float = 0.0,
    pairs: Iterable[tuple[int, int]] | None = None,
    rows: Iterable[int] | None = None,
    method: str = "fast",
    tol: float = 1e-8,
) -> np.ndarray:
    """Attention flow (Abnar & Zuidema 2020): max-flow from each output to each input.

    Parameters
    ----------
    att : array ``[layers, heads, n, n]`` (numpy or torch)
        Self-attention probabilities, layer 0 first.
    residual, head_fusion, discard_ratio
        As in :func:`headscope.aggregate.rollout` (defaults follow the paper).
    pairs : iterable of ``(i, j)``, optional
        Compute only these (output ``i``, input ``j``) pairs and return their raw,
        unnormalised max-flow values as a 1-D array (rows cannot be normalised
        without all their entries).
    rows : iterable of int, optional
        Compute only these output positions (all inputs each) and return
        ``[len(rows), n]``, each row normalised, e.g. ``rows=[0]`` for a [CLS] token.
    method : ``"fast"`` (default) or ``"reference"``
        ``"reference"`` runs one ``networkx`` Edmonds-Karp max-flow per pair on
        the graph of :func:`attention_graph` (very slow; for checking).
    tol : float
        Bound on the absolute error of every returned (normalised) entry against
        the exact float computation; the fast path refines until its own
        a-posteriori bound is below it. With ``pairs`` it bounds each raw value,
        and pairs whose first bound is looser are refined one by one (slower).

    Returns
    -------
    numpy.ndarray
        ``[n, n]`` float64 (or ``[len(rows), n]``): row ``i`` is the max-flow
        from output position ``i`` to each input position, divided by the row's
        sum, so rows are non-negative and sum to 1. With ``pairs``: 1-D raw values.

    Raises
    ------
    ShapeError, InputError
        As :func:`rollout`; also unknown ``method``, both ``pairs`` and ``rows``,
        positions out of range.
    """
    if method not in ("fast", "reference"):
        raise InputError(f"method must be 'fast' or 'reference', got {method!r}.")
    if pairs is not None and rows is not None:
        raise InputError("Pass either pairs=... (raw values) or rows=... (normalised rows), not both.")
    try:
        tol = float(tol)
    except (TypeError, ValueError):
        raise InputError(f"tol must be a positive number, got {tol!r}.") from None
    if not tol > 0:
        raise InputError(f"tol must be a positive number, got {tol!r}.")
    layers = fuse_layers(att, residual, head_fusion, discard_ratio)
    n = layers.shape[-1]

    if pairs is not None:
        pair_arr = _check_pairs(pairs, n)
        if method == "reference":
            return _reference_values(layers, pair_arr)
        return _FlowSolver(layers).values(pair_arr, tol)

    row_idx = np.arange(n) if rows is None else _check_rows(rows, n)
    grid = np.stack(np.meshgrid(row_idx, np.arange(n), indexing="ij"), -1).reshape(-1, 2)
    if method == "reference":
        vals = _reference_values(layers, grid).reshape(len(row_idx), n)
        return vals / vals.sum(axis=1, keepdims=True)
    return _FlowSolver(layers).normalised_rows(row_idx, tol)


def reference_flow(
    att: Any, residual: float = 0.5, head_fusion: str = "mean", discard_ratio: float = 0.0
) -> np.ndarray:
    """The reference algorithm: ``flow(att, ..., method="reference")`` (slow)."""
    return flow(att, residual, head_fusion, discard_ratio, method="reference")


# ----------------------------------------------------------------------------
# argument checks
# ----------------------------------------------------------------------------


def _check_pairs(pairs: Iterable[tuple[int, int]], n: int) -> np.ndarray:
    try:
        arr = np.asarray(list(pairs), dtype=np.int64).reshape(-1, 2)
    except (TypeError, ValueError):
        raise InputError("pairs must be an iterable of (output, input) integer positions.") from None
    if arr.size and (arr.min() < 0 or arr.max() >= n):
        raise InputError(f"pairs hold positions outside 0..{n - 1} (n = {n} tokens).")
    return arr


def _check_rows(rows: Iterable[int], n: int) -> np.ndarray:
    try:
        arr = np.asarray(list(rows), dtype=np.int64).reshape(-1)
    except (TypeError, ValueError):
        raise InputError("rows must be an iterable of integer output positions.") from None
    if arr.size and (arr.min() < 0 or arr.max() >= n):
        raise InputError(f"rows hold positions outside 0..{n - 1} (n = {n} tokens).")
    return arr


# ----------------------------------------------------------------------------
# reference algorithm
# ----------------------------------------------------------------------------


def _reference_values(layers: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    import networkx as nx
    from networkx.algorithms.flow import edmonds_karp

    L, n, _ = layers.shape
    G = nx.DiGraph()
    G.add_nodes_from((layer, p) for layer in range(L + 1) for p in range(n))
    for layer in range(1, L + 1):
        m = layers[layer - 1]
        for i in range(n):
            for j in range(n):
                if m[i, j] > 0:
                    G.add_edge((layer, i), (layer - 1, j), capacity=float(m[i, j]))
    out = np.empty(len(pairs))
    for k, (i, j) in enumerate(pairs):
        out[k] = nx.maximum_flow_value(G, (L, int(i)), (0, int(j)), capacity="capacity", flow_func=edmonds_karp)
    return out


# ----------------------------------------------------------------------------
# fast certified solver
# ----------------------------------------------------------------------------


def _csr_from_edges(tails: np.ndarray, heads: np.ndarray, n_nodes: int):
    """Sort edges by (tail, head); return (order, indptr, indices) as int32 CSR."""
    order = np.lexsort((heads, tails))
    counts = np.bincount(tails, minlength=n_nodes)
    indptr = np.zeros(n_nodes + 1, dtype=np.int32)
    np.cumsum(counts, out=indptr[1:])
    return order, indptr, heads[order].astype(np.int32)


class _FlowSolver:
    """Certified max-flow for all (output, input) pairs of one stack of fused layers."""

    def __init__(self, layers: np.ndarray) -> None:
        self.layers = layers
        L, n, _ = layers.shape
        self.L, self.n = L, n
        self.trivial = L == 1
        if self.trivial:
            return
        from scipy.sparse import csr_array

        self._csr_array = csr_array
        M = (L - 1) * n
        self.N = N = M + 2
        self.s, self.t = 0, M + 1

        def node(layer: int, pos: np.ndarray) -> np.ndarray:  # middle layers 1..L-1
            return 1 + (L - 1 - layer) * n + pos

        pos = np.arange(n)
        tails, heads, caps, keep = [], [], [], []
        # source edges (patched per pair): s -> (L-1, q)
        tails.append(np.zeros(n, np.int64))
        heads.append(node(L - 1, pos))
        caps.append(np.zeros(n))
        keep.append(np.ones(n, bool))
        # middle edges (l, p) -> (l-1, q) for l = L-1 .. 2 with capacity A'_l = layers[l-1]
        k = min(_SPARSE_K, n)
        for layer in range(L - 1, 1, -1):
            m = layers[layer - 1]
            p, q = np.nonzero(m > 0)
            tails.append(node(layer, p))
            heads.append(node(layer - 1, q))
            caps.append(m[p, q])
            strong = np.zeros((n, n), bool)
            np.put_along_axis(strong, np.argsort(-m, axis=1, kind="stable")[:, :k], True, axis=1)
            np.put_along_axis(strong, np.argsort(-m, axis=0, kind="stable")[:k, :], True, axis=0)
            strong[pos, pos] = True
            keep.append(strong[p, q])
        # sink edges (patched per pair): (1, p) -> t
        tails.append(node(1, pos))
        heads.append(np.full(n, M + 1, np.int64))
        caps.append(np.zeros(n))
        keep.append(np.ones(n, bool))
        tails_f = np.concatenate(tails)
        heads_f = np.concatenate(heads)
        caps_f = np.concatenate(caps)
        keep_f = np.concatenate(keep)
        E = len(tails_f)
        src_e = np.arange(n)
        snk_e = np.arange(E - n, E)

        # full network with explicit zero-capacity reverse edges: scipy then adds no
        # edges of its own, and its flow matrix lines up with our arrays.
        a_t = np.concatenate([tails_f, heads_f])
        a_h = np.concatenate([heads_f, tails_f])
        order, self.a_indptr, self.a_indices = _csr_from_edges(a_t, a_h, N)
        inv = np.empty_like(order)
        inv[order] = np.arange(len(order))
        self.a_tail = a_t[order]
        self.a_head = a_h[order]
        self.a_fwd = order < E
        self.a_capf = np.concatenate([caps_f, np.zeros(E)])[order]
        self.a_capi = np.floor(self.a_capf * _SCALE).astype(np.int32)
        self.a_src = inv[src_e]
        self.a_snk = inv[snk_e]
        self.a_key = self.a_tail.astype(np.int64) * N + self.a_head

        # sparsified forward network for lower bounds
        sel = np.nonzero(keep_f)[0]
        order_s, self.s_indptr, self.s_indices = _csr_from_edges(tails_f[sel], heads_f[sel], N)
        inv_s = np.empty_like(order_s)
        inv_s[order_s] = np.arange(len(order_s))
        self.s_capi = np.floor(caps_f[sel][order_s] * _SCALE).astype(np.int32)
        self.s_src = inv_s[np.arange(n)]  # source edges are the first n selected edges
        self.s_snk = inv_s[len(sel) - n + np.arange(n)]  # sink edges are the last n
        self.src_int = np.floor(layers[L - 1] * _SCALE).astype(np.int32)  # row i: source i
        self.snk_int = np.floor(layers[0] * _SCALE).astype(np.int32)  # column j: sink j
        self.G_sparse = csr_array((self.s_capi, self.s_indices, self.s_indptr), shape=(N, N))

        # cut family: upper bounds for all pairs; start with source and sink cuts
        self.ub = np.empty((n, n))
        self.ub[:] = layers[L - 1].sum(axis=1)[:, None]  # cut around the source
        np.minimum(self.ub, layers[0].sum(axis=0)[None, :], out=self.ub)  # around the sink
        self._seen: set[bytes] = set()
        self._batch: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    # -- cut family ------------------------------------------------------------

    def _cut_values(self, xm: np.ndarray) -> np.ndarray:
        """Float capacity, for every pair, of the cut whose source side in the middle is ``xm``.

        ``xm`` is ``[L-1, n]`` bool, row ``r`` = layer ``L-1-r``.
        """
        L, layers = self.L, self.layers
        x = xm.astype(np.float64)
        g = 0.0
        for r in range(L - 2):  # edges from layer L-1-r to layer L-2-r
            g += x[r] @ layers[L - 2 - r] @ (1.0 - x[r + 1])
        u = layers[L - 1] @ (1.0 - x[0])  # source edges into the sink side
        w = x[L - 2] @ layers[0]  # sink edges out of the source side
        return u[:, None] + w[None, :] + g

    def _add_cut(self, X: np.ndarray) -> None:
        xm = X[1 : self.N - 1].reshape(self.L - 1, self.n)
        key = np.packbits(xm).tobytes()
        if key in self._seen:
            return
        self._seen.add(key)
        np.minimum(self.ub, self._cut_values(xm), out=self.ub)

    # -- integer max-flows -----------------------------------------------------

    def _lower_sparse(self, i: int, j: int) -> float:
        from scipy.sparse.csgraph import maximum_flow

        G = self.G_sparse
        G.data[self.s_src] = self.src_int[i]
        G.data[self.s_snk] = self.snk_int[:, j]
        return maximum_flow(G, self.s, self.t).flow_value / _SCALE

    def _lower_batch(self, ii: np.ndarray, jj: np.ndarray) -> np.ndarray:
        """Sparse-network lower bounds for many pairs, ``_BATCH`` pairs per max-flow call.

        The pairs' networks are laid side by side (disjoint copies) between a super-source
        and a super-sink whose edges (capacity ``2**30 + 1``) never bind, so each copy
        carries its own maximum flow; it is read off the super-source's edges. This saves
        scipy's per-call overhead, which dominates on small networks.
        """
        from scipy.sparse.csgraph import maximum_flow

        P, N, E = _BATCH, self.N, len(self.s_capi)
        if self._batch is None:
            tails = np.repeat(np.arange(N), np.diff(self.s_indptr))
            heads = self.s_indices.astype(np.int64)
            off = np.arange(P) * N
            bt = np.concatenate([(tails[None, :] + off[:, None]).ravel(), np.full(P, P * N), off + N - 1])
            bh = np.concatenate([(heads[None, :] + off[:, None]).ravel(), off, np.full(P, P * N + 1)])
            self._batch = _csr_from_edges(bt, bh, P * N + 2)
        order, indptr, indices = self._batch
        out = np.empty(len(ii))
        data = np.empty(P * E + 2 * P, np.int32)
        data[P * E :] = 2**30 + 1
        blocks = data[: P * E].reshape(P, E)
        for b0 in range(0, len(ii), P):
            i_b, j_b = ii[b0 : b0 + P], jj[b0 : b0 + P]
            m = len(i_b)
            blocks[:] = self.s_capi
            blocks[:m, self.s_src] = self.src_int[i_b]
            blocks[:m, self.s_snk] = self.snk_int[:, j_b].T
            if m < P:  # unused copies carry nothing
                blocks[m:, self.s_src] = 0
            G = self._csr_array((data[order], indices, indptr), shape=(P * N + 2, P * N + 2))
            fl = maximum_flow(G, P * N, P * N + 1).flow
            lo, hi = fl.indptr[P * N], fl.indptr[P * N + 1]
            got = np.zeros(P)
            got[np.asarray(fl.indices[lo:hi]) // N] = np.asarray(fl.data[lo:hi], dtype=np.float64)
            out[b0 : b0 + m] = got[:m] / _SCALE
        return out

    def _maxflow_aug(self, capi: np.ndarray) -> tuple[int, np.ndarray]:
        """Integer max-flow on the full (augmented) network; flow aligned to our arrays."""
        from scipy.sparse.csgraph import maximum_flow

        G = self._csr_array((capi, self.a_indices, self.a_indptr), shape=(self.N, self.N))
        res = maximum_flow(G, self.s, self.t)
        fl = res.flow
        f = np.asarray(fl.data, dtype=np.int64)
        if not (
            len(f) == len(self.a_indices)
            and np.array_equal(fl.indptr, self.a_indptr)
            and np.array_equal(fl.indices, self.a_indices)
        ):  # different scipy layout: align by (tail, head) keys
            coo = fl.tocoo()
            keys = coo.row.astype(np.int64) * self.N + coo.col
            f = np.zeros(len(self.a_key), np.int64)
            f[np.searchsorted(self.a_key, keys)] = coo.data
        return int(res.flow_value), f

    def _reachable(self, mask: np.ndarray) -> np.ndarray:
        from scipy.sparse.csgraph import breadth_first_order

        counts = np.bincount(self.a_tail[mask], minlength=self.N)
        indptr = np.zeros(self.N + 1, dtype=np.int32)
        np.cumsum(counts, out=indptr[1:])
        R = self._csr_array(
            (np.ones(int(counts.sum()), np.int8), self.a_indices[mask], indptr), shape=(self.N, self.N)
        )
        X = np.zeros(self.N, bool)
        X[breadth_first_order(R, self.s, directed=True, return_predecessors=False)] = True
        return X

    def _full(self, i: int, j: int, refine_above: float) -> tuple[float, float]:
        """Solve pair (i, j) on the full network; return (upper bound, lower bound).

        A second, rescaled solve on the residual network runs when the gap after the
        first exceeds ``refine_above``.
        """
        capi = self.a_capi.copy()
        capi[self.a_src] = self.src_int[i]
        capi[self.a_snk] = self.snk_int[:, j]
        F1, f1 = self._maxflow_aug(capi)
        X = self._reachable(capi - f1 > 0)
        self._add_cut(X)
        ub = float(self.ub[i, j])
        lb = F1 / _SCALE
        if ub - lb <= refine_above:
            return ub, lb
        # stage 2: residual network of the integer flow, clipped at the gap and rescaled
        D = ub - lb
        capf = self.a_capf.copy()
        capf[self.a_src] = self.layers[self.L - 1][i]
        capf[self.a_snk] = self.layers[0][:, j]
        resid = np.clip(capf - f1 / _SCALE, 0.0, D)  # forward: c - f; reverse: f
        scale2 = _SCALE / D
        cap2 = np.floor(resid * scale2).astype(np.int32)
        F2, f2 = self._maxflow_aug(cap2)
        self._add_cut(self._reachable(cap2 - f2 > 0))
        ub = float(self.ub[i, j])
        return ub, lb + F2 / scale2

    # -- drivers ---------------------------------------------------------------

    def _solve(self, pairs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Upper estimates and gaps (value - lower bound) for each pair."""
        if self.trivial:
            return self.layers[0][pairs[:, 0], pairs[:, 1]].copy(), np.zeros(len(pairs))
        val = np.empty(len(pairs))
        gap = np.empty(len(pairs))
        lbs = self._lower_batch(pairs[:, 0], pairs[:, 1])
        for k, (i, j) in enumerate(pairs):
            i, j = int(i), int(j)
            lb = float(lbs[k])
            ub = float(self.ub[i, j])
            if ub - lb > _PAIR_TOL:
                ub, lb = self._full(i, j, refine_above=_PAIR_TOL)
            val[k] = ub
            gap[k] = max(ub - lb, 0.0)
        # upper bounds found later in the loop may be tighter for earlier pairs
        val = np.minimum(val, self.ub[pairs[:, 0], pairs[:, 1]])
        return val, gap

    def _refine(self, i: int, j: int) -> tuple[float, float]:
        if self.trivial:
            return float(self.layers[0][i, j]), 0.0
        ub, lb = self._full(i, j, refine_above=0.0)
        return ub, max(ub - lb, 0.0)

    def values(self, pairs: np.ndarray, tol: float) -> np.ndarray:
        val, gap = self._solve(pairs)
        for k in np.nonzero(gap > tol)[0]:
            val[k], gap[k] = self._refine(int(pairs[k, 0]), int(pairs[k, 1]))
        return val

    def normalised_rows(self, rows: np.ndarray, tol: float) -> np.ndarray:
        n = self.n
        grid = np.stack(np.meshgrid(rows, np.arange(n), indexing="ij"), -1).reshape(-1, 2)
        val, gap = self._solve(grid)
        val = val.reshape(len(rows), n)
        gap = gap.reshape(len(rows), n)
        for r, i in enumerate(rows):
            if _row_bound(val[r], gap[r]) <= tol:
                continue
            for j in np.nonzero(gap[r] > 0)[0]:
                val[r, j], gap[r, j] = self._refine(int(i), int(j))
        return val / val.sum(axis=1, keepdims=True)


def _row_bound(v: np.ndarray, g: np.ndarray) -> float:
    """Bound on |v/sum(v) - v_true/sum(v_true)| given v - g <= v_true <= v.

    With e = v - v_true in [0, g], E = sum(e) <= G = sum(g), Σ = sum(v):
    v/Σ - v_true/Σ_true = (e_j Σ_true - v_true_j E) / (Σ_true Σ), bounded by
    max(g_j / Σ, v_j G / ((Σ - G) Σ)).
    """
    total = float(v.sum())
    G = float(g.sum())
    if G == 0.0:
        return 0.0
    if total - G <= 0:
        return float("inf")
    return max(float(g.max()) / total, float(v.max()) * G / ((total - G) * total))
