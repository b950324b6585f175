"""``headscope.inspect``: run a model on text and keep every attention map with its labels."""

from __future__ import annotations

import inspect as _pyinspect
import json
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from .capture import KINDS, Site, run_capture, split_examples
from .errors import InputError
from .models.loading import DEFAULT_MODEL, LoadedModel, load

FORMAT_VERSION = 1


@dataclass(eq=False)
class Inspection:
    """Everything headscope captured for one input.

    Attributes:
        model_name: what the model was loaded from.
        family: ``"encoder-decoder"``, ``"classifier"`` or ``"decoder"``.
        source_text: the input text (words joined by spaces when given pre-split).
        source_tokens: input subword tokens, special tokens included.
        source_word_ids: for each source token, the index of its word (``None`` for special tokens).
        attentions: ``{kind: tensor[layers, heads, query, key]}``; kinds ``encoder``, ``decoder``,
            ``cross``. For encoder-decoders, query row ``t`` of ``decoder``/``cross`` is the decoder
            step whose *output* is ``target_tokens[t]`` (its input is ``target_tokens[t-1]``, or the
            start token for ``t = 0``).
        layers: ``{kind: [layer indices]}`` when only some layers were kept.
        target_text: the output (generated, or forced with ``target=``); ``None`` for classifiers.
        target_tokens / target_word_ids: as for the source; ``None`` for classifiers.
        prediction: encoder-decoder: ``{"text": ...}``; classifier: ``{"label", "probabilities"}``;
            decoder-only: ``{"next_token", "probability"}``.
        forced: whether the target was given (teacher forcing) rather than generated.
    """

    model_name: str
    family: str
    source_text: str
    source_tokens: list[str]
    source_word_ids: list[int | None]
    attentions: dict[str, torch.Tensor]
    layers: dict[str, list[int]] = field(default_factory=dict)
    target_text: str | None = None
    target_tokens: list[str] | None = None
    target_word_ids: list[int | None] | None = None
    prediction: dict[str, Any] = field(default_factory=dict)
    forced: bool = False
    loaded: LoadedModel | None = field(default=None, repr=False, compare=False)

    # ---- access -------------------------------------------------------------------------
    @property
    def kinds(self) -> list[str]:
        """The captured kinds, in the order encoder, decoder, cross."""
        return [k for k in KINDS if k in self.attentions]

    def shape(self, kind: str) -> tuple[int, int]:
        """``(layers, heads)`` captured for ``kind``."""
        att = self._kind(kind)
        return int(att.shape[0]), int(att.shape[1])

    def map(self, kind: str, layer: int, head: int | None = None) -> torch.Tensor:
        """The ``[query, key]`` map of one head (or ``[heads, query, key]`` of a layer).

        ``layer`` is the model's layer index, also when only some layers were kept.
        """
        att = self._kind(kind)
        index = self.layers.get(kind, list(range(att.shape[0])))
        if layer not in index:
            raise InputError(f"layer {layer} of {kind!r} was not captured; captured layers: {index}")
        layer_maps = att[index.index(layer)]
        if head is None:
            return layer_maps
        if not 0 <= head < layer_maps.shape[0]:
            raise InputError(f"head {head} out of range: {kind!r} has {layer_maps.shape[0]} heads (0..{layer_maps.shape[0] - 1})")
        return layer_maps[head]

    def sites(self, kind: str | None = None) -> list[Site]:
        """Every captured head as a :class:`~headscope.capture.Site`, e.g. ``Site("cross", 2, 3)``."""
        out = []
        for k in [kind] if kind else self.kinds:
            n_layers, n_heads = self.shape(k)
            index = self.layers.get(k, list(range(n_layers)))
            out += [Site(k, layer, head) for layer in index for head in range(n_heads)]
        return out

    def query_tokens(self, kind: str) -> list[str]:
        """Tokens labelling the rows of ``kind`` maps."""
        return self.source_tokens if kind == "encoder" or self.target_tokens is None else self.target_tokens

    def key_tokens(self, kind: str) -> list[str]:
        """Tokens labelling the columns of ``kind`` maps."""
        return self.target_tokens if kind == "decoder" and self.target_tokens is not None else self.source_tokens

    def align(self, layer: int | None = None, head: int | None = None, *, convention: str | None = None,
              extraction: Any = "argmax") -> tuple[torch.Tensor, set[tuple[int, int]]]:
        """Word map ``[target words, source words]`` and word links ``{(source, target)}`` of this forced
        translation from one cross-attention head, a layer's head mean or (default) all heads' mean.
        ``convention`` defaults to :data:`headscope.align.DEFAULT_CONVENTION`.
        See :func:`headscope.align.evaluate.align_inspection`."""
        from .align.evaluate import align_inspection
        from .align.words import DEFAULT_CONVENTION

        return align_inspection(self, layer=layer, head=head, convention=convention or DEFAULT_CONVENTION,
                                extraction=extraction)

    def _kind(self, kind: str) -> torch.Tensor:
        if kind not in self.attentions:
            raise InputError(f"no {kind!r} attention in this inspection; captured kinds: {self.kinds}")
        return self.attentions[kind]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Inspection):
            return NotImplemented
        mine, theirs = self._metadata(), other._metadata()
        return mine == theirs and self.kinds == other.kinds and all(
            torch.equal(self.attentions[k], other.attentions[k]) for k in self.kinds
        )

    # ---- aggregates (headscope.aggregate) and fragmentation (headscope.fragment) --------------
    def rollout(self, kind: str | None = None, **kw: Any) -> Any:
        """Attention rollout ``[query, key]`` of ``kind`` (Abnar & Zuidema 2020).

        ``kind="cross"`` (the default for encoder-decoders) gives the target-over-source rollout
        through encoder, decoder and cross attention (Chefer et al. 2021); ``"encoder"`` /
        ``"decoder"`` roll out that self-attention stack alone. Options as in
        :func:`headscope.aggregate.rollout`.
        """
        from .aggregate import encoder_decoder_rollout, rollout

        kind = kind or ("cross" if "cross" in self.attentions else self.kinds[0])
        if kind == "cross":
            return encoder_decoder_rollout(self._kind("encoder"), self._kind("decoder"), self._kind("cross"), **kw)
        return rollout(self._kind(kind), **kw)

    def flow(self, kind: str | None = None, **kw: Any) -> Any:
        """Attention flow ``[query, key]`` of a self-attention ``kind`` (Abnar & Zuidema 2020);
        options (``rows=``, ``residual=``...) as in :func:`headscope.aggregate.flow`."""
        from .aggregate import flow

        kind = kind or self.kinds[0]
        if kind == "cross":
            raise InputError("attention flow is defined on a self-attention stack; pass kind='encoder' or "
                             "'decoder', or use rollout(kind='cross') for target-over-source relevance")
        return flow(self._kind(kind), **kw)

    def fragmentation(self, **kw: Any) -> Any:
        """How the single-map reading breaks apart: :func:`headscope.fragment.fragmentation`."""
        from .fragment import fragmentation

        return fragmentation(self, **kw)

    # ---- faithfulness (headscope.faithful) -----------------------------------------------
    def head_ablation(self, **kw: Any) -> Any:
        """Effect of ablating each head on this input: ``headscope.faithful.head_ablation(self, **kw)``."""
        from .faithful import head_ablation

        self._needs_model("head_ablation")
        return head_ablation(self, **kw)

    def token_importance(self, method: str = "attention", **kw: Any) -> Any:
        """Importance of each source token: ``headscope.faithful.token_importance(self, method, **kw)``."""
        from .faithful import token_importance

        self._needs_model("token_importance")
        return token_importance(self, method, **kw)

    def _needs_model(self, what: str) -> None:
        if self.loaded is None:
            raise InputError(f"{what} re-runs the model, but this Inspection has none attached (it was read with "
                             "Inspection.load); run headscope.inspect(model, text) again")

    # ---- display ------------------------------------------------------------------------
    def summary(self) -> str:
        """A readable multi-line summary: input, output, captured maps."""
        lines = [f"headscope inspection of {self.model_name} ({self.family})"]
        lines.append(f"  input : {self.source_text}")
        if self.family == "encoder-decoder":
            lines.append(f"  output: {self.target_text}" + ("  (forced)" if self.forced else "  (generated)"))
        elif self.family == "classifier" and "label" in self.prediction:
            probs = ", ".join(f"{k} {v:.3f}" for k, v in self.prediction["probabilities"].items())
            lines.append(f"  prediction: {self.prediction['label']}  ({probs})")
        elif "next_token" in self.prediction:
            lines.append(f"  next token: {self.prediction['next_token']!r} (p={self.prediction['probability']:.3f})")
        lines.append(f"  tokens: {len(self.source_tokens)} source" +
                     (f", {len(self.target_tokens)} target" if self.target_tokens is not None else ""))
        for kind in self.kinds:
            n_layers, n_heads = self.shape(kind)
            q, k = self.attentions[kind].shape[-2:]
            lines.append(f"  {kind:<7} attention: {n_layers} layers x {n_heads} heads, maps {q}x{k}")
        if "cross" in self.attentions and self.target_tokens is not None:
            mean = self.attentions["cross"].float().mean(dim=(0, 1))
            pairs = [
                f"{tgt}->{self.source_tokens[int(mean[t].argmax())]}"
                for t, tgt in enumerate(self.target_tokens)
            ]
            lines.append("  cross-attention argmax, all heads averaged (a reading to be scored, not a fact):")
            lines.append("    " + "  ".join(pairs))
        return "\n".join(lines)

    def to_bertviz(self, view: str = "head", path: str | os.PathLike | None = None, layers: Sequence[int] | None = None,
                   heads: Sequence[int] | None = None, **kw: Any) -> str:
        """bertviz head/model view as a page that opens offline; see :func:`headscope.viz.to_bertviz`."""
        from .viz import to_bertviz

        return to_bertviz(self, view, path=path, layers=layers, heads=heads, **kw)

    def report(self, path: str | os.PathLike, **kw: Any) -> Path:
        """One self-contained HTML report page; see :func:`headscope.viz.report`."""
        from .viz import report

        return report(self, path, **kw)

    def __repr__(self) -> str:
        shapes = ", ".join(f"{k}={tuple(v.shape)}" for k, v in self.attentions.items())
        out = f", target={self.target_text!r}" if self.target_text is not None else ""
        return f"Inspection(model={self.model_name!r}, source={self.source_text!r}{out}, {shapes})"

    # ---- persistence --------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Write ``attentions.safetensors`` and ``inspection.json`` into folder ``path``."""
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in self.attentions.items()}, str(folder / "attentions.safetensors"))
        meta = {"format": FORMAT_VERSION, **self._metadata()}
        (folder / "inspection.json").write_text(json.dumps(meta, ensure_ascii=False, indent=1), encoding="utf-8")
        return folder

    def _metadata(self) -> dict[str, Any]:
        return {
            "model_name": self.model_name,
            "family": self.family,
            "source_text": self.source_text,
            "source_tokens": self.source_tokens,
            "source_word_ids": self.source_word_ids,
            "layers": self.layers,
            "target_text": self.target_text,
            "target_tokens": self.target_tokens,
            "target_word_ids": self.target_word_ids,
            "prediction": self.prediction,
            "forced": self.forced,
        }

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Inspection":
        """Read an inspection written by :meth:`save` (exact round trip; no model attached)."""
        folder = Path(path)
        if not (folder / "inspection.json").is_file():
            raise InputError(f"{folder} holds no inspection.json; pass a folder written by Inspection.save")
        meta = json.loads((folder / "inspection.json").read_text(encoding="utf-8"))
        meta.pop("format", None)
        tensors = load_file(str(folder / "attentions.safetensors"))
        return cls(attentions={k: tensors[k] for k in KINDS if k in tensors}, **meta)


