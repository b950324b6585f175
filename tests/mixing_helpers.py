"""Hand computations shared by the tests of :mod:`headscope.mixing`."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch


def run_with_hooks(model: torch.nn.Module, inputs: dict, handles: Sequence) -> None:
    """One forward of ``model(**inputs)`` without gradients; the hook ``handles`` removed afterwards."""
    try:
        with torch.no_grad():
            model(**inputs)
    finally:
        for handle in handles:
            handle.remove()


def zeroing(j: int) -> Callable:
    """A forward hook that sets position ``j`` of a value projection's output to zero."""
    def hook(module, args, out):
        out = out.clone()
        out[:, j] = 0
        return out
    return hook


def value_zeroing_by_hand(model: torch.nn.Module, inputs: dict, value_projections: Sequence[torch.nn.Module],
                          hidden: Callable = lambda out: out.hidden_states) -> list[torch.Tensor]:
    """Mohebbi et al.'s value zeroing from whole forwards: per layer, token j's value vector zeroed by a hook
    on that layer's value projection, the cosine distance of every token's layer output (float64), rows
    normalised. ``hidden`` picks the hidden states of the stack the projections belong to."""
    with torch.no_grad():
        before = hidden(model(**inputs, output_hidden_states=True))
    n = before[0].shape[1]
    expected = []
    for layer, v_proj in enumerate(value_projections):
        scores = torch.zeros(n, n)
        for j in range(n):
            handle = v_proj.register_forward_hook(zeroing(j))
            try:
                with torch.no_grad():
                    after = hidden(model(**inputs, output_hidden_states=True))
            finally:
                handle.remove()
            scores[:, j] = 1 - torch.nn.functional.cosine_similarity(after[layer + 1][0].double(),
                                                                     before[layer + 1][0].double(), dim=-1)
        scores = scores.clamp(min=0)  # rounding leaves unchanged tokens' distances about -1e-16
        expected.append(scores / scores.sum(-1, keepdim=True))
    return expected
