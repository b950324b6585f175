"""One vocabulary for every attention reading headscope can give.

A *reading* is one ``[query, key]`` map a user can ask for. Each has a typed name, parsed and
printed here and nowhere else, and used alike by ``align``, ``faithful``, ``fragment`` and ``viz``:

========================  =====================  =================================================
name                      type                   what it is
========================  =====================  =================================================
``cross.2.3``             :class:`Head`          one head (layer 2, head 3) of one kind
``cross.2.mean``          :class:`LayerMean`     the mean over the heads of one layer
``cross.mean``            :class:`HeadsMean`     the mean over every head of every layer
``cross.rollout``         :class:`Rollout`       attention rollout (Abnar & Zuidema 2020)
``encoder.flow``          :class:`Flow`          attention flow (Abnar & Zuidema 2020)
``cross.2.3.norm``        :class:`Norm`          ||alpha f(x)|| of a head (Kobayashi et al. 2020)
``cross.2.norm``          :class:`Norm`          ||alpha f(x)|| of a layer, heads summed
``encoder.alti``          :class:`Alti`          ALTI rolled (``encoder.2.alti``: one layer)
``encoder.valuezeroing``  :class:`ValueZeroing`  value zeroing rolled (``encoder.2.valuezeroing``)
``cross.gradrollout``     :class:`GradRollout`   gradient-weighted rollout (Chefer et al. 2021)
========================  =====================  =================================================

Kinds are ``encoder`` and ``decoder`` (self-attention) and ``cross`` (decoder over encoder).
:class:`Site` addresses where attention is captured: a layer (``cross.2``) or one head of it.

>>> parse_reading("cross.2.3")
Head(kind='cross', layer=2, head=3)
>>> str(LayerMean("encoder", 1)), HeadsMean("cross").label
('encoder.1.mean', 'all-heads mean')
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar

from .errors import InputError

KINDS: tuple[str, ...] = ("encoder", "decoder", "cross")

_INT = re.compile(r"^\d+$")


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise InputError(f"unknown attention kind {kind!r}; the kinds are {', '.join(KINDS)}")


@dataclass(frozen=True, order=True)
class Site:
    """Where attention is captured: a layer of one kind (``cross.2``), or one head of it (``cross.2.3``).

    >>> Site.parse("cross.2.3"), Site("encoder", 0).name
    (Site(kind='cross', layer=2, head=3), 'encoder.0')
    """

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
        """Inverse of :attr:`name`; raises :class:`~headscope.errors.InputError` on anything else."""
        parts = name.split(".") if isinstance(name, str) else []
        if len(parts) not in (2, 3) or parts[0] not in KINDS or not all(_INT.match(p) for p in parts[1:]):
            raise InputError(f"not a site name: {name!r}; expected 'kind.layer' or 'kind.layer.head' "
                             f"(e.g. 'cross.2.3'), kind in {KINDS}")
        return cls(parts[0], *(int(p) for p in parts[1:]))

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class Reading:
    """Base of the reading names: every reading has a kind, a :attr:`name` and a :attr:`label`."""

    kind: str

    suffix: ClassVar[str] = ""
    needs_model: ClassVar[bool] = False  # computed from the maps alone unless True

    def __post_init__(self) -> None:
        _check_kind(self.kind)

    @property
    def name(self) -> str:
        """The stable string form, e.g. ``"cross.rollout"``; :func:`parse_reading` inverts it."""
        return f"{self.kind}.{self.suffix}"

    @property
    def label(self) -> str:
        """A short human label for tables and figures (the kind is left to the context)."""
        return self.suffix

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class Head(Reading):
    """One head's map: ``cross.2.3``."""

    layer: int = 0
    head: int = 0

    @property
    def name(self) -> str:
        return f"{self.kind}.{self.layer}.{self.head}"

    @property
    def label(self) -> str:
        return self.name

    @property
    def site(self) -> Site:
        """The capture site of this head."""
        return Site(self.kind, self.layer, self.head)


@dataclass(frozen=True)
class LayerMean(Reading):
    """The mean over the heads of one layer: ``cross.2.mean``."""

    layer: int = 0

    @property
    def name(self) -> str:
        return f"{self.kind}.{self.layer}.mean"

    @property
    def label(self) -> str:
        return f"layer {self.layer} mean"


@dataclass(frozen=True)
class HeadsMean(Reading):
    """The mean over every head of every captured layer: ``cross.mean``."""

    suffix: ClassVar[str] = "mean"

    @property
    def label(self) -> str:
        return "all-heads mean"


@dataclass(frozen=True)
class Rollout(Reading):
    """Attention rollout through the layers: ``cross.rollout`` (encoder-decoders: Chefer et al. 2021)."""

    suffix: ClassVar[str] = "rollout"


@dataclass(frozen=True)
class Flow(Reading):
    """Attention flow through a self-attention stack: ``encoder.flow``."""

    suffix: ClassVar[str] = "flow"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.kind == "cross":
            raise InputError("attention flow is defined on a self-attention stack: use 'encoder.flow' or "
                             "'decoder.flow', or 'cross.rollout' for target-over-source relevance")


# ---- readings beyond the raw weights (issue 16): computed when asked for, kept in Inspection.mixing ----

MIXING: tuple[str, ...] = ("norm", "alti", "valuezeroing", "gradrollout")
"""What ``headscope.inspect(..., readings=[...])`` can compute beside the maps (:mod:`headscope.mixing`)."""


