"""Shared machinery of the faithfulness measures: encoded examples, gated forwards, scores.

An :class:`Example` is one input (and, with a decoder side, its target) as token ids, taken from
an :class:`~headscope.inspection.Inspection` so that every measure scores exactly the tokens the
maps label. Its output makes ``D`` *decisions*, each scored by its log-probability:

* a classification head (any architecture): one decision, the predicted label;
* an encoder-decoder's language-model head: one per target token, ``log p(y_t | y_<t, x)``
  under teacher forcing;
* a decoder-only language model: one, the predicted next token.

How a language-model output is read differs by architecture and lives in the architecture
strategy (:mod:`headscope.models.architectures`, its "faithfulness" methods); a label head is read
the same way everywhere (:class:`LabelOutput`). :func:`score` runs a padded batch of (possibly
edited, possibly head-gated) copies of examples and returns their :class:`Scores`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..capture import AttentionCapture
from ..errors import InputError, UnsupportedModelError
from ..inspection import Inspection
from ..models.architectures import Architecture, has_label_head
from ..models.loading import LoadedModel, load
from ..run import forward_keys, inspect, special_mask

Gates = dict[tuple[str, int], torch.Tensor]


class LabelOutput:
    """How a classification head's output is scored, whatever the architecture: one decision, the label.

    It answers the same scoring methods as the architecture strategies do for language-model outputs.
    """

    def scoring_inputs(self, model: Any, source: torch.Tensor, source_mask: torch.Tensor,
                       target: torch.Tensor | None, target_mask: torch.Tensor | None,
                       pad_id: int) -> dict[str, torch.Tensor]:
        """The source tokens alone."""
        return {"input_ids": source, "attention_mask": source_mask}

    def decision_logits(self, logits: torch.Tensor, n_source: int, n_target: int | None) -> torch.Tensor:
        """``[1, classes]``."""
        return logits[None]

    def decision(self, decision_logits: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
        """The predicted class."""
        return decision_logits.argmax(-1)

    def decision_logprobs(self, logits: torch.Tensor, source: torch.Tensor, target: torch.Tensor | None,
                          decisions: torch.Tensor) -> torch.Tensor:
        """``[1]``: ``log p(decided class)``."""
        return torch.log_softmax(logits.float(), -1)[decisions]

    def ablation_effects(self, base: torch.Tensor, ablated: torch.Tensor, base_logits: torch.Tensor,
                         ablated_logits: torch.Tensor) -> dict[str, float]:
        """``prob_drop`` of the originally predicted class (primary), ``kl`` = KL(original || ablated)
        over the classes, ``logprob_drop`` of the decided class."""
        p = torch.log_softmax(base_logits[0].float(), -1).exp().double()
        q = torch.log_softmax(ablated_logits[0].float(), -1).exp().double()
        c = int(p.argmax())
        kl = float((p * (p.clamp_min(1e-300).log() - q.clamp_min(1e-300).log())).sum())
        return {"prob_drop": float(p[c] - q[c]), "kl": kl, "logprob_drop": float(base[0] - ablated[0])}

    def likelihood(self, logprobs: torch.Tensor) -> torch.Tensor:
        """``log p(decided class)``."""
        return logprobs.sum()

    def encoder_states(self, model: Any, inputs: dict[str, torch.Tensor]) -> torch.Tensor | None:
        """A label head reads the whole model: nothing to reuse."""
        return None

    def with_encoder_states(self, inputs: dict[str, torch.Tensor], states: torch.Tensor) -> dict[str, torch.Tensor]:
        """Never called (:meth:`encoder_states` is ``None``)."""
        raise UnsupportedModelError("a classification head's output cannot reuse encoder states")


LABEL = LabelOutput()
Scoring = Architecture | LabelOutput


@dataclass
class Scores:
    """One scored forward of one example: ``logprobs`` ``[N]`` (the last ``D`` those of the decisions)
    and the decisions' ``logits`` ``[D, classes or vocabulary]``."""

    logprobs: torch.Tensor
    logits: torch.Tensor


