"""Tests for attention rollout, attention flow and the attention graph (issue 4).

The flow reference here is written independently of headscope: the layered graph is
built with explicit loops and solved with one networkx Edmonds-Karp max-flow per
(output, input) pair on float capacities, as the issue defines it.
"""

from __future__ import annotations

import itertools

import networkx as nx
import numpy as np
import pytest
from networkx.algorithms.flow import edmonds_karp

from headscope.aggregate import attention_graph, encoder_decoder_rollout, flow, rollout
from headscope.aggregate.flow import _FlowSolver, _row_bound
from headscope.aggregate.rollout import fuse_layers
from headscope.errors import HeadscopeError, InputError, ShapeError

# ----------------------------------------------------------------------------
# helpers: random attention and independent brute-force references
# ----------------------------------------------------------------------------


def random_att(L, H, n, seed=0, temp=2.0, causal=False, m=None):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(L, H, n, m or n)) * temp
    if causal:
        x = np.where(np.tril(np.ones((n, m or n), bool)), x, -np.inf)
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def brute_layers(att, residual=0.5, fusion="mean"):
    """Per-layer A' with explicit loops (no discard)."""
    L, H, n, _ = att.shape
    out = np.zeros((L, n, n))
    for layer in range(L):
        for i in range(n):
            row = [0.0] * n
            for j in range(n):
                vals = [att[layer, h, i, j] for h in range(H)]
                row[j] = {"mean": sum(vals) / H, "max": max(vals), "min": min(vals)}[fusion]
            s = sum(row)
            row = [v / s if s > 0 else 0.0 for v in row]
            row = [(1 - residual) * row[j] + (residual if i == j else 0.0) for j in range(n)]
            s = sum(row)
            if s == 0:
                row[i], s = 1.0, 1.0
            out[layer, i] = [v / s for v in row]
    return out


def brute_rollout(att, residual=0.5, fusion="mean"):
    A = brute_layers(att, residual, fusion)
    L, n, _ = A.shape
    R = [[float(i == j) for j in range(n)] for i in range(n)]
    for layer in range(L):  # R <- A'_layer @ R, explicit triple loop
        R = [[sum(A[layer, i, k] * R[k][j] for k in range(n)) for j in range(n)] for i in range(n)]
    return np.array(R)


def ref_graph(A):
    L, n, _ = A.shape
    G = nx.DiGraph()
    for layer in range(L + 1):
        for p in range(n):
            G.add_node((layer, p))
    for layer in range(1, L + 1):
        for i in range(n):
            for j in range(n):
                if A[layer - 1, i, j] > 0:
                    G.add_edge((layer, i), (layer - 1, j), capacity=float(A[layer - 1, i, j]))
    return G


def ref_flow_raw(A):
    """Reference: one Edmonds-Karp max-flow per pair on the float-capacity graph."""
    L, n, _ = A.shape
    G = ref_graph(A)
    out = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            out[i, j] = nx.maximum_flow_value(G, (L, i), (0, j), capacity="capacity", flow_func=edmonds_karp)
    return out


def ref_flow(att, residual=0.5, fusion="mean"):
    raw = ref_flow_raw(brute_layers(att, residual, fusion))
    return raw / raw.sum(1, keepdims=True)


# ----------------------------------------------------------------------------
# flow equals the reference algorithm
# ----------------------------------------------------------------------------

FLOW_CASES = [
    # (layers, heads, n, seed, temp, causal, residual, fusion)
    (1, 2, 5, 0, 2.0, False, 0.5, "mean"),
    (2, 3, 6, 1, 2.0, False, 0.5, "mean"),
    (3, 2, 7, 2, 4.0, True, 0.5, "mean"),
    (4, 4, 8, 3, 6.0, False, 0.5, "max"),
    (5, 2, 6, 4, 8.0, True, 0.2, "mean"),
    (6, 3, 5, 5, 3.0, False, 0.0, "min"),
    (8, 2, 6, 6, 10.0, True, 0.0, "mean"),
    (12, 2, 6, 7, 2.0, False, 0.5, "mean"),
    (12, 4, 7, 8, 6.0, True, 0.5, "mean"),
]


@pytest.mark.parametrize("L,H,n,seed,temp,causal,residual,fusion", FLOW_CASES)
def test_flow_matches_reference(L, H, n, seed, temp, causal, residual, fusion):
    att = random_att(L, H, n, seed, temp, causal)
    fast = flow(att, residual=residual, head_fusion=fusion)
    ref = ref_flow(att, residual, fusion)
    assert fast.shape == (n, n) and fast.dtype == np.float64
    np.testing.assert_allclose(fast, ref, atol=1e-8, rtol=0)


