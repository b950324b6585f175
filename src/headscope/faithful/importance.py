"""Token importance: how much each input token matters for the model's own decision.

Every method returns a :class:`TokenImportance` whose ``scores`` are

* classifier: ``[S]``, importance of each source token for the **predicted class**;
* encoder-decoder: ``[T, S]``, row ``t`` the importance of each source token for
  ``log p(target_t)`` under teacher forcing, so each cross-attention head (whose row ``t`` is
  the step that outputs ``target_t``) compares row by row;
* decoder-only: ``[S]``, importance for the predicted next token.

The objective of the gradient-based and erasure methods is the **log-probability** of that
decision. Methods (``list_methods()``):

``attention``  raw attention. Classifiers: by default the first-token ([CLS]) row of the last
               encoder layer, heads averaged (``layer``/``head`` pick one layer/head,
               ``layer="all"`` averages every layer); encoder-decoders: the cross-attention
               ``[T, S]`` of the last layer; decoder-only: the last position's row.
``rollout``    attention rollout (Abnar & Zuidema 2020); encoder-decoders: the Chefer et al.
               (2021) rules of :func:`headscope.aggregate.encoder_decoder_rollout`.
``flow``       attention flow (Abnar & Zuidema 2020); encoder-only and decoder-only models.
``gradient``   L2 norm of the gradient w.r.t. each input embedding (Simonyan et al. 2014;
               as used by Jain & Wallace 2019).
``grad_x_input`` gradient . embedding, signed (Shrikumar et al. 2016).
``integrated_gradients`` Sundararajan et al. (2017), trapezoid rule over ``steps`` points from
               an all-zero embedding baseline (``baseline="pad"``/``"mask"`` for that token's);
               attributions sum to ``f(x) - f(baseline)`` up to the discretisation error,
               reported in ``extras["completeness_gap"]``.
``loo``        leave-one-out: ``log p`` minus ``log p`` without the token. Default
               ``variant="remove"`` deletes the token (Jain & Wallace 2019); ``variant="mask"``
               replaces it with the mask token (unk, else pad, when the tokenizer has none).

Gradients are taken w.r.t. the word-embedding lookup (before position embeddings and any
embedding scaling; rankings are unchanged by such a constant scale).

>>> imp = token_importance(insp, "loo")        # doctest: +SKIP
>>> imp.scores.shape                            # doctest: +SKIP
(12,)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..errors import InputError, UnsupportedModelError
from ._common import (
    EmbeddingOverride,
    Example,
    as_examples,
    chunked,
    input_embeddings,
    mask_id,
    model_inputs,
    pad_id,
    run_gated,
    score,
    token_logprobs,
)


@dataclass
class TokenImportance:
    """Importance scores of the source tokens (see the module docstring for the shapes)."""

    method: str
    scores: np.ndarray
    source_tokens: list[str]
    target_tokens: list[str] | None
    family: str
    options: dict[str, Any] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)
    special: list[bool] | None = None

    def top(self, k: int = 5, row: int | None = None) -> list[tuple[str, float]]:
        """The ``k`` most important source tokens (of target row ``row`` for encoder-decoders)."""
        vec = self.scores if self.scores.ndim == 1 else self.scores[0 if row is None else row]
        order = np.argsort(-vec, kind="stable")[:k]
        return [(self.source_tokens[i], float(vec[i])) for i in order]

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "scores": self.scores.tolist(), "source_tokens": self.source_tokens,
                "target_tokens": self.target_tokens, "family": self.family, "options": self.options,
                "extras": {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in self.extras.items()}}


# ---- attention-based --------------------------------------------------------------------------

def _maps(ex: Example, kind: str) -> torch.Tensor:
    if kind not in ex.attentions:
        raise InputError(f"no {kind!r} attention captured for this example; captured kinds: {list(ex.attentions)}")
    return ex.attentions[kind].float()


def _query_row(ex: Example) -> int:
    return 0 if ex.family == "classifier" else len(ex.source_ids) - 1


def attention_importance(ex: Example, layer: int | str | None = None, head: int | None = None,
                         row: int | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """Raw attention of one head / a layer's heads averaged / every head averaged (``layer="all"``)."""
    kind = "cross" if ex.family == "encoder-decoder" else "encoder" if ex.family == "classifier" else "decoder"
    maps = _maps(ex, kind)  # [layers, heads, q, k]
    n_layers, n_heads = maps.shape[:2]
    if layer == "all":
        if head is not None:
            raise InputError("head= with layer='all' is ambiguous; give a layer index with head=")
        m = maps.mean(dim=(0, 1))
    else:
        li = n_layers - 1 if layer is None else int(layer)
        if not -n_layers <= li < n_layers:
            raise InputError(f"layer {layer} out of range: {kind} attention has {n_layers} layers")
        m = maps[li]
        if head is None:
            m = m.mean(0)
        elif not 0 <= head < n_heads:
            raise InputError(f"head {head} out of range: {kind} attention has {n_heads} heads (0..{n_heads - 1})")
        else:
            m = m[head]
        layer = li % n_layers
    if kind == "cross":
        return m.double().numpy(), {"kind": kind, "layer": layer, "head": head}
    r = _query_row(ex) if row is None else row
    return m[r].double().numpy(), {"kind": kind, "layer": layer, "head": head, "row": r}


