"""Resumable corpus runs: finished pieces of a long run kept in a work folder, so a killed run continues.

A run over a data set (``headscope align`` over a gold set, ``headscope faithful`` over a file of
texts) cuts its work into numbered pieces (batches of sentences, chunks of texts). With a work
folder, every finished piece is written there at once (atomically: a piece file is there whole
or not at all), next to ``manifest.json``, which records exactly what the run computes: the model
(name and a fingerprint of its weights), the data (a fingerprint of its contents), every option
that changes a number, and the headscope version. Running the same thing again with the same
folder skips the pieces already there and computes the rest, so the result is identical to a
run that was never interrupted; a run with other options, data or model is refused (its pieces
would not belong together). A lock keeps two processes from using one folder at once.

>>> work = WorkFolder.open(tmp / "run.partial", {"what": "demo", "batch_size": 4}, total=3)  # doctest: +SKIP
>>> work.done(0) or work.save(0, b"...")                                                     # doctest: +SKIP
>>> work.close()  # (or remove() once the result is saved elsewhere)                        # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from .errors import InputError
from .storage import write_file

__all__ = ["WorkFolder", "fingerprint", "model_fingerprint", "progress", "result_contents"]

MANIFEST = "manifest.json"
_LOCK = ".lock"
FORMAT = 1


def fingerprint(data: Any) -> str:
    """A short stable hash of JSON-able ``data`` (lists, dicts, strings, numbers).

    >>> fingerprint({"a": [1, 2]}) == fingerprint({"a": [1, 2]}) != fingerprint({"a": [2, 1]})
    True
    """
    text = json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:20]


def model_fingerprint(model: Any, sample: int = 4096) -> str:
    """A short hash of a torch module's weights: every tensor's name, shape and dtype, and ``sample``
    evenly spaced values of each (cheap for large models; any retraining changes it)."""
    h = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        flat = tensor.detach().reshape(-1)
        step = max(1, flat.numel() // sample)
        h.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype};".encode())
        if flat.numel() and not flat.is_meta:
            h.update(flat[::step].float().cpu().numpy().tobytes())
    return h.hexdigest()[:20]


def _version() -> str:
    from headscope import __version__

    return __version__


class WorkFolder:
    """The finished pieces of one run; see the module docstring. Make one with :meth:`open`."""

    def __init__(self, path: Path, manifest: dict[str, Any], total: int, lock: Any) -> None:
        self.path = path
        self.manifest = manifest
        self.total = total
        self._lock = lock

    # ---- opening -----------------------------------------------------------------------------
    @classmethod
    def open(cls, path: str | os.PathLike, options: dict[str, Any], *, total: int, command: str = "") -> "WorkFolder":
        """Open (or start) the work folder ``path`` of a run with ``options`` cut into ``total`` pieces.

        ``options`` must hold everything that changes the result (JSON-able). An existing folder
        made with other options is refused with an :class:`~headscope.errors.InputError` naming the
        differences; ``command`` (e.g. ``"headscope align ..."``) is recorded for the reader.
        """
        folder = Path(path)
        if folder.exists() and not folder.is_dir():
            raise InputError(f"work folder {folder} is a file; remove it or give another output path")
        manifest = {"format": FORMAT, "headscope": _version(), "total": total, "options": options}
        file = folder / MANIFEST
        if folder.is_dir() and any(p.name != _LOCK for p in folder.iterdir()) and not file.is_file():
            raise InputError(f"{folder} exists but is not a headscope work folder (no {MANIFEST}); it would be "
                             "used to keep the pieces of this run: move it away or give another output path")
        folder.mkdir(parents=True, exist_ok=True)
        lock = _lock(folder)
        try:
            if file.is_file():
                _check_same(folder, file, manifest)
            else:
                write_file(file, json.dumps({**manifest, "command": command}, indent=1, ensure_ascii=False))
            for p in folder.iterdir():  # leftovers of a killed piece write
                if p.name.startswith(".") and p.name != _LOCK and ".headscope-" in p.name:
                    with contextlib.suppress(OSError):
                        p.unlink()
        except BaseException:
            _unlock(lock)
            raise
        return cls(folder, manifest, total, lock)

    @classmethod
    def join(cls, path: str | os.PathLike, options: dict[str, Any], *, total: int) -> "WorkFolder":
        """Use the folder ``path`` that another process of the same launched run has opened (and
        locked) with the same ``options`` (see :func:`headscope.distributed.open_work`): no lock is
        taken; a folder with another manifest is refused like :meth:`open` refuses it."""
        folder = Path(path)
        manifest = {"format": FORMAT, "headscope": _version(), "total": total, "options": options}
        _check_same(folder, folder / MANIFEST, manifest)
        return cls(folder, manifest, total, None)

    # ---- pieces ------------------------------------------------------------------------------
    def piece_path(self, index: int, suffix: str) -> Path:
        """The file of piece ``index`` (``piece-000012.<suffix>``)."""
        return self.path / f"piece-{index:06d}.{suffix}"

    def done(self, index: int, suffix: str) -> bool:
        """Whether piece ``index`` is saved."""
        return self.piece_path(index, suffix).is_file()

    def save(self, index: int, suffix: str, data: str | bytes) -> None:
        """Save piece ``index`` atomically."""
        write_file(self.piece_path(index, suffix), data)

    def read(self, index: int, suffix: str) -> bytes:
        """The bytes of piece ``index``."""
        return self.piece_path(index, suffix).read_bytes()

    def count(self) -> int:
        """Saved pieces."""
        return sum(1 for p in self.path.glob("piece-*") if p.is_file())

    def damaged(self, index: int, suffix: str, reason: str) -> InputError:
        """The error for a piece that cannot be read (it is removed, so a re-run recomputes it)."""
        file = self.piece_path(index, suffix)
        with contextlib.suppress(OSError):
            file.unlink()
        return InputError(f"{file}: a saved piece of this run cannot be read ({reason}); it was removed: run the "
                          "same command again to recompute it")

    # ---- closing -----------------------------------------------------------------------------
    def close(self) -> None:
        """Release the folder (its pieces stay)."""
        _unlock(self._lock)
        self._lock = None

    def remove(self) -> None:
        """Release and delete the folder (once the finished result is saved elsewhere)."""
        self.close()
        shutil.rmtree(self.path, ignore_errors=True)

    def __enter__(self) -> "WorkFolder":
        return self

    def __exit__(self, *exc: object) -> None:
        if self._lock is not None:
            self.close()


def progress(path: str | os.PathLike) -> tuple[int, int] | None:
    """``(saved pieces, total pieces)`` of the work folder ``path``, or ``None`` if there is none."""
    folder = Path(path)
    try:
        total = int(json.loads((folder / MANIFEST).read_text(encoding="utf-8"))["total"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return sum(1 for p in folder.glob("piece-*") if p.is_file()), total


def _check_same(folder: Path, file: Path, manifest: dict[str, Any]) -> None:
    try:
        saved = json.loads(file.read_text(encoding="utf-8"))
        saved.pop("command", None)
    except (OSError, ValueError) as err:
        raise InputError(f"{file}: unreadable manifest ({err}); delete {folder} to start the run over") from None
    if saved == manifest:
        return
    diffs = _differences(saved, manifest)
    raise InputError(f"{folder} holds an interrupted run with other settings ({'; '.join(diffs[:4])}); its saved "
                     f"pieces would not match this run. Run the same command as before to continue it, or delete "
                     f"{folder} to start over")


def _differences(saved: Any, now: Any, where: str = "") -> list[str]:
    if isinstance(saved, dict) and isinstance(now, dict):
        out = []
        for key in [*saved, *(k for k in now if k not in saved)]:
            name = key if where in ("", "options") else f"{where}.{key}"
            out += _differences(saved.get(key, "(none)"), now.get(key, "(none)"), name)
        return out
    if saved == now:
        return []
    return [f"{where or 'manifest'}: {_short(saved)} there, {_short(now)} now"]


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 40 else text[:37] + "..."


def _lock(folder: Path) -> Any:
    """Hold an exclusive lock on ``folder`` (released by the system if the process dies)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no lock
        return None
    handle = open(folder / _LOCK, "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise InputError(f"{folder} is in use by another running headscope process; wait for it to finish "
                         "(or stop it) before running the same command again") from None
    return handle


