"""Fallback capture through module forward hooks.

For architectures whose attention does not go through transformers' ``AttentionInterface``,
the model is switched to ``eager`` for the pass and run with ``output_attentions=True``;
forward hooks on the attention modules read the probability tensors those modules return.
Hooks are removed and the implementation restored on exit.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn
from transformers import PreTrainedModel

from .interface import AttentionCapture, _configs
from .sites import Site


def _looks_like_probs(t: Any) -> bool:
    if not isinstance(t, torch.Tensor) or t.ndim != 4 or not t.is_floating_point():
        return False
    sums = t.detach().float().sum(-1)
    return bool(((sums - 1).abs() < 1e-3).float().mean() > 0.5)


class HookCapture(AttentionCapture):
    """Same interface as :class:`AttentionCapture`, recording through forward hooks.

    The caller must run the model with ``output_attentions=True`` (``headscope.capture.run_capture``
    does). Head gates are not supported on this path.
    """

    def __init__(self, model: PreTrainedModel, kinds: Iterable[str] | None = None, layers: Iterable[int] | None = None,
                 dtype: torch.dtype | None = None, device: str | torch.device | None = "cpu") -> None:
        super().__init__(model, kinds=kinds, layers=layers, dtype=dtype, device=device)
        self._handles: list[Any] = []
        self._seen: set[int] = set()

    def __enter__(self) -> "HookCapture":
        for config in _configs(self.model):
            self._saved.append((config, config._attn_implementation_internal))
            config._attn_implementation_internal = "eager"
        for module in self.model.modules():
            if "attention" in type(module).__name__.lower():
                self._handles.append(module.register_forward_hook(self._hook))
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        for config, saved in self._saved:
            config._attn_implementation_internal = saved
        self._saved.clear()

    def _hook(self, module: nn.Module, args: Any, output: Any) -> None:
        outputs = output if isinstance(output, tuple) else (output,)
        for item in outputs:
            # the innermost attention module fires first; its parents return the same tensor
            if _looks_like_probs(item) and item.data_ptr() not in self._seen:
                self._seen.add(item.data_ptr())
                self._on_attention(module, torch.empty(0), item)
                return

    def _on_attention(self, module: nn.Module, out: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
        site: Site = self.site_of(module)
        if site in self.records:  # a second module at the same site (e.g. a wrapper): keep the first
            return out
        return super()._on_attention(module, out, probs)
