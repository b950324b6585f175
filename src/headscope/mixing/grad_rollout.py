"""Gradient-weighted attention rollout (Chefer, Gur & Wolf 2021).

Chefer, Gur & Wolf 2021, "Generic Attention-model Explainability for Interpreting Bi-Modal and
Encoder-Decoder Transformers" (ICCV), building on "Transformer Interpretability Beyond Attention
Visualization" (CVPR 2021). Each layer's heads are fused by their gradients with respect to the
model's output, ``Ā = E_h[(∇A ⊙ A)^+]``, and relevance is accumulated from the identity:

* self-attention: ``R = I``; each layer ``R <- R + Ā R``;
* encoder-decoder (eqs. 6-11): ``R_ss`` over the encoder as above; in each decoder layer, self-attention
  ``R_tt <- R_tt + Ā_tt R_tt``, ``R_ts <- R_ts + Ā_tt R_ts``, then cross-attention
  ``R_ts <- R_ts + R̄_ttᵀ Ā_ts R̄_ss`` with ``R̄ = rownorm(R - I) + I``.

The output is the predicted class of a classifier (every row of the map shares its gradient), or, for a
model that predicts at every position (a translator teacher-forced on its output, a causal LM), the
predicted token of each step: row ``t`` of the map uses the gradient of step ``t``'s prediction. The
steps are computed together, one copy of the example per step in one batch.

>>> a = [torch.tensor([[0.0, 1.0], [0.0, 1.0]])]      # one layer, Ā given
>>> self_rules(a).tolist()
[[1.0, 1.0], [0.0, 2.0]]
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import nn

from ..capture import AttentionCapture
from ..errors import UnsupportedModelError
from ..models.structure import ModelStructure
from ..readings import GradRollout

CHUNK_ELEMENTS = 2 ** 25
"""At most about this many attention probabilities kept for the backward per batch of copies."""


def weighted_heads(att: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """``Ā = E_h[(∇A ⊙ A)^+]``: ``[query, key]`` from ``[heads, query, key]`` maps and their gradients.

    >>> weighted_heads(torch.ones(2, 1, 2), torch.tensor([[[1.0, -1.0]], [[3.0, 1.0]]])).tolist()
    [[2.0, 0.5]]
    """
    return (grad.float() * att.float()).clamp(min=0).mean(0)


def self_rules(layers: list[torch.Tensor]) -> torch.Tensor:
    """``R = I``, then ``R <- R + Ā R`` for each layer's ``Ā`` (first layer first)."""
    r = torch.eye(layers[0].shape[-1])
    for a in layers:
        r = r + a @ r
    return r


def _bar(r: torch.Tensor) -> torch.Tensor:
    """``R̄ = rownorm(R - I) + I`` (a zero row of ``R - I`` stays zero)."""
    eye = torch.eye(r.shape[0])
    hat = r - eye
    total = hat.sum(-1, keepdim=True)
    return torch.where(total != 0, hat / torch.where(total != 0, total, torch.ones_like(total)), hat) + eye


