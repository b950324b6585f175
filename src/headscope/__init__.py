"""headscope: open up transformer attention and measure how far each map can be trusted.

Three claims kept apart and measured: **alignment** (do the weights mark real input/output
correspondences?), **plausibility** (do they look right to a person?) and **faithfulness**
(did those inputs drive the output?).

Importing headscope is cheap: torch, transformers and the readings are imported on first use.

>>> import headscope
>>> insp = headscope.inspect("A man in a red shirt.")      # doctest: +SKIP
>>> print(insp.summary())                                   # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import Any

from .errors import (
    GoldFormatError,
    HeadscopeError,
    InputError,
    ModelNotFoundError,
    NotApplicableError,
    ShapeError,
    UnsupportedModelError,
)

__version__ = "0.2.0"

# public name -> module that defines it (imported on first access, PEP 562)
_LAZY = {
    "inspect": "headscope.run",
    "Inspection": "headscope.inspection",
    "AttentionCapture": "headscope.capture",
    "run_capture": "headscope.capture",
    "DEFAULT_MODEL": "headscope.models",
    "LoadedModel": "headscope.models",
    "ModelStructure": "headscope.models",
    "build_tiny": "headscope.models",
    "describe": "headscope.models",
    "list_models": "headscope.models",
    "load": "headscope.models",
    "Site": "headscope.readings",
    "Reading": "headscope.readings",
    "Head": "headscope.readings",
    "LayerMean": "headscope.readings",
    "HeadsMean": "headscope.readings",
    "Rollout": "headscope.readings",
    "Flow": "headscope.readings",
    "Norm": "headscope.readings",
    "Alti": "headscope.readings",
    "ValueZeroing": "headscope.readings",
    "GradRollout": "headscope.readings",
    "parse_reading": "headscope.readings",
    "attention_graph": "headscope.aggregate",
    "encoder_decoder_rollout": "headscope.aggregate",
    "flow": "headscope.aggregate",
    "reading_map": "headscope.aggregate",
    "rollout": "headscope.aggregate",
    "list_methods": "headscope.faithful",
    "fragmentation": "headscope.fragment",
}
_SUBPACKAGES = ("aggregate", "align", "capture", "distributed", "faithful", "fragment", "mixing", "models", "readings",
                "vision", "viz")


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    if name in _SUBPACKAGES:
        return importlib.import_module(f"headscope.{name}")
    raise AttributeError(f"module 'headscope' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY, *_SUBPACKAGES})


__all__ = [
    "GoldFormatError",
    "HeadscopeError",
    "InputError",
    "ModelNotFoundError",
    "NotApplicableError",
    "ShapeError",
    "UnsupportedModelError",
    *sorted(_LAZY),
    *_SUBPACKAGES,
]
