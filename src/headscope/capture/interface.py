"""Capture through transformers' ``AttentionInterface``.

headscope registers one attention function, ``"headscope"``. While a :class:`AttentionCapture`
is active, every config of the model points at it; the function runs the model family's own
eager attention (so the probabilities are exactly those ``output_attentions=True`` gives),
records them, and optionally scales each head's output (head ablation). On exit the
model's own implementation (``eager``, ``sdpa``, ...) is restored.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn
from transformers import AttentionInterface, PreTrainedModel
from transformers.configuration_utils import PretrainedConfig
from transformers.masking_utils import AttentionMaskInterface, eager_mask

from ..errors import UnsupportedModelError
from .sites import KINDS, Site, classify_module

ATTN_NAME = "headscope"

_ACTIVE: list["AttentionCapture"] = []
_EAGER_CACHE: dict[type, Callable[..., Any]] = {}
_REGISTERED = False


def _generic_eager(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float | None = None,
    dropout: float = 0.0,
    **kwargs: Any,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Plain scaled dot-product attention returning probabilities (for families without their own)."""
    if key.shape[1] != query.shape[1]:  # grouped-query attention
        repeat = query.shape[1] // key.shape[1]
        key = key.repeat_interleave(repeat, dim=1)
        value = value.repeat_interleave(repeat, dim=1)
    scaling = query.shape[-1] ** -0.5 if scaling is None else scaling
    weights = torch.matmul(query, key.transpose(2, 3)) * scaling
    if attention_mask is not None:
        weights = weights + attention_mask[..., : key.shape[-2]]
    probs = nn.functional.softmax(weights, dim=-1, dtype=torch.float32).to(query.dtype)
    probs = nn.functional.dropout(probs, p=dropout, training=module.training)
    return torch.matmul(probs, value).transpose(1, 2).contiguous(), probs


def _family_eager(module: nn.Module) -> Callable[..., Any]:
    """The eager attention function defined next to the module's class, or the generic one."""
    cls = type(module)
    if cls not in _EAGER_CACHE:
        fn = getattr(sys.modules.get(cls.__module__), "eager_attention_forward", None)
        _EAGER_CACHE[cls] = fn if callable(fn) else _generic_eager
    return _EAGER_CACHE[cls]


