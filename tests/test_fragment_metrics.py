"""Fragmentation metrics on constructed attention where the answer is known."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.stats import kendalltau, spearmanr

from headscope.errors import ShapeError
from headscope.fragment.agreement import agreement_matrix, best_head_stability, row_kendall
from headscope.fragment.disagreement import (
    effective_maps,
    js_divergence,
    pairwise_js,
    pairwise_rank_correlation,
)
from headscope.fragment.taxonomy import classify_head, classify_heads, head_profile, sink_positions


def random_maps(rng, n, q, k):
    m = rng.random((n, q, k)) ** 3
    return m / m.sum(-1, keepdims=True)


def test_identical_heads_one_map_zero_divergence():
    rng = np.random.default_rng(0)
    one = random_maps(rng, 1, 5, 5)
    maps = np.repeat(one, 6, axis=0)
    js = pairwise_js(maps)
    assert np.allclose(js, 0)
    assert effective_maps(1 - js) == pytest.approx(1.0, abs=1e-9)
    assert np.allclose(pairwise_rank_correlation(maps), 1)


def test_disjoint_one_hot_heads_maximal_divergence():
    n = 4  # head h puts all mass on key h, for every query
    maps = np.zeros((n, 3, n))
    for h in range(n):
        maps[h, :, h] = 1
    js = pairwise_js(maps)
    assert np.allclose(js[~np.eye(n, dtype=bool)], 1.0) and np.allclose(np.diag(js), 0)
    assert effective_maps(1 - js) == pytest.approx(n, abs=1e-9)


def test_effective_maps_counts_duplicate_groups():
    a = np.zeros((1, 2, 2)); a[0, :, 0] = 1
    b = np.zeros((1, 2, 2)); b[0, :, 1] = 1
    maps = np.concatenate([a, a, b, b])  # two groups of two identical heads
    assert effective_maps(1 - pairwise_js(maps)) == pytest.approx(2.0, abs=1e-9)


def test_js_against_direct_formula():
    rng = np.random.default_rng(1)
    p, q = rng.dirichlet(np.ones(6)), rng.dirichlet(np.ones(6))
    m = (p + q) / 2
    direct = 0.5 * np.sum(p * np.log2(p / m)) + 0.5 * np.sum(q * np.log2(q / m))
    assert js_divergence(p, q) == pytest.approx(direct, abs=1e-12)
    assert js_divergence(p, p) == pytest.approx(0.0, abs=1e-12)


def test_rank_correlations_against_scipy():
    rng = np.random.default_rng(2)
    maps = random_maps(rng, 3, 4, 6)
    sp = pairwise_rank_correlation(maps, "spearman")
    kd = pairwise_rank_correlation(maps, "kendall")
    for a, b in itertools.combinations(range(3), 2):
        assert sp[a, b] == pytest.approx(np.mean([spearmanr(maps[a, r], maps[b, r]).statistic for r in range(4)]))
        assert kd[a, b] == pytest.approx(np.mean([kendalltau(maps[a, r], maps[b, r]).statistic for r in range(4)]))


def test_taxonomy_constructed_heads():
    n = 5
    tokens = ["▁a", "▁man", "▁in", "▁red", "</s>"]
    diag = np.eye(n)
    prev = np.eye(n, k=-1); prev[0, 0] = 1
    nxt = np.eye(n, k=1); nxt[-1, -1] = 1
    eos = np.zeros((n, n)); eos[:, -1] = 1
    uniform = np.full((n, n), 1 / n)
    sinks = sink_positions(tokens)
    assert sinks.tolist() == [False, False, False, False, True]
    assert classify_head(diag, "encoder", sinks) == "diagonal"
    assert classify_head(prev, "encoder", sinks) == "previous"
    assert classify_head(nxt, "encoder", sinks) == "next"
    assert classify_head(eos, "encoder", sinks) == "sink"
    assert classify_head(uniform, "encoder", sinks) == "broad"
    focused = np.zeros((n, n)); focused[:, 2] = 1  # everyone looks at "in"
    assert classify_head(focused, "encoder", sinks) == "focused"
    cross = np.zeros((3, n)); cross[0, 3] = cross[1, 1] = cross[2, 0] = 1  # crossing alignment
    assert classify_head(cross, "cross", sinks) == "alignment-like"
    assert head_profile(eos, sinks)["sink"] == 1.0


def test_classify_heads_shares_and_sink_mass():
    n = 5
    att = np.stack([np.stack([np.eye(n), np.full((n, n), 1 / n)])])  # [1 layer, 2 heads]
    labels, sink, shares = classify_heads(att, "encoder", key_tokens=["[CLS]", "a", "b", "c", "d"])
    assert labels.tolist() == [["diagonal", "broad"]]
    assert sink[0, 0] == pytest.approx(0.2) and sink[0, 1] == pytest.approx(0.2)
    assert shares == {"diagonal": 0.5, "broad": 0.5}


def kendall_brute(x, y):
    """τ-b by counting pairs."""
    conc = disc = tx = ty = 0
    for i, j in itertools.combinations(range(len(x)), 2):
        dx, dy = np.sign(x[i] - x[j]), np.sign(y[i] - y[j])
        if dx == 0 and dy == 0:
            continue
        if dx == 0:
            tx += 1
        elif dy == 0:
            ty += 1
        elif dx == dy:
            conc += 1
        else:
            disc += 1
    return (conc - disc) / np.sqrt((conc + disc + tx) * (conc + disc + ty))


def test_row_kendall_against_brute_force():
    rng = np.random.default_rng(3)
    a = rng.integers(0, 4, (3, 7)).astype(float)  # ties on purpose
    b = rng.integers(0, 4, (3, 7)).astype(float)
    assert row_kendall(a, b) == pytest.approx(np.mean([kendall_brute(a[r], b[r]) for r in range(3)]))
    names, tau = agreement_matrix({"a": a, "b": b, "a2": a * 2})
    assert names == ["a", "b", "a2"] and tau[0, 2] == pytest.approx(1.0) and np.allclose(tau, tau.T)


def test_best_head_stability():
    aer = np.array([[[0.1, 0.5], [0.3, 0.3]],
                    [[0.4, 0.2], [0.2, 0.6]],
                    [[0.3, 0.3], [0.3, 0.3]]])  # a four-way tie
    share, spread = best_head_stability(aer)
    assert share.sum() == pytest.approx(1.0)
    assert share[0, 0] == pytest.approx((1 + 0.25) / 3)
    assert share[0, 1] == pytest.approx((0.5 + 0.25) / 3)
    assert share[1, 0] == pytest.approx((0.5 + 0.25) / 3)
    assert spread.tolist() == pytest.approx([0.4, 0.4, 0.0])


def test_bad_shapes():
    with pytest.raises(ShapeError):
        pairwise_js(np.ones((2, 2, 2, 2, 2)))
    with pytest.raises(ShapeError):
        row_kendall(np.ones(3), np.ones(4))
    with pytest.raises(ShapeError):
        effective_maps(np.ones((2, 3)))
