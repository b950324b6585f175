"""Static figures (matplotlib): word-level alignment matrices, bipartite link pictures, and
layer x head heatmaps of scores.

Every function returns a :class:`matplotlib.figure.Figure` built without ``pyplot`` (an Agg
canvas; the user's backend is left alone), so it works in scripts, tests and notebooks alike.

Honest pictures:

* **no smoothing**: matrices are drawn with ``pcolormesh`` in flat blocks, one block per cell
  (also in SVG, where a raster ``imshow`` would be smoothed by the viewer);
* **deterministic files**: :func:`save` writes PNG / SVG with no date or software stamp and a
  fixed SVG hash salt, so the same input gives the same bytes;
* **testable structure**: the artists carry ``gid`` labels (``"cell-mesh"``, ``"link"``,
  ``"gold-sure"``, ``"gold-possible"``), so tests count curves and cells instead of pixels.

Which claim a figure supports depends on what is drawn: a matrix with gold links overlaid and
an AER heatmap are **alignment** evidence; a bare matrix or bipartite picture is a
**plausibility** view; an ablation heatmap is **faithfulness** evidence.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.colors
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import PathPatch, Rectangle
from matplotlib.path import Path as MPath

from headscope.errors import InputError, ShapeError

__all__ = [
    "words_of",
    "word_map",
    "alignment_matrix",
    "bipartite",
    "heatmap",
    "layer_head_heatmap",
    "aer_heatmap",
    "ablation_heatmap",
    "kendall_matrix",
    "bars",
    "fragmentation_summary",
    "save",
    "to_bytes",
    "to_data_uri",
    "to_svg",
]

Link = tuple[int, int]
_RC = {"svg.hashsalt": "headscope", "svg.fonttype": "path", "path.simplify": False, "font.size": 9}
_METADATA = {"png": {"Software": None}, "svg": {"Date": None, "Creator": None}, "pdf": {"CreationDate": None,
                                                                                         "Creator": None,
                                                                                         "Producer": None}}


# ---- data: word-level maps -------------------------------------------------------------------

def words_of(tokens: Sequence[str], word_ids: Sequence[int | None]) -> list[str]:
    """Words rebuilt from subword tokens and their word ids (special tokens left out).

    >>> words_of(["▁un", "▁hom", "me", "</s>"], [0, 1, 1, None])
    ['un', 'homme']
    """
    n = max((w for w in word_ids if w is not None), default=-1) + 1
    parts: list[list[str]] = [[] for _ in range(n)]
    for tok, w in zip(tokens, word_ids):
        if w is not None:
            parts[w].append(tok)
    out = []
    for pieces in parts:
        text = "".join(p[2:] if p.startswith("##") else p for p in pieces)
        out.append(text.replace("▁", "").replace("Ġ", "").replace("</w>", "") or "·")
    return out


def _pool_words(att: np.ndarray, src_ids: Sequence[int | None], tgt_ids: Sequence[int | None],
                src_pool: str, tgt_pool: str) -> np.ndarray:
    """Subword ``[..., T, S]`` to words with :func:`headscope.align.subword_to_word`."""
    from headscope.align import subword_to_word

    return np.asarray(subword_to_word(att, list(src_ids), list(tgt_ids), src_pool=src_pool, tgt_pool=tgt_pool))


def word_map(insp: Any, kind: str | None = None, layer: int | None = None, head: int | None = None, *,
             convention: str = "naive", src_pool: str = "sum", tgt_pool: str = "mean",
             subword: np.ndarray | None = None) -> tuple[np.ndarray, list[str], list[str]]:
    """A word-level map of ``insp``: ``(matrix [query words, key words], key words, query words)``.

    ``kind`` defaults to ``cross`` when captured, else the first kind. ``layer`` / ``head``
    pick one head; ``None`` averages over heads (of that layer, or of every layer). ``subword``
    gives a ready ``[q, k]`` subword map instead (e.g. an aggregate such as rollout).
    Cross-attention rows follow ``convention`` (``naive``: the step that outputs the word;
    ``shift``: the step that reads it; see :func:`headscope.align.select_rows`).
    Keys pool by ``src_pool`` (the mass put on a word), queries by ``tgt_pool``.
    """
    kind = kind or ("cross" if "cross" in insp.attentions else insp.kinds[0])
    if subword is None:
        att = insp.attentions.get(kind)
        if att is None:
            raise InputError(f"no {kind!r} attention in this inspection; captured kinds: {insp.kinds}")
        if layer is not None:
            maps = insp.map(kind, layer, head)
            m = maps if head is not None else maps.float().mean(0)
        else:
            m = att.float().mean(dim=(0, 1)) if head is None else att[:, head].float().mean(0)
        subword = m.detach().cpu().double().numpy()
    subword = np.asarray(subword, dtype=float)
    q_tokens, k_tokens = insp.query_tokens(kind), insp.key_tokens(kind)
    src_family = kind == "encoder" or insp.target_word_ids is None
    q_ids = insp.source_word_ids if src_family else insp.target_word_ids
    k_ids = insp.target_word_ids if kind == "decoder" and insp.target_word_ids is not None else insp.source_word_ids
    if subword.shape != (len(q_tokens), len(k_tokens)):
        raise ShapeError(f"map of shape {subword.shape} does not fit {len(q_tokens)} x {len(k_tokens)} tokens")
    if kind == "cross" and convention != "naive":
        from headscope.align import select_rows

        subword = np.asarray(select_rows(subword, convention))
    matrix = _pool_words(subword, k_ids, q_ids, src_pool, tgt_pool)
    return matrix, words_of(k_tokens, k_ids), words_of(q_tokens, q_ids)


# ---- small helpers -------------------------------------------------------------------------

def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(max(2.5, width), max(2.0, height)), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _as_links(links: Iterable[Sequence[int]] | None) -> set[Link]:
    return set() if links is None else {(int(a), int(b)) for a, b in links}


def _check_matrix(matrix: Any, rows: Sequence[str] | None, cols: Sequence[str] | None) -> np.ndarray:
    m = np.asarray(matrix, dtype=float)
    if m.ndim != 2:
        raise ShapeError(f"expected a 2-D matrix, got shape {m.shape}")
    if rows is not None and len(rows) != m.shape[0]:
        raise ShapeError(f"{len(rows)} row labels for {m.shape[0]} rows")
    if cols is not None and len(cols) != m.shape[1]:
        raise ShapeError(f"{len(cols)} column labels for {m.shape[1]} columns")
    return m


def _mesh(ax: Any, m: np.ndarray, cmap: str, vmin: float | None, vmax: float | None, norm: Any = None) -> Any:
    """Flat blocks, one per cell, rows top to bottom."""
    rows, cols = m.shape
    kw = dict(norm=norm) if norm is not None else dict(vmin=vmin, vmax=vmax)
    mesh = ax.pcolormesh(np.arange(cols + 1) - 0.5, np.arange(rows + 1) - 0.5, np.ma.masked_invalid(m),
                         shading="flat", cmap=cmap, antialiased=False, edgecolors="none", **kw)
    mesh.set_gid("cell-mesh")
    ax.set_xlim(-0.5, cols - 0.5)
    ax.set_ylim(rows - 0.5, -0.5)
    return mesh


def _annotate(ax: Any, m: np.ndarray, fmt: str, mesh: Any) -> None:
    cmap, norm = mesh.get_cmap(), mesh.norm
    for (i, j), v in np.ndenumerate(m):
        if np.isnan(v):
            continue
        r, g, b, _ = cmap(norm(v))
        dark = 0.299 * r + 0.587 * g + 0.114 * b < 0.5
        ax.text(j, i, format(v, fmt), ha="center", va="center", fontsize=7, color="white" if dark else "black")


# ---- alignment matrix --------------------------------------------------------------------------

def alignment_matrix(matrix: Any, src_words: Sequence[str], tgt_words: Sequence[str], *,
                     sure: Iterable[Sequence[int]] | None = None, possible: Iterable[Sequence[int]] | None = None,
                     predicted: Iterable[Sequence[int]] | None = None, title: str | None = None,
                     cmap: str = "Greys", vmax: float | None = 1.0, cell: float = 0.38) -> Figure:
    """A word-level ``[target words, source words]`` map as flat blocks, source words along the bottom.

    ``sure`` / ``possible`` gold links ``(source, target)`` are outlined (solid red squares for
    sure, dashed orange for possible-only); ``predicted`` links (e.g. argmax) get a dot. One
    mesh cell per word pair: ``fig.axes[0]`` has one artist with gid ``"cell-mesh"`` whose
    array has ``len(tgt_words) * len(src_words)`` entries.
    """
    m = _check_matrix(matrix, tgt_words, src_words)
    n_t, n_s = m.shape
    with matplotlib.rc_context(_RC):
        fig = _figure(1.6 + cell * n_s, 1.2 + cell * n_t)
        ax = fig.add_subplot()
        mesh = _mesh(ax, m, cmap, 0.0, vmax)
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
        fig.colorbar(mesh, ax=ax, fraction=0.046, pad=0.02, label="weight")
        if title:
            ax.set_title(title, fontsize=9)
        fig.tight_layout()
    return fig


# ---- bipartite picture -------------------------------------------------------------------------

def bipartite(matrix: Any, src_words: Sequence[str], tgt_words: Sequence[str], *, min_weight: float = 0.1,
              max_width: float = 6.0, title: str | None = None, color: str = "#08306b",
              gap: float = 0.9) -> Figure:
    """Source words along the bottom, target words along the top, one curve per link.

    ``matrix`` is ``[target words, source words]``; every cell of weight ``>= min_weight``
    becomes one curve (gid ``"link"``) from its source word up to its target word, whose width
    (up to ``max_width`` points) and darkness follow the weight, so reorderings show up as
    crossing curves (Bahdanau et al. 2015). Rows need not sum to one; weights above 1 are
    clipped for drawing only.
    """
    m = _check_matrix(matrix, tgt_words, src_words)
    n_t, n_s = m.shape
    width = max(n_s, n_t)
    xs = _spread(n_s, width)
    xt = _spread(n_t, width)
    with matplotlib.rc_context(_RC):
        fig = _figure(1.0 + 0.75 * width, 2.6)
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


# ---- generic heatmaps and bars (also the hook for the fragmentation plots) ---------------------

def heatmap(matrix: Any, row_labels: Sequence[str], col_labels: Sequence[str], *, title: str | None = None,
            cmap: str = "viridis", vmin: float | None = None, vmax: float | None = None, center: float | None = None,
            annotate: bool | None = None, fmt: str = ".2f", xlabel: str | None = None, ylabel: str | None = None,
            colorbar_label: str | None = None, cell: float = 0.42) -> Figure:
    """A labelled matrix as flat blocks (gid ``"cell-mesh"``), optionally with values written in.

    ``center`` makes a diverging colour scale symmetric around it (effects, correlations).
    ``annotate`` defaults to writing the values when the matrix has at most 400 cells. NaN cells
    are left blank.
    """
    m = _check_matrix(matrix, row_labels, col_labels)
    rows, cols = m.shape
    norm = None
    if center is not None:
        finite = m[np.isfinite(m)]
        span = float(np.max(np.abs(finite - center))) if finite.size else 1.0
        span = span or 1.0
        lo = center - span if vmin is None else vmin
        hi = center + span if vmax is None else vmax
        norm = matplotlib.colors.TwoSlopeNorm(vcenter=center, vmin=min(lo, center - 1e-12),
                                              vmax=max(hi, center + 1e-12))
    with matplotlib.rc_context(_RC):
        fig = _figure(1.8 + cell * cols, 1.2 + cell * rows)
        ax = fig.add_subplot()
        mesh = _mesh(ax, m, cmap, vmin, vmax, norm)
        ax.set_xticks(range(cols), list(col_labels), rotation=60 if cols > 8 else 0,
                      ha="right" if cols > 8 else "center", rotation_mode="anchor")
        ax.set_yticks(range(rows), list(row_labels))
        if annotate or (annotate is None and m.size <= 400):
            _annotate(ax, m, fmt, mesh)
        if xlabel:
            ax.set_xlabel(xlabel)
        if ylabel:
            ax.set_ylabel(ylabel)
        fig.colorbar(mesh, ax=ax, fraction=0.046, pad=0.02, label=colorbar_label or "")
        if title:
            ax.set_title(title, fontsize=9)
        fig.tight_layout()
    return fig


def layer_head_heatmap(values: Any, *, layers: Sequence[int] | None = None, title: str | None = None,
                       **kw: Any) -> Figure:
    """``values[layer, head]`` as a heatmap: layers down, heads across."""
    v = np.asarray(values, dtype=float)
    if v.ndim != 2:
        raise ShapeError(f"expected values[layer, head], got shape {v.shape}")
    layer_labels = [f"L{l}" for l in (range(v.shape[0]) if layers is None else layers)]
    head_labels = [f"H{h}" for h in range(v.shape[1])]
    kw.setdefault("xlabel", "head")
    kw.setdefault("ylabel", "layer")
    return heatmap(v, layer_labels, head_labels, title=title, **kw)


def aer_heatmap(aer: Any, *, layers: Sequence[int] | None = None, title: str = "AER per head (lower is better)",
                **kw: Any) -> Figure:
    """Alignment error rate per ``[layer, head]``, on a fixed 0..1 scale, dark = low error."""
    kw.setdefault("cmap", "magma")
    kw.setdefault("colorbar_label", "AER")
    return layer_head_heatmap(aer, layers=layers, title=title, vmin=0.0, vmax=1.0, **kw)


def ablation_heatmap(effect: Any, *, layers: Sequence[int] | None = None,
                     title: str = "effect of ablating each head", **kw: Any) -> Figure:
    """Head-ablation effect per ``[layer, head]`` on a diverging scale centred at 0."""
    kw.setdefault("cmap", "RdBu_r")
    kw.setdefault("colorbar_label", "change in output score")
    return layer_head_heatmap(effect, layers=layers, title=title, center=0.0, **kw)


def kendall_matrix(tau: Any, names: Sequence[str], *, title: str = "Kendall τ between readings", **kw: Any) -> Figure:
    """Rank agreement between readings (heads, aggregates, importance scores) on a -1..1 scale."""
    kw.setdefault("cmap", "RdBu_r")
    kw.setdefault("colorbar_label", "Kendall τ")
    return heatmap(tau, list(names), list(names), title=title, vmin=-1.0, vmax=1.0, **kw)


def bars(values: Mapping[str, float] | Sequence[float], labels: Sequence[str] | None = None, *,
         title: str | None = None, xlabel: str | None = None, color: str = "#4c72b0",
         errors: Sequence[float] | None = None) -> Figure:
    """Horizontal bars (gid ``"bar"`` on each), one per label, in the given order."""
    if isinstance(values, Mapping):
        labels, vals = list(values.keys()), [float(v) for v in values.values()]
    else:
        vals = [float(v) for v in values]
        labels = [str(i) for i in range(len(vals))] if labels is None else list(labels)
    if len(labels) != len(vals):
        raise ShapeError(f"{len(labels)} labels for {len(vals)} values")
    with matplotlib.rc_context(_RC):
        fig = _figure(5.0, 0.8 + 0.3 * len(vals))
        ax = fig.add_subplot()
        container = ax.barh(range(len(vals)), vals, color=color, xerr=errors)
        for patch in container.patches:
            patch.set_gid("bar")
        ax.set_yticks(range(len(vals)), labels)
        ax.invert_yaxis()
        ax.axvline(0, color="#333", linewidth=0.6)
        if xlabel:
            ax.set_xlabel(xlabel)
        if title:
            ax.set_title(title, fontsize=9)
        fig.tight_layout()
    return fig


def fragmentation_summary(summary: Mapping[str, Any], *, title: str = "fragmentation summary") -> Figure:
    """Hook for the fragmentation work: a mapping of name -> number (bars) or -> 2-D array (heatmap).

    Numbers give one bar chart; a single 2-D entry gives a heatmap (layers x heads when it has
    that shape); mixed input draws the numbers only (call :func:`heatmap` for the rest).
    """
    scalars = {k: float(v) for k, v in summary.items() if np.ndim(v) == 0}
    if scalars:
        return bars(scalars, title=title)
    arrays = {k: np.asarray(v, dtype=float) for k, v in summary.items() if np.ndim(v) == 2}
    if len(arrays) == 1:
        (name, arr), = arrays.items()
        return layer_head_heatmap(arr, title=f"{title}: {name}")
    raise InputError("fragmentation_summary takes name -> number, or exactly one name -> 2-D array")


# ---- output ------------------------------------------------------------------------------------

def to_bytes(fig: Figure, fmt: str = "png", dpi: int = 100) -> bytes:
    """The figure as PNG / SVG / PDF bytes, with no timestamps (same input, same bytes)."""
    fmt = fmt.lower()
    if fmt not in _METADATA:
        raise InputError(f"format must be one of {sorted(_METADATA)}, not {fmt!r}")
    buf = io.BytesIO()
    with matplotlib.rc_context(_RC):
        fig.savefig(buf, format=fmt, dpi=dpi, metadata=_METADATA[fmt])
    return buf.getvalue()


def save(fig: Figure, path: str | Path, fmt: str | None = None, dpi: int = 100) -> Path:
    """Write the figure; the format comes from ``fmt`` or the file suffix (``.png``, ``.svg``)."""
    out = Path(path)
    fmt = (fmt or out.suffix.lstrip(".") or "png").lower()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(to_bytes(fig, fmt, dpi))
    return out


def to_svg(fig: Figure) -> str:
    """Inline SVG text (without the XML prolog) for embedding in HTML."""
    text = to_bytes(fig, "svg").decode("utf-8")
    return text[text.index("<svg"):]


def to_data_uri(fig: Figure, fmt: str = "png", dpi: int = 100) -> str:
    """``data:image/png;base64,...`` for an ``<img src=...>``."""
    mime = {"png": "image/png", "svg": "image/svg+xml", "pdf": "application/pdf"}[fmt]
    return f"data:{mime};base64,{base64.b64encode(to_bytes(fig, fmt, dpi)).decode('ascii')}"
