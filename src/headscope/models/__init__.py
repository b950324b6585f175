"""Loading models (shipped names, folders, hub names, loaded pairs) and building tiny ones."""

from __future__ import annotations

from .loading import DEFAULT_MODEL, LoadedModel, load
from .tiny import FAMILIES, build_tiny


def list_models() -> list:
    """The models shipped inside headscope (name, task, size, data, measured quality)."""
    from .shipped import list_shipped

    return list_shipped()


__all__ = ["DEFAULT_MODEL", "FAMILIES", "LoadedModel", "build_tiny", "list_models", "load"]
