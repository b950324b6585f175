"""Adversarial attention (Jain & Wallace 2019, section 4.2): the most different map that keeps the output.

For each example, the attention logits of the chosen heads (their selected query rows) are
optimised by gradient ascent on

    mean JS(new rows, original rows)  -  penalty * sum_d relu(TVD_d - margin * epsilon)

where ``TVD_d`` is the total variation distance between the original and the new output
distribution of decision ``d`` (one for a label; one per target step, teacher-forced, for an
encoder-decoder), JS is the Jensen-Shannon divergence in bits (0..1), and masked keys (padding,
future tokens) stay at probability 0. Every iterate whose largest ``TVD_d`` is within
``epsilon`` (plus ``tolerance``, float precision) is a candidate; the one with the largest JS is
kept. Several ``epsilon`` run in increasing order, each warm-started from the previous one, so the
largest JS found never decreases with ``epsilon``.

Before the gradient search at each epsilon, the map of largest JS without any constraint (each
row one-hot on its least-attended key) is tried as a candidate; the gradient ascent saturates
near the vertices of the simplex and would otherwise stop short of it where the output does not
depend on the map.

Every result is then checked against its constraint by a separate forward pass with the map it
found (no gradient); an example whose check fails (it should not) falls back to its original map
and is flagged. Where query row ``t`` is target step ``t`` (an encoder-decoder's cross or decoder attention), the
best map of each row whose own step stayed within ``epsilon`` is also kept, and the map assembled
from them is taken if a forward with it keeps every step within ``epsilon`` (exact for the last
cross-attention layer, whose row ``t`` reaches step ``t`` only; a heuristic candidate elsewhere,
accepted only after that check).

The examples of a batch are optimised together but independently: Adam is
element-wise, and each example's loss depends on its own logits only.

Reference: Jain & Wallace 2019, "Attention is not Explanation", NAACL (section 4.2).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ..errors import InputError
from ._intervene import Batch, Change, Key

TOLERANCE = 1e-6


@dataclass
class Found:
    """The checked result of the search at one ``epsilon`` for a batch.

    ``maps[key]`` ``[B, heads, Q, K]`` are the maps found; ``js`` ``[B]`` their JS from the
    originals; ``changes`` the output changes measured by the check forward; ``within`` ``[B]``
    whether that check kept every decision's TVD within ``epsilon + tolerance``; ``fallback`` ``[B]``
    whether the example fell back to its original map because the check failed.
    """

    epsilon: float
    maps: dict[Key, torch.Tensor]
    js: torch.Tensor
    changes: list[Change]
    within: torch.Tensor
    fallback: torch.Tensor


def adversarial_search(batch: Batch, heads: dict[Key, list[int]], epsilons: Sequence[float], *,
                       steps: int = 40, lr: float = 0.3, penalty: float = 100.0, margin: float = 0.8,
                       init_noise: float = 1.0, tolerance: float = TOLERANCE,
                       generator: torch.Generator | None = None) -> list[Found]:
    """Search each example's most divergent map within each ``epsilon`` (see the module docstring).

    Returns one :class:`Found` per epsilon, in increasing order of epsilon.
    """
    eps_list = sorted({float(e) for e in epsilons})
    if not eps_list or eps_list[0] < 0:
        raise InputError(f"epsilon must be one or more numbers >= 0, got {list(epsilons)}")
    if steps < 0 or lr <= 0:
        raise InputError(f"steps must be >= 0 and lr > 0 (got steps={steps}, lr={lr})")
    gen = generator or torch.Generator().manual_seed(0)
    keys = list(heads)
    orig = {k: batch.originals(k, heads[k]) for k in keys}
    closed = {k: (~batch.open_keys(k, heads[k])).float() * -1e9 for k in keys}
    theta = {k: (orig[k].clamp_min(1e-8).log() + init_noise * torch.randn(orig[k].shape, generator=gen))
             .requires_grad_(True) for k in keys}
    best = {k: orig[k].clone() for k in keys}
    best_js = torch.zeros(batch.size)
    by_row = batch.rows_are_decisions(keys)  # also keep the best of each row (target step) on its own
    rows = {k: orig[k].clone() for k in keys}
    rows_js = torch.zeros(orig[keys[0]].shape[0], orig[keys[0]].shape[2])
    found = []
    far = {k: _far_vertex(orig[k], batch.open_keys(k, heads[k])) for k in keys}
    at_far = torch.zeros(batch.size, dtype=torch.bool)
    for eps in eps_list:
        if not at_far.all():  # the unconstrained maximiser of JS: each row on its least-attended key
            with torch.no_grad():
                changes = batch.changes(batch.run(far, heads))
                js = batch.js(far, heads)
            tvd = torch.stack([c.tvd_max for c in changes]).float()
            better = (tvd <= eps + tolerance) & (js > best_js) & ~at_far
            if better.any():
                for k in keys:
                    best[k][better] = far[k][better]
                    with torch.no_grad():
                        theta[k][better] = far[k][better].clamp_min(1e-8).log()
                best_js = torch.where(better, js, best_js)
                at_far |= better
        opt = torch.optim.Adam(list(theta.values()), lr=lr)
        for it in range(steps + 1):
            maps = {k: torch.softmax(theta[k] + closed[k], -1) for k in keys}
            changes = batch.changes(batch.run(maps, heads))
            js = batch.js(maps, heads)
            tvd = torch.stack([c.tvd_max.detach() for c in changes]).float()
            better = (tvd <= eps + tolerance) & (js.detach() > best_js)
            if better.any():
                for k in keys:
                    best[k][better] = maps[k].detach()[better]
                best_js = torch.where(better, js.detach(), best_js)
            if by_row:
                step_ok = _step_tvd(changes, rows_js.shape[1]) <= eps + tolerance
                row_js = batch.js_rows(maps, heads).detach()
                gain = step_ok & (row_js > rows_js)
                if gain.any():
                    for k in keys:
                        rows[k] = torch.where(gain[:, None, :, None], maps[k].detach(), rows[k])
                    rows_js = torch.where(gain, row_js, rows_js)
            if it == steps:
                break
            over = torch.stack([torch.relu(c.tvd.float() - margin * eps).sum() for c in changes])
            loss = (-js + penalty * over).sum()
            grads = torch.autograd.grad(loss, [theta[k] for k in keys], allow_unused=True)
            opt.zero_grad(set_to_none=True)
            for k, g in zip(keys, grads):
                theta[k].grad = torch.zeros_like(theta[k]) if g is None else g
            opt.step()
        if by_row:
            best = _assembled(batch, heads, eps, best, best_js, rows, tolerance)
        found.append(_check(batch, heads, eps, best, orig, tolerance))
        best_js = found[-1].js.clone()
        for k in keys:
            best[k] = found[-1].maps[k].clone()
        if by_row:
            rows = {k: v.clone() for k, v in best.items()}
            rows_js = batch.js_rows(best, heads)
    return found


def _step_tvd(changes: Sequence[Change], width: int) -> torch.Tensor:
    """``[B, width]``: each example's TVD per decision (target step), ``inf`` past its last step."""
    out = torch.full((len(changes), width), float("inf"))
    for b, c in enumerate(changes):
        n = min(width, len(c.tvd))
        out[b, :n] = c.tvd.detach()[:n].float()
    return out