def encoder_decoder_rules(encoder: list[torch.Tensor], decoder: list[torch.Tensor],
                          cross: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """``(R_ts [target, source], R_tt [target, target])`` by the rules of Chefer et al. 2021 (eqs. 6-11).

    >>> zero = [torch.zeros(1, 1)]                       # no self-attention relevance anywhere
    >>> r_ts, _ = encoder_decoder_rules(zero, zero, [torch.tensor([[1.0]])])
    >>> r_ts.tolist()                                    # R̄ = I: the cross map itself
    [[1.0]]
    """
    r_ss = self_rules(encoder)
    bar_ss = _bar(r_ss)
    n_target, n_source = cross[0].shape
    r_tt, r_ts = torch.eye(n_target), torch.zeros(n_target, n_source)
    for a_self, a_cross in zip(decoder, cross):
        r_tt, r_ts = r_tt + a_self @ r_tt, r_ts + a_self @ r_ts
        r_ts = r_ts + _bar(r_tt).T @ a_cross @ bar_ss
    return r_ts, r_tt


def _relevance(model: nn.Module, inputs: Mapping[str, Any], structure: ModelStructure, steps: list[int | None],
               targets: torch.Tensor) -> dict[str, list[torch.Tensor]]:
    """Per kind, the relevance rows of ``steps`` (``[None]``: a classifier's whole map), from one forward and
    backward of one copy of the example per step, each copy's loss its step's predicted logit."""
    cap = AttentionCapture(model, structure=structure, device=None, detach=False)
    # autograd also when the caller runs under torch.no_grad() or torch.inference_mode(): the copies
    # made here are ordinary tensors
    with torch.inference_mode(False), torch.enable_grad(), cap:
        batch = {k: v.repeat(len(steps), *[1] * (v.ndim - 1)) if isinstance(v, torch.Tensor) and v.ndim and v.shape[0] == 1
                 else v.clone() if isinstance(v, torch.Tensor) else v for k, v in inputs.items()}
        out = model(**batch).logits
        if steps == [None]:
            loss = out[0, targets]
        else:
            at = torch.tensor(steps, device=out.device)
            loss = out[torch.arange(len(steps), device=out.device), at, targets[at]].sum()
        maps = {kind: [t for _, t in kept] for kind, kept in cap.recording.maps.items()}  # the tensors the forward used
        flat = [m for kind in maps for m in maps[kind]]
        _check_maps(structure, maps, flat)  # (that some map went through the interface, the probe has checked)
        grads = iter(torch.autograd.grad(loss, flat, allow_unused=True))
    grad_of = {kind: [torch.zeros_like(m) if (g := next(grads)) is None else g for m in kept]
               for kind, kept in maps.items()}
    rows: dict[str, list[torch.Tensor]] = {}
    for c, step in enumerate(steps):
        fused = {kind: [weighted_heads(m[c].detach(), g[c]).cpu() for m, g in zip(maps[kind], grad_of[kind])]
                 for kind in maps}
        if "cross" in fused:
            r_ts, r_tt = encoder_decoder_rules(fused["encoder"], fused["decoder"], fused["cross"])
            found = {"cross": r_ts, "decoder": r_tt}
        else:
            found = {kind: self_rules(layers) for kind, layers in fused.items()}
        for kind, r in found.items():
            rows.setdefault(kind, []).append(r if step is None else r[step])
    return rows


def _check_maps(structure: ModelStructure, maps: dict[str, list[torch.Tensor]], flat: list[torch.Tensor]) -> None:
    """Refuse, by name, what the rules of Chefer et al. cannot be applied to: a kind the rules need whose
    maps did not go through the attention interface, self-attention maps that are not square (reduced or
    extra keys), maps computed without gradients."""
    needed = ("encoder", "decoder") if "cross" in maps else ()
    missing = [k for k in needed if k not in maps]
    if missing:
        raise UnsupportedModelError(f"{structure.label}: its {' and '.join(missing)} attention does not call "
                                    "transformers' attention interface, and the encoder-decoder rules of gradient "
                                    "rollout need it")
    for kind, kept in maps.items():
        if kind != "cross" and any(m.shape[-1] != m.shape[-2] for m in kept):
            raise UnsupportedModelError(f"{structure.label}: its {kind} attention maps are not square (keys pooled "
                                        "or added beside the tokens), so relevance cannot be rolled through them")
    if not all(m.requires_grad for m in flat):
        raise UnsupportedModelError(f"{structure.label}: part of its forward runs without gradients (torch.no_grad "
                                    "inside the model), so gradient rollout cannot weigh every map")


def grad_rollout_maps(model: nn.Module, inputs: Mapping[str, Any], structure: ModelStructure,
                      kinds: Iterable[str]) -> dict[str, torch.Tensor]:
    """``{"kind.gradrollout": [query, key]}`` for one example (batch of one): ``encoder`` (encoders),
    ``decoder`` (decoders; encoder-decoders: over the target prefix) and ``cross`` (encoder-decoders).

    >>> loaded = headscope.load("headscope/sentiment")                                   # doctest: +SKIP
    >>> maps = grad_rollout_maps(loaded.model, loaded.tokenizer("A dull film.", return_tensors="pt"),
    ...                          loaded.structure, ["encoder"])                          # doctest: +SKIP
    >>> maps["encoder.gradrollout"].shape                                                # doctest: +SKIP
    torch.Size([6, 6])
    """
    probe = AttentionCapture(model, structure=structure, device=None)
    with torch.no_grad(), probe:
        logits = getattr(model(**inputs), "logits", None)
    if logits is None or not probe.recording.maps:
        raise UnsupportedModelError(f"{structure.label}: " + ("no attention map went through the attention interface"
                                    if logits is not None else "its output has no logits whose gradient could weigh "
                                    "the maps (load it with its classification or language-model head)"))
    if logits.shape[0] != 1:
        raise UnsupportedModelError(f"{structure.label}: one example gives {logits.shape[0]} rows of output (codebooks "
                                    "or streams), not one decision per token; gradient rollout is not defined for it")
    per_step = logits.ndim == 3
    copies = int(logits.shape[1]) if per_step else 1
    targets = logits[0].argmax(-1)
    size = sum(t.numel() for kept in probe.recording.maps.values() for _, t in kept)
    chunk = max(1, CHUNK_ELEMENTS // max(size, 1))
    frozen = [p for p in model.parameters() if not p.requires_grad]  # maps of a frozen model carry no graph
    rows: dict[str, list[torch.Tensor]] = {}
    try:
        for p in frozen:
            p.requires_grad_(True)
        for start in range(0, copies, chunk):
            steps = list(range(start, min(start + chunk, copies))) if per_step else [None]
            for kind, found in _relevance(model, inputs, structure, steps, targets).items():
                rows.setdefault(kind, []).extend(found)
    finally:
        for p in frozen:
            p.requires_grad_(False)
    kinds = set(kinds)
    out_maps: dict[str, torch.Tensor] = {}
    for kind, parts in rows.items():
        if kind in kinds:
            out_maps[GradRollout(kind).name] = torch.stack(parts) if per_step else parts[0]
    return out_maps
