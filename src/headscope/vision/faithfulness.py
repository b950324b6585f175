"""Faithfulness for images: do the maps rank the patches the way the model uses them?

As for text (:mod:`headscope.faithful`), change the input or the heads and watch the model's own
decision — the log-probability of the class it predicted on the intact image:

* **patch deletion / insertion curves** (Petsiuk et al. 2018, on patches): replace the patches a
  map ranks highest, one more at a time, with the processor's mean colour (0 after normalisation),
  and follow the predicted class's probability (deletion: falls fast for a faithful map, a low
  area under the curve); or start from the mean-colour image and put the patches back (insertion:
  rises fast, a high area);
* **leave-one-patch-out**: the drop of the log-probability when one patch alone is replaced, an
  occlusion map on the grid; each map's Spearman correlation with it, per image;
* **head ablation**: remove one head at a time (its output zeroed, all images batched) and
  measure the drop of the log-probability and how often the prediction flips.

:func:`image_faithfulness` runs them all over a set of inspections and returns one row per map.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from ..aggregate import map_readings
from ..capture import AttentionCapture
from ..errors import InputError
from ..fragment import Fragmentation, fragmentation
from ..inspection import Inspection
from ..readings import Head, Reading, parse_reading
from .maps import DEFAULT_QUERY, GridMap, grid_map, patch_values, require_grid, token_positions
from .results import RowsResult
from .saliency import SALIENCY, model_of, predicted_class, saliency_maps


def _patch_masks(grid: tuple[int, int], size: tuple[int, int]) -> torch.Tensor:
    """``[patches, H, W]`` booleans: the pixels of each patch."""
    rows, cols = grid
    h, w = size[0] // rows, size[1] // cols
    masks = torch.zeros(rows * cols, *size, dtype=torch.bool)
    for p in range(rows * cols):
        r, c = divmod(p, cols)
        masks[p, r * h:(r + 1) * h, c * w:(c + 1) * w] = True
    return masks


def _logprobs(model: Any, pixels: torch.Tensor, target: int, batch: int = 256) -> np.ndarray:
    """Log-probability of class ``target`` for each image of ``pixels`` ``[n, C, H, W]``."""
    param = next(model.parameters())
    out = []
    with torch.inference_mode():
        for i in range(0, len(pixels), batch):
            logits = model(pixel_values=pixels[i:i + batch].to(param.device, param.dtype)).logits.float()
            out.append(torch.log_softmax(logits, -1)[:, target].cpu())
    return torch.cat(out).double().numpy()


def _order(values: np.ndarray) -> np.ndarray:
    """Patch indices from the highest value to the lowest (ties in reading order)."""
    return np.argsort(-values.reshape(-1), kind="stable")


def _curve_images(pixels: torch.Tensor, patch_masks: torch.Tensor, order: np.ndarray, insertion: bool,
                  fill: float) -> torch.Tensor:
    """``[patches + 1, C, H, W]``: ``pixels`` with the first ``k`` patches of ``order`` removed (deletion)
    or the only ones kept (insertion), for ``k = 0..patches``."""
    n = len(order)
    steps = torch.zeros(n + 1, *patch_masks.shape[1:], dtype=torch.bool)
    for k in range(1, n + 1):
        steps[k] = steps[k - 1] | patch_masks[order[k - 1]]
    removed = ~steps if insertion else steps
    return torch.where(removed[:, None], torch.full_like(pixels, fill), pixels[None].expand(n + 1, *pixels.shape))


def patch_curves(insp: Inspection, maps: dict[str, GridMap], fill: float = 0.0) -> dict[str, dict[str, Any]]:
    """Deletion and insertion curves of one image for each map: ``{name: {"deletion": [p...],
    "insertion": [p...], "deletion_auc", "insertion_auc"}}``, probabilities of the predicted class
    after ``k = 0..patches`` steps, areas by the trapezoid rule over the fraction of patches."""
    model = model_of(insp)
    grid = require_grid(insp)
    pixels = insp.pixel_values.float()
    masks = _patch_masks(grid, tuple(pixels.shape[-2:]))
    target = predicted_class(insp)
    images = []
    for m in maps.values():
        order = _order(m.values)
        images += [_curve_images(pixels, masks, order, False, fill), _curve_images(pixels, masks, order, True, fill)]
    p = np.exp(_logprobs(model, torch.cat(images), target)).reshape(len(maps), 2, len(masks) + 1)
    return {name: {"deletion": d.tolist(), "insertion": i.tolist(), "deletion_auc": _area(d), "insertion_auc": _area(i)}
            for name, (d, i) in zip(maps, p)}


def _area(curve: np.ndarray) -> float:
    """Area under a curve sampled at ``k / n`` for ``k = 0..n`` (trapezoid rule)."""
    return float((curve[:-1] + curve[1:]).sum() / (2 * (len(curve) - 1)))


def leave_one_patch_out(insp: Inspection, fill: float = 0.0) -> GridMap:
    """The drop of the predicted class's log-probability when each patch alone is replaced by ``fill``."""
    model = model_of(insp)
    grid = require_grid(insp)
    pixels = insp.pixel_values.float()
    masks = _patch_masks(grid, tuple(pixels.shape[-2:]))
    target = predicted_class(insp)
    images = torch.where(masks[:, None], torch.full_like(pixels, fill), pixels[None].expand(len(masks), *pixels.shape))
    base = _logprobs(model, pixels[None], target)[0]
    drops = base - _logprobs(model, images, target)
    return patch_values(drops.reshape(grid), insp, "occlusion", "leave-one-patch-out")


