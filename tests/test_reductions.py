"""Issue 17: reductions computed during the capture, maps streamed to disk, one preallocated copy,
long-input refusals of the bertviz export and the report, ``device=``."""

from __future__ import annotations

import math

import pytest
import torch

import headscope
from headscope.capture import AttentionCapture, Reductions, load_streamed, run_capture
from headscope.capture.stream import Keeper
from headscope.errors import InputError, TooLargeError
from headscope.inspection import Inspection
from headscope.models.tiny import build_tiny
from headscope.viz import report, to_bertviz

TEXT = "the cat sat on the mat with a red hat"
ARCHS = {"encoder": "bert", "decoder": "gpt2", "encoder-decoder": "marian"}


@pytest.fixture(scope="module", params=list(ARCHS))
def pair(request):
    model, tok = build_tiny(ARCHS[request.param], layers=2, heads=3, width=24)
    return request.param, (model, tok)


def _inspect(pair_, **options):
    arch, loaded = pair_
    target = "le chat" if arch == "encoder-decoder" else None
    return headscope.inspect(loaded, TEXT, target=target, **options)


# ---- independent statistics from full maps (float64, written out by hand) ------------------------------

def entropy(p: torch.Tensor) -> torch.Tensor:
    p = p.double()
    logs = torch.where(p > 0, p.log(), torch.zeros_like(p))
    return -(p * logs).sum(-1)


def test_every_reduction_equals_the_statistic_of_full_maps(pair):
    full = _inspect(pair)
    spec = Reductions(rows=[0, -1], topk=3)
    red = _inspect(pair, reduce=spec)
    assert red.attentions == {} and set(red.reduced) == set(full.kinds)
    for kind in full.kinds:
        maps = full.attentions[kind].double()  # [layers, heads, q, k]
        got = red.reduced[kind]
        assert torch.allclose(got["entropy"].double(), entropy(maps), atol=1e-6, rtol=0)
        assert torch.allclose(got["sink"].double(), maps[..., 0], atol=1e-6, rtol=0)
        assert torch.allclose(got["max"].double(), maps.max(-1).values, atol=1e-6, rtol=0)
        links = torch.nn.functional.one_hot(maps.argmax(-1), maps.shape[-1]).sum(-2)  # rows whose argmax is each key
        assert torch.equal(got["links"].long(), links)
        k = min(3, maps.shape[-1])
        ordered = maps.sort(-1, descending=True).values[..., :k]
        assert torch.allclose(got["topk.values"].double(), ordered, atol=1e-6, rtol=0)
        picked = maps.gather(-1, got["topk.indices"])  # the indices point at those weights
        assert torch.allclose(picked, ordered, atol=1e-6, rtol=0)
        q = maps.shape[-2]
        assert got["rows.index"].tolist() == [0, q - 1]
        assert torch.allclose(got["rows"].double(), maps[:, :, [0, q - 1]], atol=1e-6, rtol=0)
        assert red.layer_indices(kind) == full.layer_indices(kind)
        # a reading asks the inspection: computed during the capture, or from full maps when those were kept
        assert torch.allclose(full.reduction(kind, "entropy").double(), got["entropy"].double(), atol=1e-6, rtol=0)


def test_hand_worked_entropy_sink_max():
    probs = torch.tensor([[[[0.5, 0.5, 0.0], [0.25, 0.25, 0.5]]]])
    from headscope.capture.reductions import reduce_layer

    out = reduce_layer(probs, Reductions())
    assert out["entropy"][0, 0].tolist() == pytest.approx([math.log(2), 1.5 * math.log(2)])
    assert out["sink"][0, 0].tolist() == [0.5, 0.25] and out["max"][0, 0].tolist() == [0.5, 0.5]


def test_reductions_with_maps_keep_exact_maps_and_batches_match_single(pair):
    arch, (model, tok) = pair
    both = _inspect(pair, reduce=Reductions(topk=2, maps=True))
    full = _inspect(pair)
    assert all(torch.equal(both.attentions[k], full.attentions[k]) for k in full.kinds)
    if arch != "encoder-decoder":
        texts = [TEXT, "a dog"]
        many = headscope.inspect((model, tok), texts, reduce=["entropy", "topk=2"])
        one = headscope.inspect((model, tok), "a dog", reduce=["entropy", "topk=2"])
        assert torch.equal(many[1].reduced[full.kinds[0]]["entropy"], one.reduced[full.kinds[0]]["entropy"])


def test_capture_is_exact_and_kept_in_one_tensor():
    model, tok = build_tiny("bert", layers=3, heads=2, width=16)
    inputs = tok(TEXT, return_tensors="pt")
    _, captured = run_capture(model, inputs)
    with torch.no_grad():
        eager = torch.stack(model(**inputs, output_attentions=True).attentions, dim=1)
    maps = captured.maps["encoder"]
    assert torch.equal(maps, eager)
    assert maps.untyped_storage().nbytes() == maps.numel() * maps.element_size()  # no second copy behind it
    insp = headscope.inspect((model, tok), TEXT)
    kept = insp.attentions["encoder"]
    assert kept.untyped_storage().nbytes() == kept.numel() * kept.element_size()


def test_streamed_shards_load_back_equal(pair, tmp_path):
    full = _inspect(pair)
    streamed = _inspect(pair, stream_to=tmp_path / "maps")
    assert streamed.attentions == {} and streamed.streamed_to == str(tmp_path / "maps")
    back = load_streamed(tmp_path / "maps")
    assert set(back) == set(full.kinds)
    for kind in full.kinds:
        assert torch.equal(back[kind][0], full.attentions[kind])
    one = load_streamed(tmp_path / "maps", full.kinds[0], layers=[1])[full.kinds[0]]
    assert torch.equal(one[0, 0], full.attentions[full.kinds[0]][1])
    with pytest.raises(InputError, match="streamed to"):
        streamed.map(full.kinds[0], 0)


