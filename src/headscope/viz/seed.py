"""A grid of bipartite link pictures on one figure (the seed figure: models x readings).

:func:`headscope.viz.figures.bipartite` draws one word-level map as its own figure, source words
along the bottom and target words along the top. A grid of those is too wide for a page once a
sentence has a dozen words, so :func:`bipartite_grid` draws each panel on its side: source words
down the left, target words down the right, one curve per link, so a reordering still shows up as
crossing curves (Bahdanau, Cho & Bengio 2015, Fig. 3). Everything else follows ``figures``: a
:class:`~matplotlib.figure.Figure` built without ``pyplot``, no smoothing, and ``gid`` labels on
the artists so tests count structure instead of pixels:

* ``"bipartite-panel"`` on the axes of every drawn panel;
* ``"link"`` on every attention curve (weight ``>= min_weight``);
* ``"reference"`` on every reference link (thin dashed grey, drawn underneath);
* ``"empty-panel"`` on the axes of a grid cell that holds only a note.

Save with :func:`headscope.viz.figures.save` for deterministic bytes.

>>> import numpy as np
>>> fig = bipartite_grid([[Panel(np.eye(2), ["a", "b"], ["A", "B"], title="identity")]])
>>> sum(ax.get_gid() == "bipartite-panel" for ax in fig.axes)
1
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import matplotlib
import matplotlib.colors
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import PathPatch
from matplotlib.path import Path as MPath

from headscope.errors import InputError, ShapeError

__all__ = ["Panel", "bipartite_grid"]

_RC = {"svg.hashsalt": "headscope", "svg.fonttype": "path", "path.simplify": False, "font.size": 9}


@dataclass
class Panel:
    """One bipartite picture: ``matrix[target word, source word]`` and its labels.

    ``reference``: ``(source, target)`` word links drawn as thin dashed grey lines under the
    attention curves (e.g. a hand-made alignment). ``highlight``: target word indices whose
    curves (and word) are drawn in the highlight colour (e.g. the words of a crossing).
    """

    matrix: np.ndarray
    src_words: Sequence[str]
    tgt_words: Sequence[str]
    title: str = ""
    reference: Iterable[tuple[int, int]] = ()
    highlight: Iterable[int] = field(default_factory=tuple)


def _positions(n: int, span: int) -> np.ndarray:
    """``n`` word rows centred in ``[0, span - 1]``, top to bottom (y decreasing)."""
    return -(np.arange(n) + (span - n) / 2.0)


def _draw(ax, p: Panel, min_weight: float, max_width: float, color: str, highlight_color: str) -> None:
    m = np.asarray(p.matrix, dtype=float)
    if m.ndim != 2 or m.shape != (len(p.tgt_words), len(p.src_words)):
        raise ShapeError(f"panel {p.title!r}: matrix of shape {m.shape} does not fit "
                         f"{len(p.tgt_words)} target x {len(p.src_words)} source words")
    n_t, n_s = m.shape
    span = max(n_s, n_t)
    ys, yt = _positions(n_s, span), _positions(n_t, span)
    hl = {int(t) for t in p.highlight}

    def curve(s: int, t: int) -> MPath:
        return MPath([(0.0, ys[s]), (0.5, ys[s]), (0.5, yt[t]), (1.0, yt[t])],
                     [MPath.MOVETO, MPath.CURVE4, MPath.CURVE4, MPath.CURVE4])

    for s, t in sorted({(int(a), int(b)) for a, b in p.reference}):
        if not (0 <= s < n_s and 0 <= t < n_t):
            raise InputError(f"reference link ({s}, {t}) is outside the {n_s} x {n_t} word map")
        patch = PathPatch(curve(s, t), fill=False, linewidth=0.8, linestyle=(0, (3, 2)),
                          edgecolor="#9a9a9a", zorder=1)
        patch.set_gid("reference")
        ax.add_patch(patch)
    # light links first, so heavy ones stay on top
    cells = [(float(m[t, s]), t, s) for t in range(n_t) for s in range(n_s)
             if np.isfinite(m[t, s]) and m[t, s] >= min_weight]
    for w, t, s in sorted(cells):
        w = min(w, 1.0)
        rgb = matplotlib.colors.to_rgb(highlight_color if t in hl else color)
        patch = PathPatch(curve(s, t), fill=False, linewidth=max(0.4, max_width * w),
                          edgecolor=(*rgb, 0.2 + 0.8 * w), capstyle="round", zorder=2 + w)
        patch.set_gid("link")
        ax.add_patch(patch)
    for y, word in zip(ys, p.src_words):
        ax.text(-0.05, y, word, ha="right", va="center", fontsize=9)
    for t, (y, word) in enumerate(zip(yt, p.tgt_words)):
        ax.text(1.05, y, word, ha="left", va="center", fontsize=9,
                color=highlight_color if t in hl else "black", fontweight="bold" if t in hl else "normal")
    ax.set_xlim(-1.05, 2.05)
    ax.set_ylim(-(span - 1) - 0.7, 0.7)
    ax.set_axis_off()
    if p.title:
        ax.set_title(p.title, fontsize=9, linespacing=1.25)


def bipartite_grid(panels: Sequence[Sequence[Panel | str | None]], *, row_labels: Sequence[str] | None = None,
                   min_weight: float = 0.1, max_width: float = 5.0, color: str = "#08306b",
                   highlight_color: str = "#c0392b", title: str | None = None, caption: str | None = None,
                   panel_width: float = 3.6, row_height: float = 0.25) -> Figure:
    """Panels in a grid (``panels[row][column]``), each a sideways bipartite picture.

    A cell is a :class:`Panel`, a string (a note written in an empty cell, gid
    ``"empty-panel"``) or ``None`` (left blank). Curves: one per cell of weight
    ``>= min_weight``, width up to ``max_width`` points and darkness following the weight
    (weights above 1 clipped for drawing). ``row_labels`` are written vertically left of each row;
    ``caption`` under the grid.
    """
    rows = [list(r) for r in panels]
    if not rows or not any(rows):
        raise InputError("bipartite_grid needs at least one panel")
    n_rows, n_cols = len(rows), max(len(r) for r in rows)
    if row_labels is not None and len(row_labels) != n_rows:
        raise ShapeError(f"{len(row_labels)} row labels for {n_rows} rows")
    span = max((max(len(c.src_words), len(c.tgt_words)) for r in rows for c in r if isinstance(c, Panel)),
               default=2)
    panel_h = 0.75 + row_height * (span + 1.4)
    left = 0.45 if row_labels is not None else 0.1
    top = 0.95 if title else 0.1
    bottom = 0.5 if caption else 0.1
    width = left + panel_width * n_cols + 0.1
    height = top + panel_h * n_rows + bottom
    with matplotlib.rc_context(_RC):
        fig = Figure(figsize=(width, height), dpi=100)
        FigureCanvasAgg(fig)
        fig.subplots_adjust(left=left / width, right=1 - 0.1 / width, top=1 - top / height,
                            bottom=bottom / height, wspace=0.08, hspace=0.75 / panel_h)
        axes = fig.subplots(n_rows, n_cols, squeeze=False)
        for i, r in enumerate(rows):
            for j in range(n_cols):
                ax = axes[i][j]
                cell = r[j] if j < len(r) else None
                if isinstance(cell, Panel):
                    _draw(ax, cell, min_weight, max_width, color, highlight_color)
                    ax.set_gid("bipartite-panel")
                else:
                    ax.set_axis_off()
                    if cell:
                        ax.text(0.5, 0.5, str(cell), ha="center", va="center", fontsize=9, color="#666",
                                transform=ax.transAxes, wrap=True)
                        ax.set_gid("empty-panel")
            if row_labels is not None:
                box = axes[i][0].get_position()
                fig.text(0.12 / width, (box.y0 + box.y1) / 2, row_labels[i], rotation=90, ha="left",
                         va="center", fontsize=11, fontweight="bold")
        if title:
            fig.suptitle(title, fontsize=11, y=1 - 0.12 / height, va="top")
        if caption:
            fig.text(0.5, 0.12 / height, caption, ha="center", va="bottom", fontsize=8, color="#444")
    return fig
