"""Labelled matrices: the generic heatmap and the layer x head grids of scores (AER, ablation),
and the Kendall τ matrix between readings."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import matplotlib
import matplotlib.colors
import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from headscope.errors import InputError, ShapeError
from headscope.readings import Head

from .canvas import RC, annotate_cells, check_matrix, data_range, draw_mesh, new_figure, scale_label

__all__ = ["ablation_heatmap", "aer_heatmap", "heatmap", "kendall_matrix", "layer_head_heatmap"]


def heatmap(matrix: Any, row_labels: Sequence[str], col_labels: Sequence[str], *, title: str | None = None,
            cmap: str = "viridis", vmin: float | None = None, vmax: float | None = None, center: float | None = None,
            annotate: bool | None = None, fmt: str = ".2f", xlabel: str | None = None, ylabel: str | None = None,
            colorbar_label: str | None = None, cell: float = 0.42) -> Figure:
    """A labelled matrix as flat blocks (gid ``"cell-mesh"``), optionally with values written in.

    Parameters
    ----------
    matrix
        ``[rows, columns]`` values; NaN cells are left blank.
    row_labels, col_labels
        One label per row and per column.
    title
        Axes title.
    cmap, vmin, vmax
        Colour map and scale; an end left ``None`` is the data's own minimum / maximum, so the
        colours spread over the values there are. The colour bar states the scale.
    center
        Makes a diverging colour scale symmetric around this value (effects, correlations).
    annotate
        Write the values in the cells; ``None``: when the matrix has at most 400 cells.
    fmt
        Format of the written values.
    xlabel, ylabel, colorbar_label
        Axis and colour-bar labels.
    cell
        Inches per cell.

    Returns
    -------
    matplotlib.figure.Figure
        The heatmap.
    """
    m = check_matrix(matrix, row_labels, col_labels)
    rows, cols = m.shape
    norm = None
    fitted = vmin is None or vmax is None
    if center is not None:
        finite = m[np.isfinite(m)]
        span = float(np.max(np.abs(finite - center))) if finite.size else 1.0
        span = span or 1.0
        lo = center - span if vmin is None else vmin
        hi = center + span if vmax is None else vmax
        norm = matplotlib.colors.TwoSlopeNorm(vcenter=center, vmin=min(lo, center - 1e-12),
                                              vmax=max(hi, center + 1e-12))
    else:
        lo, hi = data_range(m, vmin, vmax)
        vmin, vmax = lo, hi
    with matplotlib.rc_context(RC):
        fig = new_figure(1.8 + cell * cols, 1.2 + cell * rows)
        ax = fig.add_subplot()
        mesh = draw_mesh(ax, m, cmap, vmin, vmax, norm)
        ax.set_xticks(range(cols), list(col_labels), rotation=60 if cols > 8 else 0,
                      ha="right" if cols > 8 else "center", rotation_mode="anchor")
        ax.set_yticks(range(rows), list(row_labels))
        if annotate or (annotate is None and m.size <= 400):
            annotate_cells(ax, m, fmt, mesh)
        if xlabel:
            ax.set_xlabel(xlabel)
        if ylabel:
            ax.set_ylabel(ylabel)
        fig.colorbar(mesh, ax=ax, fraction=0.046, pad=0.02, label=scale_label(colorbar_label, lo, hi, fitted))
        if title:
            ax.set_title(title, fontsize=9)
        fig.tight_layout()
    return fig


def layer_head_heatmap(values: Any, *, layers: Sequence[int] | None = None, title: str | None = None,
                       **kw: Any) -> Figure:
    """``values[layer, head]`` as a heatmap: layers down (``L0``...), heads across (``H0``...).

    Parameters
    ----------
    values
        ``[layers, heads]`` values.
    layers
        The model layer index of each row (default ``0..layers-1``), e.g.
        :meth:`headscope.Inspection.layer_indices` when only some layers were captured.
    title
        Axes title.
    **kw
        Passed to :func:`heatmap`.

    Returns
    -------
    matplotlib.figure.Figure
        The heatmap.
    """
    v = np.asarray(values, dtype=float)
    if v.ndim != 2:
        raise ShapeError(f"expected values[layer, head], got shape {v.shape}")
    if layers is not None and len(layers) != v.shape[0]:
        raise ShapeError(f"{len(layers)} layer indices for {v.shape[0]} rows of values[layer, head]")
    layer_labels = [f"L{l}" for l in (range(v.shape[0]) if layers is None else layers)]
    head_labels = [f"H{h}" for h in range(v.shape[1])]
    kw.setdefault("xlabel", "head")
    kw.setdefault("ylabel", "layer")
    return heatmap(v, layer_labels, head_labels, title=title, **kw)


def aer_heatmap(aer: Any, *, layers: Sequence[int] | None = None, best: Head | tuple[int, int] | None = None,
                title: str = "AER per head (lower is better)", **kw: Any) -> Figure:
    """Alignment error rate per ``[layer, head]`` on a fixed 0..1 scale, dark = low error.

    The figure of an alignment evaluation (``headscope.align`` computes the numbers, draws none).

    Parameters
    ----------
    aer
        ``[layers, heads]`` AER.
    layers
        The model layer index of each row (default ``0..layers-1``).
    best
        The head to outline (gid ``"best-head"``), e.g. the one with the lowest AER: a
        :class:`~headscope.readings.Head` or ``(model layer, head)``.
    title
        Axes title.
    **kw
        Passed to :func:`heatmap`.

    Returns
    -------
    matplotlib.figure.Figure
        The heatmap.

    Raises
    ------
    headscope.errors.InputError
        ``best`` names a layer or head that is not in the grid.
    """
    kw.setdefault("cmap", "magma")
    kw.setdefault("colorbar_label", "AER")
    fig = layer_head_heatmap(aer, layers=layers, title=title, vmin=0.0, vmax=1.0, **kw)
    if best is not None:
        rows = list(range(np.shape(aer)[0]) if layers is None else layers)
        layer, head = (best.layer, best.head) if isinstance(best, Head) else best
        if layer not in rows or not 0 <= head < np.shape(aer)[1]:
            raise InputError(f"best head {best} is not in the grid of layers {rows} x {np.shape(aer)[1]} heads")
        patch = Rectangle((head - 0.5, rows.index(layer) - 0.5), 1, 1, fill=False, edgecolor="#2ca02c",
                          linewidth=2.0)
        patch.set_gid("best-head")
        fig.axes[0].add_patch(patch)
    return fig


def ablation_heatmap(effect: Any, *, layers: Sequence[int] | None = None,
                     title: str = "effect of ablating each head", **kw: Any) -> Figure:
    """Head-ablation effect per ``[layer, head]`` on a diverging scale centred at 0.

    Parameters
    ----------
    effect
        ``[layers, heads]`` change of the output score when the head is removed.
    layers
        The model layer index of each row (default ``0..layers-1``).
    title
        Axes title.
    **kw
        Passed to :func:`heatmap`.

    Returns
    -------
    matplotlib.figure.Figure
        The heatmap.
    """
    kw.setdefault("cmap", "RdBu_r")
    kw.setdefault("colorbar_label", "change in output score")
    return layer_head_heatmap(effect, layers=layers, title=title, center=0.0, **kw)


def kendall_matrix(tau: Any, names: Sequence[str], *, title: str = "Kendall τ between readings", **kw: Any) -> Figure:
    """Rank agreement between readings (heads, aggregates, importance scores) on a -1..1 scale.

    Parameters
    ----------
    tau
        ``[R, R]`` Kendall τ; NaN cells (a constant ranking) are left blank.
    names
        The label of each reading (a typed reading's ``label``, or a method name).
    title
        Axes title.
    **kw
        Passed to :func:`heatmap`.

    Returns
    -------
    matplotlib.figure.Figure
        The heatmap.
    """
    kw.setdefault("cmap", "RdBu_r")
    kw.setdefault("colorbar_label", "Kendall τ")
    return heatmap(tau, list(names), list(names), title=title, vmin=-1.0, vmax=1.0, **kw)


