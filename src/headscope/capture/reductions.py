"""Reductions: what a reading needs from each layer's maps, computed as the layer runs.

A full capture keeps ``layers x heads x n x n`` probabilities, which grows as the square of the
input's length (a 12-layer x 12-head model at 4,096 tokens: about 9.7 GB in float32). Most
readings of a long input need much less: a few query rows (the ``[CLS]`` row, a target span), or
one number per query row and head. :class:`Reductions` says which; the capture computes them from
each layer's probabilities inside the attention function and drops the layer's maps, so the
memory kept is ``O(layers x heads x n x k)``.

Statistics, per layer, head and query row (``[layers, heads, query]``):

* ``entropy``: ``-sum_k p log p`` in nats (``0 log 0 = 0``), the spread of the row
  (Clark et al. 2019, *What does BERT look at?*, section 3);
* ``sink``: the weight on the first token (the "attention sink" / ``[CLS]``/``<s>`` mass;
  Xiao et al. 2024, *Efficient streaming language models with attention sinks*);
* ``max``: the largest weight of the row;
* ``links`` (``[layers, heads, key]``): how many query rows put their largest weight on each key,
  the argmax alignment's link counts per key (Jain & Wallace 2019's and the alignment readings'
  "most attended source token"; ties go to the first key).

``topk=k`` keeps the ``k`` largest weights of every row and their key positions
(``topk.values`` / ``topk.indices``, ``[layers, heads, query, k]``); ``rows=[...]`` keeps whole
query rows (``rows``, ``[layers, heads, len(rows), key]``, with their positions in ``rows.index``).

>>> spec = Reductions(rows=[0], stats=("entropy", "sink"), topk=2)
>>> probs = torch.tensor([[[[0.5, 0.5, 0.0], [0.1, 0.2, 0.7], [1.0, 0.0, 0.0]]]])  # [batch, heads, q, k]
>>> out = reduce_layer(probs, spec)
>>> [round(v, 4) for v in out["entropy"][0, 0].tolist()], out["sink"][0, 0].tolist()
([0.6931, 0.8018, 0.0], [0.5, 0.10000000149011612, 1.0])
>>> out["topk.indices"][0, 0, 1].tolist(), out["rows"].shape
([2, 1], torch.Size([1, 1, 1, 3]))
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from ..errors import InputError
from ..readings import Flow, Head, HeadsMean, LayerMean, Reading, Rollout, parse_reading

_BLOCK = 256  # query rows per block of a temporary computation
STATS = ("entropy", "sink", "max", "links")
"""Per-row statistics a capture can compute: see the module's docstring."""


