"""Helpers for the faithfulness tests: output-projection slices of a head, hand-ablated copies."""

from __future__ import annotations

import copy

import pytest
import torch

HEADS = 4

_PATHS = {
    "bert": {"encoder": "bert.encoder.layer.{l}.attention.output.dense"},
    "distilbert": {"encoder": "distilbert.transformer.layer.{l}.attention.out_lin"},
    "marian": {"encoder": "model.encoder.layers.{l}.self_attn.out_proj",
               "decoder": "model.decoder.layers.{l}.self_attn.out_proj",
               "cross": "model.decoder.layers.{l}.encoder_attn.out_proj"},
    "t5": {"encoder": "encoder.block.{l}.layer.0.SelfAttention.o",
           "decoder": "decoder.block.{l}.layer.0.SelfAttention.o",
           "cross": "decoder.block.{l}.layer.1.EncDecAttention.o"},
    "gpt2": {"decoder": "transformer.h.{l}.attn.c_proj"},
}


def head_slice_zeroed(model, family: str, sites, heads: int = HEADS, scale: float = 0.0):
    """Scale (default: zero) the output-projection input slice of each (kind, layer, head) in ``sites``, in place."""
    with torch.no_grad():
        for kind, layer, head in sites:
            module = model.get_submodule(_PATHS[family][kind].format(l=layer))
            w = module.weight
            if family == "gpt2":  # Conv1D: weight [in, out]
                d = w.shape[0] // heads
                w[head * d:(head + 1) * d, :] *= scale
            else:
                d = w.shape[1] // heads
                w[:, head * d:(head + 1) * d] *= scale
    return model


def ablated_copy(model, family: str, sites):
    """A deep copy of ``model`` with the heads in ``sites`` removed by hand."""
    return head_slice_zeroed(copy.deepcopy(model), family, sites)


def all_sites(family: str, layers: int = 2, heads: int = HEADS):
    return [(k, l, h) for k in _PATHS[family] for l in range(layers) for h in range(heads)]


def model_state(model):
    impls = [m.config._attn_implementation for m in model.modules() if hasattr(m, "config")]
    hooks = sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())
    return {k: v.clone() for k, v in model.state_dict().items()}, impls, hooks


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models run fastest on one thread, and far faster on a busy machine; restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
