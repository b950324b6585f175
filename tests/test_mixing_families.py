"""Readings beyond the raw weights on the q/k/v/o_proj family: vision encoders and Llama-style decoders.

Each against an independent computation on tiny models built from configs:

* the block decomposition ALTI and norm-based attention rest on (one part per token, the residual on
  the query's own, layer scale folded in) sums to the model's own residual stream after the attention,
  read with a hook on the block's second layer norm (ViT, DeiT, BEiT and DINOv2 with layer scale, and a
  grouped-query Llama);
* norm-based attention against an explicit loop over BEiT's value vectors, output-projection slices and
  layer scale;
* value zeroing against whole forwards with one token's value vector zeroed by a hook (ViT, Llama);
* blocks whose names match the table but whose residual sum is not residual + attention output (Gemma 2's
  norm on the attention output, Cohere's parallel MLP, OLMo 2's norm after the attention) refuse ALTI by
  name, and a wrongly named projection is refused, instead of giving silently wrong numbers;
* ``headscope.inspect(image, readings=[...])`` keeps the readings on the patch grid, saves and loads
  them, and leaves the model as it was.
"""

from __future__ import annotations

import pytest
import torch
import transformers as tf
from mixing_helpers import run_with_hooks, value_zeroing_by_hand
from test_capture_state import assert_same_state, model_state
from test_vision import _build

import headscope
from headscope.aggregate import reading_map
from headscope.errors import UnsupportedModelError
from headscope.inspection import Inspection
from headscope.mixing.alti import block_parts
from headscope.mixing.blocks import capture_blocks
from headscope.mixing.compute import compute_mixing
from headscope.models.structure import describe
from headscope.models.tiny import DECODERS, ENCODERS, SEQ2SEQ
from headscope.vision import grid_map, shapes_batch

VISION = ("vit", "deit", "beit", "dinov2-registers")


def _llama():
    torch.manual_seed(0)
    config = tf.LlamaConfig(vocab_size=50, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                            num_attention_heads=4, num_key_value_heads=2, attn_implementation="eager")
    return tf.LlamaForCausalLM(config).eval()


def _vision(family: str):
    """A tiny image classifier and its processor; layer scales moved away from their initial constants."""
    torch.manual_seed(0)
    model, processor = _build(family)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith(("lambda_1", "lambda1")):
                param.uniform_(0.2, 1.5)
    return model, processor


def _model_and_inputs(family: str):
    if family == "llama":
        return _llama(), {"input_ids": torch.tensor([[3, 7, 9, 11, 4]])}, "decoder"
    return _vision(family)[0], {"pixel_values": torch.randn(1, 3, 32, 32)}, "encoder"


def _after_attention_norm(layer: torch.nn.Module) -> torch.nn.Module:
    """The norm whose input is the residual stream after the attention block."""
    for name in ("layernorm_after", "norm2", "post_attention_layernorm"):
        if hasattr(layer, name):
            return getattr(layer, name)
    raise AssertionError(f"no post-attention norm in {type(layer).__name__}")


@pytest.mark.parametrize("family", [*VISION, "llama"])
def test_block_parts_sum_to_the_models_residual_stream(family):
    model, inputs, kind = _model_and_inputs(family)
    blocks = capture_blocks(model, inputs, describe(model), [kind])
    assert len(blocks) == 2
    seen, handles = {}, []
    for (_, layer), b in blocks.items():
        handles.append(_after_attention_norm(b.block.layer).register_forward_pre_hook(
            lambda module, args, layer=layer: seen.__setitem__(layer, args[0][0].detach())))
    run_with_hooks(model, inputs, handles)
    for (_, layer), b in blocks.items():
        assert b.norm is not None and b.norm.pre  # pre-norm blocks, read from the order of the calls
        parts, whole = block_parts(b.probs, b.values, b.weight, b.bias, b.residual, b.norm, b.norm_input)
        assert parts.shape[:2] == (whole.shape[0], whole.shape[0])
        assert torch.allclose(whole, seen[layer], atol=1e-5), (family, layer, float((whole - seen[layer]).abs().max()))


