"""The map of any reading of an Inspection: one function every consumer calls.

:func:`reading_map` turns a reading name (``"cross.2.3"``, ``"cross.mean"``, ``"cross.rollout"``,
``"encoder.flow"``, ... see :mod:`headscope.readings`) into its ``[query, key]`` map, and
:func:`map_readings` lists the readings an Inspection supports, so that ``align``, ``faithful``,
``fragment`` and ``viz`` ask for maps the same way.

>>> import headscope
>>> insp = headscope.inspect("headscope/en-fr", "A red car.")        # doctest: +SKIP
>>> reading_map(insp, "cross.rollout").shape                          # doctest: +SKIP
torch.Size([4, 4])
"""

from __future__ import annotations

import operator
from typing import Any

import torch

from ..errors import InputError
from ..inspection import Inspection
from ..readings import MIXING, Flow, Head, HeadsMean, LayerMean, Reading, Rollout, Site, parse_reading
from .flow import flow
from .rollout import encoder_decoder_rollout, rollout


def reading_map(insp: Inspection, reading: str | Reading | Site, **options: Any) -> torch.Tensor:
    """The ``[query, key]`` float map of ``reading`` on ``insp``.

    ``options`` go to the aggregate (``residual=``, ``head_fusion=`` for rollout and flow).
    Rollout of ``cross`` is the target-over-source rollout through encoder, decoder and cross
    attention (Chefer et al. 2021); of a self-attention kind, that stack alone.

    ``rows=[...]`` (query positions, negative from the end) gives only those rows of a head, a
    layer mean or the all-heads mean: ``[len(rows), key]``, as for flow.

    On an inspection that kept reductions instead of maps (``headscope.inspect(..., reduce=[...])``,
    issue 17), a head, a layer mean or the all-heads mean is read from the whole query rows it
    kept (``reduce=["rows=0,-1"]``): pass ``rows=`` naming some of them (:func:`reading_rows` lists
    them), or none when every row was kept. The rows returned are exactly those of the full map.
    A row that was not kept, or rollout and flow (every layer's whole map), raise ``InputError``
    naming what to ask for (``reduce=["rows=..."]``, full maps, or ``stream_to=``).

    >>> insp = headscope.inspect("headscope/sentiment", "fine", reduce=["rows=0,-1"])   # doctest: +SKIP
    >>> reading_map(insp, "encoder.2.mean", rows=[0]).shape                              # doctest: +SKIP
    torch.Size([1, 3])
    """
    r = parse_reading(reading)
    if r.name in insp.mixing:  # issue 16: readings beyond the raw weights, computed at inspect time
        return insp.mixing[r.name].float()
    if getattr(r, "method", None):
        raise InputError(f"reading {r.name!r} was not computed for this inspection (computed: "
                         f"{sorted(n for n in insp.mixing if n.startswith(r.kind + '.')) or 'none'}); inspect with "
                         f"readings=[{r.method!r}]")
    if _reduced_only(insp, r):  # issue 17: a long input captured with reductions instead of maps
        return _kept_rows_map(insp, r, options.get("rows"))
    if isinstance(r, (Head, LayerMean, HeadsMean)) and options.get("rows") is not None:
        whole = reading_map(insp, r)
        return whole[_row_positions(options["rows"], whole.shape[0], r)]
    if isinstance(r, Head):
        return insp.map(r.kind, r.layer, r.head).float()
    if isinstance(r, LayerMean):
        return insp.map(r.kind, r.layer).float().mean(0)
    att = insp.kind_maps(r.kind)
    if isinstance(r, HeadsMean):
        return att.float().mean((0, 1))
    if isinstance(r, Rollout):
        if r.kind == "cross":
            out = encoder_decoder_rollout(insp.kind_maps("encoder"), insp.kind_maps("decoder"), att, **options)
        else:
            out = rollout(att, **options)
        return torch.as_tensor(out, dtype=torch.float32)
    if isinstance(r, Flow):
        return torch.as_tensor(flow(att, **options), dtype=torch.float32)
    raise InputError(f"reading {r.name!r} is not computed from the maps alone")


def map_readings(insp: Inspection, kind: str, *, heads: bool = True, flow_too: bool = False) -> list[Reading]:
    """The readings of ``kind`` an Inspection supports: heads, layer means, all-heads mean, rollout
    (and flow for self-attention when ``flow_too``), in that order."""
    out: list[Reading] = []
    layers, n_heads = insp.layer_indices(kind), insp.shape(kind)[1]
    if heads:
        out += [Head(kind, layer, h) for layer in layers for h in range(n_heads)]
    out += [LayerMean(kind, layer) for layer in layers]
    out.append(HeadsMean(kind))
    complete = not insp.layers and not _reduced_only(insp, HeadsMean(kind))  # rollout/flow need whole maps
    if complete and (kind != "cross" or {"encoder", "decoder"} <= set(insp.kinds)):
        out.append(Rollout(kind))
    if complete and flow_too and kind != "cross":
        out.append(Flow(kind))
    return out + _mixing_readings(insp, kind, heads)


