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

from torch import nn
from transformers import PreTrainedModel

from ..errors import InputError
from ..readings import KINDS
from .architectures import Architecture, architecture_of, ARCHITECTURES

_HEAD_ATTRS = ("num_heads", "num_attention_heads", "n_heads", "n_head", "num_attn_heads")
_CROSS_MARKERS = ("encoder_attn", "encdecattention", "crossattention", "cross_attn", "cross_attention")


@dataclass(frozen=True)
class AttentionSite:
    """One attention module of the model: its kind, layer (forward order within the kind),
    number of heads and dotted module name."""

    kind: str
    layer: int
    heads: int
    module: str

    @property
    def name(self) -> str:
        return f"{self.kind}.{self.layer}"


@dataclass(frozen=True)
class ModelStructure:
    """A typed description of a loaded model's attention.

    Attributes:
        model_type: ``config.model_type``.
        architecture: the :class:`~headscope.models.architectures.Architecture` strategy.
        sites: every attention site, in forward order within each kind.
        source: ``"output recorders"`` (transformers' ``_can_record_outputs``) or ``"attention modules"``.
    """

    model_type: str
    architecture: Architecture
    sites: tuple[AttentionSite, ...]
    source: str
    _modules: dict[int, AttentionSite] = field(default_factory=dict, repr=False, compare=False)

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
        return f"{self.architecture.name} ({self.model_type}): {self.summary()} [{self.source}]"


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


def _walk(module: nn.Module, name: str, tasks: list[tuple[str, Any]]) -> Iterator[tuple[str, str, nn.Module]]:
    """``(key, name, module)`` for every recorder match, submodels using their own declarations."""
    for child_name, child in module.named_children():
        full = f"{name}.{child_name}"
        yield from _walk(child, full, _recorders(child) if isinstance(child, PreTrainedModel) else tasks)
    for key, spec in tasks:
        if _matches(module, name, spec):
            yield key, name, module
            return


def _heads(module: nn.Module, config: Any) -> int:
    for sub in module.modules():
        for attr in _HEAD_ATTRS:
            value = getattr(sub, attr, None)
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                return value
    for attr in ("num_attention_heads", "encoder_attention_heads", "n_head", "num_heads"):
        value = getattr(config, attr, None)
        if isinstance(value, int) and value > 0:
            return value
    return 0


def _kind(key: str, in_encoder: bool, arch: Architecture, module_name: str) -> str:
    if "cross" in key:
        return "cross"
    if key.startswith("encoder_"):
        return "encoder"
    if key.startswith("decoder_"):
        return "decoder"
    if arch.name == "encoder-decoder":
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


def describe(model: PreTrainedModel) -> ModelStructure:
    """The :class:`ModelStructure` of ``model`` (see the module docstring).

    >>> from headscope.models import build_tiny
    >>> s = describe(build_tiny("bert")[0])
    >>> s.architecture.name, s.kinds, s.layers("encoder")
    ('encoder', ('encoder',), 2)
    """
    arch = architecture_of(model)
    found = list(_walk(model, "", _recorders(model)))
    source = "output recorders"
    if not found:
        found, source = list(_attention_modules(model)), "attention modules"
    if arch.name == "encoder" and _is_causal([m for _, _, m in found]):
        arch = ARCHITECTURES["decoder"]  # a causal model with a classification head is decoder-only
    encoder_ids: set[int] = set()
    if arch.name == "encoder-decoder" and hasattr(model, "get_encoder"):
        encoder_ids = {id(m) for m in model.get_encoder().modules()}
    counts: dict[str, int] = {}
    sites: list[AttentionSite] = []
    modules: dict[int, AttentionSite] = {}
    for key, name, module in found:
        kind = _kind(key, id(module) in encoder_ids, arch, name)
        site = AttentionSite(kind, counts.get(kind, 0), _heads(module, model.config), name.lstrip("."))
        counts[kind] = site.layer + 1
        sites.append(site)
        for sub in module.modules():
            modules.setdefault(id(sub), site)
    ordered = tuple(sorted(sites, key=lambda s: (KINDS.index(s.kind), s.layer)))
    return ModelStructure(str(getattr(model.config, "model_type", type(model).__name__)), arch, ordered, source,
                          modules)
