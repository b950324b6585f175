"""Image attention drawn as what it is: one number per patch, on the patch grid over the image.

A query's attention (``[CLS]`` by default; any reading: a head, a layer mean, rollout, flow,
gradient saliency) is a :class:`~headscope.vision.GridMap` of ``rows x cols`` numbers. These
figures draw it **as the patch grid**: flat blocks aligned with the image's patches, the grid lines
visible, the image under it. A smooth (bilinear or bicubic) overlay exists only as an explicitly
labelled alternative (:func:`smooth_view`), and :func:`side_by_side` shows both renderings of the
same map next to each other, so that a reader sees how much of the smooth picture is interpolation.

Testable structure (``gid`` labels, as in :mod:`headscope.viz.figures`):

* ``"patch-grid"``: the blocks, a ``pcolormesh`` with one cell per patch whose edges are the patch
  boundaries in pixels;
* ``"grid-lines"``: the grid lines (``rows + 1`` horizontal and ``cols + 1`` vertical segments);
* ``"smooth-overlay"``: a smooth rendering (an image artist), always titled as interpolated;
* ``"image"``: the picture the model saw (in grey under a map, so that its colours do not mix with
  the map's colour scale); ``"curve"``: a deletion / insertion curve.

>>> from headscope.vision import grid_map
>>> fig = grid_view(grid_map(insp, "encoder.rollout"), image_for_display(insp))  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure

from headscope.errors import InputError
from headscope.vision import GridMap
from headscope.vision.upsampling import render

from .figures.canvas import new_figure

__all__ = ["curves_figure", "draw_grid", "draw_smooth", "grid_panels", "grid_view", "side_by_side", "smooth_view"]

CMAP = "inferno"
ALPHA = 0.7


def _check(gm: GridMap, image: np.ndarray | None) -> None:
    if image is not None and tuple(image.shape[:2]) != tuple(gm.image_size):
        raise InputError(f"the image is {image.shape[1]}x{image.shape[0]} px but the map was made for "
                         f"{gm.image_size[1]}x{gm.image_size[0]}; pass the image the model saw (image_for_display)")


def _image(ax: Any, image: np.ndarray | None, size: tuple[int, int], under_map: bool = True) -> None:
    """The picture; under a map it is drawn in grey (its colours would mix with the map's colour scale)."""
    if image is not None:
        if under_map and image.ndim == 3:
            artist = ax.imshow(image.mean(-1), extent=(0, size[1], size[0], 0), interpolation="nearest", cmap="gray",
                               vmin=0.0, vmax=1.0)
        else:
            artist = ax.imshow(image, extent=(0, size[1], size[0], 0), interpolation="nearest")
        artist.set_gid("image")
    ax.set_xlim(0, size[1])
    ax.set_ylim(size[0], 0)
    ax.set_xticks([])
    ax.set_yticks([])


def _edges(gm: GridMap) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates of the patch boundaries: ``(x edges, y edges)``."""
    rows, cols = gm.grid
    ph, pw = gm.patch_size
    return np.arange(cols + 1) * pw, np.arange(rows + 1) * ph


def draw_grid(ax: Any, gm: GridMap, image: np.ndarray | None = None, *, vmax: float | None = None,
              alpha: float = ALPHA, cmap: str = CMAP, values: bool = False) -> Any:
    """Draw ``gm`` on ``ax`` as flat patch blocks over ``image`` with the grid lines; returns the mesh."""
    _check(gm, image)
    _image(ax, image, gm.image_size)
    xs, ys = _edges(gm)
    top = float(gm.values.max()) if vmax is None else vmax
    mesh = ax.pcolormesh(xs, ys, gm.values, shading="flat", cmap=cmap, vmin=0.0, vmax=top if top > 0 else 1.0,
                         alpha=alpha if image is not None else 1.0, antialiased=False, edgecolors="none")
    mesh.set_gid("patch-grid")
    segments = [[(xs[0], y), (xs[-1], y)] for y in ys] + [[(x, ys[0]), (x, ys[-1])] for x in xs]
    lines = LineCollection(segments, colors="white", linewidths=0.6, alpha=0.8)
    lines.set_gid("grid-lines")
    ax.add_collection(lines)
    if values:
        for (r, c), v in np.ndenumerate(gm.values):
            ax.text((xs[c] + xs[c + 1]) / 2, (ys[r] + ys[r + 1]) / 2, f"{v:.2f}", ha="center", va="center",
                    fontsize=6, color="white")
    return mesh


def draw_smooth(ax: Any, gm: GridMap, image: np.ndarray | None = None, *, mode: str = "bilinear",
                vmax: float | None = None, alpha: float = ALPHA, cmap: str = CMAP) -> Any:
    """Draw ``gm`` smoothly interpolated (``mode`` ``"bilinear"`` / ``"bicubic"``) over ``image``.

    This is an alternative rendering, not a measurement: callers title it as interpolated."""
    _check(gm, image)
    if mode == "grid":
        raise InputError("draw_smooth draws an interpolated overlay; use draw_grid for the patch grid")
    _image(ax, image, gm.image_size)
    pixels = render(gm.values, gm.image_size, mode)
    top = float(gm.values.max()) if vmax is None else vmax
    artist = ax.imshow(pixels, extent=(0, gm.image_size[1], gm.image_size[0], 0), interpolation="nearest",
                       cmap=cmap, vmin=0.0, vmax=top if top > 0 else 1.0, alpha=alpha if image is not None else 1.0)
    artist.set_gid("smooth-overlay")
    return artist


def _specials(gm: GridMap) -> str:
    return ", ".join(f"{k} {v:.2f}" for k, v in gm.specials.items())


def grid_view(gm: GridMap, image: np.ndarray | None = None, *, title: str | None = None, values: bool = False,
              size: float = 3.2) -> Figure:
    """One map as the patch grid over the image (the honest view)."""
    fig = new_figure(size, size + 0.5)
    ax = fig.add_subplot(1, 1, 1)
    mesh = draw_grid(ax, gm, image, values=values)
    rows, cols = gm.grid
    ax.set_title(title or f"{gm.label} from {gm.query}\n{rows}x{cols} patch grid", fontsize=8)
    if gm.specials:
        ax.set_xlabel(f"on special tokens: {_specials(gm)}", fontsize=7)
    fig.colorbar(mesh, ax=ax, fraction=0.046, pad=0.03).set_label("attention on the patch", fontsize=7)
    fig.tight_layout()
    return fig


def smooth_view(gm: GridMap, image: np.ndarray | None = None, *, mode: str = "bilinear", size: float = 3.2) -> Figure:
    """One map as a smooth overlay, labelled as an interpolation of the grid (an alternative view)."""
    fig = new_figure(size, size + 0.5)
    ax = fig.add_subplot(1, 1, 1)
    draw_smooth(ax, gm, image, mode=mode)
    rows, cols = gm.grid
    ax.set_title(f"{gm.label}: SMOOTH OVERLAY\n{mode} interpolation of {rows}x{cols} numbers", fontsize=8)
    fig.tight_layout()
    return fig


def side_by_side(gm: GridMap, image: np.ndarray, *, mode: str = "bilinear", size: float = 2.8) -> Figure:
    """The same map rendered both ways: the image, the patch grid (measured), the smooth overlay (interpolated)."""
    fig = new_figure(3 * size, size + 0.9)
    axes = [fig.add_subplot(1, 3, i + 1) for i in range(3)]
    _image(axes[0], image, gm.image_size, under_map=False)
    axes[0].set_title("image the model saw", fontsize=8)
    rows, cols = gm.grid
    top = float(gm.values.max())
    draw_grid(axes[1], gm, image, vmax=top)
    axes[1].set_title(f"{gm.label}: patch grid\n{rows}x{cols} numbers, as measured", fontsize=8)
    draw_smooth(axes[2], gm, image, mode=mode, vmax=top)
    axes[2].set_title(f"same map, SMOOTH OVERLAY\n{mode}-interpolated, not measured", fontsize=8)
    fig.suptitle(f"{gm.label} from {gm.query}: one map, two renderings", fontsize=9)
    fig.tight_layout()
    return fig


def grid_panels(maps: Sequence[GridMap], image: np.ndarray | None = None, *, columns: int | None = None,
                shared_scale: bool = False, titles: Sequence[str] | None = None, size: float = 1.6,
                title: str | None = None) -> Figure:
    """Small multiples: each map as the patch grid over the image (e.g. every head of every layer).

    ``columns`` per row (default: all in one row up to 6); each panel is scaled to its own maximum
    unless ``shared_scale``.
    """
    if not maps:
        raise InputError("grid_panels needs at least one map")
    columns = columns or min(len(maps), 6)
    n_rows = -(-len(maps) // columns)
    fig = new_figure(columns * size, n_rows * (size + 0.25) + (0.35 if title else 0))
    top = max(float(m.values.max()) for m in maps) if shared_scale else None
    for i, gm in enumerate(maps):
        ax = fig.add_subplot(n_rows, columns, i + 1)
        draw_grid(ax, gm, image, vmax=top)
        ax.set_title(titles[i] if titles else gm.label, fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def curves_figure(curves: dict[str, dict[str, Any]], labels: dict[str, str] | None = None, *,
                  title: str = "patch deletion and insertion") -> Figure:
    """Deletion and insertion curves (probability of the predicted class against the share of patches)."""
    fig = new_figure(7.5, 3.0)
    axes = [fig.add_subplot(1, 2, i + 1) for i in range(2)]
    for name, c in curves.items():
        label = (labels or {}).get(name, name)
        for ax, key in zip(axes, ("deletion", "insertion")):
            ys = np.asarray(c[key], dtype=float)
            xs = np.linspace(0, 1, len(ys))
            (line,) = ax.plot(xs, ys, label=f"{label} ({c[key + '_auc']:.2f})", lw=1.2,
                              ls="--" if name in ("random", "occlusion") else "-")
            line.set_gid("curve")
    for ax, key in zip(axes, ("deletion", "insertion")):
        ax.set_xlabel(f"share of patches {'removed' if key == 'deletion' else 'restored'} (highest first)")
        ax.set_ylabel("p(predicted class)")
        ax.set_title(f"{key} (area in brackets; {'lower' if key == 'deletion' else 'higher'} = more faithful)",
                     fontsize=8)
        ax.set_ylim(-0.02, 1.02)
    axes[1].legend(fontsize=6, loc="lower right")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig
