"""``headscope.inspect``: run a model on text and keep every attention map with its labels."""

from __future__ import annotations

import os
import threading
import warnings
from collections.abc import Sequence
from typing import Any

import torch

from .capture import Reductions, run_capture, split_examples
from .errors import InputError, UnsupportedModelError
from .inspection import Inspection
from .mixing.compute import check_methods, compute_mixing, example_inputs
from .models.architectures import decoder_inputs
from .models import DEFAULT_MODEL
from .models.loading import LoadedModel, load

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
    reduce: Reductions | Sequence[str] | None = None,
    stream_to: str | os.PathLike | None = None,
    device: str | torch.device | None = None,
    readings: Sequence[str] | None = None,
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

    Long inputs (issue 17; see ``docs/scale.md``): ``reduce`` asks for what a reading needs instead of
    whole maps (a :class:`~headscope.capture.Reductions` or names such as ``["entropy", "sink", "max",
    "topk=5", "rows=0"]``), computed as each layer runs and kept in ``insp.reduced``; ``stream_to``
    writes the full maps of one text to that folder as safetensors shards (read them with
    :func:`headscope.capture.load_streamed`). With either, texts run one at a time (no padding).
    ``device`` is where the forward runs (the model must be there; default: the model's device);
    maps are kept on the CPU.

    >>> insp = headscope.inspect("headscope/sentiment", "fine", reduce=["entropy", "rows=0"])  # doctest: +SKIP
    >>> insp.reduced["encoder"]["rows"].shape                                     # doctest: +SKIP
    torch.Size([6, 12, 1, 3])

    Readings beyond the raw weights (issue 16; :mod:`headscope.mixing`): ``readings`` names those to compute
    beside the maps (``"norm"``, ``"alti"``, ``"valuezeroing"``, ``"gradrollout"``, or ``["all"]``), kept in
    ``insp.mixing`` and read with :func:`headscope.aggregate.reading_map` (``"cross.2.norm"``, ``"cross.alti"``...).

    >>> insp = headscope.inspect("headscope/en-fr", "A red car.", readings=["norm"])  # doctest: +SKIP
    >>> sorted(insp.mixing)[:2]                                                      # doctest: +SKIP
    ['cross.0.0.norm', 'cross.0.1.norm']

    >>> insp = headscope.inspect("headscope/en-fr", "A red car.")     # doctest: +SKIP
    >>> insp.attentions["cross"].shape                                 # doctest: +SKIP
    torch.Size([3, 4, 6, 5])

    Images: ``text`` may be an image (a path, a PIL image, a numpy array or a tensor) or a list of
    them for an image classifier cut into patches (ViT, DeiT, BEiT, DINOv2, ``headscope/shapes-vit``):
    the model's own image processor prepares it, ``insp.patch_grid`` is ``(rows, cols)``, patch tokens
    are ``p(row,col)`` with word id ``row * cols + col``, special tokens (``[CLS]``, ``[DIST]``,
    ``[REG0]``...) have word id ``None``, and ``insp.pixel_values`` is the image as the model saw it.

    >>> insp = headscope.inspect("headscope/shapes-vit", "shape.png")   # doctest: +SKIP
    >>> insp.patch_grid, insp.source_tokens[:2], insp.prediction["label"]  # doctest: +SKIP
    ((6, 6), ['[CLS]', 'p(0,0)'], 'circle')
    """
    if text is not None and _is_image_input(text):
        return _inspect_images(model, text, target=target, kinds=kinds, layers=layers, dtype=dtype,
                               batch_size=batch_size, method=method, mixing=check_methods(readings))
    if text is None:
        if not isinstance(model, str) or _names_a_model(model):
            raise InputError("text: no text given; call headscope.inspect(model, text), or headscope.inspect(text) "
                             "for the default model")
        model, text = DEFAULT_MODEL, model
    _check_options(batch_size=batch_size, num_beams=num_beams, max_new_tokens=max_new_tokens, dtype=dtype)
    reductions = Reductions.of(reduce)  # issue 17: long inputs
    mixing = check_methods(readings)  # issue 16
    loaded = load(DEFAULT_MODEL if model is None else model)
    device = _check_device(loaded, device)
    if loaded.architecture.reads_images:
        raise InputError(f"{loaded.name} is an image classifier: pass an image (a path, a PIL image or an array), "
                         f"not the text {_short(text, 40)}")
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
    if stream_to is not None and not single:
        raise InputError(f"stream_to={os.fspath(stream_to)!r} takes the maps of one text, but {len(texts)} texts were "
                         "given; inspect them one at a time, each with its own folder")
    if reductions is not None or stream_to is not None:
        batch_size = 1  # reductions are per example: no padding
    results: list[Inspection] = []
    for start in range(0, len(texts), batch_size):
        chunk_targets = None if targets is None else targets[start:start + batch_size]
        results += _inspect_batch(loaded, texts[start:start + batch_size], chunk_targets, kinds=kinds, layers=layers,
                                  dtype=dtype, num_beams=num_beams, max_new_tokens=max_new_tokens, truncate=truncate,
                                  split=is_split_into_words, method=method, reductions=reductions,
                                  stream_to=stream_to, device=device, mixing=mixing)
    return results[0] if single else results


def _names_a_model(name: str) -> bool:
    """Whether a lone string names a model (shipped or a folder) rather than being the text."""
    from .models.shipped import list_shipped

    return os.path.isdir(name) or name in {m.name for m in list_shipped()}


def _check_device(loaded: LoadedModel, device: Any) -> torch.device:
    """The device the forward runs on: ``device`` (where the model must be) or the model's own."""
    params = {p.device for p in loaded.model.parameters()}
    own = next(iter(params)) if len(params) == 1 else None
    if device is None:
        return own or torch.device("cpu")
    try:
        wanted = torch.device(device)
    except (RuntimeError, TypeError):
        raise InputError(f"device={device!r}: not a torch device; pass 'cpu', 'cuda', 'cuda:1', 'mps' or a "
                         "torch.device") from None
    if own is not None and (own.type != wanted.type or (wanted.index is not None and own.index != wanted.index)):
        raise InputError(f"device={device!r}, but {loaded.name} is on {own}; move the model first "
                         f"(model.to({str(wanted)!r})) or drop device= to run where it is")
    return own or wanted


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
        raise InputError(f"{what}: is_split_into_words=True takes a list of words, got a string; pass "
                         f"{what}.split(), or drop is_split_into_words")
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
        # the decoder's start token plus max_new_tokens; said as max_length, transformers does not warn
        # that the model's own generation_config.max_length is overridden
        gen_kwargs["max_length"] = max_new_tokens + 1
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
                   method: str, reductions: Reductions | None = None, stream_to: Any = None,
                   device: torch.device | None = None, mixing: Sequence[str] = ()) -> list[Inspection]:
    model, tok, arch = loaded.model, loaded.tokenizer, loaded.architecture
    enc = _tokenize(loaded, texts, split, truncate)
    accepted = forward_keys(model)
    inputs = {k: v.to(device) if device is not None and isinstance(v, torch.Tensor) else v
              for k, v in enc.items() if k in accepted}
    src_mask = enc["attention_mask"]
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else 0
    labels = tgt_mask = tgt_enc = None
    if arch.has_target and arch.decoder_reads_source(model):  # a classifier: no generate, the label is the output
        labels, tgt_mask = enc["input_ids"], src_mask
    elif arch.has_target:
        labels, tgt_mask, tgt_enc = _targets(loaded, inputs, targets, split, truncate, num_beams, max_new_tokens,
                                             pad_id)
    if labels is not None:
        labels, tgt_mask = labels.cpu(), tgt_mask.cpu()
        inputs["decoder_input_ids"] = decoder_inputs(model, labels, pad_id).to(inputs["input_ids"].device)
        inputs["decoder_attention_mask"] = tgt_mask.to(inputs["input_ids"].device)
    outputs, captured = run_capture(model, inputs, method=method, kinds=kinds, layers=layers, dtype=dtype,
                                    structure=loaded.structure, reductions=reductions, stream_to=stream_to)
    per_kind = {kind: split_examples(captured.maps.pop(kind), *arch.masks(kind, src_mask, tgt_mask))
                for kind in list(captured.maps)}
    all_layers = {**captured.reduced_layers, **captured.layers}
    kept_layers = {k: v for k, v in all_layers.items() if v != list(range(len(v)))}

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
            reduced={kind: {name: t[b] if name != "rows.index" else t for name, t in found.items()}
                     for kind, found in captured.reduced.items()},
            reductions=reductions,
            streamed_to=None if captured.streamed is None else str(captured.streamed),
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
        if mixing:  # issue 16: readings beyond the raw weights, one example at a time
            item.mixing = compute_mixing(model, example_inputs(inputs, b, src_mask, tgt_mask), loaded.structure,
                                         mixing, kinds)
        results.append(item)
    return results