def head_ablation_rows(inspections: Sequence[Inspection], kind: str = "encoder") -> list[dict[str, Any]]:
    """One row per head: ``ablation_drop`` (mean drop of the predicted class's log-probability when the
    head's output is zeroed) and ``flip_rate`` (share of images whose prediction changes)."""
    model = model_of(inspections[0])
    loaded = inspections[0].loaded
    param = next(model.parameters())
    pixels = torch.stack([i.pixel_values for i in inspections]).to(param.device, param.dtype)
    targets = torch.tensor([predicted_class(i) for i in inspections], device=param.device)
    n_layers, n_heads = inspections[0].shape(kind)

    def run(gates: dict | None) -> tuple[np.ndarray, np.ndarray]:
        with torch.inference_mode():
            if gates is None:
                logits = model(pixel_values=pixels).logits.float()
            else:
                with AttentionCapture(model, kinds=(), head_gates=gates, structure=loaded.structure):
                    logits = model(pixel_values=pixels).logits.float()
        logp = torch.log_softmax(logits, -1)
        return logp.gather(1, targets[:, None])[:, 0].double().cpu().numpy(), logits.argmax(-1).cpu().numpy()

    base, _ = run(None)
    rows = []
    for layer in inspections[0].layer_indices(kind):
        for head in range(n_heads):
            gate = torch.ones(len(inspections), n_heads, device=param.device, dtype=param.dtype)
            gate[:, head] = 0
            logp, pred = run({(kind, layer): gate})
            rows.append({"name": Head(kind, layer, head).name, "ablation_drop": round(float((base - logp).mean()), 5),
                         "flip_rate": round(float((pred != targets.cpu().numpy()).mean()), 4)})
    return rows


