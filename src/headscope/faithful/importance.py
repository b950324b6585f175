"""Token importance: how much each source token matters for the model's own decisions.

Every method returns a :class:`TokenImportance` whose ``scores`` are ``[decisions, source tokens]``
whatever the architecture: row ``d`` is the importance of each source token for decision ``d``
(see :mod:`headscope.faithful._common`): the predicted label (one row), the predicted next token
(one row), or each target token of an encoder-decoder under teacher forcing (one row per target
token, so each cross-attention head, whose row ``t`` is the step that outputs ``target_t``,
compares row by row). The objective of the gradient-based and erasure methods is the
**log-probability** of the decision. Methods (``list_methods()``):

``attention``  a reading of the attention relating the decisions to the source (cross attention
               for encoder-decoders, else self-attention): by default the mean over the heads of
               the last layer (``reading=`` any :class:`~headscope.readings.Reading` of that kind,
               e.g. ``"cross.2.3"``; or ``layer=`` / ``head=``, ``layer="all"`` for all heads).
               Its rows are the decisions' query rows: the first token ([CLS]) for an encoder's
               label, the last token for a decoder's, every target token for an encoder-decoder.
``rollout``    attention rollout (Abnar & Zuidema 2020); encoder-decoders: the Chefer et al.
               (2021) rules (the ``cross.rollout`` reading).
``flow``       attention flow (Abnar & Zuidema 2020); defined on one self-attention stack.
``gradient``   L2 norm of the gradient w.r.t. each input embedding (Simonyan et al. 2014;
               as used by Jain & Wallace 2019).
``grad_x_input`` gradient . embedding, signed (Shrikumar et al. 2016).
``integrated_gradients`` Sundararajan et al. (2017), trapezoid rule over ``steps`` points from
               an all-zero embedding baseline (``baseline="pad"``/``"mask"`` for that token's);
               attributions sum to ``f(x) - f(baseline)`` up to the discretisation error,
               reported per decision in ``extras["completeness_gap"]``.
``loo``        leave-one-out: ``log p`` minus ``log p`` without the token. Default
               ``variant="remove"`` deletes the token (Jain & Wallace 2019); ``variant="mask"``
               replaces it with the mask token (unk, else pad, when the tokenizer has none).

Gradients are taken w.r.t. the word-embedding lookup (before position embeddings and any
embedding scaling; rankings are unchanged by such a constant scale).

>>> imp = token_importance(insp, "loo")        # doctest: +SKIP
>>> imp.scores.shape                            # doctest: +SKIP
(1, 12)
"""

from __future__ import annotations

import inspect as _pyinspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch

from ..aggregate import reading_map
from ..errors import InputError, NotApplicableError
from ..inspection import display_token
from ..readings import Flow, Head, HeadsMean, LayerMean, Reading, Rollout, Site, parse_reading
from ._common import (
    EmbeddingOverride,
    Example,
    as_examples,
    chunked,
    input_embeddings,
    mask_id,
    pad_id,
    read_scores,
    run_gated,
    score,
    scoring_batch,
)

ImportanceMethod = Literal["attention", "rollout", "flow", "gradient", "grad_x_input", "integrated_gradients", "loo"]


