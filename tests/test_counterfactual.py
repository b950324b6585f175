"""Counterfactual attention (issue 15): the replacement hook, planted truth, checked adversaries, results, CLI.

Planted truth:
* a head whose output does not matter (its output-projection slice zeroed, or its value vectors
  equal at every position): uniform, permuted and adversarial maps leave the output unchanged to
  float precision, and the adversary reaches JS ~ 1 at epsilon = 0 (its original map is peaked);
* a one-layer BERT built by hand whose label distribution is ``softmax(c * tanh(k * a))``, ``a`` the
  [CLS] row of its single head: uniform and permuted maps change the output by the amount computed
  from that formula, and the adversary at a small epsilon stays close to the original map.
Every adversarial result is re-checked by running the forward again with the map it found.
"""

from __future__ import annotations

import math
import threading

import numpy as np
import pytest
import torch
from conftest import TARGETS, TEXTS
from faithful_helpers import head_slice_zeroed, one_thread  # noqa: F401

from headscope.capture import AttentionCapture
from headscope.cli import main
from headscope.errors import InputError
from headscope.faithful import CounterfactualResult, counterfactual
from headscope.faithful._intervene import Target, js_divergence
from headscope.models.tiny import build_tiny, tiny_tokenizer

# ---- the replacement hook ---------------------------------------------------------------------------


def _inputs(family, tok):
    if family == "marian":
        return dict(tok(TEXTS, text_target=TARGETS, padding=True, return_tensors="pt"))
    return dict(tok(TEXTS, padding=True, return_tensors="pt"))


def _forward(model, inputs):
    if "labels" in inputs:
        from headscope.models.architectures import decoder_inputs

        labels = inputs["labels"]
        return model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"],
                     decoder_input_ids=decoder_inputs(model, labels, 0), decoder_attention_mask=(labels != 0).long())
    return model(**inputs)


@pytest.mark.parametrize("family,kind", [("bert", "encoder"), ("gpt2", "decoder"), ("marian", "cross"),
                                         ("marian", "decoder")])
def test_identity_and_uniform_replacement(tiny, family, kind):
    model, tok = tiny(family)
    inputs = _inputs(family, tok)
    with torch.no_grad():
        plain = _forward(model, inputs).logits
        with AttentionCapture(model, kinds=(), replace={(kind, 1): lambda p, a: p}):
            same = _forward(model, inputs).logits
        assert torch.equal(plain, same)

        def uniform(p, a):
            return a.float() / a.float().sum(-1, keepdim=True)

        with AttentionCapture(model, kinds=[kind], replace={(kind, 1): uniform}) as cap:
            changed = _forward(model, inputs).logits
        with AttentionCapture(model, kinds=[kind]) as orig:
            _forward(model, inputs)
    assert not torch.allclose(plain, changed)
    got = cap.maps[kind][:, 1]                          # recorded at the replaced layer: the new probabilities
    assert torch.allclose(cap.maps[kind][:, 0], orig.maps[kind][:, 0])  # other layers untouched
    open_keys = orig.maps[kind][:, 1] > 0
    assert torch.allclose(got.sum(-1), torch.ones_like(got.sum(-1)), atol=1e-5)   # rows stay distributions
    assert float(got[~open_keys].abs().max()) == 0.0                            # padding / future stay masked
    counts = open_keys.sum(-1, keepdim=True).float()
    assert torch.allclose(got[open_keys], (1 / counts).expand_as(got)[open_keys], atol=1e-6)


def test_replacement_only_in_its_own_context(tiny):
    model, tok = tiny("bert")
    inputs = _inputs("bert", tok)
    with torch.no_grad():
        plain = model(**inputs).logits
    seen = []

    def other_thread():
        with torch.no_grad():
            seen.append(model(**inputs).logits)

    with torch.no_grad(), AttentionCapture(model, kinds=(), replace={("encoder", 0): lambda p, a: torch.zeros_like(p)}):
        t = threading.Thread(target=other_thread)
        t.start()
        t.join()
    assert torch.equal(seen[0], plain)
    assert model.config._attn_implementation == "eager"


# ---- planted truth: a head whose output does not matter ----------------------------------------------

PATHS = {"bert": ("bert.encoder.layer.{l}.attention.self", "query", "value"),
         "marian": ("model.decoder.layers.{l}.encoder_attn", "q_proj", "v_proj")}


def _irrelevant_head(family, kind, layer, head, how):
    model, tok = build_tiny(family, seed=1)
    base, q_name, v_name = PATHS[family]
    attn = model.get_submodule(base.format(l=layer))
    with torch.no_grad():
        d = getattr(attn, q_name).weight.shape[0] // 4
        sl = slice(head * d, (head + 1) * d)
        getattr(attn, q_name).weight[sl] *= 300.0       # a peaked original map: JS ~ 1 is reachable
        if how == "zeroed":
            head_slice_zeroed(model, family, [(kind, layer, head)])
        else:                                           # equal value vectors at every position
            getattr(attn, v_name).weight[sl] = 0.0
            getattr(attn, v_name).bias[sl] = torch.linspace(-1, 1, d)
    return model, tok