def rollout_importance(ex: Example, residual: float = 0.5, head_fusion: str = "mean") -> tuple[np.ndarray, dict]:
    from ..aggregate import encoder_decoder_rollout, rollout

    opts = {"residual": residual, "head_fusion": head_fusion}
    if ex.family == "encoder-decoder":
        return encoder_decoder_rollout(_maps(ex, "encoder"), _maps(ex, "decoder"), _maps(ex, "cross"), **opts), opts
    kind = "encoder" if ex.family == "classifier" else "decoder"
    return rollout(_maps(ex, kind), **opts)[_query_row(ex)], {**opts, "row": _query_row(ex)}


def flow_importance(ex: Example, residual: float = 0.5, head_fusion: str = "mean") -> tuple[np.ndarray, dict]:
    from ..aggregate import flow

    if ex.family == "encoder-decoder":
        raise UnsupportedModelError("attention flow is defined for one stack of self-attention; for an "
                                    "encoder-decoder use method='rollout' (target-over-source relevance)")
    kind = "encoder" if ex.family == "classifier" else "decoder"
    r = _query_row(ex)
    return flow(_maps(ex, kind), residual=residual, head_fusion=head_fusion, rows=[r])[0], \
        {"residual": residual, "head_fusion": head_fusion, "row": r}


# ---- gradient-based ---------------------------------------------------------------------------

def _objective_index(ex: Example) -> list[int]:
    """Which entries of the per-row ``logprobs`` are objectives: one per target token, or the decision."""
    if ex.family == "encoder-decoder":
        return list(range(len(ex.target_ids or [])))
    return [0] if ex.family == "classifier" else [len(ex.source_ids) - 1]


