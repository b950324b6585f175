"""Bar charts, and the summary chart of a fragmentation result."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from headscope.errors import InputError, ShapeError

from .canvas import RC, new_figure
from .grids import layer_head_heatmap

__all__ = ["bars", "fragmentation_summary"]


def bars(values: Mapping[str, float] | Sequence[float], labels: Sequence[str] | None = None, *,
         title: str | None = None, xlabel: str | None = None, color: str = "#4c72b0",
         errors: Sequence[float] | None = None) -> Figure:
    """Horizontal bars (gid ``"bar"`` on each), one per label, in the given order.

    Parameters
    ----------
    values
        A mapping label -> value, or a sequence of values (then ``labels`` names them).
    labels
        One label per value (default ``0, 1, ...``).
    title, xlabel
        Axes title and value-axis label.
    color
        Bar colour.
    errors
        Error-bar half widths.

    Returns
    -------
    matplotlib.figure.Figure
        The bar chart.
    """
    if isinstance(values, Mapping):
        labels, vals = list(values.keys()), [float(v) for v in values.values()]
    else:
        vals = [float(v) for v in values]
        labels = [str(i) for i in range(len(vals))] if labels is None else list(labels)
    if len(labels) != len(vals):
        raise ShapeError(f"{len(labels)} labels for {len(vals)} values")
    with matplotlib.rc_context(RC):
        fig = new_figure(5.0, 0.8 + 0.3 * len(vals))
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
    """A mapping of name -> number (bars) or -> one 2-D array (a layers x heads heatmap).

    Parameters
    ----------
    summary
        Numbers (e.g. the share of heads by behaviour) give one bar chart (mixed input draws the
        numbers only); exactly one 2-D entry gives a heatmap.
    title
        Axes title.

    Returns
    -------
    matplotlib.figure.Figure
        The bar chart or heatmap.

    Raises
    ------
    headscope.errors.InputError
        Neither numbers nor exactly one 2-D array.
    """
    scalars = {k: float(v) for k, v in summary.items() if np.ndim(v) == 0}
    if scalars:
        return bars(scalars, title=title)
    arrays = {k: np.asarray(v, dtype=float) for k, v in summary.items() if np.ndim(v) == 2}
    if len(arrays) == 1:
        (name, arr), = arrays.items()
        return layer_head_heatmap(arr, title=f"{title}: {name}")
    raise InputError("fragmentation_summary takes name -> number, or exactly one name -> 2-D array")


