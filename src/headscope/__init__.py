"""headscope: open up transformer attention and measure how far each map can be trusted.

Three claims kept apart and measured: **alignment** (do the weights mark real input/output
correspondences?), **plausibility** (do they look right to a person?) and **faithfulness**
(did those inputs drive the output?).

>>> import headscope
>>> insp = headscope.inspect("A man in a red shirt.")      # doctest: +SKIP
>>> print(insp.summary())                                   # doctest: +SKIP
"""

from __future__ import annotations

from .capture import AttentionCapture, Site, run_capture
from .errors import (
    GoldFormatError,
    HeadscopeError,
    InputError,
    ModelNotFoundError,
    ShapeError,
    UnsupportedModelError,
)
from .inspection import Inspection, inspect
from .models import DEFAULT_MODEL, LoadedModel, build_tiny, list_models, load

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
    "ShapeError",
    "Site",
    "UnsupportedModelError",
    "build_tiny",
    "inspect",
    "list_models",
    "load",
    "run_capture",
]
