"""The machinery of counterfactual attention: which heads, which rows, and forwards with new maps.

A :class:`Target` is a set of heads replaced together (a head ``cross.2.3``, the heads of a
layer ``cross.2.mean``, every head of a kind ``cross.mean``, or a union of these). A
:class:`Batch` holds a padded batch of :class:`~headscope.faithful._common.Example` s, their
original attention (captured through the registered attention function, with the keys each row
may see) and their original output; :meth:`Batch.run` runs the forward again with some heads'
probabilities replaced (``AttentionCapture(replace=...)``) and :meth:`Batch.effects` measures
how far the output moved: total variation distance per decision, decision flips, the change of
the output's log-likelihood. Maps are compared by Jensen-Shannon divergence in bits (0..1).

Private to :mod:`headscope.faithful`; the entry point is :func:`headscope.faithful.counterfactual`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ..capture import AttentionCapture
from ..errors import InputError, UnsupportedModelError
from ..readings import Head, HeadsMean, LayerMean, Reading, Site, parse_reading
from ..run import forward_keys
from ._common import Example, Scores, read_scores, scoring_batch

Key = tuple[str, int]  # (kind, layer)
ROWS = ("all", "decision")
_LN2 = math.log(2.0)


# ---- which heads ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Target:
    """Heads replaced together: one or more readings (:class:`~headscope.readings.Head`, ``LayerMean``
    for the heads of a layer, ``HeadsMean`` for every head of a kind). ``name`` joins their names."""

    readings: tuple[Reading, ...]

    @classmethod
    def of(cls, spec: "str | Reading | Site | Target | Sequence[str | Reading | Site]") -> "Target":
        """A target from a name (``"cross.2.3"``, ``"cross.2.mean"``, ``"cross.2"``, ``"cross.mean"``),
        a reading, a :class:`~headscope.readings.Site`, or a list of them (their union; also as a name
        joined by ``+``, as :attr:`name` writes it)."""
        if isinstance(spec, Target):
            return spec
        if isinstance(spec, str) and "+" in spec:  # a union by its name: "cross.0.1+cross.2.mean"
            spec = spec.split("+")
        items = [spec] if isinstance(spec, (str, Reading, Site)) else list(spec)
        if not items:
            raise InputError("an empty site set: name at least one head, layer or kind")
        readings = []
        for item in items:
            if isinstance(item, str) and item.count(".") == 1 and item.split(".")[1].isdigit():
                item = Site.parse(item)  # "cross.2": the layer
            reading = parse_reading(item)
            if not isinstance(reading, (Head, LayerMean, HeadsMean)):
                raise InputError(f"{reading.name} is not a set of heads: name a head ('cross.2.3'), a layer "
                                 "('cross.2.mean' or 'cross.2') or every head of a kind ('cross.mean')")
            readings.append(reading)
        return cls(tuple(readings))

    @property
    def name(self) -> str:
        return "+".join(r.name for r in self.readings)

    @property
    def kinds(self) -> set[str]:
        return {r.kind for r in self.readings}

    def heads(self, blocks: dict[Key, int]) -> dict[Key, list[int]]:
        """``{(kind, layer): [heads]}`` of this target in a model whose blocks are ``{(kind, layer): heads}``."""
        out: dict[Key, set[int]] = {}
        for r in self.readings:
            layers = sorted(layer for kind, layer in blocks if kind == r.kind)
            if not layers:
                raise InputError(f"{r.name}: the model has no {r.kind} attention; it has "
                                 f"{sorted({k for k, _ in blocks})}")
            if isinstance(r, HeadsMean):
                chosen = {(r.kind, layer): range(blocks[(r.kind, layer)]) for layer in layers}
            else:
                if (r.kind, r.layer) not in blocks:
                    raise InputError(f"{r.name}: no {r.kind} layer {r.layer}; the {r.kind} layers are {layers}")
                n = blocks[(r.kind, r.layer)]
                if isinstance(r, Head) and not 0 <= r.head < n:
                    raise InputError(f"{r.name}: {r.kind} layer {r.layer} has heads 0..{n - 1}")
                chosen = {(r.kind, r.layer): [r.head] if isinstance(r, Head) else range(n)}
            for key, hs in chosen.items():
                out.setdefault(key, set()).update(hs)
        return {key: sorted(hs) for key, hs in sorted(out.items())}


def default_targets(blocks: dict[Key, int], kind: str) -> list[Target]:
    """Each layer of ``kind`` (all its heads), then every head of ``kind`` together."""
    layers = sorted(layer for k, layer in blocks if k == kind)
    return [Target((LayerMean(kind, layer),)) for layer in layers] + [Target((HeadsMean(kind),))]


# ---- comparing maps and outputs ------------------------------------------------------------------

def js_divergence(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Jensen-Shannon divergence in bits (0..1) between distributions along the last axis."""
    p, q = p.clamp_min(0), q.clamp_min(0)
    m = 0.5 * (p + q)
    logm = m.clamp_min(1e-30).log()
    kl_p = (p * (p.clamp_min(1e-30).log() - logm)).sum(-1)
    kl_q = (q * (q.clamp_min(1e-30).log() - logm)).sum(-1)
    return (0.5 * (kl_p + kl_q) / _LN2).clamp_min(0)


