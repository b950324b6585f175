"""Attention against other explanations, per decision and over a dataset.

:func:`compare_rankings` compares, on one example, the attention ranking of the source tokens
with other importance rankings (Kendall tau-b; Jain & Wallace 2019), erases tokens in each
ranking's order until the decision flips (Serrano & Smith 2019) and, optionally, scores ERASER
comprehensiveness and sufficiency (DeYoung et al. 2020). The result is a
:class:`RankingComparison` with one :class:`RowComparison` per decision explained, whatever the
architecture (one for a label or a next token; one per non-special target token of an
encoder-decoder). :func:`summarise` turns many into a :class:`RankingSummary`.

>>> comparison = compare_rankings(insp)                   # doctest: +SKIP
>>> print(summarise([comparison]).table())                # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..inspection import display_token
from ._common import as_examples
from .importance import importance_of
from .metrics import (
    ErasureOracle,
    FlipResult,
    decision_functions,
    eraser_aopc,
    erasure_flip,
    kendall_tau,
    random_ranking,
    tau_summary,
)

ERASER_KEYS = ("comprehensiveness", "sufficiency")


@dataclass(frozen=True)
class RowComparison:
    """One decision: Kendall tau of attention against each other method, the erasure flip of each
    ranking, and ERASER AOPC of each ranking (empty when not computed)."""

    row: int
    decision: str
    tau: dict[str, float]
    flip: dict[str, FlipResult]
    eraser: dict[str, dict[str, float]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {"row": self.row, "decision": self.decision, "tau": dict(self.tau),
                "flip": {k: f.to_dict() for k, f in self.flip.items()}, "eraser": dict(self.eraser)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RowComparison":
        """Inverse of :meth:`to_dict`."""
        flips = {k: FlipResult(int(f["n_erased"]), int(f["n_erasable"]), bool(f["flipped"]))
                 for k, f in data["flip"].items()}
        return cls(int(data["row"]), str(data["decision"]), {k: float(v) for k, v in data["tau"].items()}, flips,
                   {k: dict(v) for k, v in data.get("eraser", {}).items()})


@dataclass(repr=False)
class RankingComparison:
    """Attention against other explanations on one example: one :class:`RowComparison` per decision.

    Attributes
    ----------
    model_name, architecture : str
        The model.
    reading : str
        The attention reading compared (e.g. ``"cross.2.mean"``).
    source_tokens : list of str
        The ranked tokens (only content tokens are ranked and erased).
    others : list of str
        The methods attention is correlated with.
    rankings : list of str
        The rankings erased (``"random"``: a random order).
    rows : list of RowComparison
        The decisions explained (special output tokens, like a final ``</s>``, are left out).
    """

    model_name: str
    architecture: str
    reading: str
    source_tokens: list[str]
    others: list[str]
    rankings: list[str]
    rows: list[RowComparison]

    def to_rows(self) -> list[dict[str, Any]]:
        """One flat dict per decision, the same keys for every model: ``tau_<method>``,
        ``flip_fraction_<ranking>``, ``flipped_<ranking>``, ``comprehensiveness_<ranking>`` and
        ``sufficiency_<ranking>`` (NaN where ERASER was not computed)."""
        out = []
        for r in self.rows:
            row: dict[str, Any] = {"row": r.row, "decision": r.decision}
            row.update({f"tau_{m}": r.tau[m] for m in self.others})
            row.update({f"flip_fraction_{k}": r.flip[k].fraction for k in self.rankings})
            row.update({f"flipped_{k}": r.flip[k].flipped for k in self.rankings})
            for k in self.rankings:
                row.update({f"{key}_{k}": r.eraser[k][key] if k in r.eraser else float("nan") for key in ERASER_KEYS})
            out.append(row)
        return out

    def table(self) -> str:
        """A line per decision: Kendall taus and the fraction erased before it flipped."""
        header = f"{'decision':<16}" + "".join(f"{'tau ' + m:>14}" for m in self.others) + \
            "".join(f"{'flip ' + k:>16}" for k in self.rankings)
        lines = [self.summary(), header]
        for r in self.rows:
            lines.append(f"{display_token(r.decision)[:16]:<16}" + "".join(f"{r.tau[m]:>14.3f}" for m in self.others)
                         + "".join(f"{r.flip[k].fraction:>16.3f}" for k in self.rankings))
        return "\n".join(lines)

    def summary(self) -> str:
        """Two lines: what was compared, and the median taus."""
        medians = ", ".join(f"{m} {np.nanmedian([r.tau[m] for r in self.rows]):+.3f}" if self.rows else f"{m} n/a"
                            for m in self.others)
        return (f"attention ({self.reading}) of {self.model_name} vs {', '.join(self.others)} on "
                f"{len(self.rows)} decision(s)\n  median Kendall tau: {medians}")

    def __str__(self) -> str:
        return self.summary()

    def __repr__(self) -> str:
        return f"<RankingComparison {self.reading} vs {self.others}, {len(self.rows)} decision(s)>"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (:meth:`from_dict` reads it back)."""
        return {"model_name": self.model_name, "architecture": self.architecture, "reading": self.reading,
                "source_tokens": self.source_tokens, "others": self.others, "rankings": self.rankings,
                "rows": [r.to_dict() for r in self.rows]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RankingComparison":
        """Inverse of :meth:`to_dict`; also reads the per-family dicts of headscope 0.2 reports."""
        if data.get("rows") and not isinstance(data["rows"][0], dict):
            data = _legacy(data)
        return cls(data["model_name"], data["architecture"], data["reading"], list(data["source_tokens"]),
                   list(data["others"]), list(data["rankings"]), [RowComparison.from_dict(r) for r in data["rows"]])


def _legacy(old: dict[str, Any]) -> dict[str, Any]:
    """A headscope 0.2 ``compare_rankings`` dict (a scalar per method for classifiers, a list per
    target row for encoder-decoders) in the current layout; model and tokens were not saved."""
    def pick(value: Any, i: int) -> Any:
        return value[i] if isinstance(value, list) else value

    rows = [{"row": t, "decision": str(t), "tau": {m: pick(v, i) for m, v in old["tau"].items()},
             "flip": {k: pick(v, i) for k, v in old["flip"].items()},
             "eraser": old.get("eraser", {}) if len(old["rows"]) == 1 else {}}
            for i, t in enumerate(old["rows"])]
    return {"model_name": "", "architecture": "", "reading": "", "source_tokens": [], "others": list(old["tau"]),
            "rankings": list(old["flip"]), "rows": rows}


def compare_rankings(source: Any, others: Sequence[str] = ("gradient", "loo"),
                     flip_rankings: Sequence[str] = ("attention", "gradient", "loo", "random"),
                     eraser: bool | None = None, seed: int = 0, attention_options: dict[str, Any] | None = None,
                     variant: str = "remove") -> RankingComparison:
    """Attention against other explanations on one example (Jain & Wallace; Serrano & Smith; ERASER).

    Parameters
    ----------
    source : Inspection or Example
        One inspected input with its model attached.
    others : sequence of str
        Importance methods (:func:`~headscope.faithful.list_methods`) attention is correlated with.
    flip_rankings : sequence of str
        Rankings erased until the decision flips; ``"random"`` is a random order.
    eraser : bool, optional
        Also ERASER AOPC per ranking; by default only for an example with one decision (it costs
        eleven forwards per decision and ranking).
    seed : int
        Seed of the random rankings.
    attention_options : dict, optional
        Options of the ``attention`` method (``reading=``, ``layer=``, ``head=``).
    variant : str
        How erasure blanks a token: ``"remove"`` or ``"mask"``.

    Returns
    -------
    RankingComparison
        One row per decision explained: the content (non-special) source tokens are ranked, the
        special output tokens (a final ``</s>``) are not explained.

    Examples
    --------
    >>> insp = headscope.inspect("headscope/sentiment", "A dull film.")   # doctest: +SKIP
    >>> compare_rankings(insp).rows[0].tau["loo"]                        # doctest: +SKIP
    0.33
    """
    ex = as_examples(source)[0]
    rng = np.random.default_rng(seed)
    attention = importance_of(ex, "attention", **(attention_options or {}))
    scores = {"attention": attention.scores}
    for name in dict.fromkeys([*others, *[r for r in flip_rankings if r not in ("attention", "random")]]):
        scores[name] = importance_of(ex, name).scores
    content = ex.content
    rows = ex.explained
    eraser = len(ex.decisions) == 1 if eraser is None else eraser
    oracle = ErasureOracle(ex, variant)
    flips: dict[int, dict[str, FlipResult]] = {t: {} for t in rows}
    aopc: dict[int, dict[str, dict[str, float]]] = {t: {} for t in rows}
    for name in flip_rankings:
        for t in rows:
            ranking = random_ranking(len(ex.source_ids), rng) if name == "random" else scores[name][t]
            label, prob = decision_functions(ex, t, oracle=oracle)
            flips[t][name] = erasure_flip(label, ranking, content)
            if eraser:
                found = eraser_aopc(prob, ranking, content)
                aopc[t][name] = {key: found[key] for key in ERASER_KEYS}
    compared = [RowComparison(t, ex.decision_names[t],
                              {m: kendall_tau(scores["attention"][t], scores[m][t], content) for m in others},
                              flips[t], aopc[t]) for t in rows]
    assert attention.reading is not None
    return RankingComparison(ex.loaded.name, ex.architecture.name, attention.reading.name, list(ex.source_tokens),
                             list(others), list(flip_rankings), compared)


# ---- over a dataset ---------------------------------------------------------------------------

def _mean(values: Sequence[float]) -> float:
    arr = np.asarray(values, dtype=float)
    arr = arr[~np.isnan(arr)]
    return float(arr.mean()) if len(arr) else float("nan")


@dataclass
class RankingSummary:
    """The distribution of :class:`RankingComparison` results over a dataset, pooled over decisions.

    ``tau[method]`` is :func:`~headscope.faithful.tau_summary` of the taus; ``flip[ranking]`` holds
    ``n``, the share ``flipped``, the mean and median fraction erased among the flipped ones and
    the mean fraction over all; ``eraser[ranking]`` the mean comprehensiveness and sufficiency.
    """

    tau: dict[str, dict[str, float]]
    flip: dict[str, dict[str, float]]
    eraser: dict[str, dict[str, float]] = field(default_factory=dict)

    def table(self) -> str:
        """The tables of the faithfulness report: taus, erasure flips, ERASER AOPC."""
        lines = ["Kendall tau-b between attention and other explanations (content tokens; Jain & Wallace 2019):",
                 f"  {'vs':<14}{'n':>6}{'mean':>8}{'median':>8}{'q25':>8}{'q75':>8}{'<0':>7}"]
        for name, s in self.tau.items():
            if s["n"]:
                lines.append(f"  {name:<14}{s['n']:>6}{s['mean']:>8.3f}{s['median']:>8.3f}{s['q25']:>8.3f}"
                             f"{s['q75']:>8.3f}{s['frac_below_0']:>7.2f}")
        lines.append("Erasure until the decision flips (Serrano & Smith 2019):")
        lines.append(f"  {'ranking':<14}{'n':>6}{'flipped':>9}{'frac|flip':>11}{'median':>8}")
        for name, f in self.flip.items():
            lines.append(f"  {name:<14}{f['n']:>6}{f['flipped']:>9.2f}{f['mean_fraction_when_flipped']:>11.3f}"
                         f"{f['median_fraction_when_flipped']:>8.3f}")
        if self.eraser:
            lines.append("ERASER AOPC over top-{1,5,10,20,50}% (DeYoung et al. 2020):")
            for name, e in self.eraser.items():
                lines.append(f"  {name:<14}comprehensiveness {e['comprehensiveness']:+.4f}  "
                             f"sufficiency {e['sufficiency']:+.4f}")
        return "\n".join(lines)

    def to_rows(self) -> list[dict[str, Any]]:
        """One flat dict per (measure, method): ``{"measure": "tau" | "flip" | "eraser", "method", ...}``."""
        return [{"measure": measure, "method": name, **values}
                for measure, by_name in (("tau", self.tau), ("flip", self.flip), ("eraser", self.eraser))
                for name, values in by_name.items()]

    def __str__(self) -> str:
        return self.table()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (:meth:`from_dict` reads it back)."""
        return {"tau": self.tau, "flip": self.flip, "eraser": self.eraser}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RankingSummary":
        """Inverse of :meth:`to_dict`."""
        return cls(dict(data["tau"]), dict(data["flip"]), dict(data.get("eraser") or {}))


def summarise(comparisons: Sequence[RankingComparison]) -> RankingSummary:
    """Dataset-level summary of :func:`compare_rankings` results, pooled over every decision.

    >>> print(summarise([compare_rankings(i) for i in insps]).table())     # doctest: +SKIP
    """
    rows = [r for c in comparisons for r in c.rows]
    first = comparisons[0]
    taus = {m: tau_summary([r.tau[m] for r in rows]) for m in first.others}
    flips = {}
    for name in first.rankings:
        items = [r.flip[name] for r in rows]
        flipped = [f.fraction for f in items if f.flipped]
        flips[name] = {"n": len(items), "flipped": float(np.mean([f.flipped for f in items])) if items else 0.0,
                       "mean_fraction_when_flipped": _mean(flipped),
                       "median_fraction_when_flipped": float(np.median(flipped)) if flipped else float("nan"),
                       "mean_fraction_all": _mean([f.fraction for f in items])}
    eraser = {name: {key: _mean([r.eraser[name][key] for r in rows if name in r.eraser]) for key in ERASER_KEYS}
              for name in first.rankings if any(name in r.eraser for r in rows)}
    return RankingSummary(taus, flips, eraser)
