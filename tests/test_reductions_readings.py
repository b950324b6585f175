"""Issue 17: readings that can work from reductions use them (kept query rows, per-head statistics);
those that cannot (rollout, flow) say so and name the fix; ``reduce_for`` picks reductions for long inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.distance import jensenshannon
from scipy.stats import spearmanr

import headscope
from headscope.aggregate import map_readings, reading_map
from headscope.aggregate.maps import reading_rows
from headscope.capture import LONG_INPUT, Reductions, reduce_for
from headscope.errors import InputError
from headscope.fragment import fragmentation, head_profile, kind_fragmentation
from headscope.models.tiny import _MODEL_CLASSES, build_tiny, tiny_config, tiny_tokenizer
from headscope.readings import Flow, Head, HeadsMean, LayerMean, Rollout

TEXT = "the cat sat on the mat with a red hat"
ARCHS = {"encoder": "bert", "decoder": "gpt2", "encoder-decoder": "marian"}


@pytest.fixture(scope="module", params=list(ARCHS))
def pair(request):
    model, tok = build_tiny(ARCHS[request.param], layers=2, heads=3, width=24)
    target = "le chat" if request.param == "encoder-decoder" else None
    full = headscope.inspect((model, tok), TEXT, target=target)
    n_target = len(full.target_tokens) if full.target_tokens is not None else None
    return (model, tok), target, full, n_target


def _reduced(pair_, rows):
    loaded, target, _, _ = pair_
    return headscope.inspect(loaded, TEXT, target=target, reduce=Reductions(rows=rows))


def _rows_for(full, n_target, self_rows=(0, 3, -1)):
    """Decision rows included: every target row of an encoder-decoder, first/last of the source."""
    target = tuple(range(n_target)) if n_target else tuple(self_rows)
    return {"encoder": tuple(self_rows), "decoder": target, "cross": target}


def test_heads_and_means_come_from_the_kept_rows(pair):
    _, _, full, n_target = pair
    spec = _rows_for(full, n_target)
    red = _reduced(pair, spec)
    assert red.attentions == {}
    for kind in full.kinds:
        q = full.attentions[kind].shape[-2]
        positions = [r % q for r in spec[kind]]
        assert reading_rows(red, kind) == positions and reading_rows(full, kind) is None
        maps = full.attentions[kind].double()[:, :, positions]  # [layers, heads, rows, key]
        for layer in range(maps.shape[0]):
            for h in range(maps.shape[1]):
                got = reading_map(red, Head(kind, layer, h), rows=positions).double()
                assert torch.allclose(got, maps[layer, h], atol=1e-6, rtol=0)
                assert torch.equal(reading_map(full, Head(kind, layer, h), rows=positions).double(), maps[layer, h])
            by_hand = sum(maps[layer, h] for h in range(maps.shape[1])) / maps.shape[1]
            got = reading_map(red, LayerMean(kind, layer), rows=spec[kind]).double()  # negative positions too
            assert torch.allclose(got, by_hand, atol=1e-6, rtol=0)
        everything = sum(maps[l, h] for l in range(maps.shape[0]) for h in range(maps.shape[1]))
        got = reading_map(red, f"{kind}.mean", rows=positions[::-1]).double()  # any order of kept rows
        assert torch.allclose(got, (everything / maps.shape[0] / maps.shape[1]).flip(0), atol=1e-6, rtol=0)
        if positions == list(range(q)):  # every row kept: the whole map, as from full maps
            assert torch.allclose(reading_map(red, f"{kind}.0.1"), reading_map(full, f"{kind}.0.1"), atol=1e-6)
        else:  # some rows only: never a silently partial map
            with pytest.raises(InputError, match=r"pass rows="):
                reading_map(red, f"{kind}.0.1")
            missing = next(i for i in range(q) if i not in positions)
            with pytest.raises(InputError, match=r"reduce=\['rows="):
                reading_map(red, f"{kind}.0.1", rows=[missing])
        listed = map_readings(red, kind)
        assert not any(isinstance(r, (Rollout, Flow)) for r in listed) and HeadsMean(kind) in listed


def test_readings_that_cannot_work_from_reductions_say_what_to_ask_for(pair, tmp_path):
    loaded, target, full, _ = pair
    stats_only = headscope.inspect(loaded, TEXT, target=target, reduce=["entropy", "sink"])
    kind = full.kinds[-1]
    with pytest.raises(InputError, match=r"rows=0"):
        reading_map(stats_only, Head(kind, 0, 0))
    with pytest.raises(InputError, match=r"rows=0,-1"):
        fragmentation(stats_only, faithful=False)
    red = _reduced(pair, [0])
    with pytest.raises(InputError, match="stream_to="):
        reading_map(red, Rollout(kind))
    with pytest.raises(InputError, match="layers"):
        reading_map(red, Head(kind, 7, 0), rows=[0])
    with pytest.raises(InputError, match="query positions"):
        reading_map(red, Head(kind, 0, 0), rows=[99])
    streamed = headscope.inspect(loaded, TEXT, target=target, stream_to=tmp_path / "maps")
    with pytest.raises(InputError, match="load_streamed"):
        reading_map(streamed, Rollout(kind))


def test_head_profile_on_some_rows_hand_worked():
    prev = np.eye(6, k=-1)  # a previous-token head: row 0 has no previous token and puts its mass on itself
    prev[0, 0] = 1.0
    kept = [0, 2, 5]
    p = head_profile(prev[kept], positions=kept, n_query=6)
    assert p["previous"] == 1.0 and p["diagonal"] == pytest.approx(1 / 3) and p["next"] == 0.0
    cross = np.zeros((4, 8))
    cross[np.arange(4), [0, 2, 4, 6]] = 1.0  # monotone: target t on source 2t
    assert head_profile(cross[[1, 3]], positions=[1, 3], n_query=4)["diagonal"] == 1.0
    with pytest.raises(Exception, match="positions"):
        head_profile(cross[[1, 3]], positions=[1, 9], n_query=4)


def _js_by_hand(rows: np.ndarray) -> np.ndarray:
    """Mean-over-rows JS (base 2) between every pair of heads ``[N, q, k]``, with scipy's distance."""
    n = rows.shape[0]
    return np.array([[np.mean([jensenshannon(rows[a, r], rows[b, r], base=2) ** 2 for r in range(rows.shape[1])])
                      for b in range(n)] for a in range(n)])