@dataclass
class Change:
    """How far one example's output moved: per decision ``tvd`` and ``flips``, and ``ll_change``."""

    tvd: torch.Tensor      # [D] total variation distance of each decision's distribution
    flips: torch.Tensor    # [D] bool: the decision's argmax changed
    ll_change: torch.Tensor  # scalar: new minus original log-likelihood of the output

    @property
    def tvd_max(self) -> torch.Tensor:
        return self.tvd.max()


# ---- a batch of examples with their original attention ---------------------------------------

class Batch:
    """A padded batch of examples, its original maps at ``keys`` and its original output.

    ``rows`` chooses the query rows replaced: ``"all"`` real (unpadded) rows, or ``"decision"``
    the rows the decisions are read from (the ``[CLS]`` row of an encoder's label, each target
    step's cross-attention row; only for the architecture's decision kind).
    """

    def __init__(self, examples: Sequence[Example], keys: Sequence[Key], rows: str = "all") -> None:
        if rows not in ROWS:
            raise InputError(f"rows={rows!r}: choose from {ROWS}")
        self.examples = list(examples)
        first = self.examples[0]
        self.loaded, self.scorer = first.loaded, first.scorer
        self.arch = self.loaded.architecture
        self.keys = sorted(set(keys))
        self.rows = rows
        inputs = scoring_batch(self.examples)
        accepted = set(forward_keys(self.loaded.model))
        self.inputs = {k: v for k, v in inputs.items() if k in accepted}
        if not any(kind == "encoder" for kind, _ in self.keys):
            self._reuse_encoder()
        self.forwards = 0
        self.original, self.allowed = self._capture()
        with torch.no_grad():
            self.base = self.scores(self._plain())
        self.base_probs = [torch.softmax(s.logits.float(), -1) for s in self.base]
        self.base_ll = torch.stack([self.scorer.likelihood(s.logprobs).double() for s in self.base])
        self.selected = {key: self._row_mask(key) for key in self.keys}

    @property
    def size(self) -> int:
        return len(self.examples)

    # -- forwards --

    def _reuse_encoder(self) -> None:
        """Targets without encoder heads: run the encoder once and feed its states to every forward."""
        if self.scorer is not self.arch:  # a label head reads the whole model
            return
        with torch.no_grad():
            states = self.arch.encoder_states(self.loaded.model, self.inputs)
        if states is not None:
            self.inputs = self.arch.with_encoder_states(self.inputs, states)

    def _capture(self) -> tuple[dict[Key, torch.Tensor], dict[Key, torch.Tensor]]:
        """The original probabilities ``[B, H, Q, K]`` (float32) and open keys at every key."""
        probs: dict[Key, torch.Tensor] = {}
        allowed: dict[Key, torch.Tensor] = {}

        def stash(key: Key):
            def fn(p: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
                probs[key], allowed[key] = p.detach().float(), a.detach()
                return p
            return fn

        with torch.no_grad():
            self._call({key: stash(key) for key in self.keys})
        missing = [f"{k}.{layer}" for k, layer in self.keys if (k, layer) not in probs]
        if missing:
            raise UnsupportedModelError(
                f"{self.loaded.name}: the attention of {', '.join(missing)} did not go through transformers' "
                "attention interface in this forward, so it cannot be replaced")
        return probs, allowed

    def _call(self, replace: dict[Key, object]) -> object:
        model = self.loaded.model
        with AttentionCapture(model, kinds=(), structure=self.loaded.structure, replace=replace) as cap:
            out = model(**self.inputs)
        self.forwards += 1
        if cap.calls == 0:
            raise UnsupportedModelError(
                f"{type(model).__name__} does not call transformers' attention interface, so its attention "
                "cannot be replaced; use a model whose attention goes through AttentionInterface")
        return out

    def _plain(self) -> torch.Tensor:
        return self._call({}).logits

    def run(self, maps: dict[Key, torch.Tensor], heads: dict[Key, list[int]]) -> torch.Tensor:
        """Logits of a forward where head ``heads[key][i]``'s selected rows get ``maps[key][:, i]``.

        ``maps[key]`` is ``[B, len(heads[key]), Q, K]``; gradients flow into it.
        """
        replace = {}
        for key, new in maps.items():
            idx = torch.as_tensor(heads[key], dtype=torch.long)
            rows = self.selected[key][:, None, :, None]

            def fn(p: torch.Tensor, a: torch.Tensor, new=new, idx=idx, rows=rows) -> torch.Tensor:
                if p.shape[0] != new.shape[0] or p.shape[2:] != new.shape[2:]:
                    raise InputError(f"replacement maps {tuple(new.shape)} do not fit the batch's {tuple(p.shape)}")
                out = p.clone()
                out[:, idx] = torch.where(rows, new.to(p.dtype), p[:, idx])
                return out
            replace[key] = fn
        return self._call(replace).logits

    # -- rows and maps --

    def _row_mask(self, key: Key) -> torch.Tensor:
        """``bool[B, Q]``: the query rows of ``key`` that are replaced and measured."""
        kind = key[0]
        src = self.inputs.get("attention_mask")
        tgt = self.inputs.get("decoder_attention_mask")
        q_len = self.original[key].shape[2]
        if kind != "encoder" and tgt is not None:
            query = tgt
        elif src is not None:
            query = src
        else:
            query = torch.ones(self.size, q_len, dtype=torch.long)
        if query.shape[1] != q_len:  # no usable mask: every row
            query = torch.ones(self.size, q_len, dtype=torch.long)
        mask = query.bool().clone()
        has_key = self.allowed[key].any(-1).all(1)  # rows that can attend somewhere
        mask &= has_key
        if self.rows == "decision":
            if kind != self.arch.decision_kind():
                raise InputError(f"rows='decision' applies to {self.arch.decision_kind()} attention (the rows "
                                 f"decisions are read from); {kind} attention has no decision rows")
            keep = torch.zeros_like(mask)
            for b, ex in enumerate(self.examples):
                n_q = int(mask[b].sum())
                for r in self.arch.decision_rows(n_q, len(ex.decisions)):
                    if 0 <= r < mask.shape[1]:
                        keep[b, r] = True
            mask &= keep
        return mask

    def originals(self, key: Key, heads: list[int]) -> torch.Tensor:
        """``[B, len(heads), Q, K]`` original probabilities."""
        return self.original[key][:, heads]

    def open_keys(self, key: Key, heads: list[int]) -> torch.Tensor:
        """``bool[B, len(heads), Q, K]``."""
        return self.allowed[key][:, heads]

    def js(self, maps: dict[Key, torch.Tensor], heads: dict[Key, list[int]]) -> torch.Tensor:
        """``[B]``: mean JS divergence (bits) of the selected rows of the selected heads from the originals."""
        total = torch.zeros(self.size, dtype=torch.float32)
        count = torch.zeros(self.size, dtype=torch.float32)
        for key, new in maps.items():
            rows = self.selected[key][:, None, :].expand(-1, len(heads[key]), -1).float()
            d = js_divergence(new.float(), self.originals(key, heads[key]))
            total = total + (d * rows).sum((1, 2))
            count = count + rows.sum((1, 2))
        return total / count.clamp_min(1)

    def rows_are_decisions(self, keys: Sequence[Key]) -> bool:
        """Whether query row ``t`` of every key is decision ``t`` (an encoder-decoder's cross or decoder
        attention, scored teacher-forced): then a map can be assembled row by row (each row checked
        against its own step), and the assembly re-checked as a whole."""
        if self.scorer is not self.arch or not self.arch.has_target or not keys:
            return False
        if any(kind == "encoder" for kind, _ in keys):
            return False
        return len({self.original[k].shape[2] for k in keys}) == 1

    def js_rows(self, maps: dict[Key, torch.Tensor], heads: dict[Key, list[int]]) -> torch.Tensor:
        """``[B, Q]``: JS divergence (bits) of each query row, averaged over the replaced heads and keys."""
        total, count = None, 0
        for key, new in maps.items():
            d = js_divergence(new.float(), self.originals(key, heads[key])).sum(1)
            total = d if total is None else total + d
            count += len(heads[key])
        return total / max(count, 1)

    # -- outputs --

    def scores(self, logits: torch.Tensor, repeat: int = 1) -> list[Scores]:
        return read_scores(self.examples * repeat, logits)

    def changes(self, logits: torch.Tensor) -> list[Change]:
        """How far each example's output moved from the original (differentiable in ``logits``)."""
        out = []
        for b, s in enumerate(self.scores(logits)):
            p = torch.softmax(s.logits.float(), -1)
            p0 = self.base_probs[b]
            tvd = 0.5 * (p - p0).abs().sum(-1)
            flips = p.argmax(-1) != p0.argmax(-1)
            ll = self.scorer.likelihood(s.logprobs).double() - self.base_ll[b]
            out.append(Change(tvd, flips, ll))
        return out


# ---- the maps of the non-adversarial interventions ------------------------------------------------

def uniform_maps(batch: Batch, heads: dict[Key, list[int]]) -> dict[Key, torch.Tensor]:
    """Uniform over each row's open keys."""
    out = {}
    for key, hs in heads.items():
        a = batch.open_keys(key, hs).float()
        out[key] = a / a.sum(-1, keepdim=True).clamp_min(1)
    return out


def permuted_maps(batch: Batch, heads: dict[Key, list[int]], generator: torch.Generator) -> dict[Key, torch.Tensor]:
    """Each row's own weights, randomly permuted over its open keys (independently per head and row)."""
    out = {}
    for key, hs in heads.items():
        p = batch.originals(key, hs)
        a = batch.open_keys(key, hs)
        k = p.shape[-1]
        big = torch.tensor(float("inf"))
        position = torch.arange(k, dtype=torch.float32).expand(p.shape)
        order = torch.where(a, position, big).argsort(-1)                      # open keys first, in order
        shuffled = torch.where(a, torch.rand(p.shape, generator=generator), big).argsort(-1)  # open keys, shuffled
        new = torch.zeros_like(p).scatter(-1, order, p.gather(-1, shuffled))
        out[key] = new.masked_fill(~a, 0.0)
    return out


def given_maps(batch: Batch, heads: dict[Key, list[int]], given: torch.Tensor) -> dict[Key, torch.Tensor]:
    """A user's map ``[q, k]`` (every head) or ``[heads, q, k]`` over one example's real rows and keys."""
    if batch.size != 1:
        raise InputError("a given map describes one input: pass one text (or one Inspection)")
    out = {}
    for key, hs in heads.items():
        sel = batch.selected[key][0]
        a = batch.open_keys(key, hs)[0]
        q_idx = real_rows(batch, key, 0)
        k_idx = a[0].any(0).nonzero().flatten()
        m = torch.as_tensor(given, dtype=torch.float32)
        if m.ndim == 2:
            m = m[None].expand(len(hs), -1, -1)
        want = (len(hs), len(q_idx), len(k_idx))
        if m.ndim != 3 or tuple(m.shape) != want:
            raise InputError(f"the given map has shape {tuple(torch.as_tensor(given).shape)}; {key[0]}.{key[1]} "
                             f"needs [{want[1]}, {want[2]}] (query x key tokens) or [{want[0]}, {want[1]}, {want[2]}] "
                             "(heads x query x key)")
        if not torch.isfinite(m).all() or (m < 0).any():
            raise InputError("the given map has negative or non-finite weights; give probabilities")
        full = batch.originals(key, hs)[0].clone()
        full[:, q_idx[:, None], k_idx[None, :]] = m
        if (full * (~a).float()).abs().max() > 1e-6:
            raise InputError(f"the given map puts weight on keys {key[0]} attention may not see (future tokens "
                             "or padding); give 0 there")
        rows = full[:, sel]
        if (rows.sum(-1) - 1).abs().max() > 1e-3:
            raise InputError("each row of the given map must sum to 1 (a distribution over the keys)")
        out[key] = full[None]
    return out


def real_rows(batch: Batch, key: Key, b: int) -> torch.Tensor:
    """Example ``b``'s real (unpadded) query rows at ``key``, whatever ``rows`` selects."""
    kind = key[0]
    tgt = batch.inputs.get("decoder_attention_mask")
    src = batch.inputs.get("attention_mask")
    mask = tgt if kind != "encoder" and tgt is not None else src
    if mask is None or mask.shape[1] != batch.original[key].shape[2]:
        return torch.arange(batch.original[key].shape[2])
    return mask[b].bool().nonzero().flatten()
