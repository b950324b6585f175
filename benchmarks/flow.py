"""Attention flow: headscope.flow vs the reference algorithm (Abnar & Zuidema 2020).

The reference algorithm is implemented here on its own: the layered graph as a networkx
DiGraph with float capacities A' = 0.5 * mean_heads(A) + 0.5 * I, and one
``networkx.maximum_flow_value(G, (L, i), (0, j), flow_func=edmonds_karp)`` per
(output, input) pair, rows normalised. Inputs: random softmax attention, 12 heads.

Prints, per size: reference time (one run: it is slow), headscope time (best of
``--repeats``), the ratio, and the max abs difference of the normalised maps. The
reference is skipped above ``--max-ref-n`` (default 24; at 64 tokens it would take hours).

    python benchmarks/flow.py              # 12 layers, n = 8, 16, 24, 64 (~3 min)
    python benchmarks/flow.py --quick      # 12 layers, n = 8, 16; 64 without reference
    python benchmarks/flow.py --kind causal --sizes 16 32
"""

from __future__ import annotations

import argparse
import time

import networkx as nx
import numpy as np
from networkx.algorithms.flow import edmonds_karp

from headscope.aggregate import flow, rollout


def random_attention(layers: int, heads: int, n: int, kind: str, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    temp = 2.0 if kind == "random" else 6.0
    x = rng.normal(size=(layers, heads, n, n)) * temp
    if kind == "causal":  # peaked, lower-triangular: nontrivial minimum cuts
        x = np.where(np.tril(np.ones((n, n), bool)), x, -np.inf)
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def reference_flow(att: np.ndarray) -> np.ndarray:
    """The reference algorithm, written out: networkx Edmonds-Karp per pair, float capacities."""
    L, _, n, _ = att.shape
    G = nx.DiGraph()
    for layer in range(1, L + 1):
        a = 0.5 * att[layer - 1].mean(0) + 0.5 * np.eye(n)
        a = a / a.sum(-1, keepdims=True)
        for i in range(n):
            for j in range(n):
                if a[i, j] > 0:
                    G.add_edge((layer, i), (layer - 1, j), capacity=float(a[i, j]))
    out = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            out[i, j] = nx.maximum_flow_value(G, (L, i), (0, j), capacity="capacity", flow_func=edmonds_karp)
    return out / out.sum(1, keepdims=True)


def best_of(fn, repeats: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="n = 8, 16 (reference) and 64 (headscope only)")
    ap.add_argument("--sizes", type=int, nargs="+", default=None)
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--heads", type=int, default=12)
    ap.add_argument("--kind", choices=["random", "causal"], default="random")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--max-ref-n", type=int, default=24, help="skip the reference above this many tokens")
    args = ap.parse_args()
    sizes = args.sizes or ([8, 16, 64] if args.quick else [8, 16, 24, 64])
    max_ref = min(args.max_ref_n, 16) if args.quick else args.max_ref_n

    print(f"attention flow, {args.layers} layers x {args.heads} heads, {args.kind} attention, all n*n pairs")
    print(f"{'n':>4} {'reference s':>12} {'headscope s':>12} {'ratio':>9} {'max abs diff':>13}")
    for n in sizes:
        att = random_attention(args.layers, args.heads, n, args.kind)
        ours, got = best_of(lambda: flow(att), args.repeats)
        if n <= max_ref:
            t = time.perf_counter()
            ref = reference_flow(att)
            t_ref = time.perf_counter() - t
            diff = float(np.abs(got - ref).max())
            print(f"{n:>4} {t_ref:>12.2f} {ours:>12.3f} {t_ref / ours:>8.0f}x {diff:>13.1e}")
        else:
            print(f"{n:>4} {'skipped':>12} {ours:>12.3f} {'-':>9} {'-':>13}")
    n = sizes[-1]
    att = random_attention(args.layers, args.heads, n, args.kind)
    t_roll, _ = best_of(lambda: rollout(att), args.repeats)
    print(f"rollout, n = {n}: {t_roll * 1e3:.2f} ms")


if __name__ == "__main__":
    main()
