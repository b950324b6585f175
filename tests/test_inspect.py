"""``headscope.inspect``: batches, labels, word ids, generation vs forcing, save/load, bad input."""

from __future__ import annotations

import json
import time

import pytest
import torch
from conftest import TARGETS, TEXTS

import headscope
from headscope import InputError, Inspection, ModelNotFoundError, UnsupportedModelError
from headscope.run import word_ids_from_tokens
from headscope.models.tiny import FAMILIES, SEQ2SEQ


@pytest.mark.parametrize("family", FAMILIES)
def test_batch_equals_single_examples(tiny, family):
    pair = tiny(family)
    kwargs = {"target": TARGETS} if family in SEQ2SEQ else {}
    batch = headscope.inspect(pair, TEXTS, **kwargs)
    assert isinstance(batch, list) and len(batch) == 2
    for i, text in enumerate(TEXTS):
        single = headscope.inspect(pair, text, **({"target": TARGETS[i]} if kwargs else {}))
        assert isinstance(single, Inspection)
        assert single.source_tokens == batch[i].source_tokens
        for kind, att in single.attentions.items():
            assert att.shape == batch[i].attentions[kind].shape
            assert (att - batch[i].attentions[kind]).abs().max() < 1e-5
            q, k = att.shape[-2:]
            assert k == (len(single.source_tokens) if kind != "decoder" or family == "gpt2" else len(single.target_tokens))
            assert torch.allclose(att.sum(-1), torch.ones(()), atol=1e-5)


def test_classifier_prediction_and_word_ids(tiny):
    insp = headscope.inspect(tiny("bert"), "A man in a red shirt.")
    assert insp.architecture.name == "encoder" and insp.target_tokens is None
    assert insp.source_tokens[0] == "[CLS]" and insp.source_tokens[-1] == "[SEP]"
    assert insp.source_word_ids[0] is None and insp.source_word_ids[-1] is None
    assert insp.source_word_ids[1:-1] == list(range(7))  # a man in a red shirt .
    probs = insp.prediction["probabilities"]
    assert set(probs) == {"LABEL_0", "LABEL_1"} and abs(sum(probs.values()) - 1) < 1e-4
    assert insp.prediction["label"] == max(probs, key=probs.get)
    assert insp.kinds == ["encoder"] and insp.shape("encoder") == (2, 4)


def test_seq2seq_forced_and_generated(tiny):
    pair = tiny("marian")
    forced = headscope.inspect(pair, TEXTS[0], target=TARGETS[0])
    assert forced.forced and forced.target_text == TARGETS[0]
    assert forced.target_tokens[-1] == "</s>" and forced.target_word_ids[-1] is None
    n_t, n_s = len(forced.target_tokens), len(forced.source_tokens)
    assert forced.attentions["cross"].shape[-2:] == (n_t, n_s)
    assert forced.attentions["decoder"].shape[-2:] == (n_t, n_t)
    # the decoder self-attention is causal: row t sees target positions <= t only
    assert forced.attentions["decoder"][..., 0, 1:].abs().max() == 0
    gen = headscope.inspect(pair, TEXTS[0], max_new_tokens=5)
    assert not gen.forced and 1 <= len(gen.target_tokens) <= 5
    assert gen.prediction["text"] == gen.target_text
    # forcing the generated output reproduces the generated inspection
    again = headscope.inspect(pair, TEXTS[0], target=gen.target_text)
    if again.target_tokens == gen.target_tokens:
        assert torch.allclose(again.attentions["cross"], gen.attentions["cross"], atol=1e-6)


def test_options_kinds_layers_dtype(tiny):
    insp = headscope.inspect(tiny("t5"), TEXTS[0], target=TARGETS[0], kinds=["cross"], layers=[1], dtype=torch.float16)
    assert insp.kinds == ["cross"] and insp.layers == {"cross": [1]}
    assert insp.attentions["cross"].dtype == torch.float16
    assert insp.map("cross", 1, 0).shape == insp.attentions["cross"].shape[-2:]
    with pytest.raises(InputError, match="layer 0 of 'cross' was not captured"):
        insp.map("cross", 0, 0)
    assert [s.name for s in insp.sites()][:2] == ["cross.1.0", "cross.1.1"]


def test_save_load_round_trip(tiny, tmp_path):
    insp = headscope.inspect(tiny("bart"), TEXTS[1], target=TARGETS[1])
    back = Inspection.load(insp.save(tmp_path / "insp"))
    assert back == insp
    for kind in insp.attentions:
        assert torch.equal(back.attentions[kind], insp.attentions[kind])
    assert back.source_word_ids == insp.source_word_ids and back.target_word_ids == insp.target_word_ids


def test_split_words_input(tiny):
    words = ["a", "man", "in", "a", "red", "shirt", "."]
    insp = headscope.inspect(tiny("marian"), [words], target=[["un", "homme", "."]], is_split_into_words=True)[0]
    assert insp.source_text == " ".join(words)
    assert max(w for w in insp.source_word_ids if w is not None) == len(words) - 1
    assert max(w for w in insp.target_word_ids if w is not None) == 2


def test_word_ids_from_tokens():
    assert word_ids_from_tokens(["▁un", "▁hom", "me", "</s>"], [False, False, False, True]) == [0, 1, 1, None]
    assert word_ids_from_tokens(["[CLS]", "play", "##ing", "now"], [True, False, False, False]) == [None, 0, 0, 1]
    assert word_ids_from_tokens(["The", "Ġdog", "s"], [False] * 3) == [0, 1, 1]


# ---- bad input -------------------------------------------------------------------------------