def test_streaming_is_atomic(tmp_path):
    out = tmp_path / "maps"
    keeper = Keeper({"encoder": 2}, stream_to=out)
    keeper.keep("encoder", 0, torch.full((1, 2, 3, 3), 1 / 3))
    keeper.abandon()  # a capture that failed half-way
    assert not out.exists() and list(tmp_path.iterdir()) == []
    model, _ = build_tiny("bert", layers=2, heads=2, width=16)
    (out / "x").mkdir(parents=True)
    with pytest.raises(InputError, match="not a saved streamed maps folder"):
        AttentionCapture(model, stream_to=out)
    with pytest.raises(InputError, match="no index.json"):
        load_streamed(tmp_path)


def test_reduced_inspection_saves_and_loads(tmp_path):
    model, tok = build_tiny("bert", layers=2, heads=2, width=16)
    insp = headscope.inspect((model, tok), TEXT, reduce=Reductions(rows={"encoder": [0]}, topk=2))
    back = Inspection.load(insp.save(tmp_path / "insp"))
    assert back == insp and back.reductions == insp.reductions
    assert "encoder reductions" in insp.summary()
    with pytest.raises(InputError, match="'max=3' is not a reduction"):
        Reductions.of(["max=3"])
    with pytest.raises(InputError, match="outside the"):
        headscope.inspect((model, tok), TEXT, reduce=Reductions(rows=[99]))


def test_long_input_refusals():
    model, tok = build_tiny("bert", layers=2, heads=2, width=16)
    insp = headscope.inspect((model, tok), TEXT)
    n = len(insp.source_tokens)
    fake = torch.full((2, 2, 600, 600), 1 / 600)  # a 600-token inspection, built as data
    long = Inspection(model_name="x", architecture=insp.architecture, source_text="x",
                      source_tokens=["t"] * 600, source_word_ids=list(range(600)), attentions={"encoder": fake})
    with pytest.raises(TooLargeError, match="600x600 maps"):
        report(long, "/tmp/never-written.html", faithful=False)
    from headscope.viz import bertviz as bv

    old = bv.REFUSE_BYTES
    try:
        bv.REFUSE_BYTES = 3000
        with pytest.raises(TooLargeError, match=r"MB of weights.*layers=\[\.\.\.\]"):
            to_bertviz(insp)
        assert to_bertviz(insp, layers=[0], heads=[0])  # a subset fits
    finally:
        bv.REFUSE_BYTES = old
    assert bv.estimate_bytes(insp, ["encoder"], [0], [0], 3) == n * n * 6
    reduced = headscope.inspect((model, tok), TEXT, reduce=["entropy"])
    with pytest.raises(TooLargeError, match="not kept in memory"):
        report(reduced, "/tmp/never-written.html", faithful=False)
    with pytest.raises(InputError, match="only reductions"):
        to_bertviz(reduced)


def test_device_passes_through_and_is_checked():
    model, tok = build_tiny("bert", layers=2, heads=2, width=16)
    a = headscope.inspect((model, tok), TEXT, device="cpu")
    b = headscope.inspect((model, tok), TEXT, device=torch.device("cpu"))
    assert a == b
    with pytest.raises(InputError, match="not a torch device"):
        headscope.inspect((model, tok), TEXT, device="gpu-please")
    with pytest.raises(InputError, match="move the model first"):
        headscope.inspect((model, tok), TEXT, device="meta")
    with pytest.raises(InputError, match="one text"):
        headscope.inspect((model, tok), [TEXT, TEXT], stream_to="/tmp/never")


@pytest.mark.parametrize("rows", [4, 5])
def test_long_inputs_run_in_blocks_of_query_rows(pair, rows, monkeypatch, tmp_path):
    """Past ``BLOCK_ROWS`` query rows, reductions and streaming compute each layer in blocks of rows
    (no whole layer map is ever held); the results agree with full maps."""
    from headscope.capture import stream

    full = _inspect(pair)
    monkeypatch.setattr(stream, "BLOCK_ROWS", rows)
    calls = []
    real = stream.Keeper.keep_block
    monkeypatch.setattr(stream.Keeper, "keep_block", lambda self, *a: (calls.append(a[4].shape[-2]), real(self, *a)))
    red = _inspect(pair, reduce=Reductions(rows=[1, -1], topk=2))
    assert calls and max(calls) <= rows  # the blocks path ran
    assert red.prediction == full.prediction
    for kind in full.kinds:
        maps = full.attentions[kind].double()
        got = red.reduced[kind]
        assert torch.allclose(got["entropy"].double(), entropy(maps), atol=1e-6, rtol=0)
        assert torch.allclose(got["sink"].double(), maps[..., 0], atol=1e-6, rtol=0)
        assert torch.allclose(got["max"].double(), maps.max(-1).values, atol=1e-6, rtol=0)
        assert got["links"].sum(-1).eq(maps.shape[-2]).all()  # every row's argmax counted once, over the blocks
        assert torch.allclose(got["topk.values"].double(), maps.sort(-1, descending=True).values[..., :2], atol=1e-6)
        q = maps.shape[-2]
        assert torch.allclose(got["rows"].double(), maps[:, :, [1, q - 1]], atol=1e-6, rtol=0)
    _inspect(pair, stream_to=tmp_path / "maps")
    back = load_streamed(tmp_path / "maps")
    for kind in full.kinds:
        assert torch.allclose(back[kind][0], full.attentions[kind], atol=1e-6, rtol=0)