@dataclass
class Example:
    """One input as ids, with the decisions the model made on it."""

    inspection: Inspection
    scorer: Scoring
    source_ids: list[int]
    special: list[bool]
    target_ids: list[int] | None = None
    decisions: torch.Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.long))
    decision_names: list[str] = field(default_factory=list)

    @property
    def loaded(self) -> LoadedModel:
        """The model the example runs on."""
        assert self.inspection.loaded is not None  # checked by from_inspection
        return self.inspection.loaded

    @property
    def architecture(self) -> Architecture:
        return self.loaded.architecture

    @property
    def source_tokens(self) -> list[str]:
        return self.inspection.source_tokens

    @property
    def target_tokens(self) -> list[str] | None:
        return self.inspection.target_tokens

    @property
    def content(self) -> np.ndarray:
        """Boolean mask of the source positions that are not special tokens."""
        return ~np.asarray(self.special, dtype=bool)

    @property
    def explained(self) -> list[int]:
        """The decisions worth explaining: all but special tokens (an output's final ``</s>``)."""
        special = set(getattr(self.loaded.tokenizer, "all_special_tokens", []) or [])
        return [d for d, name in enumerate(self.decision_names) if name not in special]


def as_examples(source: Any, text: Any = None, target: Any = None) -> list[Example]:
    """Examples from an Inspection, a list of them, or a model (name, pair, LoadedModel) and text(s).

    >>> as_examples("headscope/sentiment", "A fine film.")[0].decision_names    # doctest: +SKIP
    ['positive']
    """
    if isinstance(source, Example):
        return [source]
    if isinstance(source, (list, tuple)) and source and all(isinstance(s, Example) for s in source):
        return list(source)
    if isinstance(source, Inspection):
        items = [source]
    elif isinstance(source, (list, tuple)) and source and all(isinstance(s, Inspection) for s in source):
        items = list(source)
    else:
        if text is None:
            raise InputError("no text given: pass an Inspection, or a model and text=... "
                             "(e.g. head_ablation('headscope/en-fr', text='A man in a red shirt.'))")
        found = inspect(load(source), text, target=target)
        items = found if isinstance(found, list) else [found]
    return [from_inspection(insp) for insp in items]


def from_inspection(insp: Inspection) -> Example:
    """The :class:`Example` an Inspection describes (token ids from its own tokens)."""
    loaded = insp.loaded
    if loaded is None:
        raise InputError("this Inspection has no model attached (it was read with Inspection.load); "
                         "run headscope.inspect(model, text) again to get one that can be re-run")
    if insp.patch_grid is not None:
        raise InputError(f"{insp.model_name} read an image: these tests re-run the model on token ids; for images "
                         "use headscope.vision.image_faithfulness (deletion / insertion, leave-one-patch-out, head "
                         "ablation)")
    tok = loaded.tokenizer
    src = [int(i) for i in tok.convert_tokens_to_ids(insp.source_tokens)]
    tgt = None if insp.target_tokens is None else [int(i) for i in tok.convert_tokens_to_ids(insp.target_tokens)]
    ex = Example(insp, loaded.architecture, src, special_mask(tok, src), tgt)
    with torch.no_grad():
        inputs = scoring_batch([ex])
        logits = getattr(run_gated(loaded, inputs), "logits", None)
    if logits is None:
        raise UnsupportedModelError(f"{type(loaded.model).__name__} has no output head whose decision could be "
                                    "scored; load the model with its classification or language-model head")
    label = has_label_head(logits)
    ex.scorer = LABEL if label else loaded.architecture
    target = None if tgt is None else torch.tensor(tgt)
    ex.decisions = ex.scorer.decision(ex.scorer.decision_logits(logits[0], len(src), None if tgt is None else len(tgt)),
                                      target)
    ids = ex.decisions.tolist()
    names = getattr(loaded.model.config, "id2label", None) or {}
    ex.decision_names = [names.get(i, str(i)) for i in ids] if label else tok.convert_ids_to_tokens(ids)
    return ex


def pad_id(loaded: LoadedModel) -> int:
    """The id padding a batch: the tokenizer's pad token, else the model's, else end-of-sequence."""
    tok = loaded.tokenizer
    for value in (tok.pad_token_id, getattr(loaded.model.config, "pad_token_id", None), tok.eos_token_id):
        if value is not None:
            return int(value)
    return 0


def mask_id(loaded: LoadedModel) -> int:
    """The id used to blank a token: the mask token, else unk, else pad."""
    tok = loaded.tokenizer
    for value in (getattr(tok, "mask_token_id", None), tok.unk_token_id):
        if value is not None:
            return int(value)
    return pad_id(loaded)


def _pad(rows: Sequence[Sequence[int]], value: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), value, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(list(r), dtype=torch.long)
        mask[i, : len(r)] = 1
    return ids, mask


def _sources(examples: Sequence[Example], sources: Sequence[Sequence[int] | None] | None) -> list[Sequence[int]]:
    return [ex.source_ids if sources is None or sources[i] is None else sources[i] for i, ex in enumerate(examples)]


