"""Files of a saved alignment report: ``report.json``, ``scores.csv`` and ``links.jsonl``.

Plain data in, plain data out (no report object): :class:`~headscope.align.AlignmentReport`
calls :func:`write_folder` and :func:`read_folder`. A folder is written in full beside its
destination and only then renamed into place (:mod:`headscope.storage`), so a save that fails or
is killed leaves the old complete report or the new one, never a mix; reading checks the files
against each other (:func:`check_report`).
``report.json`` carries a ``"format"`` number; reports saved before format 2 named their readings
otherwise (``"L2H3"``, ``"layer 2 mean"``, ``"all heads mean"``, ``"rollout"``) and are converted
on reading by :func:`legacy_reading`, the only place those spellings are understood.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from headscope import storage
from headscope.errors import InputError
from headscope.readings import Head, HeadsMean, LayerMean, Reading, Rollout, parse_reading

__all__ = ["FORMAT", "check_report", "legacy_reading", "read_folder", "write_folder"]

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
                 links: Iterable[dict[str, Any]], extra: Mapping[str, bytes] | None = None) -> Path:
    """Write ``meta`` (``report.json``, with ``"format"``), ``rows`` (``scores.csv``), one JSON
    line per item of ``links`` (``links.jsonl``) and the ``extra`` files (name -> bytes, e.g. the
    heatmaps) into folder ``path``, atomically (:func:`headscope.storage.write_folder`).

    An existing ``path`` is replaced only when it is a saved report (it holds ``report.json``) or
    empty, so a report is never written over an unrelated folder.
    """
    clash = {REPORT, SCORES, LINKS} & set(extra or {})
    if clash:
        raise InputError(f"extra files may not be named {sorted(clash)}: those are the report's own files")
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]) if rows else [], lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: _cell(v) for k, v in row.items()} for row in rows)
    files: dict[str, str | bytes] = {
        REPORT: json.dumps({"format": FORMAT, **meta}, indent=1, ensure_ascii=False),
        SCORES: out.getvalue(),
        LINKS: "".join(json.dumps(item, ensure_ascii=False) + "\n" for item in links),
        **(extra or {}),
    }
    return storage.write_folder(path, files, marker=REPORT, what="alignment report")


def _cell(value: Any) -> Any:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, float):
        return f"{value:.6f}"
    return "" if value is None else value


def read_folder(path: str | os.PathLike) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """``(meta, links)`` of a folder written by :func:`write_folder` (or by a format-1 save).

    ``meta["readings"]`` lists reading names and every score and link is keyed by them, also for
    format-1 reports (converted with :func:`legacy_reading`). A format-2 folder needs all three
    files; a format-1 folder without ``links.jsonl`` gives no links. The files are checked against
    each other (:func:`check_report`): a damaged or edited report raises
    :class:`~headscope.errors.InputError` naming the file and the problem.
    """
    folder = Path(path)
    if not (folder / REPORT).is_file():
        raise InputError(f"{folder} holds no {REPORT}; pass a folder written by AlignmentReport.save")
    try:
        meta = json.loads((folder / REPORT).read_text(encoding="utf-8"))
        if not isinstance(meta, dict):
            raise TypeError("report.json does not hold a JSON object")
        version = storage.check_format(meta.pop("format", 1), (1, FORMAT), folder / REPORT, "alignment report")
        rename = {name: name for name in meta.get("readings", [])}
        if version == 1:
            rename = {name: legacy_reading(name).name for name in meta.pop("sources")}
            meta["readings"] = list(rename.values())
            for scores in meta["scores"].values():
                scores["aggregates"] = {rename[k]: v for k, v in scores["aggregates"].items()}
        links = []
        if version >= 2:
            for name in (SCORES, LINKS):
                if not (folder / name).is_file():
                    raise InputError(f"{folder}: {name} is missing (a saved report has {REPORT}, {SCORES} and "
                                     f"{LINKS}); save the report again")
        if (folder / LINKS).is_file():
            with open(folder / LINKS, encoding="utf-8") as f:
                for n, line in enumerate(f, start=1):
                    try:
                        row = json.loads(line)
                        row["predicted"] = {c: {rename[k]: v for k, v in d.items()}
                                            for c, d in row["predicted"].items()}
                    except (ValueError, KeyError, AttributeError, TypeError) as err:
                        raise InputError(f"{folder / LINKS}, line {n}: not a sentence of this report "
                                         f"({type(err).__name__}: {err}); save the report again") from None
                    links.append(row)
        check_report(folder, meta, links)
    except InputError:
        raise
    except (ValueError, KeyError, AttributeError, TypeError, UnicodeDecodeError) as err:
        raise InputError(f"{folder}: not a readable alignment report ({type(err).__name__}: {err}); "
                         "save the report again") from None
    return meta, links


def check_report(folder: Path, meta: dict[str, Any], links: list[dict[str, Any]]) -> None:
    """Check that the saved numbers belong together: every score grid ``[layers, heads]``, every
    score equal to the one its AER counts give, one links line per sentence with links inside its
    sentence, keyed by the scored conventions and readings."""
    def bad(where: str, problem: str) -> InputError:
        return InputError(f"{folder / where}: {problem}; the files were edited or damaged: save the report again")

    layers, n_heads, names = meta["layers"], int(meta["n_heads"]), list(meta["readings"])
    readings = [parse_reading(n) for n in names]
    shape = (len(layers), n_heads)
    if list(meta["conventions"]) != list(meta["scores"]) or meta["convention"] not in meta["scores"]:
        raise bad(REPORT, f"conventions {meta['conventions']} do not match the scores {list(meta['scores'])}")
    for conv, sc in meta["scores"].items():
        grids = {k: np.array(sc[k], dtype=np.float64) for k in ("aer", "precision", "recall")}
        counts = {k: np.array(v, dtype=np.float64) for k, v in sc["counts"].items()}
        for k, grid in [*grids.items(), *counts.items()]:
            if grid.shape != shape:
                raise bad(REPORT, f"{conv} {k} has shape {list(grid.shape)} but the report has {shape[0]} layers x "
                                  f"{n_heads} heads")
        want_aggs = [n for n, r in zip(names, readings) if not isinstance(r, Head)]
        if sorted(sc["aggregates"]) != sorted(want_aggs):
            raise bad(REPORT, f"{conv} aggregates {sorted(sc['aggregates'])} are not the scored {want_aggs}")
        cells = [(grids, counts, (layers.index(r.layer), r.head)) for r in readings if isinstance(r, Head)]
        cells += [({k: np.float64(v) for k, v in row.items()}, {k: np.float64(v) for k, v in row.items()}, ())
                  for row in sc["aggregates"].values()]
        for values, cnt, cell in cells:
            a, s_ = cnt["n_predicted"][cell], cnt["n_sure"][cell]
            a_s, a_p = cnt["n_predicted_sure"][cell], cnt["n_predicted_possible"][cell]
            want = {"precision": a_p / a if a > 0 else 0.0, "recall": a_s / s_ if s_ > 0 else 0.0,
                    "aer": 1.0 - (a_s + a_p) / (a + s_) if a + s_ > 0 else 0.0}
            for k, v in want.items():
                if not abs(float(values[k][cell]) - v) <= 1e-9:  # also false for NaN
                    raise bad(REPORT, f"{conv} {k} {float(values[k][cell])!r} at {list(cell) or 'an aggregate'} "
                                      f"differs from {v:.6f}, the value its AER counts give")
    if not links:
        return
    if len(links) != int(meta["n_sentences"]):
        raise bad(LINKS, f"{len(links)} sentences but report.json says {meta['n_sentences']}")
    for k, row in enumerate(links):
        n_src, n_tgt = len(row["source_words"]), len(row["target_words"])
        if row.get("sentence", k) != k or set(row["predicted"]) != set(meta["scores"]):
            raise bad(LINKS, f"line {k + 1} is not sentence {k} scored under {list(meta['scores'])}")
        groups = [("sure", row["sure"]), ("possible", row["possible"])]
        for conv, per in row["predicted"].items():
            if list(per) != names:
                raise bad(LINKS, f"line {k + 1}: {conv} links of readings {list(per)[:3]}... not {names[:3]}...")
            groups += [(f"{conv} {n}", per[n]) for n in names]
        for what, pairs in groups:
            for pair in pairs:
                if len(pair) != 2 or not (0 <= pair[0] < n_src and 0 <= pair[1] < n_tgt):
                    raise bad(LINKS, f"line {k + 1}: {what} link {pair} is outside the sentence ({n_src} source "
                                     f"words, {n_tgt} target words)")
