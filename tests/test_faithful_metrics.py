"""Metrics against independent computations: brute-force Kendall tau-b, hand-worked erasure and AOPC."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from conftest import TEXTS
from faithful_helpers import one_thread  # noqa: F401

import headscope
from headscope.errors import InputError
from headscope.faithful import (
    decision_functions,
    eraser_aopc,
    erasure_flip,
    kendall_tau,
    kendall_tau_rows,
    tau_summary,
    top_k_count,
)
from headscope.faithful._common import as_examples


def brute_tau_b(x, y):
    concordant = discordant = ties_x = ties_y = 0
    for i, j in itertools.combinations(range(len(x)), 2):
        dx, dy = np.sign(x[i] - x[j]), np.sign(y[i] - y[j])
        if dx == 0 and dy == 0:
            continue
        if dx == 0:
            ties_x += 1
        elif dy == 0:
            ties_y += 1
        elif dx == dy:
            concordant += 1
        else:
            discordant += 1
    return (concordant - discordant) / math.sqrt((concordant + discordant + ties_x) * (concordant + discordant + ties_y))


def test_kendall_matches_brute_force_with_ties():
    rng = np.random.default_rng(0)
    for n in range(2, 9):
        for _ in range(20):
            x, y = rng.integers(0, 4, n).astype(float), rng.integers(0, 4, n).astype(float)
            if len(set(x)) < 2 or len(set(y)) < 2:
                assert math.isnan(kendall_tau(x, y))
                continue
            assert kendall_tau(x, y) == pytest.approx(brute_tau_b(x, y), abs=1e-12)


def test_kendall_mask_rows_and_summary():
    assert kendall_tau([0, 1, 2, 9], [0, 1, 2, -9], mask=[True, True, True, False]) == pytest.approx(1.0)
    rows = kendall_tau_rows([[1, 2, 3], [3, 2, 1]], [[1, 2, 3], [1, 2, 3]])
    np.testing.assert_allclose(rows, [1.0, -1.0])
    s = tau_summary([1.0, -1.0, 0.5, float("nan")])
    assert s["n"] == 3 and s["nan"] == 1 and s["mean"] == pytest.approx(1 / 6) and s["frac_below_0"] == pytest.approx(1 / 3)
    with pytest.raises(InputError, match="same length"):
        kendall_tau([1, 2], [1, 2, 3])


def test_erasure_flip_hand_worked():
    # decision 1 while token 2 is present or tokens 0 and 3 are both present
    def predict(erase):
        return (~erase[:, 2] | (~erase[:, 0] & ~erase[:, 3])).astype(int)

    r = erasure_flip(predict, [0.4, 0.1, 0.9, 0.3])  # order 2, 0, 3, 1: flips after erasing 2 and 0
    assert (r.n_erased, r.n_erasable, r.flipped, r.fraction) == (2, 4, True, 0.5)
    r = erasure_flip(predict, [0.4, 0.1, 0.9, 0.3], erasable=[False, True, True, True])  # 2, 3
    assert (r.n_erased, r.n_erasable) == (2, 3)
    for k in range(1, 13):  # flips after exactly k erasures, across the doubling blocks
        assert erasure_flip(lambda e: (e.sum(1) >= k).astype(int), np.arange(12.0)).n_erased == k
    never = erasure_flip(lambda e: np.zeros(len(e)), [1, 2, 3])
    assert not never.flipped and never.fraction == 1.0


def test_eraser_aopc_hand_worked():
    assert [top_k_count(10, p) for p in (1, 5, 10, 20, 50)] == [1, 1, 1, 2, 5]
    prob = lambda erase: 0.9 - 0.4 * erase[:, 1] - 0.2 * erase[:, 3] - 0.1 * erase[:, 0]
    out = eraser_aopc(prob, [0.2, 0.9, 0.0, 0.5], bins=(25, 50, 100))
    # top-1 = {1}; top-2 = {1, 3}; top-4 = all
    comp = [0.4, 0.6, 0.7]
    suff = [0.3, 0.1, 0.0]  # keep only the top: the rest erased
    assert out["comprehensiveness_bins"] == pytest.approx(comp)
    assert out["sufficiency_bins"] == pytest.approx(suff)
    assert out["comprehensiveness"] == pytest.approx(np.mean(comp))
    assert out["sufficiency"] == pytest.approx(np.mean(suff))


def test_decision_functions_on_a_model(tiny):
    model, tok = tiny("bert")
    insp = headscope.inspect((model, tok), TEXTS[1])
    ex = as_examples(insp)[0]
    label, prob = decision_functions(ex)
    none = np.zeros((1, len(ex.source_ids)), dtype=bool)
    assert label(none)[0] == int(ex.decisions[0])
    assert prob(none)[0] == pytest.approx(insp.prediction["probabilities"][insp.prediction["label"]], abs=1e-5)
    r = erasure_flip(label, np.arange(len(ex.source_ids), dtype=float), erasable=ex.content)
    assert 0 < r.n_erased <= r.n_erasable == int(ex.content.sum())
