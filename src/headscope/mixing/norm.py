"""Norm-based attention: how large the vector each token sends is, not only how much it is weighted.

Kobayashi, Kuribayashi, Yokoi & Inui 2020, "Attention is Not Only a Weight: Analyzing Transformers
with Vector Norms" (EMNLP). A head's output for query ``i`` is ``sum_j alpha_ij f(x_j)`` with
``f(x) = (x W_V + b_V) W_O`` (the value vector, bias included, through the head's slice of the output
projection; the output bias ``b_O`` belongs to no token and is left out, as in the paper). The
reading is ``||alpha_ij f(x_j)||`` per head, and per layer ``||sum_h alpha^h_ij f^h(x_j)||`` (the
heads' vectors summed before the norm, the layer's whole attention output from token ``j``).

Pure functions of captured tensors (one example, no batch axis).

>>> probs = torch.tensor([[[0.5, 0.5]]])                 # 1 head, 1 query, 2 keys
>>> values = torch.tensor([[[1.0, 0.0], [0.0, 2.0]]])    # 1 head, 2 keys, head_dim 2
>>> heads, layer = norm_maps(probs, values, torch.eye(2))
>>> heads.tolist(), layer.tolist()
([[[0.5, 1.0]]], [[0.5, 1.0]])
"""

from __future__ import annotations

import torch

from ..errors import ShapeError


def transformed_values(values: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``f^h(x_j) = v^h_j W_O^h``: ``[heads, key, width]`` from values ``[heads, key, head_dim]`` and the
    output projection ``W_O`` as ``[heads * head_dim, width]`` (rows of head ``h`` are its slice).

    >>> transformed_values(torch.ones(2, 1, 1), torch.tensor([[1.0], [2.0]])).flatten().tolist()
    [1.0, 2.0]
    """
    heads, _, dim = values.shape
    if weight.shape[0] != heads * dim:
        raise ShapeError(f"the output projection takes {weight.shape[0]} inputs but {heads} heads x {dim} "
                         "dimensions come out of the attention")
    return torch.einsum("hkd,hdw->hkw", values.float(), weight.float().reshape(heads, dim, -1))


def norm_maps(probs: torch.Tensor, values: torch.Tensor, weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(per head [heads, query, key], per layer [query, key])`` norm-based attention (Kobayashi et al. 2020).

    ``probs`` ``[heads, query, key]``, ``values`` ``[heads, key, head_dim]`` (with ``b_V``), ``weight``
    ``W_O`` as ``[heads * head_dim, width]``.
    """
    fx = transformed_values(values, weight)
    probs = probs.float()
    per_head = probs * fx.norm(dim=-1)[:, None, :]
    # ||sum_h a_h f_h||^2 = sum_{h,g} a_h a_g <f_h, f_g>: the heads' Gram matrix per key, not a [q, k, width] tensor
    gram = torch.einsum("hkw,gkw->khg", fx, fx)
    per_layer = torch.einsum("hqk,gqk,khg->qk", probs, probs, gram).clamp(min=0).sqrt()
    return per_head, per_layer