# -- images: image classifiers read on their patch grid (issue 18) --

#: File name endings read as images (by :func:`inspect` and by the commands that take a file)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm")


def _is_image_input(value: Any) -> bool:
    """Whether ``value`` is an image (a PIL image, an array, an image file's path) or a list of them."""
    if isinstance(value, (list, tuple)):
        return len(value) > 0 and _is_image_input(value[0])
    if isinstance(value, (str, os.PathLike)):
        return os.fspath(value).lower().endswith(IMAGE_SUFFIXES)
    return type(value).__module__.startswith("PIL.") or hasattr(value, "__array__")


def _inspect_images(model: Any, images: Any, *, target: Any, kinds: Sequence[str] | None,
                    layers: Sequence[int] | None, dtype: torch.dtype | None, batch_size: int,
                    method: str, mixing: Sequence[str] = ()) -> Inspection | list[Inspection]:
    """:func:`inspect` on images: the model's own image processor prepares them; every token gets its
    name and its place on the patch grid (``Inspection.patch_grid``, word id = patch index)."""
    _check_options(batch_size=batch_size, num_beams=1, max_new_tokens=None, dtype=dtype)
    loaded = load(DEFAULT_MODEL if model is None else model)
    arch = loaded.architecture
    if not arch.reads_images:
        raise InputError(f"{loaded.name} is a {arch.name} model that reads text; an image needs an image "
                         "classifier cut into patches (ViT, DeiT, BEiT, DINOv2; e.g. headscope/shapes-vit)")
    if target is not None:
        raise InputError("target= is for text-to-text models; an image classifier's output is its label")
    loaded.structure.check(kinds, layers)
    items, single = _as_images(images)
    net = loaded.model
    param = next(net.parameters())
    results: list[Inspection] = []
    for start in range(0, len(items), batch_size):
        chunk = items[start:start + batch_size]
        pixels = arch.prepare_images(loaded.tokenizer, [image for image, _ in chunk])
        outputs, captured = run_capture(net, {"pixel_values": pixels.to(param.device, param.dtype)}, method=method,
                                        kinds=kinds, layers=layers, dtype=dtype, structure=loaded.structure)
        if not all(isinstance(maps, torch.Tensor) for maps in captured.maps.values()):
            raise UnsupportedModelError(
                f"{loaded.name}: its layers attend over windows or pooled grids of different sizes (a hierarchical "
                "vision model such as Swin), not over one patch grid; headscope reads image encoders with a single "
                "patch grid (ViT, DeiT, BEiT, DINOv2)")
        n_tokens = next(iter(captured.maps.values())).shape[-1]
        layout = arch.token_layout(net, int(pixels.shape[-2]), int(pixels.shape[-1]), n_tokens)
        kept_layers = {k: v for k, v in captured.layers.items() if v != list(range(len(v)))}
        logits = getattr(outputs, "logits", None)
        for b, (_, description) in enumerate(chunk):
            prediction = {} if logits is None else arch.predict(net, loaded.tokenizer, logits[b].detach(),
                                                                torch.ones(n_tokens, dtype=torch.long))
            results.append(Inspection(
                model_name=loaded.name, architecture=arch, source_text=description,
                source_tokens=list(layout.tokens), source_word_ids=list(layout.word_ids),
                attentions={kind: maps[b] for kind, maps in captured.maps.items()}, layers=kept_layers,
                prediction=prediction, model_description=str(loaded.structure), patch_grid=layout.grid,
                pixel_values=pixels[b].float().clone(), loaded=loaded))
            if mixing:  # issue 16's readings, on the patch grid too
                results[-1].mixing = compute_mixing(net, {"pixel_values": pixels[b:b + 1].to(param.device, param.dtype)},
                                                    loaded.structure, mixing, kinds)
    return results[0] if single else results