@pytest.mark.parametrize("family,kind,how", [("bert", "encoder", "zeroed"), ("bert", "encoder", "equal_values"),
                                             ("marian", "cross", "zeroed")])
def test_irrelevant_head_any_map_keeps_output(family, kind, how):
    model, tok = _irrelevant_head(family, kind, 1, 2, how)
    target = TARGETS if family == "marian" else None
    res = counterfactual((model, tok), TEXTS, target=target, sites=[f"{kind}.1.2"],
                         method=["uniform", "permute", "adversarial"], epsilon=[0.0], steps=80, lr=0.5,
                         permutations=3)
    assert {e.method for e in res.effects} == {"uniform", "permute", "adversarial"}
    for e in res.effects:
        assert e.tvd <= 1e-6 and abs(e.ll_change) <= 1e-5 and e.flipped == 0, e
    uniform = res.select(method="uniform")
    assert min(e.js for e in uniform) > 0.2               # the maps really were different
    adv = res.select(method="adversarial", epsilon=0.0)
    assert all(e.within and not e.fallback and e.checked_tvd <= 1e-6 for e in adv)
    assert min(e.js for e in adv) >= 0.95, [e.js for e in adv]   # JS ~ 1 at epsilon = 0


# ---- planted truth: output = softmax(c * tanh(k * a)), a the [CLS] row of the only head ----------------

C, K, ALPHA = 4.0, 2.0, 2.0
W = [2.0, -1.0, 0.5, 3.0, -2.0, 1.0, 0.0, -0.5]


def _known_function_model():
    """A one-layer, one-head BERT whose 8 class logits are ``C * tanh(K * a)``, ``a`` its [CLS] attention row.

    LayerNorm eps 1e12 with weight 1e6 makes every LayerNorm a plain centring; position j embeds as
    ``e_j - e_15``; the value of position j is ``e_j``; the feed-forward block outputs 0; the pooler
    subtracts the constant the centring adds. [CLS] scores key j as ``ALPHA * W[j] / 4``.
    """
    from transformers import BertConfig, BertForSequenceClassification

    tok = tiny_tokenizer("wordpiece")
    h = 16
    cfg = BertConfig(vocab_size=len(tok), hidden_size=h, num_hidden_layers=1, num_attention_heads=1,
                     intermediate_size=4, max_position_embeddings=16, type_vocab_size=1, num_labels=8,
                     layer_norm_eps=1e12, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                     attn_implementation="eager")
    model = BertForSequenceClassification(cfg).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        for name, p in model.named_parameters():
            if "LayerNorm.weight" in name:
                p.fill_(1e6)
        emb = model.bert.embeddings
        for j in range(8):
            emb.position_embeddings.weight[j, j] = 1.0
            emb.position_embeddings.weight[j, h - 1] = -1.0
        att = model.bert.encoder.layer[0].attention
        att.self.query.weight[0, 0] = ALPHA
        for j in range(8):
            att.self.key.weight[0, j] = W[j]
            att.self.value.weight[j, j] = 1.0
            att.output.dense.weight[j, j] = 1.0
            model.bert.pooler.dense.weight[j, j] = K
            model.bert.pooler.dense.bias[j] = -K * ((1.0 if j == 0 else 0.0) - 1.0 / h)
            model.classifier.weight[j, j] = C
    return model, tok


def _output(a):
    a8 = np.zeros(8)
    a8[: len(a)] = a
    z = C * np.tanh(K * a8)
    z = np.exp(z - z.max())
    return z / z.sum()


TEXT = "a man"   # [CLS] a man [SEP]: 4 tokens


