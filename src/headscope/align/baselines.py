"""Reference aligners scored beside the attention readings: the diagonal and a statistical aligner.

An AER says little on its own. Every :class:`~headscope.align.AlignmentReport` carries two
references scored on the same gold links, the same way (corpus precision, recall and AER):

- **diagonal** (no model, always): target word *j* of *m* is linked to source word
  ``min(n - 1, round(j * n / m))`` of *n* (Python's ``round``, halves to even). Position alone:
  an attention reading that scores worse than this reads word order, not word correspondence.
- **eflomal** (optional, ``pip install 'headscope[aligners]'``): the Bayesian HMM-with-fertility
  word aligner of Östling & Tiedemann (2016), trained on the gold set's own sentence pairs plus any
  parallel text passed as ``aligner_text``, run in both directions and symmetrised with
  grow-diag-final-and (Koehn, Och & Marcu 2003; :func:`headscope.align.symmetrize`). Text is
  lowercased before training. eflomal draws its random seed from the operating system and has no
  seed option, so two runs differ a little (on hansards-en-fr by about 0.003 AER); the links of a
  run are saved with the report, and within one process the same text gives the same links
  (the last few runs are kept), so reports made together share one eflomal run. When eflomal is not installed the report carries a one-line note
  with the install command instead.

>>> rows = [{"source_words": ["a", "b"], "target_words": ["x", "y"], "sure": [[0, 0], [1, 1]], "possible": []}]
>>> diagonal(rows).aer
0.0
>>> sorted(diagonal_links(3, 2))
[(0, 0), (2, 1)]
"""

from __future__ import annotations

import hashlib
import importlib.util
import math
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

from headscope.align.extract import symmetrize
from headscope.align.metrics import aer
from headscope.errors import InputError

__all__ = ["ALIGNERS", "INSTALL", "Baseline", "diagonal", "diagonal_links", "eflomal_links",
           "read_aligner_text", "score_baselines", "standing", "statistical"]

Link = tuple[int, int]
Row = dict[str, Any]
#: Parallel text for the statistical aligner: ``(source lines, target lines)`` (whitespace-separated
#: words) or ``(source file, target file)`` with one sentence per line.
AlignerText = Union[tuple[Sequence[str], Sequence[str]], tuple[Union[str, os.PathLike], Union[str, os.PathLike]]]

#: Statistical aligners :func:`baselines` can run.
ALIGNERS: tuple[str, ...] = ("eflomal",)
#: How to get them.
INSTALL = "pip install 'headscope[aligners]'"
_SCORE_KEYS = ("precision", "recall", "aer", "n_predicted", "n_sure", "n_predicted_sure", "n_predicted_possible")
#: eflomal links of the last runs in this process, by a digest of their input (see :func:`eflomal_links`)
_RUNS: dict[str, list[set[Link]]] = {}
_KEEP = 4


@dataclass(repr=False)
class Baseline:
    """One reference aligner scored on a gold set: its scores and its links per sentence.

    ``name`` is ``"diagonal"`` or the aligner's name (``"eflomal"``), ``description`` says how
    the links were made, ``scores`` holds ``precision, recall, aer`` and the AER counts.
    """

    name: str
    description: str
    scores: dict[str, float]
    links: list[set[Link]] = field(default_factory=list)

    @property
    def aer(self) -> float:
        """Corpus AER of the links."""
        return float(self.scores["aer"])

    @property
    def precision(self) -> float:
        """Corpus precision (against possible links)."""
        return float(self.scores["precision"])

    @property
    def recall(self) -> float:
        """Corpus recall (against sure links)."""
        return float(self.scores["recall"])

    def as_dict(self) -> dict[str, Any]:
        """JSON-able fields without the links (they are saved per sentence in ``links.jsonl``)."""
        return {"name": self.name, "description": self.description, "scores": dict(self.scores)}

    @classmethod
    def from_dict(cls, d: dict[str, Any], links: list[set[Link]] | None = None) -> "Baseline":
        """Inverse of :meth:`as_dict`."""
        return cls(str(d["name"]), str(d["description"]), {k: float(d["scores"][k]) for k in _SCORE_KEYS},
                   links or [])

    def __repr__(self) -> str:
        return f"Baseline({self.name!r}, AER {self.aer:.3f}, P {self.precision:.3f}, R {self.recall:.3f})"


def _gold_sets(rows: Sequence[Row]) -> tuple[list[set[Link]], list[set[Link]]]:
    sure = [{(int(i), int(j)) for i, j in r["sure"]} for r in rows]
    possible = [{(int(i), int(j)) for i, j in r["possible"]} | s for r, s in zip(rows, sure)]
    return sure, possible


