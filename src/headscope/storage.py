"""Files headscope writes: whole folders and single files put in place atomically, format versions checked.

Every result folder (an inspection, an alignment report, a faithfulness report, a fragmentation)
is written in full into a hidden staging folder beside its destination and only then renamed
into place, so a process killed at any moment leaves either the old complete folder or the new
complete one at the destination, never a mix:

* on Linux an existing destination is swapped with the staging folder in one system call
  (``renameat2(RENAME_EXCHANGE)``), then the old contents are removed;
* elsewhere (or on a file system without that call) the old folder is renamed aside and the new
  one renamed in: for the instant between the two renames the destination is absent, never mixed.

Staging folders are named ``.<name>.headscope-<pid>-<random>``; one left behind by a killed
process (its pid no longer runs) is removed by the next save beside it.

Each saved folder carries a format version in its main JSON file; :func:`check_format` refuses
one this headscope does not read, naming the file and what to do.

>>> import tempfile, pathlib
>>> out = pathlib.Path(tempfile.mkdtemp()) / "result"
>>> write_folder(out, {"result.json": '{"format": 1}'}, marker="result.json", what="result").name
'result'
>>> write_folder(out, {"result.json": '{"format": 1}', "rows.csv": "a\\n"}, marker="result.json",
...              what="result") and sorted(p.name for p in out.iterdir())
['result.json', 'rows.csv']
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import secrets
import shutil
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from .errors import InputError

__all__ = ["check_format", "replace_folder", "staging_folder", "write_file", "write_folder"]

_TAG = "headscope"


# ---- single files ------------------------------------------------------------------------------

def write_file(path: str | os.PathLike, data: str | bytes) -> Path:
    """Write ``data`` (text as UTF-8, or bytes) to ``path`` atomically: a temporary file beside it,
    then :func:`os.replace`. A kill leaves the old file or the new one (and at most a hidden
    ``.<name>.headscope-<pid>-*`` leftover, removed by the next write beside it)."""
    out = Path(path)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    tmp = out.with_name(_staging_name(out.name))
    try:
        with open(tmp, "xb") as f:
            f.write(payload)
        os.replace(tmp, out)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return out


# ---- whole folders -----------------------------------------------------------------------------

def _staging_name(name: str) -> str:
    return f".{name}.{_TAG}-{os.getpid()}-{secrets.token_hex(4)}"


def _sweep(folder: Path) -> None:
    """Remove staging leftovers of ``folder`` whose process is gone (POSIX only: a pid can be probed)."""
    if os.name != "posix" or not folder.parent.is_dir():
        return
    prefix = f".{folder.name}.{_TAG}-"
    for p in folder.parent.iterdir():
        if not p.name.startswith(prefix):
            continue
        pid_text = p.name[len(prefix):].split("-", 1)[0]
        if not pid_text.isdigit() or int(pid_text) == os.getpid() or _alive(int(pid_text)):
            continue
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                p.unlink()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: it runs, as another user
        return True
    return True


@contextlib.contextmanager
def staging_folder(folder: str | os.PathLike) -> Iterator[Path]:
    """An empty hidden folder beside ``folder`` to write into; removed on exit (after a
    :func:`replace_folder` it holds the old contents, removed too)."""
    dest = Path(folder)
    dest.parent.mkdir(parents=True, exist_ok=True)
    _sweep(dest)
    staging = dest.parent / _staging_name(dest.name)
    staging.mkdir()
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Swap two existing paths in one step (Linux ``renameat2``); ``False`` where that is unavailable."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    errno = ctypes.get_errno()
    if errno in (22, 38, 95):  # EINVAL, ENOSYS, EOPNOTSUPP: this file system cannot exchange
        return False
    raise OSError(errno, os.strerror(errno), str(b))


def replace_folder(staging: Path, folder: Path) -> None:
    """Put the complete ``staging`` folder at ``folder``; an existing ``folder`` ends up in ``staging``.

    Atomic where the system can exchange two paths (Linux); elsewhere ``folder`` is absent for the
    instant between two renames, and never half-written.
    """
    if folder.exists() or folder.is_symlink():
        if _exchange(staging, folder):
            return
        old = staging.with_name(staging.name + ".old")
        folder.rename(old)
        staging.rename(folder)
        old.rename(staging)  # removed with the staging folder
    else:
        staging.rename(folder)


def write_folder(path: str | os.PathLike, files: Mapping[str, str | bytes], *, marker: str, what: str) -> Path:
    """Write ``files`` (name -> text or bytes) as folder ``path``, atomically.

    An existing ``path`` is replaced only when it is empty or a saved ``what`` (it holds
    ``marker``), so a save never deletes an unrelated folder; otherwise
    :class:`~headscope.errors.InputError` names the folder and the fix.
    """
    folder = Path(path)
    check_destination(folder, marker=marker, what=what)
    with staging_folder(folder) as staging:
        for name, data in files.items():
            if isinstance(data, bytes):
                (staging / name).write_bytes(data)
            else:
                (staging / name).write_text(data, encoding="utf-8", newline="")
        replace_folder(staging, folder)
    return folder


def check_destination(folder: Path, *, marker: str, what: str) -> None:
    """Refuse to save a ``what`` at ``folder`` when that is a file, or a folder other than an empty one
    or a saved ``what`` (holding ``marker``)."""
    for parent in [folder, *folder.parents]:
        if parent.exists() and not parent.is_dir():
            where = "is a file" if parent == folder else f"is inside {parent}, which is a file"
            raise InputError(f"cannot save the {what} to {folder}: it {where}; give a folder path "
                             "(a new folder, or one this kind of result was saved to before)")
        if parent.exists():
            break
    if folder.is_dir() and any(folder.iterdir()) and not (folder / marker).is_file():
        raise InputError(f"cannot save the {what} to {folder}: it exists and is not a saved {what} (no {marker}), "
                         "and saving replaces the whole folder; give a new or empty folder")


# ---- format versions -----------------------------------------------------------------------------

def check_format(found: Any, readable: tuple[int, ...], file: str | os.PathLike, what: str) -> int:
    """``found`` if it is one of the ``readable`` format versions, else an InputError naming ``file``.

    >>> check_format(2, (1, 2), "x/report.json", "alignment report")
    2
    """
    if isinstance(found, int) and not isinstance(found, bool) and found in readable:
        return found
    newest = max(readable)
    later = isinstance(found, int) and not isinstance(found, bool) and found > newest
    fix = ("it was written by a newer headscope: upgrade headscope to read it" if later
           else f"compute and save the {what} again with this headscope")
    versions = ", ".join(map(str, readable))
    raise InputError(f"{file}: format {found!r} is not one this headscope reads ({versions}); {fix}")
