"""Load a model and its tokenizer: shipped names, local folders, hub names, or loaded pairs."""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from transformers import PreTrainedModel

from ..errors import ModelNotFoundError, UnsupportedModelError
from .architectures import Architecture
from .names import check_name, is_shipped
from .structure import ModelStructure, describe



@dataclass
class LoadedModel:
    """A model with its tokenizer, the name it was loaded from and its attention structure.

    ``structure`` is described once, here (:func:`headscope.models.structure.describe`); its
    ``architecture`` is the strategy for everything that differs by architecture kind.
    """

    model: PreTrainedModel
    tokenizer: Any
    name: str
    structure: ModelStructure

    @classmethod
    def of(cls, model: PreTrainedModel, tokenizer: Any, name: str) -> "LoadedModel":
        """Describe ``model`` and wrap it (the model itself is not changed)."""
        return cls(model, tokenizer, name, describe(model))

    @property
    def architecture(self) -> Architecture:
        """The architecture-kind strategy (encoder, decoder, encoder-decoder)."""
        return self.structure.architecture

    @property
    def max_length(self) -> int | None:
        """The longest input (in tokens) the model accepts, when the model or tokenizer says."""
        limits = []
        for key in ("max_position_embeddings", "n_positions", "max_length"):
            value = getattr(self.model.config, key, None)
            if isinstance(value, int) and value > 0:
                limits.append(value)
                break
        tok_limit = getattr(self.tokenizer, "model_max_length", None)
        if isinstance(tok_limit, int) and 0 < tok_limit < 1_000_000:
            limits.append(tok_limit)
        return min(limits) if limits else None


def _auto_class(config: Any) -> type:
    from transformers import (AutoModel, AutoModelForCausalLM, AutoModelForSeq2SeqLM,
                              AutoModelForSequenceClassification)

    if getattr(config, "is_encoder_decoder", False):
        return AutoModelForSeq2SeqLM
    architectures = getattr(config, "architectures", None) or []
    if any(a.endswith("ForSequenceClassification") for a in architectures):
        return AutoModelForSequenceClassification
    if any(a.endswith(("ForImageClassification", "ForImageClassificationWithTeacher")) for a in architectures):
        from transformers import AutoModelForImageClassification  # issue 18: image classifiers

        return AutoModelForImageClassification
    if any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in architectures) or getattr(config, "is_decoder", False):
        return AutoModelForCausalLM
    return AutoModel


def load(
    model: str | os.PathLike | tuple[PreTrainedModel, Any] | LoadedModel,
    *,
    dtype: torch.dtype = torch.float32,
    attn_implementation: str | None = None,
) -> LoadedModel:
    """Load ``model`` for inspection.

    ``model`` is a shipped name (``"headscope/en-fr"``; see ``headscope models``), a local folder
    saved with ``save_pretrained``, a Hugging Face hub name, an already loaded
    ``(model, tokenizer)`` pair, or a :class:`LoadedModel` (returned as is).
    The Auto class follows the config: seq2seq, sequence classification, causal LM.
    Names and folders are loaded once per process (by name, ``dtype`` and ``attn_implementation``)
    and shared by later calls; a loaded pair is used as it is and never changed.

    >>> load("headscope/en-fr").architecture.name      # doctest: +SKIP
    'encoder-decoder'
    """
    if isinstance(model, LoadedModel):
        return model
    if isinstance(model, tuple):
        return _from_pair(model)
    if not isinstance(model, (str, os.PathLike)):
        raise UnsupportedModelError(
            f"model: cannot load a model from {type(model).__name__}; pass a name, a folder or a "
            "(model, tokenizer) pair")
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise UnsupportedModelError(f"dtype={dtype!r}: pass a floating torch dtype such as torch.float32 or "
                                    "torch.float16 (not a string or an integer type)")
    folder = os.fspath(model)
    key = str(Path(folder).resolve()) if os.path.isdir(folder) else folder
    return _load_cached(key, dtype, attn_implementation)


def _from_pair(pair: tuple) -> LoadedModel:
    if len(pair) != 2 or not isinstance(pair[0], PreTrainedModel):
        raise UnsupportedModelError(
            "model: pass a (model, tokenizer) pair whose model is a transformers PreTrainedModel, "
            f"got a tuple of {tuple(type(m).__name__ for m in pair)}")
    net, tokenizer = pair
    if tokenizer is None or not callable(tokenizer):
        raise UnsupportedModelError(f"model: the pair ({type(net).__name__}, {type(tokenizer).__name__}) has no "
                                    "tokenizer; pass (model, AutoTokenizer.from_pretrained(...))")
    devices = {p.device.type for p in net.parameters()}
    if "meta" in devices:
        raise UnsupportedModelError(f"{type(net).__name__} has weights on the 'meta' device (no values); "
                                    "load it with real weights (from_pretrained without device_map='meta')")
    loaded = LoadedModel.of(net, tokenizer, getattr(net, "name_or_path", "") or type(net).__name__)
    _check_tokenizer(loaded)
    return loaded