# ---- inspect ---------------------------------------------------------------------------------

Text = str | Sequence[str]


def inspect(
    model: Any = None,
    text: Text | Sequence[Text] | None = None,
    target: Text | Sequence[Text] | None = None,
    *,
    kinds: Sequence[str] | None = None,
    layers: Sequence[int] | None = None,
    dtype: torch.dtype | None = None,
    num_beams: int = 1,
    max_new_tokens: int | None = None,
    truncate: bool = False,
    is_split_into_words: bool = False,
    batch_size: int = 16,
    method: str = "auto",
) -> Inspection | list[Inspection]:
    """Run ``model`` on ``text`` and capture every attention head.

    ``headscope.inspect("A man in a red shirt.")`` uses the default model (``headscope/en-fr``).
    ``model`` is a shipped name, a folder, a hub name or a ``(model, tokenizer)`` pair.
    Encoder-decoders generate the output (greedy, or ``num_beams``) unless ``target`` is given,
    then capture one teacher-forced pass over source and output. A list of texts (with a list of
    targets) returns a list of inspections, computed in padded batches of ``batch_size``.

    Options: ``kinds`` / ``layers`` to keep, ``dtype`` to store maps in (e.g. ``torch.float16``),
    ``truncate`` to cut over-long texts (with a warning) instead of raising,
    ``is_split_into_words`` when each text is a list of words (gold alignment data).
    """
    if text is None:
        if model is None:
            raise InputError("no text given; call headscope.inspect(model, text) or headscope.inspect(text)")
        model, text = DEFAULT_MODEL, model
    loaded = load(DEFAULT_MODEL if model is None else model)
    texts, single = _as_batch(text, is_split_into_words, "text")
    targets = None
    if target is not None:
        if loaded.family != "encoder-decoder":
            raise InputError(
                f"a target was given, but {loaded.name} is a {loaded.family}, not an encoder-decoder; "
                "drop target= (only translation/seq2seq models take a forced output)"
            )
        targets, target_single = _as_batch(target, is_split_into_words, "target")
        if len(targets) != len(texts) or target_single != single:
            raise InputError(
                f"{len(texts)} text(s) but {len(targets)} target(s); pass one target per text (or none to generate)"
            )
    results: list[Inspection] = []
    for start in range(0, len(texts), batch_size):
        chunk_targets = None if targets is None else targets[start:start + batch_size]
        results += _inspect_batch(loaded, texts[start:start + batch_size], chunk_targets, kinds=kinds, layers=layers,
                                  dtype=dtype, num_beams=num_beams, max_new_tokens=max_new_tokens, truncate=truncate,
                                  split=is_split_into_words, method=method)
    return results[0] if single else results


