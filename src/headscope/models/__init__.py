"""Loading models (shipped names, folders, hub names, loaded pairs) and building tiny ones."""

from __future__ import annotations

from .architectures import ARCHITECTURES, Architecture, architecture_named, architecture_of
from .loading import DEFAULT_MODEL, LoadedModel, load
from .structure import AttentionSite, ModelStructure, describe
from .tiny import FAMILIES, build_tiny


def list_models() -> list:
    """The models shipped inside headscope (name, task, size, data, measured quality)."""
    from .shipped import list_shipped

    return list_shipped()


__all__ = ["ARCHITECTURES", "DEFAULT_MODEL", "FAMILIES", "Architecture", "AttentionSite", "LoadedModel",
           "ModelStructure", "architecture_named", "architecture_of", "build_tiny", "describe", "list_models", "load"]
