"""Tiny random models built from configs, for mechanics (tests, benchmarks, demos without weights).

Random weights carry no meaning: use the shipped models (``headscope/en-fr``,
``headscope/sentiment``) to read attention; use these to check that capture, ablation and
the rest work on every family, offline, in milliseconds.

>>> model, tokenizer = build_tiny("bart")       # doctest: +SKIP
"""

from __future__ import annotations

import collections
from typing import Any

import torch
import transformers as tf
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import PreTrainedModel, PreTrainedTokenizerFast

from ..errors import InputError, UnsupportedModelError

_CORPUS = [
    "A man in a red shirt is riding a bike down the street.",
    "Two dogs are playing in the snow near a wooden fence.",
    "A little girl climbing into a wooden playhouse.",
    "The European Economic Area agreement was signed in August 1992.",
    "Un homme en chemise rouge fait du vélo dans la rue.",
    "Deux chiens jouent dans la neige près d'une clôture en bois.",
    "Une petite fille grimpe dans une maisonnette en bois.",
    "L'accord sur la zone économique européenne a été signé en août 1992.",
    "This movie is a wonderful, moving and funny story.",
    "A dull, lifeless film with nothing to say.",
]

ENCODERS = ("bert", "roberta", "distilbert", "xlm-roberta")
SEQ2SEQ = ("marian", "bart", "mbart", "m2m100", "t5")
DECODERS = ("gpt2",)
FAMILIES = ENCODERS + SEQ2SEQ + DECODERS


def _wordpiece_vocab(specials: list[str], normalizer: Any, pre_tokenizer: Any, size: int) -> dict[str, int]:
    """A WordPiece vocabulary built the same way in every process (the tokenizers trainer breaks
    ties in hash order): specials, every character alone and as ``##c``, then the most frequent
    words of the corpus (ties alphabetical) up to ``size``."""
    counts: collections.Counter[str] = collections.Counter(
        word for line in _CORPUS for word, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(line)))
    chars = sorted({c for word in counts for c in word})
    tokens = [*specials, *chars, *(f"##{c}" for c in chars)]
    tokens += [w for w, _ in sorted(counts.items(), key=lambda wc: (-wc[1], wc[0])) if len(w) > 1]
    return {t: i for i, t in enumerate(tokens[:max(size, len(specials) + 2 * len(chars))])}


def tiny_tokenizer(style: str = "wordpiece", vocab_size: int = 300) -> PreTrainedTokenizerFast:
    """A small fast tokenizer trained in memory: ``wordpiece`` (BERT-like, [CLS]/[SEP]) or
    ``metaspace`` (SentencePiece-like, ``</s>`` appended) or ``bytelevel`` (GPT-2-like)."""
    if style == "wordpiece":
        specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        normalizer, pre_tokenizer = normalizers.BertNormalizer(lowercase=True), pre_tokenizers.BertPreTokenizer()
        tok = Tokenizer(models.WordPiece(_wordpiece_vocab(specials, normalizer, pre_tokenizer, vocab_size),
                                         unk_token="[UNK]"))
        tok.normalizer, tok.pre_tokenizer, tok.decoder = normalizer, pre_tokenizer, decoders.WordPiece()
        cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
        tok.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]", special_tokens=[("[CLS]", cls), ("[SEP]", sep)]
        )
        return PreTrainedTokenizerFast(
            tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]",
            mask_token="[MASK]", model_max_length=64,
        )
    if style == "metaspace":
        specials = ["<pad>", "</s>", "<unk>"]
        tok = Tokenizer(models.BPE(unk_token="<unk>"))
        tok.pre_tokenizer = pre_tokenizers.Metaspace()
        tok.decoder = decoders.Metaspace()
        tok.train_from_iterator(_CORPUS, trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials, show_progress=False))
        tok.post_processor = processors.TemplateProcessing(
            single="$A </s>", pair="$A </s> $B </s>", special_tokens=[("</s>", tok.token_to_id("</s>"))]
        )
        return PreTrainedTokenizerFast(
            tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>", model_max_length=64
        )
    if style == "bytelevel":
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        tok.train_from_iterator(
            _CORPUS,
            trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<|endoftext|>"],
                                initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False),
        )
        return PreTrainedTokenizerFast(
            tokenizer_object=tok, eos_token="<|endoftext|>", pad_token="<|endoftext|>", model_max_length=64
        )
    raise UnsupportedModelError(f"unknown tiny tokenizer style {style!r}; choose wordpiece, metaspace or bytelevel")


