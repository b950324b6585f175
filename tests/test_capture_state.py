"""Capture keeps no shared state: concurrent inspections equal serial ones, the model is left as it was."""

from __future__ import annotations

import threading

import pytest
import torch
from conftest import TARGETS, TEXTS

import headscope
from headscope.capture.interface import ATTN_NAME
from headscope.errors import InputError
from headscope.models.tiny import build_tiny


def model_state(model):
    """Everything a capture could change: weights, flags, implementations, hooks, config attributes."""
    return {
        "weights": {k: v.clone() for k, v in model.state_dict().items()},
        "training": [m.training for m in model.modules()],
        "impl": [m.config._attn_implementation for m in model.modules() if hasattr(m, "config")],
        "hooks": [(len(m._forward_hooks), len(m._forward_pre_hooks)) for m in model.modules()],
        "config": model.config.to_dict(),
        "dict": sorted(model.__dict__),
        "recorders": [m.__dict__.get("_output_capturing_hooks_installed") for m in model.modules()],
    }


def assert_same_state(before, after):
    assert before.keys() == after.keys()
    for key in before:
        if key == "weights":
            assert all(torch.equal(before[key][k], v) for k, v in after[key].items())
        else:
            assert before[key] == after[key], key


def same_maps(a, b):
    return a.kinds == b.kinds and all(torch.equal(a.attentions[k], b.attentions[k]) for k in a.kinds)


@pytest.mark.parametrize("impl", ["eager", "sdpa"])
def test_threads_on_one_model_equal_serial(impl):
    model, tok = build_tiny("marian", attn_implementation=impl)
    before = model_state(model)
    serial = headscope.inspect((model, tok), TEXTS, target=TARGETS)
    inputs = tok(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        plain_ref = model.get_encoder()(**inputs).last_hidden_state
    failures, plain_diffs = [], []

    def worker(i: int) -> None:
        for _ in range(10):
            try:
                got = headscope.inspect((model, tok), TEXTS, target=TARGETS)
                if not all(same_maps(g, s) for g, s in zip(got, serial)):
                    failures.append(f"thread {i}: maps differ")
            except Exception as err:  # noqa: BLE001 - collected and reported below
                failures.append(f"thread {i}: {err!r}")

    def plain() -> None:
        for _ in range(20):
            with torch.no_grad():
                out = model.get_encoder()(**inputs).last_hidden_state
            plain_diffs.append(float((out - plain_ref).abs().max()))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)] + [threading.Thread(target=plain)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    assert plain_diffs and max(plain_diffs) == 0.0
    assert_same_state(before, model_state(model))
    assert model.config._attn_implementation == impl != ATTN_NAME


def test_two_models_at_once_equal_serial():
    a, tok_a = build_tiny("bert", attn_implementation="eager")
    b, tok_b = build_tiny("gpt2", attn_implementation="sdpa")
    states = model_state(a), model_state(b)
    ref_a = headscope.inspect((a, tok_a), TEXTS)
    ref_b = headscope.inspect((b, tok_b), TEXTS)
    enc_b = tok_b(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        plain_b = b(**enc_b).logits
    failures = []

    def run(pair, ref):
        for _ in range(10):
            try:
                got = headscope.inspect(pair, TEXTS)
                if not all(same_maps(g, r) for g, r in zip(got, ref)):
                    failures.append("maps differ")
            except Exception as err:  # noqa: BLE001
                failures.append(repr(err))

    def plain():
        for _ in range(10):
            with torch.no_grad():
                if not torch.equal(b(**enc_b).logits, plain_b):
                    failures.append("plain forward changed")

    threads = [threading.Thread(target=run, args=((a, tok_a), ref_a)) for _ in range(2)]
    threads += [threading.Thread(target=run, args=((b, tok_b), ref_b)) for _ in range(2)]
    threads.append(threading.Thread(target=plain))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    assert_same_state(states[0], model_state(a))
    assert_same_state(states[1], model_state(b))


def test_train_mode_gives_eval_maps_and_stays_in_train_mode():
    model, tok = build_tiny("bert")  # dropout 0.1 in attention and hidden states
    eval_maps = headscope.inspect((model, tok), TEXTS[0]).attentions["encoder"]
    model.train()
    with torch.no_grad():  # the control: the model's own train-mode maps do differ
        own = model(**tok(TEXTS[0], return_tensors="pt"), output_attentions=True).attentions
    assert not torch.equal(torch.stack(own, 1)[0], eval_maps)
    flags = [m.training for m in model.modules()]
    for _ in range(3):  # dropout would make every capture differ
        got = headscope.inspect((model, tok), TEXTS[0]).attentions["encoder"]
        assert torch.equal(got, eval_maps)
    assert [m.training for m in model.modules()] == flags and model.training


@pytest.mark.parametrize("kw, named", [({"kinds": ["cross"]}, "encoder 2x4"), ({"layers": [99]}, "0..1"),
                                       ({"kinds": ["encoder"], "layers": [2]}, "0..1")])
def test_missing_kinds_or_layers_raise_naming_what_exists(kw, named):
    model, tok = build_tiny("bert")
    before = model_state(model)
    with pytest.raises(InputError, match=named):
        headscope.inspect((model, tok), TEXTS[0], **kw)
    assert_same_state(before, model_state(model))


@pytest.mark.parametrize("method", ["interface", "outputs"])
def test_failing_forward_leaves_model_untouched(method):
    model, tok = build_tiny("marian")
    before = model_state(model)
    with pytest.raises(Exception):
        headscope.capture.run_capture(model, {"input_ids": torch.tensor([[10 ** 6]])}, method=method)
    assert_same_state(before, model_state(model))


def test_outputs_method_leaves_no_transformers_recorder_hooks():
    model, tok = build_tiny("bart")
    before = model_state(model)
    headscope.inspect((model, tok), TEXTS[0], target=TARGETS[0], method="outputs")
    assert_same_state(before, model_state(model))