@dataclass
class ImageFaithfulness(RowsResult):
    """Faithfulness of each map over ``n_images`` images: one row per map with ``deletion_auc`` (lower
    is more faithful), ``insertion_auc`` (higher), ``occlusion_spearman`` (mean Spearman correlation with
    leave-one-patch-out), and for heads ``ablation_drop`` and ``flip_rate``. Baseline rows: ``random``
    (a random patch order) and ``occlusion`` (leave-one-patch-out's own order)."""

    kind: ClassVar[str] = "image_faithfulness"
    columns: ClassVar[tuple[tuple[str, str, str], ...]] = (
        ("label", "map", ""), ("deletion_auc", "deletion AUC (low=faithful)", ".3f"),
        ("insertion_auc", "insertion AUC (high=faithful)", ".3f"), ("occlusion_spearman", "rho vs occlusion", ".3f"),
        ("ablation_drop", "ablation drop", ".4f"), ("flip_rate", "flips", ".3f"))

    model_name: str = ""
    n_images: int = 0
    fill: str = "the processor's mean colour (0 after normalisation)"

    def summary(self) -> str:
        lines = [f"image faithfulness of {self.model_name} over {self.n_images} images (patches replaced by "
                 f"{self.fill})"]
        for r in self.rows:
            if r["group"] == "head" or r.get("deletion_auc") is None:
                continue
            rho = r.get("occlusion_spearman")
            lines.append(f"  {r['label']:<22} deletion AUC {r['deletion_auc']:.3f}  insertion AUC "
                         f"{r['insertion_auc']:.3f}" + (f"  rho vs occlusion {rho:.3f}" if rho is not None else ""))
        heads = sorted((r for r in self.rows if r["group"] == "head"), key=lambda r: -r["ablation_drop"])
        if heads:
            lines.append(f"  head ablation: largest drop {heads[0]['label']} {heads[0]['ablation_drop']:.3f} "
                         f"(flips {heads[0]['flip_rate']:.1%}), smallest {heads[-1]['label']} "
                         f"{heads[-1]['ablation_drop']:.3f}")
        return "\n".join(lines)


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman correlation of two grid maps over their patches (NaN when either is constant)."""
    from scipy.stats import spearmanr

    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(spearmanr(a.reshape(-1), b.reshape(-1)).statistic)


def image_faithfulness(inspections: Sequence[Inspection], readings: Sequence[str | Reading] | None = None, *,
                       query: str = DEFAULT_QUERY, saliency: Sequence[str] = tuple(SALIENCY), flow: bool = True,
                       curves_for_heads: bool = False, seed: int = 0,
                       maps: dict[str, list[GridMap]] | None = None) -> ImageFaithfulness:
    """Deletion / insertion curves, leave-one-patch-out and head ablation over ``inspections``.

    ``readings`` default to every head, the layer means, the all-heads mean, rollout and ``flow``;
    curves are drawn for all but the single heads (``curves_for_heads=True`` adds them; heads get
    the occlusion correlation and ablation either way). ``maps`` may hold precomputed
    :class:`GridMap` lists by name.
    """
    if not inspections:
        raise InputError("image_faithfulness needs at least one image inspection")
    grid = require_grid(inspections[0])
    chosen = [parse_reading(r) for r in readings] if readings is not None else map_readings(
        inspections[0], "encoder", heads=True, flow_too=flow)
    computed = dict(maps or {})
    entries: list[tuple[str, str, str]] = []  # (name, label, group)
    for r in chosen:
        computed.setdefault(r.name, [grid_map(i, r, query) for i in inspections])
        entries.append((r.name, r.label, "head" if isinstance(r, Head) else "reading"))
    for method in saliency:
        computed.setdefault(method, saliency_maps(inspections, method))
        entries.append((method, SALIENCY[method], "saliency"))
    occlusion = [leave_one_patch_out(i) for i in inspections]
    rng = np.random.default_rng(seed)
    computed["random"] = [patch_values(rng.random(grid), i, "random", "random order") for i in inspections]
    computed["occlusion"] = occlusion
    entries += [("occlusion", "leave-one-patch-out", "baseline"), ("random", "random order", "baseline")]

    with_curves = [name for name, _, group in entries if group != "head" or curves_for_heads]
    per_image = [patch_curves(insp, {name: computed[name][i] for name in with_curves})
                 for i, insp in enumerate(inspections)]
    rows = []
    for name, label, group in entries:
        row: dict[str, Any] = {"name": name, "label": label, "group": group}
        if name not in ("random", "occlusion"):
            rhos = np.array([spearman(m.values, o.values) for m, o in zip(computed[name], occlusion)])
            row["occlusion_spearman"] = round(float(np.nanmean(rhos)), 4) if np.isfinite(rhos).any() else None
        if name in with_curves:
            curves = [image[name] for image in per_image]
            row["deletion_auc"] = round(float(np.mean([c["deletion_auc"] for c in curves])), 4)
            row["insertion_auc"] = round(float(np.mean([c["insertion_auc"] for c in curves])), 4)
            row["deletion_curve"] = [round(float(x), 4) for x in np.mean([c["deletion"] for c in curves], 0)]
            row["insertion_curve"] = [round(float(x), 4) for x in np.mean([c["insertion"] for c in curves], 0)]
        rows.append(row)
    by_name = {r["name"]: r for r in rows}
    for ablation in head_ablation_rows(inspections):
        if ablation["name"] in by_name:
            by_name[ablation["name"]].update(ablation)
        else:
            rows.append({"label": ablation["name"], "group": "head", **ablation})
    return ImageFaithfulness(rows=rows, model_name=inspections[0].model_name, n_images=len(inspections))


def deletion_score_note() -> str:
    """How to read the areas, in one line (for reports)."""
    return ("deletion AUC: mean probability of the predicted class while the top-ranked patches are removed "
            "(lower = the map found what the model needs); insertion AUC: while they are put back on a mean-colour "
            "image (higher = better); both over the fraction of patches, trapezoid rule; a random order gives the scale")


def image_fragmentation(insp: Inspection, *, fill: float = 0.0) -> Fragmentation:
    """:func:`headscope.fragment.fragmentation` of an image, with the image tests as its references.

    The references are leave-one-patch-out (``"loo"``: the drop of the predicted class's log-probability
    when one patch alone is replaced by ``fill``) and gradient saliency (``"gradient"``), each patch's
    value given to its token; Kendall τ is taken over the patch tokens (special tokens left out), at
    the ``[CLS]`` row, as for a text classifier (Jain & Wallace 2019, on patches).

    >>> frag = image_fragmentation(headscope.inspect("headscope/shapes-vit", "shape.png"))   # doctest: +SKIP
    >>> frag.tau_with("loo")                                                               # doctest: +SKIP
    """
    from .saliency import saliency_maps

    positions = token_positions(insp)

    def on_tokens(grid: GridMap) -> np.ndarray:
        return np.array([0.0 if p is None else float(grid.values[p]) for p in positions])

    references = {"gradient": on_tokens(saliency_maps([insp], "gradient")[0]),
                  "loo": on_tokens(leave_one_patch_out(insp, fill))}
    return fragmentation(insp, faithful=False, references=references)
