"""Word maps from subword attention, decoder-step conventions, link extraction, symmetrisation."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from headscope.align import (
    CONVENTIONS,
    DEFAULT_CONVENTION,
    argmax,
    argmax_mask,
    grow_diag,
    grow_diag_final,
    intersection,
    links_to_mask,
    mask_to_links,
    select_rows,
    subword_to_word,
    symmetrize,
    threshold,
    threshold_mask,
    union,
)
from headscope.errors import InputError, ShapeError

# ---------------------------------------------------------------- pooling


def _pool(how, values):
    if not values:
        return 0.0
    return {"sum": sum, "mean": lambda v: sum(v) / len(v), "max": max}[how](values)


def brute_word_map(att, src_ids, tgt_ids, src_pool, tgt_pool, n_src=None, n_tgt=None):
    """Pool with plain loops: source subwords of each row first, then target subwords."""
    n_src = n_src if n_src is not None else max(w for w in src_ids if w is not None) + 1
    n_tgt = n_tgt if n_tgt is not None else max(w for w in tgt_ids if w is not None) + 1
    lead = att.shape[:-2]
    out = np.zeros((*lead, n_tgt, n_src))
    for idx in np.ndindex(*lead):
        a = att[idx]
        for tw in range(n_tgt):
            rows = [r for r, w in enumerate(tgt_ids) if w == tw]
            for sw in range(n_src):
                cols = [c for c, w in enumerate(src_ids) if w == sw]
                per_row = [_pool(src_pool, [float(a[r, c]) for c in cols]) for r in rows]
                out[(*idx, tw, sw)] = _pool(tgt_pool, per_row)
    return out


# target: <lang> la mai son . </s> ; source: the hou se . </s> <pad>
TGT_IDS = [None, 0, 1, 1, 2, None]
SRC_IDS = [0, 1, 1, 2, None, None]


@pytest.mark.parametrize("src_pool, tgt_pool", list(itertools.product(["sum", "mean", "max"], repeat=2)))
def test_pooling_matches_brute_force(src_pool, tgt_pool):
    rng = np.random.default_rng(0)
    att = rng.random((2, 3, len(TGT_IDS), len(SRC_IDS)))
    att /= att.sum(-1, keepdims=True)
    got = subword_to_word(att, SRC_IDS, TGT_IDS, src_pool, tgt_pool)
    assert isinstance(got, np.ndarray) and got.shape == (2, 3, 3, 3)
    want = brute_word_map(att, SRC_IDS, TGT_IDS, src_pool, tgt_pool)
    np.testing.assert_allclose(got, want, rtol=1e-12)
    t = subword_to_word(torch.from_numpy(att), SRC_IDS, TGT_IDS, src_pool, tgt_pool)
    assert isinstance(t, torch.Tensor)
    np.testing.assert_allclose(t.numpy(), want, rtol=1e-12)


def test_default_pooling_keeps_rows_distributions():
    rng = np.random.default_rng(1)
    att = rng.random((4, len(TGT_IDS), len(SRC_IDS)))
    att[..., 4:] = 0.0  # no mass on EOS / padding
    att /= att.sum(-1, keepdims=True)
    w = subword_to_word(att, SRC_IDS, TGT_IDS)  # sum over source, mean over target
    np.testing.assert_allclose(w.sum(-1), 1.0)


def test_non_contiguous_word_ids_and_gaps():
    rng = np.random.default_rng(2)
    att = rng.random((5, 4))
    src = [1, 0, 1, None]  # word 1 split around word 0
    tgt = [0, 2, None, 2, 0]  # word 1 has no subword
    for sp, tp in itertools.product(["sum", "mean", "max"], repeat=2):
        got = subword_to_word(att, src, tgt, sp, tp, n_src_words=3)
        want = brute_word_map(att, src, tgt, sp, tp, n_src=3)
        assert got.shape == (3, 3)
        np.testing.assert_allclose(got, want)
        assert (got[1] == 0).all() and (got[:, 2] == 0).all()  # empty words get 0


def test_float32_torch_and_integer_input():
    att = torch.rand(2, 4, 3, dtype=torch.float32)
    out = subword_to_word(att, [0, 0, 1], [0, 1, 1, None])
    assert out.dtype == torch.float32 and out.shape == (2, 2, 2)
    ints = subword_to_word(np.ones((2, 2), dtype=np.int64), [0, 0], [0, 0], tgt_pool="mean")
    assert ints.tolist() == [[2.0]]


def test_pooling_errors():
    att = np.zeros((3, 4))
    with pytest.raises(ShapeError, match="does not match"):
        subword_to_word(att, [0, 1, 2], [0, 1, 2])  # source ids for 3 columns, att has 4
    with pytest.raises(InputError, match="src_pool"):
        subword_to_word(att, [0, 1, 2, 3], [0, 1, 2], src_pool="min")
    with pytest.raises(InputError, match="non-negative"):
        subword_to_word(att, [0, -1, 2, 3], [0, 1, 2])
    with pytest.raises(InputError, match="n_src_words"):
        subword_to_word(att, [0, 1, 2, 3], [0, 1, 2], n_src_words=2)
    with pytest.raises(InputError):
        subword_to_word([[0.0]], [0], [0])


# ---------------------------------------------------------------- decoder-step conventions


def test_conventions_rows():
    # 4 steps: step t outputs label t; labels = la, mai, son, </s>
    att = np.arange(2 * 4 * 3).reshape(2, 4, 3)
    assert select_rows(att, "naive") is att
    shifted = select_rows(att, "shift")
    assert shifted.shape == att.shape
    # label t <- step t+1 (where it is the decoder input); EOS keeps the last step
    np.testing.assert_array_equal(shifted, att[:, [1, 2, 3, 3]])
    t = select_rows(torch.from_numpy(att), "shift")
    np.testing.assert_array_equal(t.numpy(), shifted)
    assert DEFAULT_CONVENTION in CONVENTIONS == ("naive", "shift")
    with pytest.raises(InputError):
        select_rows(att, "future")
    with pytest.raises(ShapeError):
        select_rows(np.zeros((0, 3)), "shift")


def test_conventions_end_to_end():
    """Source "the house </s>", labels "la maison </s>"; steps: <s>->la, la->maison, maison-></s>.

    The step outputting "la" looks at "house" (anticipating), the step whose input is "la"
    looks at "the": naive links la-house, shift links la-the.
    """
    att = np.array(
        [
            [0.1, 0.8, 0.1],  # step 0: input <s>,    outputs la
            [0.8, 0.1, 0.1],  # step 1: input la,     outputs maison
            [0.1, 0.8, 0.1],  # step 2: input maison, outputs </s>
        ]
    )
    src_ids, tgt_ids = [0, 1, None], [0, 1, None]
    naive = subword_to_word(select_rows(att, "naive"), src_ids, tgt_ids)
    shift = subword_to_word(select_rows(att, "shift"), src_ids, tgt_ids)
    assert argmax(naive) == {(1, 0), (0, 1)}
    assert argmax(shift) == {(0, 0), (1, 1)}


# ---------------------------------------------------------------- extraction


def test_argmax_and_threshold_hand_worked():
    m = np.array(
        [
            [0.7, 0.2, 0.1],
            [0.1, 0.3, 0.6],
            [0.4, 0.4, 0.2],  # tie: first source word
        ]
    )
    assert argmax(m) == {(0, 0), (2, 1), (0, 2)}
    assert argmax(torch.from_numpy(m)) == argmax(m)
    assert threshold(m, 0.3) == {(0, 0), (2, 1), (0, 2), (1, 2)}  # strictly above: 0.3 is out
    assert threshold(m, 0.9) == set()


def test_batched_masks_match_per_map():
    rng = np.random.default_rng(3)
    maps = rng.random((2, 3, 4, 5))
    am, tm = argmax_mask(maps), threshold_mask(maps, 0.5)
    assert am.shape == tm.shape == maps.shape and am.dtype == bool
    assert (am.sum(-1) == 1).all()
    for idx in np.ndindex(2, 3):
        assert mask_to_links(am[idx]) == argmax(maps[idx])
        assert mask_to_links(tm[idx]) == threshold(maps[idx], 0.5)
    tam = argmax_mask(torch.from_numpy(maps))
    np.testing.assert_array_equal(tam.numpy(), am)
    with pytest.raises(ShapeError, match="argmax_mask"):
        argmax(maps)


def test_links_mask_round_trip():
    links = {(0, 1), (2, 0), (1, 1)}
    m = links_to_mask(links, n_src=3, n_tgt=2)
    assert m.shape == (2, 3) and m[1, 0] and m[0, 2]
    assert mask_to_links(m) == links
    with pytest.raises(InputError, match="outside"):
        links_to_mask({(3, 0)}, n_src=3, n_tgt=2)


# ---------------------------------------------------------------- symmetrisation

# Hand-worked (source e, target f):
#   a (e2f) = {(0,0), (1,1), (2,1), (4,4)}
#   b (f2e) = {(0,0), (1,1), (1,2), (2,2), (4,3)}
#   intersection = {(0,0), (1,1)}
#   grow-diag from the intersection, visiting aligned points in order:
#     (1,1): neighbour (2,1) in union, source 2 unaligned -> add
#            neighbour (1,2) in union, target 2 unaligned -> add
#            diagonal (2,2) in union, but source 2 and target 2 now aligned -> blocked
#     nothing else touches an aligned point; (4,3), (4,4) are isolated
#   grow-diag = {(0,0), (1,1), (2,1), (1,2)}
#   final(a): (4,4) source 4 unaligned -> add; final(b): (4,3) target 3 unaligned -> add;
#             (2,2) both aligned -> no
#   final-and(a): (4,4) both unaligned -> add; final-and(b): (4,3) source 4 aligned -> no
A = {(0, 0), (1, 1), (2, 1), (4, 4)}
B = {(0, 0), (1, 1), (1, 2), (2, 2), (4, 3)}
GD = {(0, 0), (1, 1), (2, 1), (1, 2)}


def test_symmetrisation_hand_worked():
    assert intersection(A, B) == {(0, 0), (1, 1)}
    assert union(A, B) == A | B
    assert grow_diag(A, B) == GD
    assert grow_diag_final(A, B) == GD | {(4, 4), (4, 3)}
    assert grow_diag_final(A, B, final_and=True) == GD | {(4, 4)}
    # FINAL visits a before b: with the roles swapped, final-and keeps (4,3) instead
    assert grow_diag_final(B, A, final_and=True) == GD | {(4, 3)}
    assert grow_diag(B, A) == GD


def test_symmetrisation_properties():
    rng = np.random.default_rng(4)
    for _ in range(50):
        cells = [(i, j) for i in range(6) for j in range(5)]
        a = {c for c in cells if rng.random() < 0.2}
        b = {c for c in cells if rng.random() < 0.2}
        i, u = intersection(a, b), union(a, b)
        gd, gdf, gdfa = grow_diag(a, b), grow_diag_final(a, b), grow_diag_final(a, b, final_and=True)
        assert i <= gd <= gdfa <= u and gd <= gdf <= u  # gdfa is not always inside gdf (order)
        # after FINAL every word aligned in the union is aligned (or-variant)
        assert {e for e, _ in gdf} == {e for e, _ in u}
        assert {f for _, f in gdf} == {f for _, f in u}


def test_symmetrize_dispatch():
    assert symmetrize(A, B, "intersection") == intersection(A, B)
    assert symmetrize(A, B, "union") == union(A, B)
    assert symmetrize(A, B, "grow-diag") == GD
    assert symmetrize(A, B) == grow_diag_final(A, B)
    assert symmetrize(A, B, "grow-diag-final-and") == grow_diag_final(A, B, final_and=True)
    assert symmetrize([[0, 1]], [[0, 1]], "intersection") == {(0, 1)}  # dataset-style lists
    with pytest.raises(InputError):
        symmetrize(A, B, "grow")
