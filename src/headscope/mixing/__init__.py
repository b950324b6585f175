"""Readings beyond the raw attention weights (issue 16), computed when asked for.

* :mod:`~headscope.mixing.norm` - norm-based attention ``||alpha f(x)||`` (Kobayashi et al. 2020),
  per head and per layer: ``cross.2.3.norm``, ``cross.2.norm``;
* :mod:`~headscope.mixing.alti` - ALTI token contributions through attention, residual and layer norm
  (Ferrando et al. 2022), per layer and rolled; ALTI+ for encoder-decoders (``cross.alti`` source,
  ``decoder.alti`` target contributions): ``encoder.2.alti``, ``encoder.alti``;
* :mod:`~headscope.mixing.value_zeroing` - value zeroing (Mohebbi et al. 2023), per layer and rolled:
  ``encoder.2.valuezeroing``, ``encoder.valuezeroing``;
* :mod:`~headscope.mixing.grad_rollout` - gradient-weighted attention rollout (Chefer, Gur & Wolf 2021):
  ``cross.gradrollout``.

``headscope.inspect(model, text, readings=["norm", "alti", "valuezeroing", "gradrollout"])`` computes
them beside the maps and keeps them in ``Inspection.mixing`` (saved and loaded with it), where
:func:`headscope.aggregate.reading_map` and :func:`~headscope.aggregate.map_readings` find them.
The model is left exactly as it was.
"""

from __future__ import annotations

from .alti import alti_plus, block_parts, contributions
from .compute import check_methods, compute_mixing
from .families import FAMILIES, block_of
from .grad_rollout import (
           encoder_decoder_rules,
           grad_rollout_maps,
           self_rules,
           weighted_heads,
)
from .norm import norm_maps, transformed_values
from .split import ContributionSplit, source_target_split
from .value_zeroing import value_zeroing_maps

__all__ = ["FAMILIES", "ContributionSplit", "alti_plus", "block_of", "block_parts", "check_methods",
           "compute_mixing", "contributions", "encoder_decoder_rules", "grad_rollout_maps", "norm_maps",
           "self_rules", "source_target_split", "transformed_values", "value_zeroing_maps", "weighted_heads"]
