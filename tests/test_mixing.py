"""Readings beyond the raw weights (issue 16): each against an independent computation.

* norm-based attention against an explicit loop over value vectors and output-projection slices,
  read from the modules' own weights (tiny BERT, tiny Marian cross-attention, tiny GPT-2);
* value zeroing against re-running the layer module by hand with one token's value vector zeroed;
* ALTI's rule on a one-layer toy worked by hand, and its post-norm decomposition against the model's
  own layer-norm output;
* gradient-weighted rollout against its formula, from the model's own ``output_attentions`` and
  autograd (two-layer tiny BERT; tiny Marian per target step);
* the model is left exactly as it was, also on failure; nothing extra is captured unless asked for.
"""

from __future__ import annotations

import pytest
import torch
from mixing_helpers import value_zeroing_by_hand, zeroing
from test_capture_state import assert_same_state, model_state

import headscope
from headscope.aggregate import map_readings, reading_map
from headscope.capture import extras as extras_module
from headscope.errors import InputError, UnsupportedModelError
from headscope.inspection import Inspection
from headscope.mixing import alti, families, source_target_split
from headscope.readings import Alti, GradRollout, Norm, ValueZeroing, parse_reading

TEXT = "the cat sat on a mat"


def _hidden(model, enc):
    with torch.no_grad():
        return model(**enc, output_hidden_states=True)


# ---- vocabulary ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["cross.2.3.norm", "cross.2.norm", "encoder.alti", "encoder.1.alti", "cross.alti",
                                  "decoder.valuezeroing", "encoder.0.valuezeroing", "cross.gradrollout"])
def test_names_round_trip(name):
    assert parse_reading(name).name == name
    assert parse_reading(parse_reading(name)) == parse_reading(name)


@pytest.mark.parametrize("name", ["cross.norm", "cross.valuezeroing", "cross.1.gradrollout", "cross.1.2.alti"])
def test_undefined_names_raise(name):
    with pytest.raises(InputError):
        parse_reading(name)


def test_labels():
    assert Norm("cross", 2).label == "layer 2 norm"
    assert Norm("cross", 2, 3).label == "cross.2.3 norm"
    assert Alti("encoder").label == "ALTI" and ValueZeroing("encoder", 1).label == "layer 1 value zeroing"
    assert GradRollout("cross").label == "gradient rollout"


# ---- norm-based attention -----------------------------------------------------------------

def _norm_loop(alpha, values, w_o_slices):
    """Explicit loop: per head ||alpha_ij v_j^h W_O^h||, per layer ||sum_h alpha^h_ij v_j^h W_O^h||."""
    heads, q, k = alpha.shape
    per_head = torch.zeros(heads, q, k)
    per_layer = torch.zeros(q, k)
    for i in range(q):
        for j in range(k):
            total = 0
            for h in range(heads):
                vec = alpha[h, i, j] * (values[h][j] @ w_o_slices[h])
                per_head[h, i, j] = vec.norm()
                total = total + vec
            per_layer[i, j] = total.norm()
    return per_head, per_layer


def _check_norm(insp, kind, layer, values, slices):
    alpha = insp.map(kind, layer).float()
    per_head, per_layer = _norm_loop(alpha, values, slices)
    for h in range(alpha.shape[0]):
        assert torch.allclose(reading_map(insp, Norm(kind, layer, h)), per_head[h], atol=1e-5)
    assert torch.allclose(reading_map(insp, f"{kind}.{layer}.norm"), per_layer, atol=1e-5)


def test_norm_bert_against_loop(tiny):
    model, tok = tiny("bert")
    insp = headscope.inspect((model, tok), TEXT, readings=["norm"])
    hidden = _hidden(model, tok(TEXT, return_tensors="pt")).hidden_states
    for layer in range(2):
        att = model.bert.encoder.layer[layer].attention
        heads, d = att.self.num_attention_heads, att.self.attention_head_size
        v = (hidden[layer][0] @ att.self.value.weight.T + att.self.value.bias).detach()
        values = [v[:, h * d:(h + 1) * d] for h in range(heads)]
        w = att.output.dense.weight.detach()  # [out, in]
        _check_norm(insp, "encoder", layer, values, [w[:, h * d:(h + 1) * d].T for h in range(heads)])


