"""Files of a saved alignment report: ``report.json``, ``scores.csv`` and ``links.jsonl``.

Plain data in, plain data out (no report object): :class:`~headscope.align.AlignmentReport`
calls :func:`write_folder` and :func:`read_folder`. A folder is written in full beside its
destination and only then renamed into place, so a save that fails never leaves a half-written
report at the destination.
``report.json`` carries a ``"format"`` number; reports saved before format 2 named their readings
otherwise (``"L2H3"``, ``"layer 2 mean"``, ``"all heads mean"``, ``"rollout"``) and are converted
on reading by :func:`legacy_reading`, the only place those spellings are understood.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from headscope.errors import InputError
from headscope.readings import Head, HeadsMean, LayerMean, Reading, Rollout, parse_reading

__all__ = ["FORMAT", "legacy_reading", "read_folder", "write_folder"]

#: Format of ``report.json`` written by this version (1: reports saved before typed reading names).
FORMAT = 2
REPORT, SCORES, LINKS = "report.json", "scores.csv", "links.jsonl"

_LEGACY_HEAD = re.compile(r"L(\d+)H(\d+)")
_LEGACY_LAYER_MEAN = re.compile(r"layer (\d+) mean")
_LEGACY_WHOLE = {"all heads mean": HeadsMean("cross"), "rollout": Rollout("cross")}


def legacy_reading(name: str) -> Reading:
    """The cross reading a name of a format-1 report stands for; current names pass through.

    >>> [legacy_reading(n).name for n in ("L2H3", "layer 0 mean", "all heads mean", "rollout", "cross.1.0")]
    ['cross.2.3', 'cross.0.mean', 'cross.mean', 'cross.rollout', 'cross.1.0']
    """
    if name in _LEGACY_WHOLE:
        return _LEGACY_WHOLE[name]
    if m := _LEGACY_HEAD.fullmatch(name):
        return Head("cross", int(m.group(1)), int(m.group(2)))
    if m := _LEGACY_LAYER_MEAN.fullmatch(name):
        return LayerMean("cross", int(m.group(1)))
    return parse_reading(name)


def write_folder(path: str | os.PathLike, meta: dict[str, Any], rows: list[dict[str, Any]],
                 links: Iterable[dict[str, Any]]) -> Path:
    """Write ``meta`` (``report.json``, with ``"format"``), ``rows`` (``scores.csv``) and one JSON
    line per item of ``links`` (``links.jsonl``) into folder ``path``, atomically.

    An existing ``path`` is replaced only when it is a saved report (it holds ``report.json``) or
    empty, so a report is never written over an unrelated folder.
    """
    folder = Path(path)
    if folder.exists() and (not folder.is_dir() or (any(folder.iterdir()) and not (folder / REPORT).is_file())):
        raise InputError(f"{folder} exists and is not a saved alignment report; save into a new or empty folder")
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        text = json.dumps({"format": FORMAT, **meta}, indent=1, ensure_ascii=False)
        (staging / REPORT).write_text(text, encoding="utf-8")
        with open(staging / SCORES, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else [])
            writer.writeheader()
            writer.writerows({k: _cell(v) for k, v in row.items()} for row in rows)
        with open(staging / LINKS, "w", encoding="utf-8") as f:
            f.writelines(json.dumps(item, ensure_ascii=False) + "\n" for item in links)
        _replace(staging, folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder


def _cell(value: Any) -> Any:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, float):
        return f"{value:.6f}"
    return "" if value is None else value


def _replace(staging: Path, folder: Path) -> None:
    """Rename ``staging`` to ``folder``; an existing ``folder`` is swapped out first, then removed."""
    if folder.exists():
        old = staging.with_name(staging.name + ".old")
        folder.rename(old)
        staging.rename(folder)
        shutil.rmtree(old, ignore_errors=True)
    else:
        staging.rename(folder)


def read_folder(path: str | os.PathLike) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """``(meta, links)`` of a folder written by :func:`write_folder` (or by a format-1 save).

    ``meta["readings"]`` lists reading names and every score and link is keyed by them, also for
    format-1 reports (converted with :func:`legacy_reading`). ``links`` is empty without ``links.jsonl``.
    """
    folder = Path(path)
    if not (folder / REPORT).is_file():
        raise InputError(f"{folder} holds no {REPORT}; pass a folder written by AlignmentReport.save")
    try:
        meta = json.loads((folder / REPORT).read_text(encoding="utf-8"))
        version = meta.pop("format", 1)
        if version not in (1, FORMAT):
            raise InputError(f"{folder / REPORT}: format {version!r} is not one this headscope reads (1 or {FORMAT})")
        rename = {name: name for name in meta.get("readings", [])}
        if version == 1:
            rename = {name: legacy_reading(name).name for name in meta.pop("sources")}
            meta["readings"] = list(rename.values())
            for scores in meta["scores"].values():
                scores["aggregates"] = {rename[k]: v for k, v in scores["aggregates"].items()}
        links = []
        if (folder / LINKS).is_file():
            with open(folder / LINKS, encoding="utf-8") as f:
                for line in f:
                    row = json.loads(line)
                    row["predicted"] = {c: {rename[k]: v for k, v in d.items()} for c, d in row["predicted"].items()}
                    links.append(row)
    except InputError:
        raise
    except (ValueError, KeyError, AttributeError, TypeError) as err:
        raise InputError(f"{folder}: not a readable alignment report ({type(err).__name__}: {err})") from None
    return meta, links
