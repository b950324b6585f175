"""Coverage sweep: every attention architecture in the installed transformers, built tiny.

For every model type in transformers' seq2seq-LM, sequence-classification, causal-LM and
image-classification auto mappings (read from the installed transformers, not a list kept here):
build the class tiny from its config (random weights, eager attention), run it once with
``output_attentions=True`` and compare headscope's capture with what the model returns.

Outcomes per (mapping, type):

* ``exact``: headscope's maps equal the model's own eager maps (<= 1e-6, after the documented
  layout change where the model returns another layout), with the right kinds, one map per
  application of every layer; an SDPA load gives the same maps; a capture leaves the model's
  outputs bit-for-bit unchanged.
* ``refused``: headscope raised ``UnsupportedModelError`` naming the model type and the reason.
* ``skipped``: the tiny model cannot be built offline (needs timm, a download, ...); not a
  headscope outcome.
* ``mismatch`` / ``error`` / ``timeout``: a headscope failure (the test suite allows none of
  ``error``, and at most 2% of ``mismatch`` + refusals of types whose eager forward returns attentions).

    python benchmarks/coverage_sweep.py [--workers 2] [--timeout 60] [--only llama,bert] [--out docs/coverage.md]

With ``--readings`` it computes instead the readings beyond the raw weights (norm, ALTI, value zeroing,
gradient rollout) on every type's first example and prints, per reading, how many types computed it and
how many refused it by name; any other exception is an ``error``:

    python benchmarks/coverage_sweep.py --readings
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
import time
import traceback
from collections import Counter
from dataclasses import asdict, dataclass, field
from multiprocessing.connection import wait
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
COMMAND = "python benchmarks/coverage_sweep.py"
MAPPINGS = {
    "seq2seq-lm": "MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES",
    "sequence-classification": "MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES",
    "causal-lm": "MODEL_FOR_CAUSAL_LM_MAPPING_NAMES",
    "image-classification": "MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES",
}
TOLERANCE = 1e-6


# ------------------------------------------------------------------------------------------------
# what to sweep


@dataclass(frozen=True)
class Entry:
    mapping: str
    model_type: str
    class_name: str

    @property
    def key(self) -> str:
        return f"{self.mapping}/{self.model_type}"


def entries() -> list[Entry]:
    """Every (mapping, model type, first class) of the four auto mappings of the installed transformers."""
    from transformers.models.auto import modeling_auto

    out = []
    for short, name in MAPPINGS.items():
        for model_type, classes in getattr(modeling_auto, name).items():
            cls = classes[0] if isinstance(classes, (tuple, list)) else classes
            out.append(Entry(short, model_type, cls))
    return out


@dataclass
class Outcome:
    mapping: str
    model_type: str
    class_name: str
    status: str                 # exact | refused | skipped | mismatch | error | timeout
    reason: str = ""
    eager_attentions: bool | None = None   # whether the model's own eager forward returns attentions
    kinds: str = ""             # headscope's kinds, e.g. "encoder 2x4"
    description: str = ""       # str(structure)
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)


# ------------------------------------------------------------------------------------------------
# tiny configs

WIDTH, HEADS, KV_HEADS, HEAD_DIM, FFN, LAYERS, VOCAB = 32, 4, 2, 8, 48, 2, 512
IMAGE, SEQ, TGT = 32, 7, 5

_SET = {
    # widths
    **dict.fromkeys(("hidden_size", "d_model", "n_embd", "embed_dim", "emb_dim", "d_embed", "dim", "attention_hidden_size",
                     "hidden_dim", "d_latents", "word_embed_proj_dim", "pooler_hidden_size", "projection_dim",
                     "embedding_size", "backbone_hidden_size", "hidden_size_per_layer_input", "d_ff_base",
                     "input_embedding_size", "output_embedding_size", "text_hidden_size", "vision_hidden_size",
                     "latent_dim", "encoder_hidden_size", "speech_encoder_hidden_size", "pooler_output_size",
                     "embedding_dim", "lru_width", "audio_hidden_size"), WIDTH),
    # heads
    **dict.fromkeys(("num_attention_heads", "n_head", "n_heads", "num_heads", "encoder_attention_heads",
                     "decoder_attention_heads", "num_self_attention_heads", "num_cross_attention_heads",
                     "swa_num_attention_heads", "index_n_heads", "linear_num_heads", "linear_num_value_heads",
                     "mamba_n_heads", "n_mamba_heads"), HEADS),
    **dict.fromkeys(("num_key_value_heads", "num_kv_heads", "swa_num_key_value_heads", "linear_num_key_heads",
                     "multi_query_group_num"), KV_HEADS),
    # head sizes
    **dict.fromkeys(("head_dim", "d_kv", "d_head", "kv_channels", "attention_head_dim", "dim_head", "qk_head_dim",
                     "v_head_dim", "swa_head_dim", "index_head_dim", "linear_key_head_dim", "linear_value_head_dim",
                     "linear_head_dim", "mamba_d_head", "attention_head_size", "key_dim", "value_dim"), HEAD_DIM),
    **dict.fromkeys(("qk_rope_head_dim", "qk_nope_head_dim"), HEAD_DIM // 2),
    **dict.fromkeys(("kv_lora_rank", "q_lora_rank", "o_lora_rank"), 16),
    "rotary_dim": HEAD_DIM // 2,
    # layers
    **dict.fromkeys(("num_hidden_layers", "num_layers", "n_layer", "n_layers", "encoder_layers", "decoder_layers",
                     "num_decoder_layers", "num_encoder_layers", "speech_encoder_layers", "t2u_encoder_layers",
                     "t2u_decoder_layers", "num_self_attends_per_block", "depth"), LAYERS),
    # feed-forward
    **dict.fromkeys(("intermediate_size", "d_ff", "ffn_dim", "encoder_ffn_dim", "decoder_ffn_dim", "n_inner", "d_inner",
                     "moe_intermediate_size", "shared_expert_intermediate_size", "shared_experts_intermediate_size",
                     "dense_intermediate_size", "ffn_hidden_size", "intermediate_size_mlp", "expert_ffn_hidden_size",
                     "feed_forward_size", "dff", "dim_ff", "shared_intermediate_size", "speech_encoder_intermediate_size",
                     "t2u_encoder_ffn_dim", "t2u_decoder_ffn_dim", "moe_ffn_hidden_size"), FFN),
    # mixtures of experts
    **dict.fromkeys(("num_experts", "num_local_experts", "n_routed_experts", "moe_num_experts"), 4),
    **dict.fromkeys(("num_experts_per_tok", "moe_topk", "moe_k", "num_experts_per_token", "top_k", "num_selected_experts"), 2),
    **dict.fromkeys(("n_group", "topk_group", "n_shared_experts", "num_shared_experts", "moe_num_shared_experts",
                     "num_expert_group", "first_k_dense_replace"), 1),
    # state spaces / linear attention
    **dict.fromkeys(("mamba_d_state", "state_size", "d_state", "ssm_state_size"), 8),
    **dict.fromkeys(("mamba_n_groups", "n_groups"), 1),
    **dict.fromkeys(("mamba_chunk_size", "chunk_size"), 8),
    "mamba_d_ssm": 32,
    "num_filters": 4,
    "mamba_expand": 2,
    "time_step_rank": 4,
    "mamba_dt_rank": 4,
    # images
    "image_size": IMAGE,
    "num_channels": 3,
    # tokens
    "vocab_size": VOCAB,
    "type_vocab_size": 2,
    "num_labels": 2,
}
_CAP = {"max_position_embeddings": 512, "n_positions": 512, "max_seq_len": 512, "n_ctx": 512,
        "max_source_positions": 512, "max_target_positions": 512, "original_max_position_embeddings": 512,
        "max_encoder_position_embeddings": 512, "max_decoder_position_embeddings": 512, "sliding_window": 4,
        "sliding_window_size": 4, "attention_chunk_size": 4, "num_nextn_predict_layers": 0, "index_topk": 4,
        "num_latents": 8, "num_kv_shared_layers": 0}
# per-layer lists (length num_hidden_layers) are cut to the layers kept
_LAYER_LIST_KEYS = ("layer_types", "layers_block_type", "mlp_layer_types", "attention_types", "block_types",
                    "layers_type", "hybrid_override_pattern")


def _distinct_layers(types: list[Any], n: int) -> list[int]:
    """Indices of ``n`` or more layers covering every distinct layer type, in order."""
    first: dict[Any, int] = {}
    for i, t in enumerate(types):
        first.setdefault(repr(t), i)
    idx = sorted(first.values())
    i = 0
    while len(idx) < n and i < len(types):
        if i not in idx:
            idx.append(i)
        i += 1
    return sorted(idx)


_NONE_OK = {"kv_lora_rank", "q_lora_rank", "o_lora_rank", "sliding_window", "sliding_window_size",
            "attention_chunk_size", "n_inner", "d_ff", "intermediate_size"}


def tiny_kwargs(config: Any, seen: set[int] | None = None) -> dict[str, Any]:
    """Constructor arguments making ``config`` (and its sub-configs) tiny; values derived from
    them (head sizes of MLA attention, cross-attention widths, ...) are recomputed by the config."""
    import dataclasses

    from transformers import PretrainedConfig

    names = [f.name for f in dataclasses.fields(config) if f.init] if dataclasses.is_dataclass(config) else []
    d = {name: config.__dict__.get(name, getattr(type(config), name, None)) for name in names}
    layers_before = next((d[k] for k in ("num_hidden_layers", "num_layers", "n_layer", "n_layers") if
                          isinstance(d.get(k), int)), None)
    keep = None
    for key in _LAYER_LIST_KEYS:
        if isinstance(d.get(key), list) and d[key] and (layers_before is None or len(d[key]) == layers_before):
            keep = _distinct_layers(d[key], LAYERS)
            break
    kw: dict[str, Any] = {}
    for key, value in d.items():
        if isinstance(value, PretrainedConfig):
            kw[key] = {**value.to_dict(), **tiny_kwargs(value)}
        elif isinstance(value, bool) or key.startswith("_"):
            continue
        elif key in _SET and (isinstance(value, int) and value > 0 or value is None and key not in _NONE_OK):
            new = _SET[key]
            heads = d.get("num_attention_heads") or 0
            if key in ("num_key_value_heads", "num_kv_heads") and isinstance(value, int) and value >= heads:
                new = HEADS  # keep multi-head when the model has as many kv heads as heads
            if key in ("num_hidden_layers", "num_layers", "n_layer", "n_layers") and keep is not None:
                new = max(new, len(keep))
            kw[key] = new
        elif key in _CAP and isinstance(value, int) and value > 0:
            kw[key] = min(value, _CAP[key])
        elif key in _SET and isinstance(value, list) and value and all(isinstance(v, int) for v in value):
            kw[key] = [_SET[key]] * len(value)
        elif key == "depths" and isinstance(value, list) and all(isinstance(v, int) for v in value):
            kw[key] = [1] * len(value)  # blocks per stage
        elif isinstance(value, float) and ("dropout" in key or key.endswith(("_pdrop", "drop_path_rate"))):
            kw[key] = 0.0
    if keep is None and isinstance(layers_before, int) and layers_before > LAYERS:
        keep = list(range(LAYERS))
    if keep is not None and layers_before is not None:
        for key in d:
            value = kw.get(key, d[key])
            if isinstance(value, list) and len(value) == layers_before:
                kw[key] = [value[i] for i in keep]
    if "qk_rope_head_dim" in d and d.get("head_dim") == d["qk_rope_head_dim"]:
        kw["head_dim"] = kw.get("qk_rope_head_dim", d["qk_rope_head_dim"])  # MLA: rotary head size
    vocab = kw.get("vocab_size", d.get("vocab_size"))
    if isinstance(vocab, int):  # token ids inside the vocabulary
        for key, value in d.items():
            if (key.endswith(("_token_id", "_token_index")) or key in ("pad_idx", "bos_idx", "eos_idx")) and \
                    isinstance(value, int) and not isinstance(value, bool) and value >= vocab:
                kw[key] = vocab - 1 - (sum(map(ord, key)) % 32)
            elif key.endswith("_token_id") and isinstance(value, list):
                kw[key] = [v if v < vocab else vocab - 1 for v in value if isinstance(v, int)]
    spec = getattr(config, "_heterogeneity_spec", None)  # per-layer overrides of heterogeneous configs
    if keep is not None and spec is not None and spec.per_layer_overrides:
        kw["per_layer_config"] = {new: _tiny_layer(spec.per_layer_overrides[old], d)
                                  for new, old in enumerate(keep) if old in spec.per_layer_overrides}
    fix = OVERRIDES.get(getattr(config, "model_type", ""))
    if fix is not None:
        kw.update(fix({**d, **kw}) or {})
    return kw


def _tiny_layer(overrides: dict[str, Any], d: dict[str, Any]) -> dict[str, Any]:
    """One layer's overrides of a heterogeneous config, made tiny like the global values."""
    heads = overrides.get("num_attention_heads", d.get("num_attention_heads"))
    out = {}
    for k, v in overrides.items():
        if k in _SET and isinstance(v, int) and not isinstance(v, bool):
            v = HEADS if k in ("num_key_value_heads", "num_kv_heads") and v == heads else _SET[k]
        out[k] = v
    return out


