"""Every attention architecture in the installed transformers: captured exactly, or refused by name.

The sweep (``benchmarks/coverage_sweep.py``) enumerates the seq2seq-LM, sequence-classification,
causal-LM and image-classification auto mappings of the installed transformers, builds every type
tiny from its config and checks headscope against the model's own eager ``output_attentions``;
``docs/coverage.md`` must say what it finds. The tests before it pin the mechanisms on single types, fast.
"""

from __future__ import annotations

import importlib
import sys
import threading
from pathlib import Path

import pytest
import torch
from conftest import TEXTS

import headscope
from headscope.capture import run_capture, split_examples, unband, unblock
from headscope.capture.interface import ATTN_NAME, CAPTURE_NAME
from headscope.errors import InputError, UnsupportedModelError

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def sweep():
    """The sweep script as a module (its workers import it by name)."""
    path = str(ROOT / "benchmarks")
    if path not in sys.path:
        sys.path.insert(0, path)
    return importlib.import_module("coverage_sweep")


def entry(sweep, model_type, mapping):
    found = [e for e in sweep.entries() if e.model_type == model_type and e.mapping == mapping]
    assert found, f"{mapping}/{model_type} is not in the installed transformers' mappings"
    return found[0]


def built(sweep, model_type, mapping):
    e = entry(sweep, model_type, mapping)
    model = sweep.build(e)
    return e, model, sweep.inputs_for(e, model)


# ---- single types ----------------------------------------------------------------------------

def test_encoder_decoder_classifier_is_inspected_without_generate(sweep):
    e, model, _ = built(sweep, "bart", "sequence-classification")
    assert not model.can_generate()
    assert sweep.check(e).status == "exact"  # inspect included: maps equal the model's own, a label predicted
    tok = sweep._tokenizer("metaspace", model.config.vocab_size)
    model.config.eos_token_id, model.config.pad_token_id = tok.eos_token_id, tok.pad_token_id  # the classifier reads </s>
    insp = headscope.inspect((model, tok), TEXTS[0])
    assert "label" in insp.prediction and insp.target_tokens == insp.source_tokens and not insp.forced
    with pytest.raises(InputError, match="encoder-decoder classifier"):
        headscope.inspect((model, tok), TEXTS[0], target="a target")


@pytest.mark.parametrize("model_type", ["llama", "gpt2", "bloom", "openai-gpt"])
def test_decoder_only_classifiers_are_decoder(sweep, model_type):
    _, model, inputs = built(sweep, model_type, "sequence-classification")
    _, cap = run_capture(model, inputs)
    assert list(cap.maps) == ["decoder"]
    assert (cap.maps["decoder"].triu(1) == 0).all()


def test_layers_of_different_shapes_stay_per_layer(sweep):
    e, model, inputs = built(sweep, "funnel", "sequence-classification")
    _, cap = run_capture(model, inputs)
    maps = cap.maps["encoder"]
    assert isinstance(maps, list) and len({tuple(t.shape) for t in maps}) > 1
    assert sweep.compare(e, model, sweep.eager_reference(model, inputs), cap.maps, inputs, cap.layers) == ""
    mask = torch.ones(2, inputs["input_ids"].shape[1], dtype=torch.long)
    per_example = split_examples(maps, mask)
    assert len(per_example) == 2 and [t.shape for t in per_example[0]] == [t.shape[1:] for t in maps]


def test_shared_layer_gives_one_map_per_application(sweep):
    _, model, inputs = built(sweep, "albert", "sequence-classification")
    model.config.num_hidden_layers = 3  # one shared layer applied three times
    structure = headscope.models.describe(model)
    assert structure.layers("encoder") == 3 and "applied 3 times" in str(structure)
    _, cap = run_capture(model, inputs, structure=structure, layers=[2])
    assert cap.layers == {"encoder": [2]}
    with torch.no_grad():
        own = model(**inputs, output_attentions=True).attentions
    assert len(own) == 3 and torch.equal(cap.maps["encoder"][:, 0], own[2])