def _scored(name: str, description: str, links: list[set[Link]], rows: Sequence[Row]) -> Baseline:
    sure, possible = _gold_sets(rows)
    lengths = [(len(r["source_words"]), len(r["target_words"])) for r in rows]
    s = aer(links, sure, possible, lengths=lengths)
    return Baseline(name, description, {k: float(getattr(s, k)) for k in _SCORE_KEYS}, links)


def diagonal_links(n_src: int, n_tgt: int) -> set[Link]:
    """The diagonal's links of one sentence pair: target word ``j`` of ``n_tgt`` linked to source
    word ``min(n_src - 1, round(j * n_src / n_tgt))`` (Python's ``round``: halves to even).

    >>> sorted(diagonal_links(2, 4))   # j*n/m = 0, 0.5, 1, 1.5 -> 0, 0, 1, 2 -> capped at 1
    [(0, 0), (0, 1), (1, 2), (1, 3)]
    """
    if n_src <= 0 or n_tgt <= 0:
        return set()
    return {(min(n_src - 1, round(j * n_src / n_tgt)), j) for j in range(n_tgt)}


def diagonal(rows: Sequence[Row]) -> Baseline:
    """The diagonal baseline (no model) scored on gold ``rows`` (``source_words, target_words,
    sure, possible``, as :func:`~headscope.align.load_gold` gives them).

    >>> rows = [{"source_words": ["a", "b", "c"], "target_words": ["x", "y"], "sure": [[0, 0]], "possible": [[2, 1]]}]
    >>> b = diagonal(rows); (b.precision, b.recall, b.aer)
    (1.0, 1.0, 0.0)
    """
    links = [diagonal_links(len(r["source_words"]), len(r["target_words"])) for r in rows]
    return _scored("diagonal", "no model: target word j of m -> source word min(n - 1, round(j * n / m)) of n",
                   links, rows)


def read_aligner_text(text: AlignerText) -> tuple[list[str], list[str]]:
    """``(source lines, target lines)`` of parallel text given as two line sequences or two files.

    Pairs with an empty side are left out. Lines must pair up one to one.

    >>> read_aligner_text((["a b", "c"], ["x y", "z"]))
    (['a b', 'c'], ['x y', 'z'])
    """
    if not isinstance(text, (tuple, list)) or len(text) != 2:
        raise InputError("aligner_text takes (source lines, target lines) or (source file, target file), "
                         f"not {type(text).__name__}")
    sides = []
    for side, part in zip(("source", "target"), text):
        if isinstance(part, (str, os.PathLike)):
            path = Path(part)
            if not path.is_file():
                raise InputError(f"aligner text {side} file {path} does not exist; pass a file of one sentence per line")
            part = path.read_text(encoding="utf-8").splitlines()
        if not all(isinstance(line, str) for line in part):
            raise InputError(f"aligner text {side}: pass lines of text (str), one sentence each")
        sides.append([" ".join(line.split()) for line in part])
    src, tgt = sides
    if len(src) != len(tgt):
        raise InputError(f"aligner text: {len(src)} source lines but {len(tgt)} target lines; the two sides must "
                         "be parallel, one sentence pair per line")
    keep = [k for k in range(len(src)) if src[k] and tgt[k]]
    return [src[k] for k in keep], [tgt[k] for k in keep]


def _read_links(path: Path, n: int) -> list[set[Link]]:
    lines = path.read_text(encoding="utf-8").split("\n")
    return [{(int(i), int(j)) for i, j in (x.split("-") for x in line.split())} for line in lines[:n]]


