"""Vision: image classifiers' attention on their patch grid, and whether it localises.

A reading package (it computes and saves numbers; :mod:`headscope.viz` draws them):

* :func:`grid_map` - one query's (``[CLS]`` by default) attention under any reading (a head, a layer
  mean, rollout, flow) laid out on the patch grid: a :class:`GridMap`; :func:`token_positions`;
* :func:`saliency_maps` - gradient saliency of the predicted class pooled onto the patches;
* :func:`localisation` - pointing game and attention mass inside the object mask, for every head,
  layer mean, rollout, flow and gradient saliency: a :class:`LocalisationResult`;
* :func:`upsampling_test` - how much apparent precision a smooth overlay adds beyond the grid:
  an :class:`UpsamplingResult`; :func:`render` draws a grid map as blocks or smoothly;
* :func:`image_faithfulness` - patch deletion / insertion curves, leave-one-patch-out, head
  ablation: an :class:`ImageFaithfulness`; :func:`image_fragmentation` - the fragmentation of
  :mod:`headscope.fragment` with leave-one-patch-out and gradient saliency as its references;
* :mod:`headscope.vision.shapes` - the synthetic shapes with known masks of ``headscope/shapes-vit``.

>>> import headscope
>>> from headscope.vision import shapes_batch, grid_map
>>> batch = shapes_batch(8, seed=0)
>>> insps = headscope.inspect("headscope/shapes-vit", list(batch.images))    # doctest: +SKIP
>>> print(grid_map(insps[0], "encoder.rollout"))                            # doctest: +SKIP
"""

from __future__ import annotations

from .faithfulness import (ImageFaithfulness, head_ablation_rows, image_faithfulness, image_fragmentation,
                           leave_one_patch_out, patch_curves)
from .localisation import (LocalisationResult, localisation, mass_inside, object_cells, patch_coverage,
                           pointing_hit, resize_mask)
from .maps import GridMap, grid_map, image_for_display, patch_values, query_index, token_positions
from .saliency import SALIENCY, saliency_maps
from .shapes import SHAPES, ShapesBatch, shapes_batch
from .upsampling import MODES, UpsamplingResult, render, upsampling_test

__all__ = [
    "GridMap", "ImageFaithfulness", "LocalisationResult", "MODES", "SALIENCY", "SHAPES", "ShapesBatch",
    "UpsamplingResult", "grid_map", "head_ablation_rows", "image_faithfulness", "image_for_display", "image_fragmentation",
    "leave_one_patch_out", "localisation", "mass_inside", "object_cells", "patch_coverage", "patch_curves",
    "patch_values", "pointing_hit", "query_index", "render", "resize_mask", "saliency_maps", "shapes_batch",
    "token_positions", "upsampling_test",
]