def tiny_config(model_type: str, config_class: type | None = None) -> Any:
    """The tiny config of ``model_type``; ``config_class`` when the model class takes another
    config than the type's (a text model of a multimodal type)."""
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    cls = CONFIG_MAPPING[model_type]
    if config_class is not None and not issubclass(cls, config_class):
        cls = config_class
    config = cls(**tiny_kwargs(cls()))
    for sub in [config, *(getattr(config, k, None) for k in getattr(config, "sub_configs", {}) or {})]:
        if sub is not None and getattr(sub, "pad_token_id", None) is None:
            sub.pad_token_id = 0
    if getattr(config, "is_encoder_decoder", False) and getattr(config, "decoder_start_token_id", None) is None:
        config.decoder_start_token_id = config.pad_token_id
    return config


def _mamba_heads(kw: dict[str, Any]) -> dict[str, Any]:
    return {"mamba_n_heads": HEADS, "mamba_d_head": 2 * WIDTH // HEADS, "mamba_expand": 2}


# Per-type constructor arguments the generic shrinking cannot guess (layer patterns, tied sizes).
OVERRIDES: dict[str, Any] = {
    "mamba2": lambda kw: {"num_heads": HEADS, "head_dim": 2 * WIDTH // HEADS, "expand": 2, "n_groups": 1},
    "gpt_neo": lambda kw: {"attention_types": [[["global", "local"], 1]], "num_layers": 2},
    "zaya": lambda kw: {"num_experts_per_tok": 1},
    "bamba": lambda kw: {**_mamba_heads(kw), "attn_layer_indices": [1]},
    "jamba": lambda kw: {"attn_layer_period": 2, "attn_layer_offset": 1, "expert_layer_period": 2,
                         "expert_layer_offset": 1},
    "lfm2_moe": lambda kw: {"layer_types": ["conv", "full_attention"], "num_dense_layers": 1},
    "recurrent_gemma": lambda kw: {"block_types": ["recurrent", "attention"]},
    "granitemoehybrid": lambda kw: {**_mamba_heads(kw), "layer_types": ["linear_attention", "attention"]},
    "qwen4_exp_text": lambda kw: {"indexer_n_heads": 2, "indexer_kv_heads": 1, "indexer_head_dim": HEAD_DIM,
                                  "indexer_budget": 4, "indexer_compress_ratio": 2},
    "zamba": lambda kw: {"num_hidden_layers": 4, "attn_layer_period": 2, "attn_layer_offset": 1,
                         "layers_block_type": ["linear_attention", "hybrid"] * 2,  # the shared block twice
                         "attention_hidden_size": 2 * WIDTH, "attention_head_dim": 2 * WIDTH // HEADS},
    "gemma4_assistant": lambda kw: {"hidden_size_per_layer_input": 0},
    "reformer": lambda kw: {"axial_pos_embds_dim": [16, 16], "axial_pos_shape": [16, 32], "local_attn_chunk_length": 4,
                            "lsh_attn_chunk_length": 4, "max_position_embeddings": 512,
                            "hash_seed": 0},  # LSH draws random rotations per forward otherwise
    "layoutlmv3": lambda kw: {"hidden_size": 48, "coordinate_size": 8, "shape_size": 8},
    "lilt": lambda kw: {"hidden_size": 48},
    "xmod": lambda kw: {"default_language": "en_XX"},
    "dbrx": lambda kw: {"attn_config": {**(kw.get("attn_config") or {}), "rope_theta": 10000.0, "clip_qkv": 8.0}},
    "dots3_note_text": lambda kw: {"num_key_value_heads": HEADS},
    "swin": lambda kw: {"embed_dim": 16, "depths": [2, 2], "num_heads": [2, 4], "window_size": 4, "patch_size": 4},
    "donut-swin": lambda kw: {"embed_dim": 16, "depths": [2, 2], "num_heads": [2, 4], "window_size": 4,
                              "patch_size": 4},
    "swinv2": lambda kw: {"embed_dim": 16, "depths": [2, 2], "num_heads": [2, 4], "window_size": 4, "patch_size": 4,
                          "pretrained_window_sizes": [0, 0]},
    "efficientnet": lambda kw: {"hidden_dim": 2560},
    "mobilevitv2": lambda kw: {"image_size": 64},
    "cohere_compass_text": lambda kw: {"rope_parameters": {"full_attention": {"rope_type": "default",
                                                                              "rope_theta": 10000.0}}},
}


# ------------------------------------------------------------------------------------------------
# building and running


class BuildError(Exception):
    """The tiny model cannot be built or run offline: not a headscope outcome."""


def model_class(entry: Entry) -> type:
    import transformers

    cls = getattr(transformers, entry.class_name, None)
    if cls is None:
        raise BuildError(f"transformers has no class {entry.class_name}")
    return cls


def build(entry: Entry, attn: str = "eager", state: dict | None = None) -> Any:
    cls = model_class(entry)
    try:
        config = tiny_config(entry.model_type, getattr(cls, "config_class", None))
        if entry.mapping == "causal-lm" and hasattr(config, "is_decoder") and not config.is_encoder_decoder:
            config.is_decoder = True  # BERT-like types are causal LMs only as decoders
        torch.manual_seed(0)
        model = cls._from_config(config, attn_implementation=attn)
    except Exception as err:  # noqa: BLE001 - every build failure is a "skipped" outcome
        raise BuildError(_short(err)) from err
    if state is not None:
        model.load_state_dict(state)
    return model.float().eval()


def _codebook_ids(entry: Entry, model: Any, gen: torch.Generator) -> dict[str, Any]:
    """MusicGen's decoder reads ``[batch * codebooks, length]`` audio-code ids."""
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    books = getattr(config, "num_codebooks", 4)
    return {"input_ids": torch.randint(0, min(64, config.vocab_size), (2 * books, SEQ), generator=gen)}


def _pixel_ids(entry: Entry, model: Any, gen: torch.Generator) -> dict[str, Any]:
    """ImageGPT classifies images given as colour-cluster ids."""
    return {"input_ids": torch.randint(0, min(64, model.config.vocab_size), (2, SEQ), generator=gen)}


def _patches(entry: Entry, model: Any, gen: torch.Generator) -> dict[str, Any]:
    """SigLIP2 reads flattened patches with their mask and grid shape."""
    vision = getattr(model.config, "vision_config", model.config)
    side, patch = 4, vision.patch_size
    return {"pixel_values": torch.randn(2, side * side, vision.num_channels * patch * patch, generator=gen),
            "pixel_attention_mask": torch.ones(2, side * side, dtype=torch.long),
            "spatial_shapes": torch.tensor([[side, side], [side, side]])}


# Inputs of types whose forward does not take plain token ids or pixel values.
INPUTS: dict[str, Any] = {"musicgen": _codebook_ids, "musicgen_melody": _codebook_ids, "imagegpt": _pixel_ids,
                          "siglip2": _patches}


def inputs_for(entry: Entry, model: Any) -> dict[str, Any]:
    import inspect as pyinspect

    accepted = set(pyinspect.signature(model.forward).parameters)
    gen = torch.Generator().manual_seed(0)
    if entry.model_type in INPUTS:
        return INPUTS[entry.model_type](entry, model, gen)
    if entry.mapping == "image-classification":
        config = model.config
        vision = getattr(config, "vision_config", None) or config
        size = getattr(vision, "image_size", IMAGE)
        size = size if isinstance(size, int) else tuple(size)[0]
        chans = getattr(vision, "num_channels", 3)
        return {"pixel_values": torch.randn(2, chans, size, size, generator=gen)}
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    vocab = getattr(config, "vocab_size", None) or VOCAB
    low, high = min(8, vocab // 4), min(vocab, 64)
    ids = torch.randint(low, high, (2, SEQ), generator=gen)
    eos = getattr(model.config, "eos_token_id", None)
    eos = eos[0] if isinstance(eos, list) and eos else eos
    if isinstance(eos, int) and eos < vocab:
        ids[:, -1] = eos  # BART-like classifiers read the last <eos>
    out = {"input_ids": ids}
    if "attention_mask" in accepted:
        out["attention_mask"] = torch.ones_like(ids)
    if getattr(model.config, "is_encoder_decoder", False) and entry.mapping == "seq2seq-lm":
        out["decoder_input_ids"] = torch.randint(low, high, (2, TGT), generator=gen)
    return out


def _short(err: BaseException) -> str:
    while err.__cause__ is not None and "validation error" in str(err):
        err = err.__cause__  # a config validator's own message
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    return f"{type(err).__name__}: {text[:300]}"


_FIELDS = ("attentions", "encoder_attentions", "decoder_attentions", "cross_attentions", "global_attentions",
           "encoder_global_attentions")


def eager_reference(model: Any, inputs: dict[str, Any]) -> dict[str, list[torch.Tensor]]:
    """The model's own attentions by output field (None entries dropped). An encoder-decoder
    classifier returns only its decoder's maps: the other kinds are read from the output of its
    encoder-decoder inside the same forward."""
    inner: list[Any] = []
    base = getattr(model, "base_model", model)
    hook = None
    if getattr(model.config, "is_encoder_decoder", False) and base is not model:
        hook = base.register_forward_hook(lambda mod, args, out: inner.append(out))
    try:
        with torch.no_grad():
            out = model(**inputs, output_attentions=True)
    finally:
        if hook is not None:
            hook.remove()
    found = _fields(out)
    if inner and "encoder_attentions" not in found:
        found = _fields(inner[0])
    return found


def _fields(out: Any) -> dict[str, list[torch.Tensor]]:
    found = {}
    for name in _FIELDS:
        value = getattr(out, name, None) if not isinstance(out, dict) else out.get(name)
        flat = list(_flatten(value))
        if flat:
            found[name] = flat
    return found


def _returns_maps(ref: dict[str, list[torch.Tensor]]) -> bool:
    """Whether the model's own attentions are maps (``[..., query, key]``, 4-D or more): RWKV and YOSO
    return 3-D tensors under that name, and have no softmax map."""
    return any(t.ndim >= 4 for name, tensors in ref.items() if "global" not in name for t in tensors)


def _flatten(value: Any):
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, (tuple, list)):
        for v in value:
            yield from _flatten(v)


TEXT, TARGET = "A man in a red shirt.", "Un homme en chemise rouge."


class Failed(Exception):
    """A stage of the check found headscope wrong: ``status`` (mismatch, error, refused) and why."""

    def __init__(self, status: str, reason: str) -> None:
        super().__init__(reason)
        self.status, self.reason = status, reason


def check(entry: Entry) -> Outcome:
    """Build ``entry`` tiny and check headscope on it (see the module docstring)."""
    out = Outcome(entry.mapping, entry.model_type, entry.class_name, "error")
    try:
        model = build(entry)
        inputs = inputs_for(entry, model)
        try:
            with torch.no_grad():
                plain = model(**inputs)
        except Exception as err:  # noqa: BLE001
            raise BuildError(f"the tiny model does not run: {_short(err)}") from err
    except BuildError as err:
        out.status, out.reason = "skipped", f"cannot build offline ({err})"
        return out
    try:
        ref = eager_reference(model, inputs)
    except Exception as err:  # noqa: BLE001
        ref = {}
        out.notes.append(f"eager output_attentions=True fails: {_short(err)}")
    out.eager_attentions = _returns_maps(ref)
    try:
        cap = _stage_capture(entry, model, inputs, ref, out)
        if _returns_maps(ref):
            _stage_unchanged(model, inputs, plain, "eager")
            _stage_sdpa(entry, model, inputs, cap, out)
            _stage_inspect(entry, model, out)
    except Failed as failed:
        out.status, out.reason = failed.status, failed.reason
        return out
    out.status = "exact"
    return out


def check_readings(entry: Entry) -> Outcome:
    """Build ``entry`` tiny and compute each reading beyond the weights (:mod:`headscope.mixing`) on its first
    example: ``exact`` when each is computed or refused by name (``reason`` says which, method by method),
    ``error`` when one raises anything else or leaves the weights changed, ``skipped`` when it cannot be built."""
    from headscope.errors import HeadscopeError
    from headscope.mixing.compute import compute_mixing
    from headscope.models.structure import describe
    from headscope.readings import MIXING

    out = Outcome(entry.mapping, entry.model_type, entry.class_name, "error")
    try:
        model = build(entry)
        rows = getattr(model.config.get_text_config(), "num_codebooks", 1)  # rows of one example
        inputs = {k: v[:rows] if isinstance(v, torch.Tensor) and v.ndim and v.shape[0] == 2 * rows else v
                  for k, v in inputs_for(entry, model).items()}  # the first of the batch of two
        with torch.no_grad():
            model(**inputs)  # a model may change itself on a first input (BigBird's attention type)
    except Exception as err:  # noqa: BLE001 - a model that cannot be built or run here is "skipped"
        out.status, out.reason = "skipped", f"cannot build offline ({_short(err)})"
        return out
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    said = []
    for method in MIXING:
        try:
            compute_mixing(model, inputs, describe(model), [method])
            said.append(f"{method} computed")
        except HeadscopeError as err:
            said.append(f"{method} refused ({type(err).__name__})")
        except Exception as err:  # noqa: BLE001 - the outcome this sweep exists to find
            out.reason = f"{method}: {_short(err)}; {_where(err)}"
            return out
        if any(not torch.equal(v, weights[k]) for k, v in model.state_dict().items()):
            out.reason = f"{method} changed the weights"
            return out
    out.status, out.reason = "exact", "; ".join(said)
    return out


def reading_counts(results: list[Outcome]) -> dict[str, Counter]:
    """Per reading, how many types computed it and how many refused it by name (from :func:`check_readings`)."""
    found: dict[str, Counter] = {}
    for r in results:
        for part in r.reason.split("; ") if r.status == "exact" else []:
            method, outcome = part.split(" ", 1)
            found.setdefault(method, Counter())[outcome.split(" ")[0]] += 1
    return found


def _guard(entry: Entry, stage: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
    """``fn(*args)``: an UnsupportedModelError naming the type is a refusal, anything else an error."""
    from headscope.errors import UnsupportedModelError

    try:
        return fn(*args, **kwargs)
    except UnsupportedModelError as err:
        if entry.model_type not in str(err):
            raise Failed("error", f"{stage}: the refusal does not name the model type: {_short(err)}") from err
        raise Failed("refused", (f"{stage}: " if stage != "capture" else "") + _short(err)) from err
    except Failed:
        raise
    except Exception as err:  # noqa: BLE001
        raise Failed("error", f"{stage}: {_short(err)} at {_where(err)}") from err


def _where(err: BaseException) -> str:
    tb = traceback.extract_tb(err.__traceback__)
    own = [f for f in tb if "headscope" in f.filename] or tb
    return f"{Path(own[-1].filename).name}:{own[-1].lineno}" if own else "?"


def _stage_capture(entry: Entry, model: Any, inputs: dict[str, Any], ref: dict, out: Outcome) -> Any:
    from headscope.capture import run_capture
    from headscope.models.structure import describe

    structure = _guard(entry, "describe", describe, model)
    out.description, out.kinds = str(structure), structure.summary()
    _, cap = _guard(entry, "capture", run_capture, model, inputs, structure=structure)
    if not _returns_maps(ref):
        raise Failed("mismatch", "captured maps, but the model's eager forward returns no attention maps")
    problem = compare(entry, model, ref, cap.maps, inputs, cap.layers)
    if problem:
        raise Failed("mismatch", problem)
    return cap


def _tensors(value: Any):
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _tensors(v)
    elif isinstance(value, (tuple, list)):
        for v in value:
            yield from _tensors(v)


def _stage_unchanged(model: Any, inputs: dict[str, Any], before: Any, what: str) -> None:
    with torch.no_grad():
        after = model(**inputs)
    a, b = list(_tensors(before)), list(_tensors(after))
    if len(a) != len(b) or not all(torch.equal(x, y) for x, y in zip(a, b)):
        raise Failed("mismatch", f"the {what} model's outputs changed after a capture")


def _stage_sdpa(entry: Entry, model: Any, inputs: dict[str, Any], cap: Any, out: Outcome) -> None:
    from headscope.capture import run_capture

    if not getattr(type(model), "_supports_sdpa", False):
        return
    try:
        twin = build(entry, "sdpa", state=model.state_dict())
        with torch.no_grad():
            before = twin(**inputs)
    except (BuildError, Exception) as err:  # noqa: BLE001 - the SDPA twin is optional
        out.notes.append(f"no SDPA twin: {_short(err)}")
        return
    _, cap_s = _guard(entry, "sdpa capture", run_capture, twin, inputs)
    problem = _same_maps(cap.maps, cap_s.maps)
    if problem:
        raise Failed("mismatch", f"sdpa load: {problem}")
    _stage_unchanged(twin, inputs, before, "SDPA")


def _same_maps(a: dict[str, Any], b: dict[str, Any]) -> str:
    if set(a) != set(b):
        return f"kinds {sorted(b)} instead of {sorted(a)}"
    for kind in a:
        x, y = _maps_list(a[kind]), _maps_list(b[kind])
        if len(x) != len(y):
            return f"{kind}: {len(y)} maps instead of {len(x)}"
        for i, (p, q) in enumerate(zip(x, y)):
            if p.shape != q.shape or (p.numel() and float((p.float() - q.float()).abs().max()) > TOLERANCE):
                return f"{kind} layer {i} differs from the eager load's"
    return ""


_TOKENIZERS: dict[tuple[str, int], Any] = {}


def _tokenizer(style: str, vocab: int) -> Any:
    from headscope.models.tiny import tiny_tokenizer

    key = (style, min(300, vocab))
    if key not in _TOKENIZERS:
        _TOKENIZERS[key] = tiny_tokenizer(style, vocab_size=key[1])
    return _TOKENIZERS[key]


def _stage_inspect(entry: Entry, model: Any, out: Outcome) -> None:
    """``headscope.inspect`` on text: equal to the model's own eager maps on the same tokens."""
    import headscope
    from headscope.models.architectures import decoder_inputs
    from headscope.run import forward_keys

    if entry.mapping == "image-classification" or entry.model_type in INPUTS or "input_ids" not in forward_keys(model):
        return
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    vocab = getattr(config, "vocab_size", None)
    if not isinstance(vocab, int) or vocab < 64:
        out.notes.append("inspect not run: the text vocabulary is too small for the test tokenizer")
        return
    enc_dec = bool(getattr(model.config, "is_encoder_decoder", False))
    # encoder-decoders get a SentencePiece-like tokenizer appending </s>, and its special ids, as a
    # real checkpoint would (T5 and BART classifiers read the source's </s>)
    tok = _tokenizer("metaspace" if enc_dec else "wordpiece", vocab)
    if enc_dec:
        for config in {id(c): c for c in (model.config, model.config.get_text_config())}.values():
            config.eos_token_id, config.pad_token_id = tok.eos_token_id, tok.pad_token_id
    lm = enc_dec and entry.mapping == "seq2seq-lm"
    insp = _guard(entry, "inspect", headscope.inspect, (model, tok), TEXT, **({"target": TARGET} if lm else {}))
    enc = tok(TEXT, return_tensors="pt")
    inputs = {k: v for k, v in enc.items() if k in forward_keys(model)}
    if lm:
        labels = tok(text_target=TARGET, return_tensors="pt")["input_ids"]
        inputs["decoder_input_ids"] = decoder_inputs(model, labels, tok.pad_token_id)
        inputs["decoder_attention_mask"] = torch.ones_like(labels)
    ref = eager_reference(model, inputs)
    maps = {k: (v.unsqueeze(0) if isinstance(v, torch.Tensor) else [t.unsqueeze(0) for t in v])
            for k, v in insp.attentions.items()}
    problem = compare(entry, model, ref, maps, inputs, {k: insp.layers.get(k) for k in insp.attentions})
    if problem:
        raise Failed("mismatch", f"inspect: {problem}")
    if enc_dec and not lm and "label" not in (insp.prediction or {}):
        raise Failed("mismatch", f"inspect: an encoder-decoder classifier predicts {insp.prediction}, not a label")


def _maps_list(maps: Any) -> list[torch.Tensor]:
    if isinstance(maps, torch.Tensor):
        return list(maps.unbind(1))
    return list(maps)


# Layouts the model returns that headscope converts (the structure's notes say so); the sweep
# converts the model's own outputs here, independently of headscope's code.
BANDED_TYPES = {"longformer", "led"}   # banded local attention [query, global + 2w + 1]
STREAM_TYPES = {"prophetnet"}          # cross rows of the main stream, then of each n-gram stream
SCORE_TYPES = {"squeezebert": {"encoder"}, "prophetnet": {"encoder", "cross"}}  # pre-softmax scores
STAGE_LAST_TYPES = {"swin", "donut-swin", "swinv2"}  # one map per stage: its last block's
BLOCKED_TYPES = {"longt5"}             # local attention per block [blocks, heads, L, 3L]


def _unblock_reference(blocks: torch.Tensor, length: int) -> torch.Tensor:
    """LongT5's blocks as a full ``[batch, heads, S, S]`` map, one entry at a time."""
    batch, n_blocks, heads, size, _ = blocks.shape
    full = torch.zeros(batch, heads, length, length, dtype=blocks.dtype)
    for n in range(n_blocks):
        for q in range(size):
            i = n * size + q
            if i >= length:
                continue
            for c in range(3 * size):
                j = (n - 1) * size + c
                if 0 <= j < length:
                    full[:, :, i, j] = blocks[:, n, :, q, c]
    return full


def _unband_reference(band: torch.Tensor, glob: torch.Tensor | None, mask: torch.Tensor) -> torch.Tensor:
    """Longformer's band as a full ``[batch, heads, S, S]`` map, one entry at a time."""
    batch, heads, length, width = band.shape
    n_global = 0 if glob is None else glob.shape[-1]
    w = (width - n_global - 1) // 2
    full = torch.zeros(batch, heads, length, length, dtype=band.dtype)
    for b in range(batch):
        real = [i for i in range(length) if mask[b, i]]
        globals_ = [i for i in real if float(band[b, :, i, :].abs().sum()) == 0.0][:n_global]
        for i in range(length):
            if i in globals_:
                full[b, :, i, :] = glob[b, :, :length, globals_.index(i)]
                continue
            for k, g in enumerate(globals_):
                full[b, :, i, g] += band[b, :, i, k]
            for j in range(max(0, i - w), min(length, i + w + 1)):
                full[b, :, i, j] += band[b, :, i, n_global + j - i + w]
    return full


def reference_maps(entry: Entry, model: Any, ref: dict[str, list[torch.Tensor]],
                   inputs: dict[str, Any]) -> dict[str, list[torch.Tensor]]:
    """The model's own maps by headscope kind, in headscope's layout."""
    enc_dec = bool(getattr(model.config, "is_encoder_decoder", False))
    fields = ({"encoder": "encoder_attentions", "decoder": "decoder_attentions", "cross": "cross_attentions"}
              if enc_dec else {"self": "attentions", "cross": "cross_attentions"})
    expect: dict[str, list[torch.Tensor]] = {}
    for kind, fld in fields.items():
        if fld not in ref:
            continue
        tensors = ref[fld]
        if entry.model_type in BANDED_TYPES and kind in ("self", "encoder"):
            glob = ref.get("encoder_global_attentions" if enc_dec else "global_attentions")
            mask = inputs.get("attention_mask", torch.ones(tensors[0].shape[0], tensors[0].shape[2])).bool()
            tensors = [_unband_reference(t, None if glob is None else glob[i], mask) for i, t in enumerate(tensors)]
        if kind == "self":
            causal = _causal(tensors)
            kind = "self" if causal is None else "decoder" if causal else "encoder"
        if entry.model_type in STREAM_TYPES and kind == "cross" and "decoder_attentions" in ref:
            rows = ref["decoder_attentions"][0].shape[-2]
            tensors = [t[..., :rows, :] for t in tensors]
        if entry.model_type in BLOCKED_TYPES and kind == "encoder" and "input_ids" in inputs:
            tensors = [_unblock_reference(t, inputs["input_ids"].shape[1]) if t.ndim == 5 else t for t in tensors]
        if kind in SCORE_TYPES.get(entry.model_type, ()):
            tensors = [torch.softmax(t.float(), -1) for t in tensors]
        expect[kind] = tensors
    return expect


def reference_layers(entry: Entry, model: Any, kind: str, n: int) -> list[int]:
    """The model layer of each of the ``n`` maps the model returns for ``kind``."""
    if entry.model_type in STAGE_LAST_TYPES:
        depths = list(getattr(model.config, "depths", []))
        if len(depths) == n:
            return [sum(depths[: i + 1]) - 1 for i in range(n)]
    return list(range(n))


def compare(entry: Entry, model: Any, ref: dict[str, list[torch.Tensor]], maps: dict[str, Any],
            inputs: dict[str, Any], layers: dict[str, list[int]] | None = None) -> str:
    """'' when headscope's maps (``{kind: [batch, layers, heads, q, k] | per-layer list}``, of model
    layers ``layers``) equal the model's own, else what differs. A layer headscope leaves out must
    be one whose output is no attention map (MiniMax's linear-attention layers return KV states)."""
    expect = reference_maps(entry, model, ref, inputs)
    got = {k: _maps_list(v) for k, v in maps.items()}
    if "self" in expect:  # maps in the model's own layout: whether they are causal cannot be read off them
        own = next((k for k in got if k in ("encoder", "decoder")), "encoder")
        expect[own] = expect.pop("self")
    if set(got) != set(expect):
        return f"kinds {sorted(got)} but the model returns {sorted(expect)}"
    sizes = _lengths(model, inputs)
    for kind, tensors in expect.items():
        index = (layers or {}).get(kind) or list(range(len(got[kind])))
        own = (reference_layers(entry, model, kind, len(tensors)) if len(index) > len(tensors)
               else list(range(len(tensors))))
        extra = sorted(set(index) - set(own))
        if len(index) != len(got[kind]) or (extra and entry.model_type not in STAGE_LAST_TYPES):
            return f"{kind}: maps of layers {index} but the model returns {len(tensors)}"
        for i, b in zip(own, tensors):
            if i not in index:
                if sizes is None or tuple(b.shape[-2:]) == sizes.get(kind):
                    return f"{kind}: {len(got[kind])} maps but the model returns {len(tensors)}"
                continue  # not a [query, key] map
            a = got[kind][index.index(i)]
            if tuple(a.shape) != tuple(b.shape):
                return f"{kind} layer {i}: shape {tuple(a.shape)} but the model returns {tuple(b.shape)}"
            diff = float((a.float() - b.float()).abs().max()) if a.numel() else 0.0
            if not diff <= TOLERANCE:
                return f"{kind} layer {i}: differs by {diff:.2e}"
            if a.numel() and (float(a.min()) < 0 or float(a.max()) > 1 + 1e-5):
                return f"{kind} layer {i}: values outside [0, 1]: not probabilities"
    return ""


def _lengths(model: Any, inputs: dict[str, Any]) -> dict[str, tuple[int, int]] | None:
    """The ``(query, key)`` size of a map of each kind, for text inputs."""
    if "input_ids" not in inputs:
        return None
    src = int(inputs["input_ids"].shape[-1])
    tgt = int(inputs["decoder_input_ids"].shape[-1]) if "decoder_input_ids" in inputs else src
    return {"encoder": (src, src), "decoder": (tgt, tgt), "cross": (tgt, src)}


def _causal(tensors: list[torch.Tensor]) -> bool | None:
    """Whether ``[batch, heads, query, key]`` maps are causal; ``None`` for maps of another layout."""
    t = tensors[0]
    if t.ndim != 4 or t.shape[-1] != t.shape[-2] or t.shape[-1] < 2:
        return None
    return bool((t.float().triu(1).abs() == 0).all())


# ------------------------------------------------------------------------------------------------
# running many, in worker processes with a per-type time limit


def _worker(conn: Any, readings: bool = False) -> None:
    torch.set_num_threads(1)
    import warnings

    warnings.filterwarnings("ignore")
    checker = check_readings if readings else check
    while True:
        job = conn.recv()
        if job is None:
            return
        start = time.perf_counter()
        try:
            res = checker(Entry(**job))
        except BaseException as err:  # noqa: BLE001 - reported as an outcome
            res = Outcome(job["mapping"], job["model_type"], job["class_name"], "error", _short(err),
                          notes=[traceback.format_exc()[-2000:]])
        res.seconds = round(time.perf_counter() - start, 2)
        conn.send(asdict(res))


def sweep(todo: list[Entry], workers: int = 2, timeout: float = 60.0, progress: bool = False,
          readings: bool = False) -> list[Outcome]:
    """Check every entry in ``workers`` processes (``readings``: :func:`check_readings`, else :func:`check`);
    a type running over ``timeout`` seconds is a ``timeout``."""
    # workers fork from a clean server process (not from a parent whose threads may hold locks);
    # the server imports torch and transformers once, so a worker restarted after a timeout is quick
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(["torch", "transformers", "headscope.capture", "headscope.run"])
    pending = list(reversed(todo))
    results: list[Outcome] = []
    slots: list[dict[str, Any]] = []

    def start() -> dict[str, Any]:
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_worker, args=(child, readings), daemon=True)
        proc.start()
        child.close()
        return {"proc": proc, "conn": parent, "job": None, "since": 0.0}

    def feed(slot: dict[str, Any]) -> None:
        if pending:
            job = pending.pop()
            slot["job"], slot["since"] = job, time.monotonic()
            slot["conn"].send(asdict(job))
        else:
            slot["job"] = None

    for _ in range(max(1, min(workers, len(todo)))):
        slot = start()
        slots.append(slot)
        feed(slot)
    while any(s["job"] is not None for s in slots):
        busy = [s for s in slots if s["job"] is not None]
        now = time.monotonic()
        left = min(s["since"] + timeout - now for s in busy)
        ready = wait([s["conn"] for s in busy], timeout=max(0.0, left))
        for slot in busy:
            job: Entry = slot["job"]
            if slot["conn"] in ready:
                try:
                    res = Outcome(**slot["conn"].recv())
                except (EOFError, OSError):
                    res = Outcome(job.mapping, job.model_type, job.class_name, "error",
                                  f"the worker died (exit code {slot['proc'].exitcode})")
                    slot.update(start())
            elif time.monotonic() - slot["since"] >= timeout:
                res = Outcome(job.mapping, job.model_type, job.class_name, "timeout",
                              f"over the {timeout:.0f} s limit per type")
                slot["proc"].kill()
                slot["proc"].join()
                slot.update(start())
            else:
                continue
            results.append(res)
            if progress:
                print(f"[{len(results)}/{len(todo)}] {job.key}: {res.status} {res.reason[:150]}", flush=True)
            feed(slot)
    for slot in slots:
        try:
            slot["conn"].send(None)
        except (BrokenPipeError, OSError):
            pass
        slot["proc"].join(timeout=5)
        if slot["proc"].is_alive():
            slot["proc"].kill()
    order = {e.key: i for i, e in enumerate(todo)}
    return sorted(results, key=lambda r: order[f"{r.mapping}/{r.model_type}"])


# ------------------------------------------------------------------------------------------------
# the report


def counts(results: list[Outcome]) -> dict[str, Any]:
    """Coverage numbers: ``exact`` of the ``with_maps`` types whose eager forward returns attention
    maps (built types only), ``refused`` by name, ``skipped`` (cannot build offline), per mapping too."""
    built = [r for r in results if r.status != "skipped"]
    with_maps = [r for r in built if r.eager_attentions]
    exact = sum(r.status == "exact" for r in with_maps)
    per_mapping = {}
    for short in MAPPINGS:
        rows = [r for r in with_maps if r.mapping == short]
        per_mapping[short] = (sum(r.status == "exact" for r in rows), len(rows))
    return {
        "total": len(results),
        "built": len(built),
        "by_status": dict(Counter(r.status for r in results)),
        "with_maps": len(with_maps),
        "exact": exact,
        "exact_share": exact / len(with_maps) if with_maps else 0.0,
        "refused": sum(r.status == "refused" for r in results),
        "refused_with_maps": sum(r.status == "refused" for r in with_maps),
        "skipped": len(results) - len(built),
        "per_mapping": per_mapping,
    }


def markdown(results: list[Outcome], seconds: float, command: str, workers: int) -> str:
    import transformers

    c = counts(results)
    fails = [r for r in results if r.status in ("error", "mismatch", "timeout")]
    lines = [
        "# Coverage: every attention architecture in transformers",
        "",
        f"Made by `{command}` with transformers {transformers.__version__} and torch {torch.__version__}, "
        f"{workers} worker processes, in {seconds:.0f} s. `python -m pytest tests/test_coverage_sweep.py` runs the "
        "same sweep, fails if this file does not say what it found, below 98% or on any exception other than "
        "`UnsupportedModelError`.",
        "",
        "Every model type of transformers' seq2seq-LM, sequence-classification, causal-LM and "
        "image-classification auto mappings (read from the installed transformers) is built tiny from its "
        "config (2+ layers, 2-4 heads, width 32, random weights, eager attention) and run on random token ids "
        "or pixels. **exact**: `headscope.capture.run_capture` returns the model's own eager "
        "`output_attentions=True` maps (≤ 1e-6; in headscope's layout where the model returns another one, "
        "see the model description), with the right kinds (a self-attention stack is `decoder` when its maps are "
        "causal) and one map per application of every layer; an SDPA load gives the same maps; a capture "
        "leaves the model's outputs bit-for-bit unchanged; and `headscope.inspect` on a text equals the model's "
        "own maps on the same tokens (encoder-decoder classifiers without `generate`). **refused**: "
        "`UnsupportedModelError` naming the type and the reason. **skipped**: the tiny model cannot be built "
        "or run offline; not a headscope outcome.",
        "",
        f"- **{c['exact']} / {c['with_maps']}** types whose eager forward returns attention maps are captured exactly "
        f"({100 * c['exact_share']:.1f}%): "
        + ", ".join(f"{k} {e}/{n}" for k, (e, n) in c["per_mapping"].items()) + ".",
        f"- **{c['refused']}** refused by name ({c['refused_with_maps']} of them return attention maps from eager).",
        f"- **{c['skipped']}** skipped: cannot build offline.",
        f"- {c['total']} (mapping, type) entries in all: "
        + ", ".join(f"{k} {v}" for k, v in sorted(c["by_status"].items())) + ".",
        "",
    ]
    if fails:
        lines += ["## Failures", ""] + [f"- {r.mapping} / {r.model_type}: {r.status}: {r.reason}" for r in fails] + [""]
    skipped = [r for r in results if r.status == "skipped"]
    if skipped:
        lines += ["## Skipped: cannot build offline", ""]
        lines += [f"- {r.mapping} / {r.model_type} ({r.class_name}): {r.reason.removeprefix('cannot build offline ')}"
                  for r in skipped] + [""]
    for short in MAPPINGS:
        rows = [r for r in results if r.mapping == short]
        if not rows:
            continue
        lines += [f"## {short} ({len(rows)})", "", "| type | class | outcome | headscope's description | reason |",
                  "|---|---|---|---|---|"]
        for r in rows:
            reason = r.reason.replace("|", "\\|").replace("\n", " ")
            what = (r.description or r.kinds).replace("|", "\\|")
            lines.append(f"| {r.model_type} | {r.class_name} | {r.status} | {what} | {reason} |")
        lines.append("")
    return "\n".join(lines)


def run(workers: int = 2, timeout: float = 60.0, only: set[str] | None = None, mappings: set[str] | None = None,
        out: str | Path | None = None, command: str = COMMAND, progress: bool = False,
        readings: bool = False) -> tuple[list[Outcome], float]:
    """Sweep the entries (all, or ``only`` these types / ``mappings``); write the report to ``out``
    (``readings``: the readings beyond the weights instead of the capture, and no report)."""
    torch.set_num_threads(1)
    todo = [e for e in entries() if (not only or e.model_type in only) and (not mappings or e.mapping in mappings)]
    start = time.perf_counter()
    results = sweep(todo, workers, timeout, progress=progress, readings=readings)
    seconds = time.perf_counter() - start
    if out is not None and not readings:
        Path(out).write_text(markdown(results, seconds, command, workers), encoding="utf-8")
    return results, seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per type")
    parser.add_argument("--only", default="", help="comma-separated model types (the report is not written)")
    parser.add_argument("--mapping", default="", help="comma-separated mappings (the report is not written)")
    parser.add_argument("--out", default=str(ROOT / "docs" / "coverage.md"))
    parser.add_argument("--json", default="", help="also write every outcome to this JSON file")
    parser.add_argument("-v", "--verbose", action="store_true")
    parser.add_argument("--debug", action="store_true", help="run in this process and show tracebacks")
    parser.add_argument("--readings", action="store_true",
                        help="compute the readings beyond the weights (norm, ALTI, value zeroing, gradient rollout) on "
                        "every type instead, and print per reading how many types computed or refused it")
    args = parser.parse_args(argv)
    only = set(filter(None, args.only.split(",")))
    mappings = set(filter(None, args.mapping.split(",")))
    if args.debug:
        for entry in entries():
            if (only and entry.model_type not in only) or (mappings and entry.mapping not in mappings):
                continue
            try:
                model = build(entry)
                model(**inputs_for(entry, model))
            except Exception:  # noqa: BLE001
                traceback.print_exc()
            res = check(entry)
            print(entry.key, res.status, res.reason, res.description, *res.notes, sep="\n  ")
        return 0
    if args.readings:
        results, seconds = run(args.workers, args.timeout, only, mappings, None, progress=args.verbose, readings=True)
        for method, c in reading_counts(results).items():
            print(f"{method:<13} computed {c['computed']:>3}  refused by name {c['refused']:>3}")
        broken = [f"{r.mapping}/{r.model_type}: {r.status}: {r.reason}" for r in results if r.status in ("error", "timeout")]
        print(f"{len(results)} types, {Counter(r.status for r in results)}; {seconds:.0f} s", *broken, sep="\n")
        return 1 if broken else 0
    out = None if (only or mappings) else args.out
    command = COMMAND + "".join(f" --{k} {v}" for k, v in (("workers", args.workers), ("timeout", args.timeout))
                                if str(v) != str({"workers": 2, "timeout": 60.0}[k]))
    results, seconds = run(args.workers, args.timeout, only, mappings, out, command, args.verbose)
    if args.json:
        import json

        Path(args.json).write_text(json.dumps([asdict(r) for r in results], indent=1), encoding="utf-8")
    c = counts(results)
    print(f"{c['exact']}/{c['with_maps']} exact ({100 * c['exact_share']:.1f}%), refused {c['refused']}, "
          f"skipped {c['skipped']}, total {c['total']}; {c['by_status']}; {seconds:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