@dataclass(frozen=True)
class Reductions:
    """What to compute from each layer's maps instead of (or beside) keeping them whole.

    Args:
        rows: query rows to keep whole (positions in the unpadded input, negative counts from the
            end: ``[0]`` is the ``[CLS]`` row); a list for every kind, or ``{kind: [rows]}``.
        stats: statistics, from :data:`STATS` (``entropy``, ``sink``, ``max`` per row; ``links`` per key).
        topk: keep the ``k`` largest weights of every row and their key positions (0: none).
        maps: also keep the full maps (in memory, or streamed with ``stream_to=``).

    >>> Reductions(rows=[0], topk=4).names("encoder")
    ['entropy', 'sink', 'max', 'links', 'topk.values', 'topk.indices', 'rows', 'rows.index']
    """

    rows: Sequence[int] | Mapping[str, Sequence[int]] | None = None
    stats: tuple[str, ...] = STATS
    topk: int = 0
    maps: bool = False
    _rows: tuple[tuple[str | None, tuple[int, ...]], ...] = field(default=(), init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        stats = (self.stats,) if isinstance(self.stats, str) else tuple(self.stats)
        unknown = [s for s in stats if s not in STATS]
        if unknown:
            raise InputError(f"reduce: unknown statistic(s) {unknown}; choose from {list(STATS)}")
        object.__setattr__(self, "stats", stats)
        if not isinstance(self.topk, int) or isinstance(self.topk, bool) or self.topk < 0:
            raise InputError(f"reduce: topk={self.topk!r}; pass a whole number >= 0 (0 keeps no top entries)")
        rows = self.rows
        if rows is None:
            parsed: tuple[tuple[str | None, tuple[int, ...]], ...] = ()
        elif isinstance(rows, Mapping):
            parsed = tuple((str(kind), _row_list(r, kind)) for kind, r in rows.items())
        else:
            parsed = ((None, _row_list(rows, "all kinds")),)
        object.__setattr__(self, "_rows", parsed)

    @classmethod
    def of(cls, value: Reductions | Iterable[str] | None) -> Reductions | None:
        """A :class:`Reductions` from itself, ``None``, or a list of names (statistics, ``"topk=K"``,
        ``"rows=0,5"``, ``"maps"``), as ``headscope.inspect(..., reduce=[...])`` takes them.

        >>> Reductions.of(["entropy", "topk=3", "rows=0"])
        Reductions(rows=(0,), stats=('entropy',), topk=3, maps=False)
        """
        if value is None or isinstance(value, Reductions):
            return value
        if isinstance(value, str):
            value = [value]
        stats: list[str] = []
        topk, rows, maps = 0, None, False
        for item in value:
            name, _, arg = str(item).partition("=")
            try:
                if name == "topk":
                    topk = int(arg)
                elif name == "rows":
                    rows = tuple(int(r) for r in arg.split(",") if r.strip())
                elif name == "maps" and not arg:
                    maps = True
                elif name in STATS and not arg:
                    stats.append(name)
                else:
                    raise ValueError(name)
            except ValueError:
                raise InputError(f"reduce: {item!r} is not a reduction; use statistic names {list(STATS)}, "
                                 "'topk=K', 'rows=0,5' or 'maps' (or a headscope.capture.Reductions)") from None
        return cls(rows=rows, stats=tuple(stats), topk=topk, maps=maps)

    def rows_for(self, kind: str) -> tuple[int, ...]:
        """The query rows kept whole for ``kind`` (empty: none)."""
        for name, rows in self._rows:
            if name is None or name == kind:
                return rows
        return ()

    def names(self, kind: str) -> list[str]:
        """The reductions computed for ``kind``, in storage order."""
        out = list(self.stats)
        if self.topk:
            out += ["topk.values", "topk.indices"]
        if self.rows_for(kind):
            out += ["rows", "rows.index"]
        return out

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description (saved with an inspection)."""
        rows: Any = None
        if self._rows:
            rows = ({k: list(r) for k, r in self._rows} if self._rows[0][0] is not None else list(self._rows[0][1]))
        return {"rows": rows, "stats": list(self.stats), "topk": self.topk, "maps": self.maps}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Reductions:
        return cls(rows=data.get("rows"), stats=tuple(data.get("stats", STATS)), topk=int(data.get("topk", 0)),
                   maps=bool(data.get("maps", False)))


def _row_list(rows: Any, where: str) -> tuple[int, ...]:
    if isinstance(rows, int) and not isinstance(rows, bool):
        rows = [rows]
    try:
        out = tuple(int(r) for r in rows if not isinstance(r, bool))
    except (TypeError, ValueError):
        out = ()
    if not out or len(out) != len(list(rows)):
        raise InputError(f"reduce: rows for {where} must be a non-empty list of token positions (ints), got {rows!r}")
    return out


def _positions(rows: tuple[int, ...], length: int, kind: str) -> list[int]:
    out = []
    for r in rows:
        p = r + length if r < 0 else r
        if not 0 <= p < length:
            raise InputError(f"reduce: row {r} is outside the {length} query rows of {kind!r}; "
                             f"pass positions in -{length}..{length - 1}")
        out.append(p)
    return out


def reduce_layer(probs: torch.Tensor, spec: Reductions, kind: str = "encoder") -> dict[str, torch.Tensor]:
    """The reductions of one layer's probabilities ``[..., query, key]`` (float32; indices int64).

    The same function reduces a capture's layers as they run and full maps after the fact
    (:func:`reduce_maps`), so both agree exactly.
    """
    p = probs.detach().float()
    out: dict[str, torch.Tensor] = {}
    for stat in spec.stats:
        if stat == "entropy":  # in blocks of rows: no second full-size tensor for a long input
            out[stat] = torch.cat([torch.special.entr(block).sum(-1) for block in p.split(_BLOCK, dim=-2)], dim=-1)
        elif stat == "sink":
            out[stat] = p[..., 0].clone()
        elif stat == "max":
            out[stat] = p.amax(-1)
        else:
            top = p.argmax(-1, keepdim=True)
            out[stat] = torch.zeros(p.shape[:-2] + p.shape[-1:], dtype=torch.float32, device=p.device).scatter_add_(
                -1, top.squeeze(-1), torch.ones(top.shape[:-1], dtype=torch.float32, device=p.device))
    if spec.topk:
        k = min(spec.topk, p.shape[-1])
        values, indices = p.topk(k, dim=-1)
        out["topk.values"], out["topk.indices"] = values, indices
    rows = spec.rows_for(kind)
    if rows:
        index = torch.tensor(_positions(rows, p.shape[-2], kind), dtype=torch.long, device=p.device)
        out["rows"] = p.index_select(-2, index)
        out["rows.index"] = index
    return out


def reduce_maps(maps: torch.Tensor, spec: Reductions, kind: str = "encoder") -> dict[str, torch.Tensor]:
    """The reductions of full maps ``[layers, heads, query, key]`` (as a capture computes them)."""
    return reduce_layer(maps, spec, kind)


def stack_reductions(layers: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Per-layer reductions (``[batch, heads, ...]`` each) as ``[batch, layers, heads, ...]``."""
    if not layers:
        return {}
    out = {name: torch.stack([layer[name] for layer in layers], dim=1) for name in layers[0] if name != "rows.index"}
    if "rows.index" in layers[0]:
        out["rows.index"] = layers[0]["rows.index"]
    return out


LONG_INPUT = 512
"""Tokens above which :func:`reduce_for` asks for reductions instead of whole maps (the capture's
block of query rows: past it, a whole map costs more than the blocks it is computed in)."""


def reduce_for(readings: Iterable[str | Reading], n_tokens: int, *, n_target: int | None = None,
               rows: Sequence[int] = (0, -1), long: int = LONG_INPUT) -> Reductions | None:
    """What to ask ``headscope.inspect(..., reduce=)`` for so that ``readings`` work on an input of
    ``n_tokens`` tokens: ``None`` (whole maps) up to ``long`` tokens, reductions past it.

    ``readings`` are reading names (``"encoder.3.1"``, ``"encoder.mean"``; see
    :mod:`headscope.readings`) or ``"fragmentation"`` (:func:`headscope.fragment.fragmentation`).
    Heads and means of a long input are read on whole query rows: ``rows`` of the source side (the
    first and last: the ``[CLS]`` row of an encoder, the last token's of a decoder), and every target
    row of an encoder-decoder when ``n_target`` (the forced target's length in tokens) is given; every
    per-row statistic of :data:`STATS` comes too (``O(layers x heads x n)``). Rollout and flow multiply
    every layer's whole map, so a long input refuses them: keep full maps or stream them (``stream_to=``).

    >>> reduce_for(["fragmentation"], 100) is None
    True
    >>> reduce_for(["encoder.mean"], 2000).rows_for("encoder")
    (0, -1)
    >>> reduce_for(["fragmentation"], 2000, n_target=3).rows_for("cross")
    (0, 1, 2)
    """
    if not isinstance(n_tokens, int) or isinstance(n_tokens, bool) or n_tokens < 1:
        raise InputError(f"reduce_for: n_tokens={n_tokens!r}; pass the input's length in tokens (a whole number >= 1)")
    if n_target is not None and (not isinstance(n_target, int) or isinstance(n_target, bool) or n_target < 1):
        raise InputError(f"reduce_for: n_target={n_target!r}; pass the forced target's length in tokens, or None")
    wanted = [r if isinstance(r, Reading) or r == "fragmentation" else parse_reading(r) for r in readings]
    if n_tokens <= long:
        return None
    for r in wanted:
        if isinstance(r, (Rollout, Flow)) or (isinstance(r, Reading) and not isinstance(r, (Head, LayerMean, HeadsMean))):
            raise InputError(f"reading {r.name!r} needs every layer's whole map, and a {n_tokens}-token input is past "
                             f"{long} tokens, where reductions replace them; inspect with full maps (no reduce=, "
                             "memory grows as n^2) or with stream_to=folder (maps on disk; "
                             "headscope.capture.load_streamed)")
    target = tuple(range(n_target)) if n_target is not None else tuple(rows)
    return Reductions(rows={"encoder": tuple(rows), "decoder": target, "cross": target})


__all__ = ["LONG_INPUT", "STATS", "Reductions", "reduce_for", "reduce_layer", "reduce_maps", "stack_reductions"]
