"""Localisation: does a map point at the object? The vision counterpart of alignment error rates.

Scored over images whose object mask is known (e.g. :mod:`headscope.vision.shapes`), at the
resolution the model sees — the patch grid:

* **object patches**: the patches that hold at least one object pixel (the mask is first brought
  to the image size the model saw, nearest neighbour);
* **pointing game** (Zhang et al. 2016, on patches): a hit when the map's largest patch is an
  object patch (ties share the hit);
* **mass inside**: the share of the map's patch mass on object patches (special tokens left out).

A uniform map scores the share of object patches on both: the ``chance`` row. Every head, the
layer means, the all-heads mean, rollout, flow and gradient saliency are scored
(:func:`localisation`), each with a 95% interval.

>>> result = localisation(inspections, masks)                          # doctest: +SKIP
>>> print(result)                                                      # doctest: +SKIP
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..aggregate import map_readings
from ..errors import InputError
from ..inspection import Inspection
from ..readings import Reading, parse_reading
from .maps import DEFAULT_QUERY, GridMap, grid_map, require_grid
from .results import RowsResult
from .saliency import SALIENCY, saliency_maps

CELL_RULE = "a patch is an object patch when it holds at least one object pixel"


def resize_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A boolean ``[H, W]`` mask brought to ``size`` by nearest neighbour (pixel centres)."""
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 2:
        raise InputError(f"an object mask is [height, width] booleans, got shape {mask.shape}")
    if mask.shape == tuple(size):
        return mask
    rows = np.minimum(((np.arange(size[0]) + 0.5) * mask.shape[0] / size[0]).astype(int), mask.shape[0] - 1)
    cols = np.minimum(((np.arange(size[1]) + 0.5) * mask.shape[1] / size[1]).astype(int), mask.shape[1] - 1)
    return mask[rows][:, cols]


