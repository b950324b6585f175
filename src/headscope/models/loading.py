"""Load a model and its tokenizer: shipped names, local folders, hub names, or loaded pairs."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForSeq2SeqLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PreTrainedModel,
)

from ..errors import ModelNotFoundError, UnsupportedModelError
from .architectures import Architecture
from .structure import ModelStructure, describe

DEFAULT_MODEL = "headscope/en-fr"
SHIPPED_PREFIX = "headscope/"


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
    if getattr(config, "is_encoder_decoder", False):
        return AutoModelForSeq2SeqLM
    architectures = getattr(config, "architectures", None) or []
    if any(a.endswith("ForSequenceClassification") for a in architectures):
        return AutoModelForSequenceClassification
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
    """
    if isinstance(model, LoadedModel):
        return model
    if isinstance(model, tuple):
        if len(model) != 2 or not isinstance(model[0], PreTrainedModel):
            raise UnsupportedModelError(
                "pass a (model, tokenizer) pair whose model is a transformers PreTrainedModel, "
                f"got {tuple(type(m).__name__ for m in model)}"
            )
        net, tokenizer = model
        return LoadedModel.of(net, tokenizer, getattr(net, "name_or_path", "") or type(net).__name__)
    if not isinstance(model, (str, os.PathLike)):
        raise UnsupportedModelError(
            f"cannot load a model from {type(model).__name__}; pass a name, a folder or a (model, tokenizer) pair"
        )
    name = os.fspath(model)
    if name.startswith(SHIPPED_PREFIX) and not os.path.isdir(name):
        from .shipped import list_shipped, load_shipped

        known = [m.name for m in list_shipped()]
        if name not in known:
            raise ModelNotFoundError(f"unknown shipped model {name!r}; the shipped models are {known} "
                                     "(`headscope models` lists them)")
        net, tokenizer = load_shipped(name, dtype=dtype)
        if attn_implementation is not None:
            net.set_attn_implementation(attn_implementation)
        return LoadedModel.of(net.eval(), tokenizer, name)
    try:
        config = AutoConfig.from_pretrained(name)
    except (OSError, ValueError) as err:
        where = "local folder" if os.path.isdir(name) else "name"
        raise ModelNotFoundError(
            f"could not load model {name!r} ({where}): {str(err).splitlines()[0]}. "
            "Fix: pass a folder written by save_pretrained, a reachable Hugging Face hub name, "
            "or a shipped model (`headscope models` lists them, e.g. 'headscope/en-fr')."
        ) from None
    auto = _auto_class(config)
    kwargs: dict[str, Any] = {"dtype": dtype}
    if attn_implementation is not None:
        kwargs["attn_implementation"] = attn_implementation
    try:
        net = auto.from_pretrained(name, **kwargs)
        tokenizer = AutoTokenizer.from_pretrained(name)
    except (OSError, ValueError) as err:
        raise ModelNotFoundError(
            f"could not load the weights or tokenizer of {name!r}: {str(err).splitlines()[0]}. "
            "Fix: make sure the folder holds config.json, the weights and the tokenizer files "
            "(save both with save_pretrained)."
        ) from None
    return LoadedModel.of(net.eval(), tokenizer, name)
