"""``headscope.inspect``: run a model on text and keep every attention map with its labels."""

from __future__ import annotations

import os
import threading
import warnings
from collections.abc import Sequence
from typing import Any

import torch

from .capture import run_capture, split_examples
from .errors import InputError
from .inspection import Inspection
from .models.architectures import decoder_inputs
from .models.loading import DEFAULT_MODEL, LoadedModel, load

Text = str | Sequence[str]

# Fast tokenizers set their padding and truncation state on every call: calls from several
# threads on one tokenizer must not interleave.
_TOKENIZER_LOCK = threading.Lock()


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
    The model is left exactly as it was (also its ``train()`` mode; maps are taken in eval mode).

    Options: ``kinds`` / ``layers`` to keep, ``dtype`` to store maps in (e.g. ``torch.float16``),
    ``truncate`` to cut over-long texts (with a warning) instead of raising,
    ``is_split_into_words`` when each text is a list of words (gold alignment data),
    ``method``: ``"auto"``, ``"interface"`` or ``"outputs"`` (see :func:`headscope.capture.run_capture`).

    >>> insp = headscope.inspect("headscope/en-fr", "A red car.")     # doctest: +SKIP
    >>> insp.attentions["cross"].shape                                 # doctest: +SKIP
    torch.Size([3, 4, 6, 5])
    """
    if text is None:
        if not isinstance(model, str) or _names_a_model(model):
            raise InputError("text: no text given; call headscope.inspect(model, text), or headscope.inspect(text) "
                             "for the default model")
        model, text = DEFAULT_MODEL, model
    _check_options(batch_size=batch_size, num_beams=num_beams, max_new_tokens=max_new_tokens, dtype=dtype)
    loaded = load(DEFAULT_MODEL if model is None else model)
    loaded.structure.check(kinds, layers)
    texts, single = _as_batch(text, is_split_into_words, "text")
    targets = None
    if target is not None:
        if not loaded.architecture.has_target:
            raise InputError(
                f"a target was given, but {loaded.name} is {loaded.architecture.name}-only, not an encoder-decoder; "
                "drop target= (only translation/seq2seq models take a forced output)")
        if loaded.architecture.decoder_reads_source(loaded.model):
            raise InputError(
                f"a target was given, but {loaded.name} is an encoder-decoder classifier: its decoder reads the "
                "source and its output is a label; drop target=")
        targets, target_single = _as_batch(target, is_split_into_words, "target")
        if len(targets) != len(texts) or target_single != single:
            raise InputError(
                f"{len(texts)} text(s) but {len(targets)} target(s); pass one target per text (or none to generate)")
    results: list[Inspection] = []
    for start in range(0, len(texts), batch_size):
        chunk_targets = None if targets is None else targets[start:start + batch_size]
        results += _inspect_batch(loaded, texts[start:start + batch_size], chunk_targets, kinds=kinds, layers=layers,
                                  dtype=dtype, num_beams=num_beams, max_new_tokens=max_new_tokens, truncate=truncate,
                                  split=is_split_into_words, method=method)
    return results[0] if single else results


def _names_a_model(name: str) -> bool:
    """Whether a lone string names a model (shipped or a folder) rather than being the text."""
    from .models.shipped import list_shipped

    return os.path.isdir(name) or name in {m.name for m in list_shipped()}


def _check_options(*, batch_size: Any, num_beams: Any, max_new_tokens: Any, dtype: Any) -> None:
    def positive_int(value: Any) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and value > 0

    for name, value in (("batch_size", batch_size), ("num_beams", num_beams)):
        if not positive_int(value):
            raise InputError(f"{name}={value!r}: pass a positive whole number")
    if max_new_tokens is not None and not positive_int(max_new_tokens):
        raise InputError(f"max_new_tokens={max_new_tokens!r}: pass a positive whole number, or None for the "
                         "model's own limit")
    if dtype is not None and (not isinstance(dtype, torch.dtype) or not dtype.is_floating_point):
        raise InputError(f"dtype={dtype!r}: maps are probabilities; pass a floating torch dtype such as "
                         "torch.float16 (not a string or an integer type), or None to keep the model's")


def _as_batch(text: Any, split: bool, what: str) -> tuple[list[Any], bool]:
    """Normalise one text or a list of texts to a list; check none is empty."""
    if split:
        single = isinstance(text, Sequence) and len(text) > 0 and all(isinstance(w, str) for w in text)
    else:
        single = isinstance(text, str)
    if split and isinstance(text, str):
        raise InputError(f"{what}: is_split_into_words=True takes a list of words (e.g. text.split()), got a string")
    batch = [text] if single else list(text) if isinstance(text, Sequence) and not isinstance(text, str) else None
    if batch is None or not batch:
        raise InputError(f"{what} must be a string or a non-empty list of strings"
                         + (" (lists of words with is_split_into_words=True)" if split else "")
                         + f", got {_short(text)}")
    for i, item in enumerate(batch):
        words = item if split else [item] if isinstance(item, str) else None
        if words is None or not all(isinstance(w, str) for w in words):
            raise InputError(f"{what} #{i} is not {'a list of words' if split else 'a string'}: {_short(item)}")
        if not "".join(words).strip():
            raise InputError(f"{what} #{i} is empty; give some words to inspect")
    return batch, single


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else f"{type(value).__name__} {text[:limit]}..."


def forward_keys(model: Any) -> set[str]:
    """The keyword arguments ``model.forward`` accepts."""
    import inspect as pyinspect

    return set(pyinspect.signature(model.forward).parameters)


def _tokenize(loaded: LoadedModel, texts: list[Any], split: bool, truncate: bool, target: bool = False) -> Any:
    tok = loaded.tokenizer
    limit = loaded.max_length
    key = "text_target" if target else "text"
    with _TOKENIZER_LOCK:
        lengths = [len(ids) for ids in tok(**{key: texts}, is_split_into_words=split)["input_ids"]]
    too_long = [(i, n) for i, n in enumerate(lengths) if limit is not None and n > limit]
    if too_long:
        i, n = too_long[0]
        what = "target" if target else "text"
        if not truncate:
            raise InputError(f"{what} #{i} is {n} tokens long but {loaded.name} accepts at most {limit}; "
                             "shorten it or pass truncate=True to cut it (with a warning)")
        warnings.warn(f"{len(too_long)} {what}(s) longer than {limit} tokens were truncated", stacklevel=4)
    cut = dict(truncation=True, max_length=limit) if too_long else {}
    with _TOKENIZER_LOCK:
        return tok(**{key: texts}, is_split_into_words=split, padding=True, return_tensors="pt", **cut)


def _word_ids(encoding: Any, i: int, mask: torch.Tensor, ids: list[int], tokenizer: Any) -> list[int | None]:
    """Word ids of example ``i`` at its unpadded positions; from token spelling for slow tokenizers."""
    try:
        word_ids = encoding.word_ids(i)
    except (ValueError, AttributeError):
        return word_ids_from_tokens(tokenizer.convert_ids_to_tokens(ids), special_mask(tokenizer, ids))
    return [word_ids[p] for p in mask.nonzero().flatten().tolist()]


def special_mask(tokenizer: Any, ids: list[int]) -> list[bool]:
    """Which of ``ids`` are the tokenizer's special tokens."""
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


