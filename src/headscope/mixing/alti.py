"""ALTI: token contributions through a whole attention block, residual and layer norm included.

Ferrando, Gállego & Costa-jussà 2022, "Measuring the Mixing of Contextual Information in the
Transformer" (EMNLP). An attention block's output for token ``i`` is a sum of one vector per input
token, ``y_i = sum_j T_i(x_j) + (bias terms)``, with ``T_i(x_j) = alpha_ij f(x_j) + [i = j] x_i`` (the
heads' weighted transformed values, :mod:`headscope.mixing.norm`, plus the residual). In a post-norm
block the layer norm is linear once its standard deviation ``sigma_i`` (of the summed vector) is fixed:
``T_i(x_j)`` is centred, scaled by the norm's weight and divided by ``sigma_i``; its bias and the
output-projection bias go to ``y_i`` only. In a pre-norm block the norm sits inside ``f`` and the
block's output is the residual sum itself. The contribution of ``j`` to ``i`` is

    c_ij = max(0, ||y_i||_1 - ||y_i - T_i(x_j)||_1),   normalised so that sum_j c_ij = 1,

and the contributions are rolled through the layers by multiplying the per-layer matrices
(``R = C_L ... C_1``; the residual is already inside each ``C``).

ALTI+ (Ferrando, Gállego, Alastruey, Escolano & Costa-jussà 2022, "Towards Opening the Black Box of
Neural Machine Translation: Source and Target Contributions to the Model's Predictions", EMNLP):
in a cross-attention block the parts of target token ``i``'s output are one vector per source token
(``alpha_ij f(e_j)``) and the residual (the target side). The decoder's contributions are rolled
with the encoder's: after each decoder layer, ``R_tt`` (over target prefix tokens) and ``R_ts``
(over source tokens) are

    self-attention:  R_tt <- C_self R_tt,   R_ts <- C_self R_ts
    cross-attention: R_ts <- c_res * R_ts + C_src R_enc,   R_tt <- c_res * R_tt

(``c_res`` the residual's share of each row, ``R_enc`` the encoder's rolled ALTI), so each target
token's row of ``[R_ts, R_tt]`` sums to 1: its source and its target contribution. This is the
composition of the authors' code (mt-upc/transformer-contributions-nmt), written per block.

Pure functions of captured tensors (one example, no batch axis).

>>> parts = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])   # one token, two parts
>>> contributions(parts, parts.sum(1)).tolist()          # each part is half of y = (1, 1)
[[0.5, 0.5]]
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import ShapeError, UnsupportedModelError
from .norm import transformed_values


@dataclass(frozen=True)
class LayerNormParams:
    """A layer norm's parameters and where it sits: ``pre`` (before the attention) or after the residual sum;
    ``centred``: it subtracts the mean (a LayerNorm; an RMS norm does not)."""

    weight: torch.Tensor | None
    bias: torch.Tensor | None
    eps: float
    pre: bool
    centred: bool = True


def contributions(parts: torch.Tensor, whole: torch.Tensor) -> torch.Tensor:
    """ALTI's contributions ``[query, parts]`` of ``parts`` ``[query, parts, width]`` to ``whole`` ``[query, width]``:
    ``max(0, ||y||_1 - ||y - part||_1)`` per part, rows normalised to sum to 1 (a row with no positive
    contribution stays zero)."""
    whole = whole.float()
    score = whole.abs().sum(-1, keepdim=True) - (whole[:, None, :] - parts.float()).abs().sum(-1)
    score = score.clamp(min=0)
    total = score.sum(-1, keepdim=True)
    return torch.where(total > 0, score / total.clamp(min=torch.finfo(score.dtype).tiny), score)


def block_parts(probs: torch.Tensor, values: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
                residual: torch.Tensor, norm: LayerNormParams, norm_input: torch.Tensor | None,
                cross: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """``(parts [query, n, width], output [query, width])`` of one attention block.

    ``probs`` ``[heads, query, key]``, ``values`` ``[heads, key, head_dim]``, ``weight``/``bias`` the output
    projection ``x @ W + b``, ``residual`` the block's input on the query side ``[query, width]``,
    ``norm_input`` the input of a post-norm block's layer norm (fixes ``sigma``). Self-attention: one part per
    key, the residual added to the query's own; ``cross``: one part per source key, then the residual.

    >>> pre = LayerNormParams(None, None, 1e-5, pre=True)
    >>> parts, y = block_parts(torch.ones(1, 1, 1), torch.ones(1, 1, 2), torch.eye(2), torch.zeros(2),
    ...                        torch.tensor([[1.0, 0.0]]), pre, None)
    >>> y.tolist()                                       # residual (1, 0) + attention (1, 1)
    [[2.0, 1.0]]
    """
    weighted = torch.einsum("hqk,hkw->qkw", probs.float(), transformed_values(values, weight))
    residual = residual.float()
    if cross:
        parts = torch.cat([weighted, residual[:, None, :]], dim=1)
    else:
        if weighted.shape[0] != weighted.shape[1]:
            raise ShapeError(f"self-attention maps must be square, got {tuple(probs.shape)}")
        parts = weighted.clone()
        own = torch.arange(parts.shape[0])
        parts[own, own] += residual
    if norm.pre:
        return parts, parts.sum(1) + bias.float()
    if norm_input is None or norm.weight is None or not norm.centred:
        raise UnsupportedModelError("ALTI of a post-norm block is defined for a LayerNorm with a weight (the norm "
                                    "is linearised around its standard deviation); this block's norm is not one")
    sigma = torch.sqrt(norm_input.float().var(-1, unbiased=False, keepdim=True) + norm.eps)  # [query, 1]
    gamma = norm.weight.float()

    def linear(x: torch.Tensor) -> torch.Tensor:
        return (x - x.mean(-1, keepdim=True)) * gamma

    parts = linear(parts) / sigma[:, :, None]
    beta = norm.bias.float() if norm.bias is not None else torch.zeros_like(gamma)
    return parts, parts.sum(1) + linear(bias.float())[None, :] / sigma + beta


def rollout(layers: list[torch.Tensor]) -> torch.Tensor:
    """``C_L ... C_1`` of per-layer contribution matrices (first layer first in ``layers``).

    >>> rollout([torch.tensor([[1.0, 0.0], [0.5, 0.5]])] * 2).tolist()
    [[1.0, 0.0], [0.75, 0.25]]
    """
    out = layers[0]
    for c in layers[1:]:
        out = c @ out
    return out


def alti_plus(encoder: torch.Tensor, decoder: list[torch.Tensor], cross: list[torch.Tensor]) -> tuple[
        torch.Tensor, torch.Tensor]:
    """``(R_ts [target, source], R_tt [target, target])``: ALTI+ rolled through the decoder.

    ``encoder``: the encoder's rolled ALTI ``[source, source]``; ``decoder``: each layer's self-attention
    contributions ``[target, target]``; ``cross``: each layer's cross-attention contributions
    ``[target, source + 1]`` (the last column the residual's).

    >>> r_ts, r_tt = alti_plus(torch.eye(2), [torch.ones(1, 1)], [torch.tensor([[0.25, 0.25, 0.5]])])
    >>> r_ts.tolist(), r_tt.tolist()
    ([[0.25, 0.25]], [[0.5]])
    """
    n_target, n_source = cross[0].shape[0], encoder.shape[0]
    r_tt = torch.eye(n_target)
    r_ts = torch.zeros(n_target, n_source)
    for c_self, c_cross in zip(decoder, cross):
        r_tt, r_ts = c_self @ r_tt, c_self @ r_ts
        res = c_cross[:, -1:]
        r_ts = res * r_ts + c_cross[:, :-1] @ encoder
        r_tt = res * r_tt
    return r_ts, r_tt
