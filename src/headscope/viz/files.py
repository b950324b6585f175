"""Atomic file writes for everything viz saves (pages, figures).

A view is written to a temporary file in the destination's folder and renamed into place, so a
reader never sees half a page and a failed write leaves an existing file untouched.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from ..errors import InputError

__all__ = ["check_destination", "write_atomic"]


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


def check_destination(out: Path, given: str | os.PathLike[str] | None = None) -> None:
    """Refuse, with an :class:`~headscope.errors.InputError` naming the path and the fix, to write the
    file ``out`` where that cannot work: ``out`` is a folder, or a folder on its way is a file.

    ``given`` is the path as the caller passed it (named in the message when it differs from ``out``).

    >>> check_destination(Path("/tmp/report.html"))
    """
    shown = f"{out} (from {given})" if given is not None and Path(given) != out else str(out)
    if out.is_dir():
        raise InputError(f"cannot write {shown}: it is a folder; give a file name ending in .html, or a folder "
                         "that does not hold a folder named like the file")
    for parent in out.parents:
        if parent.exists():
            if not parent.is_dir():
                hint = (" (a path not ending in .html is a folder that gets report.html)"
                        if given is not None and Path(given) == parent else "")
                raise InputError(f"cannot write {shown}: {parent} is a file, not a folder{hint}; give a new "
                                 ".html file name or a folder")
            break
