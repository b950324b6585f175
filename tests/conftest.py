"""Shared fixtures: tiny random models of every family (built offline from configs)."""

from __future__ import annotations

import os

# The hub is unreachable here: fail fast instead of retrying for half a minute per unknown name.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest
import torch

from headscope.models.tiny import build_tiny

TEXTS = ["A man in a red shirt.", "Two dogs are playing in the snow near a wooden fence."]
TARGETS = ["Un homme en chemise rouge.", "Deux chiens jouent dans la neige près d'une clôture en bois."]


@pytest.fixture(scope="session")
def tiny():
    """``tiny(family, **kw)`` -> (model, tokenizer), cached per arguments."""
    cache: dict = {}

    def get(family: str, **kw):
        key = (family, tuple(sorted(kw.items())))
        if key not in cache:
            cache[key] = build_tiny(family, **kw)
        return cache[key]

    return get


# Tiny-model forwards are dominated by thread synchronisation on 2 cores: one thread is faster.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