def _as_batch(text: Any, split: bool, what: str) -> tuple[list[Any], bool]:
    """Normalise one text or a list of texts to a list; check none is empty."""
    if split:
        single = isinstance(text, Sequence) and len(text) > 0 and all(isinstance(w, str) for w in text)
    else:
        single = isinstance(text, str)
    batch = [text] if single else list(text) if isinstance(text, Sequence) and not isinstance(text, str) else None
    if batch is None or not batch:
        raise InputError(f"{what} must be a string or a non-empty list of strings"
                         + (" (lists of words with is_split_into_words=True)" if split else "") + f", got {text!r}")
    for i, item in enumerate(batch):
        words = item if split else [item] if isinstance(item, str) else None
        if words is None or not all(isinstance(w, str) for w in words):
            raise InputError(f"{what} #{i} is not {'a list of words' if split else 'a string'}: {item!r}")
        if not "".join(words).strip():
            raise InputError(f"{what} #{i} is empty; give some words to inspect")
    return batch, single


def _forward_keys(model: Any) -> set[str]:
    return set(_pyinspect.signature(model.forward).parameters)


def _tokenize(loaded: LoadedModel, texts: list[Any], split: bool, truncate: bool, target: bool = False) -> Any:
    tok = loaded.tokenizer
    limit = loaded.max_length
    key = "text_target" if target else "text"
    lengths = [len(ids) for ids in tok(**{key: texts}, is_split_into_words=split)["input_ids"]]
    too_long = [(i, n) for i, n in enumerate(lengths) if limit is not None and n > limit]
    if too_long:
        i, n = too_long[0]
        what = "target" if target else "text"
        if not truncate:
            raise InputError(
                f"{what} #{i} is {n} tokens long but {loaded.name} accepts at most {limit}; "
                "shorten it or pass truncate=True to cut it (with a warning)"
            )
        warnings.warn(f"{len(too_long)} {what}(s) longer than {limit} tokens were truncated", stacklevel=4)
    cut = dict(truncation=True, max_length=limit) if too_long else {}
    return tok(**{key: texts}, is_split_into_words=split, padding=True, return_tensors="pt", **cut)


