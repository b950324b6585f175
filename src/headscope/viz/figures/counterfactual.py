"""Counterfactual attention drawn: Jain & Wallace's figure, and the effects per head set.

* :func:`swap_scatter` - one panel per series: for each example, the largest Jensen-Shannon
  divergence from the original map that the adversarial search reached within each TVD bound
  ``epsilon`` (coloured by epsilon, gid ``"adversarial"``), against the output change that map
  causes; uniform (gid ``"uniform"``) and permuted (gid ``"permute"``) maps drawn on the same axes
  for reference, and each bound as a dotted line (gid ``"epsilon"``). A head set whose map can be
  swapped has points high up at small output change (Jain & Wallace 2019, section 4.2).
* :func:`swap_by_layer` - one panel per series: per head set (each layer, all heads), bars of the
  mean largest JS within each epsilon (gid ``"bar"``) and markers of the median output change
  (TVD) under uniform and permuted maps (gid ``"uniform"`` / ``"permute"``).

Both take :class:`headscope.faithful.CounterfactualResult` s (or their effects) and draw nothing
else; the numbers come from :func:`headscope.faithful.counterfactual`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from headscope.errors import InputError

from .canvas import RC, new_figure

__all__ = ["swap_by_layer", "swap_scatter"]


def _effects(value: Any, target: str | None = None) -> list[Any]:
    effects = list(getattr(value, "effects", value))
    return [e for e in effects if target is None or e.target == target]


def _eps_colors(epsilons: Sequence[float]) -> dict[float, Any]:
    cmap = matplotlib.colormaps["viridis"]
    n = max(1, len(epsilons) - 1)
    return {eps: cmap(0.15 + 0.7 * i / n) for i, eps in enumerate(epsilons)}


def _finish(fig: Figure, axes: Any, ylabel: str, legend_loc: str, title: str | None) -> None:
    """Label the shared y axis, put the legend in the last panel, add the title and lay the panels out."""
    axes[0].set_ylabel(ylabel)
    axes[-1].legend(fontsize=7, loc=legend_loc)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()


def swap_scatter(panels: Mapping[str, Any], *, title: str | None = None,
                 targets: Mapping[str, str] | None = None) -> Figure:
    """Jain & Wallace's figure: largest JS within epsilon against the output change, one panel per series.

    Parameters
    ----------
    panels
        ``{panel title: CounterfactualResult or its effects}``.
    title
        Figure title.
    targets
        ``{panel title: head-set name}`` to draw one head set of a result (default: every head set).

    Returns
    -------
    matplotlib.figure.Figure
        The scatter panels (log-scaled output change).
    """
    if not panels:
        raise InputError("swap_scatter needs at least one panel")
    with matplotlib.rc_context(RC):
        fig = new_figure(3.6 * len(panels) + 0.6, 3.4)
        axes = fig.subplots(1, len(panels), squeeze=False, sharey=True)[0]
        for ax, (name, value) in zip(axes, panels.items()):
            effects = _effects(value, (targets or {}).get(name))
            epsilons = sorted({e.epsilon for e in effects if e.method == "adversarial"})
            colors = _eps_colors(epsilons)
            floor = 1e-5
            for eps in epsilons:
                es = [e for e in effects if e.method == "adversarial" and e.epsilon == eps]
                pts = ax.scatter([max(e.tvd, floor) for e in es], [e.js for e in es], s=14, color=colors[eps],
                                 alpha=0.8, label=f"adversarial, TVD ≤ {eps:g}")
                pts.set_gid("adversarial")
                line = ax.axvline(max(eps, floor), color=colors[eps], linestyle=":", linewidth=1)
                line.set_gid("epsilon")
            for method, marker in (("uniform", "s"), ("permute", "^")):
                es = [e for e in effects if e.method == method]
                if es:
                    pts = ax.scatter([max(e.tvd, floor) for e in es], [e.js for e in es], s=14, marker=marker,
                                     facecolors="none", edgecolors="#888" if method == "uniform" else "#d95f0e",
                                     label=method if method == "uniform" else "permuted (median)")
                    pts.set_gid(method)
            ax.set_xscale("log")
            ax.set_ylim(-0.02, 1.02)
            ax.set_xlabel("output change (TVD, largest over decisions)")
            ax.set_title(name, fontsize=9)
            ax.grid(alpha=0.3)
        _finish(fig, axes, "JS divergence from the original map (bits)", "best", title)
    return fig


def swap_by_layer(panels: Mapping[str, Any], *, title: str | None = None) -> Figure:
    """Per head set: mean largest JS within each epsilon (bars) and median TVD under uniform / permuted maps.

    Parameters
    ----------
    panels
        ``{panel title: CounterfactualResult}`` (its ``targets`` give the x axis, in order).
    title
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
        One panel per result.
    """
    if not panels:
        raise InputError("swap_by_layer needs at least one panel")
    with matplotlib.rc_context(RC):
        width = sum(1.2 + 0.55 * len(r.targets) for r in panels.values()) + 0.6
        fig = new_figure(width, 3.4)
        axes = fig.subplots(1, len(panels), squeeze=False, sharey=True,
                            gridspec_kw={"width_ratios": [max(2, len(r.targets)) for r in panels.values()]})[0]
        for ax, (name, res) in zip(axes, panels.items()):
            targets = list(res.targets)
            x = np.arange(len(targets))
            epsilons = sorted({e.epsilon for e in res.effects if e.method == "adversarial"})
            colors = _eps_colors(epsilons)
            w = 0.8 / max(1, len(epsilons))
            for i, eps in enumerate(epsilons):
                js = [np.mean([e.js for e in res.effects if e.target == t and e.method == "adversarial"
                               and e.epsilon == eps] or [np.nan]) for t in targets]
                bars = ax.bar(x - 0.4 + w * (i + 0.5), js, width=w, color=colors[eps],
                              label=f"largest JS, TVD ≤ {eps:g}")
                for patch in bars.patches:
                    patch.set_gid("bar")
            for method, marker, color in (("uniform", "s", "#444"), ("permute", "^", "#d95f0e")):
                tvd = [np.median([e.tvd for e in res.effects if e.target == t and e.method == method] or [np.nan])
                       for t in targets]
                if not np.all(np.isnan(tvd)):
                    (line,) = ax.plot(x, tvd, marker=marker, color=color, linestyle="none",
                                      label=f"median TVD, {'uniform' if method == 'uniform' else 'permuted'}")
                    line.set_gid(method)
            ax.set_xticks(x, [t.replace(".mean", "") if t.count(".") == 2 else t for t in targets],
                          rotation=30, ha="right")
            ax.set_ylim(0, 1.02)
            ax.set_title(name, fontsize=9)
            ax.grid(axis="y", alpha=0.3)
        _finish(fig, axes, "JS (bits) / TVD", "upper left", title)
    return fig