def test_flow_method_reference_and_graph_agree():
    att = random_att(3, 2, 5, seed=11, temp=4.0, causal=True)
    np.testing.assert_allclose(flow(att, method="reference"), ref_flow(att), atol=1e-12, rtol=0)
    G = attention_graph(att)
    np.testing.assert_allclose(
        nx.maximum_flow_value(G, (3, 4), (0, 1), capacity="capacity"),
        ref_flow_raw(brute_layers(att))[4, 1],
        atol=1e-12,
    )


def test_flow_raw_pairs_match_float_reference():
    """Raw (unnormalised) values: the integer-scaled path stays within tol of the float result."""
    att = random_att(6, 2, 7, seed=12, temp=7.0, causal=True)
    A = brute_layers(att)
    ref = ref_flow_raw(A)
    pairs = list(itertools.product(range(7), range(7)))
    got = flow(att, pairs=pairs, tol=1e-10)
    np.testing.assert_allclose(got, ref.ravel(), atol=1e-10, rtol=0)
    sub = flow(att, pairs=[(6, 0), (3, 3)])
    np.testing.assert_allclose(sub, [ref[6, 0], ref[3, 3]], atol=1e-8, rtol=0)


def test_flow_rows_subset():
    att = random_att(4, 2, 6, seed=13, temp=5.0)
    full = flow(att)
    np.testing.assert_allclose(flow(att, rows=[0, 4]), full[[0, 4]], atol=1e-12)


@pytest.mark.parametrize("seed", [21, 22, 23])
def test_integer_bounds_bracket_the_exact_float_value(seed):
    """Certificate: lower bound <= exact float max-flow <= upper bound, at every stage.

    The lower bound is an integer flow on capacities floor(c * 2**30) (feasible for the
    true capacities); the upper bound is the exact float capacity of a real cut. After
    the rescaled second stage the bracket is tighter than 1e-12.
    """
    att = random_att(5, 2, 6, seed=seed, temp=8.0, causal=bool(seed % 2))
    A = fuse_layers(att)
    ref = ref_flow_raw(A)
    solver = _FlowSolver(A)
    for i, j in itertools.product(range(6), range(6)):
        lb_sparse = solver._lower_sparse(i, j)
        assert lb_sparse <= ref[i, j] + 1e-12
        ub1, lb1 = solver._full(i, j, refine_above=np.inf)  # first stage only
        assert lb1 - 1e-12 <= ref[i, j] <= ub1 + 1e-12
        assert ub1 - lb1 <= 6 * 6 * 6 / 2**30  # at most one rounding unit per edge
        ub2, lb2 = solver._full(i, j, refine_above=0.0)  # with the rescaled second stage
        assert lb2 - 1e-12 <= ref[i, j] <= ub2 + 1e-12
        assert ub2 - lb2 < 1e-12


def test_batched_lower_bounds_equal_single_solves():
    att = random_att(4, 2, 7, seed=24, temp=6.0, causal=True)
    solver = _FlowSolver(fuse_layers(att))
    pairs = np.array(list(itertools.product(range(7), range(7))))  # 49: one full and one partial batch
    batched = solver._lower_batch(pairs[:, 0], pairs[:, 1])
    single = [solver._lower_sparse(int(i), int(j)) for i, j in pairs]
    np.testing.assert_array_equal(batched, single)


def test_row_bound_is_a_bound():
    rng = np.random.default_rng(0)
    for _ in range(200):
        true = rng.uniform(0.01, 1.0, size=8)
        g = rng.uniform(0, 1e-3, size=8)
        v = true + rng.uniform(0, 1, size=8) * g  # v - g <= true <= v
        err = np.abs(v / v.sum() - true / true.sum()).max()
        assert err <= _row_bound(v, g) + 1e-15


# ----------------------------------------------------------------------------
# rollout equals a brute-force computation
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("fusion", ["mean", "max", "min"])
@pytest.mark.parametrize("residual", [0.0, 0.3, 0.5, 1.0])
def test_rollout_matches_brute_force(fusion, residual):
    att = random_att(4, 3, 6, seed=31, temp=3.0)
    np.testing.assert_allclose(
        rollout(att, residual=residual, head_fusion=fusion),
        brute_rollout(att, residual, fusion),
        atol=1e-12,
    )


