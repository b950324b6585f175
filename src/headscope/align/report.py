"""The result of scoring cross-attention readings as word aligners: :class:`AlignmentReport`.

Numbers only: precision, recall and AER of every reading under each decoder-step convention, the
predicted links per sentence, and the gold they were scored against. Rows are keyed by the
reading's stable name (``cross.2.3``, ``cross.2.mean``, ``cross.mean``, ``cross.rollout``; see
:mod:`headscope.readings`); tables show its label. Figures of a report are drawn by
:func:`headscope.viz.figures.aer_heatmap` (``headscope align`` does so).

>>> report = headscope.align.evaluate("headscope/en-fr", convention="both")  # doctest: +SKIP
>>> print(report)                                                            # doctest: +SKIP
alignment of headscope/en-fr on hansards-en-fr: 447 sentences, ...
>>> report.aggregates["cross.mean"]["aer"], report.best_head                 # doctest: +SKIP
(0.586..., (2, 2))
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from headscope.align.baselines import Baseline, standing
from headscope.align.extract import symmetrize
from headscope.align.metrics import AERCounts, AlignmentScore
from headscope.align.store import read_folder, write_folder
from headscope.align.wordmaps import ReadingLike, as_cross_reading
from headscope.errors import InputError
from headscope.readings import Head, HeadsMean, Reading, parse_reading

__all__ = ["AlignmentReport", "ConventionScores", "COUNT_KEYS"]

Link = tuple[int, int]
#: The AER counts kept with every score (:class:`~headscope.align.AERCounts` fields).
COUNT_KEYS: tuple[str, ...] = ("n_predicted", "n_sure", "n_predicted_sure", "n_predicted_possible")
_ALL_MEAN = HeadsMean("cross").name


@dataclass(repr=False)
class ConventionScores:
    """The scores of every reading under one decoder-step convention (or a symmetrisation).

    Heads fill ``[layers, heads]`` grids; every other reading has a row in ``aggregates``
    (reading name -> precision, recall, aer and the counts).
    """

    convention: str
    aer: np.ndarray  #: ``[layers, heads]``
    precision: np.ndarray  #: ``[layers, heads]``
    recall: np.ndarray  #: ``[layers, heads]``
    aggregates: dict[str, dict[str, float]]
    best_head: tuple[int, int]  #: ``(layer, head)`` with the lowest AER (model layer index)
    best_aer: float
    counts: dict[str, np.ndarray]  #: :data:`COUNT_KEYS` as ``[layers, heads]``

    @property
    def best(self) -> Head:
        """The best head as a reading."""
        return Head("cross", *self.best_head)

    @classmethod
    def from_score(cls, convention: str, score: AlignmentScore, readings: list[Reading], layers: list[int],
                   n_heads: int) -> "ConventionScores":
        """Split corpus scores of ``readings`` (arrays in ``readings`` order) into head grids and aggregates."""
        shape = (len(layers), n_heads)
        grids = {k: np.full(shape, np.nan) for k in ("precision", "recall", "aer")}
        counts = {k: np.zeros(shape, np.int64) for k in COUNT_KEYS}
        aggregates = {}
        for i, r in enumerate(readings):
            values = {k: float(getattr(score, k)[i]) for k in grids} | {k: int(getattr(score, k)[i]) for k in counts}
            if isinstance(r, Head):
                cell = (layers.index(r.layer), r.head)
                for k in grids:
                    grids[k][cell] = values[k]
                for k in counts:
                    counts[k][cell] = values[k]
            else:
                aggregates[r.name] = values
        if any(isinstance(r, Head) for r in readings):
            li, h = np.unravel_index(int(np.nanargmin(grids["aer"])), shape)
            best, best_aer = (layers[li], int(h)), float(grids["aer"][li, h])
        else:
            best, best_aer = (layers[0], 0), math.nan
        return cls(convention, grids["aer"], grids["precision"], grids["recall"], aggregates, best, best_aer, counts)

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-able fields (arrays as nested lists)."""
        return {
            "convention": self.convention,
            "aer": self.aer.tolist(),
            "precision": self.precision.tolist(),
            "recall": self.recall.tolist(),
            "aggregates": self.aggregates,
            "best_head": {"layer": self.best_head[0], "head": self.best_head[1], "aer": self.best_aer},
            "counts": {k: v.tolist() for k, v in self.counts.items()},
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ConventionScores":
        """Inverse of :meth:`as_dict`."""
        return cls(
            convention=d["convention"],
            aer=np.array(d["aer"], dtype=np.float64),
            precision=np.array(d["precision"], dtype=np.float64),
            recall=np.array(d["recall"], dtype=np.float64),
            aggregates=d["aggregates"],
            best_head=(int(d["best_head"]["layer"]), int(d["best_head"]["head"])),
            best_aer=float(d["best_head"]["aer"]),
            counts={k: np.array(v, dtype=np.int64) for k, v in d["counts"].items()},
        )

    def __repr__(self) -> str:
        return (f"ConventionScores({self.convention!r}, {self.aer.shape[0]}x{self.aer.shape[1]} heads, "
                f"best {self.best.name} AER {self.best_aer:.3f}, {len(self.aggregates)} aggregates)")


@dataclass(repr=False)
class AlignmentReport:
    """How good a word aligner every cross-attention reading of a model is, on one gold set.

    ``by_convention`` holds a :class:`ConventionScores` per scored convention; ``aer``,
    ``precision``, ``recall``, ``aggregates``, ``best_head`` and ``best_aer`` are those of the
    main ``convention``. ``readings`` lists what was scored (heads first), ``links`` the predicted
    links of each per convention and sentence (see :meth:`predicted_links`), ``gold`` the gold rows.
    ``baselines`` holds the reference aligners scored on the same gold (the diagonal, and eflomal
    when installed; :mod:`headscope.align.baselines`): every table places the readings between them.
    """

    model_name: str
    gold_name: str
    convention: str  #: the main convention
    extraction: str
    layers: list[int]
    n_heads: int
    by_convention: dict[str, ConventionScores]
    readings: list[Reading]
    n_sentences: int
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    #: per convention, per sentence: the predicted links of every reading (``readings`` order)
    links: dict[str, list[list[set[Link]]]] = field(default_factory=dict)
    #: per sentence: source_words, target_words, sure, possible
    gold: list[dict[str, Any]] = field(default_factory=list)
    #: reference aligners scored on the same gold (:class:`~headscope.align.baselines.Baseline`)
    baselines: list[Baseline] = field(default_factory=list)

    # ---- the main convention's scores -------------------------------------------------------
    @property
    def conventions(self) -> tuple[str, ...]:
        """The scored conventions."""
        return tuple(self.by_convention)

    @property
    def main(self) -> ConventionScores:
        """The scores of the main convention."""
        return self.by_convention[self.convention]

    @property
    def aer(self) -> np.ndarray:
        """``[layers, heads]`` AER of the main convention."""
        return self.main.aer

    @property
    def precision(self) -> np.ndarray:
        """``[layers, heads]`` precision of the main convention."""
        return self.main.precision

    @property
    def recall(self) -> np.ndarray:
        """``[layers, heads]`` recall of the main convention."""
        return self.main.recall

    @property
    def aggregates(self) -> dict[str, dict[str, float]]:
        """Rows of the readings other than heads, by reading name (main convention)."""
        return self.main.aggregates

    @property
    def best_head(self) -> tuple[int, int]:
        """``(layer, head)`` of the best head of the main convention."""
        return self.main.best_head

    @property
    def best_aer(self) -> float:
        """AER of the best head of the main convention."""
        return self.main.best_aer

    # ---- access -------------------------------------------------------------------------------
    def predicted_links(self, sentence: int, reading: ReadingLike = "best", convention: str | None = None) -> set[Link]:
        """Links ``{(source word, target word)}`` predicted for one sentence by one reading.

        ``reading``: ``"best"`` (the convention's best head), a reading name (``"cross.2.3"``,
        ``"cross.2.mean"``, ``"cross.mean"``, ``"cross.rollout"``), a Reading, a head ``Site`` or
        ``(layer, head)``.

        >>> report.predicted_links(0, "cross.2.1", "shift")                   # doctest: +SKIP
        {(0, 0), (1, 2), ...}
        """
        conv = convention or self.convention
        if conv not in self.links:
            raise InputError(f"no links for convention {conv!r}; scored: {list(self.links)}")
        r = self.by_convention[conv].best if isinstance(reading, str) and reading == "best" else as_cross_reading(reading)
        if r not in self.readings:
            raise InputError(f"{r.name!r} was not scored; readings: {', '.join(x.name for x in self.readings)}")
        if not 0 <= sentence < len(self.links[conv]):
            raise InputError(f"sentence {sentence} out of range (0..{len(self.links[conv]) - 1})")
        return set(self.links[conv][sentence][self.readings.index(r)])

    def score(self, reading: ReadingLike, convention: str | None = None) -> dict[str, float]:
        """``precision, recall, aer`` and the counts of one scored reading (a head or an aggregate).

        >>> report.score("cross.2.2")["aer"], report.score("cross.mean", "shift")["aer"]  # doctest: +SKIP
        (0.5717..., 0.7106...)
        """
        conv = convention or self.convention
        if conv not in self.by_convention:
            raise InputError(f"convention {conv!r} was not scored; scored: {list(self.by_convention)}")
        r = as_cross_reading(reading)
        if r not in self.readings:
            raise InputError(f"{r.name!r} was not scored; readings: {', '.join(x.name for x in self.readings)}")
        return self._row(self.by_convention[conv], r)

    def _row(self, sc: ConventionScores, r: Reading) -> dict[str, float]:
        if not isinstance(r, Head):
            row = sc.aggregates[r.name]
            return {k: row[k] for k in ("precision", "recall", "aer", *COUNT_KEYS)}
        i = self.layers.index(r.layer)
        return {k: float(getattr(sc, k)[i, r.head]) for k in ("precision", "recall", "aer")} | {
            k: int(sc.counts[k][i, r.head]) for k in COUNT_KEYS}

    def symmetrized(self, method: str = "grow-diag-final", a: str = "naive", b: str = "shift") -> ConventionScores:
        """Scores of every reading after symmetrising its links under conventions ``a`` and ``b``.

        ``method``: ``intersection``, ``union``, ``grow-diag``, ``grow-diag-final`` or
        ``grow-diag-final-and`` (:func:`headscope.align.symmetrize`). Needs both conventions scored
        (``convention="both"``); the result's convention is named ``"a+b method"``.

        >>> report.symmetrized("intersection").best_aer                       # doctest: +SKIP
        """
        for conv in (a, b):
            if conv not in self.links or len(self.links[conv]) != len(self.gold):
                raise InputError(f"no links for convention {conv!r}; evaluate with convention='both'")
        n = len(self.readings)
        counts = AERCounts((n,))
        for k, g in enumerate(self.gold):
            sure = {tuple(x) for x in g["sure"]}
            possible = {tuple(x) for x in g["possible"]} | sure
            for s in range(n):
                pred = symmetrize(self.links[a][k][s], self.links[b][k][s], method)  # type: ignore[arg-type]
                counts.n_predicted[s] += len(pred)
                counts.n_predicted_sure[s] += len(pred & sure)
                counts.n_predicted_possible[s] += len(pred & possible)
            counts.n_sure += len(sure)
            counts.n_sentences += 1
        return ConventionScores.from_score(f"{a}+{b} {method}", counts.score(), self.readings, self.layers,
                                           self.n_heads)

    # ---- display ------------------------------------------------------------------------------
    def summary(self) -> str:
        """A few lines: model, gold, size, time and the best head (and aggregate) of each convention."""
        lines = [f"alignment of {self.model_name} on {self.gold_name}: {self.n_sentences} sentences, "
                 f"{self.seconds:.1f} s ({self.n_sentences / max(self.seconds, 1e-9):.0f} sentences/s), "
                 f"extraction {self.extraction}"]
        for conv, sc in self.by_convention.items():
            best_agg = min(sc.aggregates.items(), key=lambda kv: kv[1]["aer"], default=None)
            agg = f"; best aggregate {parse_reading(best_agg[0]).label} AER {best_agg[1]['aer']:.3f}" if best_agg else ""
            main = " (main)" if conv == self.convention and len(self.by_convention) > 1 else ""
            lines.append(f"  {conv:<5}{main}: best head {sc.best.name} AER {sc.best_aer:.3f}{agg}")
        if len(self.by_convention) > 1:
            side = "  ".join(f"{c} {sc.best_aer:.3f}" for c, sc in self.by_convention.items())
            lines.append(f"  best-head AER side by side: {side}")
        if self.baselines:
            lines.append("  baselines: " + ", ".join(f"{b.name} AER {b.aer:.3f}" for b in self.baselines)
                         + f"; {self.main.convention}: {self.standing()}")
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()

    def __repr__(self) -> str:
        best = ", ".join(f"{c} {sc.best.name} {sc.best_aer:.3f}" for c, sc in self.by_convention.items())
        return (f"AlignmentReport(model={self.model_name!r}, gold={self.gold_name!r}, sentences={self.n_sentences}, "
                f"{len(self.readings)} readings, best head: {best})")

    def table(self, convention: str | None = None, metric: str = "aer") -> str:
        """Text table per convention: layers x heads (best head marked ``*``), then one row per aggregate.

        ``metric``: ``"aer"``, ``"precision"`` or ``"recall"``. Without ``convention``, every scored one.
        """
        if metric not in ("aer", "precision", "recall"):
            raise InputError(f"metric must be 'aer', 'precision' or 'recall', not {metric!r}")
        blocks = []
        for conv in [convention] if convention else self.conventions:
            sc = self.by_convention[conv]
            values = getattr(sc, metric)
            name = metric.upper() if metric == "aer" else metric
            lines = [f"{name} by cross-attention head ({conv} convention; * = best head by AER)",
                     "layer  " + "".join(f"{'head ' + str(h):>10}" for h in range(self.n_heads))]
            for i, layer in enumerate(self.layers):
                cells = [f"{values[i, h]:>9.3f}{'*' if (layer, h) == sc.best_head else ' '}" for h in range(self.n_heads)]
                lines.append(f"{layer:>5}  " + "".join(cells))
            i, h = self.layers.index(sc.best_head[0]), sc.best_head[1]
            lines.append(f"best head: {sc.best.name}, AER {sc.best_aer:.3f} "
                         f"(P {sc.precision[i, h]:.3f}, R {sc.recall[i, h]:.3f})")
            if sc.aggregates:
                lines.append(f"{'aggregate':<18}{'precision':>10}{'recall':>10}{'AER':>10}")
                lines += [f"{parse_reading(n).label:<18}{row['precision']:>10.3f}{row['recall']:>10.3f}"
                          f"{row['aer']:>10.3f}" for n, row in sc.aggregates.items()]
            if self.baselines:
                lines.append(f"{'baseline':<18}{'precision':>10}{'recall':>10}{'AER':>10}")
                lines += [f"{b.name:<18}{b.precision:>10.3f}{b.recall:>10.3f}{b.aer:>10.3f}" for b in self.baselines]
                lines.append(self.standing(conv))
            blocks.append("\n".join(lines))
        return "\n\n".join(blocks)

    def markdown(self) -> str:
        """Markdown tables per convention (AER / precision / recall per head, best in bold; then the
        aggregates), then the best-head AER of each convention side by side."""
        out = []
        for conv, sc in self.by_convention.items():
            out += [f"**{conv}** convention — cells are AER / precision / recall; best head in bold\n",
                    "| layer | " + " | ".join(f"head {h}" for h in range(self.n_heads)) + " |",
                    "|---:|" + "---:|" * self.n_heads]
            for i, layer in enumerate(self.layers):
                cells = [f"{sc.aer[i, h]:.3f} / {sc.precision[i, h]:.3f} / {sc.recall[i, h]:.3f}"
                         for h in range(self.n_heads)]
                cells = [f"**{c}**" if (layer, h) == sc.best_head else c for h, c in enumerate(cells)]
                out.append(f"| {layer} | " + " | ".join(cells) + " |")
            if sc.aggregates:
                out.append("\n| aggregate | AER | precision | recall |\n|---|---:|---:|---:|")
                out += [f"| {parse_reading(n).label} | {row['aer']:.3f} | {row['precision']:.3f} | {row['recall']:.3f} |"
                        for n, row in sc.aggregates.items()]
            if self.baselines:
                out.append("\n| baseline (no attention) | AER | precision | recall |\n|---|---:|---:|---:|")
                out += [f"| {b.name} | {b.aer:.3f} | {b.precision:.3f} | {b.recall:.3f} |" for b in self.baselines]
                out.append(f"\n{self.standing(conv)}")
            out.append("")
        refs = "".join(f" {b.name} AER |" for b in self.baselines)
        out += ["| convention | best head | best-head AER | all-heads mean AER |" + refs,
                "|---|---|---:|---:|" + "---:|" * len(self.baselines)]
        for conv, sc in self.by_convention.items():
            mean = sc.aggregates.get(_ALL_MEAN, {}).get("aer", math.nan)
            out.append(f"| {conv} | `{sc.best.name}` | {sc.best_aer:.3f} | {mean:.3f} |"
                       + "".join(f" {b.aer:.3f} |" for b in self.baselines))
        return "\n".join(out)

    def standing(self, convention: str | None = None) -> str:
        """One line placing the best head, the best aggregate and the all-heads mean of a convention
        between the baselines, lowest AER first.

        >>> report.standing()                                                 # doctest: +SKIP
        'AER, lowest first: eflomal 0.124 < diagonal 0.542 < best head cross.2.2 0.572 < all-heads mean 0.586'
        """
        sc = self.by_convention[convention or self.convention]
        items = [(f"best head {sc.best.name}", sc.best_aer)]
        best_agg = min(((n, row) for n, row in sc.aggregates.items() if n != _ALL_MEAN),
                       key=lambda kv: kv[1]["aer"], default=None)
        if best_agg is not None:
            items.append((f"best aggregate {parse_reading(best_agg[0]).label}", best_agg[1]["aer"]))
        if _ALL_MEAN in sc.aggregates:
            items.append((parse_reading(_ALL_MEAN).label, sc.aggregates[_ALL_MEAN]["aer"]))
        return standing(items, self.baselines)

    def to_rows(self) -> list[dict[str, Any]]:
        """One row per convention and reading: ``convention, reading`` (name), ``label, layer, head,
        precision, recall, aer``, the counts and ``best`` (the convention's best head)."""
        rows = []
        for conv, sc in self.by_convention.items():
            for r in self.readings:
                rows.append({"convention": conv, "reading": r.name, "label": r.label,
                             "layer": getattr(r, "layer", None), "head": getattr(r, "head", None),
                             **self._row(sc, r), "best": r == sc.best})
        return rows

    # ---- files --------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike, extra_files: dict[str, bytes] | None = None) -> Path:
        """Write folder ``path`` atomically: ``report.json`` (everything but the links, with a
        ``"format"`` number; the baselines' scores under ``"baselines"``), ``scores.csv`` (:meth:`to_rows`)
        and ``links.jsonl`` (per sentence: gold and predicted links of every reading and of each baseline), plus ``extra_files`` (name -> bytes, e.g. the
        heatmaps ``headscope align`` draws) in the same atomic step. Returns the folder.

        >>> report.save("align-en-fr")                                        # doctest: +SKIP
        PosixPath('align-en-fr')
        """
        meta = {"model_name": self.model_name, "gold_name": self.gold_name, "conventions": list(self.conventions),
                "convention": self.convention, "extraction": self.extraction, "layers": self.layers,
                "n_heads": self.n_heads, "n_sentences": self.n_sentences, "seconds": self.seconds,
                "readings": [r.name for r in self.readings], "notes": self.notes,
                "scores": {c: s.as_dict() for c, s in self.by_convention.items()},
                "baselines": [b.as_dict() for b in self.baselines]}
        with_links = [b for b in self.baselines if len(b.links) == len(self.gold)]
        links = ({"sentence": k, **g, "predicted": {
            conv: {r.name: sorted(map(list, per[k][s])) for s, r in enumerate(self.readings)}
            for conv, per in self.links.items()},
            **({"baselines": {b.name: sorted(map(list, b.links[k])) for b in with_links}} if with_links else {})}
            for k, g in enumerate(self.gold))
        return write_folder(path, meta, self.to_rows(), links, extra_files)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "AlignmentReport":
        """Read a folder written by :meth:`save` (also of an older format); links when ``links.jsonl`` is there.

        >>> AlignmentReport.load("align-en-fr").best_head                     # doctest: +SKIP
        (2, 2)
        """
        meta, rows = read_folder(path)
        try:
            by_conv = {c: ConventionScores.from_dict(d) for c, d in meta.pop("scores").items()}
            names = meta.pop("readings")
            meta.pop("conventions")
            links = {c: [[{tuple(x) for x in row["predicted"][c][n]} for n in names] for row in rows]
                     for c in by_conv}
            refs = [Baseline.from_dict(d, [{tuple(x) for x in row["baselines"][d["name"]]} for row in rows]
                                       if rows and all(d["name"] in row.get("baselines", {}) for row in rows) else None)
                    for d in meta.pop("baselines", [])]
            gold = [{k: v for k, v in row.items() if k not in ("sentence", "predicted", "baselines")} for row in rows]
            return cls(by_convention=by_conv, readings=[parse_reading(n) for n in names],
                       links=links if rows else {}, gold=gold, baselines=refs, **meta)
        except (KeyError, TypeError, ValueError) as err:
            raise InputError(f"{path}: fields do not make an alignment report ({type(err).__name__}: {err}); "
                             "save the report again") from None
