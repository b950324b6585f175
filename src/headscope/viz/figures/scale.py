"""The scale study's figure: alignment, distinct maps and faithfulness of readings, model by model.

One x position per model (e.g. the translators from one head to many, then a classifier), up to
four panels side by side:

* ``"aer"`` — AER of each reading on gold alignments (lower is better);
* ``"maps"`` — the effective number of distinct maps (bars) against the number of heads compared
  (markers), on a log scale;
* ``"tau"`` — Kendall τ between each reading and leave-one-out importance;
* ``"output-change"`` — how much the output moves when attention is replaced, e.g. the total
  variation distance of the output distribution (drawn only when given).

A value that does not apply to a model (NaN: no alignment for a classifier) is not drawn; a model
with no value at all in a panel gets an ``n/a`` note there. Models are grouped (``groups``):
lines join the points of one group only, and a dashed divider separates the groups.

Artists carry ``gid`` labels so tests count structure instead of pixels: ``"panel-<name>"`` on each
panel's axes, ``"point"`` on each series' point collection (one offset per drawn point, the
series name as its label), ``"series-line"`` on the lines, ``"error-bar"`` on the error bars' lines, ``"bar"`` on each bar, ``"heads"`` on
the head-count markers, ``"not-applicable"`` on each ``n/a`` note and ``"group-divider"`` on the
dividers. Save with :func:`headscope.viz.figures.save` for deterministic bytes.

>>> import numpy as np
>>> fig = scale_study(["1x1", "3x4"], [1, 12], aer={"best head": [0.59, 0.57]}, effective_maps=[1.0, 4.0],
...                   tau={"all-heads mean": [0.15, 0.16]})
>>> sorted(ax.get_gid() for ax in fig.axes)
['panel-aer', 'panel-maps', 'panel-tau']
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from headscope.errors import InputError, ShapeError

from .canvas import RC, new_figure

__all__ = ["scale_study"]

#: Colours of the series, in order of first appearance (a series keeps its colour across panels).
PALETTE = ("#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#8c8c8c")


def _series(name: str, values: Mapping[str, Sequence[float]] | None, n: int) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for key, vals in (values or {}).items():
        arr = np.asarray(vals, dtype=float)
        if arr.shape != (n,):
            raise ShapeError(f"{name}[{key!r}]: {arr.shape[0] if arr.ndim == 1 else arr.shape} values for {n} models")
        out[str(key)] = arr
    return out


def _segments(groups: Sequence[str]) -> list[list[int]]:
    """Runs of consecutive models in the same group."""
    runs: list[list[int]] = []
    for i, g in enumerate(groups):
        if runs and groups[runs[-1][-1]] == g:
            runs[-1].append(i)
        else:
            runs.append([i])
    return runs


def _points(ax, x: np.ndarray, series: dict[str, np.ndarray], colours: dict[str, str], runs: list[list[int]],
            errors: dict[str, np.ndarray] | None = None) -> None:
    k = max(1, len(series))
    for s, (key, y) in enumerate(series.items()):
        xs = x + (s - (k - 1) / 2) * 0.06  # a small dodge so equal values stay visible
        err = (errors or {}).get(key)
        if err is not None:
            ok = np.isfinite(y) & np.isfinite(err)
            if ok.any():
                bars = ax.errorbar(xs[ok], y[ok], yerr=err[ok], fmt="none", ecolor=colours[key], elinewidth=0.9,
                                   capsize=2)
                for artist in (*bars.lines[1], *bars.lines[2]):
                    artist.set_gid("error-bar")
        for run in runs:
            idx = [i for i in run if np.isfinite(y[i])]
            if len(idx) > 1:
                (line,) = ax.plot(xs[idx], y[idx], color=colours[key], linewidth=1.2)
                line.set_gid("series-line")
        ok = np.isfinite(y)
        pts = ax.scatter(xs[ok], y[ok], color=colours[key], s=28, zorder=3, label=key)
        pts.set_gid("point")


def _not_applicable(ax, x: np.ndarray, series: dict[str, np.ndarray], where: float) -> None:
    for i in range(len(x)):
        if not any(np.isfinite(y[i]) for y in series.values()):
            note = ax.text(x[i], where, "n/a", ha="center", va="bottom", fontsize=8, color="#666",
                           transform=ax.get_xaxis_transform())
            note.set_gid("not-applicable")


def scale_study(models: Sequence[str], heads: Sequence[int], *, effective_maps: Sequence[float],
                tau: Mapping[str, Sequence[float]], aer: Mapping[str, Sequence[float]] | None = None,
                tau_errors: Mapping[str, Sequence[float]] | None = None,
                output_change: Mapping[str, Sequence[float]] | None = None, groups: Sequence[str] | None = None,
                title: str | None = None) -> Figure:
    """Readings of several models side by side: AER, distinct maps, τ with leave-one-out, output change.

    Parameters
    ----------
    models
        One label per model, in drawing order (e.g. ``"en-fr-1x1"``).
    heads
        The number of heads compared in each model (drawn beside its effective maps).
    effective_maps
        The effective number of distinct maps of each model (NaN where not measured).
    tau
        Series name (a reading's label, e.g. ``"all-heads mean"``) -> one Kendall τ per model.
    aer
        Series name -> one AER per model (NaN where alignment does not apply); no panel when
        ``None`` or empty.
    tau_errors
        Series name (of ``tau``) -> one error-bar half width per model (e.g. two standard errors
        of the mean over texts; NaN: none drawn).
    output_change
        Series name -> one output change per model (e.g. median TVD under uniform attention);
        no panel when ``None``, empty, or NaN throughout.
    groups
        One group name per model (e.g. ``"translator"``, ``"classifier"``); lines join points of
        the same consecutive group only. Default: one group.
    title
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
        One panel per measure, gid ``"panel-<name>"``.

    Raises
    ------
    headscope.errors.ShapeError
        A series or ``heads`` / ``effective_maps`` / ``groups`` of another length than ``models``.
    headscope.errors.InputError
        No model.
    """
    n = len(models)
    if n == 0:
        raise InputError("scale_study needs at least one model")
    heads_arr = np.asarray(heads, dtype=float)
    eff = np.asarray(effective_maps, dtype=float)
    groups = [""] * n if groups is None else [str(g) for g in groups]
    for name, arr in (("heads", heads_arr), ("effective_maps", eff), ("groups", np.asarray(groups))):
        if arr.shape != (n,):
            raise ShapeError(f"{name}: {arr.shape[0] if arr.ndim == 1 else arr.shape} values for {n} models")
    aer_s = _series("aer", aer, n)
    tau_s = _series("tau", tau, n)
    tau_e = _series("tau_errors", tau_errors, n)
    unknown = sorted(set(tau_e) - set(tau_s))
    if unknown:
        raise InputError(f"tau_errors for series not in tau: {unknown}")
    change_s = {k: v for k, v in _series("output_change", output_change, n).items() if np.isfinite(v).any()}
    colours: dict[str, str] = {}
    for key in [*aer_s, *tau_s, *change_s]:
        colours.setdefault(key, PALETTE[len(colours) % len(PALETTE)])

    panels = (["aer"] if aer_s else []) + ["maps", "tau"] + (["output-change"] if change_s else [])
    x = np.arange(n, dtype=float)
    runs = _segments(groups)
    with matplotlib.rc_context(RC):
        fig = new_figure(1.2 + len(panels) * (1.2 + 0.75 * n), 3.9)
        axes = [fig.add_subplot(1, len(panels), i + 1) for i in range(len(panels))]
        for ax, panel in zip(axes, panels):
            ax.set_gid(f"panel-{panel}")
            if panel == "aer":
                _points(ax, x, aer_s, colours, runs)
                _not_applicable(ax, x, aer_s, 0.03)
                ax.set_ylim(0, 1)
                ax.set_title("AER on gold alignments\n(lower is better)", fontsize=9)
            elif panel == "maps":
                ok = np.isfinite(eff)
                for patch in ax.bar(x[ok], eff[ok], width=0.55, color="#9a9a9a", label="effective maps").patches:
                    patch.set_gid("bar")
                (marks,) = ax.plot(x, heads_arr, linestyle="none", marker="_", markersize=22, markeredgewidth=2,
                                   color="black", label="heads compared")
                marks.set_gid("heads")
                for i in np.flatnonzero(ok):
                    ax.text(x[i], eff[i], f"{eff[i]:.1f}", ha="center", va="bottom", fontsize=7)
                ax.set_yscale("log")
                top = float(np.nanmax(np.concatenate([heads_arr, eff[ok]])))
                ax.set_ylim(0.8, max(2.0, top * 1.8))
                ax.set_title("distinct maps: effective number\nvs heads compared (log scale)", fontsize=9)
            elif panel == "tau":
                _points(ax, x, tau_s, colours, runs, tau_e)
                _not_applicable(ax, x, tau_s, 0.03)
                ax.axhline(0, color="#333", linewidth=0.6)
                ax.set_title("Kendall τ with leave-one-out\n(higher: more faithful)", fontsize=9)
            else:
                _points(ax, x, change_s, colours, runs)
                _not_applicable(ax, x, change_s, 0.03)
                ax.set_ylim(bottom=0)
                ax.set_ylim(top=max(1.0, float(np.nanmax([np.nanmax(v) for v in change_s.values()]))))
                ax.set_title("output change when attention\nis replaced (TVD)", fontsize=9)
            for a, b in zip(runs, runs[1:]):
                divider = ax.axvline((a[-1] + b[0]) / 2, color="#999", linestyle="--", linewidth=0.8)
                divider.set_gid("group-divider")
            ax.set_xticks(x, [f"{m}\n{int(h)} head{'s' if h != 1 else ''}" for m, h in zip(models, heads_arr)],
                          fontsize=7)
            ax.set_xlim(-0.6, n - 0.4)
            ax.legend(fontsize=7, loc="best")
        if title:
            fig.suptitle(title, fontsize=10)
        fig.tight_layout()
    return fig