def tiny_config(family: str, vocab_size: int, layers: int = 2, heads: int = 4, width: int = 32,
                ffn: int = 37, max_positions: int = 64, **special: int) -> tf.PretrainedConfig:
    """A small config of ``family`` (one of :data:`FAMILIES`) with random-init-friendly sizes."""
    enc = dict(vocab_size=vocab_size, hidden_size=width, num_hidden_layers=layers, num_attention_heads=heads,
               intermediate_size=ffn, max_position_embeddings=max_positions, num_labels=2, **special)
    s2s = dict(vocab_size=vocab_size, d_model=width, encoder_layers=layers, decoder_layers=layers,
               encoder_attention_heads=heads, decoder_attention_heads=heads, encoder_ffn_dim=ffn, decoder_ffn_dim=ffn,
               max_position_embeddings=max_positions, **special)
    if family == "bert":
        return tf.BertConfig(**enc)
    if family == "roberta":
        return tf.RobertaConfig(**{**enc, "max_position_embeddings": max_positions + 2})
    if family == "xlm-roberta":
        return tf.XLMRobertaConfig(**{**enc, "max_position_embeddings": max_positions + 2})
    if family == "distilbert":
        return tf.DistilBertConfig(vocab_size=vocab_size, dim=width, n_layers=layers, n_heads=heads, hidden_dim=ffn,
                                   max_position_embeddings=max_positions, num_labels=2, **special)
    if family == "marian":
        return tf.MarianConfig(**s2s, scale_embedding=True)
    if family == "bart":
        return tf.BartConfig(**s2s)
    if family == "mbart":
        return tf.MBartConfig(**s2s)
    if family == "m2m100":
        return tf.M2M100Config(**s2s)
    if family == "t5":
        return tf.T5Config(vocab_size=vocab_size, d_model=width, d_kv=width // heads, d_ff=ffn, num_layers=layers,
                           num_decoder_layers=layers, num_heads=heads, **special)
    if family == "gpt2":
        return tf.GPT2Config(vocab_size=vocab_size, n_embd=width, n_layer=layers, n_head=heads,
                             n_positions=max_positions, **special)
    raise UnsupportedModelError(f"no tiny config for family {family!r}; choose from {FAMILIES}")


_MODEL_CLASSES = {
    "bert": tf.BertForSequenceClassification, "roberta": tf.RobertaForSequenceClassification,
    "distilbert": tf.DistilBertForSequenceClassification, "xlm-roberta": tf.XLMRobertaForSequenceClassification,
    "marian": tf.MarianMTModel, "bart": tf.BartForConditionalGeneration, "mbart": tf.MBartForConditionalGeneration,
    "m2m100": tf.M2M100ForConditionalGeneration, "t5": tf.T5ForConditionalGeneration, "gpt2": tf.GPT2LMHeadModel,
}


def build_tiny(family: str, *, layers: int = 2, heads: int = 4, width: int = 32, ffn: int = 37, seed: int = 0,
               attn_implementation: str = "eager") -> tuple[PreTrainedModel, PreTrainedTokenizerFast]:
    """A tiny random ``(model, tokenizer)`` pair of ``family``, in eval mode, built offline."""
    if family not in _MODEL_CLASSES:
        raise UnsupportedModelError(f"no tiny model for family {family!r}; choose from {FAMILIES}")
    for key, value in (("layers", layers), ("heads", heads), ("width", width), ("ffn", ffn)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise InputError(f"{key}={value!r}: a tiny model needs a positive whole number")
    if width % heads:
        raise InputError(f"width={width} is not a multiple of heads={heads}: each head gets width / heads dimensions")
    style = "wordpiece" if family in ENCODERS else "bytelevel" if family in DECODERS else "metaspace"
    tokenizer = tiny_tokenizer(style)
    if family in SEQ2SEQ:
        special = dict(pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                       decoder_start_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.pad_token_id)
        if family in ("bart", "mbart", "m2m100"):
            special["forced_eos_token_id"] = tokenizer.eos_token_id
    elif family in DECODERS:
        special = dict(bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id,
                       pad_token_id=tokenizer.pad_token_id)
    else:
        special = dict(pad_token_id=tokenizer.pad_token_id)
    config = tiny_config(family, len(tokenizer), layers=layers, heads=heads, width=width, ffn=ffn, **special)
    config._attn_implementation = attn_implementation
    torch.manual_seed(seed)
    model = _MODEL_CLASSES[family](config).eval()
    if family in DECODERS:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def random_like(name: str, *, seed: int = 0) -> tuple[PreTrainedModel, PreTrainedTokenizerFast]:
    """A random-weight model with the config and tokenizer of shipped model ``name``.

    The reference point for "what does training add?": same shape, same tokenizer, no learning.

    >>> model, tokenizer = random_like("headscope/en-fr")      # doctest: +SKIP
    """
    from transformers import AutoConfig, AutoTokenizer

    from .loading import _auto_class
    from .shipped import _lookup

    folder = str(_lookup(name).path)
    config = AutoConfig.from_pretrained(folder)
    config.dtype = torch.float32
    config._attn_implementation = "eager"
    torch.manual_seed(seed)
    model = _auto_class(config).from_config(config).float().eval()
    return model, AutoTokenizer.from_pretrained(folder)