def reading_rows(insp: Inspection, kind: str) -> list[int] | None:
    """The query positions whose whole rows an inspection that kept only reductions of ``kind`` holds
    (``reduce=["rows=..."]``, in the order kept; ``[]``: none), which ``reading_map(..., rows=)`` can read;
    ``None`` when the maps are whole (every row).

    >>> insp = headscope.inspect("headscope/sentiment", "fine", reduce=["rows=0,-1"])   # doctest: +SKIP
    >>> rows = reading_rows(insp, "encoder"); rows                                        # doctest: +SKIP
    [0, 2]
    >>> reading_map(insp, "encoder.mean", rows=rows).shape                                # doctest: +SKIP
    torch.Size([2, 3])
    """
    if not _reduced_only(insp, HeadsMean(kind)):
        return None
    index = insp.reduced.get(kind, {}).get("rows.index")
    return [] if index is None else [int(i) for i in index.tolist()]


def _reduced_only(insp: Inspection, r: Reading) -> bool:
    """Whether ``r`` reads a kind whose maps are not in memory but reductions or streamed maps are."""
    kinds = ("encoder", "decoder", "cross") if isinstance(r, Rollout) and r.kind == "cross" else (r.kind,)
    return any(k not in insp.attentions and (k in insp.reduced or insp.streamed_to is not None) for k in kinds)


def _row_positions(rows: Any, n: int, r: Reading) -> list[int]:
    """``rows`` (ints, negative from the end) as positions in ``0..n-1``."""
    try:
        wanted = [operator.index(i) for i in (rows if hasattr(rows, "__iter__") else [rows])]
    except TypeError:
        wanted = [n]  # not whole numbers: refused below
    if not wanted or not all(-n <= i < n for i in wanted) or any(isinstance(i, bool) for i in wanted):
        raise InputError(f"reading {r.name!r}: rows={rows!r}; pass query positions in -{n}..{n - 1} "
                         f"({r.kind!r} has {n} query rows)")
    return [i % n for i in wanted]


def _kept_rows_map(insp: Inspection, r: Reading, rows: Any) -> torch.Tensor:
    """Heads and means of the whole query rows a reduced capture kept; a clear refusal otherwise."""
    kept = sorted(insp.reduced.get(r.kind, {}))
    if isinstance(r, (Rollout, Flow)):
        raise InputError(f"reading {r.name!r} multiplies every layer's whole map, but this inspection kept only "
                         f"reductions of {r.kind!r} ({', '.join(kept) or 'none'}); inspect with full maps (no "
                         "reduce=) or with stream_to=folder and read the maps back with "
                         "headscope.capture.load_streamed(folder)")
    kept_rows = insp.reduced.get(r.kind, {}).get("rows")
    if kept_rows is None:
        raise InputError(f"reading {r.name!r} needs whole query rows of {r.kind!r}, but this inspection kept only "
                         f"{', '.join(kept) or 'no reductions of it'}; inspect with reduce=['rows=0'] (the query "
                         "rows you need, e.g. 'rows=0' for [CLS], 'rows=-1' for the last token), full maps (no "
                         "reduce=) or stream_to=")
    kept, n = reading_rows(insp, r.kind) or [], len(insp.query_tokens(r.kind))
    if rows is None and kept != list(range(n)):
        raise InputError(f"reading {r.name!r}: this inspection kept only query rows {kept} of the {n} of {r.kind!r}; "
                         f"pass rows={kept} (headscope.aggregate.maps.reading_rows) to read those, or inspect with "
                         "full maps (no reduce=)")
    wanted = list(range(n)) if rows is None else _row_positions(rows, n, r)
    missing = [i for i in wanted if i not in kept]
    if missing:
        ask = ",".join(str(i) for i in sorted(set(kept) | set(wanted)))
        raise InputError(f"reading {r.name!r}: query rows {missing} of {r.kind!r} were not kept (kept: {kept}); "
                         f"inspect with reduce=['rows={ask}'] or full maps (no reduce=)")
    rows = kept_rows[:, :, [kept.index(i) for i in wanted]]
    if isinstance(r, (Head, LayerMean)):
        layers = insp.layer_indices(r.kind)
        if r.layer not in layers or (isinstance(r, Head) and not 0 <= r.head < rows.shape[1]):
            raise InputError(f"reading {r.name!r}: {r.kind!r} has layers {layers} and {rows.shape[1]} heads per layer "
                             "in this inspection; name one of them")
        layer = rows[layers.index(r.layer)].float()
        return layer[r.head] if isinstance(r, Head) else layer.mean(0)
    if isinstance(r, HeadsMean):
        return rows.float().mean((0, 1))
    raise InputError(f"reading {r.name!r} is not computed from the maps alone")


def _mixing_readings(insp: Inspection, kind: str, heads: bool) -> list[Reading]:
    """The readings of ``kind`` in ``insp.mixing`` (issue 16), by method, then per layer before rolled."""
    found = [parse_reading(name) for name in insp.mixing if name.startswith(f"{kind}.")]
    found = [r for r in found if heads or getattr(r, "head", None) is None]
    return sorted(found, key=lambda r: (MIXING.index(r.method), r.layer is None, r.layer or 0,
                                        -1 if getattr(r, "head", None) is None else r.head))