def objective_grads(ex: Example, embeds: torch.Tensor, objective: list[int],
                    batch_size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """``f`` and ``df/dE`` for rows of word embeddings ``embeds [R, S, D]`` of example ``ex``.

    Row ``r`` is scored on objective ``objective[r]`` (index into the per-row log-probabilities).
    Returns ``values [R]`` and ``grads [R, S, D]``.
    """
    loaded = ex.loaded
    values, grads = [], []
    with EmbeddingOverride(loaded) as override:
        for part in chunked(len(embeds), batch_size):
            e = embeds[part].detach().clone().requires_grad_(True)
            exs = [ex] * e.shape[0]
            inputs = model_inputs(loaded, exs)
            override.reset(e)
            with torch.enable_grad():
                out = run_gated(loaded, inputs)
                rows = token_logprobs(loaded, out.logits, inputs, exs)
                f = torch.stack([rows[i]["logprobs"][objective[part.start + i]] for i in range(e.shape[0])])
                (g,) = torch.autograd.grad(f.sum(), e)
            values.append(f.detach())
            grads.append(g)
    return torch.cat(values), torch.cat(grads)


def _embeds(ex: Example) -> torch.Tensor:
    return input_embeddings(ex.loaded, torch.tensor([ex.source_ids]))[0]


def gradient_importance(ex: Example, batch_size: int = 32) -> tuple[np.ndarray, dict]:
    objective = _objective_index(ex)
    e = _embeds(ex)
    _, g = objective_grads(ex, e.expand(len(objective), -1, -1), objective, batch_size)
    s = g.norm(dim=-1).double().numpy()
    return (s if ex.family == "encoder-decoder" else s[0]), {}


def grad_x_input_importance(ex: Example, batch_size: int = 32) -> tuple[np.ndarray, dict]:
    objective = _objective_index(ex)
    e = _embeds(ex)
    _, g = objective_grads(ex, e.expand(len(objective), -1, -1), objective, batch_size)
    s = (g * e).sum(-1).double().numpy()
    return (s if ex.family == "encoder-decoder" else s[0]), {}


def integrated_gradients_importance(ex: Example, steps: int = 32, baseline: str = "zero",
                                    batch_size: int = 32) -> tuple[np.ndarray, dict]:
    """Integrated gradients with the trapezoid rule on ``steps`` intervals (Sundararajan et al. 2017)."""
    if steps < 1:
        raise InputError(f"steps must be a positive integer, got {steps}")
    e = _embeds(ex)
    if baseline == "zero":
        b = torch.zeros_like(e)
    elif baseline in ("pad", "mask"):
        token = pad_id(ex.loaded) if baseline == "pad" else mask_id(ex.loaded)
        b = input_embeddings(ex.loaded, torch.full((1, len(ex.source_ids)), token))[0]
    else:
        raise InputError(f"unknown baseline {baseline!r}; choose 'zero', 'pad' or 'mask'")
    objective = _objective_index(ex)
    alphas = torch.linspace(0, 1, steps + 1)
    weights = torch.full((steps + 1,), 1.0 / steps)
    weights[0] = weights[-1] = 0.5 / steps
    path = b[None] + alphas[:, None, None] * (e - b)[None]  # [steps+1, S, D]
    n_obj = len(objective)
    rows = path.repeat_interleave(n_obj, dim=0)  # row = step * n_obj + objective
    values, grads = objective_grads(ex, rows, objective * (steps + 1), batch_size)
    grads = grads.reshape(steps + 1, n_obj, *e.shape)
    avg = (weights[:, None, None, None] * grads.double()).sum(0)  # [n_obj, S, D]
    attr = (avg * (e - b).double()[None]).sum(-1).numpy()  # [n_obj, S]
    values = values.reshape(steps + 1, n_obj).double().numpy()
    delta = values[-1] - values[0]
    gap = attr.sum(-1) - delta
    extras = {"f_input": values[-1], "f_baseline": values[0], "completeness_gap": gap}
    if ex.family != "encoder-decoder":
        attr, extras = attr[0], {k: float(v[0]) for k, v in extras.items()}
    return attr, {"steps": steps, "baseline": baseline, **{"_extras": extras}}


# ---- erasure ----------------------------------------------------------------------------------

def edited_sources(ex: Example, erase: np.ndarray, variant: str = "remove") -> list[list[int]]:
    """Source ids with the tokens ``erase[r]`` (boolean ``[R, S]``) removed or masked, one list per row.

    A row that would remove every token keeps a single pad token instead.
    """
    if variant not in ("remove", "mask"):
        raise InputError(f"unknown erasure variant {variant!r}; choose 'remove' or 'mask'")
    ids = np.asarray(ex.source_ids)
    token = mask_id(ex.loaded)
    out = []
    for row in np.asarray(erase, dtype=bool):
        kept = ids[~row].tolist() if variant == "remove" else np.where(row, token, ids).tolist()
        out.append(kept or [pad_id(ex.loaded)])
    return out


@torch.no_grad()
def erased_logprobs(ex: Example, erase: np.ndarray, variant: str = "remove", batch_size: int = 64) -> np.ndarray:
    """``log p`` of the decision (``[R]``; ``[R, T]`` for encoder-decoders) with ``erase[r]`` erased."""
    sources = edited_sources(ex, erase, variant)
    out = []
    for part in chunked(len(sources), batch_size):
        rows = score(ex.loaded, [ex] * (part.stop - part.start), sources[part])
        for r in rows:
            lp = r["logprobs"].double().numpy()
            out.append(lp if ex.family == "encoder-decoder" else lp[-1:] if ex.family == "decoder" else lp)
    arr = np.stack(out)
    return arr if ex.family == "encoder-decoder" else arr[:, 0]


def base_logprobs(ex: Example) -> np.ndarray:
    """``log p`` of the decision on the unedited input (``[T]`` for encoder-decoders, else a scalar array)."""
    return erased_logprobs(ex, np.zeros((1, len(ex.source_ids)), dtype=bool))[0]


def loo_importance(ex: Example, variant: str = "remove", batch_size: int = 64) -> tuple[np.ndarray, dict]:
    """Leave-one-out: drop of ``log p`` when each token alone is removed (or masked)."""
    n = len(ex.source_ids)
    if variant == "remove" and n < 2:
        raise InputError("leave-one-out by removal needs at least two tokens; use variant='mask'")
    erased = erased_logprobs(ex, np.eye(n, dtype=bool), variant, batch_size)  # [S] or [S, T]
    base = base_logprobs(ex)
    drop = base[None] - erased if ex.family == "encoder-decoder" else base - erased
    return (drop.T if ex.family == "encoder-decoder" else drop), {"variant": variant}


# ---- registry ---------------------------------------------------------------------------------

_METHODS: dict[str, tuple[Callable[..., tuple[np.ndarray, dict]], str]] = {
    "attention": (attention_importance, "raw attention of one head, a layer's mean or all heads' mean "
                                        "([CLS] row of the last layer for classifiers, cross-attention for seq2seq)"),
    "rollout": (rollout_importance, "attention rollout (Abnar & Zuidema 2020; Chefer et al. 2021 for seq2seq)"),
    "flow": (flow_importance, "attention flow, max-flow through the attention graph (Abnar & Zuidema 2020)"),
    "gradient": (gradient_importance, "L2 norm of the gradient of log p(decision) w.r.t. each input embedding"),
    "grad_x_input": (grad_x_input_importance, "gradient x input embedding, summed over dimensions (signed)"),
    "integrated_gradients": (integrated_gradients_importance,
                             "integrated gradients from a zero-embedding baseline, trapezoid rule (Sundararajan 2017)"),
    "loo": (loo_importance, "leave-one-out: drop of log p(decision) when the token is removed (or masked)"),
}


def list_methods() -> dict[str, str]:
    """Token-importance method names with one-line descriptions.

    >>> sorted(list_methods())[:3]
    ['attention', 'flow', 'grad_x_input']
    """
    return {name: desc for name, (_, desc) in _METHODS.items()}


def token_importance(source: Any, method: str = "attention", text: Any = None, target: Any = None,
                     **options: Any) -> TokenImportance | list[TokenImportance]:
    """Importance of each source token for the model's own decision, by ``method``.

    ``source`` is an Inspection (or a list of them), or a model with ``text`` (and ``target``).
    ``options`` go to the method (e.g. ``layer=``, ``head=`` for attention, ``steps=`` for
    integrated gradients, ``variant=`` for loo). A list of inputs returns a list.

    >>> token_importance(insp, "gradient").top(3)      # doctest: +SKIP
    """
    if method not in _METHODS:
        raise InputError(f"unknown importance method {method!r}; choose from {sorted(_METHODS)}")
    examples = as_examples(source, text, target)
    many = isinstance(source, list) or (text is not None and not isinstance(text, str))
    out = [importance_of(ex, method, **options) for ex in examples]
    return out if many else out[0]


def importance_of(ex: Example, method: str, **options: Any) -> TokenImportance:
    """:func:`token_importance` of one encoded :class:`~headscope.faithful._common.Example`."""
    if method not in _METHODS:
        raise InputError(f"unknown importance method {method!r}; choose from {sorted(_METHODS)}")
    fn = _METHODS[method][0]
    try:
        scores, opts = fn(ex, **options)
    except TypeError as err:
        if "unexpected keyword" in str(err):
            raise InputError(f"method {method!r} does not take {err}; see list_methods() and its docstring") from None
        raise
    extras = opts.pop("_extras", {})
    return TokenImportance(method, np.asarray(scores, dtype=float), list(ex.source_tokens),
                           None if ex.target_tokens is None else list(ex.target_tokens), ex.family,
                           {**options, **opts}, extras, list(ex.special))
