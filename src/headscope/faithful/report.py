"""A faithfulness report over a set of texts: head ablation and attention against other explanations.

:func:`faithfulness_report` runs :func:`~headscope.faithful.head_ablation` on (the first) inputs
and :func:`~headscope.faithful.compare_rankings` on each, and returns a
:class:`FaithfulnessReport` that prints, converts to rows and saves as ``faithful.json`` with the
tables ``heads.csv`` (one row per ablation) and ``examples.csv`` (one row per decision).

>>> report = faithfulness_report("headscope/sentiment", ["A dull film.", "A gem."])   # doctest: +SKIP
>>> print(report.ranking_summary.table())                                           # doctest: +SKIP
>>> report.save("faithful-report/")                                                  # doctest: +SKIP
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import InputError
from ._common import as_examples
from ._io import dump_json, read_json, save_folder
from .ablation import AblationResult, head_ablation
from .comparison import RankingComparison, RankingSummary, compare_rankings, summarise

FORMAT_VERSION = 1
_FILE, _HEADS, _EXAMPLES = "faithful.json", "heads.csv", "examples.csv"


@dataclass(repr=False)
class FaithfulnessReport:
    """Faithfulness of the attention of one model on a set of texts.

    Attributes
    ----------
    model_name, architecture : str
        The model.
    texts : list of str
        The inputs.
    predictions : list of dict
        The model's prediction on each (as in ``Inspection.prediction``).
    comparisons : list of RankingComparison
        :func:`~headscope.faithful.compare_rankings` of each input.
    ranking_summary : RankingSummary
        Their :func:`~headscope.faithful.summarise`.
    ablation : AblationResult or None
        :func:`~headscope.faithful.head_ablation` of (the first) inputs.
    """

    model_name: str
    architecture: str
    texts: list[str]
    predictions: list[dict[str, Any]]
    comparisons: list[RankingComparison]
    ranking_summary: RankingSummary
    ablation: AblationResult | None = None

    def summary(self) -> str:
        """A few lines: the model and data, the ablation's largest effects, the median taus."""
        lines = [f"{self.model_name} ({self.architecture}), {len(self.texts)} text(s), "
                 f"{sum(len(c.rows) for c in self.comparisons)} decision(s) explained"]
        if self.ablation is not None:
            lines += ["  " + line for line in self.ablation.summary().splitlines()]
        for name, s in self.ranking_summary.tau.items():
            if s["n"]:
                lines.append(f"  Kendall tau attention vs {name}: median {s['median']:+.3f} (n {s['n']})")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()

    def __repr__(self) -> str:
        return f"<FaithfulnessReport {self.model_name}: {len(self.texts)} texts>"

    def table(self) -> str:
        """The dataset-level tables (taus, erasure flips, ERASER AOPC)."""
        return self.ranking_summary.table()

    def to_rows(self) -> list[dict[str, Any]]:
        """One dict per (example, decision): ``example`` and the :meth:`RankingComparison.to_rows` fields."""
        return [{"example": i, **row} for i, c in enumerate(self.comparisons) for row in c.to_rows()]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (:meth:`from_dict` reads it back)."""
        return {"model_name": self.model_name, "architecture": self.architecture, "texts": self.texts,
                "predictions": self.predictions, "summary": self.ranking_summary.to_dict(),
                "examples": [c.to_dict() for c in self.comparisons],
                "ablation": None if self.ablation is None else self.ablation.to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "FaithfulnessReport":
        """Inverse of :meth:`to_dict`."""
        ablation = None if data.get("ablation") is None else AblationResult.from_dict(data["ablation"])
        return cls(data["model_name"], data["architecture"], list(data["texts"]), list(data["predictions"]),
                   [RankingComparison.from_dict(c) for c in data["examples"]],
                   RankingSummary.from_dict(data["summary"]), ablation)

    def save(self, path: str | os.PathLike) -> Path:
        """Write folder ``path`` atomically: ``faithful.json``, ``examples.csv`` and (with an ablation)
        ``heads.csv``.

        >>> report.save("report/"); FaithfulnessReport.load("report/")     # doctest: +SKIP
        """
        files = {_FILE: dump_json(self.to_dict(), FORMAT_VERSION), _EXAMPLES: _csv(self.to_rows())}
        if self.ablation is not None:
            files[_HEADS] = _csv([{"head": row["ablated"], **{k: v for k, v in row.items() if k not in ("ablated", "step")}}
                                  for row in self.ablation.to_rows()])
        return save_folder(path, files, what="faithfulness report")

    @classmethod
    def load(cls, path: str | os.PathLike) -> "FaithfulnessReport":
        """Read a folder written by :meth:`save` (its format version and the consistency of its
        numbers checked: :class:`~headscope.errors.InputError` naming the file otherwise)."""
        data = read_json(path, _FILE, "faithfulness report", FORMAT_VERSION)
        file = Path(path) / _FILE
        try:
            report = cls.from_dict(data)
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise InputError(f"{file}: fields do not make a faithfulness report ({type(err).__name__}: {err}); "
                             "save it again") from None
        problem = report._inconsistency()
        if problem:
            raise InputError(f"{file}: {problem}; the file was edited or damaged: save the report again")
        return report

    def _inconsistency(self) -> str | None:
        """What does not fit together in this report (for :meth:`load`), or ``None``."""
        n = len(self.texts)
        if len(self.predictions) != n or len(self.comparisons) != n:
            return f"{n} texts but {len(self.predictions)} predictions and {len(self.comparisons)} comparisons"
        for i, c in enumerate(self.comparisons):
            for r in c.rows:
                if set(r.tau) != set(c.others) or set(r.flip) != set(c.rankings):
                    return f"example {i}, decision {r.decision!r}: methods {sorted(r.tau)} / {sorted(r.flip)} " \
                           f"are not the compared {c.others} / {c.rankings}"
        a = self.ablation
        if a is None:
            return None
        if a.n_examples > n or len(a.per_token) != a.n_examples:
            return f"the ablation has {a.n_examples} examples and {len(a.per_token)} per-token rows for {n} texts"
        for m, v in a.per_example.items():
            if v.shape != (len(a.configs), a.n_examples):
                return f"ablation {m} per example has shape {list(v.shape)}, not [{len(a.configs)} ablations, " \
                       f"{a.n_examples} examples]"
            if m not in a.effects:
                return f"ablation measure {m} has no effects"
        for i, t in enumerate(a.per_token):
            if t.ndim != 2 or t.shape[0] != len(a.configs):
                return f"ablation per-token drops of example {i} have shape {list(t.shape)}"
        if a.mode == "single":
            for m, by_kind in a.effects.items():
                if sum(v.size for v in by_kind.values()) != len(a.configs):
                    return f"ablation {m} effects cover {sum(v.size for v in by_kind.values())} heads, " \
                           f"not the {len(a.configs)} ablated"
        return None


def _csv(rows: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    if rows:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()} for row in rows)
    return out.getvalue()


def faithfulness_report(source: Any, text: Any = None, target: Any = None, *, ablation_texts: int | None = None,
                        batch_size: int = 64, progress: bool = False) -> FaithfulnessReport:
    """Head ablation and attention-vs-explanation comparisons of a model on a set of texts.

    Parameters
    ----------
    source : Inspection, list of Inspection, or model
        Inspection(s) with their model attached, or a model with ``text``.
    text, target : str or list of str, optional
        Text(s), and forced target(s) of an encoder-decoder, when ``source`` is a model.
    ablation_texts : int, optional
        Ablate heads on the first ``ablation_texts`` inputs (default all; 0: no ablation).
    batch_size : int
        Rows per forward pass of the head ablation.
    progress : bool
        Show tqdm progress bars.

    Returns
    -------
    FaithfulnessReport

    Examples
    --------
    >>> report = faithfulness_report("headscope/en-fr", ["A red car.", "Two dogs."])   # doctest: +SKIP
    >>> print(report)                                                                 # doctest: +SKIP
    """
    from tqdm.auto import tqdm

    examples = as_examples(source, text, target)
    loaded = examples[0].loaded
    limit = len(examples) if ablation_texts is None else ablation_texts
    ablation = head_ablation(examples[:limit], batch_size=batch_size, progress=progress) if limit > 0 else None
    comparisons = [compare_rankings(ex) for ex in tqdm(examples, desc="explanations", unit="text",
                                                          disable=not progress)]
    return FaithfulnessReport(loaded.name, loaded.architecture.name, [ex.inspection.source_text for ex in examples],
                              [ex.inspection.prediction for ex in examples], comparisons, summarise(comparisons),
                              ablation)
