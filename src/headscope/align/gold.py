"""Readers for gold word alignments.

Gold alignments come as one line of links per sentence pair, in the Pharaoh / talp notation
used by GIZA++, fast_align, awesome-align and the 2003 HLT-NAACL shared task
(Mihalcea & Pedersen 2003):

=========================  ==========
token                      link kind
=========================  ==========
``i-j``, ``i-jS``           sure
``ipj``, ``i?j``, ``i-jP``  possible
=========================  ==========

``i`` indexes a word of the source (left) sentence and ``j`` a word of the target (right)
sentence. Indices are 0- or 1-based depending on the file; pass ``index_base`` explicitly,
or leave it ``None`` and the readers infer it only where the file leaves no doubt.

Sentences come as ``source ||| target`` lines or as two parallel files, already tokenised:
words are split on whitespace.

Everything returned is 0-based, links are ``(source index, target index)`` and the possible
links ``P`` always include the sure ones (``S ⊆ P``, Och & Ney 2003).

Example
-------
>>> sure, possible = parse_alignment_line("1-1 2p3 3-2P", index_base=1)
>>> sorted(sure), sorted(possible)
([(0, 0)], [(0, 0), (1, 2), (2, 1)])
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Union

from headscope.errors import GoldFormatError, InputError

if TYPE_CHECKING:  # pragma: no cover
    import datasets

__all__ = [
    "parse_alignment_line",
    "read_alignments",
    "read_sentence_pairs",
    "read_parallel",
    "load_gold",
    "list_gold_sets",
    "gold_set_files",
]

PathLike = Union[str, "os.PathLike[str]"]
Link = tuple[int, int]
SentencePair = tuple[list[str], list[str]]

_DATA = Path(__file__).resolve().parent / "data"

# name -> (sentence file, alignment file, index base); paths relative to align/data/
_GOLD_SETS: dict[str, tuple[str, str, int]] = {
    "hansards-en-fr": ("hansards-en-fr/test.en-fr", "hansards-en-fr/test.gold", 1),
}
# name -> (description, citation), attached as the dataset's info
_GOLD_INFO: dict[str, tuple[str, str]] = {
    "hansards-en-fr": (
        "English-French Canadian Hansards, test set of the HLT-NAACL 2003 word-alignment shared "
        "task: 447 sentence pairs, sure and possible links, English = source. See "
        "headscope/align/data/hansards-en-fr/README.md for provenance and licence.",
        "Rada Mihalcea and Ted Pedersen. 2003. An Evaluation Exercise for Word Alignment. "
        "HLT-NAACL 2003 Workshop on Building and Using Parallel Texts.",
    ),
}

# i-j | i-jS | i-jP | ipj | i?j
_TOKEN = re.compile(r"^(\d+)(?:-(\d+)([SP]?)|([p?])(\d+))$")


@dataclass(frozen=True)
class _RawLink:
    i: int
    j: int
    sure: bool
    token: str


def _parse_token(token: str) -> _RawLink:
    m = _TOKEN.match(token)
    if m is None:
        raise GoldFormatError(
            f"bad alignment token {token!r}: expected i-j or i-jS (sure), ipj, i?j or i-jP "
            "(possible), with i and j non-negative integers"
        )
    if m.group(2) is not None:
        return _RawLink(int(m.group(1)), int(m.group(2)), m.group(3) != "P", token)
    return _RawLink(int(m.group(1)), int(m.group(5)), False, token)


def _parse_raw_line(line: str) -> list[_RawLink]:
    return [_parse_token(tok) for tok in line.split()]


def _check_base(index_base: int | None) -> None:
    if index_base not in (None, 0, 1):
        raise InputError(f"index_base must be 0, 1 or None, not {index_base!r}")


def _convert(
    raw: list[_RawLink],
    index_base: int,
    reverse: bool,
    lengths: tuple[int, int] | None,
) -> tuple[set[Link], set[Link]]:
    """Raw links of one line -> (sure, possible) 0-based, validated, possibly reversed."""
    sure: set[Link] = set()
    possible: set[Link] = set()
    for link in raw:
        i, j = link.i - index_base, link.j - index_base
        if i < 0 or j < 0:
            raise GoldFormatError(
                f"link {link.token!r} uses index 0, which does not exist in a 1-based file "
                "(pass index_base=0 if the file is 0-based)"
            )
        if lengths is not None:
            n_src, n_tgt = lengths
            for side, idx, n in (("source", i, n_src), ("target", j, n_tgt)):
                if idx >= n:
                    lo, hi = index_base, n - 1 + index_base
                    raise GoldFormatError(
                        f"link {link.token!r}: {side} index {idx + index_base} is outside the "
                        f"{side} sentence ({n} words, {index_base}-based indices {lo}..{hi})"
                    )
        pair = (j, i) if reverse else (i, j)
        possible.add(pair)
        if link.sure:
            sure.add(pair)
    return sure, possible


def parse_alignment_line(
    line: str,
    *,
    index_base: int = 0,
    reverse: bool = False,
    lengths: tuple[int, int] | None = None,
) -> tuple[set[Link], set[Link]]:
    """Parse one line of Pharaoh / talp links into 0-based ``(sure, possible)`` link sets.

    ``possible`` is P and contains the sure links. ``lengths = (n_source, n_target)`` in the
    line's own orientation, if given, refuses links outside the sentence. ``reverse=True``
    returns ``(j, i)`` links.

    >>> sure, possible = parse_alignment_line("0-0 1p1 2?0", index_base=0)
    >>> sorted(sure), sorted(possible)
    ([(0, 0)], [(0, 0), (1, 1), (2, 0)])
    >>> parse_alignment_line("1-2", index_base=1, reverse=True)
    ({(1, 0)}, {(1, 0)})

    Raises :class:`~headscope.errors.GoldFormatError` (no file or line: see
    :func:`read_alignments` for those).
    """
    if index_base not in (0, 1):
        raise InputError(f"index_base must be 0 or 1 for a single line, not {index_base!r}")
    return _convert(_parse_raw_line(line), index_base, reverse, lengths)


def _read_lines(path: PathLike) -> list[str]:
    """Lines of a UTF-8 text file without line ends (a final newline adds no empty line)."""
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise GoldFormatError("file not found", path=str(path)) from None
    except UnicodeDecodeError as e:
        raise GoldFormatError(f"not UTF-8 text ({e})", path=str(path)) from None
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [ln.rstrip("\r") for ln in lines]


def _infer_base(
    raws: list[list[_RawLink]], lengths: Sequence[tuple[int, int]] | None, path: str
) -> int:
    zero_line = len_line = None
    for n, raw in enumerate(raws, start=1):
        for link in raw:
            if zero_line is None and (link.i == 0 or link.j == 0):
                zero_line = (n, link.token)
            if (
                len_line is None
                and lengths is not None
                and (link.i == lengths[n - 1][0] or link.j == lengths[n - 1][1])
            ):
                len_line = (n, link.token)
    if zero_line and len_line:
        raise GoldFormatError(
            f"cannot be 0-based (line {len_line[0]}: {len_line[1]!r} uses an index equal to the "
            f"sentence length) nor 1-based (line {zero_line[0]}: {zero_line[1]!r} uses index 0)",
            path=path,
            line=len_line[0],
        )
    if zero_line:
        return 0
    if len_line:
        return 1
    if any(raws):
        raise GoldFormatError(
            "cannot tell whether the indices are 0- or 1-based (no link uses index 0"
            + (" or an index equal to the sentence length" if lengths is not None else "")
            + "); pass index_base=0 or index_base=1",
            path=path,
        )
    return 0  # no links at all: the base does not matter


def read_alignments(
    path: PathLike,
    *,
    index_base: int | None = None,
    reverse: bool = False,
    lengths: Sequence[tuple[int, int]] | None = None,
) -> list[tuple[set[Link], set[Link]]]:
    """Read a Pharaoh / talp alignment file: one ``(sure, possible)`` pair of 0-based link sets per line.

    ``lengths`` (one ``(n_source, n_target)`` per line, in the file's orientation) checks every
    index and lets ``index_base=None`` infer the base: an index 0 means 0-based, an index equal
    to the sentence length means 1-based; with neither (or without ``lengths`` and no index 0) the
    file is ambiguous and a :class:`~headscope.errors.GoldFormatError` asks for ``index_base``.
    ``reverse=True`` swaps every link to ``(target, source)``.

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "a.gold"
    >>> _ = p.write_text("0-0 1p1\\n\\n")
    >>> [(sorted(s), sorted(p)) for s, p in read_alignments(p)]
    [([(0, 0)], [(0, 0), (1, 1)]), ([], [])]
    """
    _check_base(index_base)
    spath = str(path)
    lines = _read_lines(path)
    if lengths is not None and len(lengths) != len(lines):
        n = min(len(lengths), len(lines)) + 1
        raise GoldFormatError(
            f"{len(lines)} alignment lines for {len(lengths)} sentence pairs"
            + (f": line {n} has no sentence pair" if len(lines) > len(lengths)
               else f": sentence pair {n} has no alignment line"),
            path=spath,
            line=n,
        )
    raws: list[list[_RawLink]] = []
    for n, line in enumerate(lines, start=1):
        try:
            raws.append(_parse_raw_line(line))
        except GoldFormatError as e:
            raise GoldFormatError(str(e), path=spath, line=n) from None
    base = _infer_base(raws, lengths, spath) if index_base is None else index_base
    out = []
    for n, raw in enumerate(raws, start=1):
        try:
            out.append(_convert(raw, base, reverse, None if lengths is None else lengths[n - 1]))
        except GoldFormatError as e:
            raise GoldFormatError(str(e), path=spath, line=n) from None
    return out


def read_sentence_pairs(path: PathLike) -> list[SentencePair]:
    """Read ``source ||| target`` lines into ``(source_words, target_words)`` pairs.

    Words are split on whitespace (trailing spaces are dropped). A line without exactly one
    ``|||``, or with an empty side, raises :class:`~headscope.errors.GoldFormatError`.

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "s.txt"
    >>> _ = p.write_text("the house ||| la maison  \\n")
    >>> read_sentence_pairs(p)
    [(['the', 'house'], ['la', 'maison'])]
    """
    spath = str(path)
    pairs = []
    for n, line in enumerate(_read_lines(path), start=1):
        parts = line.split("|||")
        if len(parts) != 2:
            what = "no '|||' separator" if len(parts) == 1 else "more than one '|||'"
            raise GoldFormatError(
                f"{what}: expected 'source words ||| target words'", path=spath, line=n
            )
        src, tgt = parts[0].split(), parts[1].split()
        for side, words in (("source", src), ("target", tgt)):
            if not words:
                raise GoldFormatError(f"empty {side} sentence", path=spath, line=n)
        pairs.append((src, tgt))
    return pairs


def read_parallel(source_path: PathLike, target_path: PathLike) -> list[SentencePair]:
    """Read two parallel files (one tokenised sentence per line) into word-list pairs.

    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "s").write_text("the house\\n"); _ = (d / "t").write_text("la maison\\n")
    >>> read_parallel(d / "s", d / "t")
    [(['the', 'house'], ['la', 'maison'])]
    """
    sides = [_read_lines(source_path), _read_lines(target_path)]
    if len(sides[0]) != len(sides[1]):
        short = 0 if len(sides[0]) < len(sides[1]) else 1
        longer = (source_path, target_path)[1 - short]
        raise GoldFormatError(
            f"{len(sides[1 - short])} lines but the parallel file "
            f"{(source_path, target_path)[short]} has {len(sides[short])}: "
            f"line {len(sides[short]) + 1} has no counterpart",
            path=str(longer),
            line=len(sides[short]) + 1,
        )
    pairs = []
    for n, (s, t) in enumerate(zip(*sides), start=1):
        src, tgt = s.split(), t.split()
        for side, words, p in (("source", src, source_path), ("target", tgt, target_path)):
            if not words:
                raise GoldFormatError(f"empty {side} sentence", path=str(p), line=n)
        pairs.append((src, tgt))
    return pairs


def list_gold_sets() -> list[str]:
    """Names of the gold sets shipped with headscope, for :func:`load_gold`.

    >>> "hansards-en-fr" in list_gold_sets()
    True
    """
    return sorted(_GOLD_SETS)


def gold_set_files(name: str) -> tuple[Path, Path, int]:
    """``(sentence file, alignment file, index base)`` of a built-in gold set."""
    if name not in _GOLD_SETS:
        raise InputError(
            f"unknown gold set {name!r}; built-in sets: {', '.join(list_gold_sets())}. "
            "To use your own files pass (sentences, alignments) or (source, target, alignments) paths."
        )
    sent, ali, base = _GOLD_SETS[name]
    return _DATA / sent, _DATA / ali, base


def load_gold(
    name_or_paths: str | PathLike | Sequence[PathLike],
    *,
    reverse: bool = False,
    index_base: int | None = None,
) -> "datasets.Dataset":
    """Load a gold word-alignment set as a :class:`datasets.Dataset`.

    ``name_or_paths`` is a built-in name (:func:`list_gold_sets`), a pair
    ``(sentences, alignments)`` with ``source ||| target`` sentence lines, or a triple
    ``(source, target, alignments)`` of parallel files. ``index_base`` is 0 or 1; ``None``
    infers it only when the file is unambiguous (see :func:`read_alignments`; built-in sets know
    theirs). ``reverse=True`` swaps the direction: source and target sentences and every link.

    Columns: ``source_words``, ``target_words`` (lists of str), ``sure`` and ``possible``
    (lists of ``[source index, target index]``, 0-based, sorted; ``possible`` is P ⊇ S).

    >>> ds = load_gold("hansards-en-fr")
    >>> ds.num_rows, ds[2]["source_words"], ds[2]["sure"]
    (447, ['oh', ',', 'oh', '!'], [[0, 0], [1, 1], [2, 2], [3, 3]])

    Malformed files raise :class:`~headscope.errors.GoldFormatError` naming file and line.
    """
    _check_base(index_base)
    info = None
    if isinstance(name_or_paths, str) and name_or_paths in _GOLD_SETS:
        sent, ali, base = gold_set_files(name_or_paths)
        info = _GOLD_INFO.get(name_or_paths)
        paths: tuple[PathLike, ...] = (sent, ali)
        if index_base is None:
            index_base = base
    elif isinstance(name_or_paths, (str, os.PathLike)):
        gold_set_files(str(name_or_paths))  # raises: unknown name, with the help text
        raise AssertionError  # pragma: no cover
    else:
        paths = tuple(name_or_paths)
    if len(paths) == 2:
        pairs = read_sentence_pairs(paths[0])
    elif len(paths) == 3:
        pairs = read_parallel(paths[0], paths[1])
    else:
        raise InputError(
            f"load_gold expects a gold set name, (sentences, alignments) or "
            f"(source, target, alignments) paths; got {len(paths)} paths"
        )
    links = read_alignments(
        paths[-1],
        index_base=index_base,
        lengths=[(len(s), len(t)) for s, t in pairs],
    )
    if reverse:
        pairs = [(t, s) for s, t in pairs]
        links = [({(j, i) for i, j in s}, {(j, i) for i, j in p}) for s, p in links]

    import datasets  # imported lazily: it is slow to import

    features = datasets.Features(
        {
            "source_words": datasets.List(datasets.Value("string")),
            "target_words": datasets.List(datasets.Value("string")),
            "sure": datasets.List(datasets.List(datasets.Value("int32"))),
            "possible": datasets.List(datasets.List(datasets.Value("int32"))),
        }
    )
    return datasets.Dataset.from_dict(
        {
            "source_words": [s for s, _ in pairs],
            "target_words": [t for _, t in pairs],
            "sure": [[list(x) for x in sorted(s)] for s, _ in links],
            "possible": [[list(x) for x in sorted(p)] for _, p in links],
        },
        features=features,
        info=None if info is None else datasets.DatasetInfo(
            description=info[0] + (" Loaded with reverse=True: source and target swapped." if reverse else ""),
            citation=info[1],
            features=features,
        ),
    )