def test_rollout_is_the_plain_matrix_product():
    att = random_att(5, 2, 7, seed=32)
    A = [0.5 * att[layer].mean(0) + 0.5 * np.eye(7) for layer in range(5)]
    expected = A[4] @ A[3] @ A[2] @ A[1] @ A[0]
    np.testing.assert_allclose(rollout(att), expected, atol=1e-12)


# ----------------------------------------------------------------------------
# properties
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [41, 42])
def test_rows_non_negative_and_sum_to_one(seed):
    att = random_att(6, 2, 7, seed=seed, temp=5.0, causal=seed == 42)
    for out in (rollout(att), flow(att), rollout(att, head_fusion="max", discard_ratio=0.5)):
        assert (out >= 0).all()
        np.testing.assert_allclose(out.sum(1), 1.0, atol=1e-12)


@pytest.mark.parametrize("residual", [0.0, 0.5, 1.0])
def test_identity_attention_gives_identity(residual):
    att = np.broadcast_to(np.eye(5), (4, 2, 5, 5)).copy()
    np.testing.assert_allclose(rollout(att, residual=residual), np.eye(5), atol=1e-15)
    np.testing.assert_allclose(flow(att, residual=residual), np.eye(5), atol=1e-15)


@pytest.mark.parametrize("residual", [0.0, 0.25, 0.5, 0.9])
def test_one_layer_rollout_and_flow_equal_residual_matrix(residual):
    att = random_att(1, 3, 6, seed=43)
    A = att[0].mean(0)
    expected = (1 - residual) * A + residual * np.eye(6)
    expected /= expected.sum(1, keepdims=True)
    np.testing.assert_allclose(rollout(att, residual=residual), expected, atol=1e-12)
    np.testing.assert_allclose(flow(att, residual=residual), expected, atol=1e-12)


def cut_capacity(A, i, source_side):
    """Capacity of the cut (S, T) in the graph for source (L, i), by explicit edge loop."""
    L, n, _ = A.shape
    total = 0.0
    for layer in range(1, L + 1):
        for a in range(n):
            for b in range(n):
                if (layer, a) in source_side and (layer - 1, b) not in source_side:
                    total += A[layer - 1, a, b]
    return total


def test_flow_never_exceeds_any_cut():
    L, n = 4, 5
    att = random_att(L, 2, n, seed=44, temp=5.0, causal=True)
    A = fuse_layers(att)
    raw = flow(att, pairs=list(itertools.product(range(n), range(n))), tol=1e-12).reshape(n, n)
    rng = np.random.default_rng(0)
    for i, j in itertools.product(range(n), range(n)):
        src = (L, i)
        cuts = [
            {src},  # around the source
            {src} | {(layer, p) for layer in range(1, L) for p in range(n)},  # around the sink
        ]
        for layer in range(1, L):  # everything above a whole layer boundary
            cuts.append({src} | {(m, p) for m in range(layer, L) for p in range(n)})
        for _ in range(20):  # random middle subsets
            cuts.append({src} | {(m, p) for m in range(1, L) for p in range(n) if rng.random() < 0.5})
        for S in cuts:
            assert raw[i, j] <= cut_capacity(A, i, S) + 1e-12
        assert raw[i, j] <= 1.0 + 1e-12
        assert raw[i, j] <= A[0, :, j].sum() + 1e-12


def test_flow_at_least_rollout():
    """Rollout routes one unit proportionally: a feasible flow, so raw flow >= rollout."""
    att = random_att(5, 2, 6, seed=45, temp=4.0)
    raw = flow(att, pairs=list(itertools.product(range(6), range(6)))).reshape(6, 6)
    assert (raw >= rollout(att) - 1e-12).all()


def test_head_fusion_max_min():
    att = random_att(3, 4, 5, seed=46, temp=3.0)
    for fusion in ("max", "min"):
        A = brute_layers(att, 0.5, fusion)
        np.testing.assert_allclose(fuse_layers(att, head_fusion=fusion), A, atol=1e-12)
        np.testing.assert_allclose(rollout(att, head_fusion=fusion), brute_rollout(att, 0.5, fusion), atol=1e-12)
    assert not np.allclose(rollout(att, head_fusion="max"), rollout(att, head_fusion="min"))