@dataclass(repr=False)
class TokenImportance:
    """Importance of each source token for each decision of the model: ``scores`` ``[decisions, source]``.

    Attributes
    ----------
    method : str
        The :data:`ImportanceMethod` that computed it.
    scores : numpy.ndarray
        ``[decisions, source tokens]`` (float64), whatever the architecture.
    source_tokens : list of str
        The columns.
    decisions : list of str
        The rows: the predicted label, the next token, or each target token.
    architecture : str
        The model's architecture name (``"encoder"``, ``"decoder"``, ``"encoder-decoder"``).
    target_tokens : list of str or None
        The output tokens of an encoder-decoder.
    reading : Reading or None
        The attention reading of ``attention`` / ``rollout`` / ``flow``.
    options : dict
        The options the method ran with.
    extras : dict of numpy.ndarray
        Per-decision diagnostics (integrated gradients: ``f_input``, ``f_baseline``,
        ``completeness_gap``, each ``[decisions]``).
    special : list of bool or None
        Which source tokens are special tokens.

    Examples
    --------
    >>> imp = TokenImportance("loo", np.array([[0.1, 0.7, 0.2]]), ["a", "b", "c"], ["positive"], "encoder")
    >>> imp.top(1)
    [('b', 0.7)]
    """

    method: str
    scores: np.ndarray
    source_tokens: list[str]
    decisions: list[str]
    architecture: str
    target_tokens: list[str] | None = None
    reading: Reading | None = None
    options: dict[str, Any] = field(default_factory=dict)
    extras: dict[str, np.ndarray] = field(default_factory=dict)
    special: list[bool] | None = None

    def top(self, k: int = 5, row: int = 0) -> list[tuple[str, float]]:
        """The ``k`` most important source tokens for decision ``row``."""
        vec = self.scores[row]
        order = np.argsort(-vec, kind="stable")[:k]
        return [(self.source_tokens[i], float(vec[i])) for i in order]

    def to_rows(self) -> list[dict[str, Any]]:
        """One dict per (decision, source token): ``row``, ``decision``, ``position``, ``token``, ``score``."""
        return [{"row": d, "decision": name, "position": i, "token": tok, "score": float(self.scores[d, i])}
                for d, name in enumerate(self.decisions) for i, tok in enumerate(self.source_tokens)]

    def table(self, top: int = 5) -> str:
        """Each decision with its ``top`` most important source tokens, as words (``▁man`` -> ``man``)."""
        lines = [self.summary()]
        for d, name in enumerate(self.decisions):
            lines.append(f"  {display_token(name)!r:<16}"
                         + "  ".join(f"{display_token(t)} {v:+.4f}" for t, v in self.top(top, d)))
        return "\n".join(lines)

    def summary(self) -> str:
        """One line: the method, its reading and the shape."""
        how = f" ({self.reading.name})" if self.reading is not None else ""
        return (f"token importance by {self.method}{how}: {len(self.decisions)} decision(s) x "
                f"{len(self.source_tokens)} source tokens")

    def __str__(self) -> str:
        return self.table(3)

    def __repr__(self) -> str:
        return f"<TokenImportance {self.method} {self.scores.shape[0]}x{self.scores.shape[1]}>"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (:meth:`from_dict` reads it back)."""
        return {"method": self.method, "scores": self.scores.tolist(), "source_tokens": self.source_tokens,
                "decisions": self.decisions, "architecture": self.architecture, "target_tokens": self.target_tokens,
                "reading": None if self.reading is None else self.reading.name, "options": _plain(self.options),
                "extras": {k: np.asarray(v).tolist() for k, v in self.extras.items()}, "special": self.special}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TokenImportance":
        """Inverse of :meth:`to_dict`."""
        data = dict(data)
        data["scores"] = np.asarray(data["scores"], dtype=float).reshape(len(data["decisions"]), -1)
        data["reading"] = None if data["reading"] is None else parse_reading(data["reading"])
        data["extras"] = {k: np.asarray(v, dtype=float) for k, v in data["extras"].items()}
        return cls(**data)


def _plain(options: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.name if isinstance(v, (Reading, Site)) else v) for k, v in options.items()}


@dataclass
class _Computed:
    """What an importance method returns: ``[decisions, source]`` scores and what it used."""

    scores: np.ndarray
    options: dict[str, Any] = field(default_factory=dict)
    extras: dict[str, np.ndarray] = field(default_factory=dict)
    reading: Reading | None = None


# ---- attention-based --------------------------------------------------------------------------

def _decision_rows(ex: Example, reading: Reading) -> np.ndarray:
    """The rows of ``reading``'s map that belong to the decisions, ``[decisions, source]``."""
    m = reading_map(ex.inspection, reading)
    rows = ex.architecture.decision_rows(m.shape[0], len(ex.decisions))
    return m[rows].double().numpy()


def _attention_reading(ex: Example, reading: str | Reading | Site | None, layer: int | str | None,
                       head: int | None) -> Reading:
    kind = ex.architecture.decision_kind()
    if reading is not None:
        if layer is not None or head is not None:
            raise InputError("give reading= or layer=/head=, not both")
        r = parse_reading(reading)
        if r.kind != kind:
            raise InputError(f"the decisions of a {ex.architecture.name} model are related to the source by "
                             f"{kind!r} attention; give a {kind} reading (e.g. '{kind}.0.mean'), not {r.name!r}")
        return r
    if layer == "all":
        if head is not None:
            raise InputError("head= with layer='all' is ambiguous; give a layer index with head=")
        return HeadsMean(kind)
    captured = ex.inspection.layer_indices(kind)
    if layer is None:
        index = captured[-1]
    elif isinstance(layer, int) and -len(captured) <= layer < 0:
        index = captured[layer]
    else:
        index = int(layer)
    return LayerMean(kind, index) if head is None else Head(kind, index, head)


def attention_importance(ex: Example, reading: str | Reading | Site | None = None, layer: int | str | None = None,
                         head: int | None = None) -> _Computed:
    """A reading of the attention of the decisions' query rows: by default the last layer's head mean."""
    r = _attention_reading(ex, reading, layer, head)
    return _Computed(_decision_rows(ex, r), reading=r)