def eflomal_links(source: Sequence[str], target: Sequence[str], n: int | None = None, *,
                  symmetrization: str = "grow-diag-final-and", lowercase: bool = True) -> list[set[Link]]:
    """Train eflomal (Östling & Tiedemann 2016) on parallel lines and return the symmetrised links
    of the first ``n`` pairs (all by default).

    Parameters
    ----------
    source, target : one sentence per item, words separated by whitespace.
    n : how many leading pairs to return links for (the rest only help train).
    symmetrization : how the forward and reverse links are combined
        (:data:`~headscope.align.SYMMETRIZATIONS`; default grow-diag-final-and).
    lowercase : lowercase the text first.

    Returns
    -------
    list of set
        Links ``(source word, target word)``, 0-based, per pair.

    eflomal seeds itself from the operating system: two runs may differ slightly. Within one process
    the same input gives the same links (the last few runs are kept).

    >>> eflomal_links(["the house", "the cat"], ["la maison", "le chat"])   # doctest: +SKIP
    [{(0, 0), (1, 1)}, {(0, 0), (1, 1)}]
    """
    if importlib.util.find_spec("eflomal") is None:
        raise InputError(f"eflomal is not installed: {INSTALL}")
    import eflomal

    if len(source) != len(target) or not source:
        raise InputError(f"eflomal needs as many source as target lines, at least one; got {len(source)} and "
                         f"{len(target)}")
    n = len(source) if n is None else n
    prep = (lambda s: s.lower()) if lowercase else (lambda s: s)
    digest = hashlib.sha256("\n".join([symmetrization, str(lowercase), str(n), *source, "\t", *target])
                            .encode("utf-8")).hexdigest()
    if digest in _RUNS:
        return [set(links) for links in _RUNS[digest]]
    with tempfile.TemporaryDirectory(prefix="headscope-eflomal-") as tmp:
        fwd, rev = Path(tmp) / "fwd", Path(tmp) / "rev"
        eflomal.Aligner().align([prep(s) for s in source], [prep(t) for t in target],
                                links_filename_fwd=str(fwd), links_filename_rev=str(rev), quiet=True)
        forward, reverse = _read_links(fwd, n), _read_links(rev, n)
    if len(forward) != n or len(reverse) != n:
        raise InputError(f"eflomal returned links for {min(len(forward), len(reverse))} of {n} sentence pairs")
    links = [symmetrize(a, b, symmetrization) for a, b in zip(forward, reverse)]  # type: ignore[arg-type]
    while len(_RUNS) >= _KEEP:
        del _RUNS[next(iter(_RUNS))]
    _RUNS[digest] = links
    return [set(x) for x in links]


def statistical(rows: Sequence[Row], aligner_text: AlignerText | None = None, *, aligner: str = "eflomal",
                symmetrization: str = "grow-diag-final-and") -> Baseline:
    """A statistical aligner trained on the gold ``rows``' own sentence pairs plus ``aligner_text``,
    scored on the gold links.

    >>> statistical(load_gold("hansards-en-fr")).aer                          # doctest: +SKIP
    0.18...
    """
    if aligner not in ALIGNERS:
        raise InputError(f"aligner must be one of {ALIGNERS} (or None for none), not {aligner!r}")
    src = [" ".join(r["source_words"]) for r in rows]
    tgt = [" ".join(r["target_words"]) for r in rows]
    extra_src, extra_tgt = read_aligner_text(aligner_text) if aligner_text is not None else ([], [])
    links = eflomal_links(src + extra_src, tgt + extra_tgt, len(rows), symmetrization=symmetrization)
    more = f" + {len(extra_src):,} pairs of aligner text" if extra_src else ""
    return _scored(aligner, f"eflomal (Östling & Tiedemann 2016), lowercased, trained on the {len(rows):,} gold "
                            f"pairs{more}; {symmetrization}", links, rows)


def score_baselines(rows: Sequence[Row], *, aligner: str | None = "eflomal",
              aligner_text: AlignerText | None = None) -> tuple[list[Baseline], list[str]]:
    """The baselines of an alignment report: ``([diagonal, statistical aligner], notes)``.

    Without eflomal installed (or with ``aligner=None``) only the diagonal, and a note saying why.

    >>> rows = [{"source_words": ["a"], "target_words": ["x"], "sure": [[0, 0]], "possible": []}]
    >>> [b.name for b in score_baselines(rows, aligner=None)[0]]
    ['diagonal']
    """
    if aligner_text is not None and aligner is None:
        raise InputError("aligner_text trains the statistical aligner: leave aligner='eflomal' (or drop aligner_text)")
    out, notes = [diagonal(rows)], []
    if aligner is None:
        return out, notes
    if aligner not in ALIGNERS:
        raise InputError(f"aligner must be one of {ALIGNERS} or None, not {aligner!r}")
    if importlib.util.find_spec(aligner) is None:
        notes.append(f"statistical aligner baseline not run: {aligner} is not installed ({INSTALL})")
        return out, notes
    out.append(statistical(rows, aligner_text, aligner=aligner))
    return out, notes


def standing(readings: Sequence[tuple[str, float]], refs: Sequence[Baseline]) -> str:
    """One line placing readings between the baselines, lowest AER first.

    >>> b = Baseline("diagonal", "", {"aer": 0.542})
    >>> standing([("best head cross.2.2", 0.572)], [b])
    'AER, lowest first: diagonal 0.542 < best head cross.2.2 0.572'
    """
    items = [(label, value) for label, value in readings if not math.isnan(value)]
    items += [(b.name, b.aer) for b in refs]
    items.sort(key=lambda kv: kv[1])
    return "AER, lowest first: " + " < ".join(f"{label} {value:.3f}" for label, value in items)
