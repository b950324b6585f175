"""The registered attention function, and the per-model switch that routes a model through it.

headscope registers one function with transformers' ``AttentionInterface`` (and a mask function
with ``AttentionMaskInterface``), both named ``"headscope"``. While at least one capture runs on a
model, its configs point at that name (:class:`ModelSwitch`); when the last one ends, everything
the switch changed is put back — attention implementation, ``training`` flags, and any hooks
transformers installed for ``output_attentions``.

While switched, the model's configs name the implementation :data:`CAPTURE_NAME`, a name that
transformers' code reads as ``"eager"`` (``config._attn_implementation == "eager"`` is true): every
model branch written for eager attention takes its eager path (DeepSeek sparse attention folds its
indexer into the mask, GPT-2 upcasts, ...), so a capture is the model's own eager forward, while
``AttentionInterface`` lookups dispatch to headscope's function.

Which call records what is decided per call, never by module state: a capture is a
:class:`Recording` set in a :class:`contextvars.ContextVar` for the duration of its forward pass.
One *application* of an attention module is one map: a module that calls the attention function
twice with the same query (DiffLlama's differential attention) is recorded once, and a module
applied again (ALBERT's shared layer) is recorded again, as the next layer.
The registered function looks it up; when the calling context has no recording for the module
(a plain forward on another thread, say), it runs the model's own implementation (``eager``,
``sdpa``, ...) with the model's own mask, exactly as if headscope were not there. Legacy SDPA
attention classes that call SDPA themselves (``Data2VecVisionSdpaSelfAttention``) run their eager
parent's forward inside a capture, their own outside it.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from transformers import AttentionInterface, PreTrainedModel
from transformers.configuration_utils import PretrainedConfig
from transformers.masking_utils import AttentionMaskInterface, eager_mask

from ..errors import ShapeError, UnsupportedModelError
from ..models.structure import AttentionSite, ModelStructure

ATTN_NAME = "headscope"


class _EagerReadingName(str):
    """The implementation name a switched config carries: the key ``"headscope"`` in transformers'
    registries, equal to ``"eager"`` wherever model code compares it (so eager branches are taken)."""

    __slots__ = ()

    def __eq__(self, other: object) -> bool:
        return str.__eq__(self, other) is True or (isinstance(other, str) and str.__eq__(other, "eager") is True)

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    __hash__ = str.__hash__

    def __reduce__(self) -> Any:  # pickles and copies as the plain key
        return (str, (str(self),))

    def __str__(self) -> str:
        return str.__str__(self)


CAPTURE_NAME = _EagerReadingName(ATTN_NAME)
_SAVED = "_headscope_saved_attn_implementation"  # set on a config only while a switch holds it
_SWITCH = "_headscope_switch"                     # set on a model only while a switch holds it

# Which recording the current forward pass writes to: per thread and per asyncio task.
_RECORDING: ContextVar["Recording | None"] = ContextVar("headscope_recording", default=None)
# Guards taking and giving back the per-model switches (not per-call state).
_SWITCH_LOCK = threading.Lock()


@dataclass(eq=False)
class Recording:
    """What one capture keeps: per kind, the attention probabilities of each application, in forward order.

    Attributes:
        structure: the model's attention structure (which module is which kind).
        kinds / layers: what to keep (``None``: everything).
        dtype / device / detach: how to keep it.
        head_gates: ``{(kind, layer): tensor[batch, heads]}`` scaling each head's output before the
            output projection (0 ablates a head); gradients flow into the gates.
        calls: attention-function calls seen per kind.
        maps: kept maps per kind, as ``[(layer, tensor[batch, heads, query, key])]``.

    Layer numbers count applications of the kind's attention modules in forward order; a module's
    first application is numbered no lower than its place among the kind's modules, so layers whose
    modules never call the attention function (linear-attention layers) keep their numbers empty.
    """

    structure: ModelStructure
    kinds: frozenset[str] | None = None
    layers: frozenset[int] | None = None
    dtype: torch.dtype | None = None
    device: str | torch.device | None = "cpu"
    detach: bool = True
    head_gates: dict[tuple[str, int], torch.Tensor] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=dict)
    maps: dict[str, list[tuple[int, torch.Tensor]]] = field(default_factory=dict)
    # counterfactual attention (issue 15): {(kind, layer): fn(probs, allowed) -> probs}; see replace_probabilities
    replace: dict[tuple[str, int], Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = field(default_factory=dict)
    # issue 17: where kept maps go (a preallocated tensor, reductions, shards on disk); see capture/stream.py
    keeper: Any = None
    # issue 16: what readings beyond the probabilities need (value vectors, zeroed values); see capture/extras.py
    extras: Any = None
    _next: dict[str, int] = field(default_factory=dict, repr=False)
    _applied: set[int] = field(default_factory=set, repr=False)
    _last: tuple[Any, ...] | None = field(default=None, repr=False)
    _kinds_of: dict[str, set[str]] = field(default_factory=dict, repr=False)

    @property
    def total_calls(self) -> int:
        return sum(self.calls.values())

    @property
    def seen(self) -> set[str]:
        """The kinds whose attention went through the attention function (both parts of a merged site)."""
        return {k for site_kind in self.calls for k in self._kinds_of.get(site_kind, {site_kind})}

    def wants(self, kind: str, layer: int) -> bool:
        return (self.kinds is None or kind in self.kinds) and (self.layers is None or layer in self.layers)

    def _layer(self, site: AttentionSite, module: nn.Module, query: torch.Tensor) -> tuple[int, bool]:
        """``(layer, new application)`` of a call of ``module`` with ``query``."""
        last = self._last
        if last is not None and last[0] is module and last[1] is query:
            return last[2], False
        layer = self._next.get(site.kind, 0)
        if site.index not in self._applied:
            layer = max(layer, site.layer)
            self._applied.add(site.index)
        self._next[site.kind] = layer + 1
        self._last = (module, query, layer)  # strong references: the same objects, not recycled ids
        return layer, True

    def on_attention(self, site: AttentionSite, module: nn.Module, query: torch.Tensor, out: torch.Tensor,
                     probs: torch.Tensor) -> torch.Tensor:
        """Record one call's probabilities (split per kind for merged sites); gate its output."""
        self.calls[site.kind] = self.calls.get(site.kind, 0) + 1
        if site.merged:
            self._kinds_of.setdefault(site.kind, {site.kind}).add(site.merged)
        layer, new = self._layer(site, module, query)
        gate = self.head_gates.get((site.kind, layer))
        if gate is not None:
            out = out * gate.to(out.dtype)[:, None, :, None]
        if new and probs is not None:  # None: kept block by block (attention_in_blocks)
            for kind, part in site.parts(probs):
                if self.wants(kind, layer):
                    kept = part.detach() if self.detach else part
                    if self.keeper is not None:  # issue 17: written into one tensor, reduced or streamed
                        kept = self.keeper.keep(kind, layer, kept)
                        if kept is None:
                            continue
                    else:
                        if self.dtype is not None:
                            kept = kept.to(self.dtype)
                        if self.device is not None:
                            kept = kept.to(self.device)
                    self.maps.setdefault(kind, []).append((layer, kept))
        return out

    def end(self) -> None:
        """Drop the references kept to tell applications apart."""
        self._last = None


