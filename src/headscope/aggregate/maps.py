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

from typing import Any

import torch

from ..errors import InputError
from ..inspection import Inspection
from ..readings import Flow, Head, HeadsMean, LayerMean, Reading, Rollout, Site, parse_reading
from .flow import flow
from .rollout import encoder_decoder_rollout, rollout


def reading_map(insp: Inspection, reading: str | Reading | Site, **options: Any) -> torch.Tensor:
    """The ``[query, key]`` float map of ``reading`` on ``insp``.

    ``options`` go to the aggregate (``residual=``, ``head_fusion=`` for rollout and flow).
    Rollout of ``cross`` is the target-over-source rollout through encoder, decoder and cross
    attention (Chefer et al. 2021); of a self-attention kind, that stack alone.
    """
    r = parse_reading(reading)
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
    complete = not insp.layers
    if complete and (kind != "cross" or {"encoder", "decoder"} <= set(insp.kinds)):
        out.append(Rollout(kind))
    if complete and flow_too and kind != "cross":
        out.append(Flow(kind))
    return out