def _spearman_by_hand(rows: np.ndarray) -> np.ndarray:
    n = rows.shape[0]
    return np.array([[np.mean([spearmanr(rows[a, r], rows[b, r]).statistic for r in range(rows.shape[1])])
                      for b in range(n)] for a in range(n)])


def _check_same(got, want, atol=1e-6):
    assert got.layers == want.layers and got.n_heads == want.n_heads
    np.testing.assert_allclose(got.js, want.js, atol=atol, rtol=0)
    np.testing.assert_allclose(got.rank_correlation, want.rank_correlation, atol=atol, rtol=0)
    assert abs(got.effective_maps - want.effective_maps) <= atol
    assert (got.labels == want.labels).all() and got.shares == want.shares
    np.testing.assert_allclose(got.sink_mass, want.sink_mass, atol=atol, rtol=0)


def test_fragmentation_from_kept_rows_equals_full_maps_on_those_rows(pair):
    _, _, full, n_target = pair
    spec = _rows_for(full, n_target)
    red = _reduced(pair, spec)
    frag_red, frag_full = fragmentation(red, faithful=False), fragmentation(full, faithful=False)
    assert list(frag_red.kinds) == full.kinds
    for kind in full.kinds:
        maps = full.attentions[kind].double()
        q = maps.shape[-2]
        positions = [r % q for r in spec[kind]]
        got = frag_red.kinds[kind]
        assert got.rows == positions
        want = kind_fragmentation(maps[:, :, positions], kind, full.key_tokens(kind), full.layer_indices(kind),
                                  positions=positions, n_query=q)
        _check_same(got, want)
        flat = maps[:, :, positions].reshape(-1, len(positions), maps.shape[-1]).numpy()
        np.testing.assert_allclose(got.js, _js_by_hand(flat), atol=1e-6, rtol=0)
        np.testing.assert_allclose(got.rank_correlation, _spearman_by_hand(flat), atol=1e-6, rtol=0)
        if positions == list(range(q)):  # every row kept: the very result of the full maps
            _check_same(got, frag_full.kinds[kind])
    # readings compared on the decision rows: the same tau as from full maps (rollout/flow left out)
    assert all(not isinstance(r, (Rollout, Flow)) for r in frag_red.readings)
    assert set(frag_red.readings) < set(frag_full.readings)
    index = [frag_full.readings.index(r) for r in frag_red.readings]
    np.testing.assert_allclose(frag_red.tau, frag_full.tau[np.ix_(index, index)], atol=1e-6, rtol=0)


