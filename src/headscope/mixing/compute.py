"""Compute the readings asked for on one example: ``{reading name: [query, key] map}``."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import nn

from ..errors import InputError, UnsupportedModelError
from ..models.structure import ModelStructure
from ..readings import MIXING, Alti, Norm
from .alti import alti_plus, block_parts, contributions, rollout
from .blocks import BlockCapture, agrees, capture_blocks
from .grad_rollout import grad_rollout_maps
from .norm import norm_maps
from .value_zeroing import value_zeroing_maps


def check_methods(methods: Iterable[str] | None) -> list[str]:
    """The readings asked for, checked against :data:`~headscope.readings.MIXING` (``"all"``: every one).

    >>> check_methods(["alti", "norm"]), check_methods(None)
    (['norm', 'alti'], [])
    """
    if methods is None:
        return []
    methods = [methods] if isinstance(methods, str) else list(methods)
    if methods == ["all"]:
        return list(MIXING)
    unknown = [m for m in methods if m not in MIXING]
    if unknown:
        raise InputError(f"readings={unknown}: unknown; choose from {list(MIXING)} (or 'all')")
    return [m for m in MIXING if m in methods]


def example_inputs(inputs: Mapping[str, Any], b: int, src_mask: torch.Tensor,
                   tgt_mask: torch.Tensor | None) -> dict[str, Any]:
    """Example ``b`` of a padded batch, padding dropped: ``decoder_*`` inputs by ``tgt_mask``, the others
    (``[batch, source]`` tensors) by ``src_mask``.

    >>> ids, mask = torch.tensor([[5, 6, 0]]), torch.tensor([[1, 1, 0]])
    >>> example_inputs({"input_ids": ids, "attention_mask": mask}, 0, mask, None)["input_ids"].tolist()
    [[5, 6]]
    """
    out = {}
    for key, value in inputs.items():
        if not isinstance(value, torch.Tensor) or value.ndim < 2:
            out[key] = value
            continue
        mask = tgt_mask if key.startswith("decoder_") and tgt_mask is not None else src_mask
        row = value[b:b + 1]
        out[key] = row[:, mask[b].bool().to(value.device)] if row.shape[1] == mask.shape[1] else row
    return out


def compute_mixing(model: nn.Module, inputs: Mapping[str, Any], structure: ModelStructure, methods: Iterable[str],
                   kinds: Iterable[str] | None = None) -> dict[str, torch.Tensor]:
    """``{reading name: float32 [query, key] map}`` of ``methods`` on one example (batch of one).

    ``kinds``: the kinds to compute for (every kind of the model by default); ALTI+ of ``cross`` also
    reads the encoder and decoder self-attention blocks. ``headscope.inspect(..., readings=[...])`` calls it.

    >>> loaded = headscope.load("headscope/sentiment")                                   # doctest: +SKIP
    >>> maps = compute_mixing(loaded.model, loaded.tokenizer("A dull film.", return_tensors="pt"),
    ...                       loaded.structure, ["alti"])                                # doctest: +SKIP
    >>> maps["encoder.alti"].shape                                                       # doctest: +SKIP
    torch.Size([6, 6])
    """
    methods = check_methods(methods)
    if not structure.sites:
        raise UnsupportedModelError(f"{structure.label}: no attention module headscope can read, so no reading "
                                    "beyond the weights either")
    kinds = list(structure.kinds if kinds is None else [k for k in kinds if k in structure.kinds])
    out: dict[str, torch.Tensor] = {}
    blocks: dict[tuple[str, int], BlockCapture] = {}
    if {"norm", "alti"} & set(methods):
        needed = set(structure.kinds) if "alti" in methods and "cross" in structure.kinds else set(kinds)  # ALTI+
        blocks = capture_blocks(model, inputs, structure, [k for k in structure.kinds if k in needed])
    if "norm" in methods:
        out.update(_norm(blocks, kinds))
    if "alti" in methods:
        out.update(_alti(blocks, kinds))
    if "valuezeroing" in methods:
        out.update(value_zeroing_maps(model, inputs, structure, [k for k in kinds if k != "cross"]))
    if "gradrollout" in methods:
        out.update(grad_rollout_maps(model, inputs, structure, kinds))
    return {name: m.detach().float().cpu().contiguous() for name, m in out.items()}


def _norm(blocks: dict[tuple[str, int], BlockCapture], kinds: list[str]) -> dict[str, torch.Tensor]:
    out = {}
    for (kind, layer), b in blocks.items():
        if kind not in kinds:
            continue
        per_head, per_layer = norm_maps(b.probs, b.values, b.weight)
        out[Norm(kind, layer).name] = per_layer
        out.update({Norm(kind, layer, h).name: m for h, m in enumerate(per_head)})
    return out


def alti_layer(b: BlockCapture, cross: bool) -> torch.Tensor:
    """ALTI contributions of one block: ``[query, key]`` (``cross``: ``[query, source + 1]``, residual last)."""
    if b.norm is None or b.residual is None:
        raise UnsupportedModelError(f"ALTI needs the layer norm of the attention block at {b.block.path!r} "
                                    f"({b.block.family}); headscope found none before or after it")
    if b.residual.shape[-1] != b.weight.shape[-1]:
        raise UnsupportedModelError(
            f"the attention block at {b.block.path!r} ({b.block.family}) reads a residual of width "
            f"{b.residual.shape[-1]} but writes width {b.weight.shape[-1]} (its input is more than the stream, as in "
            "Zamba's shared block), so ALTI's decomposition does not apply")
    parts, whole = block_parts(b.probs, b.values, b.weight, b.bias, b.residual, b.norm, b.norm_input, cross=cross)
    if not _sums_to_the_stream(b, whole):
        raise UnsupportedModelError(
            f"the attention block at {b.block.path!r} ({b.block.family}; residual read before its "
            f"{type(b.block.norm).__name__}) does not add just its attention output to the residual stream the model "
            "computes (a norm or a multiplier on the attention output, an MLP in parallel, or no norm after it to "
            "check against), so ALTI's decomposition would be wrong for it; norm-based attention, value zeroing "
            "and gradient rollout still apply")
    return contributions(parts, whole)


def _sums_to_the_stream(b: BlockCapture, whole: torch.Tensor) -> bool:
    """Whether ALTI's parts of block ``b`` sum to the stream the model computed after it: in a pre-norm
    block the attention's share (the sum less the residual, compared as such so that a large residual
    cannot hide it), in a post-norm block the norm's output."""
    after = b.stream_after
    if after is None or whole.shape != after.shape:
        return False
    dtype = next(b.block.out_proj.parameters()).dtype
    if b.norm is not None and b.norm.pre:
        residual = b.residual.float()
        return agrees(whole - residual, after.float() - residual, dtype, taken_from=after.float())
    return agrees(whole, after.float(), dtype)


def _alti(blocks: dict[tuple[str, int], BlockCapture], kinds: list[str]) -> dict[str, torch.Tensor]:
    per_kind: dict[str, list[tuple[int, torch.Tensor]]] = {}
    for (kind, layer), b in sorted(blocks.items()):
        per_kind.setdefault(kind, []).append((layer, alti_layer(b, cross=kind == "cross")))
    out = {}
    for kind, layers in per_kind.items():
        for layer, c in layers:
            if kind in kinds:
                out[Alti(kind, layer).name] = c[:, :-1] if kind == "cross" else c
    if "encoder" in per_kind and ("encoder" in kinds or "cross" in kinds):
        enc = rollout([c for _, c in per_kind["encoder"]])
        out[Alti("encoder").name] = enc
        if "cross" in per_kind:
            r_ts, r_tt = alti_plus(enc, [c for _, c in per_kind["decoder"]], [c for _, c in per_kind["cross"]])
            out[Alti("cross").name], out[Alti("decoder").name] = r_ts, r_tt
    elif "decoder" in per_kind:
        out[Alti("decoder").name] = rollout([c for _, c in per_kind["decoder"]])
    return {name: m for name, m in out.items() if name.split(".")[0] in kinds}
