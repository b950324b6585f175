"""headscope: open up transformer attention and measure how far each map can be trusted.

Three claims kept apart and measured: **alignment** (do the weights mark real input/output
correspondences?), **plausibility** (do they look right to a person?) and **faithfulness**
(did those inputs drive the output?).

>>> import headscope
>>> insp = headscope.inspect("A man in a red shirt.")      # doctest: +SKIP
>>> print(insp.summary())                                   # doctest: +SKIP
"""

from __future__ import annotations

from . import aggregate, align, faithful, fragment
from .aggregate import attention_graph, encoder_decoder_rollout, flow, reading_map, rollout
from .capture import AttentionCapture, run_capture
from .errors import (
    GoldFormatError,
    HeadscopeError,
    InputError,
    ModelNotFoundError,
    NotApplicableError,
    ShapeError,
    UnsupportedModelError,
)
from .faithful import list_methods
from .fragment import fragmentation
from .inspection import Inspection
from .models import DEFAULT_MODEL, LoadedModel, ModelStructure, build_tiny, describe, list_models, load
from .readings import Flow, Head, HeadsMean, LayerMean, Reading, Rollout, Site, parse_reading
from .run import inspect

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_MODEL",
    "AttentionCapture",
    "GoldFormatError",
    "HeadscopeError",
    "InputError",
    "Inspection",
    "LoadedModel",
    "ModelNotFoundError",
    "NotApplicableError",
    "ShapeError",
    "Site",
    "UnsupportedModelError",
    "aggregate",
    "align",
    "attention_graph",
    "build_tiny",
    "encoder_decoder_rollout",
    "faithful",
    "flow",
    "fragment",
    "fragmentation",
    "inspect",
    "list_methods",
    "list_models",
    "load",
    "rollout",
    "run_capture",
]
