"""Gradient saliency of an image classifier's decision, summed over each patch.

Two classic pixel attributions of the predicted class's logit, pooled onto the patch grid so that
they are scored like the attention readings:

* ``"gradient"``: the largest absolute gradient over the colour channels at each pixel
  (Simonyan, Vedaldi & Zisserman 2014);
* ``"grad_x_input"``: the absolute sum over channels of gradient times input (the input measured
  from the processor's mean colour, which the normalisation maps to 0).

>>> saliency_maps([insp], "gradient")[0].values.shape                 # doctest: +SKIP
(6, 6)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ..errors import InputError, NotApplicableError
from ..inspection import Inspection
from .maps import GridMap, patch_values, require_grid

SALIENCY = {"gradient": "gradient saliency", "grad_x_input": "gradient x input"}


def predicted_class(insp: Inspection) -> int:
    """The class index of the inspection's predicted label."""
    label = insp.prediction.get("label")
    names = list(insp.prediction.get("probabilities", {}))
    if label is None or label not in names:
        raise NotApplicableError(f"{insp.model_name}: the inspection has no predicted label (a model without a "
                                 "classification head?)")
    return names.index(label)


def model_of(insp: Inspection):
    """The model an image inspection came from (``insp.loaded``)."""
    if insp.loaded is None:
        raise InputError("this inspection has no model attached (it was loaded from disk); inspect the image again "
                         "with headscope.inspect(model, image) to re-run the model")
    if insp.pixel_values is None:
        raise NotApplicableError(f"{insp.model_name}: not an image inspection (no pixel values)")
    return insp.loaded.model


def pool_patches(pixel_map: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """Sum a ``[..., H, W]`` pixel map over each patch: ``[..., rows, cols]`` (pixels past the last whole
    patch, which the patch embedding drops, are dropped too)."""
    rows, cols = grid
    h, w = pixel_map.shape[-2] // rows, pixel_map.shape[-1] // cols
    cut = pixel_map[..., : rows * h, : cols * w]
    return cut.reshape(*cut.shape[:-2], rows, h, cols, w).sum((-3, -1))


def saliency_maps(inspections: Sequence[Inspection], method: str = "gradient", batch_size: int = 32) -> list[GridMap]:
    """The ``method`` saliency of each inspection's predicted class, on its patch grid (each map sums to 1)."""
    if method not in SALIENCY:
        raise InputError(f"saliency method {method!r}; known: {sorted(SALIENCY)}")
    out: list[GridMap] = []
    for start in range(0, len(inspections), batch_size):
        chunk = list(inspections[start:start + batch_size])
        model = model_of(chunk[0])
        grid = require_grid(chunk[0])
        param = next(model.parameters())
        x = torch.stack([i.pixel_values for i in chunk]).to(param.device, param.dtype).requires_grad_(True)
        targets = torch.tensor([predicted_class(i) for i in chunk], device=param.device)
        with torch.enable_grad():
            logits = model(pixel_values=x).logits
            (grad,) = torch.autograd.grad(logits.gather(1, targets[:, None]).sum(), x)
        if method == "gradient":
            pixel = grad.abs().amax(1)
        else:
            pixel = (grad * x.detach()).sum(1).abs()
        pooled = pool_patches(pixel.float(), grid).double().cpu().numpy()
        for insp, values in zip(chunk, pooled):
            total = values.sum()
            values = values / total if total > 0 else np.full_like(values, 1 / values.size)
            out.append(patch_values(values, insp, method, SALIENCY[method]))
    return out
