"""The report page of an image: every map on the patch grid, scored and tested.

:func:`image_report` builds the page that :func:`headscope.viz.report` writes for an image
inspection (one with a ``patch_grid``). Its sections, each headed by its claim:

* **Localisation** - with the object mask given as ``gold``: the pointing game and the mass inside
  the object, per reading, on this image (:func:`headscope.vision.localisation`); without a mask,
  *not scored*.
* **Plausible** - the query's (``[CLS]``) attention of every head, the layer means, the all-heads
  mean, rollout and flow, drawn as the patch grid over the image (flat blocks, grid lines); the
  attention left on special tokens in a table; and one map rendered both ways, patch grid and
  smooth overlay side by side, the overlay labelled as interpolated.
* **Faithful** - patch deletion and insertion curves, leave-one-patch-out, head ablation
  (:mod:`headscope.vision.faithfulness`); needs the model attached.
* **Fragmentation** - :func:`headscope.fragment.fragmentation` on the maps.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from headscope import vision
from headscope.aggregate import map_readings
from headscope.vision.faithfulness import deletion_score_note, spearman
from headscope.vision.localisation import CELL_RULE
from headscope.vision.maps import DEFAULT_QUERY, require_grid
from headscope.errors import NotApplicableError
from headscope.inspection import Inspection
from headscope.readings import Head, LayerMean

from ..figures import ablation_heatmap
from ..grid import curves_figure, grid_panels, grid_view, side_by_side
from ..page import Section, escape, page_html
from .fragmentation import fragmentation_section

__all__ = ["grid_section", "image_faithful_section", "image_report", "localisation_section"]


def _claim(claim: str, build: Callable[..., Section], *args: Any, **kwargs: Any) -> Section:
    try:
        return build(*args, **kwargs)
    except NotApplicableError as err:
        return Section.not_applicable(claim, str(err))


def _table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str, str]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for _, h, _ in columns)
    body = []
    for r in rows:
        cells = []
        for key, _, fmt in columns:
            v = r.get(key)
            cells.append("-" if v is None else format(v, fmt) if fmt and isinstance(v, (int, float)) else str(v))
        body.append("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _summary_readings(insp: Inspection) -> list:
    """The layer means, the all-heads mean, rollout and flow."""
    return [r for r in map_readings(insp, "encoder", heads=False, flow_too=True)]


def localisation_section(insp: Inspection, mask: Any, query: str = DEFAULT_QUERY) -> Section:
    """Pointing game and mass inside the object for every reading on this image (needs the mask)."""
    require_grid(insp)
    if mask is None:
        raise NotApplicableError("not scored: no object mask given (pass it as gold=, a [height, width] boolean "
                                 "array, e.g. headscope.vision.shapes_batch(...).masks[i])")
    mask = np.asarray(mask, dtype=bool)
    saliency = tuple(vision.SALIENCY) if insp.loaded is not None else ()
    result = vision.localisation([insp], [mask], query=query, saliency=saliency)
    section = Section("localisation")
    size = vision.image_for_display(insp).shape[:2]
    cover = vision.patch_coverage(vision.resize_mask(mask, size), insp.patch_grid)
    gm = vision.patch_values(cover, insp, "object", "object (share of each patch)")
    section.figure(grid_view(gm, vision.image_for_display(insp), title="the object on the patch grid"),
                   "Each patch's share of object pixels: what a perfect map on this grid would show. "
                   f"{escape(CELL_RULE)}.")
    columns = (("label", "map", ""), ("pointing", "pointing hit", ".2f"), ("mass", "mass inside the object", ".3f"))
    section.add(_table([r for r in result.rows if r["group"] != "head"], columns))
    heads = sorted((r for r in result.rows if r["group"] == "head"), key=lambda r: -r["mass"])
    section.add('<p class="hs-caption">Heads by mass inside the object (one image: a hit is 0 or 1):</p>'
                + _table(heads, columns))
    return section


def grid_section(insp: Inspection, query: str = DEFAULT_QUERY) -> Section:
    """Every map of the query drawn as the patch grid, and one map rendered both ways."""
    rows, cols = require_grid(insp)
    image = vision.image_for_display(insp)
    section = Section("plausible")
    height, width = image.shape[:2]
    section.note(f"Every map is drawn as the patch grid: {rows}x{cols} patches of {height // rows}x{width // cols} px, "
                 "one flat block per number the model computed, grid lines visible. A smooth overlay is an "
                 "interpolation of the same numbers; it appears once below, labelled, beside the grid.")
    n_layers, n_heads = insp.shape("encoder")
    heads = [vision.grid_map(insp, Head("encoder", layer, h), query)
             for layer in insp.layer_indices("encoder") for h in range(n_heads)]
    section.figure(grid_panels(heads, image, columns=n_heads, size=1.5,
                               title=f"{query} attention of every head (rows: layers; each panel on its own scale)"),
                   f"{escape(query)}'s attention on each patch, every head of every layer.")
    summary = [vision.grid_map(insp, r, query) for r in _summary_readings(insp)]
    section.figure(grid_panels(summary, image, columns=min(len(summary), 4), size=1.9,
                               title=f"{query}: layer means, all-heads mean, rollout, flow"),
                   "Layer means, the all-heads mean, rollout and flow of the query's row, on the grid.")
    rollout = next((m for m in summary if m.name.endswith(".rollout")), summary[-1])
    section.figure(side_by_side(rollout, image),
                   f"One map ({escape(rollout.label)}), two renderings: the patch grid as measured, and a smooth "
                   "bilinear overlay of the same numbers. The overlay's soft contours are interpolation, not "
                   "measurement.")
    specials = [{"label": m.label, **{k: round(v, 3) for k, v in m.specials.items()}, "patches": round(
        float(m.values.sum()), 3)} for m in summary]
    names = list(summary[0].specials) if summary else []
    section.add('<p class="hs-caption">Attention of the query left on special tokens (no place on the image) and '
                "on the patches:</p>" + _table(specials, [("label", "map", ""), *[(n, n, ".3f") for n in names],
                                                           ("patches", "patches", ".3f")]))
    return section


def image_faithful_section(insp: Inspection, *, run: bool = True, query: str = DEFAULT_QUERY) -> Section:
    """Deletion / insertion curves, leave-one-patch-out and head ablation on this image."""
    if not run:
        raise NotApplicableError("not computed (faithful=False)")
    if insp.loaded is None:
        raise NotApplicableError("not computed: the inspection has no model attached (loaded from disk); "
                                 "inspect the image again to test faithfulness")
    section = Section("faithful")
    image = vision.image_for_display(insp)
    maps = {m.name: m for m in (vision.grid_map(insp, r, query) for r in _summary_readings(insp)
                                if not isinstance(r, LayerMean))}
    for method in vision.SALIENCY:
        maps[method] = vision.saliency_maps([insp], method)[0]
    occlusion = vision.leave_one_patch_out(insp)
    rng = np.random.default_rng(0)
    maps["occlusion"] = occlusion
    maps["random"] = vision.patch_values(rng.random(insp.patch_grid), insp, "random", "random order")
    curves = vision.patch_curves(insp, maps)
    section.figure(curves_figure(curves, {k: m.label for k, m in maps.items()},
                                 title=f"patch deletion and insertion: p({insp.prediction.get('label', '?')})"),
                   escape(deletion_score_note()) + ".")
    section.figure(grid_view(occlusion, image, title="leave-one-patch-out\n(drop of log p when the patch is replaced)"),
                   "Occlusion: the drop of the predicted class's log-probability when each patch alone is replaced "
                   "by the processor's mean colour.")
    ablation = vision.head_ablation_rows([insp])
    n_layers, n_heads = insp.shape("encoder")
    effect = np.array([r["ablation_drop"] for r in ablation]).reshape(n_layers, n_heads)
    section.figure(ablation_heatmap(effect, layers=insp.layer_indices("encoder"),
                                    title="head ablation: drop of log p"),
                   "Head ablation: each head's output zeroed alone, this image.")
    rows = []
    for name, m in maps.items():
        if name in ("occlusion", "random"):
            continue
        rho = spearman(m.values, occlusion.values)
        rows.append({"label": m.label, "deletion": curves[name]["deletion_auc"],
                     "insertion": curves[name]["insertion_auc"], "rho": None if np.isnan(rho) else rho})
    for name in ("occlusion", "random"):
        rows.append({"label": maps[name].label, "deletion": curves[name]["deletion_auc"],
                     "insertion": curves[name]["insertion_auc"], "rho": None})
    section.add(_table(rows, [("label", "map", ""), ("deletion", "deletion AUC (low = faithful)", ".3f"),
                              ("insertion", "insertion AUC (high = faithful)", ".3f"),
                              ("rho", "Spearman with leave-one-patch-out", ".3f")]))
    return section


def image_report(insp: Inspection, mask: Any = None, *, faithful: bool = True, fragmentation: bool = True,
                 query: str = DEFAULT_QUERY) -> str:
    """The report page of an image inspection (``mask``: the object's ``[height, width]`` booleans, or None)."""
    require_grid(insp)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="(Tight layout not applied|Glyph )", category=UserWarning)
        sections = [
            _claim("localisation", localisation_section, insp, mask, query),
            _claim("plausible", grid_section, insp, query),
            _claim("faithful", image_faithful_section, insp, run=faithful, query=query),
        ]
        if fragmentation:
            sections.append(_claim("fragmentation", fragmentation_section, insp, faithful=False))
    return page_html(insp, sections)
