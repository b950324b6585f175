"""The upsampling test: how much apparent precision a smooth overlay adds beyond the patch grid.

A heatmap painted smoothly over an image (bilinear or bicubic upsampling) looks pixel-precise; it
is a fixed interpolation of the patch grid's few numbers. This module renders a :class:`GridMap`
at pixel resolution three ways (:func:`render`: ``"grid"`` flat blocks, ``"bilinear"``,
``"bicubic"``) and measures, over images with known object masks (:func:`upsampling_test`):

* ``pixels_per_number``: pixels painted per number the model gave (``H*W / (rows*cols)``);
* ``within_patch``: the share of the rendering's variance that lies inside patches, where the
  model gave one number per patch (0 for the grid rendering: all of it is interpolation otherwise);
* ``edge_width_px``: how wide a smooth rendering's edges are where it crosses half its maximum
  (the distance over which it would rise from 10% to 90% of its range at the local slope); the
  grid rendering has none to measure: its edges are steps, all on the patch boundaries;
* ``iou``: the overlap of the half-maximum region with the object mask, in pixels;
* ``boundary_px``: the mean distance from that region's outline to the object's outline;
* ``mass_inside_px``: the share of the rendering's mass on object pixels.

The same is measured for the **oracle** grid map — each patch's share of object pixels, the best a
map on this grid can be — so that what interpolation adds by itself is seen apart from the model.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch

from ..errors import InputError
from .localisation import patch_coverage, resize_mask
from .maps import GridMap
from .results import RowsResult

MODES = ("grid", "bilinear", "bicubic")


def render(values: np.ndarray, size: tuple[int, int], mode: str = "grid") -> np.ndarray:
    """``[rows, cols]`` values at pixel resolution ``size`` (``[H, W]`` float64).

    ``"grid"``: each patch a flat block (what the model measured); ``"bilinear"`` / ``"bicubic"``:
    smooth interpolation (``align_corners=False``; bicubic can overshoot, it is not clipped).
    """
    values = np.asarray(values, dtype=np.float64)
    if mode == "grid":
        rows, cols = values.shape
        h, w = size[0] // rows, size[1] // cols
        out = np.zeros(size)
        out[: rows * h, : cols * w] = np.kron(values, np.ones((h, w)))
        return out
    if mode not in MODES:
        raise InputError(f"rendering {mode!r}; known: {MODES}")
    t = torch.as_tensor(values)[None, None]
    return torch.nn.functional.interpolate(t, size=tuple(size), mode=mode, align_corners=False)[0, 0].numpy()


def within_patch_share(pixels: np.ndarray, grid: tuple[int, int]) -> float:
    """The share of ``pixels``' variance that lies inside patches (variance around each patch's mean)."""
    rows, cols = grid
    h, w = pixels.shape[0] // rows, pixels.shape[1] // cols
    cut = pixels[: rows * h, : cols * w].reshape(rows, h, cols, w)
    total = cut.var()
    return float(((cut - cut.mean((1, 3), keepdims=True)) ** 2).mean() / total) if total > 0 else 0.0


def half_max_region(pixels: np.ndarray) -> np.ndarray:
    """The pixels at or above half the rendering's range (min to max)."""
    lo, hi = pixels.min(), pixels.max()
    return pixels >= lo + 0.5 * (hi - lo) if hi > lo else np.zeros(pixels.shape, bool)


def edge_width(pixels: np.ndarray) -> float:
    """Median 10-90% rise distance (pixels) at the half-maximum outline of a rendering."""
    lo, hi = pixels.min(), pixels.max()
    if hi <= lo:
        return float("nan")
    u = (pixels - lo) / (hi - lo)
    gy, gx = np.gradient(u)
    slope = np.hypot(gx, gy)
    above = u >= 0.5
    outline = np.zeros_like(above)
    outline[:-1] |= above[:-1] != above[1:]
    outline[:, :-1] |= above[:, :-1] != above[:, 1:]
    slopes = slope[outline & (slope > 0)]
    return float(np.median(0.8 / slopes)) if slopes.size else float("nan")


def _outline(region: np.ndarray) -> np.ndarray:
    inner = region.copy()
    inner[1:] &= region[:-1]
    inner[:-1] &= region[1:]
    inner[:, 1:] &= region[:, :-1]
    inner[:, :-1] &= region[:, 1:]
    return region & ~inner


def boundary_distance(region: np.ndarray, mask: np.ndarray) -> float:
    """Mean distance (pixels) from the outline of ``region`` to the outline of ``mask``."""
    from scipy.ndimage import distance_transform_edt

    edge_r, edge_m = _outline(region), _outline(mask)
    if not edge_r.any() or not edge_m.any():
        return float("nan")
    return float(distance_transform_edt(~edge_m)[edge_r].mean())


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = (a | b).sum()
    return float((a & b).sum() / union) if union else 0.0