def _unlock(handle: Any) -> None:
    if handle is not None:
        with contextlib.suppress(OSError):
            handle.close()


def iter_pieces(total: int, size: int) -> Iterable[tuple[int, int, int]]:
    """``(index, start, stop)`` of the pieces of ``total`` items cut ``size`` at a time.

    >>> list(iter_pieces(5, 2))
    [(0, 0, 2), (1, 2, 4), (2, 4, 5)]
    """
    for index, start in enumerate(range(0, total, size)):
        yield index, start, min(start + size, total)


def text_list(values: Any, name: str, one: str) -> list[str]:
    """``values`` as the list of non-empty texts of a corpus run, or an :class:`InputError` naming
    the bad value; ``one`` is the call to use for a single text instead.

    >>> text_list(["A film.", "Another."], "texts", "f(model, text)")
    ['A film.', 'Another.']
    >>> text_list("A film.", "texts", "f(model, text)")
    Traceback (most recent call last):
    ...
    headscope.errors.InputError: texts must be a non-empty list of strings, got str; for one text use f(model, text)
    """
    if isinstance(values, str) or not isinstance(values, Sequence) or not values:
        raise InputError(f"{name} must be a non-empty list of strings, got {type(values).__name__}; for one text use "
                         f"{one}")
    for i, t in enumerate(values):
        if not isinstance(t, str) or not t.strip():
            raise InputError(f"{name} #{i} is {'empty' if isinstance(t, str) else type(t).__name__}: give one "
                             "non-empty string each")
    return list(values)


def unreadable_json(parse: Callable[[Any], Any]) -> Callable[[int, bytes], str | None]:
    """The ``check`` of a run whose pieces are JSON: why saved piece ``data`` cannot be read back by
    ``parse`` (a result's ``from_dict``), or ``None``.

    >>> unreadable_json(dict)(0, b'{"a": 1}') is None, unreadable_json(dict)(0, b"{")
    (True, 'Expecting property name enclosed in double quotes: line 1 column 2 (char 1)')
    """
    def check(index: int, data: bytes) -> str | None:
        try:
            parse(json.loads(data.decode("utf-8")))
        except (ValueError, KeyError, TypeError) as err:  # UnicodeDecodeError and InputError are ValueErrors
            return str(err) or type(err).__name__
        return None

    return check


def result_contents(folder: str | os.PathLike) -> dict[str, object]:
    """Every file of a saved result folder, JSON parsed and its run time (``seconds``) left out: what is
    equal between a resumed or shared-out run and one that was never interrupted.

    >>> result_contents(tmp / "report") == result_contents(tmp / "report-resumed")   # doctest: +SKIP
    True
    """
    out: dict[str, object] = {}
    for p in sorted(Path(folder).iterdir()):
        if p.suffix == ".json":
            data = json.loads(p.read_text(encoding="utf-8"))
            data.pop("seconds", None)
            out[p.name] = data
        else:
            out[p.name] = p.read_bytes()
    return out
