"""Shared machinery of the faithfulness measures: encoded examples, gated forwards, scores.

An :class:`Example` is one input (and, for encoder-decoders, its forced target) as token ids,
taken from an :class:`~headscope.inspection.Inspection` so that every measure scores exactly
the tokens the maps label. :func:`score` runs a padded batch of (possibly edited, possibly
head-gated) copies of examples and returns the log-probability of the model's own decision:

* classifier: ``log p(predicted class)``, one number per row;
* encoder-decoder: ``log p(y_t | y_<t, x)`` for each target token (teacher forcing), ``[T]`` per row;
* decoder-only: ``log p(x_t | x_<t)`` for each token after the first and, last, the
  log-probability of the predicted next token, ``[S]`` per row.
"""

from __future__ import annotations

import inspect as _pyinspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..capture import AttentionCapture
from ..errors import InputError, UnsupportedModelError
from ..models.architectures import decoder_inputs
from ..models.loading import LoadedModel, load


@dataclass
class Example:
    """One input as ids, with what the model decided on it."""

    loaded: LoadedModel
    source_ids: list[int]
    source_tokens: list[str]
    special: list[bool]
    target_ids: list[int] | None = None
    target_tokens: list[str] | None = None
    decision: int | None = None  # classifier: predicted class; decoder: predicted next token id
    attentions: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def family(self) -> str:
        return self.loaded.family

    @property
    def content(self) -> np.ndarray:
        """Boolean mask of the source positions that are not special tokens."""
        return ~np.asarray(self.special, dtype=bool)


def as_examples(source: Any, text: Any = None, target: Any = None) -> list[Example]:
    """Examples from an Inspection, a list of them, or a model (name, pair, LoadedModel) and text(s)."""
    from ..inspection import Inspection
    from ..run import inspect

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
        loaded = load(source)
        items = inspect(loaded, text, target=target)
        items = items if isinstance(items, list) else [items]
    out = []
    for insp in items:
        if insp.loaded is None:
            raise InputError("this Inspection has no model attached (it was read with Inspection.load); "
                             "run headscope.inspect(model, text) again to get one that can be re-run")
        out.append(from_inspection(insp))
    return out


def from_inspection(insp: Any) -> Example:
    """The :class:`Example` an Inspection describes (token ids from its own tokens)."""
    loaded = insp.loaded
    tok = loaded.tokenizer
    special_ids = set(getattr(tok, "all_special_ids", []) or [])
    src = [int(i) for i in tok.convert_tokens_to_ids(insp.source_tokens)]
    ex = Example(loaded, src, list(insp.source_tokens), [i in special_ids for i in src],
                 attentions=dict(insp.attentions))
    if loaded.family == "encoder-decoder":
        if not insp.target_tokens:
            raise InputError("the Inspection has no target tokens; inspect the encoder-decoder with or without target=")
        ex.target_ids = [int(i) for i in tok.convert_tokens_to_ids(insp.target_tokens)]
        ex.target_tokens = list(insp.target_tokens)
    with torch.no_grad():
        base = score(loaded, [ex], [None])[0]
    if loaded.family == "classifier":
        ex.decision = int(base["logits"].argmax())
    elif loaded.family == "decoder":
        ex.decision = int(base["logits"][-1].argmax())
    return ex


def pad_id(loaded: LoadedModel) -> int:
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


def model_inputs(loaded: LoadedModel, examples: Sequence[Example],
                 sources: Sequence[Sequence[int] | None] | None = None) -> dict[str, torch.Tensor]:
    """Padded (right) model inputs for ``examples``; ``sources[i]`` replaces example i's source ids."""
    model = loaded.model
    pid = pad_id(loaded)
    srcs = [ex.source_ids if sources is None or sources[i] is None else sources[i] for i, ex in enumerate(examples)]
    if any(len(s) == 0 for s in srcs):
        raise InputError("an edited input has no tokens left; keep at least one token")
    ids, mask = _pad(srcs, pid)
    inputs: dict[str, torch.Tensor] = {"input_ids": ids, "attention_mask": mask}
    if loaded.family == "encoder-decoder":
        labels, tmask = _pad([ex.target_ids for ex in examples], pid)
        inputs["decoder_input_ids"] = decoder_inputs(model, labels, pid)
        inputs["decoder_attention_mask"] = tmask
        inputs["labels_"] = labels
    return inputs


