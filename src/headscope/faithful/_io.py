"""Saving result folders atomically, and reading them back with their format checked.

A folder is written under a temporary name beside its destination and renamed into place
(:mod:`headscope.storage`), so an interrupted save leaves either the old complete folder or the new one. Each folder's main JSON
file carries a ``"format"`` version that :func:`read_json` checks.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .. import storage
from ..errors import InputError


def save_folder(path: str | os.PathLike, files: dict[str, str], what: str = "result") -> Path:
    """Write ``files`` (name -> text) as the folder ``path``, replacing any folder there atomically.

    The first file is the folder's main file: an existing ``path`` is replaced only when it holds
    that file (a saved result of this kind) or is empty, never an unrelated folder
    (:func:`headscope.storage.write_folder`).

    >>> save_folder(tmp / "result", {"result.json": "{}"}).name       # doctest: +SKIP
    'result'
    """
    return storage.write_folder(path, files, marker=next(iter(files)), what=what)


def dump_json(data: dict[str, Any], version: int) -> str:
    """``data`` as JSON text with ``"format": version`` first (NaN kept as ``NaN``)."""
    return json.dumps({"format": version, **data}, ensure_ascii=False, indent=1)


def read_json(path: str | os.PathLike, name: str, what: str, version: int) -> dict[str, Any]:
    """The JSON file ``name`` of folder ``path``, checked to be format ``version`` of ``what``.

    Raises :class:`~headscope.errors.InputError` naming the file and the problem otherwise.
    """
    file = Path(path) / name
    if not file.is_file():
        raise InputError(f"{Path(path)} is not a saved {what} (it needs {name}); pass a folder written by its save()")
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as err:
        raise InputError(f"{file}: unreadable {what} ({err}); save it again") from None
    if not isinstance(data, dict):
        raise InputError(f"{file}: not a saved {what} (no JSON object); save it again")
    storage.check_format(data.pop("format", None), (version,), file, what)
    return data
