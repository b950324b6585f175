"""Loading models (shipped names, folders, hub names, loaded pairs) and building tiny ones.

Names are imported on first use (PEP 562), so that listing the shipped models
(:func:`list_models`) needs neither torch nor transformers.
"""

from __future__ import annotations

import importlib
from typing import Any

DEFAULT_MODEL = "headscope/en-fr"

_LAZY = {
    "ARCHITECTURES": ".architectures", "Architecture": ".architectures", "architecture_named": ".architectures",
    "architecture_of": ".architectures", "LoadedModel": ".loading", "load": ".loading",
    "AttentionSite": ".structure", "ModelStructure": ".structure", "describe": ".structure",
    "FAMILIES": ".tiny", "build_tiny": ".tiny",
}


def list_models() -> list:
    """The models shipped inside headscope (name, task, size, data, measured quality).

    >>> "headscope/en-fr" in [m.name for m in list_models()]
    True
    """
    from .shipped import list_shipped

    return list_shipped()


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__all__ = ["ARCHITECTURES", "DEFAULT_MODEL", "FAMILIES", "Architecture", "AttentionSite", "LoadedModel",
           "ModelStructure", "architecture_named", "architecture_of", "build_tiny", "describe", "list_models", "load"]