def _as_additive(mask: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    if mask is None or mask.dtype != torch.bool:
        return mask
    return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(~mask, torch.finfo(dtype).min)


def headscope_attention(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    **kwargs: Any,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The registered attention function: family eager attention, recorded and optionally gated."""
    attention_mask = _as_additive(attention_mask, query.dtype)
    out, probs = _family_eager(module)(module, query, key, value, attention_mask, **kwargs)
    if _ACTIVE:
        out = _ACTIVE[-1]._on_attention(module, out, probs)
    return out, probs


def register() -> None:
    """Register ``"headscope"`` with transformers' attention and mask interfaces (idempotent)."""
    global _REGISTERED
    if not _REGISTERED:
        AttentionInterface.register(ATTN_NAME, headscope_attention)
        AttentionMaskInterface.register(ATTN_NAME, eager_mask)
        _REGISTERED = True


def model_family(model: nn.Module) -> str:
    """``"encoder-decoder"``, ``"decoder"`` (causal LM) or ``"classifier"`` (any encoder-only model)."""
    config = getattr(model, "config", None)
    if config is None:
        raise UnsupportedModelError(
            f"{type(model).__name__} has no transformers config; pass a Hugging Face PreTrainedModel "
            "(e.g. loaded with AutoModelForSeq2SeqLM / AutoModelForSequenceClassification)."
        )
    if getattr(config, "is_encoder_decoder", False):
        return "encoder-decoder"
    if getattr(config, "is_decoder", False) or type(model).__name__.endswith(("ForCausalLM", "LMHeadModel")):
        return "decoder"
    return "classifier"


def _configs(model: nn.Module) -> list[PretrainedConfig]:
    seen: dict[int, PretrainedConfig] = {}
    for module in model.modules():
        config = getattr(module, "config", None)
        if isinstance(config, PretrainedConfig):
            seen.setdefault(id(config), config)
            for key in getattr(config, "sub_configs", {}) or {}:
                sub = getattr(config, key, None)
                if isinstance(sub, PretrainedConfig):
                    seen.setdefault(id(sub), sub)
    return list(seen.values())


class AttentionCapture:
    """Context manager that records every head's attention probabilities during forward passes.

    >>> with AttentionCapture(model) as cap:          # doctest: +SKIP
    ...     model(**batch)
    >>> cap.maps["encoder"].shape                      # doctest: +SKIP
    torch.Size([batch, layers, heads, query, key])

    Args:
        model: a loaded transformers model (any attention implementation).
        kinds: kinds to keep (``encoder``/``decoder``/``cross``); all by default.
        layers: layer indices to keep (same for every kind); all by default.
        dtype: store maps in this dtype (e.g. ``torch.float16``); the model's by default.
        device: where to keep the maps (``"cpu"`` by default; ``None`` leaves them in place).
        detach: record detached maps (default); ``False`` keeps them in the autograd graph.
        head_gates: ``{(kind, layer): tensor[batch, heads]}`` multiplying each head's output
            before the output projection; 0 ablates a head. Gradients flow into the gates.
    """

    def __init__(
        self,
        model: PreTrainedModel,
        kinds: Iterable[str] | None = None,
        layers: Iterable[int] | None = None,
        dtype: torch.dtype | None = None,
        device: str | torch.device | None = "cpu",
        detach: bool = True,
        head_gates: dict[tuple[str, int], torch.Tensor] | None = None,
    ) -> None:
        self.model = model
        self.family = model_family(model)
        self.kinds = None if kinds is None else set(kinds)
        if self.kinds is not None and not self.kinds <= set(KINDS):
            raise UnsupportedModelError(f"unknown attention kind(s) {sorted(self.kinds - set(KINDS))}; choose from {KINDS}")
        self.layers = None if layers is None else set(layers)
        self.dtype = dtype
        self.device = device
        self.detach = detach
        self.head_gates = head_gates or {}
        self.records: dict[Site, torch.Tensor] = {}
        self.calls = 0
        self._names = {id(m): n for n, m in model.named_modules()}
        self._sites: dict[int, Site] = {}
        self._saved: list[tuple[PretrainedConfig, Any]] = []

    def __enter__(self) -> "AttentionCapture":
        register()
        for config in _configs(self.model):
            self._saved.append((config, config._attn_implementation_internal))
            config._attn_implementation_internal = ATTN_NAME
        _ACTIVE.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        _ACTIVE.remove(self)
        for config, saved in self._saved:
            config._attn_implementation_internal = saved
        self._saved.clear()

    def site_of(self, module: nn.Module) -> Site:
        """The (kind, layer) label of an attention module of this model."""
        key = id(module)
        if key not in self._sites:
            name = self._names.get(key)
            if name is None:
                raise UnsupportedModelError(f"attention module {type(module).__name__} is not part of the captured model")
            self._sites[key] = classify_module(name, self.family)
        return self._sites[key]

    def _on_attention(self, module: nn.Module, out: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        site = self.site_of(module)
        gate = self.head_gates.get((site.kind, site.layer))
        if gate is not None:
            out = out * gate.to(out.dtype)[:, None, :, None]
        if (self.kinds is None or site.kind in self.kinds) and (self.layers is None or site.layer in self.layers):
            kept = probs.detach() if self.detach else probs
            if self.dtype is not None:
                kept = kept.to(self.dtype)
            if self.device is not None:
                kept = kept.to(self.device)
            self.records[site] = kept
        return out

    @property
    def maps(self) -> dict[str, torch.Tensor]:
        """Recorded maps per kind, stacked over layers: ``{kind: [batch, layers, heads, query, key]}``."""
        by_kind: dict[str, list[tuple[int, torch.Tensor]]] = {}
        for site, tensor in self.records.items():
            by_kind.setdefault(site.kind, []).append((site.layer, tensor))
        return {
            kind: torch.stack([t for _, t in sorted(items, key=lambda item: item[0])], dim=1)
            for kind, items in sorted(by_kind.items(), key=lambda kv: KINDS.index(kv[0]))
        }

    def layer_indices(self, kind: str) -> list[int]:
        """The layer indices recorded for ``kind``, in stacking order."""
        return sorted(site.layer for site in self.records if site.kind == kind)