@functools.lru_cache(maxsize=8)
def _load_cached(name: str, dtype: torch.dtype, attn_implementation: str | None) -> LoadedModel:
    from transformers.utils import logging as hf_logging

    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # no weight-loading bars: a load is not the user's business
    try:
        return _load_named(name, dtype, attn_implementation)
    finally:
        if bars:
            hf_logging.enable_progress_bar()


def _load_named(name: str, dtype: torch.dtype, attn_implementation: str | None) -> LoadedModel:
    check_name(name)
    if is_shipped(name):
        from .shipped import load_shipped

        net, tokenizer = load_shipped(name, dtype=dtype)
        if attn_implementation is not None:
            net.set_attn_implementation(attn_implementation)
        return LoadedModel.of(net.eval(), tokenizer, name)
    from transformers import AutoConfig, AutoTokenizer
    from transformers.utils import logging as hf_logging

    try:
        config = AutoConfig.from_pretrained(name)
    except (OSError, ValueError) as err:
        raise ModelNotFoundError(
            f"could not load model {name!r}: {_first_line(err)}. Fix: pass a folder written by save_pretrained, "
            "a reachable Hugging Face hub name, or a shipped model (`headscope models` lists them)") from None
    _check_heads(name, config)
    kwargs: dict[str, Any] = {"dtype": dtype}
    if attn_implementation is not None:
        kwargs["attn_implementation"] = attn_implementation
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        net = _auto_class(config).from_pretrained(name, **kwargs)
        images = net.main_input_name == "pixel_values"
        tokenizer = _image_processor(name) if images else AutoTokenizer.from_pretrained(name)
    except (OSError, ValueError, RuntimeError, KeyError, TypeError, ArithmeticError, SafetensorError) as err:
        raise ModelNotFoundError(
            f"could not load the weights or tokenizer of {name!r}: {_first_line(err)}. Fix: the folder needs "
            "config.json, complete weights matching that config, and the tokenizer files (write both with "
            "save_pretrained)") from None
    finally:
        hf_logging.set_verbosity(verbosity)
    loaded = LoadedModel.of(net.eval(), tokenizer, name)
    _check_tokenizer(loaded)
    return loaded


def _image_processor(name: str) -> Any:
    """The image processor saved with an image model: it prepares images for it (issue 18)."""
    from transformers import AutoImageProcessor

    return AutoImageProcessor.from_pretrained(name)


_HEAD_COUNTS = ("num_attention_heads", "encoder_attention_heads", "decoder_attention_heads", "n_head", "num_heads",
                "n_heads")


def _check_heads(name: str, config: Any) -> None:
    """A config asking for no (or a negative number of) attention heads: one line, not a ZeroDivisionError."""
    configs = [config, *(getattr(config, k, None) for k in ("text_config", "encoder", "decoder"))]
    for cfg in configs:
        for key in _HEAD_COUNTS:
            value = getattr(cfg, key, None) if cfg is not None else None
            if isinstance(value, int) and not isinstance(value, bool) and value < 1:
                raise ModelNotFoundError(
                    f"could not load model {name!r}: its config.json sets {key}={value}, and every attention layer "
                    "needs at least one head. Fix: correct config.json (or save the model again with "
                    "save_pretrained)")


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return (text[0] if text else type(err).__name__).rstrip(". ")


def _check_tokenizer(loaded: LoadedModel) -> None:
    """A tokenizer whose ids do not fit the model's embeddings belongs to another model."""
    embeddings = loaded.model.get_input_embeddings() if hasattr(loaded.model, "get_input_embeddings") else None
    rows = getattr(embeddings, "num_embeddings", None)
    size = len(loaded.tokenizer) if hasattr(loaded.tokenizer, "__len__") else None
    if isinstance(rows, int) and isinstance(size, int) and size > rows:
        raise UnsupportedModelError(
            f"the tokenizer of {loaded.name!r} has {size} tokens but the model's embedding table has {rows} rows: "
            "they do not belong together. Fix: load the tokenizer saved with this model")
