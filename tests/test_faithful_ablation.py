"""Head ablation: equals hand-zeroed projection slices, batched == one forward per head, planted truth."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import TARGETS, TEXTS
from faithful_helpers import ablated_copy, all_sites, head_slice_zeroed, model_state, one_thread  # noqa: F401

import headscope
from headscope.errors import InputError
from headscope.faithful import head_ablation
from headscope.faithful._common import as_examples, read_scores, run_gated, scoring_batch
from headscope.faithful.ablation import HeadSpace
from headscope.models.tiny import SEQ2SEQ, build_tiny

PICKS = {
    "bert": [("encoder", 1, 2)],
    "distilbert": [("encoder", 0, 3)],
    "marian": [("encoder", 1, 1), ("decoder", 0, 2), ("cross", 1, 3)],
    "t5": [("encoder", 0, 0), ("decoder", 1, 3), ("cross", 0, 1)],
    "gpt2": [("decoder", 1, 0)],
}


def _examples(family, model, tok):
    target = TARGETS if family in SEQ2SEQ else None
    return as_examples((model, tok), TEXTS, target)


@pytest.mark.parametrize("family", list(PICKS))
def test_gate_equals_hand_zeroed_projection(tiny, family):
    model, tok = tiny(family)
    exs = _examples(family, model, tok)
    loaded = exs[0].loaded
    space = HeadSpace.of(exs[0])
    inputs = scoring_batch(exs)
    res = None if family == "t5" else head_ablation(exs, proxies=False)  # t5 is slow on CPU: logits only
    with torch.no_grad():
        base = read_scores(exs, model(**inputs).logits)
    for site in PICKS[family]:
        gates = torch.ones(len(exs), space.size)
        gates[:, space.index(f"{site[0]}.{site[1]}.{site[2]}")] = 0
        with torch.no_grad():
            gated = run_gated(loaded, inputs, space.gates(gates)).logits
            copy = ablated_copy(model, family, [site])
            by_hand = copy(**inputs).logits
        mask = inputs.get("decoder_attention_mask", inputs["attention_mask"]).bool()
        diff = (gated - by_hand)[mask] if gated.ndim == 3 else gated - by_hand
        assert diff.abs().max() <= 1e-5, (family, site)
        # the effect reported by head_ablation is the one of the hand-made copy
        if res is None:
            continue
        g = [c[0] for c in res.configs].index(f"{site[0]}.{site[1]}.{site[2]}")
        hand = read_scores(exs, by_hand)
        for n in range(len(exs)):
            drop = (base[n].logprobs - hand[n].logprobs).double()
            np.testing.assert_allclose(res.per_token[n][g], drop.numpy(), atol=1e-5)
            if loaded.architecture.name == "encoder":  # a label: drop of the predicted class's probability
                d = int(exs[n].decisions[0])
                p, q = (torch.softmax(s[n].logits[0].double(), -1)[d] for s in (base, hand))
                assert abs(res.per_example["prob_drop"][g, n] - float(p - q)) <= 1e-5
            else:  # teacher-forced target / the text's own log-likelihood (the next token left out)
                expected = float(drop.sum() if loaded.architecture.name == "encoder-decoder" else drop[:-1].sum())
                assert abs(res.per_example["ll_drop"][g, n] - expected) <= 1e-4


@pytest.mark.parametrize("family", ["bert", "marian", "gpt2"])
def test_batched_equals_one_forward_per_head(tiny, family):
    model, tok = tiny(family)
    exs = _examples(family, model, tok)
    batched = head_ablation(exs, proxies=False, batch_size=40)
    looped = head_ablation(exs, proxies=False, batched=False)
    assert batched.configs == looped.configs
    assert batched.n_forwards < looped.n_forwards
    for m in batched.per_example:
        assert np.abs(batched.per_example[m] - looped.per_example[m]).max() <= 1e-5


def test_model_untouched_and_shapes(tiny):
    model, tok = tiny("marian")
    state, impls, hooks = model_state(model)
    insp = headscope.inspect((model, tok), TEXTS[0], target=TARGETS[0])
    res = head_ablation(insp)
    assert {k: v.shape for k, v in res.effect().items()} == {"encoder": (2, 4), "decoder": (2, 4), "cross": (2, 4)}
    assert set(res.effects) == {"ll_drop"} and res.per_token[0].shape == (24, len(insp.target_tokens))
    assert set(res.proxies) == {"confidence", "entropy", "gradient"}
    assert set(res.correlations) == set(res.proxies)
    after_state, after_impls, after_hooks = model_state(model)
    assert after_impls == impls and after_hooks == hooks
    assert all(torch.equal(state[k], after_state[k]) for k in state)
    layers = head_ablation(insp, mode="leave_one_layer_out", proxies=False)
    assert layers.effect("cross").shape == (2, 1) and len(layers.configs) == 6
    cum = head_ablation(insp, mode="cumulative", order=["cross.1.0", "encoder.0.2"])
    assert cum.order == ["cross.1.0", "encoder.0.2"] and cum.configs[1] == ["cross.1.0", "encoder.0.2"]
    assert len(cum.curve["ll_drop"]) == 2
    assert "head ablation" in res.table(3)


def test_bad_input_raises(tiny):
    model, tok = tiny("bert")
    with pytest.raises(InputError, match="mode"):
        head_ablation((model, tok), text="a man", mode="bogus")
    with pytest.raises(InputError, match="no head"):
        head_ablation((model, tok), text="a man", mode="cumulative", order=["encoder.5.0"])
    insp = headscope.inspect((model, tok), "a man")
    insp.loaded = None
    with pytest.raises(InputError, match="Inspection.load"):
        head_ablation(insp)


def _planted(family, keep):
    model, tok = build_tiny(family, seed=1)
    with torch.no_grad():  # random init is nearly constant in its output: sharpen it
        for name, p in model.named_parameters():
            if p.ndim == 2 and "embed" not in name and "shared" not in name:
                p.mul_(8.0)
    others = [s for s in all_sites(family) if s != keep]
    head_slice_zeroed(model, family, others)
    return model, tok


@pytest.mark.parametrize("family,keep,measure", [("bert", ("encoder", 1, 2), "kl"),
                                                 ("marian", ("cross", 1, 1), "ll_drop")])
def test_planted_head_singled_out(family, keep, measure):
    model, tok = _planted(family, keep)
    target = TARGETS if family in SEQ2SEQ else None
    res = head_ablation((model, tok), text=TEXTS, target=target)
    effect = np.abs(res.per_example[measure].mean(axis=1))
    names = [c[0] for c in res.configs]
    planted = names.index(".".join(map(str, keep)))
    others = np.delete(effect, planted)
    assert effect[planted] > 1e-4
    assert others.max() <= 1e-6 * max(1.0, effect[planted]) + 1e-7
    grad = np.concatenate([v.ravel() for v in res.proxies["gradient"].values()])
    assert grad.argmax() == planted and np.delete(grad, planted).max() <= 1e-6
