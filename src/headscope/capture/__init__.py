"""Capture the attention probabilities of every head of every layer.

:func:`run_capture` runs one forward pass and returns the model outputs with the recorded maps.
:class:`AttentionCapture` is the context manager under it: every forward of the model inside it,
in the calling thread or task only, goes through the registered attention function (see
:mod:`headscope.capture.interface`). Models whose attention bypasses transformers'
``AttentionInterface`` are read from the model's own ``output_attentions`` instead
(``method="outputs"``), which ``method="auto"`` falls back to.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import torch
from transformers import PreTrainedModel

from ..errors import InputError, ShapeError, UnsupportedModelError
from ..models.structure import BANDED, BLOCKED, SCORES, SCORES_STREAMS, STREAMS, ModelStructure, describe
from ..readings import KINDS, Site
from .interface import ATTN_NAME, Active, ModelSwitch, Recording, headscope_attention
from .reductions import LONG_INPUT, STATS, Reductions, reduce_for, reduce_maps
from .stream import Keeper, load_streamed

METHODS = ("auto", "interface", "outputs")

Maps = Union[torch.Tensor, list]
"""The maps of one kind: ``[batch, layers, heads, query, key]`` when every layer's maps have one
shape, else a list of each layer's maps as the layer gives them (``[batch, heads, query, key]``;
pooled layers are smaller, windowed vision layers carry their windows)."""


@dataclass
class Captured:
    """The maps of one capture: ``maps[kind]`` is ``[batch, layers, heads, query, key]`` (or a per-layer
    list where the layers' maps differ in shape), its layers ``layers[kind]`` (model layer indices),
    and the method that recorded them."""

    maps: dict[str, Maps]
    layers: dict[str, list[int]]
    method: str
    # issue 17: reductions ``{kind: {name: [batch, layers, heads, ...]}}``, their layers, the streamed folder
    reduced: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)
    reduced_layers: dict[str, list[int]] = field(default_factory=dict)
    streamed: Path | None = None


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
        replace: ``{(kind, layer): fn(probs, allowed) -> probs}`` replacing that layer's attention
            probabilities during the forward (see :func:`~headscope.capture.interface.replace_probabilities`);
            gradients flow through the new probabilities.
        reductions: compute these from each layer as it runs (:class:`~headscope.capture.reductions.Reductions`);
            read them with :meth:`reduced`. Maps are then kept only when ``reductions.maps`` is true.
        stream_to: write the maps to this folder as safetensors shards (:mod:`headscope.capture.stream`)
            instead of keeping them; the folder appears when the context ends without an error.

    With ``detach=True`` (default) each layer's maps are written into one preallocated
    ``[batch, layers, heads, query, key]`` tensor per kind as the layer runs: no per-layer copies
    and no stacked copy stay alive.
    """

    def __init__(self, model: PreTrainedModel, kinds: Iterable[str] | None = None,
                 layers: Iterable[int] | None = None, dtype: torch.dtype | None = None,
                 device: str | torch.device | None = "cpu", detach: bool = True,
                 head_gates: dict[tuple[str, int], torch.Tensor] | None = None,
                 structure: ModelStructure | None = None,
                 replace: dict[tuple[str, int], Any] | None = None, reductions: Reductions | None = None,
                 stream_to: str | os.PathLike | None = None) -> None:
        structure = structure or describe(model)
        kinds = None if kinds is None else list(kinds)
        layers = None if layers is None else list(layers)
        if kinds:
            structure.check(kinds, layers)
        elif layers is not None:
            structure.check(None, layers)
        self.model = model
        self.structure = structure
        self.recording = Recording(structure, None if kinds is None else frozenset(kinds),
                                   None if layers is None else frozenset(layers), dtype, device, detach,
                                   dict(head_gates or {}))
        self.recording.replace = dict(replace or {})  # counterfactual attention (issue 15)
        if detach or reductions is not None or stream_to is not None:  # issue 17: see capture/stream.py
            self.recording.keeper = Keeper(_expected_layers(structure, kinds, layers), dtype, device,
                                           reductions, stream_to)
        self._active = Active(model, self.recording)

    def __enter__(self) -> "AttentionCapture":
        self._active.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._active.__exit__(*exc)
        keeper = self.recording.keeper
        if keeper is not None:
            if exc[0] is None:
                keeper.finish()
            else:
                keeper.abandon()

    @property
    def calls(self) -> int:
        """Attention calls seen (0 when the model bypasses the attention interface)."""
        return self.recording.total_calls

    @property
    def maps(self) -> dict[str, Maps]:
        """Recorded maps per kind, stacked over layers: ``{kind: [batch, layers, heads, query, key]}``
        (a per-layer list for a kind whose layers' maps differ in shape)."""
        keeper = self.recording.keeper
        out: dict[str, Maps] = {}
        for kind in KINDS:
            if kind in self.recording.maps:
                kept = [t for _, t in self.recording.maps[kind]]
                whole = None if keeper is None else keeper.stacked(kind, kept)
                out[kind] = whole if whole is not None else stack_layers(kept)
        return out

    def reduced(self) -> dict[str, dict[str, torch.Tensor]]:
        """The reductions computed (``{kind: {name: [batch, layers, heads, ...]}}``; empty without ``reductions``)."""
        keeper = self.recording.keeper
        return {} if keeper is None else keeper.reductions_of()

    @property
    def streamed(self) -> Path | None:
        """The folder the maps were streamed to (``None`` without ``stream_to``)."""
        keeper = self.recording.keeper
        return None if keeper is None else keeper.stream_to

    def layer_indices(self, kind: str) -> list[int]:
        """The layer indices recorded for ``kind``, in stacking order."""
        return [layer for layer, _ in self.recording.maps.get(kind, [])]


def _expected_layers(structure: ModelStructure, kinds: list[str] | None, layers: list[int] | None) -> dict[str, int]:
    """``{kind: number of layers a capture keeps}`` (the size of its preallocated maps)."""
    return {kind: sum(1 for i in range(structure.layers(kind)) if layers is None or i in layers)
            for kind in structure.kinds if kinds is None or kind in kinds}


def stack_layers(tensors: list[torch.Tensor]) -> Maps:
    """``[batch, layers, heads, query, key]`` when the layers' maps agree in shape, else the list itself."""
    if len({tuple(t.shape) for t in tensors}) > 1:
        return list(tensors)
    return torch.stack(tensors, dim=1)


def _flat(value: Any) -> list[torch.Tensor | None]:
    """The per-layer tensors of an output field (nested per block, PVTv2's, flattened)."""
    if isinstance(value, (tuple, list)):
        return [t for v in value for t in _flat(v)]
    return [value if isinstance(value, torch.Tensor) else None]


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
    rows = _decoder_rows(outputs)
    for kind, (fld, global_fld) in structure.architecture.output_fields().items():
        found = [t for t in _flat(getattr(outputs, fld, None))]
        if not any(t is not None for t in found) or (wanted is not None and kind not in wanted):
            continue
        globals_ = _flat(getattr(outputs, global_fld, None)) if global_fld else []
        chosen = []
        for i, t in enumerate(found):
            if t is None or (keep is not None and i not in keep):
                continue
            if t.ndim < 4:
                raise UnsupportedModelError(
                    f"{structure.label}: its output_attentions ({fld}) are not attention maps but "
                    f"{t.ndim}-D tensors {tuple(t.shape)}: it computes no [query, key] softmax map headscope "
                    "can capture")
            layout = structure.layouts.get(kind)
            if layout in (STREAMS, SCORES_STREAMS) and rows is not None:
                t = t[..., :rows, :]
            if layout in (SCORES, SCORES_STREAMS):
                t = torch.softmax(t.float(), dim=-1).to(t.dtype)
            elif layout == BANDED:
                t = unband(t, globals_[i] if i < len(globals_) else None, _key_mask(inputs, kind, t))
            elif layout == BLOCKED and t.ndim == 5:
                t = unblock(t, _source_length(inputs, t))
            chosen.append((i, t))
        if not chosen:
            continue
        tensors = [t.detach().to(dtype) if dtype is not None else t.detach() for _, t in chosen]
        maps[kind] = stack_layers([t.to(device) if device is not None else t for t in tensors])
        index[kind] = [i for i, _ in chosen]
    return outputs, Captured(maps, index, "outputs")


def _decoder_rows(outputs: Any) -> int | None:
    """Target length of an encoder-decoder's outputs (the decoder self-attention's query length)."""
    found = [t for t in _flat(getattr(outputs, "decoder_attentions", None)) if t is not None]
    return int(found[0].shape[-2]) if found else None


def _key_mask(inputs: Mapping[str, Any], kind: str, band: torch.Tensor) -> torch.Tensor:
    mask = inputs.get("attention_mask")
    if mask is None:
        return torch.ones(band.shape[0], band.shape[2], dtype=torch.bool, device=band.device)
    return mask[:, : band.shape[2]].bool().to(band.device)


def unband(band: torch.Tensor, global_probs: torch.Tensor | None, mask: torch.Tensor) -> torch.Tensor:
    """Longformer's banded local attention as ``[batch, heads, query, key]`` probabilities.

    ``band`` is ``[batch, heads, S, G + 2w + 1]``: for query ``i``, its attention to the ``G`` global
    tokens (in position order), then to keys ``i - w .. i + w``. The rows of global tokens are zero
    there; their attention to every token is ``global_probs`` (``[batch, heads, padded S, G]``).
    ``mask`` (``[batch, S]``) marks the real tokens: a zero row of a real token is a global token.
    """
    batch, heads, length, width = band.shape
    n_global = 0 if global_probs is None else int(global_probs.shape[-1])
    w = (width - n_global - 1) // 2
    full = band.new_zeros(batch, heads, length, length)
    rows = torch.arange(length, device=band.device)
    for r in range(2 * w + 1):
        cols = rows + r - w
        ok = (cols >= 0) & (cols < length)
        if ok.any():
            full[:, :, rows[ok], cols[ok]] += band[:, :, rows[ok], n_global + r]
    if n_global:
        is_global = mask & (band.abs().sum(dim=(1, 3)) == 0)
        for b in range(batch):
            positions = is_global[b].nonzero().flatten().tolist()
            for k, g in enumerate(positions[:n_global]):
                full[b, :, :, g] += band[b, :, :, k]
                full[b, :, g, :] = global_probs[b, :, :length, k]
    return full


def _source_length(inputs: Mapping[str, Any], blocks: torch.Tensor) -> int:
    for key in ("input_ids", "attention_mask", "inputs_embeds"):
        value = inputs.get(key)
        if isinstance(value, torch.Tensor):
            return int(value.shape[1])
    return int(blocks.shape[1] * blocks.shape[3])


def unblock(blocks: torch.Tensor, length: int) -> torch.Tensor:
    """LongT5's blockwise local attention as ``[batch, heads, query, key]`` probabilities.

    ``blocks`` is ``[batch, n_blocks, heads, L, 3L]``: the queries of block ``n`` attend to the keys of
    blocks ``n - 1``, ``n`` and ``n + 1``; the sequence is padded to ``n_blocks * L`` tokens, ``length`` real.
    """
    batch, n_blocks, heads, size, _ = blocks.shape
    full = blocks.new_zeros(batch, heads, n_blocks * size, (n_blocks + 2) * size)
    for n in range(n_blocks):  # keys of block n-1..n+1 sit at padded columns n*L .. (n+3)*L
        full[:, :, n * size:(n + 1) * size, n * size:(n + 3) * size] = blocks[:, n]
    return full[:, :, :length, size:size + length].contiguous()


def run_capture(model: PreTrainedModel, inputs: Mapping[str, Any], *, method: str = "auto",
                kinds: Iterable[str] | None = None, layers: Iterable[int] | None = None,
                dtype: torch.dtype | None = None, device: str | torch.device | None = "cpu",
                structure: ModelStructure | None = None, reductions: Reductions | None = None,
                stream_to: str | os.PathLike | None = None) -> tuple[Any, Captured]:
    """One forward pass of ``model(**inputs)`` with every attention map recorded.

    ``reductions`` computes :class:`~headscope.capture.reductions.Reductions` from each layer as it
    runs (``Captured.reduced``; the maps are kept only when ``reductions.maps``); ``stream_to`` writes
    the maps to that folder as safetensors shards (read them with :func:`load_streamed`) instead of
    keeping them in memory.

    ``method="interface"`` records through the registered attention function, ``"outputs"`` reads
    the model's own ``output_attentions`` (in headscope's layout: see ``structure.notes``), and
    ``"auto"`` (default) uses the interface and reads the outputs instead when some kind of the
    model's attention does not call it. The model is left as it was.

    Raises :class:`~headscope.errors.UnsupportedModelError`, naming the model and the reason, for
    a model without softmax attention maps (CNNs, state-space and linear-attention models, ...).
    """
    if method not in METHODS:
        raise InputError(f"method={method!r}: unknown capture method; choose from {METHODS}")
    structure = structure or describe(model)
    if not structure.sites:
        raise UnsupportedModelError(
            f"{structure.label} has no attention headscope can capture: it declares no attention outputs and "
            "has no attention modules (a convolutional, state-space or token-mixing model). Use a transformer "
            "with softmax attention (BERT, BART, Marian, T5, GPT-2, ViT, ...).")
    if method in ("auto", "interface"):
        cap = AttentionCapture(model, kinds, layers, dtype, device, structure=structure, reductions=reductions,
                               stream_to=stream_to)
        with torch.no_grad(), cap:
            outputs = model(**inputs)
        if method == "interface" and not cap.calls:
            raise UnsupportedModelError(
                f"{structure.label} does not call transformers' attention interface; "
                "use method='outputs' (or 'auto') to read its output_attentions")
        wanted = structure.kinds if kinds is None else [k for k in kinds if k in structure.kinds]
        if method == "interface" or (cap.calls and all(k in cap.recording.seen for k in wanted)):
            keeper = cap.recording.keeper
            return outputs, Captured(cap.maps, {k: cap.layer_indices(k) for k in cap.maps}, "interface",
                                     cap.reduced(), dict(keeper.reduced_layers) if keeper else {}, cap.streamed)
    else:
        structure.check(kinds, layers)
    with torch.no_grad():
        outputs, captured = _from_outputs(model, inputs, structure, kinds, layers, dtype, device)
    if not captured.maps and (kinds is None or list(kinds)):
        raise UnsupportedModelError(
            f"{structure.label} has attention modules ({structure.summary()}) but no attention map to read: "
            "they neither call transformers' attention interface nor return output_attentions (efficient or "
            "linear attention without a [query, key] softmax map)")
    if reductions is not None or stream_to is not None:
        captured = _keep_after(captured, reductions, stream_to)
    return outputs, captured


def _keep_after(captured: Captured, reductions: Reductions | None, stream_to: str | os.PathLike | None) -> Captured:
    """Reductions and streaming of maps read from the model's outputs (after the forward)."""
    keeper = Keeper({}, None, None, reductions, stream_to)
    try:
        for kind, maps in captured.maps.items():
            for i, layer in enumerate(captured.layers[kind]):
                keeper.keep(kind, layer, maps[i] if isinstance(maps, list) else maps[:, i])
    except BaseException:
        keeper.abandon()
        raise
    keeper.finish()
    kept = captured.maps if keeper.keep_maps else {}
    return Captured(kept, {k: v for k, v in captured.layers.items() if k in kept}, captured.method,
                    keeper.reductions_of(), dict(keeper.reduced_layers), keeper.stream_to)


def split_examples(maps: Maps, query_mask: torch.Tensor,
                   key_mask: torch.Tensor | None = None) -> list[Any]:
    """Drop padding per example: ``[batch, layers, heads, Q, K]`` -> list of ``[layers, heads, q_i, k_i]``.

    ``query_mask`` / ``key_mask`` are ``[batch, Q]`` / ``[batch, K]`` 0-1 masks (left or right padding).
    Per-layer maps (a list, where layers differ in shape) give each example a list of its layers'
    ``[heads, q, k]`` maps; a layer whose maps do not run over the tokens (pooled queries) is kept
    whole when the batch has no padding.
    """
    key_mask = query_mask if key_mask is None else key_mask
    whole = bool(query_mask.all()) and bool(key_mask.all())
    if isinstance(maps, torch.Tensor) and whole and tuple(maps.shape[-2:]) == (query_mask.shape[1], key_mask.shape[1]):
        # nothing is padding: one example keeps the batch's tensor (no copy), several get one copy each
        return list(maps.unbind(0)) if maps.shape[0] == 1 else [m.clone() for m in maps.unbind(0)]
    if isinstance(maps, list):
        layers = [_split_layer(t, query_mask, key_mask) for t in maps]
        return [[layer[b] for layer in layers] for b in range(query_mask.shape[0])]
    if tuple(maps.shape[-2:]) != (query_mask.shape[1], key_mask.shape[1]):
        if maps.shape[0] == query_mask.shape[0] and bool(query_mask.all()) and bool(key_mask.all()):
            return list(maps.unbind(0))  # latents or pooled queries: kept whole when nothing is padding
        raise ShapeError(
            f"maps of shape {tuple(maps.shape)} do not run over the batch's {query_mask.shape[1]} tokens (latent or "
            "pooled queries): they cannot be split per padded example; inspect one text at a time")
    out = []
    for b in range(maps.shape[0]):
        q = query_mask[b].nonzero().flatten().to(maps.device)
        k = key_mask[b].nonzero().flatten().to(maps.device)
        out.append(_take(maps[b], q, k))
    return out


def _take(maps: torch.Tensor, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """``maps[..., q, :][..., k]`` as one new tensor (a slice's copy where the positions are a run)."""
    def run(idx: torch.Tensor) -> slice | None:
        if len(idx) and int(idx[-1]) - int(idx[0]) + 1 == len(idx):
            return slice(int(idx[0]), int(idx[-1]) + 1)
        return None

    rows, cols = run(q), run(k)
    if rows is not None and cols is not None:
        return maps[..., rows, cols].clone()
    return maps[..., q[:, None], k]


def _split_layer(maps: torch.Tensor, query_mask: torch.Tensor, key_mask: torch.Tensor) -> list[torch.Tensor]:
    batch = query_mask.shape[0]
    if maps.ndim == 4 and maps.shape[0] == batch and tuple(maps.shape[-2:]) == (query_mask.shape[1], key_mask.shape[1]):
        return [m[0] for m in split_examples(maps[:, None], query_mask, key_mask)]
    if maps.shape[0] == batch and bool(query_mask.all()) and bool(key_mask.all()):
        return list(maps.unbind(0))
    raise ShapeError(
        f"layer maps of shape {tuple(maps.shape)} do not run over the batch's {query_mask.shape[1]} tokens "
        "(pooled or windowed layers): they cannot be split per padded example; inspect one text at a time")


__all__ = [
    "ATTN_NAME",
    "AttentionCapture",
    "LONG_INPUT",
    "Captured",
    "METHODS",
    "Maps",
    "ModelSwitch",
    "Recording",
    "Reductions",
    "STATS",
    "Site",
    "headscope_attention",
    "load_streamed",
    "reduce_for",
    "reduce_maps",
    "run_capture",
    "split_examples",
    "stack_layers",
    "unband",
    "unblock",
]
