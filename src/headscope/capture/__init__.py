"""Capture the attention probabilities of every head of every layer.

``run_capture`` runs one forward pass and returns the model outputs with the recorded maps;
``AttentionCapture`` is the underlying context manager (registered ``AttentionInterface``
function); ``HookCapture`` the module-hook fallback for architectures that bypass the interface.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch
from transformers import PreTrainedModel

from ..errors import UnsupportedModelError
from .hooks import HookCapture
from .interface import ATTN_NAME, AttentionCapture, headscope_attention, model_family, register
from .sites import KINDS, Site, classify_module

METHODS = ("auto", "interface", "hooks")


def run_capture(
    model: PreTrainedModel,
    inputs: Mapping[str, Any],
    *,
    method: str = "auto",
    kinds: Iterable[str] | None = None,
    layers: Iterable[int] | None = None,
    dtype: torch.dtype | None = None,
    device: str | torch.device | None = "cpu",
) -> tuple[Any, AttentionCapture]:
    """One forward pass of ``model(**inputs)`` with every attention map recorded.

    ``method="auto"`` uses the registered attention function and falls back to module
    hooks when the architecture does not call it. Returns ``(outputs, capture)``; the maps
    are in ``capture.maps`` as ``{kind: [batch, layers, heads, query, key]}``.
    """
    if method not in METHODS:
        raise UnsupportedModelError(f"unknown capture method {method!r}; choose from {METHODS}")
    options = dict(kinds=kinds, layers=layers, dtype=dtype, device=device)
    if method in ("auto", "interface"):
        with torch.no_grad(), AttentionCapture(model, **options) as cap:
            outputs = model(**inputs)
        if cap.records or method == "interface":
            return outputs, _checked(cap, model)
    with torch.no_grad(), HookCapture(model, **options) as cap:
        outputs = model(**inputs, output_attentions=True)
    return outputs, _checked(cap, model)


def _checked(cap: AttentionCapture, model: PreTrainedModel) -> AttentionCapture:
    if cap.calls == 0:
        raise UnsupportedModelError(
            f"{type(model).__name__} ({model.config.model_type}) has no attention layers headscope can capture: "
            "neither transformers' AttentionInterface nor attention-module hooks saw any attention. "
            "Use a transformer with softmax attention (BERT, BART, Marian, T5, GPT-2, ...)."
        )
    return cap


def split_examples(
    maps: torch.Tensor, query_mask: torch.Tensor, key_mask: torch.Tensor | None = None
) -> list[torch.Tensor]:
    """Drop padding per example: ``[batch, layers, heads, Q, K]`` -> list of ``[layers, heads, q_i, k_i]``.

    ``query_mask`` / ``key_mask`` are ``[batch, Q]`` / ``[batch, K]`` 0-1 masks (left or right padding).
    """
    key_mask = query_mask if key_mask is None else key_mask
    out = []
    for b in range(maps.shape[0]):
        q = query_mask[b].nonzero().flatten().to(maps.device)
        k = key_mask[b].nonzero().flatten().to(maps.device)
        out.append(maps[b].index_select(-2, q).index_select(-1, k).contiguous())
    return out


__all__ = [
    "ATTN_NAME",
    "AttentionCapture",
    "HookCapture",
    "KINDS",
    "METHODS",
    "Site",
    "classify_module",
    "headscope_attention",
    "model_family",
    "register",
    "run_capture",
    "split_examples",
]