def test_norm_marian_cross_against_loop(tiny):
    model, tok = tiny("marian")
    insp = headscope.inspect((model, tok), TEXT, target="le chat", readings=["norm"])
    enc = tok(TEXT, text_target="le chat", return_tensors="pt")
    with torch.no_grad():
        source = model.model.encoder(input_ids=enc["input_ids"]).last_hidden_state[0]
    for layer in range(2):
        attn = model.model.decoder.layers[layer].encoder_attn
        heads, d = attn.num_heads, attn.head_dim
        v = (source @ attn.v_proj.weight.T + attn.v_proj.bias).detach()
        w = attn.out_proj.weight.detach()
        _check_norm(insp, "cross", layer, [v[:, h * d:(h + 1) * d] for h in range(heads)],
                    [w[:, h * d:(h + 1) * d].T for h in range(heads)])


def test_norm_gpt2_against_loop(tiny):
    model, tok = tiny("gpt2")
    insp = headscope.inspect((model, tok), TEXT, readings=["norm"])
    hidden = _hidden(model, tok(TEXT, return_tensors="pt")).hidden_states
    for layer in range(2):
        block = model.transformer.h[layer]
        width, heads = model.config.n_embd, model.config.n_head
        d = width // heads
        qkv = (block.ln_1(hidden[layer][0]) @ block.attn.c_attn.weight + block.attn.c_attn.bias).detach()
        v = qkv[:, 2 * width:]
        w = block.attn.c_proj.weight.detach()  # Conv1D: [in, out]
        _check_norm(insp, "decoder", layer, [v[:, h * d:(h + 1) * d] for h in range(heads)],
                    [w[h * d:(h + 1) * d] for h in range(heads)])


# ---- value zeroing ------------------------------------------------------------------------

def test_value_zeroing_against_rerunning_the_layer(tiny):
    model, tok = tiny("bert")
    insp = headscope.inspect((model, tok), TEXT, readings=["valuezeroing"])
    hidden = _hidden(model, tok(TEXT, return_tensors="pt")).hidden_states
    n = hidden[0].shape[1]
    per_layer = []
    for layer in range(2):
        module = model.bert.encoder.layer[layer]
        scores = torch.zeros(n, n)
        for j in range(n):
            handle = module.attention.self.value.register_forward_hook(zeroing(j))
            try:
                with torch.no_grad():
                    out = module(hidden[layer])
            finally:
                handle.remove()
            out = out[0] if isinstance(out, tuple) else out
            scores[:, j] = 1 - torch.nn.functional.cosine_similarity(out[0].double(), hidden[layer + 1][0].double(),
                                                                     dim=-1)
        expected = scores / scores.sum(-1, keepdim=True)
        per_layer.append(expected)
        assert torch.allclose(reading_map(insp, f"encoder.{layer}.valuezeroing"), expected, atol=1e-4)
    assert torch.allclose(reading_map(insp, "encoder.valuezeroing"), per_layer[1] @ per_layer[0], atol=1e-4)


# ---- ALTI ---------------------------------------------------------------------------------

def test_alti_rule_by_hand():
    # one pre-norm layer, one head of width 2, W_O = I, no bias; two tokens x0 = (1, 0), x1 = (0, 2)
    probs = torch.tensor([[[0.5, 0.5], [0.0, 1.0]]])
    values = torch.tensor([[[2.0, 0.0], [0.0, 2.0]]])
    residual = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    norm = alti.LayerNormParams(None, None, 1e-5, pre=True)
    parts, whole = alti.block_parts(probs, values, torch.eye(2), torch.zeros(2), residual, norm, None)
    # token 0: T(x0) = 0.5 (2, 0) + (1, 0) = (2, 0), T(x1) = 0.5 (0, 2) = (0, 1); y0 = (2, 1), ||y0||_1 = 3
    #   c00 = 3 - |(0, 1)|_1 = 2, c01 = 3 - |(2, 0)|_1 = 1  -> (2/3, 1/3)
    # token 1: T(x0) = 0, T(x1) = (0, 2) + (0, 2) = (0, 4); y1 = (0, 4)
    #   c10 = 4 - 4 = 0, c11 = 4 - 0 = 4                   -> (0, 1)
    assert torch.allclose(parts[0], torch.tensor([[2.0, 0.0], [0.0, 1.0]]))
    assert torch.allclose(alti.contributions(parts, whole), torch.tensor([[2 / 3, 1 / 3], [0.0, 1.0]]))


def test_alti_clips_parts_pointing_away():
    parts = torch.tensor([[[3.0, 0.0], [-1.0, 0.0]]])  # y = (2, 0); the second part points away: 2 - 3 < 0 -> 0
    assert alti.contributions(parts, parts.sum(1)).tolist() == [[1.0, 0.0]]