def test_two_calls_of_one_module_are_one_map(sweep):
    _, model, inputs = built(sweep, "diffllama", "causal-lm")  # differential attention: two softmax calls
    _, cap = run_capture(model, inputs)
    assert cap.layers == {"decoder": [0, 1]}


def test_linear_attention_layers_keep_their_numbers(sweep):
    """MiniMax returns its linear-attention layers' KV states among its attentions: headscope leaves them
    out (no [query, key] map) and numbers the softmax layers as the model does."""
    e, model, inputs = built(sweep, "minimax", "causal-lm")
    _, cap = run_capture(model, inputs)
    types = model.config.layer_types
    assert cap.layers["decoder"] == [i for i, t in enumerate(types) if t == "full_attention"] != []
    with torch.no_grad():
        own = model(**inputs, output_attentions=True).attentions
    assert len(own) == len(types) and torch.equal(cap.maps["decoder"][:, 0], own[cap.layers["decoder"][0]])


def test_eager_branches_are_taken_inside_a_capture(sweep):
    """DeepSeek sparse attention folds its indexer into the mask only for eager/sdpa: the capture name reads as eager."""
    assert CAPTURE_NAME == "eager" and CAPTURE_NAME in ("eager", "sdpa") and CAPTURE_NAME != "sdpa"
    assert hash(CAPTURE_NAME) == hash(ATTN_NAME) and {ATTN_NAME: 1}[CAPTURE_NAME] == 1
    e, model, _ = built(sweep, "deepseek_v32", "causal-lm")
    assert sweep.check(e).status == "exact"
    assert model.config._attn_implementation == "eager" and type(model.config._attn_implementation) is str


def test_legacy_sdpa_class_captured_and_left_alone(sweep):
    e, eager, inputs = built(sweep, "data2vec-vision", "image-classification")
    sdpa = sweep.build(e, "sdpa", state=eager.state_dict())
    with torch.no_grad():
        before = sdpa(**inputs).logits
    _, cap_e = run_capture(eager, inputs)
    results = []

    def plain():
        for _ in range(5):
            with torch.no_grad():
                results.append(torch.equal(sdpa(**inputs).logits, before))

    thread = threading.Thread(target=plain)
    thread.start()
    _, cap_s = run_capture(sdpa, inputs)
    thread.join()
    assert torch.equal(cap_e.maps["encoder"], cap_s.maps["encoder"])
    assert all(results) and not any("forward" in m.__dict__ for m in sdpa.modules())


@pytest.mark.parametrize("model_type, mapping", [("longformer", "sequence-classification"), ("led", "seq2seq-lm"),
                                                 ("longt5", "seq2seq-lm"), ("prophetnet", "seq2seq-lm"),
                                                 ("squeezebert", "sequence-classification")])
def test_other_layouts_become_probabilities_and_say_so(sweep, model_type, mapping):
    e, model, inputs = built(sweep, model_type, mapping)
    structure = headscope.models.describe(model)
    assert structure.notes and "headscope returns" in str(structure) or "headscope keeps" in str(structure)
    _, cap = run_capture(model, inputs, structure=structure)
    for maps in cap.maps.values():
        assert maps.min() >= 0 and maps.max() <= 1 and maps.shape[-1] <= inputs["input_ids"].shape[1]
    assert sweep.compare(e, model, sweep.eager_reference(model, inputs), cap.maps, inputs, cap.layers) == ""


def test_unband_and_unblock_equal_entrywise_references(sweep):
    torch.manual_seed(0)
    band = torch.rand(2, 3, 9, 1 + 2 * 4 + 1)
    band[0, :, 2] = 0  # token 2 of example 0 is global: its row lives in the global probabilities
    glob = torch.rand(2, 3, 12, 1)
    mask = torch.ones(2, 9, dtype=torch.bool)
    assert torch.equal(unband(band, glob, mask), sweep._unband_reference(band, glob, mask))
    blocks = torch.rand(2, 3, 4, 5, 15)
    assert torch.equal(unblock(blocks, 13), sweep._unblock_reference(blocks, 13))