def test_kept_rows_round_trip_through_save(pair, tmp_path):
    _, _, full, n_target = pair
    frag = fragmentation(_reduced(pair, _rows_for(full, n_target)), faithful=False)
    back = type(frag).load(frag.save(tmp_path / "frag"))
    assert {k: kf.rows for k, kf in back.kinds.items()} == {k: kf.rows for k, kf in frag.kinds.items()}
    assert "kept query rows" in str(frag)


def test_reduce_for_picks_reductions_only_for_long_inputs():
    assert reduce_for(["fragmentation", "encoder.rollout"], LONG_INPUT) is None  # short: whole maps
    spec = reduce_for(["fragmentation"], LONG_INPUT + 1)
    assert spec.rows_for("encoder") == (0, -1) and spec.rows_for("cross") == (0, -1) and spec.stats
    assert reduce_for(["cross.mean"], 4096, n_target=3).rows_for("cross") == (0, 1, 2)
    for name in ("encoder.rollout", "encoder.flow", "cross.alti"):
        with pytest.raises(InputError, match="stream_to="):
            reduce_for([name], 4096)
    with pytest.raises(InputError, match="n_tokens"):
        reduce_for(["fragmentation"], 0)


def test_a_long_input_gives_the_same_fragmentation_from_reductions():
    """1,000+ tokens through a tiny encoder with long positions: reductions chosen by ``reduce_for``
    (computed in blocks of 512 query rows) give the statistics of the full maps on the same rows."""
    tok = tiny_tokenizer("wordpiece")
    tok.model_max_length = 1200
    config = tiny_config("bert", len(tok), layers=2, heads=2, width=16, ffn=20, max_positions=1200,
                         pad_token_id=tok.pad_token_id)
    config._attn_implementation = "eager"
    torch.manual_seed(0)
    model = _MODEL_CLASSES["bert"](config).eval()
    text = "the cat sat on the mat " * 80
    n = len(tok(text)["input_ids"])
    assert n > 1000
    spec = reduce_for(["fragmentation"], n)
    red = headscope.inspect((model, tok), text, reduce=spec)
    full = headscope.inspect((model, tok), text)
    assert red.attentions == {} and red.reduced["encoder"]["rows"].shape == (2, 2, 2, n)
    frag = fragmentation(red, faithful=False)
    maps = full.attentions["encoder"].double()
    got = frag.kinds["encoder"]
    assert got.rows == [0, n - 1]
    want = kind_fragmentation(maps[:, :, [0, n - 1]], "encoder", full.key_tokens("encoder"), [0, 1],
                              positions=[0, n - 1], n_query=n)
    _check_same(got, want)
    flat = maps[:, :, [0, n - 1]].reshape(4, 2, n).numpy()
    np.testing.assert_allclose(got.js, _js_by_hand(flat), atol=1e-6, rtol=0)
    full_frag = fragmentation(full, faithful=False)
    index = [full_frag.readings.index(r) for r in frag.readings]
    np.testing.assert_allclose(frag.tau, full_frag.tau[np.ix_(index, index)], atol=1e-6, rtol=0)
    # per-row statistics over every row come with it, equal to those of the full maps
    assert torch.allclose(red.reduction("encoder", "sink").double(), maps[..., 0], atol=1e-6, rtol=0)


def test_fragmentation_corpus_reduces_long_texts_by_itself(pair, monkeypatch):
    """Texts past ``LONG_INPUT`` tokens are inspected with ``reduce_for``'s reductions (here the limit is
    lowered so that a tiny model's texts count as long); shorter ones keep whole maps."""
    from headscope.fragment import corpus, fragmentation_corpus

    loaded, target, full, _ = pair
    short = "a cat"
    n_long, n_short = (len(loaded[1](t)["input_ids"]) for t in (TEXT, short))
    monkeypatch.setattr(corpus, "LONG_INPUT", (n_long + n_short) // 2)
    targets = None if target is None else [target, target]
    frags = fragmentation_corpus(loaded, [TEXT, short], targets, faithful=False)
    spec = reduce_for(["fragmentation"], n_long, n_target=None if target is None else len(full.target_tokens),
                      long=(n_long + n_short) // 2)
    alone = fragmentation(headscope.inspect(loaded, TEXT, target=target, reduce=spec), faithful=False)
    for kind, kf in frags[0].kinds.items():
        assert kf.rows == alone.kinds[kind].rows and kf.rows is not None
        np.testing.assert_allclose(kf.js, alone.kinds[kind].js, atol=1e-9, rtol=0)
    assert all(kf.rows is None for kf in frags[1].kinds.values())
    np.testing.assert_allclose(frags[0].tau, alone.tau, atol=1e-9, rtol=0)
