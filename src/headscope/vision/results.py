"""A small base for the vision results: rows of numbers that print, tabulate, save and load."""

from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, ClassVar

from .. import storage
from ..errors import InputError

FORMAT_VERSION = 1


@dataclass
class RowsResult:
    """A result whose numbers are ``rows`` (a list of flat dicts) plus a few descriptive fields.

    Subclasses set :attr:`kind` (the saved file's stem), :attr:`columns` (``(key, header, format)``
    for :meth:`table`) and write :meth:`summary`.
    """

    kind: ClassVar[str] = "result"
    columns: ClassVar[tuple[tuple[str, str, str], ...]] = ()

    rows: list[dict[str, Any]]

    def to_rows(self) -> list[dict[str, Any]]:
        """The rows as plain dicts (copies)."""
        return [dict(r) for r in self.rows]

    def row(self, name: str) -> dict[str, Any]:
        """The row named ``name`` (a reading such as ``"encoder.rollout"``, ``"gradient"``, ``"chance"``), a copy."""
        for r in self.rows:
            if r["name"] == name:
                return dict(r)
        raise InputError(f"no row {name!r}; rows: {[r['name'] for r in self.rows]}")

    def table(self, limit: int | None = None) -> str:
        """A fixed-width text table of the rows (the first ``limit`` rows when given)."""
        rows = self.rows if limit is None else self.rows[:limit]
        cells = [[h for _, h, _ in self.columns]]
        for r in rows:
            cells.append([_fmt(r.get(k), f) for k, _, f in self.columns])
        widths = [max(len(row[i]) for row in cells) for i in range(len(self.columns))]
        lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
                 for row in cells]
        lines.insert(1, "  ".join("-" * w for w in widths))
        if limit is not None and len(self.rows) > limit:
            lines.append(f"... {len(self.rows) - limit} more rows")
        return "\n".join(lines)

    def summary(self) -> str:  # pragma: no cover - subclasses
        return self.table(limit=8)

    def __str__(self) -> str:
        return self.summary()

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: {len(self.rows)} rows>"

    def save(self, path: str | os.PathLike) -> Path:
        """Write ``<kind>.json`` (everything, with a format version) and ``<kind>.csv`` (the rows) into folder ``path``."""
        data = {"format": FORMAT_VERSION, "type": type(self).__name__, **asdict(self)}
        text = io.StringIO()
        keys = list(dict.fromkeys(k for r in self.rows for k in r))
        writer = csv.DictWriter(text, fieldnames=keys, lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.rows)
        return storage.write_folder(path, {f"{self.kind}.json": json.dumps(data, indent=1, ensure_ascii=False),
                                           f"{self.kind}.csv": text.getvalue()},
                                    marker=f"{self.kind}.json", what=self.kind.replace("_", " "))

    @classmethod
    def load(cls, path: str | os.PathLike) -> "RowsResult":
        """Read a result written by :meth:`save`."""
        file = Path(path) / f"{cls.kind}.json"
        if not file.is_file():
            raise InputError(f"{path} is not a saved {cls.kind.replace('_', ' ')} (no {file.name})")
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
        except ValueError as err:
            raise InputError(f"{file}: unreadable ({err}); save the result again") from None
        storage.check_format(data.pop("format", None), (FORMAT_VERSION,), file, cls.kind.replace("_", " "))
        data.pop("type", None)
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise InputError(f"{file}: fields {unknown} do not belong to a {cls.__name__}; save it again")
        return cls(**_tuples(cls, data))


def _tuples(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    """JSON lists back to tuples where the dataclass declares a tuple."""
    for f in fields(cls):
        if f.name in data and isinstance(data[f.name], list) and "tuple" in str(f.type):
            data[f.name] = tuple(data[f.name])
    return data


def _fmt(value: Any, spec: str) -> str:
    if value is None:
        return "-"
    if spec and isinstance(value, (int, float)) and not isinstance(value, bool):
        return format(value, spec)
    return str(value)
