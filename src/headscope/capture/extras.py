"""What readings beyond the probabilities need from a forward pass, captured only when asked for.

Norm-based attention, ALTI and value zeroing (:mod:`headscope.mixing`) need more than the attention
probabilities: each attention call's value vectors, the residual stream entering an attention block,
the input of a layer norm, a layer's output; value zeroing also needs some value vectors zeroed.
:class:`Extras` keeps these for one capture: the registered attention function hands it each call's
value vectors (:meth:`Extras.on_value`), and forward hooks on the modules it is told to watch record
their inputs and outputs. Like the rest of a capture it is per-call state: the hooks record only for
the forward passes of their own recording (:meth:`Extras.watching`), and are removed when it ends,
also on failure, so the model is left with exactly the hooks it had.

>>> extras = Extras(values=True)                                         # doctest: +SKIP
>>> cap = AttentionCapture(model); cap.recording.extras = extras         # doctest: +SKIP
>>> with cap, extras.watching(cap.recording):                            # doctest: +SKIP
...     model(**batch)
>>> extras.values[("encoder", 0)].shape                                  # doctest: +SKIP
torch.Size([batch, heads, key, head_dim])
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..errors import UnsupportedModelError
from ..models.structure import AttentionSite
from .interface import _RECORDING, Recording, _upcoming_layer

SiteKey = tuple[str, int]


@dataclass(eq=False)
class Extras:
    """Per-capture state for readings beyond the probabilities.

    Attributes:
        values: keep each call's value vectors (``[batch, heads, key, head_dim]``, grouped-query
            values repeated to the query heads) in :attr:`kept_values`, with the module in :attr:`modules`.
        zero: ``{(kind, layer): bool[batch, key]}``: value vectors of those keys are set to zero in that
            layer's attention (all heads) before the probabilities weight them (value zeroing).
        inputs / outputs: ``{name: module}`` whose hidden-state input / output to keep, per call, in
            :attr:`kept_inputs` / :attr:`kept_outputs`.
        calls: ``{name: module}`` whose call arguments ``(args, kwargs)`` to keep, per call, in :attr:`kept_calls`
            (to run that module again on the same input).
        detach: keep detached tensors (default).
        order: the names of watched calls (``"attention kind.layer"`` and module names) in call order,
            to tell a pre-norm block (norm before attention) from a post-norm one.
    """

    values: bool = False
    zero: Mapping[SiteKey, torch.Tensor] = field(default_factory=dict)
    inputs: Mapping[str, nn.Module] = field(default_factory=dict)
    outputs: Mapping[str, nn.Module] = field(default_factory=dict)
    calls: Mapping[str, nn.Module] = field(default_factory=dict)
    detach: bool = True
    kept_values: dict[SiteKey, torch.Tensor] = field(default_factory=dict)
    modules: dict[SiteKey, nn.Module] = field(default_factory=dict)
    kept_inputs: dict[str, list[torch.Tensor]] = field(default_factory=dict)
    kept_outputs: dict[str, list[torch.Tensor]] = field(default_factory=dict)
    kept_calls: dict[str, list[tuple[tuple[Any, ...], dict[str, Any]]]] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)

    def _keep(self, tensor: torch.Tensor) -> torch.Tensor:
        return tensor.detach() if self.detach else tensor

    def on_value(self, recording: Recording, site: AttentionSite, module: nn.Module, query: torch.Tensor,
                 value: torch.Tensor) -> torch.Tensor:
        """Called by the registered attention function with one call's values; returns the values to use."""
        if site.merged:
            raise UnsupportedModelError(
                f"{site.kind} attention at {site.module} is one softmax over its own and the {site.merged} keys; "
                "readings that need its value vectors are not supported")
        key = (site.kind, _upcoming_layer(recording, site, module, query))
        mask = self.zero.get(key)
        if mask is not None:
            value = value.masked_fill(mask.to(value.device)[:, None, :, None], 0.0)
        if self.values and key not in self.kept_values and recording.wants(*key):
            repeat = query.shape[1] // value.shape[1]
            self.kept_values[key] = self._keep(value.repeat_interleave(repeat, dim=1) if repeat > 1 else value)
            self.modules[key] = module
        self.order.append(f"attention {key[0]}.{key[1]}")
        return value

    @contextlib.contextmanager
    def watching(self, recording: Recording) -> Iterator[Extras]:
        """Hooks on :attr:`inputs` / :attr:`outputs` recording for ``recording``'s forwards only; removed on exit."""
        handles = []
        try:
            for name, module in self.inputs.items():
                handles.append(module.register_forward_pre_hook(self._input_hook(recording, name), with_kwargs=True))
            for name, module in self.outputs.items():
                handles.append(module.register_forward_hook(self._output_hook(recording, name)))
            for name, module in self.calls.items():
                handles.append(module.register_forward_pre_hook(self._call_hook(recording, name), with_kwargs=True))
            yield self
        finally:
            for handle in handles:
                handle.remove()

    def _input_hook(self, recording: Recording, name: str) -> Any:
        def hook(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            if _RECORDING.get() is not recording:
                return
            hidden = args[0] if args else kwargs.get("hidden_states", kwargs.get("input"))
            if isinstance(hidden, torch.Tensor):
                self.kept_inputs.setdefault(name, []).append(self._keep(hidden))
                self.order.append(name)
        return hook

    def _call_hook(self, recording: Recording, name: str) -> Any:
        def hook(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            if _RECORDING.get() is recording:
                self.kept_calls.setdefault(name, []).append((args, dict(kwargs)))
        return hook

    def _output_hook(self, recording: Recording, name: str) -> Any:
        def hook(module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
            if _RECORDING.get() is not recording:
                return
            hidden = output[0] if isinstance(output, (tuple, list)) else getattr(output, "last_hidden_state", output)
            if isinstance(hidden, torch.Tensor):
                self.kept_outputs.setdefault(name, []).append(self._keep(hidden))
        return hook