def test_known_function_uniform_and_permuted_by_hand():
    model, tok = _known_function_model()
    n = len(tok(TEXT)["input_ids"])
    a0 = np.exp(ALPHA * np.asarray(W[:n]) / 4)
    a0 /= a0.sum()
    p0 = _output(a0)
    with torch.no_grad():
        logits = model(**tok(TEXT, return_tensors="pt")).logits[0]
    assert np.allclose(torch.softmax(logits, -1).numpy(), p0, atol=1e-5)  # the model is the formula
    c = int(p0.argmax())
    res = counterfactual((model, tok), TEXT, sites=["encoder.0.0"], method=["uniform", "permute"],
                         permutations=1, keep_maps=True, seed=3)
    uni = res.select(method="uniform")[0]
    pu = _output(np.full(n, 1.0 / n))
    assert uni.tvd == pytest.approx(0.5 * np.abs(pu - p0).sum(), abs=1e-5)
    assert uni.ll_change == pytest.approx(math.log(pu[c]) - math.log(p0[c]), abs=1e-4)
    assert uni.flipped == float(pu.argmax() != c)
    perm = res.select(method="permute")[0]
    row = res.maps[(0, "encoder.0.0", "permute", None)]["encoder.0"][0, 0]
    assert np.allclose(np.sort(row), np.sort(a0), atol=1e-6) and not np.allclose(row, a0)
    pp = _output(row)
    assert perm.tvd == pytest.approx(0.5 * np.abs(pp - p0).sum(), abs=1e-5)
    assert perm.ll_change == pytest.approx(math.log(pp[c]) - math.log(p0[c]), abs=1e-4)


def test_known_function_adversary_small_epsilon_stays_close_and_is_rechecked():
    model, tok = _known_function_model()
    res = counterfactual((model, tok), TEXT, sites=["encoder.0.0"], method="adversarial", rows="decision",
                         epsilon=[0.001, 0.3], steps=60, keep_maps=True)
    small, large = res.select(epsilon=0.001)[0], res.select(epsilon=0.3)[0]
    assert small.within and large.within and small.checked_tvd <= 0.001 + 1e-6
    found = res.maps[(0, "encoder.0.0", "adversarial", 0.001)]["encoder.0"]
    uniform = counterfactual((model, tok), TEXT, sites=["encoder.0.0"], method="uniform")
    n = found.shape[-1]
    a_orig = np.exp(ALPHA * np.asarray(W[:n]) / 4)
    a_orig /= a_orig.sum()
    assert np.abs(found[0, 0] - a_orig).sum() < 0.05      # close to the original map
    assert small.js < 0.01 < large.js                      # a looser bound lets it go further
    # re-check by hand: the found map's output is within epsilon of the original (the formula)
    assert 0.5 * np.abs(_output(found[0, 0]) - _output(a_orig)).sum() <= 0.001 + 1e-5
    # ... and by a forward with the map given by the user
    again = counterfactual((model, tok), TEXT, sites=["encoder.0.0"], method=torch.as_tensor(found[0]))
    assert again.effects[0].tvd == pytest.approx(small.checked_tvd, abs=1e-6)
    assert uniform.effects[0].tvd > 0.3 > small.tvd         # the head matters: a uniform map moves the output


def test_adversarial_results_checked_on_sensitive_models(tiny):
    model, tok = tiny("marian")
    res = counterfactual((model, tok), TEXTS, target=TARGETS, sites=["cross.mean", "encoder.0.mean"],
                         method="adversarial", epsilon=[0.0, 1e-4, 0.01], steps=15)
    for eps in (0.0, 1e-4, 0.01):
        effs = res.select(method="adversarial", epsilon=eps)
        assert len(effs) == 4 and all(e.within and e.checked_tvd <= eps + 1e-6 for e in effs)
    for t in res.targets:  # warm-started in increasing epsilon: the largest JS never shrinks
        js = [np.mean([e.js for e in res.select(t, "adversarial", eps)]) for eps in (0.0, 1e-4, 0.01)]
        assert js[0] <= js[1] + 1e-9 <= js[2] + 2e-9


# ---- API: sites, methods, maps, results ----------------------------------------------------------------

def test_default_sites_and_result_round_trip(tiny, tmp_path):
    model, tok = tiny("bert")
    res = counterfactual((model, tok), TEXTS, method=["uniform", "permute"], permutations=2)
    assert res.targets == ["encoder.0.mean", "encoder.1.mean", "encoder.mean"]
    assert len(res.effects) == 2 * 3 * 2
    text = str(res)
    assert 2 <= len(text.splitlines()) <= 8 and "uniform" in text
    assert "encoder.mean" in res.table() and len(res.to_rows()) == 12
    folder = res.save(tmp_path / "cf")
    back = CounterfactualResult.load(folder)
    assert back.to_dict() == res.to_dict()
    assert (folder / "effects.csv").read_text().count("\n") == 13
    with pytest.raises(InputError):
        CounterfactualResult.load(tmp_path)