def rollout_importance(ex: Example, residual: float = 0.5, head_fusion: str = "mean") -> _Computed:
    """Attention rollout of the decisions' query rows (``cross.rollout`` for encoder-decoders)."""
    r = Rollout(ex.architecture.decision_kind())
    m = reading_map(ex.inspection, r, residual=residual, head_fusion=head_fusion)
    rows = ex.architecture.decision_rows(m.shape[0], len(ex.decisions))
    return _Computed(m[rows].double().numpy(), {"residual": residual, "head_fusion": head_fusion}, reading=r)


def flow_importance(ex: Example, residual: float = 0.5, head_fusion: str = "mean") -> _Computed:
    """Attention flow to the decisions' query rows through one self-attention stack."""
    arch = ex.architecture
    try:
        r = Flow(arch.decision_kind())
    except InputError:
        raise NotApplicableError(f"attention flow is defined for one stack of self-attention; a {arch.name} model "
                                 "relates its outputs to the source by cross attention: use method='rollout' "
                                 "(target-over-source relevance)") from None
    n = len(ex.source_ids)
    rows = arch.decision_rows(n, len(ex.decisions))
    m = reading_map(ex.inspection, r, residual=residual, head_fusion=head_fusion, rows=rows)
    return _Computed(m.double().numpy(), {"residual": residual, "head_fusion": head_fusion}, reading=r)


# ---- gradient-based ---------------------------------------------------------------------------

