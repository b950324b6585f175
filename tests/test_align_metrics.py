"""AER, precision and recall: hand-worked examples, degenerate cases, and the vectorised accumulator."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from headscope.align import AERCounts, AlignmentScore, aer, links_to_mask
from headscope.errors import InputError, ShapeError

# Sentence 1: S = {(0,0), (1,1)}, possible-only {(1,2)} -> P = {(0,0), (1,1), (1,2)}
#             A = {(0,0), (1,2), (2,2)}: |A| = 3, |A∩S| = 1, |A∩P| = 2
# Sentence 2 (only possible links): S = {}, P = {(0,0), (0,1)}
#             A = {(0,0)}: |A| = 1, |A∩S| = 0, |A∩P| = 1
# Corpus: |A| = 4, |S| = 2, |A∩S| = 1, |A∩P| = 3
#   precision = 3/4, recall = 1/2, AER = 1 - (1 + 3) / (4 + 2) = 1/3
PRED = [{(0, 0), (1, 2), (2, 2)}, {(0, 0)}]
SURE = [{(0, 0), (1, 1)}, set()]
POSSIBLE_ONLY = [{(1, 2)}, {(0, 0), (0, 1)}]
LENGTHS = [(3, 3), (1, 2)]


def test_hand_worked_corpus():
    s = aer(PRED, SURE, POSSIBLE_ONLY)
    assert isinstance(s, AlignmentScore)
    assert (s.n_predicted, s.n_sure, s.n_predicted_sure, s.n_predicted_possible) == (4, 2, 1, 3)
    assert s.precision == pytest.approx(0.75)
    assert s.recall == pytest.approx(0.5)
    assert s.aer == pytest.approx(1 / 3)


def test_corpus_level_not_mean_of_sentences():
    per_sentence = [aer([a], [s], [p]).aer for a, s, p in zip(PRED, SURE, POSSIBLE_ONLY)]
    assert aer(PRED, SURE, POSSIBLE_ONLY).aer != pytest.approx(np.mean(per_sentence))


def test_sure_subset_of_possible_enforced():
    """P is S ∪ possible: passing P, the possible-only links, or S again changes nothing."""
    full_p = [s | p for s, p in zip(SURE, POSSIBLE_ONLY)]
    assert aer(PRED, SURE, full_p) == aer(PRED, SURE, POSSIBLE_ONLY)
    # possible=None means P = S
    s = aer([{(0, 0), (1, 2)}], [{(0, 0)}])
    assert (s.precision, s.recall, s.aer) == (0.5, 1.0, pytest.approx(1 - 2 / 3))
    # a predicted sure link always counts in A∩P even if `possible` forgot it
    s = aer([{(0, 0)}], [{(0, 0)}], [{(5, 5)}])
    assert s.n_predicted_possible == 1 and s.precision == 1.0 and s.aer == 0.0


def test_sentence_with_only_possible_links():
    s = aer([{(0, 0)}], [set()], [{(0, 0), (0, 1)}])
    # |A| = 1, |S| = 0, |A∩P| = 1: AER = 1 - (0 + 1) / (1 + 0) = 0; recall is 0/0
    assert s.precision == 1.0
    assert s.aer == 0.0
    assert s.recall == 0.0  # zero_division default
    assert math.isnan(aer([{(0, 0)}], [set()], [{(0, 0)}], zero_division=float("nan")).recall)
    # a wrong link there: precision 0, AER 1
    s = aer([{(1, 1)}], [set()], [{(0, 0)}])
    assert (s.precision, s.aer) == (0.0, 1.0)


def test_empty_prediction():
    s = aer([set(), set()], SURE, POSSIBLE_ONLY)
    # |A| = 0: precision 0/0 -> 0.0 (scikit-learn convention), recall 0, AER = 1 - 0/2 = 1
    assert (s.n_predicted, s.n_sure) == (0, 2)
    assert s.precision == 0.0
    assert s.recall == 0.0
    assert s.aer == 1.0
    nan = aer([set(), set()], SURE, POSSIBLE_ONLY, zero_division=float("nan"))
    assert math.isnan(nan.precision) and nan.aer == 1.0  # AER stays defined


def test_nothing_to_score():
    # |A| + |S| = 0: every ratio is 0/0 and reported as zero_division
    s = aer([set()], [set()], [{(0, 0)}])
    assert (s.precision, s.recall, s.aer) == (0.0, 0.0, 0.0)
    s = aer([set()], [set()], zero_division=float("nan"))
    assert all(math.isnan(x) for x in (s.precision, s.recall, s.aer))
    s = aer([], [], [])
    assert s.n_predicted == 0 and s.aer == 0.0


def test_perfect_and_all_wrong():
    assert aer(SURE[:1], SURE[:1]).aer == 0.0
    s = aer([{(2, 0)}], [{(0, 0)}], [{(1, 0)}])
    assert (s.precision, s.recall, s.aer) == (0.0, 0.0, 1.0)


def test_out_of_range_refused_with_lengths():
    assert aer(PRED, SURE, POSSIBLE_ONLY, lengths=LENGTHS).aer == pytest.approx(1 / 3)
    with pytest.raises(InputError, match=r"sentence 1: predicted link \(1, 0\) is outside"):
        aer([{(0, 0)}, {(1, 0)}], SURE, POSSIBLE_ONLY, lengths=LENGTHS)
    with pytest.raises(InputError, match="sentence 0: sure link"):
        aer(PRED, [{(3, 0)}, set()], POSSIBLE_ONLY, lengths=LENGTHS)
    with pytest.raises(InputError, match="sentence 1: possible link"):
        aer(PRED, SURE, [set(), {(0, 2)}], lengths=LENGTHS)
    with pytest.raises(InputError, match="negative"):
        aer([{(-1, 0)}], [set()])  # negative indices refused even without lengths


def test_bad_inputs():
    with pytest.raises(InputError, match="one entry per sentence"):
        aer(PRED, SURE[:1])
    with pytest.raises(InputError, match="one entry per sentence"):
        aer(PRED, SURE, POSSIBLE_ONLY, lengths=LENGTHS[:1])
    with pytest.raises(InputError, match="not a"):
        aer([{(0, 0, 1)}], [set()])
    with pytest.raises(InputError):
        aer(["0-0"], [set()])


def test_dataset_style_lists_accepted():
    """Lists of [i, j] lists, as in the gold dataset columns, work as link sets."""
    as_lists = [[list(x) for x in sorted(s)] for s in PRED]
    assert aer(as_lists, [[[0, 0], [1, 1]], []], [[[1, 2]], [[0, 0], [0, 1]]]) == aer(
        PRED, SURE, POSSIBLE_ONLY
    )


def test_as_dict_json():
    d = aer(PRED, SURE, POSSIBLE_ONLY).as_dict()
    assert json.loads(json.dumps(d))["n_predicted"] == 4


# ---------------------------------------------------------------- accumulator

def brute_counts(pred_masks, sure, possible, shape):
    """Counts by plain Python loops over every head and cell."""
    out = {k: np.zeros(shape, dtype=np.int64) for k in ("a", "s", "as", "ap")}
    for m, s, p in zip(pred_masks, sure, possible):
        p = p | s
        t_n, s_n = m.shape[-2:]
        for idx in np.ndindex(*shape):
            for j in range(t_n):
                for i in range(s_n):
                    if m[idx][j, i]:
                        out["a"][idx] += 1
                        out["as"][idx] += (i, j) in s
                        out["ap"][idx] += (i, j) in p
            out["s"][idx] += len(s)
    return out


def random_corpus(rng, shape, n=12):
    masks, sure, possible = [], [], []
    for _ in range(n):
        n_src, n_tgt = rng.integers(1, 7, size=2)
        masks.append(rng.random((*shape, n_tgt, n_src)) < 0.3)
        cells = [(i, j) for i in range(n_src) for j in range(n_tgt)]
        sure.append({c for c in cells if rng.random() < 0.25})
        possible.append({c for c in cells if rng.random() < 0.25})
    return masks, sure, possible


def test_counts_match_brute_force():
    rng = np.random.default_rng(0)
    shape = (3, 4)
    masks, sure, possible = random_corpus(rng, shape)
    c = AERCounts(shape)
    for m, s, p in zip(masks, sure, possible):
        c.add(m, s, p)
    b = brute_counts(masks, sure, possible, shape)
    np.testing.assert_array_equal(c.n_predicted, b["a"])
    np.testing.assert_array_equal(c.n_sure, b["s"])
    np.testing.assert_array_equal(c.n_predicted_sure, b["as"])
    np.testing.assert_array_equal(c.n_predicted_possible, b["ap"])
    score = c.score()
    assert score.aer.shape == shape
    np.testing.assert_allclose(score.aer, 1 - (b["as"] + b["ap"]) / (b["a"] + b["s"]))
    np.testing.assert_allclose(score.precision, b["ap"] / b["a"])
    np.testing.assert_allclose(score.recall, b["as"] / b["s"])
    # each head agrees with aer() on its own link sets
    for idx in [(0, 0), (2, 3), (1, 2)]:
        links = [{(int(i), int(j)) for j, i in zip(*np.nonzero(m[idx]))} for m in masks]
        one = aer(links, sure, possible)
        assert one.aer == pytest.approx(score.aer[idx])
        assert one.n_predicted_possible == score.n_predicted_possible[idx]


def test_accumulator_scalar_links_and_masks_agree():
    c_links, c_masks = AERCounts(), AERCounts()
    for a, s, p, (ns, nt) in zip(PRED, SURE, POSSIBLE_ONLY, LENGTHS):
        c_links.add(a, s, p, lengths=(ns, nt))
        c_masks.add(links_to_mask(a, ns, nt), s, p)
    assert c_links.score() == c_masks.score() == aer(PRED, SURE, POSSIBLE_ONLY)
    assert c_links.n_sentences == 2


def test_accumulator_merge_and_torch():
    rng = np.random.default_rng(1)
    masks, sure, possible = random_corpus(rng, (2, 3), n=8)
    whole, first, second = AERCounts((2, 3)), AERCounts((2, 3)), AERCounts((2, 3))
    for k, (m, s, p) in enumerate(zip(masks, sure, possible)):
        whole.add(torch.from_numpy(m), s, p)
        (first if k < 4 else second).add(m, s, p)
    first += second
    assert first.n_sentences == 8
    np.testing.assert_array_equal(first.score().aer, whole.score().aer)
    with pytest.raises(ShapeError):
        first += AERCounts((3, 2))


def test_accumulator_shape_errors():
    c = AERCounts((2, 3))
    with pytest.raises(ShapeError, match="shape"):
        c.add(np.zeros((3, 2, 4, 4), bool), set())
    with pytest.raises(ShapeError, match="masks"):
        c.add({(0, 0)}, set())
    with pytest.raises(ShapeError, match="lengths"):
        c.add(np.zeros((2, 3, 4, 5), bool), set(), lengths=(4, 5))  # mask is 4 tgt x 5 src
    with pytest.raises(InputError, match="outside"):
        c.add(np.zeros((2, 3, 4, 5), bool), {(5, 0)})  # mask implies 5 source words
    assert c.n_sentences == 0