def test_unknown_model_name_fails_at_once_offline():
    start = time.perf_counter()
    with pytest.raises(ModelNotFoundError, match="'no-such/model-xyz' is not a shipped model.*HF_HUB_OFFLINE.*Fix"):
        headscope.inspect("no-such/model-xyz", "hello")
    assert time.perf_counter() - start < 3


def test_typo_of_a_shipped_name_suggests_it():
    with pytest.raises(ModelNotFoundError, match="Did you mean 'headscope/en-fr'"):
        headscope.load("en-fr")


def test_unreachable_hub_fails_at_once(monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # discard port: connection refused
    start = time.perf_counter()
    with pytest.raises(ModelNotFoundError, match="cannot be reached from here.*Fix: load a shipped model"):
        headscope.load("Helsinki-NLP/opus-mt-en-fr")
    assert time.perf_counter() - start < 3


def test_folder_without_config(tmp_path):
    with pytest.raises(ModelNotFoundError, match="has no config.json"):
        headscope.inspect(str(tmp_path), "hello")


def test_folder_without_tokenizer(tiny, tmp_path):
    model, _ = tiny("bert")
    model.save_pretrained(tmp_path)
    with pytest.raises(ModelNotFoundError, match="has no tokenizer files"):
        headscope.load(str(tmp_path))


@pytest.mark.parametrize("damage", [b"", b"garbage" * 10, "truncate"])
def test_damaged_weights_file(tiny, tmp_path, damage):
    model, tok = tiny("bert")
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:500] if damage == "truncate" else damage)
    with pytest.raises(ModelNotFoundError, match="could not load the weights or tokenizer.*Fix"):
        headscope.load(str(tmp_path))


def test_weights_that_do_not_fit_the_config(tiny, tmp_path):
    model, tok = tiny("bert")
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config["hidden_size"] = 64
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelNotFoundError, match="could not load the weights"):
        headscope.load(str(tmp_path))


def test_loaded_once_per_process():
    assert headscope.load("headscope/en-fr-1x1") is headscope.load("headscope/en-fr-1x1")


def test_another_models_tokenizer_is_refused(tiny):
    model, tok = tiny("bert")
    _, other = tiny("gpt2")  # 300 tokens for bert's 279 embedding rows: ids past the table
    assert len(other) > model.get_input_embeddings().num_embeddings
    with pytest.raises(UnsupportedModelError, match="do not belong together"):
        headscope.inspect((model, other), "hello")


@pytest.mark.parametrize("kw, match", [
    ({"batch_size": 0}, "batch_size=0"), ({"batch_size": -1}, "batch_size=-1"), ({"num_beams": 0}, "num_beams=0"),
    ({"max_new_tokens": 0}, "max_new_tokens=0"), ({"dtype": "float16"}, "dtype='float16'"),
    ({"dtype": torch.int64}, "dtype=torch.int64"), ({"is_split_into_words": True}, "list of words"),
])
def test_bad_options_raise_and_leave_the_model(tiny, kw, match):
    model, tok = tiny("marian")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(InputError, match=match):
        headscope.inspect((model, tok), "A dog.", **kw)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_no_text_for_a_named_model_or_a_pair(tiny):
    with pytest.raises(InputError, match="no text given"):
        headscope.inspect("headscope/sentiment", None)
    with pytest.raises(InputError, match="no text given") as err:
        headscope.inspect(tiny("bert"))
    assert len(str(err.value)) < 200


def test_pair_without_tokenizer_or_on_meta(tiny):
    model, _ = tiny("bert")
    with pytest.raises(UnsupportedModelError, match="has no tokenizer"):
        headscope.inspect((model, None), "hello")
    with torch.device("meta"):
        meta = type(model)(model.config)
    with pytest.raises(UnsupportedModelError, match="'meta' device"):
        headscope.inspect((meta, tiny("bert")[1]), "hello")


@pytest.mark.parametrize("text", ["\u200b\u200b", "\u200b \u2060"])
def test_text_without_a_word(tiny, text):
    with pytest.raises(InputError, match="no word the tokenizer can read"):
        headscope.inspect(tiny("bert"), text)


def test_unknown_shipped_name():
    with pytest.raises(ModelNotFoundError, match="unknown shipped model 'headscope/nope'"):
        headscope.load("headscope/nope")


@pytest.mark.parametrize("text", ["", "   ", [], ["ok", ""]])
def test_empty_text(tiny, text):
    with pytest.raises(InputError, match="empty|non-empty"):
        headscope.inspect(tiny("bert"), text)


def test_too_long_and_truncate(tiny):
    pair = tiny("bert")  # 64 positions
    long = " ".join(["man"] * 100)
    with pytest.raises(InputError, match="102 tokens long but .* at most 64.*truncate=True"):
        headscope.inspect(pair, long)
    with pytest.warns(UserWarning, match="truncated"):
        insp = headscope.inspect(pair, long, truncate=True)
    assert len(insp.source_tokens) == 64


def test_target_for_classifier_refused(tiny):
    with pytest.raises(InputError, match="not an encoder-decoder"):
        headscope.inspect(tiny("bert"), "a text", target="a target")


def test_mismatched_counts(tiny):
    with pytest.raises(InputError, match="2 text\\(s\\) but 1 target"):
        headscope.inspect(tiny("marian"), TEXTS, target=TARGETS[:1])


def test_bad_pair():
    with pytest.raises(UnsupportedModelError, match="PreTrainedModel"):
        headscope.load((object(), object()))


def test_errors_are_not_torch_tracebacks(tiny):
    """Every bad-input error above is a HeadscopeError and a matching built-in exception."""
    with pytest.raises(ValueError):
        headscope.inspect(tiny("bert"), "")
    with pytest.raises(headscope.HeadscopeError):
        headscope.inspect(tiny("bert"), "")