@pytest.mark.parametrize("family", ["beit", "dinov2-registers"])
def test_layer_scale_is_found_and_matters(family):
    model, inputs, kind = _model_and_inputs(family)
    b = capture_blocks(model, inputs, describe(model), [kind])[(kind, 0)]
    assert b.block.scale is not None and not torch.allclose(b.block.scale, torch.ones_like(b.block.scale))
    unscaled = b.block.out_proj.weight.detach().T
    assert not torch.allclose(b.weight, unscaled)  # without the scale the parts would not sum to the stream
    assert torch.allclose(b.weight, unscaled * b.block.scale.detach(), atol=1e-6)


def test_norm_beit_against_loop():
    model, processor = _vision("beit")
    image = shapes_batch(1, seed=3, size=32).images[0]
    insp = headscope.inspect((model, processor), image, readings=["norm"])
    layer_module = model.beit.layers[1]
    kept = {}
    handle = layer_module.attention.v_proj.register_forward_hook(lambda m, a, out: kept.__setitem__("v", out[0].detach()))
    try:
        with torch.no_grad():
            model(pixel_values=insp.pixel_values[None])
    finally:
        handle.remove()
    heads, dim = 4, 8
    w_o, scale = layer_module.attention.o_proj.weight.detach(), layer_module.lambda_1.detach()
    alpha = insp.attentions["encoder"][1]
    n = alpha.shape[-1]
    expected_heads = torch.zeros(heads, n, n)
    expected_layer = torch.zeros(n, n)
    for i in range(n):
        for j in range(n):
            total = torch.zeros(w_o.shape[0])
            for h in range(heads):
                f = (w_o[:, h * dim:(h + 1) * dim] @ kept["v"][j, h * dim:(h + 1) * dim]) * scale
                expected_heads[h, i, j] = alpha[h, i, j] * f.norm()
                total += alpha[h, i, j] * f
            expected_layer[i, j] = total.norm()
    assert torch.allclose(reading_map(insp, "encoder.1.norm"), expected_layer, atol=1e-5)
    for h in range(heads):
        assert torch.allclose(reading_map(insp, f"encoder.1.{h}.norm"), expected_heads[h], atol=1e-5)


@pytest.mark.parametrize("family", ["vit", "llama"])
def test_value_zeroing_against_whole_forwards(family):
    if family == "llama":
        model, inputs, kind = _model_and_inputs(family)
        maps = compute_mixing(model, inputs, describe(model), ["valuezeroing"])
        value_projections = [layer.self_attn.v_proj for layer in model.model.layers]
    else:
        model, processor = _vision(family)
        kind = "encoder"
        insp = headscope.inspect((model, processor), shapes_batch(1, seed=5, size=32).images[0], readings=["valuezeroing"])
        inputs, maps = {"pixel_values": insp.pixel_values[None]}, insp.mixing
        value_projections = [layer.attention.v_proj for layer in model.vit.layers]
    for layer, expected in enumerate(value_zeroing_by_hand(model, inputs, value_projections)):
        assert torch.allclose(maps[f"{kind}.{layer}.valuezeroing"], expected, atol=1e-4), (family, layer)