@pytest.mark.parametrize("model_type, mapping, why", [
    ("mamba", "causal-lm", "no attention"), ("rwkv", "causal-lm", "not attention maps"),
    ("cvt", "image-classification", "no attention map to read"), ("resnet", "image-classification", "no attention")])
def test_no_softmax_attention_is_refused_by_name(sweep, model_type, mapping, why):
    _, model, inputs = built(sweep, model_type, mapping)
    with pytest.raises(UnsupportedModelError, match=f"\\({model_type}\\).*{why}"):
        run_capture(model, inputs)


# ---- the sweep ---------------------------------------------------------------------------------

@pytest.mark.slow
def test_every_attention_architecture_exact_or_refused_by_name(sweep, tmp_path):
    """At least 98% of the types whose eager forward returns attention maps are captured exactly,
    every other type is refused with an UnsupportedModelError naming it, and nothing raises
    anything else; docs/coverage.md says exactly what this run found (all but its timing line)."""
    from transformers.models.auto import modeling_auto

    todo = sweep.entries()
    assert len(todo) == sum(len(getattr(modeling_auto, name)) for name in sweep.MAPPINGS.values())
    page = tmp_path / "coverage.md"
    results, seconds = sweep.run(workers=2, timeout=120.0, out=page, command="python benchmarks/coverage_sweep.py")
    committed = (ROOT / "docs" / "coverage.md").read_text(encoding="utf-8").splitlines()[3:]  # after "Made by ..."
    assert page.read_text(encoding="utf-8").splitlines()[3:] == committed, (
        "docs/coverage.md is out of date: run python benchmarks/coverage_sweep.py")
    assert len(results) == len(todo)
    c = sweep.counts(results)
    broken = [f"{r.mapping}/{r.model_type}: {r.status}: {r.reason}" for r in results
              if r.status in ("error", "timeout")]
    assert broken == [], "\n".join(broken)
    missed = [f"{r.mapping}/{r.model_type}: {r.status}: {r.reason}" for r in results
              if r.eager_attentions and r.status not in ("exact", "skipped")]
    assert c["exact_share"] >= 0.98, "\n".join(missed)
    assert all(r.status in ("refused", "skipped") for r in results if r.eager_attentions is False)
    assert all(r.model_type in r.reason for r in results if r.status == "refused")
    assert c["skipped"] <= 0.05 * len(results), [r.reason for r in results if r.status == "skipped"]


def test_every_reading_beyond_the_weights_computed_or_refused_by_name(sweep):
    """Norm, ALTI, value zeroing and gradient rollout on every type of the mappings, built tiny: each is
    computed or refused with a HeadscopeError, the weights left as they were; nothing raises anything else.
    (Computed ones check themselves against the model's own tensors: headscope.mixing.blocks.)"""
    results, _ = sweep.run(workers=2, timeout=120.0, readings=True)
    broken = [f"{r.mapping}/{r.model_type}: {r.status}: {r.reason}" for r in results if r.status in ("error", "timeout")]
    assert broken == [], "\n".join(broken)
    counts = sweep.reading_counts(results)
    assert set(counts) == {"norm", "alti", "valuezeroing", "gradrollout"}
    # how many types each reading covers (measured with transformers 5.23: 247, 182, 267 and 287 of 385),
    # so that a change which starts refusing whole families shows here
    floors = {"norm": 210, "alti": 150, "valuezeroing": 240, "gradrollout": 260}
    assert all(counts[m]["computed"] >= floor for m, floor in floors.items()), counts
    assert sum(r.status == "skipped" for r in results) <= 0.05 * len(results)
