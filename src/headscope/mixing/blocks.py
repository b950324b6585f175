"""One forward pass that keeps, per attention block, what norm-based attention and ALTI need.

:func:`capture_blocks` runs the model once under a capture with :class:`~headscope.capture.extras.Extras`
(value vectors, the block's input, its layer norm's input and whether that norm comes first) and
returns one :class:`BlockCapture` per ``(kind, layer)``, batch axis dropped (one example), in float32 on the CPU.

The family table (:mod:`.families`) only says where a block's parts are; the same forward checks
what the readings assume of them. The heads' weighted values through the output projection must
give the projection's own output (else norm and ALTI are refused); and the residual stream after the
block, as the model computes it (the input of the first norm the layer calls after the attention in
a pre-norm block, the block norm's output in a post-norm one), is kept for ALTI to check its sum
against (:attr:`BlockCapture.stream_after`), so a block that adds anything else to its residual (a
norm on the attention output, as Gemma 2 and OLMo 2 have, or an MLP in parallel) is refused, not
decomposed wrongly.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..capture import AttentionCapture
from ..capture.extras import Extras
from ..errors import UnsupportedModelError
from ..models.structure import ModelStructure
from .alti import LayerNormParams
from .families import Block, block_of
from .norm import transformed_values


@dataclass
class BlockCapture:
    """One attention block of one example: probabilities ``[heads, query, key]``, values ``[heads, key, dim]``,
    the output projection ``x @ weight + bias``, the block's input (query side) ``[query, width]``, its layer
    norm (``None`` when the family has none headscope knows), that norm's input ``[query, width]``, and
    the residual stream after the block as the model computed it (``None`` where the layer calls no norm
    after the attention)."""

    block: Block
    probs: torch.Tensor
    values: torch.Tensor
    weight: torch.Tensor
    bias: torch.Tensor
    block_input: torch.Tensor | None
    norm: LayerNormParams | None
    norm_input: torch.Tensor | None
    stream_after: torch.Tensor | None = None

    @property
    def residual(self) -> torch.Tensor | None:
        """The residual stream entering the block: the norm's input in a pre-norm block, else the block's input."""
        return self.norm_input if self.norm is not None and self.norm.pre else self.block_input


def _norm_params(module: nn.Module | None, pre: bool) -> LayerNormParams | None:
    if module is None:
        return None
    weight = getattr(module, "weight", None)
    bias = getattr(module, "bias", None)
    eps = getattr(module, "eps", getattr(module, "variance_epsilon", 1e-5))
    return LayerNormParams(None if weight is None else weight.detach().float().cpu(),
                           None if bias is None else bias.detach().float().cpu(),
                           float(eps), pre, centred=isinstance(module, nn.LayerNorm))


def capture_blocks(model: nn.Module, inputs: Mapping[str, Any], structure: ModelStructure,
                   kinds: Iterable[str]) -> dict[tuple[str, int], BlockCapture]:
    """``{(kind, layer): BlockCapture}`` of one forward of ``model(**inputs)`` (a batch of one example).

    >>> from headscope.models.tiny import build_tiny
    >>> from headscope.models.structure import describe
    >>> model, tok = build_tiny("gpt2")
    >>> blocks = capture_blocks(model, tok("a b", return_tensors="pt"), describe(model), ["decoder"])
    >>> blocks[("decoder", 0)].norm.pre                   # GPT-2 normalises before its attention
    True
    """
    kinds = [k for k in kinds if k in structure.kinds]
    sites = [s for s in structure.sites if s.kind in kinds]
    blocks = {s.module: block_of(model, s.module) for s in sites}
    watched_in = {f"in {p}": b.attention for p, b in blocks.items()}
    watched_in.update({f"norm {p}": b.norm for p, b in blocks.items() if b.norm is not None})
    watched_in.update({f"{_LAYER_NORM} {p}|{name}": m for p, b in blocks.items()
                       for name, m in b.layer.named_modules() if _is_norm(m)})
    watched_out = {f"proj {p}": b.out_proj for p, b in blocks.items()}
    watched_out.update({f"norm {p}": b.norm for p, b in blocks.items() if b.norm is not None})
    extras = Extras(values=True, inputs=watched_in, outputs=watched_out)
    cap = AttentionCapture(model, kinds=kinds, structure=structure, device=None)
    cap.recording.extras = extras
    with torch.no_grad(), cap, extras.watching(cap.recording):
        model(**inputs)
    out: dict[tuple[str, int], BlockCapture] = {}
    for kind in kinds:
        maps = cap.maps.get(kind)
        if maps is None and not any(f"in {s.module}" in extras.kept_inputs for s in sites if s.kind == kind):
            continue  # its modules never ran (the cross-attention of a decoder used without an encoder)
        if maps is None:
            raise UnsupportedModelError(f"{structure.label}: its {kind} attention does not call transformers' "
                                        "attention interface, so its value vectors cannot be read")
        for i, layer in enumerate(cap.layer_indices(kind)):
            module = extras.modules[(kind, layer)]
            site = structure.site_of(module)
            path = site.module if site is not None else next(p for p, b in blocks.items() if b.attention is module)
            block = blocks[path]
            order = extras.order
            attention_at = order.index(f"attention {kind}.{layer}")
            norm_name = f"norm {path}"
            pre = norm_name in order[:attention_at]
            values = extras.kept_values[(kind, layer)][0].float().cpu()
            weight, bias = block.output_matrix(values.shape[0] * values.shape[-1])
            probs = maps[0, i] if isinstance(maps, torch.Tensor) else maps[i][0]
            weight, bias = weight.cpu(), bias.cpu()
            _check_projection(structure, block, probs.float().cpu(), values, weight, bias,
                              _first(extras.kept_outputs.get(f"proj {path}")))
            after = next((name for name in order[attention_at + 1:] if name.startswith(f"{_LAYER_NORM} {path}|")), None)
            stream_after = _first(extras.kept_outputs.get(norm_name)) if not pre and block.norm is not None else \
                _first(extras.kept_inputs.get(after)) if after is not None else None
            out[(kind, layer)] = BlockCapture(
                block=block, probs=probs.float().cpu(), values=values, weight=weight, bias=bias,
                block_input=_first(extras.kept_inputs.get(f"in {path}")),
                norm=_norm_params(block.norm, pre), norm_input=_first(extras.kept_inputs.get(norm_name)),
                stream_after=stream_after)
    return out


_LAYER_NORM = "layer norm"


def _is_norm(module: nn.Module) -> bool:
    """A layer norm or an RMS norm (transformers names its own ``...LayerNorm`` / ``...RMSNorm``)."""
    return isinstance(module, nn.LayerNorm) or type(module).__name__.endswith("Norm")


def agrees(mine: torch.Tensor, models: torch.Tensor, dtype: torch.dtype, taken_from: torch.Tensor | None = None) -> bool:
    """Whether a decomposition's sum ``mine`` is the model's own tensor, row by row (``[query, width]``).

    Each row may differ by ``rtol`` (1e-3, or 8 steps of ``dtype``'s rounding where that is coarser,
    as in bfloat16) of its largest value (at least a thousandth of the largest row's), plus, where
    ``models`` was computed as a difference from a larger tensor ``taken_from`` (the residual stream),
    8 steps of rounding of that tensor's row.

    >>> agrees(torch.tensor([[1.0, 2.0]]), torch.tensor([[1.0, 2.001]]), torch.float32)
    True
    >>> agrees(torch.tensor([[1.0, 2.0]]), torch.tensor([[1.0, 2.1]]), torch.float32)
    False
    """
    eps = torch.finfo(dtype).eps
    row = models.abs().amax(-1)
    bound = max(1e-3, 8 * eps) * torch.maximum(row, 1e-3 * row.max())
    if taken_from is not None:
        bound = bound + 8 * eps * taken_from.abs().amax(-1)
    return bool(((mine - models).abs().amax(-1) <= bound).all())


def _check_projection(structure: ModelStructure, block: Block, probs: torch.Tensor, values: torch.Tensor,
                      weight: torch.Tensor, bias: torch.Tensor, projected: torch.Tensor | None) -> None:
    """Refuse a block whose output projection does not give ``sum_j alpha_ij f(x_j) + b`` (layer scale included)."""
    if projected is None:
        raise UnsupportedModelError(f"{structure.label}: the output projection of the attention at {block.path!r} "
                                    "was not called in the forward; its value vectors cannot be followed to the output")
    mine = torch.einsum("hqk,hkw->qw", probs, transformed_values(values, weight)) + bias
    models = projected.float() * (block.scale.detach().float().cpu() if block.scale is not None else 1.0)
    if mine.shape != models.shape or not agrees(mine, models, next(block.out_proj.parameters()).dtype):
        raise UnsupportedModelError(
            f"{structure.label}: the attention at {block.path!r} ({block.family}) does not output its heads' weighted "
            "value vectors through the output projection headscope found, so norm-based attention and ALTI would "
            "be wrong for it; use the raw maps or value zeroing / gradient rollout, which need no block table")


def _first(kept: list[torch.Tensor] | None) -> torch.Tensor | None:
    return None if not kept else kept[0][0].float().cpu()