def scoring_batch(examples: Sequence[Example],
                  sources: Sequence[Sequence[int] | None] | None = None) -> dict[str, torch.Tensor]:
    """Right-padded model inputs for ``examples``; ``sources[i]`` replaces example i's source ids."""
    loaded = examples[0].loaded
    pid = pad_id(loaded)
    srcs = _sources(examples, sources)
    if any(len(s) == 0 for s in srcs):
        raise InputError("an edited input has no tokens left; keep at least one token")
    ids, mask = _pad(srcs, pid)
    target = target_mask = None
    if examples[0].target_ids is not None:
        target, target_mask = _pad([ex.target_ids or [] for ex in examples], pid)
    return examples[0].scorer.scoring_inputs(loaded.model, ids, mask, target, target_mask, pid)


def run_gated(loaded: LoadedModel, inputs: dict[str, torch.Tensor], gates: Gates | None = None) -> Any:
    """One forward of ``inputs`` through the model, heads scaled by ``gates`` when given."""
    model = loaded.model
    accepted = forward_keys(model)
    call = {k: v for k, v in inputs.items() if k in accepted}
    if not gates:
        return model(**call)
    with AttentionCapture(model, kinds=(), head_gates=gates, structure=loaded.structure) as cap:
        out = model(**call)
    if cap.calls == 0:
        raise UnsupportedModelError(
            f"{type(model).__name__} does not call transformers' attention interface, so its heads cannot be "
            "gated; use a model whose attention goes through AttentionInterface (BERT, BART, Marian, T5, GPT-2, ...)"
        )
    return out


def read_scores(examples: Sequence[Example], logits: torch.Tensor,
                sources: Sequence[Sequence[int] | None] | None = None) -> list[Scores]:
    """The :class:`Scores` of each row of a batch's ``logits`` (row ``b`` is ``examples[b]``)."""
    out = []
    for b, (ex, src) in enumerate(zip(examples, _sources(examples, sources))):
        source = torch.as_tensor(list(src), dtype=torch.long)
        target = None if ex.target_ids is None else torch.tensor(ex.target_ids)
        n_target = None if target is None else len(target)
        out.append(Scores(ex.scorer.decision_logprobs(logits[b], source, target, ex.decisions),
                          ex.scorer.decision_logits(logits[b], len(source), n_target)))
    return out


def score(examples: Sequence[Example], sources: Sequence[Sequence[int] | None] | None = None,
          gates: Gates | None = None) -> list[Scores]:
    """Scores of each example's own decisions for one padded batch (see the module docstring)."""
    inputs = scoring_batch(examples, sources)
    out = run_gated(examples[0].loaded, inputs, gates)
    return read_scores(examples, out.logits, sources)


def chunked(n: int, size: int) -> list[slice]:
    """Consecutive slices of at most ``size`` covering ``range(n)``."""
    if size < 1:
        raise InputError(f"batch_size must be a positive integer, got {size}")
    return [slice(i, min(i + size, n)) for i in range(0, n, size)]


def embedding_module(loaded: LoadedModel) -> torch.nn.Module:
    """The embedding table of the source tokens."""
    emb = loaded.architecture.source_embeddings(loaded.model)
    if emb is None:
        raise UnsupportedModelError(f"{type(loaded.model).__name__} exposes no input embeddings (get_input_embeddings)")
    return emb


class EmbeddingOverride:
    """Context manager: the first call of the input embedding in each forward returns ``value``.

    The first call is the encoder's (or the only) lookup; an encoder-decoder sharing the table
    with its decoder keeps the decoder's lookup untouched. ``value`` is set before each forward.
    """

    def __init__(self, loaded: LoadedModel) -> None:
        self.module = embedding_module(loaded)
        self.value: torch.Tensor | None = None
        self._calls = 0
        self._handle: Any = None

    def reset(self, value: torch.Tensor | None) -> None:
        self.value, self._calls = value, 0

    def _hook(self, module: torch.nn.Module, args: Any, output: torch.Tensor) -> torch.Tensor | None:
        self._calls += 1
        if self._calls != 1 or self.value is None:
            return None
        if self.value.shape != output.shape:
            raise InputError(f"embedding override of shape {tuple(self.value.shape)} for a lookup of {tuple(output.shape)}")
        return self.value.to(output.dtype)

    def __enter__(self) -> "EmbeddingOverride":
        self._handle = self.module.register_forward_hook(self._hook)
        return self

    def __exit__(self, *exc: object) -> None:
        self._handle.remove()


def input_embeddings(loaded: LoadedModel, ids: torch.Tensor) -> torch.Tensor:
    """The raw embedding lookup of ``ids`` (before any scaling the model applies after it)."""
    with torch.no_grad():
        return embedding_module(loaded)(ids).detach()
