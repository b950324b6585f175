"""The canvas every figure is drawn on, the flat-block cells, and deterministic file output.

Figures are built without ``pyplot`` on their own Agg canvas (the user's backend is left alone);
files carry no date or software stamp and SVG a fixed hash salt, so the same input gives the
same bytes.
"""

from __future__ import annotations

import base64
import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from headscope.errors import InputError, ShapeError

from ..files import write_atomic

__all__ = ["METADATA", "RC", "annotate_cells", "check_matrix", "data_range", "draw_mesh", "new_figure", "save",
           "scale_label", "to_bytes", "to_data_uri", "to_svg"]

#: matplotlib settings of every figure: fixed SVG salt, text as paths, no path simplification.
RC: dict[str, Any] = {"svg.hashsalt": "headscope", "svg.fonttype": "path", "path.simplify": False, "font.size": 9}
#: Metadata that would stamp a file with a date or software version, blanked.
METADATA: dict[str, dict[str, None]] = {
    "png": {"Software": None},
    "svg": {"Date": None, "Creator": None},
    "pdf": {"CreationDate": None, "Creator": None, "Producer": None},
}


def new_figure(width: float, height: float) -> Figure:
    """An empty figure on its own Agg canvas (no ``pyplot``, the user's backend untouched)."""
    fig = Figure(figsize=(max(2.5, width), max(2.0, height)), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def check_matrix(matrix: Any, rows: Sequence[str] | None, cols: Sequence[str] | None) -> np.ndarray:
    """``matrix`` as a float 2-D array whose shape fits the labels (else :class:`ShapeError`)."""
    m = np.asarray(matrix, dtype=float)
    if m.ndim != 2:
        raise ShapeError(f"expected a 2-D matrix, got shape {m.shape}")
    if rows is not None and len(rows) != m.shape[0]:
        raise ShapeError(f"{len(rows)} row labels for {m.shape[0]} rows")
    if cols is not None and len(cols) != m.shape[1]:
        raise ShapeError(f"{len(cols)} column labels for {m.shape[1]} columns")
    return m


def data_range(m: np.ndarray, lo: float | None = None, hi: float | None = None) -> tuple[float, float]:
    """The colour scale ``(lo, hi)`` of matrix ``m``: the given ends, the others from its finite values.

    A scale that would be empty (all values equal) is widened by a little so that it still draws.

    >>> data_range(np.array([[0.1, 0.4], [np.nan, 0.2]]), lo=0.0)
    (0.0, 0.4)
    """
    finite = m[np.isfinite(m)]
    lo = float(finite.min()) if lo is None and finite.size else (0.0 if lo is None else float(lo))
    hi = float(finite.max()) if hi is None and finite.size else (1.0 if hi is None else float(hi))
    if hi <= lo:
        hi = lo + (abs(lo) * 1e-3 or 1e-3)
    return lo, hi


def scale_label(label: str | None, lo: float, hi: float, fitted: bool) -> str:
    """A colour-bar label that states the scale: ``"weight (scale 0 to 0.43, fitted to the data)"``.

    >>> scale_label("AER", 0.0, 1.0, fitted=False)
    'AER (scale 0 to 1)'
    """
    what = f"scale {lo:.3g} to {hi:.3g}" + (", fitted to the data" if fitted else "")
    return f"{label} ({what})" if label else what


def draw_mesh(ax: Any, m: np.ndarray, cmap: str, vmin: float | None, vmax: float | None, norm: Any = None) -> Any:
    """Flat blocks, one per cell, rows top to bottom."""
    rows, cols = m.shape
    kw = dict(norm=norm) if norm is not None else dict(vmin=vmin, vmax=vmax)
    mesh = ax.pcolormesh(np.arange(cols + 1) - 0.5, np.arange(rows + 1) - 0.5, np.ma.masked_invalid(m),
                         shading="flat", cmap=cmap, antialiased=False, edgecolors="none", **kw)
    mesh.set_gid("cell-mesh")
    ax.set_xlim(-0.5, cols - 0.5)
    ax.set_ylim(rows - 0.5, -0.5)
    return mesh


def annotate_cells(ax: Any, m: np.ndarray, fmt: str, mesh: Any) -> None:
    """Write each finite value in its cell, white on dark cells."""
    cmap, norm = mesh.get_cmap(), mesh.norm
    for (i, j), v in np.ndenumerate(m):
        if np.isnan(v):
            continue
        r, g, b, _ = cmap(norm(v))
        dark = 0.299 * r + 0.587 * g + 0.114 * b < 0.5
        ax.text(j, i, format(v, fmt), ha="center", va="center", fontsize=7, color="white" if dark else "black")


def to_bytes(fig: Figure, fmt: str = "png", dpi: int = 100) -> bytes:
    """The figure as file bytes with no timestamp or software stamp (same input, same bytes).

    Parameters
    ----------
    fig
        The figure.
    fmt
        ``"png"``, ``"svg"`` or ``"pdf"``.
    dpi
        Resolution of raster output.

    Returns
    -------
    bytes
        The file's content.
    """
    fmt = fmt.lower()
    if fmt not in METADATA:
        raise InputError(f"format must be one of {sorted(METADATA)}, not {fmt!r}")
    buf = io.BytesIO()
    with matplotlib.rc_context(RC):
        fig.savefig(buf, format=fmt, dpi=dpi, metadata=METADATA[fmt])
    return buf.getvalue()


def save(fig: Figure, path: str | os.PathLike[str], fmt: str | None = None, dpi: int = 100) -> Path:
    """Write the figure atomically (see :func:`headscope.viz.files.write_atomic`).

    Parameters
    ----------
    fig
        The figure.
    path
        The file to write.
    fmt
        ``"png"``, ``"svg"`` or ``"pdf"``; default from the suffix of ``path`` (else PNG).
    dpi
        Resolution of raster output.

    Returns
    -------
    Path
        The written file.
    """
    out = Path(path)
    return write_atomic(out, to_bytes(fig, (fmt or out.suffix.lstrip(".") or "png").lower(), dpi))


def to_svg(fig: Figure) -> str:
    """Inline SVG text (without the XML prolog) for embedding in HTML.

    Parameters
    ----------
    fig
        The figure.

    Returns
    -------
    str
        The ``<svg>`` element.
    """
    text = to_bytes(fig, "svg").decode("utf-8")
    return text[text.index("<svg"):]


def to_data_uri(fig: Figure, fmt: str = "png", dpi: int = 100) -> str:
    """The figure as a ``data:`` URI for an ``<img src=...>`` (the page then needs no file).

    Parameters
    ----------
    fig
        The figure.
    fmt
        ``"png"``, ``"svg"`` or ``"pdf"``.
    dpi
        Resolution of raster output.

    Returns
    -------
    str
        ``data:image/png;base64,...``.
    """
    mime = {"png": "image/png", "svg": "image/svg+xml", "pdf": "application/pdf"}[fmt]
    return f"data:{mime};base64,{base64.b64encode(to_bytes(fig, fmt, dpi)).decode('ascii')}"