def test_sites_union_and_errors(tiny):
    model, tok = tiny("marian")
    res = counterfactual((model, tok), TEXTS[0], target=TARGETS[0], sites=[["cross.0.1", "decoder.1"]],
                         method="uniform")
    assert res.targets == ["cross.0.1+decoder.1.mean"]
    assert Target.of(res.targets[0]) == Target.of(["cross.0.1", "decoder.1.mean"])   # names round-trip
    with pytest.raises(InputError, match="no cross layer 7"):
        counterfactual((model, tok), TEXTS[0], target=TARGETS[0], sites=["cross.7.mean"])
    with pytest.raises(InputError, match="not a set of heads"):
        counterfactual((model, tok), TEXTS[0], target=TARGETS[0], sites=["cross.rollout"])
    with pytest.raises(InputError, match="unknown method"):
        counterfactual((model, tok), TEXTS[0], target=TARGETS[0], method="shuffle")
    with pytest.raises(InputError, match="decision"):
        counterfactual((model, tok), TEXTS[0], target=TARGETS[0], sites=["encoder.0.mean"], rows="decision")


def test_given_map_checked_and_applied(tiny):
    model, tok = tiny("gpt2")
    n = len(tok(TEXTS[0])["input_ids"])
    causal_uniform = torch.tril(torch.ones(n, n))
    causal_uniform /= causal_uniform.sum(-1, keepdim=True)
    got = counterfactual((model, tok), TEXTS[0], sites=["decoder.1.mean"], method=causal_uniform)
    ref = counterfactual((model, tok), TEXTS[0], sites=["decoder.1.mean"], method="uniform")
    assert got.effects[0].tvd == pytest.approx(ref.effects[0].tvd, abs=1e-6)
    with pytest.raises(InputError, match="may not see"):
        counterfactual((model, tok), TEXTS[0], sites=["decoder.1.mean"], method=torch.full((n, n), 1.0 / n))
    with pytest.raises(InputError, match="sum to 1"):
        counterfactual((model, tok), TEXTS[0], sites=["decoder.1.mean"], method=torch.tril(torch.ones(n, n)))
    with pytest.raises(InputError, match="shape"):
        counterfactual((model, tok), TEXTS[0], sites=["decoder.1.mean"], method=torch.ones(2, 2) / 2)


def test_js_divergence_bits():
    p = torch.tensor([1.0, 0.0, 0.0])
    assert float(js_divergence(p, torch.tensor([0.0, 1.0, 0.0]))) == pytest.approx(1.0)
    assert float(js_divergence(p, p)) == pytest.approx(0.0, abs=1e-7)


def test_model_left_as_it_was(tiny):
    model, tok = tiny("bert")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    grads = [p.grad for p in model.parameters()]
    counterfactual((model, tok), TEXTS, sites=["encoder.1.mean"], method="adversarial", epsilon=[0.01], steps=3)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert [p.grad for p in model.parameters()] == grads          # no gradient left on the weights
    assert model.config._attn_implementation == "eager"


# ---- CLI ----------------------------------------------------------------------------------------------

def test_counterfactual_verb(tiny, tmp_path, capsys):
    model, tok = tiny("bert")
    folder = tmp_path / "tiny-bert"
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    texts = tmp_path / "texts.txt"
    texts.write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
    out = tmp_path / "out"
    assert main(["counterfactual", str(folder), str(texts), "--sites", "encoder.1.mean", "encoder.0.1+encoder.1.2",
                 "--steps", "3", "--permutations", "2", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "adversarial, TVD <= 0.01" in printed and "encoder.0.1+encoder.1.2" in printed
    res = CounterfactualResult.load(out)
    assert res.targets == ["encoder.1.mean", "encoder.0.1+encoder.1.2"] and res.n_examples == 2
    assert main(["counterfactual", str(folder), "a text", "--sites", "encoder.9"]) == 2
    assert "no encoder layer 9" in capsys.readouterr().err


# ---- views --------------------------------------------------------------------------------------------

def test_figures_and_report_block(tiny):
    from headscope import inspect
    from headscope.viz.figures import swap_by_layer, swap_scatter
    from headscope.viz.page import Section
    from headscope.viz.sections.counterfactual import counterfactual_block

    model, tok = tiny("marian")
    res = counterfactual((model, tok), TEXTS, target=TARGETS, method=["uniform", "permute", "adversarial"],
                         epsilon=[0.01, 0.05], steps=3, permutations=2)
    fig = swap_scatter({"tiny": res, "tiny cross.0": res}, targets={"tiny cross.0": "cross.0.mean"})
    gids = [c.get_gid() for ax in fig.axes for c in ax.collections]
    assert gids.count("adversarial") == 4 and gids.count("uniform") == 2 and gids.count("permute") == 2
    assert len(fig.axes[1].collections[0].get_offsets()) == 2            # one head set, two examples
    fig = swap_by_layer({"tiny": res})
    assert sum(p.get_gid() == "bar" for p in fig.axes[0].patches) == 2 * len(res.targets)
    section = Section("faithful")
    counterfactual_block(section, inspect((model, tok), TEXTS[0], target=TARGETS[0]), steps=2, permutations=2)
    html = "".join(section.parts)
    assert "Counterfactual attention" in html and "<img" in html and "cross.mean" in html