def _word_ids(encoding: Any, i: int, mask: torch.Tensor, ids: list[int], tokenizer: Any) -> list[int | None]:
    """Word ids of example ``i`` at its unpadded positions; from token spelling for slow tokenizers."""
    try:
        word_ids = encoding.word_ids(i)
    except (ValueError, AttributeError):
        return word_ids_from_tokens(tokenizer.convert_ids_to_tokens(ids), _special_mask(tokenizer, ids))
    return [word_ids[p] for p in mask.nonzero().flatten().tolist()]


def _special_mask(tokenizer: Any, ids: list[int]) -> list[bool]:
    special = set(getattr(tokenizer, "all_special_ids", []) or [])
    return [i in special for i in ids]


def word_ids_from_tokens(tokens: list[str], special: list[bool]) -> list[int | None]:
    """Word index of each subword from its spelling (``▁``/``Ġ`` start a word, ``##`` continues one).

    >>> word_ids_from_tokens(["▁un", "▁hom", "me", "</s>"], [False, False, False, True])
    [0, 1, 1, None]
    """
    plain = [t for t, s in zip(tokens, special) if not s]
    wordpiece = any(t.startswith("##") for t in plain)
    out: list[int | None] = []
    word = -1
    for tok, is_special in zip(tokens, special):
        if is_special:
            out.append(None)
            continue
        starts = not tok.startswith("##") if wordpiece else tok.startswith(("▁", "Ġ")) or word < 0
        word += int(starts)
        out.append(word)
    return out