def family_eager(module: nn.Module) -> Callable[..., Any]:
    """The eager attention function defined next to the module's class, or :func:`generic_eager`."""
    fn = getattr(sys.modules.get(type(module).__module__), "eager_attention_forward", None)
    return fn if callable(fn) else generic_eager


def generic_eager(module: nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                  attention_mask: torch.Tensor | None, scaling: float | None = None, dropout: float = 0.0,
                  **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor]:
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


def _as_additive(mask: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    if mask is None or mask.dtype != torch.bool:
        return mask
    return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(~mask, torch.finfo(dtype).min)


def _own_implementation(config: Any) -> str:
    return str(getattr(config, _SAVED, None) or config._attn_implementation or "eager")


def headscope_attention(module: nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                        attention_mask: torch.Tensor | None, **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """The registered attention function: recorded family eager attention inside a capture, the
    model's own implementation outside one."""
    recording = _RECORDING.get()
    site = None if recording is None else recording.structure.site_of(module)
    if site is None:
        own = str(_own_implementation(module.config))
        fn = family_eager(module) if own in ("eager", ATTN_NAME) else AttentionInterface._global_mapping[own]
        return fn(module, query, key, value, attention_mask, **kwargs)
    attention_mask = _as_additive(attention_mask, query.dtype)
    if recording.extras is not None:  # issue 16: keep (or zero) value vectors; see capture/extras.py
        value = recording.extras.on_value(recording, site, module, query, value)
    if recording.keeper is not None and not recording.replace and recording.extras is None:  # issue 17
        blocked = attention_in_blocks(recording, site, module, query, key, value, attention_mask, kwargs)
        if blocked is not None:  # a long input's rows were reduced or streamed block by block
            return recording.on_attention(site, module, query, blocked, None), None
    out, probs = family_eager(module)(module, query, key, value, attention_mask, **kwargs)
    if recording.replace:  # counterfactual attention (issue 15)
        out, probs = replace_probabilities(recording, site, module, query, value, attention_mask, out, probs, kwargs)
    return recording.on_attention(site, module, query, out, probs), probs


def headscope_mask(*args: Any, config: Any = None, **kwargs: Any) -> Any:
    """The registered mask function: eager masks inside a capture, the model's own outside one."""
    if _RECORDING.get() is None and config is not None:
        own = _own_implementation(config)
        if own not in ("eager", ATTN_NAME) and own in AttentionMaskInterface._global_mapping:
            return AttentionMaskInterface._global_mapping[own](*args, config=config, **kwargs)
    return eager_mask(*args, config=config, **kwargs)


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


def _is_recorder_hook(hook: Any) -> bool:
    """Whether a forward hook is one transformers installs to assemble ``output_attentions``."""
    return getattr(hook, "__module__", "") == "transformers.utils.output_capturing"


def _eager_parent(cls: type) -> type | None:
    """The eager attention class a legacy SDPA attention class derives from (``Data2VecVisionSdpaSelfAttention``
    -> ``Data2VecVisionSelfAttention``): such classes call SDPA themselves and return no weights."""
    if "Sdpa" not in cls.__name__ or "forward" not in cls.__dict__:
        return None
    parent = cls.__mro__[1]
    if issubclass(parent, nn.Module) and parent.__name__ == cls.__name__.replace("Sdpa", "") and "forward" in vars(parent):
        return parent
    return None


def _routed_forward(module: nn.Module, parent: type) -> Callable[..., Any]:
    """A forward running ``parent``'s (eager) forward for calls made inside a capture of ``module``,
    the module's own everywhere else (other threads, plain calls)."""
    own = type(module).forward

    def forward(*args: Any, **kwargs: Any) -> Any:
        recording = _RECORDING.get()
        if recording is not None and recording.structure.site_of(module) is not None:
            return parent.forward(module, *args, **kwargs)
        return own(module, *args, **kwargs)

    return forward


class ModelSwitch:
    """Routes one model through the registered function while any capture on it runs.

    Taken with :meth:`acquire` and given back with :meth:`release`; the first taker saves and
    changes the model, the last giver puts back exactly what was saved. Kept on the model object
    only while held, so no module state outlives a capture.
    """

    def __init__(self, model: PreTrainedModel) -> None:
        self.model = model
        self.holders = 0
        self.configs = _configs(model)
        self.training = [(m, m.training) for m in model.modules()]
        self.hooks = {id(m): set(m._forward_hooks) for m in model.modules()}  # transformers' recorders
        self.hooked = [(m, m.__dict__["_output_capturing_hooks_installed"])
                       for m in model.modules() if "_output_capturing_hooks_installed" in m.__dict__]
        self.routed = [(m, parent) for m in model.modules() if (parent := _eager_parent(type(m))) is not None
                       and "forward" not in m.__dict__]

    @classmethod
    def acquire(cls, model: PreTrainedModel) -> "ModelSwitch":
        with _SWITCH_LOCK:
            switch = model.__dict__.get(_SWITCH)
            if switch is None:
                switch = cls(model)
                AttentionInterface.register(ATTN_NAME, headscope_attention)
                AttentionMaskInterface.register(ATTN_NAME, headscope_mask)
                for config in switch.configs:
                    setattr(config, _SAVED, config._attn_implementation_internal)
                    config._attn_implementation_internal = CAPTURE_NAME
                for module, parent in switch.routed:
                    module.forward = _routed_forward(module, parent)
                model.eval()
                model.__dict__[_SWITCH] = switch
            switch.holders += 1
            return switch

    def release(self) -> None:
        with _SWITCH_LOCK:
            self.holders -= 1
            if self.holders:
                return
            del self.model.__dict__[_SWITCH]
            for module, _ in self.routed:
                module.__dict__.pop("forward", None)
            for config in self.configs:
                config._attn_implementation_internal = getattr(config, _SAVED)
                delattr(config, _SAVED)
            for module, flag in self.training:
                module.training = flag
            for module in self.model.modules():
                for key in set(module._forward_hooks) - self.hooks.get(id(module), set()):
                    if _is_recorder_hook(module._forward_hooks[key]):
                        del module._forward_hooks[key]
                module.__dict__.pop("_output_capturing_hooks_installed", None)
            for module, flag in self.hooked:
                module.__dict__["_output_capturing_hooks_installed"] = flag


class Active:
    """Context manager: ``recording`` receives the attention of ``model``'s forwards in this context."""

    def __init__(self, model: PreTrainedModel, recording: Recording) -> None:
        self.model, self.recording = model, recording
        self._switch: ModelSwitch | None = None
        self._token: Any = None

    def __enter__(self) -> Recording:
        self._switch = ModelSwitch.acquire(self.model)
        self._token = _RECORDING.set(self.recording)
        return self.recording

    def __exit__(self, *exc: object) -> None:
        _RECORDING.reset(self._token)
        self.recording.end()
        self._switch.release()


# ---- counterfactual attention (issue 15): replacing the probabilities during the forward ----------

def _upcoming_layer(recording: Recording, site: AttentionSite, module: nn.Module, query: torch.Tensor) -> int:
    """The layer :meth:`Recording._layer` will give this call, without advancing the recording."""
    last = recording._last
    if last is not None and last[0] is module and last[1] is query:
        return last[2]
    layer = recording._next.get(site.kind, 0)
    return max(layer, site.layer) if site.index not in recording._applied else layer


def allowed_keys(attention_mask: torch.Tensor | None, probs: torch.Tensor) -> torch.Tensor:
    """``bool[batch, heads, query, key]``: the keys the model's (additive) mask leaves open to each row."""
    if attention_mask is None:
        return torch.ones(probs.shape, dtype=torch.bool, device=probs.device)
    return (attention_mask[..., : probs.shape[-1]] > -1e4).expand(probs.shape)


def replace_probabilities(recording: Recording, site: AttentionSite, module: nn.Module, query: torch.Tensor,
                          value: torch.Tensor, attention_mask: torch.Tensor | None, out: torch.Tensor,
                          probs: torch.Tensor, kwargs: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply ``recording.replace[(kind, layer)]`` to one call: the function gets the probabilities
    ``[batch, heads, query, key]`` and the open keys (:func:`allowed_keys`) and returns new
    probabilities; masked keys are set to 0 and the output is recomputed as ``probs @ value``
    (grouped-query values repeated as in :func:`generic_eager`, dropout as the model's eager
    attention applies it). A function returning its input unchanged leaves the call as it was.
    """
    fn = recording.replace.get((site.kind, _upcoming_layer(recording, site, module, query)))
    if fn is None:
        return out, probs
    if site.merged:
        raise UnsupportedModelError(
            f"{site.kind} attention at {site.module} is one softmax over its own and the {site.merged} keys; "
            "replacing its probabilities is not supported")
    allowed = allowed_keys(attention_mask, probs)
    new = fn(probs, allowed)
    if new is probs:
        return out, probs
    if new.shape != probs.shape:
        raise ShapeError(f"a replacement map for {site.kind} has shape {tuple(new.shape)}; the model's is "
                         f"{tuple(probs.shape)}")
    new = new.to(value.dtype).masked_fill(~allowed, 0.0)
    if value.shape[1] != new.shape[1]:  # grouped-query attention
        value = value.repeat_interleave(new.shape[1] // value.shape[1], dim=1)
    used = nn.functional.dropout(new, p=float(kwargs.get("dropout", 0.0) or 0.0), training=module.training)
    replaced = torch.matmul(used, value).transpose(1, 2).contiguous()
    if replaced.shape != out.shape:
        raise UnsupportedModelError(
            f"{type(module).__name__}'s attention output is not its probabilities times its values "
            f"({tuple(out.shape)} vs {tuple(replaced.shape)}); its probabilities cannot be replaced")
    return replaced, used


# ---- long inputs (issue 17): one layer's attention in blocks of query rows --------------------------

def attention_in_blocks(recording: Recording, site: AttentionSite, module: nn.Module, query: torch.Tensor,
                        key: torch.Tensor, value: torch.Tensor, attention_mask: torch.Tensor | None,
                        kwargs: dict[str, Any]) -> torch.Tensor | None:
    """The attention output of one call computed ``keeper.block_rows`` query rows at a time, each
    block's probabilities handed to the keeper (reductions, shards) and dropped: a long input's
    layer never holds its whole ``heads x n x n`` map. ``None`` (compute it whole) when the keeper
    keeps maps in memory, the input is short, or the call is not one a block can stand for (a
    merged site, a mask without a row per query, a repeated application, an unwanted layer).

    Each query row's softmax only reads its own scores, so a block's rows are the whole layer's rows
    (up to the rounding of a smaller matrix product).
    """
    rows = int(query.shape[-2])
    size = recording.keeper.block_rows(rows)
    if size is None or site.merged or (attention_mask is not None and attention_mask.shape[-2] not in (1, rows)):
        return None
    last = recording._last
    layer = _upcoming_layer(recording, site, module, query)
    if (last is not None and last[0] is module and last[1] is query) or not recording.wants(site.kind, layer):
        return None
    fn = family_eager(module)
    outs = []
    for start in range(0, rows, size):
        stop = min(rows, start + size)
        mask = attention_mask
        if mask is not None and mask.shape[-2] == rows:
            mask = mask[..., start:stop, :]
        out, probs = fn(module, query[..., start:stop, :], key, value, mask, **kwargs)
        if out.shape[1] != stop - start:  # not [batch, query, heads, dim]: this family's output is laid out otherwise
            return None
        recording.keeper.keep_block(site.kind, layer, start, rows, probs.detach())
        outs.append(out)
    return torch.cat(outs, dim=1)