def objective_grads(ex: Example, embeds: torch.Tensor, objective: list[int],
                    batch_size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """``f`` and ``df/dE`` for rows of word embeddings ``embeds [R, S, E]`` of example ``ex``.

    Row ``r`` is scored on decision ``objective[r]``: ``f`` is that decision's log-probability.
    Returns ``values [R]`` and ``grads [R, S, E]``.
    """
    loaded = ex.loaded
    n_dec = len(ex.decisions)
    values, grads = [], []
    with EmbeddingOverride(loaded) as override:
        for part in chunked(len(embeds), batch_size):
            e = embeds[part].detach().clone().requires_grad_(True)
            exs = [ex] * e.shape[0]
            inputs = scoring_batch(exs)
            override.reset(e)
            with torch.enable_grad():
                rows = read_scores(exs, run_gated(loaded, inputs).logits)
                f = torch.stack([r.logprobs[len(r.logprobs) - n_dec + objective[part.start + i]]
                                 for i, r in enumerate(rows)])
                (g,) = torch.autograd.grad(f.sum(), e)
            values.append(f.detach())
            grads.append(g)
    return torch.cat(values), torch.cat(grads)


def _embeds(ex: Example) -> torch.Tensor:
    return input_embeddings(ex.loaded, torch.tensor([ex.source_ids]))[0]


def _decision_grads(ex: Example, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The embeddings ``[S, E]`` and the gradient of each decision w.r.t. them, ``[D, S, E]``."""
    e = _embeds(ex)
    n = len(ex.decisions)
    _, g = objective_grads(ex, e.expand(n, -1, -1), list(range(n)), batch_size)
    return e, g


def gradient_importance(ex: Example, batch_size: int = 32) -> _Computed:
    """L2 norm of the gradient of each decision's log-probability w.r.t. each input embedding."""
    _, g = _decision_grads(ex, batch_size)
    return _Computed(g.norm(dim=-1).double().numpy())


def grad_x_input_importance(ex: Example, batch_size: int = 32) -> _Computed:
    """Gradient . input embedding (signed)."""
    e, g = _decision_grads(ex, batch_size)
    return _Computed((g * e).sum(-1).double().numpy())


def integrated_gradients_importance(ex: Example, steps: int = 32, baseline: str = "zero",
                                    batch_size: int = 32) -> _Computed:
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
    n_dec = len(ex.decisions)
    alphas = torch.linspace(0, 1, steps + 1)
    weights = torch.full((steps + 1,), 1.0 / steps)
    weights[0] = weights[-1] = 0.5 / steps
    path = b[None] + alphas[:, None, None] * (e - b)[None]  # [steps+1, S, E]
    rows = path.repeat_interleave(n_dec, dim=0)  # row = step * n_dec + decision
    values, grads = objective_grads(ex, rows, list(range(n_dec)) * (steps + 1), batch_size)
    grads = grads.reshape(steps + 1, n_dec, *e.shape)
    avg = (weights[:, None, None, None] * grads.double()).sum(0)  # [D, S, E]
    attr = (avg * (e - b).double()[None]).sum(-1).numpy()  # [D, S]
    values = values.reshape(steps + 1, n_dec).double().numpy()
    extras = {"f_input": values[-1], "f_baseline": values[0], "completeness_gap": attr.sum(-1) - (values[-1] - values[0])}
    return _Computed(attr, {"steps": steps, "baseline": baseline}, extras)


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
    """``log p`` of each decision with ``erase[r]`` erased: ``[R, decisions]``."""
    sources = edited_sources(ex, erase, variant)
    n_dec = len(ex.decisions)
    out = []
    for part in chunked(len(sources), batch_size):
        out += [r.logprobs[len(r.logprobs) - n_dec:].double().numpy()
                for r in score([ex] * (part.stop - part.start), sources[part])]
    return np.stack(out)


def loo_importance(ex: Example, variant: str = "remove", batch_size: int = 64) -> _Computed:
    """Leave-one-out: drop of ``log p`` when each token alone is removed (or masked)."""
    n = len(ex.source_ids)
    if variant == "remove" and n < 2:
        raise InputError("leave-one-out by removal needs at least two tokens; use variant='mask'")
    erased = erased_logprobs(ex, np.eye(n, dtype=bool), variant, batch_size)  # [S, D]
    base = erased_logprobs(ex, np.zeros((1, n), dtype=bool))[0]  # [D]
    return _Computed((base[None] - erased).T, {"variant": variant})


# ---- registry ---------------------------------------------------------------------------------

_METHODS: dict[str, tuple[Callable[..., _Computed], str]] = {
    "attention": (attention_importance, "raw attention of one head, a layer's mean or all heads' mean "
                                        "([CLS] / last-token row of the last layer; cross-attention for seq2seq)"),
    "rollout": (rollout_importance, "attention rollout (Abnar & Zuidema 2020; Chefer et al. 2021 for seq2seq)"),
    "flow": (flow_importance, "attention flow, max-flow through the attention graph (Abnar & Zuidema 2020)"),
    "gradient": (gradient_importance, "L2 norm of the gradient of log p(decision) w.r.t. each input embedding"),
    "grad_x_input": (grad_x_input_importance, "gradient x input embedding, summed over dimensions (signed)"),
    "integrated_gradients": (integrated_gradients_importance,
                             "integrated gradients from a zero-embedding baseline, trapezoid rule (Sundararajan 2017)"),
    "loo": (loo_importance, "leave-one-out: drop of log p(decision) when the token is removed (or masked)"),
}


def list_methods() -> dict[str, str]:
    """Token-importance method names (the :data:`ImportanceMethod` values) with one-line descriptions.

    >>> sorted(list_methods())[:3]
    ['attention', 'flow', 'grad_x_input']
    """
    return {name: desc for name, (_, desc) in _METHODS.items()}


def token_importance(source: Any, method: ImportanceMethod = "attention", text: Any = None, target: Any = None,
                     **options: Any) -> TokenImportance | list[TokenImportance]:
    """Importance of each source token for each of the model's own decisions, by ``method``.

    Parameters
    ----------
    source : Inspection, list of Inspection, or model
        Inspection(s) with their model attached, or a model (shipped name, folder,
        ``(model, tokenizer)``, LoadedModel) together with ``text``.
    method : str
        One of :func:`list_methods`.
    text, target : str or list of str, optional
        Text(s), and forced target(s) of an encoder-decoder, when ``source`` is a model.
    **options
        Passed to the method: ``reading=`` / ``layer=`` / ``head=`` for attention,
        ``residual=`` / ``head_fusion=`` for rollout and flow, ``steps=`` / ``baseline=`` for
        integrated gradients, ``variant=`` for loo, ``batch_size=`` for the model-backed ones.

    Returns
    -------
    TokenImportance or list of TokenImportance
        ``scores`` ``[decisions, source tokens]``; a list for a list of inputs.

    Examples
    --------
    >>> insp = headscope.inspect("headscope/sentiment", "A dull film.")    # doctest: +SKIP
    >>> token_importance(insp, "gradient").top(3)                         # doctest: +SKIP
    [('dull', 0.41), ('film', 0.18), ('[CLS]', 0.09)]
    """
    _check_method(method)
    examples = as_examples(source, text, target)
    many = isinstance(source, list) or (text is not None and not isinstance(text, str))
    out = [importance_of(ex, method, **options) for ex in examples]
    return out if many else out[0]


def _check_method(method: str) -> None:
    if method not in _METHODS:
        raise InputError(f"unknown importance method {method!r}; choose from {sorted(_METHODS)}")


def importance_of(ex: Example, method: ImportanceMethod, **options: Any) -> TokenImportance:
    """:func:`token_importance` of one encoded :class:`~headscope.faithful._common.Example`."""
    _check_method(method)
    fn = _METHODS[method][0]
    accepted = set(_pyinspect.signature(fn).parameters) - {"ex"}
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise InputError(f"method {method!r} does not take {', '.join(unknown)}; it takes {sorted(accepted)}")
    got = fn(ex, **options)
    return TokenImportance(method, np.asarray(got.scores, dtype=float), list(ex.source_tokens),
                           list(ex.decision_names), ex.architecture.name,
                           None if ex.target_tokens is None else list(ex.target_tokens), got.reading,
                           {**options, **got.options}, got.extras, list(ex.special))