def forward_keys(model: Any) -> set[str]:
    return set(_pyinspect.signature(model.forward).parameters)


def run_gated(loaded: LoadedModel, inputs: dict[str, torch.Tensor],
              gates: dict[tuple[str, int], torch.Tensor] | None = None) -> Any:
    """One forward of ``inputs`` through the model, heads scaled by ``gates`` when given."""
    model = loaded.model
    accepted = forward_keys(model)
    call = {k: v for k, v in inputs.items() if k in accepted}
    if not gates:
        return model(**call)
    with AttentionCapture(model, kinds=(), head_gates=gates) as cap:
        out = model(**call)
    if cap.calls == 0:
        raise UnsupportedModelError(
            f"{type(model).__name__} does not call transformers' attention interface, so its heads cannot be "
            "gated; use a model whose attention goes through AttentionInterface (BERT, BART, Marian, T5, GPT-2, ...)"
        )
    return out


def token_logprobs(loaded: LoadedModel, logits: torch.Tensor, inputs: dict[str, torch.Tensor],
                   examples: Sequence[Example]) -> list[dict[str, torch.Tensor]]:
    """Per row: ``{"logits", "logprobs"}`` (see module docstring for what ``logprobs`` holds)."""
    rows = []
    logp = torch.log_softmax(logits.float(), dim=-1)
    for b, ex in enumerate(examples):
        if loaded.family == "classifier":
            decision = ex.decision if ex.decision is not None else int(logits[b].argmax())
            rows.append({"logits": logits[b], "logprobs": logp[b, decision].reshape(1), "probs": logp[b].exp()})
        elif loaded.family == "encoder-decoder":
            n = len(ex.target_ids)
            labels = inputs["labels_"][b, :n]
            rows.append({"logits": logits[b, :n], "logprobs": logp[b, :n].gather(-1, labels[:, None])[:, 0]})
        else:
            n = int(inputs["attention_mask"][b].sum())
            ids = inputs["input_ids"][b, :n]
            seq = logp[b, : n - 1].gather(-1, ids[1:, None])[:, 0]
            decision = ex.decision if ex.decision is not None else int(logits[b, n - 1].argmax())
            nxt = logp[b, n - 1, decision].reshape(1)
            rows.append({"logits": logits[b, :n], "logprobs": torch.cat([seq, nxt])})
    return rows


def score(loaded: LoadedModel, examples: Sequence[Example], sources: Sequence[Sequence[int] | None] | None,
          gates: dict[tuple[str, int], torch.Tensor] | None = None) -> list[dict[str, torch.Tensor]]:
    """Log-probabilities of each example's decision for one padded batch (see module docstring)."""
    inputs = model_inputs(loaded, examples, sources)
    out = run_gated(loaded, inputs, gates)
    return token_logprobs(loaded, out.logits, inputs, examples)


def chunked(n: int, size: int) -> list[slice]:
    if size < 1:
        raise InputError(f"batch_size must be a positive integer, got {size}")
    return [slice(i, min(i + size, n)) for i in range(0, n, size)]


def embedding_module(loaded: LoadedModel) -> torch.nn.Module:
    model = loaded.model
    owner = model.get_encoder() if loaded.family == "encoder-decoder" and hasattr(model, "get_encoder") else model
    emb = owner.get_input_embeddings()
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
        self.seen: torch.Tensor | None = None
        self._calls = 0
        self._handle: Any = None

    def reset(self, value: torch.Tensor | None) -> None:
        self.value, self._calls, self.seen = value, 0, None

    def _hook(self, module: torch.nn.Module, args: Any, output: torch.Tensor) -> torch.Tensor | None:
        self._calls += 1
        if self._calls != 1:
            return None
        self.seen = output
        if self.value is None:
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


Predict = Callable[[np.ndarray], np.ndarray]