@pytest.mark.parametrize("ratio", [0.1, 0.5, 0.9, 0.99])
def test_discard_ratio_keeps_rows_normalised_and_diagonal(ratio):
    n = 10
    att = random_att(3, 2, n, seed=47)
    A = fuse_layers(att, residual=0.0, discard_ratio=ratio)
    k = min(int(ratio * n), n - 1)
    assert ((A == 0).sum(-1) == k).all()  # exactly k weights dropped per row
    assert (np.diagonal(A, axis1=1, axis2=2) > 0).all()  # never the diagonal
    np.testing.assert_allclose(A.sum(-1), 1.0, atol=1e-12)
    # the kept weights are the largest off-diagonal ones of the fused row
    fused = att.mean(1)
    for layer in range(3):
        for i in range(n):
            off = [j for j in range(n) if j != i]
            dropped = [j for j in off if A[layer, i, j] == 0]
            kept = [j for j in off if A[layer, i, j] > 0]
            if dropped and kept:
                assert max(fused[layer, i, dropped]) <= min(fused[layer, i, kept])
    for out in (rollout(att, discard_ratio=ratio), flow(att, discard_ratio=ratio)):
        np.testing.assert_allclose(out.sum(1), 1.0, atol=1e-12)


def test_torch_and_numpy_agree():
    torch = pytest.importorskip("torch")
    att = random_att(4, 2, 6, seed=48, temp=3.0)
    t = torch.tensor(att, dtype=torch.float32)
    a32 = t.numpy().astype(np.float64)
    np.testing.assert_allclose(rollout(t), rollout(a32), atol=1e-15)
    np.testing.assert_allclose(flow(t), flow(a32), atol=1e-15)
    assert isinstance(rollout(t), np.ndarray) and rollout(t).dtype == np.float64
    t64 = torch.tensor(att, dtype=torch.float64, requires_grad=True)
    np.testing.assert_allclose(flow(t64), flow(att), atol=1e-15)
    enc, dec, crs = random_att(2, 2, 4, 1), random_att(2, 2, 3, 2), random_att(2, 2, 3, 3, m=4)
    np.testing.assert_allclose(
        encoder_decoder_rollout(torch.tensor(enc), torch.tensor(dec), torch.tensor(crs)),
        encoder_decoder_rollout(enc, dec, crs),
        atol=1e-15,
    )


# ----------------------------------------------------------------------------
# attention graph
# ----------------------------------------------------------------------------


def test_attention_graph_structure():
    att = random_att(3, 2, 4, seed=51, causal=True)
    A = fuse_layers(att)
    G = attention_graph(att)
    assert isinstance(G, nx.DiGraph)
    assert set(G.nodes) == {(layer, p) for layer in range(4) for p in range(4)}
    for layer in range(1, 4):
        for i in range(4):
            for j in range(4):
                if A[layer - 1, i, j] > 0:
                    assert G.edges[(layer, i), (layer - 1, j)]["capacity"] == pytest.approx(A[layer - 1, i, j], abs=0)
                else:
                    assert not G.has_edge((layer, i), (layer - 1, j))
    assert all(u[0] == v[0] + 1 for u, v in G.edges)  # edges only go one layer down
    assert G.nodes[(2, 1)] == {"layer": 2, "position": 1}


# ----------------------------------------------------------------------------
# encoder-decoder rollout
# ----------------------------------------------------------------------------


def eye_att(L, H, n):
    return np.broadcast_to(np.eye(n), (L, H, n, n)).copy()


def test_encdec_identity_self_attention_one_layer_is_fused_cross():
    crs = random_att(1, 3, 3, seed=61, m=5)
    out = encoder_decoder_rollout(eye_att(2, 2, 5), eye_att(1, 2, 3), crs)
    expected = crs[0].mean(0)
    np.testing.assert_allclose(out, expected / expected.sum(1, keepdims=True), atol=1e-12)


@pytest.mark.parametrize("residual", [0.5, 0.25])
def test_encdec_identity_self_attention_many_layers(residual):
    crs = random_att(3, 2, 3, seed=62, m=4)
    out = encoder_decoder_rollout(eye_att(2, 2, 4), eye_att(3, 2, 3), crs, residual=residual)
    w = (1 - residual) / residual
    fused = crs.mean(1)
    expected = sum((1 + w) ** (2 - layer) * fused[layer] for layer in range(3))
    np.testing.assert_allclose(out, expected / expected.sum(1, keepdims=True), atol=1e-12)