def _targets(loaded: LoadedModel, inputs: dict[str, Any], targets: list[Any] | None, split: bool, truncate: bool,
             num_beams: int, max_new_tokens: int | None, pad_id: int) -> tuple[torch.Tensor, torch.Tensor, Any]:
    """Target ids and mask of an encoder-decoder batch: forced (tokenised ``targets``) or generated."""
    model = loaded.model
    if targets is not None:
        tgt_enc = _tokenize(loaded, targets, split, truncate, target=True)
        return tgt_enc["input_ids"], tgt_enc["attention_mask"], tgt_enc
    gen_kwargs: dict[str, Any] = dict(num_beams=num_beams, do_sample=False)
    if max_new_tokens is not None:
        gen_kwargs["max_new_tokens"] = max_new_tokens
    elif loaded.max_length is not None:
        gen_kwargs["max_length"] = loaded.max_length
    with torch.no_grad():
        sequences = model.generate(**inputs, **gen_kwargs)
    eos = model.generation_config.eos_token_id
    eos = eos[0] if isinstance(eos, list) else eos
    labels, mask = _generated_labels(sequences, eos, pad_id)
    return labels, mask, None


def _inspect_batch(loaded: LoadedModel, texts: list[Any], targets: list[Any] | None, *, kinds: Any, layers: Any,
                   dtype: Any, num_beams: int, max_new_tokens: int | None, truncate: bool, split: bool,
                   method: str) -> list[Inspection]:
    model, tok, arch = loaded.model, loaded.tokenizer, loaded.architecture
    enc = _tokenize(loaded, texts, split, truncate)
    accepted = forward_keys(model)
    inputs = {k: v for k, v in enc.items() if k in accepted}
    src_mask = enc["attention_mask"]
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else 0
    labels = tgt_mask = tgt_enc = None
    if arch.has_target and arch.decoder_reads_source(model):  # a classifier: no generate, the label is the output
        labels, tgt_mask = enc["input_ids"], src_mask
    elif arch.has_target:
        labels, tgt_mask, tgt_enc = _targets(loaded, inputs, targets, split, truncate, num_beams, max_new_tokens,
                                             pad_id)
    if labels is not None:
        inputs["decoder_input_ids"] = decoder_inputs(model, labels, pad_id)
        inputs["decoder_attention_mask"] = tgt_mask
    outputs, captured = run_capture(model, inputs, method=method, kinds=kinds, layers=layers, dtype=dtype,
                                    structure=loaded.structure)
    per_kind = {kind: split_examples(tensor, *arch.masks(kind, src_mask, tgt_mask))
                for kind, tensor in captured.maps.items()}
    kept_layers = {k: v for k, v in captured.layers.items() if v != list(range(len(v)))}

    results = []
    for b, text in enumerate(texts):
        src_ids = enc["input_ids"][b][src_mask[b].bool()].tolist()
        item = Inspection(
            model_name=loaded.name,
            architecture=arch,
            source_text=" ".join(text) if split else text,
            source_tokens=tok.convert_ids_to_tokens(src_ids),
            source_word_ids=_word_ids(enc, b, src_mask[b], src_ids, tok),
            attentions={kind: examples[b] for kind, examples in per_kind.items()},
            layers=kept_layers,
            prediction=arch.predict(model, tok, outputs.logits[b], src_mask[b]),
            model_description=str(loaded.structure),
            loaded=loaded,
        )
        if all(w is None for w in item.source_word_ids):
            raise InputError(f"text #{b} ({_short(text, 40)}) has no word the tokenizer can read "
                             "(only special, control or zero-width characters); give some words to inspect")
        if labels is not None:
            tgt_ids = labels[b][tgt_mask[b].bool()].tolist()
            item.target_tokens = tok.convert_ids_to_tokens(tgt_ids)
            item.target_text = tok.decode(tgt_ids, skip_special_tokens=True)
            item.forced = targets is not None
            if tgt_enc is not None:
                item.target_word_ids = _word_ids(tgt_enc, b, tgt_mask[b], tgt_ids, tok)
            else:
                item.target_word_ids = word_ids_from_tokens(item.target_tokens, special_mask(tok, tgt_ids))
            if not item.prediction:
                item.prediction = {"text": item.target_text}
        results.append(item)
    return results