def measure(values: np.ndarray, mask: np.ndarray, mode: str) -> dict[str, float]:
    """Every measure of one grid map rendered by ``mode`` against the pixel ``mask``."""
    pixels = render(values, mask.shape, mode)
    region = half_max_region(pixels)
    positive = np.clip(pixels, 0, None)
    return {"within_patch": within_patch_share(pixels, values.shape),
            "edge_width_px": float("nan") if mode == "grid" else edge_width(pixels),
            "iou": iou(region, mask), "boundary_px": boundary_distance(region, mask),
            "mass_inside_px": float(positive[mask].sum() / positive.sum()) if positive.sum() > 0 else 0.0,
            "distinct_values": float(len(np.unique(np.round(pixels, 12))))}


@dataclass
class UpsamplingResult(RowsResult):
    """The upsampling test over ``n_images`` images: one row per (source, rendering).

    ``source`` is the map's label (e.g. ``"rollout"``) or ``"oracle"`` (each patch's share of object
    pixels); ``mode`` is ``grid``, ``bilinear`` or ``bicubic``; the measures are the means over images
    (see the module docstring), ``iou_se`` the standard error of ``iou``.
    """

    kind: ClassVar[str] = "upsampling"
    columns: ClassVar[tuple[tuple[str, str, str], ...]] = (
        ("source", "map", ""), ("mode", "rendering", ""), ("distinct_values", "values shown", ".0f"),
        ("within_patch", "variance inside patches", ".3f"), ("edge_width_px", "edge width px", ".2f"),
        ("iou", "IoU half-max", ".3f"), ("iou_se", "± se", ".3f"), ("boundary_px", "outline dist px", ".2f"),
        ("mass_inside_px", "mass inside", ".3f"))

    model_name: str = ""
    n_images: int = 0
    grid: tuple[int, int] = (0, 0)
    image_size: tuple[int, int] = (0, 0)

    @property
    def patch_px(self) -> float:
        """The side of one patch in pixels."""
        return self.image_size[0] / self.grid[0] if self.grid[0] else float("nan")

    def get(self, source: str, mode: str) -> dict:
        for r in self.rows:
            if r["source"] == source and r["mode"] == mode:
                return dict(r)
        raise InputError(f"no row for {source!r} rendered {mode!r}")

    def summary(self) -> str:
        rows, cols = self.grid
        numbers, pixels = rows * cols, self.image_size[0] * self.image_size[1]
        source = next(r["source"] for r in self.rows if r["source"] != "oracle")
        g, s = self.get(source, "grid"), self.get(source, "bilinear")
        og, os_ = self.get("oracle", "grid"), self.get("oracle", "bilinear")
        return "\n".join([
            f"upsampling test of {self.model_name}'s {source} over {self.n_images} images "
            f"({rows}x{cols} patches of {self.patch_px:g} px):",
            f"  a smooth (bilinear) overlay paints {pixels} pixels ({s['distinct_values']:.0f} distinct values) from "
            f"{numbers} numbers, {pixels / numbers:g} pixels per number;",
            f"  {s['within_patch']:.0%} of its variance lies inside patches, where the model gave one number;",
            f"  its edges are {s['edge_width_px']:.1f} px wide, against {self.patch_px:g} px patches: it places no "
            "edge finer than a patch;",
            f"  its half-maximum outline overlaps the objects with IoU {s['iou']:.3f} (grid: {g['iou']:.3f}); the same "
            f"interpolation of the perfect grid map moves IoU from {og['iou']:.3f} to {os_['iou']:.3f}: that change "
            "is the interpolation's, not the model's."])


def upsampling_test(maps: Sequence[GridMap], masks: Sequence[np.ndarray], model_name: str = "",
                    modes: Sequence[str] = MODES) -> UpsamplingResult:
    """Run the upsampling test on one reading's ``maps`` (one per image) with the images' object ``masks``."""
    if len(maps) != len(masks) or not maps:
        raise InputError(f"{len(maps)} maps and {len(masks)} masks: pass one mask per map (at least one)")
    grid, size = maps[0].grid, maps[0].image_size
    rows = []
    pixel_masks = [resize_mask(m, size) for m in masks]
    for source, grids in ((maps[0].label, [m.values for m in maps]),
                          ("oracle", [patch_coverage(m, grid) for m in pixel_masks])):
        for mode in modes:
            measured = [measure(v, m, mode) for v, m in zip(grids, pixel_masks)]
            row: dict = {"source": source, "mode": mode}
            for key in measured[0]:
                vals = np.array([d[key] for d in measured], dtype=float)
                row[key] = round(float(np.nanmean(vals)), 4) if np.isfinite(vals).any() else None
            ious = np.array([d["iou"] for d in measured])
            row["iou_se"] = round(float(ious.std(ddof=1) / math.sqrt(len(ious))), 4) if len(ious) > 1 else 0.0
            rows.append(row)
    return UpsamplingResult(rows=rows, model_name=model_name, n_images=len(maps), grid=tuple(grid),
                            image_size=tuple(size))