def test_encdec_one_layer_by_hand():
    # encoder (S=2): one head [[1, 0], [0.5, 0.5]]
    #   R_ss = I + A = [[2, 0], [0.5, 1.5]]; R_ss - I = [[1, 0], [0.5, 0.5]] (rows already sum to 1)
    #   R̄_ss = [[2, 0], [0.5, 1.5]]
    # decoder (T=2): one head [[1, 0], [0.5, 0.5]] -> R_tt = [[2, 0], [0.5, 1.5]], R̄_tt the same
    # cross: [[0, 1], [1, 0]]
    #   R̄_ttᵀ @ cross = [[2, 0.5], [0, 1.5]] @ [[0, 1], [1, 0]] = [[0.5, 2], [1.5, 0]]
    #   ... @ R̄_ss = [[0.5*2 + 2*0.5, 2*1.5], [1.5*2, 0]] = [[2, 3], [3, 0]]
    #   rows normalised: [[0.4, 0.6], [1, 0]]
    enc = np.array([[[[1.0, 0.0], [0.5, 0.5]]]])
    dec = np.array([[[[1.0, 0.0], [0.5, 0.5]]]])
    crs = np.array([[[[0.0, 1.0], [1.0, 0.0]]]])
    np.testing.assert_allclose(encoder_decoder_rollout(enc, dec, crs), [[0.4, 0.6], [1.0, 0.0]], atol=1e-12)


def test_encdec_rows_normalised_and_shape():
    enc, dec, crs = random_att(3, 2, 6, 71), random_att(2, 2, 4, 72, causal=True), random_att(2, 2, 4, 73, m=6)
    out = encoder_decoder_rollout(enc, dec, crs, head_fusion="max")
    assert out.shape == (4, 6) and (out >= 0).all()
    np.testing.assert_allclose(out.sum(1), 1.0, atol=1e-12)


# ----------------------------------------------------------------------------
# bad input
# ----------------------------------------------------------------------------

GOOD = random_att(2, 2, 3, seed=81)


@pytest.mark.parametrize(
    "att,kwargs,exc,words",
    [
        (GOOD[0], {}, ShapeError, "4 dims"),
        (GOOD[None], {}, ShapeError, "batch"),
        (random_att(2, 2, 3, m=4), {}, ShapeError, "square"),
        (np.where(GOOD > 0.3, -GOOD, GOOD), {}, ShapeError, "negative"),
        (np.where(GOOD > 0.3, np.nan, GOOD), {}, ShapeError, "NaN"),
        (np.where(GOOD > 0.3, np.inf, GOOD), {}, ShapeError, "infinite"),
        (np.zeros((2, 0, 3, 3)), {}, ShapeError, "empty"),
        (GOOD, {"head_fusion": "median"}, InputError, "head_fusion"),
        (GOOD, {"residual": 1.5}, InputError, "[0, 1]"),
        (GOOD, {"residual": -0.1}, InputError, "[0, 1]"),
        (GOOD, {"discard_ratio": 1.0}, InputError, "discard_ratio"),
        ("not an array", {}, ShapeError, "numeric"),
    ],
)
def test_bad_input(att, kwargs, exc, words):
    for fn in (rollout, flow, attention_graph):
        with pytest.raises(exc, match=None) as info:
            fn(att, **kwargs)
        assert isinstance(info.value, HeadscopeError) and isinstance(info.value, ValueError)
        assert words in str(info.value)


def test_bad_flow_arguments():
    with pytest.raises(InputError, match="method"):
        flow(GOOD, method="magic")
    with pytest.raises(InputError, match="outside"):
        flow(GOOD, pairs=[(0, 3)])
    with pytest.raises(InputError, match="outside"):
        flow(GOOD, rows=[-1])
    with pytest.raises(InputError, match="not both"):
        flow(GOOD, pairs=[(0, 0)], rows=[0])
    with pytest.raises(InputError, match="tol"):
        flow(GOOD, tol=0)


def test_bad_encdec_arguments():
    enc, dec = random_att(2, 2, 4, 1), random_att(2, 2, 3, 2)
    with pytest.raises(ShapeError, match="T, S"):
        encoder_decoder_rollout(enc, dec, random_att(2, 2, 4, 3, m=3))
    with pytest.raises(ShapeError, match="layers"):
        encoder_decoder_rollout(enc, dec, random_att(1, 2, 3, 3, m=4))
    with pytest.raises(InputError, match="residual"):
        encoder_decoder_rollout(enc, dec, random_att(2, 2, 3, 3, m=4), residual=0.0)
