"""Word-link pictures: the word-level alignment matrix (with gold links) and the bipartite picture."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import matplotlib
import matplotlib.colors
import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import PathPatch, Rectangle
from matplotlib.path import Path as MPath

from headscope.errors import InputError

from .canvas import RC, check_matrix, data_range, draw_mesh, new_figure, scale_label

__all__ = ["alignment_matrix", "bipartite"]

Link = tuple[int, int]


def _as_links(links: Iterable[Sequence[int]] | None) -> set[Link]:
    """``(source, target)`` integer pairs as a set (empty for ``None``)."""
    return set() if links is None else {(int(a), int(b)) for a, b in links}


def alignment_matrix(matrix: Any, src_words: Sequence[str], tgt_words: Sequence[str], *,
                     sure: Iterable[Sequence[int]] | None = None, possible: Iterable[Sequence[int]] | None = None,
                     predicted: Iterable[Sequence[int]] | None = None, title: str | None = None,
                     cmap: str = "Greys", vmax: float | None = None, cell: float = 0.38) -> Figure:
    """A word-level ``[target words, source words]`` map as flat blocks, source words along the bottom.

    Parameters
    ----------
    matrix
        ``[len(tgt_words), len(src_words)]`` weights.
    src_words, tgt_words
        Column and row labels.
    sure, possible
        Gold links ``(source, target)``: sure ones get solid red squares (gid ``"gold-sure"``),
        possible-only ones dashed orange squares (gid ``"gold-possible"``).
    predicted
        Links to mark with a dot (gid ``"predicted"``), e.g. a reading's argmax links.
    title
        Axes title.
    cmap, vmax
        Colour map and top of the 0-based colour scale (default: the map's largest weight, so a
        diffuse map such as a rollout is not drawn near-white; the colour bar states the scale).
    cell
        Inches per word.

    Returns
    -------
    matplotlib.figure.Figure
        ``fig.axes[0]`` has one artist with gid ``"cell-mesh"`` holding one cell per word pair.

    Raises
    ------
    headscope.errors.ShapeError
        Labels that do not fit the matrix.
    headscope.errors.InputError
        A gold link outside the matrix.
    """
    m = check_matrix(matrix, tgt_words, src_words)
    n_t, n_s = m.shape
    with matplotlib.rc_context(RC):
        fig = new_figure(1.6 + cell * n_s, 1.2 + cell * n_t)
        ax = fig.add_subplot()
        lo, hi = data_range(m, 0.0, vmax)
        mesh = draw_mesh(ax, m, cmap, lo, hi)
        ax.set_xticks(range(n_s), list(src_words), rotation=60, ha="right", rotation_mode="anchor")
        ax.set_yticks(range(n_t), list(tgt_words))
        ax.set_xlabel("source words")
        ax.set_ylabel("target words")
        sure_set, poss_set = _as_links(sure), _as_links(possible)
        for links, gid, style in ((sure_set, "gold-sure", dict(edgecolor="#d62728", linestyle="-", linewidth=1.8)),
                                  (poss_set - sure_set, "gold-possible",
                                   dict(edgecolor="#ff7f0e", linestyle="--", linewidth=1.4))):
            for s, t in sorted(links):
                if not (0 <= s < n_s and 0 <= t < n_t):
                    raise InputError(f"gold link ({s}, {t}) is outside the {n_s} x {n_t} word map")
                patch = Rectangle((s - 0.5, t - 0.5), 1, 1, fill=False, **style)
                patch.set_gid(gid)
                ax.add_patch(patch)
        for s, t in sorted(_as_links(predicted)):
            (dot,) = ax.plot([s], [t], marker="o", markersize=3.5, color="#1f77b4", linestyle="none")
            dot.set_gid("predicted")
        fig.colorbar(mesh, ax=ax, fraction=0.046, pad=0.02,
                     label=scale_label("weight", lo, hi, fitted=vmax is None))
        if title:
            ax.set_title(title, fontsize=9)
        fig.tight_layout()
    return fig


def bipartite(matrix: Any, src_words: Sequence[str], tgt_words: Sequence[str], *, min_weight: float = 0.1,
              max_width: float = 6.0, title: str | None = None, color: str = "#08306b",
              gap: float = 0.9) -> Figure:
    """Source words along the bottom, target words along the top, one curve per link.

    Reorderings show up as crossing curves (Bahdanau et al. 2015).

    Parameters
    ----------
    matrix
        ``[target words, source words]`` weights; rows need not sum to one, weights above 1 are
        clipped for drawing only.
    src_words, tgt_words
        The words along the bottom and along the top.
    min_weight
        Every cell of at least this weight becomes one curve (gid ``"link"``).
    max_width
        Line width in points of a weight-1 curve; width and darkness follow the weight.
    title
        Axes title.
    color
        Colour of the curves.
    gap
        Height between the two rows of words.

    Returns
    -------
    matplotlib.figure.Figure
        The picture.
    """
    m = check_matrix(matrix, tgt_words, src_words)
    n_t, n_s = m.shape
    width = max(n_s, n_t)
    xs = _spread(n_s, width)
    xt = _spread(n_t, width)
    with matplotlib.rc_context(RC):
        fig = new_figure(1.0 + 0.75 * width, 2.6)
        ax = fig.add_subplot()
        rgb = matplotlib.colors.to_rgb(color)
        for t in range(n_t):
            for s in range(n_s):
                w = float(m[t, s])
                if not np.isfinite(w) or w < min_weight:
                    continue
                w = min(w, 1.0)
                verts = [(xs[s], 0.0), (xs[s], gap / 2), (xt[t], gap / 2), (xt[t], gap)]
                path = MPath(verts, [MPath.MOVETO, MPath.CURVE4, MPath.CURVE4, MPath.CURVE4])
                patch = PathPatch(path, fill=False, linewidth=max(0.3, max_width * w),
                                  edgecolor=(*rgb, 0.15 + 0.85 * w), capstyle="round")
                patch.set_gid("link")
                ax.add_patch(patch)
        for x, word in zip(xs, src_words):
            ax.text(x, -0.04, word, ha="center", va="top", rotation=0, fontsize=9)
        for x, word in zip(xt, tgt_words):
            ax.text(x, gap + 0.04, word, ha="center", va="bottom", fontsize=9)
        ax.text(-0.9, 0.0, "source", ha="right", va="center", fontsize=8, color="#666")
        ax.text(-0.9, gap, "target", ha="right", va="center", fontsize=8, color="#666")
        ax.set_xlim(-1.6, width - 0.4)
        ax.set_ylim(-0.2, gap + 0.2)
        ax.set_axis_off()
        if title:
            ax.set_title(title, fontsize=9)
        fig.tight_layout()
    return fig


def _spread(n: int, width: int) -> np.ndarray:
    """``n`` positions centred in ``[0, width - 1]`` with unit spacing."""
    return np.arange(n) + (width - n) / 2.0


