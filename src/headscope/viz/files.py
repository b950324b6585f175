"""Atomic file writes for everything viz saves (pages, figures).

A view is written to a temporary file in the destination's folder and renamed into place, so a
reader never sees half a page and a failed write leaves an existing file untouched.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

__all__ = ["write_atomic"]


def write_atomic(path: str | os.PathLike[str], data: str | bytes) -> Path:
    """Write ``data`` to ``path`` atomically and return the path.

    Parameters
    ----------
    path
        The destination file; its folder is created when missing.
    data
        Text (written as UTF-8) or bytes.

    Returns
    -------
    Path
        ``path`` as a :class:`~pathlib.Path`.

    Notes
    -----
    The data goes to a hidden temporary file beside ``path`` which :func:`os.replace` then
    renames over ``path`` (atomic on POSIX and Windows within one file system); the file gets
    the mode an ordinary ``open(path, "w")`` would give. On any error the temporary file is
    removed and the error propagates.
    """
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    tmp = out.with_name(f".{out.name}.{uuid.uuid4().hex}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)  # mode less umask
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)  # gone after the rename; removes the leftover of a failed write
    return out
