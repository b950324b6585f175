"""Saving result folders atomically, and reading them back with their format checked.

A folder is written under a temporary name beside its destination and renamed into place, so an
interrupted save leaves either the old complete folder or the new one. Each folder's main JSON
file carries a ``"format"`` version that :func:`read_json` checks.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from ..errors import InputError


def save_folder(path: str | os.PathLike, files: dict[str, str]) -> Path:
    """Write ``files`` (name -> text) as the folder ``path``, replacing any folder there atomically.

    >>> save_folder(tmp / "result", {"result.json": "{}"}).name       # doctest: +SKIP
    'result'
    """
    folder = Path(path)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        for name, text in files.items():
            (staging / name).write_text(text, encoding="utf-8", newline="")
        if folder.exists():
            old = staging.with_name(staging.name + ".old")
            folder.rename(old)
            staging.rename(folder)
            shutil.rmtree(old, ignore_errors=True)
        else:
            staging.rename(folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder


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
    found = data.pop("format", None) if isinstance(data, dict) else None
    if found != version:
        raise InputError(f"{file}: format {found!r} is not one this headscope reads ({version}); save the {what} "
                         "again with this version")
    return data
