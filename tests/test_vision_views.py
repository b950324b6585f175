"""Image views (issue 18): the grid view's cells are the patches, tested by structure, not pixels.

The patch grid is a ``pcolormesh`` (gid ``patch-grid``) with one flat cell per patch whose vertices
are the patch boundaries in pixels, under white grid lines (gid ``grid-lines``); a smooth overlay
(gid ``smooth-overlay``) appears only where asked for and is titled as interpolated.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import transformers as tf

import headscope
from headscope.errors import InputError
from headscope.vision import grid_map, image_for_display, patch_values, shapes_batch
from headscope.viz.figures import to_svg
from headscope.viz.grid import curves_figure, grid_panels, grid_view, side_by_side, smooth_view

SIZE, PATCH = 48, 8  # a 6x6 grid


@pytest.fixture(scope="module")
def insp():
    torch.manual_seed(0)
    config = tf.ViTConfig(image_size=SIZE, patch_size=PATCH, hidden_size=32, num_hidden_layers=2,
                          num_attention_heads=4, intermediate_size=64, num_labels=5)
    model = tf.ViTForImageClassification(config).eval()
    processor = tf.ViTImageProcessor(size={"height": SIZE, "width": SIZE}, image_mean=[0.5] * 3, image_std=[0.5] * 3)
    return headscope.inspect((model, processor), shapes_batch(1, seed=2).images[0])


def _gid(ax, gid):
    return [a for a in ax.get_children() if a.get_gid() == gid]


def _check_patch_grid(ax, gm):
    rows, cols = gm.grid
    (mesh,) = _gid(ax, "patch-grid")
    assert mesh.get_array().size == rows * cols  # one cell per patch, not per pixel
    np.testing.assert_allclose(np.asarray(mesh.get_array()).reshape(rows, cols), gm.values)
    corners = mesh.get_coordinates()  # [rows + 1, cols + 1, (x, y)] in pixels
    assert corners.shape == (rows + 1, cols + 1, 2)
    np.testing.assert_allclose(corners[0, :, 0], np.arange(cols + 1) * PATCH)  # aligned with the patches
    np.testing.assert_allclose(corners[:, 0, 1], np.arange(rows + 1) * PATCH)
    (lines,) = _gid(ax, "grid-lines")
    assert len(lines.get_segments()) == rows + 1 + cols + 1  # the grid lines are drawn
    assert not _gid(ax, "smooth-overlay")
    return mesh


def test_grid_view_cells_are_the_patches(insp):
    gm = grid_map(insp, "encoder.rollout")
    fig = grid_view(gm, image_for_display(insp))
    ax = fig.axes[0]
    _check_patch_grid(ax, gm)
    (image,) = _gid(ax, "image")
    assert image.get_array().shape == (SIZE, SIZE)  # the picture the model saw, in grey under the grid
    assert "6x6 patch grid" in ax.get_title() and "[CLS]" in ax.get_xlabel()  # the special token's share is named
    assert 'id="patch-grid"' in to_svg(fig)


def test_side_by_side_shows_both_renderings_of_the_same_map_and_labels_the_smooth_one(insp):
    gm = grid_map(insp, "encoder.flow")
    fig = side_by_side(gm, image_for_display(insp))
    plain, grid_ax, smooth_ax = fig.axes[:3]
    assert _gid(plain, "image") and not _gid(plain, "patch-grid")
    mesh = _check_patch_grid(grid_ax, gm)
    (smooth,) = _gid(smooth_ax, "smooth-overlay")
    assert smooth.get_array().shape == (SIZE, SIZE)  # interpolated to pixels
    assert "SMOOTH OVERLAY" in smooth_ax.get_title() and "not measured" in smooth_ax.get_title()
    assert "as measured" in grid_ax.get_title()
    assert mesh.norm.vmax == smooth.norm.vmax  # one colour scale for both renderings


def test_smooth_view_is_labelled_as_interpolation(insp):
    gm = grid_map(insp, "encoder.mean")
    ax = smooth_view(gm, image_for_display(insp), mode="bicubic").axes[0]
    assert _gid(ax, "smooth-overlay") and not _gid(ax, "patch-grid")
    assert "bicubic interpolation of 6x6 numbers" in ax.get_title()


def test_head_panels_one_grid_per_head(insp):
    heads = [grid_map(insp, f"encoder.{layer}.{h}") for layer in range(2) for h in range(4)]
    fig = grid_panels(heads, image_for_display(insp), columns=4)
    assert len(fig.axes) == 8
    for ax, gm in zip(fig.axes, heads):
        _check_patch_grid(ax, gm)
        assert ax.get_title() == gm.label


def test_views_refuse_an_image_of_another_size(insp):
    gm = grid_map(insp, "encoder.rollout")
    with pytest.raises(InputError):
        grid_view(gm, np.zeros((10, 10, 3)))
    with pytest.raises(InputError):
        patch_values(np.zeros(3), insp, "x", "x")


def test_curves_figure_one_line_per_map_and_direction():
    curves = {name: {"deletion": [0.9, 0.5, 0.1], "insertion": [0.1, 0.6, 0.9], "deletion_auc": 0.5,
                     "insertion_auc": 0.55} for name in ("encoder.rollout", "random")}
    fig = curves_figure(curves, {"encoder.rollout": "rollout"})
    lines = [a for ax in fig.axes for a in ax.get_lines() if a.get_gid() == "curve"]
    assert len(lines) == 4