def _as_images(images: Any) -> tuple[list[tuple[Any, str]], bool]:
    """``([(RGB PIL image, description)], single)`` of one image or a list (a 4-d array is a batch)."""
    array = _as_array(images) if not isinstance(images, (list, tuple, str, os.PathLike)) else None
    if array is not None and array.ndim == 4:
        batch, single = list(array), False
    else:
        single = not isinstance(images, (list, tuple))
        batch = [images] if single else list(images)
    if not batch:
        raise InputError("images: an empty list; pass an image (a path, a PIL image or an array) or a list of them")
    return [_as_image(item, i) for i, item in enumerate(batch)], single


def _as_array(value: Any) -> Any:
    import numpy as np

    if type(value).__module__.startswith("PIL."):
        return None
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    return np.asarray(value) if hasattr(value, "__array__") else None


def _as_image(value: Any, i: int) -> tuple[Any, str]:
    """One image as an RGB PIL image, with a description for ``source_text``."""
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    if isinstance(value, (str, os.PathLike)):
        path = os.fspath(value)
        if not os.path.isfile(path):
            raise InputError(f"image #{i}: no such file {path!r}")
        try:
            with Image.open(path) as opened:
                return opened.convert("RGB"), path
        except (UnidentifiedImageError, OSError) as err:
            raise InputError(f"image #{i}: {path!r} is not an image file PIL can read ({err})") from None
    if type(value).__module__.startswith("PIL."):
        name = getattr(value, "filename", "") or f"<image {value.width}x{value.height}>"
        return value.convert("RGB"), name
    array = _as_array(value)
    if array is None:
        raise InputError(f"image #{i}: {_short(value)} is not an image; pass a path, a PIL image or an array")
    if array.ndim == 3 and array.shape[0] in (1, 3, 4) and array.shape[-1] not in (1, 3, 4):
        array = array.transpose(1, 2, 0)  # channels first -> channels last
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[-1] not in (3, 4)):
        raise InputError(f"image #{i}: an array of shape {array.shape}; pass [height, width], [height, width, 3] "
                         "or [3, height, width] (or a batch [n, height, width, 3])")
    if array.dtype != np.uint8:
        if not np.issubdtype(array.dtype, np.number) or not np.isfinite(array).all() or array.min() < 0 or (
                array.max() > (1 if np.issubdtype(array.dtype, np.floating) else 255)):
            raise InputError(f"image #{i}: pixel values must be uint8 0..255 or floats 0..1 "
                             f"(got {array.dtype} {float(array.min()):g}..{float(array.max()):g})")
        scale = 255.0 if np.issubdtype(array.dtype, np.floating) else 1.0
        array = np.rint(array.astype(np.float64) * scale).astype(np.uint8)
    height, width = array.shape[:2]
    return Image.fromarray(array).convert("RGB"), f"<image {width}x{height}>"
