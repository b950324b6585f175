"""Stable names for captured attention sites.

Every attention map headscope records is addressed by ``(kind, layer, head)``:

* ``kind`` is ``"encoder"``, ``"decoder"`` (self-attention) or ``"cross"`` (decoder over encoder);
* ``layer`` counts from 0 at the input side;
* ``head`` counts from 0.

The string form is ``"kind.layer.head"`` (``"cross.2.3"``), or ``"kind.layer"`` for a whole layer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

KINDS: tuple[str, ...] = ("encoder", "decoder", "cross")

_CROSS_MARKERS = ("encoder_attn", "encdecattention", "crossattention", "cross_attn", "cross_attention")
_INT = re.compile(r"^\d+$")


@dataclass(frozen=True, order=True)
class Site:
    """One attention site: a layer of one kind, or one head of it when ``head`` is set."""

    kind: str
    layer: int
    head: int | None = None

    @property
    def name(self) -> str:
        """``"kind.layer"`` or ``"kind.layer.head"``."""
        base = f"{self.kind}.{self.layer}"
        return base if self.head is None else f"{base}.{self.head}"

    @classmethod
    def parse(cls, name: str) -> "Site":
        """Inverse of :attr:`name`: ``Site.parse("cross.2.3") == Site("cross", 2, 3)``."""
        parts = name.split(".")
        if len(parts) not in (2, 3) or parts[0] not in KINDS or not all(_INT.match(p) for p in parts[1:]):
            raise ValueError(f"not a site name: {name!r}; expected 'kind.layer' or 'kind.layer.head', kind in {KINDS}")
        return cls(parts[0], *(int(p) for p in parts[1:]))

    def __str__(self) -> str:
        return self.name


def classify_module(module_name: str, family: str) -> Site:
    """Label an attention module from its dotted name within the model.

    >>> classify_module("model.decoder.layers.1.encoder_attn", "encoder-decoder")
    Site(kind='cross', layer=1, head=None)
    >>> classify_module("bert.encoder.layer.4.attention.self", "classifier")
    Site(kind='encoder', layer=4, head=None)
    """
    lowered = module_name.lower()
    parts = lowered.split(".")
    if family == "encoder-decoder":
        if any(marker in lowered for marker in _CROSS_MARKERS):
            kind = "cross"
        elif "decoder" in parts:
            kind = "decoder"
        else:
            kind = "encoder"
    elif family == "decoder":
        kind = "decoder"
    else:
        kind = "encoder"
    numbers = [int(p) for p in parts if _INT.match(p)]
    if not numbers:
        raise ValueError(f"cannot find a layer index in module name {module_name!r}")
    return Site(kind, numbers[0])
