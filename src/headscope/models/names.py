"""What a model name refers to, decided without torch: a shipped model, a folder, or a hub name.

:func:`check_name` fails at once, with one line, on a name that cannot be loaded here (an
unknown shipped name, a folder without a config or tokenizer, a hub name while offline or with
the hub unreachable). :func:`headscope.models.load` calls it before importing the model stack, and
the command line calls it before anything heavy is imported, so such a mistake costs well under a
second.

>>> check_name("headscope/en-fr")
>>> check_name("headscope/en-de")
Traceback (most recent call last):
...
headscope.errors.ModelNotFoundError: unknown shipped model 'headscope/en-de'; the shipped models are ...
"""

from __future__ import annotations

import difflib
import os
import socket
from pathlib import Path
from urllib.parse import urlparse

from ..errors import ModelNotFoundError

SHIPPED_PREFIX = "headscope/"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "vocab.json", "spiece.model",
                   "sentencepiece.bpe.model", "source.spm", "tokenizer.model")
PROCESSOR_FILES = ("preprocessor_config.json",)  # image models: the image processor instead of a tokenizer


def is_shipped(name: str) -> bool:
    """Whether ``name`` asks for a shipped model (``headscope/...`` that is not a local folder)."""
    return name.startswith(SHIPPED_PREFIX) and not os.path.isdir(name)


def check_name(name: str) -> None:
    """Raise :class:`~headscope.errors.ModelNotFoundError` unless ``name`` can be loaded here.

    Parameters
    ----------
    name
        A shipped name (``headscope/en-fr``), a folder written by ``save_pretrained`` or a
        Hugging Face hub name (``org/name``). Hub names are accepted when cached, or when the hub
        answers within 2 s (no retry loop); ``HF_HUB_OFFLINE`` is respected.
    """
    if is_shipped(name):
        known = shipped_names()
        if name not in known:
            raise ModelNotFoundError(f"unknown shipped model {name!r}; the shipped models are {known} "
                                     "(`headscope models` lists them)")
    elif os.path.isdir(name):
        _check_folder(Path(name))
    else:
        _check_hub_name(name)


def shipped_names() -> list[str]:
    """The names of the models shipped inside headscope."""
    from .shipped import list_shipped

    return [m.name for m in list_shipped()]


def _check_folder(folder: Path) -> None:
    if not (folder / "config.json").is_file():
        raise ModelNotFoundError(f"{folder} has no config.json; pass a folder written by save_pretrained")
    if not any((folder / f).is_file() for f in TOKENIZER_FILES + PROCESSOR_FILES):
        raise ModelNotFoundError(
            f"{folder} has no tokenizer files (none of {', '.join(TOKENIZER_FILES[:3])}, ...); save the tokenizer "
            "next to the model (tokenizer.save_pretrained(folder)) or pass a (model, tokenizer) pair")


def _check_hub_name(name: str) -> None:
    """Fail at once, with one line, when a hub name cannot be fetched (offline, or hub unreachable)."""
    from huggingface_hub import constants, try_to_load_from_cache
    from huggingface_hub.errors import HFValidationError

    if os.path.isabs(name) or name.startswith(".") or os.path.exists(name):
        raise ModelNotFoundError(f"{name!r} is not a folder; pass a folder written by save_pretrained, a hub name "
                                 "or a shipped model (`headscope models` lists them)")
    try:
        if isinstance(try_to_load_from_cache(name, "config.json"), str):
            return  # in the local cache: transformers loads it without the network
    except HFValidationError:
        raise ModelNotFoundError(f"{name!r} is neither a folder, a shipped model nor a valid Hugging Face hub name "
                                 "('org/name'); `headscope models` lists the shipped models") from None
    names = shipped_names()
    close = difflib.get_close_matches(name, [*names, *[n.split("/")[-1] for n in names]], n=1)
    hint = f" Did you mean {'headscope/' + close[0].split('/')[-1]!r}?" if close else ""
    fix = (f"load a shipped model ({', '.join(names)}) or a local folder written by save_pretrained "
           "(headscope.inspect('path/to/folder', text))")
    if constants.HF_HUB_OFFLINE:
        raise ModelNotFoundError(f"{name!r} is not a shipped model, a local folder or in the Hugging Face cache, "
                                 f"and HF_HUB_OFFLINE is set.{hint} Fix: {fix}")
    endpoint = urlparse(constants.ENDPOINT)
    try:
        socket.create_connection((endpoint.hostname, endpoint.port or 443), timeout=2).close()
    except OSError:
        raise ModelNotFoundError(f"{name!r} is not a shipped model or a local folder, and the Hugging Face hub "
                                 f"({endpoint.hostname}) cannot be reached from here.{hint} Fix: {fix}") from None
