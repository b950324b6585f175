"""Capture equals eager ``output_attentions=True`` on every family, leaves the model as it was."""

from __future__ import annotations

import pytest
import torch
from conftest import TARGETS, TEXTS

from headscope.capture import AttentionCapture, run_capture, split_examples
from headscope.errors import UnsupportedModelError
from headscope.models.tiny import ENCODERS, FAMILIES, SEQ2SEQ, build_tiny
from headscope.models.architectures import decoder_inputs


def batch_for(family, model, tok):
    enc = tok(TEXTS, padding=True, return_tensors="pt")
    accepted = set(__import__("inspect").signature(model.forward).parameters)
    inputs = {k: v for k, v in enc.items() if k in accepted}
    assert (enc["attention_mask"] == 0).any(), "the batch must contain padding"
    if family in SEQ2SEQ:
        lab = tok(text_target=TARGETS, padding=True, return_tensors="pt")
        inputs["decoder_input_ids"] = decoder_inputs(model, lab["input_ids"], tok.pad_token_id)
        inputs["decoder_attention_mask"] = lab["attention_mask"]
    return inputs


def eager_reference(model, inputs):
    with torch.no_grad():
        out = model(**inputs, output_attentions=True)
    if model.config.is_encoder_decoder:
        return {"encoder": out.encoder_attentions, "decoder": out.decoder_attentions, "cross": out.cross_attentions}
    kind = "decoder" if type(model).__name__.endswith("LMHeadModel") else "encoder"
    return {kind: out.attentions}


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("method", ["interface", "outputs"])
def test_capture_equals_eager(tiny, family, method):
    model, tok = tiny(family)
    inputs = batch_for(family, model, tok)
    ref = eager_reference(model, inputs)
    _, cap = run_capture(model, inputs, method=method)
    maps = cap.maps
    assert set(maps) == set(ref)
    for kind, tensors in ref.items():
        expected = torch.stack(tensors, dim=1)
        assert maps[kind].shape == expected.shape == (2, 2, 4, *expected.shape[-2:])
        assert (maps[kind] - expected).abs().max() <= 1e-6
        assert torch.allclose(maps[kind].sum(-1), torch.ones(()), atol=1e-5)
    expected_kinds = ["encoder"] if family in ENCODERS else ["decoder"] if family == "gpt2" else ["encoder", "decoder", "cross"]
    assert list(maps) == expected_kinds
    assert cap.layers == {k: [0, 1] for k in expected_kinds}
    assert cap.method == method


@pytest.mark.parametrize("family", ["bert", "marian", "t5", "gpt2"])
def test_sdpa_model_same_maps_and_untouched(family):
    eager, tok = build_tiny(family, attn_implementation="eager")
    sdpa, _ = build_tiny(family, attn_implementation="sdpa")
    assert sdpa.config._attn_implementation == "sdpa"
    inputs = batch_for(family, sdpa, tok)
    with torch.no_grad():
        before = sdpa(**inputs).logits
    _, cap_e = run_capture(eager, inputs)
    _, cap_s = run_capture(sdpa, inputs)
    for kind in cap_e.maps:
        assert (cap_e.maps[kind] - cap_s.maps[kind]).abs().max() <= 1e-6
    assert sdpa.config._attn_implementation == "sdpa"
    with torch.no_grad():
        after = sdpa(**inputs).logits
    assert torch.equal(before, after)


@pytest.mark.parametrize("method", ["interface", "outputs"])
def test_model_left_as_it_was(tiny, method):
    model, tok = tiny("bart")
    inputs = batch_for("bart", model, tok)
    impls = [m.config._attn_implementation for m in model.modules() if hasattr(m, "config")]
    hooks = sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())
    state = {k: v.clone() for k, v in model.state_dict().items()}
    run_capture(model, inputs, method=method)
    assert [m.config._attn_implementation for m in model.modules() if hasattr(m, "config")] == impls
    assert sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules()) == hooks
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())


def test_restored_after_exception(tiny):
    model, tok = tiny("bert")
    with pytest.raises(RuntimeError):
        with AttentionCapture(model):
            raise RuntimeError("boom")
    assert model.config._attn_implementation == "eager"


def test_kinds_layers_dtype_options(tiny):
    model, tok = tiny("marian")
    inputs = batch_for("marian", model, tok)
    _, cap = run_capture(model, inputs, kinds=["cross"], layers=[1], dtype=torch.float16)
    assert list(cap.maps) == ["cross"]
    assert cap.maps["cross"].shape[1] == 1 and cap.maps["cross"].dtype == torch.float16
    assert cap.layers["cross"] == [1]
    ref = torch.stack(eager_reference(model, inputs)["cross"], 1)[:, 1:2]
    assert (cap.maps["cross"].float() - ref).abs().max() < 1e-3
    assert cap.maps["cross"].device.type == "cpu"


def test_split_examples_drops_padding_left_and_right():
    maps = torch.arange(2 * 1 * 1 * 4 * 4, dtype=torch.float32).reshape(2, 1, 1, 4, 4)
    right = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]])
    left = torch.tensor([[0, 1, 1, 1], [1, 1, 1, 1]])
    a = split_examples(maps, right)
    b = split_examples(maps, left)
    assert a[0].shape == (1, 1, 3, 3) and a[1].shape == (1, 1, 4, 4)
    assert torch.equal(a[0], maps[0, :, :, :3, :3])
    assert torch.equal(b[0], maps[0, :, :, 1:, 1:])


def test_model_without_attention_is_refused():
    from transformers import PretrainedConfig, PreTrainedModel

    class NoAttentionConfig(PretrainedConfig):
        model_type = "no-attention"

    class NoAttention(PreTrainedModel):
        config_class = NoAttentionConfig

        def __init__(self, config):
            super().__init__(config)
            self.embed = torch.nn.Embedding(10, 4)
            self.post_init()

        def forward(self, input_ids, **kwargs):
            return self.embed(input_ids)

    model = NoAttention(NoAttentionConfig())
    with pytest.raises(UnsupportedModelError, match="NoAttention .*no attention headscope can capture"):
        run_capture(model, {"input_ids": torch.tensor([[1, 2, 3]])})
