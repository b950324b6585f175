"""Where an attention block's parts sit, per model family: one small table, discovered from the modules.

The readings of :mod:`headscope.mixing` need, for each attention module the capture sees, its output
projection ``W_O`` (whose input is the heads' outputs side by side), the layer norm of its block
(before the attention in pre-norm blocks, after the residual sum in post-norm ones), and the layer
module (the entry of the model's layer list) the block belongs to. Families name these parts
differently; :data:`FAMILIES` lists the names, relative to the attention module, and
:func:`block_of` takes the first family whose output projection exists. Whether the norm comes
before or after the attention is read from the order of the calls, not assumed.

>>> [f.name for f in FAMILIES][:2]
['BART / Marian / mBART / M2M100 / Whisper', 'BERT / RoBERTa / ELECTRA']
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..errors import UnsupportedModelError

ANY = "*"


@dataclass(frozen=True)
class Family:
    """Names of a family's block parts, as paths from the attention module (``..`` is its parent).

    ``norm`` maps the attention module's attribute name in its parent (``self_attn``, ``attn``, ...)
    to the path of its block's layer norm (``*``: any); ``{attr}`` in a path is that attribute name.
    Paths: ``../`` steps up to the parent, then a dotted path down; ``a|b`` takes the first found.
    ``scale``: the path of a layer-scale parameter (a per-dimension factor applied to the attention
    output before the residual sum, as in BEiT and DINOv2), empty where the family has none.
    """

    name: str
    out_proj: str
    norm: dict[str, str]
    scale: str = ""


FAMILIES: tuple[Family, ...] = (
    Family("BART / Marian / mBART / M2M100 / Whisper", "out_proj", {ANY: "../{attr}_layer_norm"}),
    Family("BERT / RoBERTa / ELECTRA", "../output.dense", {ANY: "../output.LayerNorm"}),
    Family("GPT-2", "c_proj", {"attn": "../ln_1", "crossattention": "../ln_cross_attn"}),
    Family("DistilBERT", "out_lin", {ANY: "../sa_layer_norm"}),
    Family("T5", "SelfAttention.o|EncDecAttention.o", {ANY: "layer_norm"}),
    Family("ViT / DeiT / BEiT / DINOv2 / Llama-style (q/k/v/o_proj)", "o_proj",
           {"encoder_attn": "../post_attention_layernorm",  # a decoder's cross-attention (Moonshine)
            ANY: "../layernorm_before|../norm1|../input_layernorm"}, scale="../lambda_1|../layer_scale1.lambda1"),
)


@dataclass(frozen=True)
class Block:
    """One attention block: the attention module, its output projection, layer norm, layer module and
    layer scale (``None`` where the family has none)."""

    path: str
    attention: nn.Module
    out_proj: nn.Module
    norm: nn.Module | None
    layer: nn.Module
    family: str
    scale: nn.Parameter | None = None

    def output_matrix(self, width_in: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(W, b)``: the output projection as ``x @ W + b`` (``W`` is ``[heads * head_dim, width]``),
        read by applying the module to the identity (so ``nn.Linear`` and GPT-2's ``Conv1D`` alike), with
        the layer scale folded in: what the block adds to its residual stream."""
        param = next(self.out_proj.parameters())
        with torch.no_grad():
            eye = torch.eye(width_in, dtype=param.dtype, device=param.device)
            bias = self.out_proj(torch.zeros(1, width_in, dtype=param.dtype, device=param.device))[0]
            weight = self.out_proj(eye) - bias
            if self.scale is not None:
                weight, bias = weight * self.scale, bias * self.scale
        return weight.float(), bias.float()


def _resolve(model: nn.Module, path: str, rel: str) -> nn.Module | None:
    """The module at ``rel`` from ``path``: ``..`` steps up, then a dotted path; ``a|b``: the first found."""
    for option in rel.split("|"):
        parts = path.split(".") if path else []
        *ups, down = option.split("/")
        if len(ups) > len(parts) or any(u != ".." for u in ups):
            continue
        parts = parts[:len(parts) - len(ups)] + ([down] if down else [])
        try:
            return model.get_submodule(".".join(parts))
        except AttributeError:
            continue
    return None


def _parameter(model: nn.Module, path: str, rel: str) -> nn.Parameter | None:
    """The parameter at ``rel`` from ``path`` (``..`` steps up, then a dotted path; ``a|b``: the first found)."""
    for option in rel.split("|"):
        ups, _, down = option.rpartition("/")  # "..", "layer_scale1.lambda1"
        owner, _, name = down.rpartition(".")
        module = _resolve(model, path, f"{ups}/{owner}" if ups else owner)
        value = getattr(module, name, None) if module is not None else None
        if isinstance(value, nn.Parameter):
            return value
    return None


def _layer_module(model: nn.Module, path: str) -> nn.Module:
    """The entry of a layer list (``nn.ModuleList``) that holds ``path``, else the attention's parent."""
    parts = path.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        parent = model.get_submodule(".".join(parts[:cut - 1])) if cut > 1 else model
        if isinstance(parent, nn.ModuleList):
            return model.get_submodule(".".join(parts[:cut]))
    return model.get_submodule(".".join(parts[:-1]))


def block_of(model: nn.Module, path: str) -> Block:
    """The :class:`Block` of the attention module at ``path``; raises
    :class:`~headscope.errors.UnsupportedModelError` naming the model and the families known.

    >>> from headscope.models.tiny import build_tiny
    >>> block_of(build_tiny("gpt2")[0], "transformer.h.0.attn").family
    'GPT-2'
    """
    attention = model.get_submodule(path)
    attr = path.split(".")[-1]
    for family in FAMILIES:
        out_proj = _resolve(model, path, family.out_proj)
        if out_proj is None or not any(True for _ in out_proj.parameters()):
            continue
        rel = family.norm.get(attr, family.norm.get(ANY, ""))
        norm = _resolve(model, path, rel.replace("{attr}", attr)) if rel else None
        scale = _parameter(model, path, family.scale) if family.scale else None
        return Block(path, attention, out_proj, norm, _layer_module(model, path), family.name, scale)
    raise UnsupportedModelError(
        f"{type(model).__name__}: its attention module {type(attention).__name__} at {path!r} has no output "
        f"projection headscope knows, so readings that need value vectors and W_O (norm, ALTI, value zeroing) "
        f"cannot run; supported families: {', '.join(f.name for f in FAMILIES)}")
