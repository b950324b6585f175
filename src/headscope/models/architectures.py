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
* :class:`VisionEncoder` (``"vision-encoder"``): ViT, DeiT, BEiT, DINOv2; an encoder whose input is
  an image cut into patches: its tokens are special tokens and a patch grid (:class:`TokenLayout`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from ..errors import InputError, UnsupportedModelError


class Architecture:
    """Base strategy. Subclasses set :attr:`name`, :attr:`self_kind` and :attr:`kinds`."""

    name: ClassVar[str]
    self_kind: ClassVar[str]          # the kind label of self-attention
    kinds: ClassVar[tuple[str, ...]]  # the kinds this architecture can have
    has_target: ClassVar[bool] = False
    reads_images: ClassVar[bool] = False  # its input is an image on a patch grid, not text

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
        """The prediction of one example from its logits: a label when the model has a label head,
        the top token at each source position for a language-model head over the source (a masked
        or permutation LM: BERT, XLM, XLNet)."""
        if logits.ndim == 2:
            top = logits[source_mask.bool()].argmax(-1).tolist()
            return {"tokens": tokenizer.convert_ids_to_tokens(top)}
        return label_prediction(model, logits)

    def __repr__(self) -> str:
        return f"<architecture {self.name}>"

    # -- structure: reading the model's own attention outputs --

    def output_fields(self) -> dict[str, tuple[str, str]]:
        """``{kind: (output field with the maps, its global-attention field)}`` of the model's outputs
        with ``output_attentions=True``.

        >>> ARCHITECTURES["decoder"].output_fields()["decoder"]
        ('attentions', 'global_attentions')
        """
        return {self.self_kind: ("attentions", "global_attentions"), "cross": ("cross_attentions", "")}

    def when_causal(self) -> "Architecture":
        """The architecture of a model of this kind whose self-attention turns out to be causal (a
        classification head on a causal model is decoder-only); itself unless overridden."""
        return self

    # -- coverage: how the decoder side is fed (issue 12) --

    def decoder_reads_source(self, model: Any) -> bool:
        """Whether the decoder side reads the source itself instead of a generated or forced target:
        an encoder-decoder with a label head. Only encoder-decoders have a decoder side."""
        return False

    # -- faithfulness: scoring the model's own decision --
    # What a language-model output decides and how its log-probabilities are read (headscope.faithful).
    # A classification head decides one label whatever the architecture: faithful scores that itself.

    def decision_kind(self) -> str:
        """The attention kind whose query rows relate each decision to the source tokens.

        >>> ARCHITECTURES["encoder-decoder"].decision_kind(), ARCHITECTURES["encoder"].decision_kind()
        ('cross', 'encoder')
        """
        return self.self_kind

    def decision_rows(self, n_queries: int, n_decisions: int) -> list[int]:
        """The query row of each of ``n_decisions`` decisions in maps of :meth:`decision_kind`: the last rows.

        >>> ARCHITECTURES["decoder"].decision_rows(5, 1)
        [4]
        """
        return list(range(n_queries - n_decisions, n_queries))

    def scoring_inputs(self, model: Any, source: torch.Tensor, source_mask: torch.Tensor,
                       target: torch.Tensor | None, target_mask: torch.Tensor | None,
                       pad_id: int) -> dict[str, torch.Tensor]:
        """Forward inputs of a right-padded batch whose output is scored: the source tokens."""
        return {"input_ids": source, "attention_mask": source_mask}

    def decision_logits(self, logits: torch.Tensor, n_source: int, n_target: int | None) -> torch.Tensor:
        """``[D, vocabulary]`` logits of the ``D`` decisions in one example's (padded) LM logits."""
        raise UnsupportedModelError(
            f"an {self.name}-only model's output is a label: load it with a classification head "
            "(AutoModelForSequenceClassification) to score its decision")

    def decision(self, decision_logits: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
        """``[D]`` the decisions the model made: the argmax token of each decision's logits."""
        return decision_logits.argmax(-1)

    def decision_logprobs(self, logits: torch.Tensor, source: torch.Tensor, target: torch.Tensor | None,
                          decisions: torch.Tensor) -> torch.Tensor:
        """Log-probabilities scored on one example; the last ``D`` entries are those of ``decisions``.

        ``logits`` is the example's row of the batch, ``source`` / ``target`` its unpadded ids.
        """
        n_target = None if target is None else len(target)
        logp = torch.log_softmax(self.decision_logits(logits, len(source), n_target).float(), -1)
        return logp.gather(-1, decisions[:, None])[:, 0]

    def ablation_effects(self, base: torch.Tensor, ablated: torch.Tensor, base_logits: torch.Tensor,
                         ablated_logits: torch.Tensor) -> dict[str, float]:
        """Effects of an ablation, original minus ablated (primary first), from :meth:`decision_logprobs`:
        ``ll_drop``, the drop of the output's log-likelihood (the decision logits are not needed)."""
        return {"ll_drop": float((base - ablated).double().sum())}

    def likelihood(self, logprobs: torch.Tensor) -> torch.Tensor:
        """The log-likelihood of the model's own output from :meth:`decision_logprobs` (a scalar)."""
        return logprobs.sum()

    def encoder_states(self, model: Any, inputs: dict[str, torch.Tensor]) -> torch.Tensor | None:
        """The encoder output an ablation of decoder-side heads can reuse; ``None``: no separate encoder."""
        return None

    def with_encoder_states(self, inputs: dict[str, torch.Tensor], states: torch.Tensor) -> dict[str, torch.Tensor]:
        """``inputs`` running the decoder only, on precomputed :meth:`encoder_states` rows ``states``."""
        raise UnsupportedModelError(f"an {self.name} model has no separate encoder output to reuse")

    def source_embeddings(self, model: Any) -> torch.nn.Module:
        """The embedding table that looks up the source tokens."""
        return model.get_input_embeddings()


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

    def when_causal(self) -> Architecture:
        """A causal model with a classification head is decoder-only.

        >>> ARCHITECTURES["encoder"].when_causal().name
        'decoder'
        """
        return ARCHITECTURES["decoder"]

    # -- faithfulness: scoring the model's own decision --

    def decision_rows(self, n_queries: int, n_decisions: int) -> list[int]:
        """An encoder's label is read from the first token (``[CLS]``): row 0.

        >>> ARCHITECTURES["encoder"].decision_rows(5, 1)
        [0]
        """
        return list(range(n_decisions))


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

    # -- faithfulness: scoring the model's own decision --

    def decision_logits(self, logits: torch.Tensor, n_source: int, n_target: int | None) -> torch.Tensor:
        """The next token after the text: the logits at its last position, ``[1, vocabulary]``."""
        return logits[n_source - 1:n_source]

    def decision_logprobs(self, logits: torch.Tensor, source: torch.Tensor, target: torch.Tensor | None,
                          decisions: torch.Tensor) -> torch.Tensor:
        """``[S]``: ``log p(x_t | x_<t)`` of each text token after the first, then the next token's."""
        logp = torch.log_softmax(logits[: len(source)].float(), -1)
        text = logp[:-1].gather(-1, source[1:, None])[:, 0]
        return torch.cat([text, logp[-1:].gather(-1, decisions[:, None])[:, 0]])

    def ablation_effects(self, base: torch.Tensor, ablated: torch.Tensor, base_logits: torch.Tensor,
                         ablated_logits: torch.Tensor) -> dict[str, float]:
        """``ll_drop`` of the text's own log-likelihood and ``next_drop`` of the next token's."""
        drop = (base - ablated).double()
        return {"ll_drop": float(drop[:-1].sum()), "next_drop": float(drop[-1])}

    def likelihood(self, logprobs: torch.Tensor) -> torch.Tensor:
        """The text's log-likelihood (the next token left out)."""
        return logprobs[:-1].sum()


class EncoderDecoder(Architecture):
    """Sequence-to-sequence models: ``encoder``, ``decoder`` (self) and ``cross`` attention."""

    name = "encoder-decoder"
    self_kind = "encoder"  # the encoder stack; the decoder stack's self-attention is "decoder"
    kinds = ("encoder", "decoder", "cross")
    has_target = True

    def output_fields(self) -> dict[str, tuple[str, str]]:
        return {"encoder": ("encoder_attentions", "encoder_global_attentions"),
                "decoder": ("decoder_attentions", ""), "cross": ("cross_attentions", "")}

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

    # -- coverage: how the decoder side is fed (issue 12) --

    def decoder_reads_source(self, model: Any) -> bool:
        """An encoder-decoder classifier (``BartForSequenceClassification``, ``T5ForSequenceClassification``)
        cannot generate: its decoder reads the source shifted right (what the model does when given no
        decoder inputs) and its output is the label.

        >>> from headscope.models import build_tiny
        >>> ARCHITECTURES["encoder-decoder"].decoder_reads_source(build_tiny("bart")[0])
        False
        """
        can_generate = getattr(model, "can_generate", None)
        return not (callable(can_generate) and can_generate())

    # -- faithfulness: scoring the model's own decision --

    def decision_kind(self) -> str:
        """Cross attention: its row ``t`` is the step that outputs ``target[t]``."""
        return "cross"

    def scoring_inputs(self, model: Any, source: torch.Tensor, source_mask: torch.Tensor,
                       target: torch.Tensor | None, target_mask: torch.Tensor | None,
                       pad_id: int) -> dict[str, torch.Tensor]:
        """The source, and the target by teacher forcing (:func:`decoder_inputs`)."""
        if target is None or target_mask is None:
            raise InputError("an encoder-decoder's output is scored on its target: inspect it with or "
                             "without target= so that the Inspection has target tokens")
        return {"input_ids": source, "attention_mask": source_mask,
                "decoder_input_ids": decoder_inputs(model, target, pad_id), "decoder_attention_mask": target_mask}

    def decision_logits(self, logits: torch.Tensor, n_source: int, n_target: int | None) -> torch.Tensor:
        """One decision per target token: the logits of the first ``n_target`` decoder steps."""
        return logits[:n_target]

    def decision(self, decision_logits: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
        """The target tokens themselves (generated by the model, or forced)."""
        return target

    def encoder_states(self, model: Any, inputs: dict[str, torch.Tensor]) -> torch.Tensor | None:
        """The encoder's last hidden states of ``inputs``' source."""
        out = model.get_encoder()(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"])
        return out.last_hidden_state

    def with_encoder_states(self, inputs: dict[str, torch.Tensor], states: torch.Tensor) -> dict[str, torch.Tensor]:
        """``inputs`` without the source ids, with ``encoder_outputs`` cut to the batch's source width."""
        out = {k: v for k, v in inputs.items() if k != "input_ids"}
        out["encoder_outputs"] = (states[:, : inputs["attention_mask"].shape[1]],)
        return out

    def source_embeddings(self, model: Any) -> torch.nn.Module:
        """The encoder's embedding table (the decoder may have its own, or share it)."""
        return model.get_encoder().get_input_embeddings()


# -- vision: image encoders read on their patch grid (issue 18) --


@dataclass(frozen=True)
class TokenLayout:
    """Where each token of an image encoder's sequence sits.

    ``tokens``: a name per token (``"[CLS]"``, ``"[DIST]"``, ``"[REG0]"``, ``"p(2,3)"``);
    ``word_ids``: the patch index ``row * cols + col`` of each patch token, ``None`` for special
    tokens; ``grid``: ``(rows, cols)`` of the patch grid.
    """

    tokens: list[str]
    word_ids: list[int | None]
    grid: tuple[int, int]

    def position(self, i: int) -> tuple[int, int] | None:
        """``(row, col)`` of token ``i`` on the grid, ``None`` for a special token."""
        w = self.word_ids[i]
        return None if w is None else divmod(w, self.grid[1])


class VisionEncoder(EncoderOnly):
    """Image encoders whose sequence is special tokens and a grid of patches (ViT, DeiT, BEiT, DINOv2,
    YOLOS): self-attention is ``encoder``, the output a label; the input is ``pixel_values`` prepared
    by the model's own image processor, and every token has a place on the patch grid or a name."""

    name = "vision-encoder"
    reads_images = True

    def prepare_images(self, processor: Any, images: list[Any]) -> torch.Tensor:
        """``pixel_values [n, channels, H, W]`` of ``images`` (PIL images or arrays) by the model's processor."""
        if processor is None or not callable(processor):
            raise InputError("this image model was loaded without its image processor; pass (model, "
                             "AutoImageProcessor.from_pretrained(...)) or a folder with preprocessor_config.json")
        try:
            return processor(images=images, return_tensors="pt")["pixel_values"]
        except (TypeError, KeyError) as err:
            raise InputError(f"{type(processor).__name__} did not prepare the images ({err}); pass the model with its "
                             "image processor: (model, AutoImageProcessor.from_pretrained(...))") from None

    def patch_grid(self, model: Any, height: int, width: int) -> tuple[int, int]:
        """``(rows, cols)`` of patches the model cuts an ``height x width`` input into."""
        config = getattr(model.config, "vision_config", None) or model.config
        patch = getattr(config, "patch_size", None)
        if isinstance(patch, (list, tuple)):
            ph, pw = int(patch[0]), int(patch[-1])
        elif isinstance(patch, int):
            ph = pw = patch
        else:
            raise UnsupportedModelError(f"{type(model).__name__} has no patch_size in its config: headscope "
                                        "reads image encoders whose tokens are a grid of patches")
        return height // ph, width // pw

    def token_layout(self, model: Any, height: int, width: int, n_tokens: int) -> TokenLayout:
        """Names and grid places of the ``n_tokens`` tokens of an ``height x width`` input.

        Special tokens come first (``[CLS]``; DeiT's distillation token ``[DIST]``; registers
        ``[REG0]``...), then the patches row by row; YOLOS appends its detection tokens ``[DET0]``...
        """
        rows, cols = self.patch_grid(model, height, width)
        config = getattr(model.config, "vision_config", None) or model.config
        n_special = n_tokens - rows * cols
        trailing = int(getattr(config, "num_detection_tokens", 0) or 0) if config.model_type == "yolos" else 0
        leading = n_special - trailing
        if leading < 0:
            raise UnsupportedModelError(
                f"{type(model).__name__}: {n_tokens} tokens for a {rows}x{cols} patch grid; its sequence is not "
                "special tokens plus one token per patch (a hierarchical or windowed model?)")
        registers = int(getattr(config, "num_register_tokens", 0) or 0)
        names = ["[CLS]"] if leading else []
        if config.model_type == "deit" and leading == 2:
            names.append("[DIST]")
        names += [f"[REG{i}]" for i in range(min(registers, leading - len(names)))]
        names += [f"[SPECIAL{i}]" for i in range(len(names), leading)]
        tokens = names + [f"p({r},{c})" for r in range(rows) for c in range(cols)]
        tokens += [f"[DET{i}]" for i in range(trailing)]
        word_ids = [None] * leading + list(range(rows * cols)) + [None] * trailing
        return TokenLayout(tokens, word_ids, (rows, cols))


def is_vision_encoder(model: Any) -> bool:
    """A non-causal single stack that reads ``pixel_values`` cut into patches (``config.patch_size``)."""
    config = getattr(model, "config", None)
    vision = getattr(config, "vision_config", None) or config
    return (getattr(type(model), "main_input_name", None) == "pixel_values"
            and getattr(vision, "patch_size", None) is not None
            and not getattr(config, "is_encoder_decoder", False))


ARCHITECTURES: dict[str, Architecture] = {a.name: a for a in (EncoderOnly(), DecoderOnly(), EncoderDecoder(),
                                                                    VisionEncoder())}
_LEGACY = {"classifier": "encoder"}  # format 1 inspections named encoder-only models "classifier"


def architecture_named(name: str) -> Architecture:
    """The strategy of a saved architecture name (``"encoder"``, ``"decoder"``, ``"encoder-decoder"``)."""
    name = _LEGACY.get(name, name)
    if name not in ARCHITECTURES:
        raise InputError(f"unknown architecture {name!r}; known: {sorted(ARCHITECTURES)}")
    return ARCHITECTURES[name]


def architecture_of(model: Any) -> Architecture:
    """The architecture kind of a loaded transformers model, from its config and class.

    Encoder-decoders declare ``is_encoder_decoder``. A single stack is decoder-only when its
    self-attention is causal on a plain forward (:func:`self_attention_is_causal`): the config's
    own flag where it has one (``is_decoder``, XLM's ``causal``, XLNet's ``attn_type``), else
    whether the model type is one of transformers' causal LMs (also when the model carries a
    classification head: ``LlamaForSequenceClassification`` is decoder-only). The rest are encoders.
    """
    config = getattr(model, "config", None)
    if config is None:
        raise UnsupportedModelError(
            f"{type(model).__name__} has no transformers config; pass a Hugging Face PreTrainedModel "
            "(e.g. loaded with AutoModelForSeq2SeqLM / AutoModelForSequenceClassification)."
        )
    if getattr(config, "is_encoder_decoder", False):
        return ARCHITECTURES["encoder-decoder"]
    if self_attention_is_causal(model):
        return ARCHITECTURES["decoder"]
    return ARCHITECTURES["vision-encoder" if is_vision_encoder(model) else "encoder"]


def decoder_inputs(model: Any, labels: torch.Tensor, pad_id: int) -> torch.Tensor:
    """Teacher-forcing decoder inputs for ``labels``: the model's own shift, else start token + labels[:-1].

    The model's own shift is its ``prepare_decoder_input_ids_from_labels``, else (classifier heads)
    the shift its forward applies when given no decoder inputs: ``_shift_right`` (T5 family) or the
    module's ``shift_tokens_right`` (BART family; mBART's moves the last token to the front).
    """
    if hasattr(model, "prepare_decoder_input_ids_from_labels"):
        return model.prepare_decoder_input_ids_from_labels(labels=labels)
    own = _own_shift(model, labels)
    if own is not None:
        return own
    start = model.config.decoder_start_token_id
    if start is None:
        raise InputError(f"{type(model).__name__} has no decoder_start_token_id; "
                         "set model.config.decoder_start_token_id")
    shifted = labels.new_full(labels.shape, pad_id)
    shifted[:, 1:] = labels[:, :-1]
    shifted[:, 0] = start
    return shifted


# -- coverage: which single stacks are causal, which encoder-decoders generate (issue 12) --

# Model types whose plain forward is bidirectional although transformers lists them as causal LMs
# and their config has no flag saying so: CPM-Ant is a prefix LM whose whole input is context.
_PREFIX_LMS = frozenset({"cpmant"})


def self_attention_is_causal(model: Any) -> bool:
    """Whether a single-stack model's self-attention is causal on a plain forward.

    The config's own flag decides where there is one: ``is_decoder`` (BERT-like stacks, Reformer),
    ``causal`` (XLM), ``attn_type`` (XLNet: ``"bi"`` without a permutation mask). Otherwise a
    model whose type is one of transformers' causal LMs (or causal image models, ImageGPT) is causal,
    whatever head it carries.
    """
    config = model.config
    flags = getattr(config, "__dict__", {})
    if "is_decoder" in flags or hasattr(type(config), "is_decoder"):
        if getattr(config, "is_decoder", False):
            return True
        return False
    if "causal" in flags:
        return bool(flags["causal"])
    if "attn_type" in flags:
        return flags["attn_type"] != "bi"
    model_type = getattr(config, "model_type", "")
    if model_type in _PREFIX_LMS:
        return False
    if type(model).__name__.endswith(("ForCausalLM", "LMHeadModel")):
        return True
    from transformers.models.auto import modeling_auto

    return (model_type in modeling_auto.MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
            or model_type in modeling_auto.MODEL_FOR_CAUSAL_IMAGE_MODELING_MAPPING_NAMES)


def _own_shift(model: Any, labels: torch.Tensor) -> torch.Tensor | None:
    """The right shift ``model``'s forward applies to its source when given no decoder inputs, if it has one."""
    import inspect
    import sys

    if callable(getattr(model, "_shift_right", None)):
        return model._shift_right(labels)
    shift = getattr(sys.modules.get(type(model).__module__), "shift_tokens_right", None)
    config = model.config
    if not callable(shift) or getattr(config, "pad_token_id", None) is None:
        return None
    if len(inspect.signature(shift).parameters) >= 3:
        start = getattr(config, "decoder_start_token_id", None)
        return None if start is None else shift(labels, config.pad_token_id, start)
    return shift(labels, config.pad_token_id)