@torch.no_grad()
def _assembled(batch: Batch, heads: dict[Key, list[int]], eps: float, best: dict[Key, torch.Tensor],
               best_js: torch.Tensor, rows: dict[Key, torch.Tensor], tolerance: float) -> dict[Key, torch.Tensor]:
    """Per example, the map assembled from each row's best (each within epsilon at its own step when
    found) if a forward with it keeps every step within epsilon and its JS is larger; else ``best``."""
    changes = batch.changes(batch.run(rows, heads))
    tvd = torch.stack([c.tvd_max for c in changes]).float()
    take = (tvd <= eps + tolerance) & (batch.js(rows, heads) > best_js)
    return {k: torch.where(take[:, None, None, None], rows[k], best[k]) for k in best}


def _far_vertex(orig: torch.Tensor, open_keys: torch.Tensor) -> torch.Tensor:
    """One-hot rows on each row's least-attended open key (the map of largest JS from the original)."""
    low = orig.masked_fill(~open_keys, float("inf")).argmin(-1, keepdim=True)
    return torch.zeros_like(orig).scatter(-1, low, 1.0) * open_keys.any(-1, keepdim=True)


@torch.no_grad()
def _check(batch: Batch, heads: dict[Key, list[int]], eps: float, best: dict[Key, torch.Tensor],
           orig: dict[Key, torch.Tensor], tolerance: float) -> Found:
    """Re-run the forward with the maps found; fall back to the original map where the constraint fails."""
    maps = {k: v.clone() for k, v in best.items()}
    changes = batch.changes(batch.run(maps, heads))
    tvd = torch.stack([c.tvd_max for c in changes]).float()
    within = tvd <= eps + tolerance
    fallback = ~within
    if fallback.any():
        for k in maps:
            maps[k][fallback] = orig[k][fallback]
        changes = batch.changes(batch.run(maps, heads))
        tvd = torch.stack([c.tvd_max for c in changes]).float()
        within = tvd <= eps + tolerance
    return Found(eps, maps, batch.js(maps, heads), changes, within, fallback)