def test_image_inspection_keeps_readings_saves_and_leaves_the_model(tmp_path):
    model, processor = _vision("deit")
    before = model_state(model)
    images = list(shapes_batch(2, seed=9, size=32).images)
    insps = headscope.inspect((model, processor), images, readings=["all"])
    assert_same_state(before, model_state(model))
    insp = insps[1]
    n = insp.attentions["encoder"].shape[-1]
    for name in ("encoder.alti", "encoder.valuezeroing", "encoder.gradrollout", "encoder.1.norm", "encoder.0.2.norm"):
        assert reading_map(insp, name).shape == (n, n)
    assert torch.allclose(reading_map(insp, "encoder.alti").sum(-1), torch.ones(n), atol=1e-5)  # rows are shares
    single = headscope.inspect((model, processor), images[1], readings=["all"])
    for name, m in insp.mixing.items():  # a batch gives what one image alone gives
        assert torch.allclose(m, single.mixing[name], atol=1e-5), name
    cells = grid_map(insp, "encoder.alti").values
    assert cells.shape == insp.patch_grid
    insp.save(tmp_path / "insp")
    loaded = Inspection.load(tmp_path / "insp")
    assert loaded.mixing.keys() == insp.mixing.keys()
    assert all(torch.equal(loaded.mixing[k], m) for k, m in insp.mixing.items())


@pytest.mark.parametrize("family", [*ENCODERS, *DECODERS, *SEQ2SEQ])
def test_every_text_family_block_decomposes_to_its_modules_outputs(family, tiny):
    """For every block of every tiny text family: the parts sum to what the model computes — the output
    projection's own output added to the residual (pre-norm blocks), or the block's own layer norm's
    output (post-norm blocks), both read with hooks on the modules."""
    model, tok = tiny(family)
    if family in SEQ2SEQ:
        enc = tok("the cat sat on a mat", text_target="le chat", return_tensors="pt")
        from headscope.models.architectures import decoder_inputs

        inputs = {"input_ids": enc["input_ids"],
                  "decoder_input_ids": decoder_inputs(model, enc["labels"], tok.pad_token_id)}
    else:
        inputs = dict(tok("the cat sat on a mat", return_tensors="pt"))
    _check_decomposition(model, inputs)


def test_cross_attention_of_a_q_k_v_o_proj_decoder_reads_its_own_norm():
    """Moonshine's decoder layer: input_layernorm, self-attention, post_attention_layernorm, cross-attention:
    the cross block's residual is the one entering post_attention_layernorm, and ALTI+ runs."""
    torch.manual_seed(0)
    config = tf.MoonshineConfig(vocab_size=50, hidden_size=32, intermediate_size=64, encoder_num_hidden_layers=2,
                                decoder_num_hidden_layers=2, encoder_num_attention_heads=4,
                                decoder_num_attention_heads=4, encoder_num_key_value_heads=4,
                                decoder_num_key_value_heads=4, attn_implementation="eager")
    model = tf.MoonshineForConditionalGeneration(config).eval()
    inputs = {"input_values": torch.randn(1, 4000), "decoder_input_ids": torch.tensor([[1, 5, 6]])}
    blocks = _check_decomposition(model, inputs)
    assert blocks[("cross", 0)].block.norm is model.model.decoder.layers[0].post_attention_layernorm
    maps = compute_mixing(model, inputs, describe(model), ["alti"])
    rows = maps["cross.alti"].sum(-1) + maps["decoder.alti"].sum(-1)
    assert torch.allclose(rows, torch.ones_like(rows), atol=1e-5)  # source + target shares


def _check_decomposition(model, inputs) -> dict:
    structure = describe(model)
    blocks = capture_blocks(model, inputs, structure, structure.kinds)
    projected, normed, handles = {}, {}, []

    def keep(into: dict, key: tuple):
        def hook(module, args, out) -> None:  # the first call of the forward: the block's own
            into.setdefault(key, out[0].detach())
        return hook

    for key, b in blocks.items():
        handles.append(b.block.out_proj.register_forward_hook(keep(projected, key)))
        if not b.norm.pre:
            handles.append(b.block.norm.register_forward_hook(keep(normed, key)))
    run_with_hooks(model, inputs, handles)
    assert {k for k, _ in blocks} == set(structure.kinds)
    for (kind, layer), b in blocks.items():
        parts, whole = block_parts(b.probs, b.values, b.weight, b.bias, b.residual, b.norm, b.norm_input,
                                   cross=kind == "cross")
        expected = normed[(kind, layer)] if not b.norm.pre else b.residual + projected[(kind, layer)]
        assert torch.allclose(whole, expected, atol=1e-5), (kind, layer, float((whole - expected).abs().max()))
    return blocks


