"""Architecture kinds: what differs between encoder-only, decoder-only and encoder-decoder models.

Each kind is one small strategy class; code that behaves differently by kind asks the strategy
instead of testing a string. Look one up with :func:`architecture_of` (a model) or
:func:`architecture_named` (a saved name).

* :class:`EncoderOnly` (``"encoder"``): BERT-like text and vision encoders; self-attention is
  ``encoder``; the output is a label (or the encoder states).
* :class:`DecoderOnly` (``"decoder"``): GPT-like causal models; self-attention is ``decoder``;
  the output is the next token (or a label, for a sequence-classification head).
* :class:`EncoderDecoder` (``"encoder-decoder"``): Marian, BART, T5; ``encoder``, ``decoder`` and
  ``cross`` attention; the output is generated (or forced) text, or a label for a classifier head.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from ..errors import InputError, UnsupportedModelError


class Architecture:
    """Base strategy. Subclasses set :attr:`name`, :attr:`self_kind` and :attr:`kinds`."""

    name: ClassVar[str]
    self_kind: ClassVar[str]          # the kind label of self-attention
    kinds: ClassVar[tuple[str, ...]]  # the kinds this architecture can have
    has_target: ClassVar[bool] = False

    def masks(self, kind: str, source_mask: torch.Tensor,
              target_mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(query mask, key mask)`` of the maps of ``kind`` in a padded batch."""
        return source_mask, source_mask

    def query_is_target(self, kind: str) -> bool:
        """Whether the rows of ``kind`` maps are target (decoder-side) tokens."""
        return False

    def key_is_target(self, kind: str) -> bool:
        """Whether the columns of ``kind`` maps are target (decoder-side) tokens."""
        return False

    def predict(self, model: Any, tokenizer: Any, logits: torch.Tensor, source_mask: torch.Tensor) -> dict[str, Any]:
        """The prediction of one example from its logits: a label when the model has a label head."""
        return label_prediction(model, logits)

    def __repr__(self) -> str:
        return f"<architecture {self.name}>"


def label_prediction(model: Any, logits: torch.Tensor) -> dict[str, Any]:
    """``{"label", "probabilities"}`` from one example's class logits ``[classes]``."""
    probs = torch.softmax(logits.float(), -1)
    names = getattr(model.config, "id2label", None) or {}
    top = int(probs.argmax())
    return {
        "label": names.get(top, str(top)),
        "probabilities": {names.get(i, str(i)): round(float(p), 6) for i, p in enumerate(probs)},
    }


def has_label_head(logits: torch.Tensor) -> bool:
    """A classification head gives ``[batch, classes]`` logits; LM heads give ``[batch, length, vocab]``."""
    return logits.ndim == 2


class EncoderOnly(Architecture):
    """BERT-like encoders (text or image): one self-attention stack labelled ``encoder``."""

    name = "encoder"
    self_kind = "encoder"
    kinds = ("encoder",)


class DecoderOnly(Architecture):
    """GPT-like causal models: one self-attention stack labelled ``decoder``."""

    name = "decoder"
    self_kind = "decoder"
    kinds = ("decoder",)

    def predict(self, model: Any, tokenizer: Any, logits: torch.Tensor, source_mask: torch.Tensor) -> dict[str, Any]:
        if logits.ndim == 1:
            return label_prediction(model, logits)
        last = int(source_mask.nonzero().max())
        probs = torch.softmax(logits[last].float(), -1)
        top = int(probs.argmax())
        return {"next_token": tokenizer.convert_ids_to_tokens(top), "probability": round(float(probs[top]), 6)}


class EncoderDecoder(Architecture):
    """Sequence-to-sequence models: ``encoder``, ``decoder`` (self) and ``cross`` attention."""

    name = "encoder-decoder"
    self_kind = "encoder"  # the encoder stack; the decoder stack's self-attention is "decoder"
    kinds = ("encoder", "decoder", "cross")
    has_target = True

    def masks(self, kind: str, source_mask: torch.Tensor,
              target_mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        if kind == "encoder" or target_mask is None:
            return source_mask, source_mask
        if kind == "cross":
            return target_mask, source_mask
        return target_mask, target_mask

    def query_is_target(self, kind: str) -> bool:
        return kind != "encoder"

    def key_is_target(self, kind: str) -> bool:
        return kind == "decoder"

    def predict(self, model: Any, tokenizer: Any, logits: torch.Tensor, source_mask: torch.Tensor) -> dict[str, Any]:
        # text predictions are filled in by the runner from the target; a label head predicts a label
        return label_prediction(model, logits) if logits.ndim == 1 else {}


ARCHITECTURES: dict[str, Architecture] = {a.name: a for a in (EncoderOnly(), DecoderOnly(), EncoderDecoder())}
_LEGACY = {"classifier": "encoder"}  # format 1 inspections named encoder-only models "classifier"


def architecture_named(name: str) -> Architecture:
    """The strategy of a saved architecture name (``"encoder"``, ``"decoder"``, ``"encoder-decoder"``)."""
    name = _LEGACY.get(name, name)
    if name not in ARCHITECTURES:
        raise InputError(f"unknown architecture {name!r}; known: {sorted(ARCHITECTURES)}")
    return ARCHITECTURES[name]


def architecture_of(model: Any) -> Architecture:
    """The architecture kind of a loaded transformers model, from its config and class.

    Encoder-decoders declare ``is_encoder_decoder``; decoder-only models are causal LMs or
    declare ``is_decoder`` (also when they carry a classification head); the rest are encoders.
    """
    config = getattr(model, "config", None)
    if config is None:
        raise UnsupportedModelError(
            f"{type(model).__name__} has no transformers config; pass a Hugging Face PreTrainedModel "
            "(e.g. loaded with AutoModelForSeq2SeqLM / AutoModelForSequenceClassification)."
        )
    if getattr(config, "is_encoder_decoder", False):
        return ARCHITECTURES["encoder-decoder"]
    if getattr(config, "is_decoder", False) or type(model).__name__.endswith(("ForCausalLM", "LMHeadModel")):
        return ARCHITECTURES["decoder"]
    return ARCHITECTURES["encoder"]


def decoder_inputs(model: Any, labels: torch.Tensor, pad_id: int) -> torch.Tensor:
    """Teacher-forcing decoder inputs for ``labels``: the model's own shift, else start token + labels[:-1]."""
    if hasattr(model, "prepare_decoder_input_ids_from_labels"):
        return model.prepare_decoder_input_ids_from_labels(labels=labels)
    start = model.config.decoder_start_token_id
    if start is None:
        raise InputError(f"{type(model).__name__} has no decoder_start_token_id; "
                         "set model.config.decoder_start_token_id")
    shifted = labels.new_full(labels.shape, pad_id)
    shifted[:, 1:] = labels[:, :-1]
    shifted[:, 0] = start
    return shifted