def test_alti_post_norm_decomposition_is_the_models_layer_norm_output(tiny):
    model, tok = tiny("bert")
    enc = tok(TEXT, return_tensors="pt")
    from headscope.mixing.blocks import capture_blocks
    from headscope.models.structure import describe

    outputs = []
    handle = model.bert.encoder.layer[1].attention.output.LayerNorm.register_forward_hook(
        lambda m, a, o: outputs.append(o.detach()))
    try:
        blocks = capture_blocks(model, enc, describe(model), ["encoder"])
    finally:
        handle.remove()
    b = blocks[("encoder", 1)]
    assert not b.norm.pre
    _, whole = alti.block_parts(b.probs, b.values, b.weight, b.bias, b.residual, b.norm, b.norm_input)
    assert torch.allclose(whole, outputs[0][0], atol=1e-4)  # sum of the parts + bias terms = LN(z)


def test_alti_pre_norm_is_detected_and_sums_to_the_residual_stream(tiny):
    model, tok = tiny("gpt2")
    from headscope.mixing.blocks import capture_blocks
    from headscope.models.structure import describe

    enc = tok(TEXT, return_tensors="pt")
    blocks = capture_blocks(model, enc, describe(model), ["decoder"])
    hidden = _hidden(model, enc).hidden_states
    b = blocks[("decoder", 0)]
    assert b.norm.pre and torch.allclose(b.residual, hidden[0][0])
    mid = []
    handle = model.transformer.h[0].ln_2.register_forward_pre_hook(lambda m, a: mid.append(a[0].detach()))
    try:
        _hidden(model, enc)
    finally:
        handle.remove()
    _, whole = alti.block_parts(b.probs, b.values, b.weight, b.bias, b.residual, b.norm, b.norm_input)
    assert torch.allclose(whole, mid[0][0], atol=1e-4)  # residual + attention output = the second norm's input


def test_alti_rows_and_alti_plus_split(tiny):
    model, tok = tiny("marian")
    insp = headscope.inspect((model, tok), TEXT, target="le chat", readings=["alti"])
    for name in ("encoder.alti", "encoder.0.alti", "decoder.1.alti"):
        assert torch.allclose(reading_map(insp, name).sum(-1), torch.ones(1), atol=1e-5)
        assert (reading_map(insp, name) >= 0).all()
    rows = reading_map(insp, "cross.alti").sum(-1) + reading_map(insp, "decoder.alti").sum(-1)
    assert torch.allclose(rows, torch.ones_like(rows), atol=1e-5)
    split = source_target_split(insp)
    assert len(split.to_rows()) == len(insp.target_tokens) and "source" in split.table()


# ---- gradient-weighted rollout --------------------------------------------------------------

def _fused(attentions, grads):
    return [(g * a).clamp(min=0).mean(1)[0] for a, g in zip(attentions, grads)]


def test_grad_rollout_against_formula_two_layers(tiny):
    model, tok = tiny("bert", layers=2)
    insp = headscope.inspect((model, tok), TEXT, readings=["gradrollout"])
    enc = tok(TEXT, return_tensors="pt")
    out = model(**enc, output_attentions=True)
    logit = out.logits[0, out.logits[0].argmax()]
    grads = torch.autograd.grad(logit, out.attentions)
    a1, a2 = _fused(out.attentions, grads)
    eye = torch.eye(a1.shape[0])
    r = eye + a1 @ eye
    r = r + a2 @ r
    assert torch.allclose(reading_map(insp, "encoder.gradrollout"), r.detach(), atol=1e-6)


