"""The typed results of :func:`~headscope.fragment.fragmentation`: print, tabulate, save, load.

A :class:`Fragmentation` holds, per attention kind, a :class:`KindFragmentation` (disagreement
and behaviours of the heads), and the Kendall τ matrix between the *readings* of the input. A
reading is keyed by its typed name: a :class:`~headscope.readings.Reading` for the attention
maps (``Head``, ``LayerMean``, ``HeadsMean``, ``Rollout``, ``Flow``), or the name of a
token-importance method registered by :mod:`headscope.faithful` (``"gradient"``, ``"loo"``).
Files and rows carry ``reading.name``; printed text carries ``reading.label``.

The shape of a result depends only on the kinds the model has, never on its architecture.

>>> frag = fragmentation(insp)                   # doctest: +SKIP
>>> print(frag)                                  # the three claims, one number each   # doctest: +SKIP
>>> Fragmentation.load(frag.save("out/frag")).tau_with("loo")                          # doctest: +SKIP
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import storage
from ..errors import InputError
from ..faithful import list_methods
from ..models.architectures import architecture_named
from ..readings import Flow, Head, HeadsMean, LayerMean, Reading, Rollout, Site, parse_reading

ReadingKey = Reading | str
"""A reading of a fragmentation: an attention :class:`~headscope.readings.Reading`, or the name of a
:func:`headscope.faithful.token_importance` method (``"loo"``)."""

FORMAT_VERSION = 2  # version 1 (unmarked): readings spelt "all-heads mean", "layer 2 mean", "rollout", "flow"
_JSON, _CSV = "fragmentation.json", "fragmentation.csv"


def key_name(key: ReadingKey) -> str:
    """The stable name of a reading key, for files: ``"cross.mean"``, ``"loo"``.

    >>> key_name(HeadsMean("cross")), key_name("loo")
    ('cross.mean', 'loo')
    """
    return key if isinstance(key, str) else key.name


def key_label(key: ReadingKey) -> str:
    """The human label of a reading key, for printed text: ``"all-heads mean"``, ``"loo"``.

    >>> key_label(HeadsMean("cross")), key_label(LayerMean("cross", 2))
    ('all-heads mean', 'layer 2 mean')
    """
    return key if isinstance(key, str) else key.label


def key_of(name: str) -> ReadingKey:
    """The reading key a saved name stands for: a faithful method name, else a parsed reading.

    >>> key_of("loo"), key_of("cross.rollout")
    ('loo', Rollout(kind='cross'))
    """
    return name if name in list_methods() else parse_reading(name)


@dataclass(eq=False)
class KindFragmentation:
    """Disagreement and behaviours of the heads of one attention kind.

    Heads are flattened layer-major: entry ``i`` of ``js`` and ``rank_correlation`` is
    ``heads[i]`` (layer ``layers[i // n_heads]``, head ``i % n_heads``).

    Attributes:
        kind: ``"encoder"``, ``"decoder"`` or ``"cross"``.
        layers: the model's layer index of each row of ``labels`` / ``sink_mass``.
        n_heads: heads in all (layers x heads per layer).
        js: ``[n_heads, n_heads]`` mean-over-rows Jensen–Shannon divergence between heads.
        rank_correlation: ``[n_heads, n_heads]`` mean-over-rows Spearman correlation.
        effective_maps: effective number of distinct maps (effective rank of ``1 - js``).
        labels: ``[layers, heads per layer]`` behaviour labels (:data:`~headscope.fragment.LABELS`).
        sink_mass: ``[layers, heads per layer]`` mass on sink tokens, averaged over rows.
        shares: ``{behaviour: share of heads}``.
        rows: the query positions every statistic was averaged over when the inspection kept only
            some whole rows (a reduced capture of a long input, ``reduce=["rows=0,-1"]``); ``None``:
            every row.

    >>> kf = kind_fragmentation(insp.kind_maps("cross"), "cross", insp.key_tokens("cross"))  # doctest: +SKIP
    >>> kf.effective_maps, kf.mean_js                                                        # doctest: +SKIP
    """

    kind: str
    layers: list[int]
    n_heads: int
    js: np.ndarray = field(repr=False)
    rank_correlation: np.ndarray = field(repr=False)
    effective_maps: float
    labels: np.ndarray = field(repr=False)
    sink_mass: np.ndarray = field(repr=False)
    shares: dict[str, float]
    rows: list[int] | None = None

    @property
    def mean_js(self) -> float:
        """Mean JS divergence over distinct head pairs (0 for a single head)."""
        off = ~np.eye(self.n_heads, dtype=bool)
        return float(self.js[off].mean()) if off.any() else 0.0

    @property
    def heads(self) -> list[Head]:
        """The heads in the order of ``js`` rows: ``[Head("cross", 0, 0), Head("cross", 0, 1), ...]``."""
        per_layer = self.labels.shape[1]
        return [Head(self.kind, layer, h) for layer in self.layers for h in range(per_layer)]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields (full precision)."""
        return {"layers": list(self.layers), "n_heads": self.n_heads, "effective_maps": self.effective_maps,
                "mean_js": self.mean_js, "js": self.js.tolist(), "rank_correlation": self.rank_correlation.tolist(),
                "labels": self.labels.tolist(), "sink_mass": self.sink_mass.tolist(), "shares": self.shares,
                **({"rows": list(self.rows)} if self.rows is not None else {})}

    @classmethod
    def from_dict(cls, kind: str, data: Mapping[str, Any]) -> "KindFragmentation":
        """Inverse of :meth:`to_dict`."""
        labels = np.array(data["labels"], dtype=object)
        return cls(kind, [int(x) for x in data["layers"]], int(data["n_heads"]), np.array(data["js"], dtype=float),
                   np.array(data["rank_correlation"], dtype=float), float(data["effective_maps"]), labels,
                   np.array(data["sink_mass"], dtype=float), {k: float(v) for k, v in data["shares"].items()},
                   None if data.get("rows") is None else [int(r) for r in data["rows"]])


@dataclass(eq=False)
class Fragmentation:
    """How the single-map reading breaks apart for one input; made by :func:`~headscope.fragment.fragmentation`.

    Attributes:
        model_name: the model the inspection came from.
        architecture: its architecture kind's name (``"encoder-decoder"``, ``"encoder"``, ``"decoder"``).
        kinds: ``{kind: KindFragmentation}`` for every captured kind.
        readings: the compared readings, in the order of ``tau``'s rows (:data:`ReadingKey`).
        tau: ``[R, R]`` mean-over-rows Kendall τ-b between the readings, ones on the diagonal.
        alignment: AER of readings scored against gold links (``{Head("cross", 2, 2): 0.57}``), if given.

    ``print(frag)`` gives :meth:`summary`; :meth:`table` / :meth:`to_rows` give one row per head and
    per reading; :meth:`save` / :meth:`load` round-trip a folder.

    >>> frag = fragmentation(insp)                    # doctest: +SKIP
    >>> frag.tau_with("loo")                          # doctest: +SKIP
    {Head(kind='cross', layer=1, head=3): 0.21, ...}
    """

    model_name: str
    architecture: str
    kinds: dict[str, KindFragmentation]
    readings: list[ReadingKey]
    tau: np.ndarray = field(repr=False)
    alignment: dict[Reading, float] = field(default_factory=dict)

    # ---- access -------------------------------------------------------------------------
    @property
    def reading_names(self) -> list[str]:
        """Stable names of :attr:`readings` (``"cross.1.3"``, ``"cross.mean"``, ``"loo"``)."""
        return [key_name(r) for r in self.readings]

    @property
    def reading_labels(self) -> list[str]:
        """Human labels of :attr:`readings` (``"cross.1.3"``, ``"all-heads mean"``, ``"loo"``)."""
        return [key_label(r) for r in self.readings]

    @property
    def references(self) -> list[str]:
        """The token-importance readings (``["gradient", "loo"]``), the faithfulness references."""
        return [r for r in self.readings if isinstance(r, str)]

    @property
    def kind(self) -> str:
        """The attention kind of the compared readings (``"cross"`` for encoder-decoders)."""
        return next(r.kind for r in self.readings if isinstance(r, Reading))

    def index(self, reading: ReadingKey | Site) -> int:
        """Row of ``reading`` in :attr:`tau`; a saved name (``"cross.mean"``, ``"loo"``) is accepted."""
        if isinstance(reading, str) and reading in self.reading_names:
            return self.reading_names.index(reading)
        key = reading if isinstance(reading, str) and reading in list_methods() else parse_reading(reading)
        if key not in self.readings:
            raise InputError(f"no reading {key_name(key)!r} in this fragmentation; readings: {self.reading_names}")
        return self.readings.index(key)

    def tau_with(self, reference: ReadingKey | Site) -> dict[ReadingKey, float]:
        """Kendall τ of every other reading with ``reference`` (e.g. ``"loo"``), best first.

        >>> frag.tau_with("loo")[HeadsMean("cross")]      # doctest: +SKIP
        0.16
        """
        i = self.index(reference)
        pairs = {r: float(self.tau[i, j]) for j, r in enumerate(self.readings) if j != i}
        return dict(sorted(pairs.items(), key=lambda kv: -kv[1]))

    # ---- display ------------------------------------------------------------------------
    def summary(self) -> str:
        """The result phrased in headscope's three claims (alignment, plausible, faithful), each with its number."""
        lines = [f"Fragmentation of {self.model_name} ({self.architecture})"]
        main = self.kind
        k = self.kinds[main]
        lines.append("Alignment — what the maps support as alignment:")
        if self.alignment:
            parts = ", ".join(f"{r.label} AER {value:.3f}" for r, value in self.alignment.items())
            lines.append(f"  scored against gold: {parts}")
        elif main == "cross":
            n_align = int((k.labels == "alignment-like").sum())
            lines.append(f"  not scored (no gold given): {n_align} of {k.n_heads} cross-attention heads are "
                         "alignment-like by shape — a shape, not evidence; score them with headscope align")
        else:
            lines.append(f"  not applicable: {main} self-attention is not an input/output alignment")
        lines.append("Plausible — what the maps only appear to show:")
        for kind, kf in self.kinds.items():
            ranked = sorted(kf.shares.items(), key=lambda x: -x[1])
            shares = ", ".join(f"{label} {share:.0%}" for label, share in ranked)
            lines.append(f"  {kind}: {kf.n_heads} heads make {kf.effective_maps:.1f} effective distinct maps "
                         f"(mean pairwise JS {kf.mean_js:.3f}); behaviours: {shares}; "
                         f"mean sink mass {kf.sink_mass.mean():.2f}"
                         + ("" if kf.rows is None else f" (over the {len(kf.rows)} kept query rows)"))
        lines.append("Faithful — what the faithfulness tests confirmed:")
        if not self.references:
            lines.append("  not measured (pass faithful=True with a loaded model)")
        for ref in self.references:
            taus = self.tau_with(ref)
            maps = {r: t for r, t in taus.items() if isinstance(r, Reading)}
            best = next(iter(maps))
            agg = ", ".join(f"{r.label} {maps[r]:+.2f}" for r in self.readings
                            if isinstance(r, (HeadsMean, Rollout, Flow)) and r != best)
            lines.append(f"  Kendall τ with {ref}: best reading {best.label} {maps[best]:+.2f}; {agg}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()

    def __repr__(self) -> str:
        kinds = ", ".join(f"{k} {kf.n_heads} heads" for k, kf in self.kinds.items())
        return f"<Fragmentation of {self.model_name!r}: {kinds}; {len(self.readings)} readings>"

    def to_rows(self) -> list[dict[str, Any]]:
        """One row per head of every kind, then per other reading (aggregates, importance methods).

        Columns: ``reading`` (name), ``label``, ``kind``, ``behaviour``, ``sink_mass``, ``mean_js``
        (with the kind's other heads), then ``tau_<method>`` for each faithfulness reference
        (``tau_loo``). Cells that do not apply are ``None``.

        >>> frag.to_rows()[0]              # doctest: +SKIP
        {'reading': 'encoder.0.0', 'label': 'encoder.0.0', 'kind': 'encoder', 'behaviour': 'sink', ...}
        """
        refs = {ref: self.index(ref) for ref in self.references}
        rows = []

        def taus(key: ReadingKey) -> dict[str, float | None]:
            j = self.readings.index(key) if key in self.readings else None
            return {f"tau_{ref}": None if j is None else float(self.tau[i, j]) for ref, i in refs.items()}

        for kind, kf in self.kinds.items():
            per_layer = kf.labels.shape[1]
            off = ~np.eye(kf.n_heads, dtype=bool)
            for i, head in enumerate(kf.heads):
                li, h = divmod(i, per_layer)
                mean_js = float(kf.js[i][off[i]].mean()) if kf.n_heads > 1 else None
                rows.append({"reading": head.name, "label": head.label, "kind": kind,
                             "behaviour": str(kf.labels[li, h]), "sink_mass": float(kf.sink_mass[li, h]),
                             "mean_js": mean_js, **taus(head)})
        for key in self.readings:
            if not isinstance(key, Head):
                rows.append({"reading": key_name(key), "label": key_label(key),
                             "kind": None if isinstance(key, str) else key.kind,
                             "behaviour": None, "sink_mass": None, "mean_js": None, **taus(key)})
        return rows

    def table(self) -> str:
        """:meth:`to_rows` as aligned text columns (numbers to 3 decimals, blanks where a cell does not apply)."""
        rows = self.to_rows()
        columns = [c for c in rows[0] if c != "reading"]
        cells = [[_cell(row[c]) for c in columns] for row in rows]
        widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
        out = ["  ".join(c.ljust(w) for c, w in zip(columns, widths)).rstrip()]
        out += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
        return "\n".join(out)

    # ---- persistence --------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields, readings by name (full precision; :meth:`from_dict` inverts it)."""
        return {
            "format": FORMAT_VERSION,
            "model_name": self.model_name,
            "architecture": self.architecture,
            "readings": self.reading_names,
            "tau": self.tau.tolist(),
            "alignment": {r.name: float(v) for r, v in self.alignment.items()},
            "kinds": {kind: kf.to_dict() for kind, kf in self.kinds.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Fragmentation":
        """A fragmentation from :meth:`to_dict` output (version checked; version 1 names converted)."""
        version = data.get("format")
        if version is None and "family" in data:
            data = _from_version_1(data)
        elif version != FORMAT_VERSION:
            raise InputError(f"fragmentation format {version!r} is not one this headscope reads "
                             f"(1 or {FORMAT_VERSION}); compute and save it again")
        kinds = {kind: KindFragmentation.from_dict(kind, kd) for kind, kd in data["kinds"].items()}
        return cls(data["model_name"], data["architecture"], kinds, [key_of(n) for n in data["readings"]],
                   np.array(data["tau"], dtype=float),
                   {parse_reading(n): float(v) for n, v in data["alignment"].items()})

    def save(self, path: str | os.PathLike) -> Path:
        """Write ``fragmentation.json`` (everything) and ``fragmentation.csv`` (:meth:`to_rows`) into folder ``path``.

        The folder is written beside its destination and renamed into place
        (:mod:`headscope.storage`), so an interrupted save leaves the old complete folder or the new one. An existing folder is replaced only
        if it holds nothing but a saved fragmentation.

        >>> Fragmentation.load(frag.save(tmp / "frag")).reading_names == frag.reading_names  # doctest: +SKIP
        True
        """
        folder = Path(path)
        if folder.exists() and (not folder.is_dir() or {p.name for p in folder.iterdir()} - {_JSON, _CSV}):
            raise InputError(f"{folder} exists and is not a saved fragmentation; give a new or empty folder")
        files = {_JSON: json.dumps(self.to_dict(), ensure_ascii=False, indent=1), _CSV: _csv(self.to_rows())}
        return storage.write_folder(folder, files, marker=_JSON, what="fragmentation")

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Fragmentation":
        """Read a folder written by :meth:`save` (or its ``fragmentation.json``).

        >>> Fragmentation.load("out/frag").summary()      # doctest: +SKIP
        """
        file = Path(path)
        file = file / _JSON if file.is_dir() else file
        if not file.is_file():
            raise InputError(f"{path} is not a saved fragmentation (no {_JSON}); pass a folder written by "
                             "Fragmentation.save")
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as err:
            raise InputError(f"{file}: not readable JSON ({err}); compute and save the fragmentation again") from None
        try:
            frag = cls.from_dict(data)
        except InputError as err:
            raise InputError(f"{file}: {err}") from None
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise InputError(f"{file}: fields do not match a fragmentation ({type(err).__name__}: {err}); "
                             "compute and save it again") from None
        problem = frag._inconsistency()
        if problem:
            raise InputError(f"{file}: {problem}; the file was edited or damaged: compute and save it again")
        return frag

    def _inconsistency(self) -> str | None:
        """What does not fit together in this fragmentation (for :meth:`load`), or ``None``."""
        r = len(self.readings)
        if self.tau.shape != (r, r):
            return f"tau has shape {list(self.tau.shape)} for {r} readings"
        for kind, kf in self.kinds.items():
            n = kf.n_heads
            if kf.labels.ndim != 2 or kf.labels.shape[0] != len(kf.layers) or kf.labels.size != n:
                return f"{kind}: labels of shape {list(kf.labels.shape)} for {len(kf.layers)} layers and {n} heads"
            if kf.sink_mass.shape != kf.labels.shape:
                return f"{kind}: sink_mass has shape {list(kf.sink_mass.shape)}, labels {list(kf.labels.shape)}"
            for name, m in (("js", kf.js), ("rank_correlation", kf.rank_correlation)):
                if m.shape != (n, n):
                    return f"{kind}: {name} has shape {list(m.shape)} for {n} heads"
            if not (np.isfinite(kf.js).all() and np.isfinite(kf.sink_mass).all()):
                return f"{kind}: js or sink_mass hold NaN or infinite values"
        return None

def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def _csv(rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows([{k: "" if v is None else v for k, v in row.items()} for row in rows])
    return buf.getvalue()


def _from_version_1(data: Mapping[str, Any]) -> dict[str, Any]:
    """Convert an unversioned (version 1) fragmentation.json: readings were named by their labels.

    Version 1 named the aggregates of the compared kind (``cross``, else the last kind) by what is
    now their :attr:`~headscope.readings.Reading.label` (``"all-heads mean"``, ``"layer 2 mean"``,
    ``"rollout"``, ``"flow"``) and numbered layers from 0.
    """
    kinds = {kind: {**kd, "layers": list(range(len(kd["labels"])))} for kind, kd in data["kinds"].items()}
    main = "cross" if "cross" in kinds else list(kinds)[-1]
    aggregates: list[Reading] = [LayerMean(main, layer) for layer in kinds[main]["layers"]]
    aggregates += [HeadsMean(main), Rollout(main)] + ([Flow(main)] if main != "cross" else [])
    by_label = {r.label: r.name for r in aggregates}

    def rename(name: str) -> str:
        return by_label.get(name, name)

    return {"format": FORMAT_VERSION, "model_name": data["model_name"],
            "architecture": architecture_named(data["family"]).name, "kinds": kinds,
            "readings": [rename(n) for n in data["readings"]], "tau": data["tau"],
            "alignment": {rename(n): v for n, v in data.get("alignment", {}).items()}}