def _decoder(config_class, model_class, **extra):
    torch.manual_seed(0)
    config = config_class(vocab_size=50, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                          num_attention_heads=4, attn_implementation="eager", **extra)
    return model_class(config).eval()


@pytest.mark.parametrize("build", [
    lambda: _decoder(tf.Gemma2Config, tf.Gemma2ForCausalLM, num_key_value_heads=2, head_dim=8),  # norm on attn output
    lambda: _decoder(tf.CohereConfig, tf.CohereForCausalLM, num_key_value_heads=2),  # attention and MLP in parallel
    lambda: _decoder(tf.Olmo2Config, tf.Olmo2ForCausalLM, num_key_value_heads=2),  # no norm before the attention
], ids=["gemma2", "cohere", "olmo2"])
def test_blocks_that_add_more_than_their_attention_refuse_alti_but_keep_norm(build):
    """The family table matches these blocks' names, but their residual sum is not residual + attention output:
    ALTI is refused by name (it would be silently wrong), norm-based attention still equals its loop."""
    model = build()
    inputs = {"input_ids": torch.tensor([[3, 7, 9, 11, 4]])}
    structure = describe(model)
    before = model_state(model)
    with pytest.raises(UnsupportedModelError, match="ALTI"):
        compute_mixing(model, inputs, structure, ["alti"])
    assert_same_state(before, model_state(model))
    maps = compute_mixing(model, inputs, structure, ["norm"])
    b = capture_blocks(model, inputs, structure, ["decoder"])[("decoder", 1)]
    attention = model.model.layers[1].self_attn
    heads, dim = b.probs.shape[0], b.values.shape[-1]
    w_o = attention.o_proj.weight.detach()
    for h in range(heads):
        f = b.values[h] @ w_o[:, h * dim:(h + 1) * dim].T  # [key, width], by the module's own weight
        assert torch.allclose(maps[f"decoder.1.{h}.norm"], b.probs[h] * f.norm(dim=-1)[None, :], atol=1e-5)


def test_a_projection_that_is_not_the_attentions_output_is_refused(monkeypatch):
    """Were the table to name the wrong projection, the check of the forward refuses instead of reading it."""
    from headscope.mixing import families

    model = _llama()
    wrong = families.Family("wrong", "k_proj", {families.ANY: "../input_layernorm"})
    monkeypatch.setattr(families, "FAMILIES", (wrong,))
    with pytest.raises(UnsupportedModelError, match="does not output its heads' weighted value vectors"):
        compute_mixing(model, {"input_ids": torch.tensor([[3, 7, 9]])}, describe(model), ["norm"])


def test_a_large_residual_cannot_hide_a_multiplier_on_the_attention():
    """Granite scales the attention output by residual_multiplier before adding it; with one token's embedding
    at 300 (large first-token values are common) the residual dwarfs the error, and ALTI is still refused."""
    model = _decoder(tf.GraniteConfig, tf.GraniteForCausalLM, num_key_value_heads=2, residual_multiplier=0.5)
    with torch.no_grad():
        model.model.embed_tokens.weight[3] = 300.0
    with pytest.raises(UnsupportedModelError, match="ALTI"):
        compute_mixing(model, {"input_ids": torch.tensor([[3, 7, 9, 11, 4]])}, describe(model), ["alti"])


def test_bfloat16_models_pass_the_checks_at_their_own_rounding():
    model = _llama()
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight.mul_(40)  # outputs far above 1, where bfloat16 steps are coarse
    model = model.to(torch.bfloat16)
    maps = compute_mixing(model, {"input_ids": torch.tensor([[3, 7, 9, 11, 4]])}, describe(model), ["norm", "alti"])
    assert torch.allclose(maps["decoder.alti"].sum(-1), torch.ones(5), atol=1e-3)