def patch_coverage(mask: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """``[rows, cols]``: the share of each patch's pixels inside ``mask`` (pixels past the last whole patch dropped)."""
    rows, cols = grid
    h, w = mask.shape[0] // rows, mask.shape[1] // cols
    return mask[: rows * h, : cols * w].reshape(rows, h, cols, w).mean((1, 3))


def object_cells(mask: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """``[rows, cols]`` booleans: the object patches (at least one object pixel)."""
    return patch_coverage(mask, grid) > 0


def pointing_hit(values: np.ndarray, cells: np.ndarray) -> float:
    """1 when the largest patch of ``values`` is an object patch, 0 when not; tied maxima share it."""
    top = values >= values.max() - 1e-12 * max(1.0, abs(values.max()))
    return float(cells[top].mean())


def mass_inside(values: np.ndarray, cells: np.ndarray) -> float:
    """The share of ``values``' (non-negative) patch mass on the object patches."""
    v = np.clip(values, 0, None)
    total = v.sum()
    return float(v[cells].sum() / total) if total > 0 else float(cells.mean())


@dataclass
class LocalisationResult(RowsResult):
    """Pointing game and mass inside the object, per map, over ``n_images`` images.

    ``rows``: one per reading / method: ``name``, ``label``, ``group`` (``head``, ``layer mean``,
    ``aggregate``, ``saliency``, ``baseline``), ``pointing`` (hit rate) with its Wilson 95% interval
    ``pointing_low`` / ``pointing_high``, ``mass`` (mean share inside) with ``mass_se``.
    """

    kind: ClassVar[str] = "localisation"
    columns: ClassVar[tuple[tuple[str, str, str], ...]] = (
        ("label", "map", ""), ("pointing", "pointing", ".3f"), ("pointing_low", "95% low", ".3f"),
        ("pointing_high", "95% high", ".3f"), ("mass", "mass inside", ".3f"), ("mass_se", "± se", ".3f"))

    model_name: str = ""
    n_images: int = 0
    grid: tuple[int, int] = (0, 0)
    query: str = DEFAULT_QUERY
    cell_rule: str = CELL_RULE

    def summary(self) -> str:
        chance = self.row("chance")
        best = sorted((r for r in self.rows if r["group"] != "baseline"), key=lambda r: -r["pointing"])
        lines = [f"localisation of {self.model_name}'s {self.query} attention over {self.n_images} images "
                 f"({self.grid[0]}x{self.grid[1]} patches; {self.cell_rule})",
                 f"  chance (uniform map): pointing {chance['pointing']:.3f}, mass inside {chance['mass']:.3f}"]
        for group in ("aggregate", "beyond the weights", "saliency", "layer mean"):
            for r in (r for r in self.rows if r["group"] == group):
                lines.append(f"  {r['label']:<22} pointing {r['pointing']:.3f} [{r['pointing_low']:.3f}, "
                             f"{r['pointing_high']:.3f}]  mass inside {r['mass']:.3f}")
        heads = [r for r in best if r["group"] == "head"]
        if heads:
            lines.append(f"  best head {heads[0]['label']}: pointing {heads[0]['pointing']:.3f}, mass inside "
                         f"{heads[0]['mass']:.3f}; worst head {heads[-1]['label']}: pointing {heads[-1]['pointing']:.3f}")
        return "\n".join(lines)


def wilson(hits: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of a rate of ``hits`` successes out of ``n``."""
    if n == 0:
        return 0.0, 1.0
    p = hits / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def score_row(name: str, label: str, group: str, maps: Sequence[GridMap], cells: Sequence[np.ndarray]) -> dict:
    """One row of a :class:`LocalisationResult` from the maps of ``name`` on every image."""
    hits = np.array([pointing_hit(m.values, c) for m, c in zip(maps, cells)])
    mass = np.array([mass_inside(m.values, c) for m, c in zip(maps, cells)])
    return _row(name, label, group, hits, mass)


def _row(name: str, label: str, group: str, hits: np.ndarray, mass: np.ndarray) -> dict:
    low, high = wilson(float(hits.sum()), len(hits))
    se = float(mass.std(ddof=1) / math.sqrt(len(mass))) if len(mass) > 1 else 0.0
    return {"name": name, "label": label, "group": group, "pointing": round(float(hits.mean()), 4),
            "pointing_low": round(low, 4), "pointing_high": round(high, 4), "mass": round(float(mass.mean()), 4),
            "mass_se": round(se, 4), "n": len(hits)}


def _group(r: Reading) -> str:
    from ..readings import Alti, GradRollout, Head, LayerMean, Norm, ValueZeroing

    if isinstance(r, (Norm, Alti, ValueZeroing, GradRollout)):
        return "beyond the weights"
    return "head" if isinstance(r, Head) else "layer mean" if isinstance(r, LayerMean) else "aggregate"


def localisation(inspections: Sequence[Inspection], masks: Sequence[np.ndarray],
                 readings: Sequence[str | Reading] | None = None, *, query: str = DEFAULT_QUERY,
                 saliency: Sequence[str] = tuple(SALIENCY), flow: bool = True,
                 maps: dict[str, list[GridMap]] | None = None) -> LocalisationResult:
    """Score every reading (default: every head, the layer means, the all-heads mean, rollout and
    ``flow``) and each ``saliency`` method on the images of ``inspections`` with object ``masks``.

    ``masks[i]`` is the object mask of image ``i`` (any size; brought to the model's input size).
    Saliency needs the model (inspections from :func:`headscope.inspect`, not loaded from disk);
    pass ``saliency=()`` to skip it. ``maps`` may hold precomputed :class:`GridMap` lists by name
    (they are scored instead of being recomputed).
    """
    if len(inspections) != len(masks) or not inspections:
        raise InputError(f"{len(inspections)} inspections and {len(masks)} masks: pass one mask per image (and at "
                         "least one image)")
    grid = require_grid(inspections[0])
    if any(i.patch_grid != grid for i in inspections):
        raise InputError("the inspections have different patch grids; score images of one size together")
    cells = []
    for insp, mask in zip(inspections, masks):
        size = tuple(insp.pixel_values.shape[-2:]) if insp.pixel_values is not None else np.shape(mask)
        cells.append(object_cells(resize_mask(mask, size), grid))
    chosen = [parse_reading(r) for r in readings] if readings is not None else map_readings(
        inspections[0], "encoder", heads=True, flow_too=flow)
    computed = dict(maps or {})
    rows = []
    for r in chosen:
        group_maps = computed.get(r.name) or [grid_map(i, r, query) for i in inspections]
        computed[r.name] = group_maps
        rows.append(score_row(r.name, r.label, _group(r), group_maps, cells))
    for method in saliency:
        group_maps = computed.get(method) or saliency_maps(inspections, method)
        computed[method] = group_maps
        rows.append(score_row(method, SALIENCY[method], "saliency", group_maps, cells))
    share = np.array([c.mean() for c in cells])
    rows.append(_row("chance", "chance (uniform map)", "baseline", share, share))
    return LocalisationResult(rows=rows, model_name=inspections[0].model_name, n_images=len(inspections),
                              grid=tuple(grid), query=query)