def test_grad_rollout_encoder_decoder_per_step(tiny):
    model, tok = tiny("marian")
    insp = headscope.inspect((model, tok), TEXT, target="le chat", readings=["gradrollout"])
    enc = tok(TEXT, text_target="le chat", return_tensors="pt")
    from headscope.models.architectures import decoder_inputs

    dec = decoder_inputs(model, enc["labels"], tok.pad_token_id)

    def bar(r):  # eqs. 8-9; rows the step's gradient never reaches are all zero and stay so
        hat = r - torch.eye(len(r))
        total = hat.sum(-1, keepdim=True)
        return torch.nan_to_num(hat / total) + torch.eye(len(r))

    rows = []
    for t in range(dec.shape[1]):
        out = model(input_ids=enc["input_ids"], decoder_input_ids=dec, output_attentions=True)
        logit = out.logits[0, t, out.logits[0, t].argmax()]
        atts = list(out.encoder_attentions) + list(out.decoder_attentions) + list(out.cross_attentions)
        grads = torch.autograd.grad(logit, atts, allow_unused=True)
        grads = [torch.zeros_like(a) if g is None else g for a, g in zip(atts, grads)]
        fused = _fused(atts, grads)
        enc_a, dec_a, cross_a = fused[:2], fused[2:4], fused[4:]
        s, n = enc_a[0].shape[0], dec_a[0].shape[0]
        r_ss = torch.eye(s)
        for a in enc_a:
            r_ss = r_ss + a @ r_ss
        r_tt, r_ts = torch.eye(n), torch.zeros(n, s)
        for a_self, a_cross in zip(dec_a, cross_a):
            r_tt, r_ts = r_tt + a_self @ r_tt, r_ts + a_self @ r_ts
            r_ts = r_ts + bar(r_tt).T @ a_cross @ bar(r_ss)
        rows.append(r_ts[t].detach())
    assert torch.allclose(reading_map(insp, "cross.gradrollout"), torch.stack(rows), atol=1e-6)


# ---- consumers, storage, model state --------------------------------------------------------

def test_map_readings_lists_mixing_and_save_load(tiny, tmp_path):
    model, tok = tiny("marian")
    insp = headscope.inspect((model, tok), TEXT, target="le chat", readings=["all"])
    names = [r.name for r in map_readings(insp, "cross")]
    assert "cross.0.norm" in names and "cross.0.1.norm" in names and "cross.alti" in names
    assert "cross.gradrollout" in names and names.index("cross.rollout") < names.index("cross.0.norm")
    assert "cross.0.1.norm" not in [r.name for r in map_readings(insp, "cross", heads=False)]
    assert "encoder.valuezeroing" in [r.name for r in map_readings(insp, "encoder")]
    loaded = Inspection.load(insp.save(tmp_path / "insp"))
    assert loaded == insp and torch.equal(reading_map(loaded, "cross.alti"), reading_map(insp, "cross.alti"))


def test_missing_reading_names_the_fix(tiny):
    model, tok = tiny("bert")
    insp = headscope.inspect((model, tok), TEXT)
    assert insp.mixing == {}
    with pytest.raises(InputError, match="readings=\\['alti'\\]"):
        reading_map(insp, "encoder.alti")
    with pytest.raises(InputError, match="unknown"):
        headscope.inspect((model, tok), TEXT, readings=["saliency"])


def test_batches_equal_single_examples(tiny):
    model, tok = tiny("bert")
    texts = [TEXT, "a dog"]
    batch = headscope.inspect((model, tok), texts, readings=["norm", "alti"])
    for text, insp in zip(texts, batch):
        alone = headscope.inspect((model, tok), text, readings=["norm", "alti"])
        assert alone.mixing.keys() == insp.mixing.keys()
        assert all(torch.allclose(alone.mixing[k], insp.mixing[k], atol=1e-5) for k in insp.mixing)


@pytest.mark.parametrize("family", ["bert", "marian", "gpt2"])
def test_model_left_as_it_was(family):
    from headscope.models.tiny import build_tiny

    model, tok = build_tiny(family)
    model.train()
    before, flags = model_state(model), [p.requires_grad for p in model.parameters()]
    kw = {"target": "le chat"} if family == "marian" else {}
    headscope.inspect((model, tok), TEXT, readings=["all"], **kw)
    assert_same_state(before, model_state(model))
    assert all(p.grad is None for p in model.parameters()) and flags == [p.requires_grad for p in model.parameters()]


