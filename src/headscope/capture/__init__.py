"""Capture the attention probabilities of every head of every layer.

:func:`run_capture` runs one forward pass and returns the model outputs with the recorded maps.
:class:`AttentionCapture` is the context manager under it: every forward of the model inside it,
in the calling thread or task only, goes through the registered attention function (see
:mod:`headscope.capture.interface`). Models whose attention bypasses transformers'
``AttentionInterface`` are read from the model's own ``output_attentions`` instead
(``method="outputs"``), which ``method="auto"`` falls back to.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from transformers import PreTrainedModel

from ..errors import InputError, UnsupportedModelError
from ..models.structure import ModelStructure, describe
from ..readings import KINDS, Site
from .interface import ATTN_NAME, Active, ModelSwitch, Recording, headscope_attention

METHODS = ("auto", "interface", "outputs")


@dataclass
class Captured:
    """The maps of one capture: ``maps[kind]`` is ``[batch, layers, heads, query, key]``, its layers
    ``layers[kind]`` (model layer indices), and the method that recorded them."""

    maps: dict[str, torch.Tensor]
    layers: dict[str, list[int]]
    method: str


class AttentionCapture:
    """Context manager recording every head's attention during this context's forward passes.

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
        structure: the model's :class:`~headscope.models.structure.ModelStructure` (described once
            per model by :func:`headscope.load`; computed here when not given).
    """

    def __init__(self, model: PreTrainedModel, kinds: Iterable[str] | None = None,
                 layers: Iterable[int] | None = None, dtype: torch.dtype | None = None,
                 device: str | torch.device | None = "cpu", detach: bool = True,
                 head_gates: dict[tuple[str, int], torch.Tensor] | None = None,
                 structure: ModelStructure | None = None) -> None:
        structure = structure or describe(model)
        kinds = None if kinds is None else list(kinds)
        layers = None if layers is None else list(layers)
        if kinds:
            structure.check(kinds, layers)
        elif layers is not None:
            structure.check(None, layers)
        self.model = model
        self.recording = Recording(structure, None if kinds is None else frozenset(kinds),
                                   None if layers is None else frozenset(layers), dtype, device, detach,
                                   dict(head_gates or {}))
        self._active = Active(model, self.recording)

    def __enter__(self) -> "AttentionCapture":
        self._active.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._active.__exit__(*exc)

    @property
    def calls(self) -> int:
        """Attention calls seen (0 when the model bypasses the attention interface)."""
        return self.recording.total_calls

    @property
    def maps(self) -> dict[str, torch.Tensor]:
        """Recorded maps per kind, stacked over layers: ``{kind: [batch, layers, heads, query, key]}``."""
        return {kind: _stack([t for _, t in self.recording.maps[kind]])
                for kind in KINDS if kind in self.recording.maps}

    def layer_indices(self, kind: str) -> list[int]:
        """The layer indices recorded for ``kind``, in stacking order."""
        return [layer for layer, _ in self.recording.maps.get(kind, [])]


def _stack(tensors: list[torch.Tensor]) -> torch.Tensor:
    if len({tuple(t.shape) for t in tensors}) > 1:
        raise UnsupportedModelError(
            f"the layers' attention maps differ in shape ({sorted({tuple(t.shape) for t in tensors})}); "
            "headscope keeps maps of one shape per kind")
    return torch.stack(tensors, dim=1)


def _output_fields(structure: ModelStructure) -> dict[str, str]:
    if structure.architecture.name == "encoder-decoder":
        return {"encoder": "encoder_attentions", "decoder": "decoder_attentions", "cross": "cross_attentions"}
    return {structure.architecture.self_kind: "attentions", "cross": "cross_attentions"}


def _from_outputs(model: PreTrainedModel, inputs: Mapping[str, Any], structure: ModelStructure,
                  kinds: Iterable[str] | None, layers: Iterable[int] | None, dtype: torch.dtype | None,
                  device: str | torch.device | None) -> tuple[Any, Captured]:
    """Read the model's own ``output_attentions`` (for attention that bypasses the interface)."""
    probe = Recording(structure, frozenset())  # routes interface attention through eager, keeps nothing
    with Active(model, probe):
        outputs = model(**inputs, output_attentions=True)
    wanted = None if kinds is None else set(kinds)
    keep = None if layers is None else set(layers)
    maps, index = {}, {}
    for kind, fld in _output_fields(structure).items():
        found = getattr(outputs, fld, None)
        if not found or (wanted is not None and kind not in wanted):
            continue
        chosen = [(i, t) for i, t in enumerate(found) if t is not None and (keep is None or i in keep)]
        if not chosen:
            continue
        tensors = [t.detach().to(dtype) if dtype is not None else t.detach() for _, t in chosen]
        maps[kind] = _stack([t.to(device) if device is not None else t for t in tensors])
        index[kind] = [i for i, _ in chosen]
    return outputs, Captured(maps, index, "outputs")


def run_capture(model: PreTrainedModel, inputs: Mapping[str, Any], *, method: str = "auto",
                kinds: Iterable[str] | None = None, layers: Iterable[int] | None = None,
                dtype: torch.dtype | None = None, device: str | torch.device | None = "cpu",
                structure: ModelStructure | None = None) -> tuple[Any, Captured]:
    """One forward pass of ``model(**inputs)`` with every attention map recorded.

    ``method="interface"`` records through the registered attention function, ``"outputs"`` reads
    the model's own ``output_attentions``, and ``"auto"`` (default) uses the interface and falls
    back to the outputs when the architecture does not call it. The model is left as it was.
    """
    if method not in METHODS:
        raise InputError(f"method={method!r}: unknown capture method; choose from {METHODS}")
    structure = structure or describe(model)
    if not structure.sites:
        raise UnsupportedModelError(
            f"{type(model).__name__} ({structure.model_type}) has no attention headscope can capture: it declares "
            "no attention outputs and has no attention modules. Use a transformer with softmax attention "
            "(BERT, BART, Marian, T5, GPT-2, ViT, ...).")
    if method in ("auto", "interface"):
        cap = AttentionCapture(model, kinds, layers, dtype, device, structure=structure)
        with torch.no_grad(), cap:
            outputs = model(**inputs)
        if cap.calls or method == "interface":
            if not cap.calls:
                raise UnsupportedModelError(
                    f"{type(model).__name__} does not call transformers' attention interface; "
                    "use method='outputs' (or 'auto') to read its output_attentions")
            return outputs, Captured(cap.maps, {k: cap.layer_indices(k) for k in cap.maps}, "interface")
    else:
        structure.check(kinds, layers)
    with torch.no_grad():
        return _from_outputs(model, inputs, structure, kinds, layers, dtype, device)


def split_examples(maps: torch.Tensor, query_mask: torch.Tensor,
                   key_mask: torch.Tensor | None = None) -> list[torch.Tensor]:
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
    "Captured",
    "METHODS",
    "ModelSwitch",
    "Recording",
    "Site",
    "headscope_attention",
    "run_capture",
    "split_examples",
]
