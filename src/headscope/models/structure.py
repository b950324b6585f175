"""The attention structure of a loaded model, read from the model rather than from names.

transformers assembles ``output_attentions`` from the ``_can_record_outputs`` that every model
class declares: ``OutputRecorder`` entries saying which module classes (optionally under which
layer name) produce ``attentions`` and ``cross_attentions``. :func:`describe` walks the model
exactly as transformers installs those recorders — each ``PreTrainedModel`` submodel with its own
declarations — and lists every attention site in forward order with its kind, layer and number
of heads. Models that declare no attention recorder fall back to their attention modules
(classes named ``*Attention``); the description says which source it came from.

>>> from headscope.models import build_tiny
>>> describe(build_tiny("marian")[0]).summary()  # doctest: +SKIP
'encoder-decoder (marian): encoder 2x4, decoder 2x4, cross 2x4 [output recorders]'
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from transformers import PreTrainedModel

from ..errors import InputError
from ..readings import KINDS
from .architectures import Architecture, architecture_of

_HEAD_ATTRS = ("num_heads", "num_attention_heads", "n_heads", "n_head", "num_attn_heads")
_CROSS_MARKERS = ("encoder_attn", "encdecattention", "crossattention", "cross_attn", "cross_attention")


@dataclass(frozen=True)
class AttentionSite:
    """One attention module of the model: its kind, layer (forward order within the kind),
    number of heads and dotted module name.

    ``index`` numbers the modules (a shared module applied several times, ALBERT's, is one index
    over several layers). ``merged`` names the second kind of a module whose one softmax runs over
    two kinds of keys (T5Gemma2's decoder: its own tokens, then the source): its map is split.
    """

    kind: str
    layer: int
    heads: int
    module: str
    index: int = 0
    merged: str | None = None

    @property
    def name(self) -> str:
        return f"{self.kind}.{self.layer}"

    def parts(self, probs: torch.Tensor) -> list[tuple[str, torch.Tensor]]:
        """``[(kind, probabilities)]`` of one call: the merged map split at the query length (the
        module's own keys first, as transformers splits it), else the map itself."""
        if self.merged is None:
            return [(self.kind, probs)]
        own = probs.shape[-2]
        return [(self.kind, probs[..., :own]), (self.merged, probs[..., own:])]


@dataclass(frozen=True)
class ModelStructure:
    """A typed description of a loaded model's attention.

    Attributes:
        model_type: ``config.model_type``.
        architecture: the :class:`~headscope.models.architectures.Architecture` strategy.
        sites: every attention site, in forward order within each kind.
        source: ``"output recorders"`` (transformers' ``_can_record_outputs``) or ``"attention modules"``.
        notes: how headscope's maps differ in layout from the model's own ``output_attentions``
            (banded local attention made ``[query, key]``, a merged softmax split, ...), and
            which layers have no map; part of ``str(structure)``.
        class_name: the model's class, for messages.
    """

    model_type: str
    architecture: Architecture
    sites: tuple[AttentionSite, ...]
    source: str
    _modules: dict[int, AttentionSite] = field(default_factory=dict, repr=False, compare=False)
    notes: tuple[str, ...] = ()
    class_name: str = "model"
    layouts: dict[str, str] = field(default_factory=dict, compare=False)

    @property
    def kinds(self) -> tuple[str, ...]:
        """The kinds the model has, in the order encoder, decoder, cross."""
        present = {s.kind for s in self.sites}
        return tuple(k for k in KINDS if k in present)

    def layers(self, kind: str) -> int:
        """Number of layers of ``kind``."""
        return sum(s.kind == kind for s in self.sites)

    def site_of(self, module: nn.Module) -> AttentionSite | None:
        """The site an attention module (or a module inside it) belongs to; ``None`` if none."""
        return self._modules.get(id(module))

    def check(self, kinds: Iterable[str] | None, layers: Iterable[int] | None) -> None:
        """Raise :class:`InputError` naming what exists when ``kinds`` / ``layers`` ask for more."""
        have = self.summary()
        if kinds is not None:
            kinds = list(kinds)
            missing = [k for k in kinds if k not in self.kinds]
            if missing:
                raise InputError(f"kinds={kinds}: this model has no {', '.join(map(repr, missing))} attention; "
                                 f"it has {have}. Fix: ask for kinds among {list(self.kinds)}")
        if layers is not None:
            wanted = list(layers)
            for_kinds = list(kinds) if kinds is not None else list(self.kinds)
            deepest = max(self.layers(k) for k in for_kinds)
            bad = [lay for lay in wanted if not isinstance(lay, int) or isinstance(lay, bool) or not 0 <= lay < deepest]
            if bad:
                raise InputError(f"layers={wanted}: no layer {bad} in this model; it has {have}. "
                                 f"Fix: ask for layers in 0..{deepest - 1}")

    def summary(self) -> str:
        """``"encoder 6x12, ..."``: layers x heads per kind."""
        parts = []
        for kind in self.kinds:
            heads = sorted({s.heads for s in self.sites if s.kind == kind})
            parts.append(f"{kind} {self.layers(kind)}x{'/'.join(map(str, heads))}")
        return ", ".join(parts) if parts else "no attention"

    def __str__(self) -> str:
        text = f"{self.architecture.name} ({self.model_type}): {self.summary()} [{self.source}]"
        return text + "".join(f"; {note}" for note in self.notes)

    @property
    def label(self) -> str:
        """``"LlamaForCausalLM (llama)"``: how errors name the model."""
        return f"{self.class_name} ({self.model_type})"



def _recorders(model: PreTrainedModel) -> list[tuple[str, Any]]:
    """``(key, OutputRecorder)`` pairs of the attention outputs ``model``'s class declares."""
    from transformers.utils.output_capturing import _CAN_RECORD_REGISTRY, OutputRecorder

    declared = _CAN_RECORD_REGISTRY.get(model) or getattr(type(model), "_can_record_outputs", None) or {}
    out = []
    for key, specs in declared.items():
        if "attention" not in key:
            continue
        for spec in specs if isinstance(specs, list) else [specs]:
            if not isinstance(spec, OutputRecorder):
                spec = OutputRecorder(target_class=None if isinstance(spec, str) else spec, index=1,
                                      class_name=spec if isinstance(spec, str) else None)
            out.append((key, spec))
    return out


def _matches(module: nn.Module, name: str, spec: Any) -> bool:
    """transformers' own rule for which module an ``OutputRecorder`` hooks."""
    hit = (spec.target_class is not None and isinstance(module, spec.target_class)) or (
        spec.class_name is not None and name.endswith(spec.class_name))
    if hit and spec.layer_name is not None:
        hit = "." + spec.layer_name.strip(".") + "." in name + "."
    return hit


def _walk(module: nn.Module, name: str, tasks: list[tuple[str, Any]],
          towers: list[tuple[str, nn.Module]] | None = None,
          texts: set[int] | None = None) -> Iterator[tuple[list[str], str, nn.Module]]:
    """``(keys, name, module)`` for every recorder match, submodels using their own declarations.

    ``keys`` lists every attention output the module is declared for (two for a merged module).
    Submodels of another modality than the model's text (vision or audio towers of a multimodal
    model, whose config is none of the text configs ``texts``) are left out and listed in ``towers``.
    """
    for child_name, child in module.named_children():
        full = f"{name}.{child_name}"
        if isinstance(child, PreTrainedModel):
            if texts is not None and towers is not None and id(getattr(child, "config", None)) not in texts:
                towers.append((full, child))
                continue
            yield from _walk(child, full, _recorders(child), towers, texts)
        else:
            yield from _walk(child, full, tasks, towers, texts)
    keys = [key for key, spec in tasks if _matches(module, name, spec)]
    if keys:
        yield list(dict.fromkeys(keys)), name, module


def _text_configs(config: Any) -> set[int]:
    """Ids of the model's own config and of its text (and encoder / decoder) sub-configs."""
    seen: list[Any] = []
    level = [config]
    for _ in range(3):
        nxt = []
        for cfg in level:
            if cfg is None or any(cfg is s for s in seen):
                continue
            seen.append(cfg)
            for key in ("text_config", "encoder", "decoder", "language_config"):
                nxt.append(getattr(cfg, key, None))
            for kwargs in ({}, {"decoder": True}):
                try:
                    nxt.append(cfg.get_text_config(**kwargs))
                except (AttributeError, ValueError, TypeError):
                    pass
        level = nxt
    return {id(cfg) for cfg in seen}


def _heads(module: nn.Module, config: Any) -> int:
    """Heads of an attention module: its own attribute, its config's, its query projection's, the model's."""
    for sub in module.modules():
        for attr in _HEAD_ATTRS:
            value = getattr(sub, attr, None)
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                return value
    for cfg in (getattr(module, "config", None), config, _text_config(config)):
        for attr in ("num_attention_heads", "encoder_attention_heads", "n_head", "num_heads", "n_heads"):
            value = getattr(cfg, attr, None) if cfg is not None else None
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                return value
    return 0


def _text_config(config: Any) -> Any:
    get = getattr(config, "get_text_config", None)
    try:
        return get() if callable(get) else None
    except (AttributeError, ValueError, TypeError):
        return None


def _kind(key: str, in_encoder: bool, arch: Architecture, module_name: str) -> str:
    if "cross" in key:
        return "cross"
    if key.startswith("encoder_"):
        return "encoder"
    if key.startswith("decoder_"):
        return "decoder"
    if arch.has_target:  # two stacks: a module of the encoder is "encoder", of the decoder "decoder" or "cross"
        if any(m in module_name.lower() for m in _CROSS_MARKERS):
            return "cross"
        return "encoder" if in_encoder else "decoder"
    return arch.self_kind


def _attention_modules(model: nn.Module) -> Iterator[tuple[str, str, nn.Module]]:
    """Fallback: the outermost modules whose class name ends in ``Attention``."""
    inside: set[int] = set()
    for name, module in model.named_modules():
        if id(module) in inside:
            continue
        if not isinstance(module, PreTrainedModel) and type(module).__name__.lower().endswith("attention"):
            inside.update(id(m) for m in module.modules())
            yield "attentions", "." + name, module


def _is_causal(modules: Sequence[nn.Module]) -> bool:
    return any(getattr(m, "is_causal", False) is True for m in modules)


def _shared_applications(model: PreTrainedModel, arch: Architecture, sites: list[AttentionSite]) -> int:
    """How often each self-attention module is applied: ALBERT shares its layers between
    ``num_hidden_layers`` applications (``num_hidden_groups`` groups); 1 elsewhere."""
    config = model.config
    groups, layers = getattr(config, "num_hidden_groups", None), getattr(config, "num_hidden_layers", None)
    mine = [s for s in sites if s.kind == arch.self_kind]
    if (arch.has_target or not isinstance(groups, int) or not isinstance(layers, int) or not mine
            or layers <= len(mine) or layers % len(mine)):
        return 1
    return layers // len(mine)


# Attention modules that return their pre-softmax scores (mask added) as output_attentions.
_SCORES = {"squeezebert": ("encoder",), "prophetnet": ("encoder", "cross")}


def _layouts(model: PreTrainedModel, found: list[tuple[list[str], str, nn.Module]],
             kinds: dict[int, str]) -> dict[str, str]:
    """Kinds whose maps the model returns in another layout than ``[batch, heads, query, key]``
    probabilities: pre-softmax scores, Longformer's bands, ProphetNet's n-gram streams."""
    out: dict[str, str] = {kind: SCORES for kind in _SCORES.get(getattr(model.config, "model_type", ""), ())
                           if kind in kinds.values()}
    for _, _, module in found:
        if any(isinstance(getattr(m, "one_sided_attn_window_size", None), int) for m in module.modules()):
            out[kinds[id(module)]] = BANDED
    for _, _, module in found:
        if any(hasattr(m, "num_chunks_before") for m in module.modules()):
            out.setdefault(kinds[id(module)], CHUNKED)
        if any(hasattr(m, "local_radius") and hasattr(m, "block_len") and not hasattr(m, "global_block_size")
               for m in module.modules()):
            out.setdefault(kinds[id(module)], BLOCKED)
    if isinstance(getattr(model.config, "ngram", None), int) and any(k == "cross" for k in kinds.values()):
        out["cross"] = STREAMS if out.get("cross") != SCORES else SCORES_STREAMS
    return out


BANDED, STREAMS, SCORES, SCORES_STREAMS, CHUNKED = "banded", "streams", "scores", "scores+streams", "chunked"
BLOCKED = "blocked"
_LAYOUT_NOTES = {  # how each layout is returned (CHUNKED is kept as the model gives it)
    BLOCKED: "{kind} maps: the model returns LongT5's local attention per block [blocks, heads, block, 3 blocks of "
             "keys]; headscope returns them as [query, key] probabilities",
    CHUNKED: "{kind} maps are kept in the model's own chunked layout [heads, chunks, chunk, keys of the "
             "previous and current chunk] (Reformer; LSH layers in hash-sorted order), not [query, key]",
    SCORES: "{kind} maps: the model returns pre-softmax scores; headscope returns their softmax (probabilities)",
    SCORES_STREAMS: "{kind} maps: the model returns pre-softmax scores for every n-gram stream; headscope returns "
                    "the softmax of the main stream's rows (one per target token)",
    BANDED: "{kind} maps: the model returns Longformer's banded local attention [query, global + window]; "
            "headscope returns them as [query, key] probabilities",
    STREAMS: "{kind} maps: the model returns the rows of every n-gram stream; headscope keeps the main stream's "
             "rows (one per target token)",
}


def describe(model: PreTrainedModel) -> ModelStructure:
    """The :class:`ModelStructure` of ``model`` (see the module docstring).

    >>> from headscope.models import build_tiny
    >>> s = describe(build_tiny("bert")[0])
    >>> s.architecture.name, s.kinds, s.layers("encoder")
    ('encoder', ('encoder',), 2)
    """
    arch = architecture_of(model)
    towers: list[tuple[str, nn.Module]] = []
    found = list(_walk(model, "", _recorders(model), towers, _text_configs(model.config)))
    notes: list[str] = []
    tower_sites = [site for name, tower in towers for site in _walk(tower, name, _recorders(tower))]
    if found and tower_sites:
        notes.append(f"attention of {', '.join(sorted({n.rsplit('.', 1)[-1] for n, _ in towers}))} (another "
                     "modality) left out, as in the model's output_attentions")
    elif tower_sites:
        found = tower_sites
    source = "output recorders"
    if not found:
        found, source = [(["attentions"], n, m) for _, n, m in _attention_modules(model)], "attention modules"
    if _is_causal([m for _, _, m in found]):
        arch = arch.when_causal()
    encoder_ids: set[int] = set()
    if arch.has_target and hasattr(model, "get_encoder"):
        encoder_ids = {id(m) for m in model.get_encoder().modules()}
    counts: dict[str, int] = {}
    sites: list[AttentionSite] = []
    modules: dict[int, AttentionSite] = {}
    kinds: dict[int, str] = {}
    for index, (keys, name, module) in enumerate(found):
        kind = _kind(keys[0], id(module) in encoder_ids, arch, name)
        others = [_kind(k, id(module) in encoder_ids, arch, name) for k in keys[1:]]
        merged = next((k for k in others if k != kind), None)
        site = AttentionSite(kind, counts.get(kind, 0), _heads(module, model.config), name.lstrip("."), index, merged)
        counts[kind] = site.layer + 1
        sites.append(site)
        kinds[id(module)] = kind
        for sub in module.modules():
            modules.setdefault(id(sub), site)
        if merged and not any("one softmax" in n for n in notes):
            notes.append(f"{kind} attention is one softmax over its own and the {merged} keys; headscope splits "
                         f"each map into {kind} (own keys) and {merged} (the rest), as the model's outputs do")
    if any(s.merged for s in sites):
        sites += [AttentionSite(s.merged, s.layer, s.heads, s.module, s.index) for s in sites if s.merged]
    repeat = _shared_applications(model, arch, sites)
    if repeat > 1:
        sites = [AttentionSite(s.kind, s.layer * repeat + r, s.heads, s.module, s.index, s.merged)
                 for s in sites for r in range(repeat)]
        for module_id, site in list(modules.items()):
            modules[module_id] = next(s for s in sites if s.index == site.index)
        notes.append(f"{len(sites) // repeat} shared layer module(s) applied {repeat} times each: "
                     "one map per application")
    layouts = _layouts(model, found, kinds)
    notes += [_LAYOUT_NOTES[layout].format(kind=kind) for kind, layout in layouts.items()]
    ordered = tuple(sorted(sites, key=lambda s: (KINDS.index(s.kind), s.layer)))
    return ModelStructure(str(getattr(model.config, "model_type", type(model).__name__)), arch, ordered, source,
                          modules, tuple(notes), type(model).__name__, layouts)