def test_model_left_as_it_was_on_failure(monkeypatch):
    from headscope.models.tiny import build_tiny

    model, tok = build_tiny("bert")
    before = model_state(model)

    def fail(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(extras_module.Extras, "on_value", fail)
    for reading in ("norm", "valuezeroing"):
        with pytest.raises(RuntimeError, match="boom"):
            headscope.inspect((model, tok), TEXT, readings=[reading])
        assert_same_state(before, model_state(model))


def test_nothing_extra_captured_unless_asked(tiny, monkeypatch):
    made = []
    original = extras_module.Extras.__init__

    def counting(self, *args, **kwargs):
        made.append(1)
        original(self, *args, **kwargs)

    monkeypatch.setattr(extras_module.Extras, "__init__", counting)
    model, tok = tiny("bert")
    insp = headscope.inspect((model, tok), TEXT)
    assert not made and insp.mixing == {}
    headscope.inspect((model, tok), TEXT, readings=["norm"])
    assert made


def test_unsupported_family_names_the_model(tiny, monkeypatch):
    model, tok = tiny("bert")
    monkeypatch.setattr(families, "FAMILIES", ())
    with pytest.raises(UnsupportedModelError, match="BertForSequenceClassification.*supported families"):
        headscope.inspect((model, tok), TEXT, readings=["norm"])


def test_value_zeroing_decoder_against_a_whole_forward(tiny):
    model, tok = tiny("marian")
    insp = headscope.inspect((model, tok), TEXT, target="le chat", readings=["valuezeroing"])
    enc = tok(TEXT, text_target="le chat", return_tensors="pt")
    from headscope.models.architectures import decoder_inputs

    batch = {"input_ids": enc["input_ids"], "decoder_input_ids": decoder_inputs(model, enc["labels"], tok.pad_token_id)}
    projections = [layer.self_attn.v_proj for layer in model.model.decoder.layers]
    for layer, expected in enumerate(value_zeroing_by_hand(model, batch, projections, lambda out: out.decoder_hidden_states)):
        assert torch.allclose(reading_map(insp, f"decoder.{layer}.valuezeroing"), expected, atol=1e-4)


def test_alti_plus_composition_by_hand():
    encoder = torch.tensor([[1.0, 0.0], [0.5, 0.5]])      # rolled encoder contributions
    decoder = [torch.tensor([[1.0]])]                     # one target token, one layer
    cross = [torch.tensor([[0.2, 0.3, 0.5]])]             # two source parts, then the residual
    r_ts, r_tt = alti.alti_plus(encoder, decoder, cross)
    # R_ts = 0.5 * 0 + (0.2, 0.3) @ encoder = (0.2 + 0.15, 0.15); R_tt = 0.5 * 1
    assert torch.allclose(r_ts, torch.tensor([[0.35, 0.15]])) and torch.allclose(r_tt, torch.tensor([[0.5]]))


def test_grad_rollout_of_a_frozen_model_restores_its_flags(tiny):
    from headscope.models.tiny import build_tiny

    model, tok = build_tiny("bert")
    reference = headscope.inspect((model, tok), TEXT, readings=["gradrollout"]).mixing["encoder.gradrollout"]
    for p in model.parameters():
        p.requires_grad_(False)
    frozen = headscope.inspect((model, tok), TEXT, readings=["gradrollout"]).mixing["encoder.gradrollout"]
    assert torch.allclose(frozen, reference) and not any(p.requires_grad for p in model.parameters())
    assert all(p.grad is None for p in model.parameters())


def test_chunked_copies_equal_one_batch(tiny, monkeypatch):
    from headscope.mixing import grad_rollout, value_zeroing

    model, tok = tiny("marian")
    whole = headscope.inspect((model, tok), TEXT, target="le chat", readings=["valuezeroing", "gradrollout"]).mixing
    monkeypatch.setattr(value_zeroing, "CHUNK_ELEMENTS", 1)
    monkeypatch.setattr(grad_rollout, "CHUNK_ELEMENTS", 1)
    chunked = headscope.inspect((model, tok), TEXT, target="le chat", readings=["valuezeroing", "gradrollout"]).mixing
    assert whole.keys() == chunked.keys()
    assert all(torch.allclose(whole[k], chunked[k], atol=1e-5) for k in whole)


def test_failing_backward_leaves_a_frozen_model_as_it_was(monkeypatch):
    from headscope.models.tiny import build_tiny

    model, tok = build_tiny("bert")
    for p in model.parameters():
        p.requires_grad_(False)
    before = model_state(model)

    def fail(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(torch.autograd, "grad", fail)
    with pytest.raises(RuntimeError, match="boom"):
        headscope.inspect((model, tok), TEXT, readings=["gradrollout"])
    assert_same_state(before, model_state(model))
    assert not any(p.requires_grad for p in model.parameters())


@pytest.mark.parametrize("family", ["bert", "marian"])
def test_grad_rollout_under_no_grad_and_inference_mode(tiny, family):
    """A caller's torch.no_grad() or torch.inference_mode() does not stop the backward pass it needs."""
    model, tok = tiny(family)
    plain = headscope.inspect((model, tok), "a good film", readings=["gradrollout"])
    for context in (torch.no_grad, torch.inference_mode):
        with context():
            inside = headscope.inspect((model, tok), "a good film", readings=["gradrollout"])
        assert plain.mixing.keys() == inside.mixing.keys()
        assert all(torch.equal(plain.mixing[k], inside.mixing[k]) for k in plain.mixing)