@dataclass(frozen=True)
class _Mixing(Reading):
    """Base of the readings computed by :mod:`headscope.mixing`: per layer (``layer``) or through layers."""

    layer: int | None = None
    method: ClassVar[str] = ""     # the name passed to ``headscope.inspect(readings=[...])``
    title: ClassVar[str] = ""      # label text

    @property
    def name(self) -> str:
        return f"{self.kind}.{self.suffix}" if self.layer is None else f"{self.kind}.{self.layer}.{self.suffix}"

    @property
    def label(self) -> str:
        return self.title if self.layer is None else f"layer {self.layer} {self.title}"


@dataclass(frozen=True)
class Norm(_Mixing):
    """Norm-based attention ``||alpha_ij f(x_j)||`` (Kobayashi et al. 2020) of one head (``cross.2.3.norm``)
    or of a layer, heads summed before the norm (``cross.2.norm``)."""

    head: int | None = None
    suffix: ClassVar[str] = "norm"
    method: ClassVar[str] = "norm"
    title: ClassVar[str] = "norm"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.layer is None:
            raise InputError("norm-based attention is per head ('cross.2.3.norm') or per layer ('cross.2.norm')")

    @property
    def name(self) -> str:
        base = f"{self.kind}.{self.layer}"
        return f"{base}.norm" if self.head is None else f"{base}.{self.head}.norm"

    @property
    def label(self) -> str:
        return f"layer {self.layer} norm" if self.head is None else f"{self.kind}.{self.layer}.{self.head} norm"


@dataclass(frozen=True)
class Alti(_Mixing):
    """ALTI token contributions (Ferrando et al. 2022) of one layer (``encoder.2.alti``) or rolled through
    the layers (``encoder.alti``); ``cross``: ALTI+ source contributions to each target token."""

    suffix: ClassVar[str] = "alti"
    method: ClassVar[str] = "alti"
    title: ClassVar[str] = "ALTI"


@dataclass(frozen=True)
class ValueZeroing(_Mixing):
    """Value zeroing (Mohebbi et al. 2023) of one layer (``encoder.2.valuezeroing``) or rolled through the
    layers (``encoder.valuezeroing``); self-attention only."""

    suffix: ClassVar[str] = "valuezeroing"
    method: ClassVar[str] = "valuezeroing"
    title: ClassVar[str] = "value zeroing"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.kind == "cross":
            raise InputError("value zeroing is defined on self-attention: use 'encoder.valuezeroing' or "
                             "'decoder.valuezeroing' (and 'cross.alti' for source contributions)")


@dataclass(frozen=True)
class GradRollout(_Mixing):
    """Gradient-weighted attention rollout (Chefer, Gur & Wolf 2021) through the layers: ``cross.gradrollout``."""

    suffix: ClassVar[str] = "gradrollout"
    method: ClassVar[str] = "gradrollout"
    title: ClassVar[str] = "gradient rollout"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.layer is not None:
            raise InputError("gradient-weighted rollout runs through all layers: name it 'kind.gradrollout'")


_MIXING_READINGS: dict[str, type[_Mixing]] = {cls.suffix: cls for cls in (Norm, Alti, ValueZeroing, GradRollout)}


def _parse_mixing(kind: str, rest: list[str]) -> Reading | None:
    """``rest`` after the kind: ``[suffix]``, ``[layer, suffix]`` or ``[layer, head, "norm"]``; ``None`` otherwise."""
    cls = _MIXING_READINGS.get(rest[-1])
    numbers = rest[:-1]
    if cls is None or len(numbers) > 2 or not all(_INT.match(p) for p in numbers):
        return None
    if len(numbers) == 2:
        return Norm(kind, int(numbers[0]), int(numbers[1])) if cls is Norm else None
    return cls(kind, int(numbers[0])) if numbers else cls(kind)


_WHOLE: dict[str, type[Reading]] = {cls.suffix: cls for cls in (HeadsMean, Rollout, Flow)}


def parse_reading(name: "str | Reading | Site") -> Reading:
    """The typed reading a name stands for (a :class:`Reading` or a head :class:`Site` passes through).

    >>> parse_reading("encoder.flow"), parse_reading("cross.0.mean")
    (Flow(kind='encoder'), LayerMean(kind='cross', layer=0))
    """
    if isinstance(name, Reading):
        return name
    if isinstance(name, Site):
        if name.head is None:
            return LayerMean(name.kind, name.layer)
        return Head(name.kind, name.layer, name.head)
    parts = name.split(".") if isinstance(name, str) else []
    known = "'cross.2.3' (head), 'cross.2.mean' (layer mean), " + ", ".join(
        f"'cross.{s}'" for s in _WHOLE) + " ('encoder.flow'), 'cross.2.3.norm', 'cross.2.norm', " + ", ".join(
        f"'encoder.{s}'" for s in ("alti", "2.alti", "valuezeroing", "gradrollout"))
    if len(parts) < 2 or parts[0] not in KINDS:
        raise InputError(f"not a reading name: {name!r}; readings are named like {known}")
    kind, rest = parts[0], parts[1:]
    if len(rest) == 1 and rest[0] in _WHOLE:
        return _WHOLE[rest[0]](kind)
    if len(rest) == 2 and _INT.match(rest[0]) and rest[1] == "mean":
        return LayerMean(kind, int(rest[0]))
    if len(rest) == 2 and _INT.match(rest[0]) and _INT.match(rest[1]):
        return Head(kind, int(rest[0]), int(rest[1]))
    mixing = _parse_mixing(kind, rest)
    if mixing is not None:
        return mixing
    raise InputError(f"not a reading name: {name!r}; readings are named like {known}")