def _decoder_inputs(model: Any, labels: torch.Tensor, pad_id: int) -> torch.Tensor:
    if hasattr(model, "prepare_decoder_input_ids_from_labels"):
        return model.prepare_decoder_input_ids_from_labels(labels=labels)
    start = model.config.decoder_start_token_id
    if start is None:
        raise InputError(f"{type(model).__name__} has no decoder_start_token_id; set model.config.decoder_start_token_id")
    shifted = labels.new_full(labels.shape, pad_id)
    shifted[:, 1:] = labels[:, :-1]
    shifted[:, 0] = start
    return shifted


def _generated_labels(sequences: torch.Tensor, eos_id: int | None, pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Drop the start token; keep each output up to and including its first EOS."""
    labels = sequences[:, 1:].clone()
    mask = torch.ones_like(labels)
    if eos_id is not None:
        is_eos = (labels == eos_id).long()
        after = (is_eos.cumsum(1) - is_eos) > 0  # strictly after the first EOS
        mask[after] = 0
        labels[after] = pad_id
    keep = int(mask.sum(1).max())
    return labels[:, :keep], mask[:, :keep]


def _inspect_batch(loaded: LoadedModel, texts: list[Any], targets: list[Any] | None, *, kinds: Any, layers: Any,
                   dtype: Any, num_beams: int, max_new_tokens: int | None, truncate: bool, split: bool,
                   method: str) -> list[Inspection]:
    model, tok = loaded.model, loaded.tokenizer
    enc = _tokenize(loaded, texts, split, truncate)
    accepted = _forward_keys(model)
    inputs = {k: v for k, v in enc.items() if k in accepted}
    src_mask = enc["attention_mask"]
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else 0
    tgt_enc = None
    if loaded.family == "encoder-decoder":
        if targets is None:
            gen_kwargs: dict[str, Any] = dict(num_beams=num_beams, do_sample=False)
            if max_new_tokens is not None:
                gen_kwargs["max_new_tokens"] = max_new_tokens
            elif loaded.max_length is not None:
                gen_kwargs["max_length"] = loaded.max_length
            with torch.no_grad():
                sequences = model.generate(**inputs, **gen_kwargs)
            eos = model.generation_config.eos_token_id
            eos = eos[0] if isinstance(eos, list) else eos
            labels, tgt_mask = _generated_labels(sequences, eos, pad_id)
        else:
            tgt_enc = _tokenize(loaded, targets, split, truncate, target=True)
            labels, tgt_mask = tgt_enc["input_ids"], tgt_enc["attention_mask"]
        inputs["decoder_input_ids"] = _decoder_inputs(model, labels, pad_id)
        inputs["decoder_attention_mask"] = tgt_mask
    outputs, cap = run_capture(model, inputs, method=method, kinds=kinds, layers=layers, dtype=dtype)
    maps = cap.maps
    per_kind: dict[str, list[torch.Tensor]] = {}
    for kind, tensor in maps.items():
        if kind == "encoder":
            per_kind[kind] = split_examples(tensor, src_mask)
        elif kind == "cross":
            per_kind[kind] = split_examples(tensor, tgt_mask, src_mask)
        else:  # decoder self-attention
            mask = tgt_mask if loaded.family == "encoder-decoder" else src_mask
            per_kind[kind] = split_examples(tensor, mask)
    layer_index = {kind: cap.layer_indices(kind) for kind in maps}
    all_layers = {kind: list(range(len(ix))) for kind, ix in layer_index.items()}
    kept_layers = {k: v for k, v in layer_index.items() if v != all_layers[k]}

    results = []
    for b, text in enumerate(texts):
        src_ids = enc["input_ids"][b][src_mask[b].bool()].tolist()
        item = Inspection(
            model_name=loaded.name,
            family=loaded.family,
            source_text=" ".join(text) if split else text,
            source_tokens=tok.convert_ids_to_tokens(src_ids),
            source_word_ids=_word_ids(enc, b, src_mask[b], src_ids, tok),
            attentions={kind: examples[b] for kind, examples in per_kind.items()},
            layers=kept_layers,
            loaded=loaded,
        )
        logits = outputs.logits[b]
        if loaded.family == "encoder-decoder":
            tgt_ids = labels[b][tgt_mask[b].bool()].tolist()
            item.target_tokens = tok.convert_ids_to_tokens(tgt_ids)
            item.target_text = tok.decode(tgt_ids, skip_special_tokens=True)
            item.forced = targets is not None
            if tgt_enc is not None:
                item.target_word_ids = _word_ids(tgt_enc, b, tgt_mask[b], tgt_ids, tok)
            else:
                item.target_word_ids = word_ids_from_tokens(item.target_tokens, _special_mask(tok, tgt_ids))
            item.prediction = {"text": item.target_text}
        elif loaded.family == "classifier" and logits.ndim == 1:
            probs = torch.softmax(logits.float(), -1)
            names = model.config.id2label
            item.prediction = {
                "label": names.get(int(probs.argmax()), str(int(probs.argmax()))),
                "probabilities": {names.get(i, str(i)): round(float(p), 6) for i, p in enumerate(probs)},
            }
        elif loaded.family == "decoder":
            last = int(src_mask[b].nonzero().max())
            probs = torch.softmax(logits[last].float(), -1)
            top = int(probs.argmax())
            item.prediction = {"next_token": tok.convert_ids_to_tokens(top), "probability": round(float(probs[top]), 6)}
        results.append(item)
    return results

