"""Token importance: planted token, IG completeness, LOO by hand, attention/rollout from the maps."""

from __future__ import annotations

from typing import get_args

import numpy as np
import pytest
import torch
from conftest import TARGETS, TEXTS
from faithful_helpers import all_sites, head_slice_zeroed, model_state, one_thread  # noqa: F401

import headscope
from headscope.aggregate import rollout
from headscope.errors import InputError, NotApplicableError
from headscope.faithful import ImportanceMethod, list_methods, token_importance
from headscope.faithful._common import as_examples, score
from headscope.faithful.importance import objective_grads, _embeds
from headscope.models.tiny import build_tiny


def test_registry_lists_every_method():
    methods = list_methods()
    assert set(methods) == {"attention", "rollout", "flow", "gradient", "grad_x_input", "integrated_gradients", "loo"}
    assert all(isinstance(d, str) and d for d in methods.values())
    assert set(methods) == set(get_args(ImportanceMethod))


@pytest.mark.parametrize("family", ["bert", "gpt2"])
def test_planted_token_singled_out_by_loo_and_gradients(family):
    # no attention head writes anything: the output reads one position only by design
    # ([CLS] for the classifier's pooler, the last token for the language model)
    model, tok = build_tiny(family, seed=2)
    head_slice_zeroed(model, family, all_sites(family))
    insp = headscope.inspect((model, tok), TEXTS[0])
    planted = 0 if family == "bert" else len(insp.source_tokens) - 1
    # removing a token shifts the absolute positions after it: only [CLS] (first) is immune to that
    for variant in ("remove", "mask") if family == "bert" else ("mask",):
        loo = token_importance(insp, "loo", variant=variant).scores[0]
        others = np.delete(np.abs(loo), planted)
        assert abs(loo[planted]) > 1e-4 and others.max() <= 1e-6, variant
    grad = token_importance(insp, "gradient").scores[0]
    assert grad.argmax() == planted and np.delete(grad, planted).max() <= 1e-7


@pytest.mark.parametrize("family", ["bert", "marian", "gpt2"])
def test_integrated_gradients_completeness(tiny, family):
    model, tok = tiny(family)
    target = TARGETS[0] if family == "marian" else None
    insp = headscope.inspect((model, tok), TEXTS[0], target=target)
    ig = token_importance(insp, "integrated_gradients", steps=16 if family == "marian" else 48)
    delta = np.asarray(ig.extras["f_input"]) - np.asarray(ig.extras["f_baseline"])
    total = ig.scores.sum(-1)
    assert np.all(np.abs(total - delta) <= 1e-3 * np.maximum(1.0, np.abs(delta)))
    assert ig.scores.shape == (len(insp.target_tokens) if family == "marian" else 1, len(insp.source_tokens))


def test_grad_x_input_is_the_euler_derivative(tiny):
    # sum_i grad_i . e_i = d/da f(a E) at a = 1 (finite difference, independent of autograd)
    model, tok = tiny("bert")
    insp = headscope.inspect((model, tok), TEXTS[1])
    gxi = token_importance(insp, "grad_x_input").scores
    ex = as_examples(insp)[0]
    e = _embeds(ex).double().float()
    h = 1e-2
    values, _ = objective_grads(ex, torch.stack([(1 + h) * e, (1 - h) * e]), [0, 0])
    assert abs(gxi.sum() - float(values[0] - values[1]) / (2 * h)) <= 2e-3 * max(1.0, abs(gxi.sum()))


def test_loo_equals_explicit_removal(tiny):
    model, tok = tiny("marian")
    insp = headscope.inspect((model, tok), TEXTS[0], target=TARGETS[0])
    loo = token_importance(insp, "loo").scores
    ex = as_examples(insp)[0]
    assert loo.shape == (len(insp.target_tokens), len(insp.source_tokens))
    with torch.no_grad():
        base = score([ex])[0].logprobs.double().numpy()
        for i in (0, 3):
            ids = ex.source_ids[:i] + ex.source_ids[i + 1:]
            edited = score([ex], [ids])[0].logprobs.double().numpy()
            np.testing.assert_allclose(loo[:, i], base - edited, atol=1e-5)


def test_attention_and_rollout_read_the_maps(tiny):
    model, tok = tiny("bert")
    insp = headscope.inspect((model, tok), TEXTS[0])
    a = token_importance(insp, "attention").scores
    assert a.shape == (1, len(insp.source_tokens))  # one decision, the label: the [CLS] row
    np.testing.assert_allclose(a[0], insp.map("encoder", 1).mean(0)[0].numpy(), atol=1e-6)
    one = token_importance(insp, "attention", layer=0, head=2)
    np.testing.assert_allclose(one.scores[0], insp.map("encoder", 0, 2)[0].numpy(), atol=1e-6)
    assert one.reading.name == "encoder.0.2"
    by_name = token_importance(insp, "attention", reading="encoder.0.2").scores
    np.testing.assert_array_equal(by_name, one.scores)
    every = token_importance(insp, "attention", layer="all").scores[0]
    np.testing.assert_allclose(every, insp.attentions["encoder"].mean(dim=(0, 1))[0].numpy(), atol=1e-6)
    np.testing.assert_allclose(token_importance(insp, "rollout").scores[0], rollout(insp.attentions["encoder"])[0])
    assert token_importance(insp, "flow").scores.shape == a.shape


def test_seq2seq_rows_and_errors(tiny):
    model, tok = tiny("marian")
    state, impls, hooks = model_state(model)
    insp = headscope.inspect((model, tok), TEXTS[0], target=TARGETS[0])
    for method in ("gradient", "integrated_gradients", "loo"):
        token_importance(insp, method, **({"steps": 4} if method == "integrated_gradients" else {}))
    after_state, after_impls, after_hooks = model_state(model)
    assert (after_impls, after_hooks) == (impls, hooks)
    assert all(torch.equal(state[k], after_state[k]) for k in state)
    assert not any(p.grad is not None for p in model.parameters())
    cross = token_importance(insp, "attention", layer=1, head=3)
    np.testing.assert_allclose(cross.scores, insp.map("cross", 1, 3).numpy(), atol=1e-6)
    assert token_importance(insp, "gradient").scores.shape == cross.scores.shape
    with pytest.raises(NotApplicableError, match="rollout"):
        token_importance(insp, "flow")
    with pytest.raises(InputError, match="unknown importance method"):
        token_importance(insp, "saliency")
    with pytest.raises(InputError, match="head 9"):
        token_importance(insp, "attention", layer=0, head=9)
    with pytest.raises(InputError, match="does not take"):
        token_importance(insp, "loo", steps=4)
    with pytest.raises(InputError, match="cross"):
        token_importance(insp, "attention", reading="encoder.0.mean")
    many = token_importance((model, tok), "attention", text=TEXTS, target=TARGETS)
    assert isinstance(many, list) and len(many) == 2