# the types of transformers' auto mappings on which a sweep of the readings (every captured type, built tiny)
# ended in a raw exception; each now refuses by name, with the model left as it was
REFUSED = [
    ("causal-lm", "xlm", "valuezeroing"),              # the encoder bypasses the attention interface
    ("causal-lm", "gptj", "valuezeroing"),             # the decoder bypasses it
    ("causal-lm", "hrm_text", "valuezeroing"),         # layer modules applied in cycles
    ("causal-lm", "hrm_text", "gradrollout"),          # cycles run under torch.no_grad
    ("causal-lm", "hy_v4", "valuezeroing"),            # several residual streams per token
    ("causal-lm", "gemma3n_text", "valuezeroing"),     # a stacked (AltUp) layer input
    ("causal-lm", "zamba", "alti"),                    # the shared block reads a wider input than it writes
    ("causal-lm", "deepseek_v4", "gradrollout"),       # maps with more keys than tokens
    ("seq2seq-lm", "bigbird_pegasus", "gradrollout"),  # encoder outside the interface, cross and decoder in it
    ("causal-lm", "musicgen", "gradrollout"),          # several codebook rows of output per example
]


@pytest.fixture(scope="module")
def sweep():
    import importlib
    import sys
    from pathlib import Path

    path = str(Path(__file__).resolve().parents[1] / "benchmarks")
    if path not in sys.path:
        sys.path.insert(0, path)
    return importlib.import_module("coverage_sweep")


@pytest.mark.parametrize(("mapping", "model_type", "method"), REFUSED, ids=["-".join(r) for r in REFUSED])
def test_readings_the_sweep_found_raising_now_refuse_by_name(sweep, mapping, model_type, method):
    entry = next((e for e in sweep.entries() if e.mapping == mapping and e.model_type == model_type), None)
    if entry is None:
        pytest.fail(f"{mapping}/{model_type} is not in this transformers' auto mappings; update REFUSED")
    model = sweep.build(entry)
    rows = getattr(model.config.get_text_config(), "num_codebooks", 1)  # rows of one example (musicgen: codebooks)
    inputs = {k: v[:rows] if isinstance(v, torch.Tensor) and v.ndim and v.shape[0] == 2 * rows else v
              for k, v in sweep.inputs_for(entry, model).items()}  # the sweep's batch of two: the first example
    with torch.no_grad():
        model(**inputs)  # BigBird swaps its own attention modules on a first short input: let it, before comparing
    before = model_state(model)
    with pytest.raises(UnsupportedModelError):
        compute_mixing(model, inputs, describe(model), [method])
    assert_same_state(before, model_state(model))


def test_a_decoder_whose_cross_attention_never_runs_is_read_without_it():
    """BartForCausalLM has cross-attention modules but no encoder states: they never run, so the decoder's
    readings are computed (and checked) alone, where a kind that runs outside the interface is refused."""
    torch.manual_seed(0)
    config = tf.BartConfig(vocab_size=50, d_model=32, decoder_layers=2, encoder_layers=2, decoder_attention_heads=4,
                           encoder_attention_heads=4, decoder_ffn_dim=37, encoder_ffn_dim=37,
                           attn_implementation="eager")
    model = tf.BartForCausalLM(config).eval()
    structure = describe(model)
    assert "cross" in structure.kinds
    maps = compute_mixing(model, {"input_ids": torch.tensor([[3, 7, 9, 11]])}, structure, ["norm", "alti"])
    assert not any(name.startswith("cross") for name in maps)
    assert torch.allclose(maps["decoder.alti"].sum(-1), torch.ones(4), atol=1e-5)
    assert maps["decoder.1.norm"].shape == (4, 4)
