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

The grammar, exactly (anything else is a :class:`~headscope.errors.GoldFormatError` naming the
file, the line and the fix):

* Files are UTF-8 (a leading byte-order mark is ignored); lines end with ``\n`` (a ``\r`` before it
  is dropped); a final line end adds no empty line.
* An alignment line is zero or more link tokens separated by spaces or tabs; an empty line is a
  sentence without links. A link token is ``i-j``, ``i-jS``, ``i-jP``, ``ipj`` or ``i?j`` where
  ``i`` and ``j`` are written with the ASCII digits ``0``-``9`` only (no signs, no other scripts'
  digits, at most 9 digits: indices count the words of a sentence).
* A sentence-pair line is ``source words ||| target words``: the separator is the token ``|||``
  exactly, once, with whitespace on each side; ``||||``, or ``|||`` run into a word, is an error
  (not a separator followed by a stray ``|``). Neither side may be empty.
* ``index_base`` is the integer ``0`` or ``1`` (not ``True``, not ``1.0``), or ``None``.

Index base
----------
When ``index_base`` is ``None`` it is inferred only from clear evidence, and every inference
warns (:class:`IndexBaseWarning`) naming the base chosen, the line that decided it and how to set
it explicitly:

* a link with an index equal to its sentence's length (known when sentences are given) can only
  be 1-based, so the file is read as 1-based;
* otherwise links using index 0 mean 0-based, provided at least half of the lines with links use
  index 0 (a 0-based file links the first word of most sentences). A 1-based file with a few
  stray ``0-x`` links (in the 1-based WPT/NAACL format, 0 marks a NULL link) is *not* silently
  read as 0-based, which would shift every link: the reader raises, naming those lines;
* evidence of both bases, or of neither, raises and asks for ``index_base``.

With ``index_base=1`` a link using index 0 is an error (drop NULL links before scoring: AER does
not score unaligned words).

Example
-------
>>> sure, possible = parse_alignment_line("1-1 2p3 3-2P", index_base=1)
>>> sorted(sure), sorted(possible)
([(0, 0)], [(0, 0), (1, 2), (2, 1)])
"""

from __future__ import annotations

import numbers
import os
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

from headscope.errors import GoldFormatError, InputError

if TYPE_CHECKING:  # pragma: no cover
    import datasets

__all__ = [
    "IndexBaseWarning",
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

# i-j | i-jS | i-jP | ipj | i?j, ASCII digits only
_TOKEN = re.compile(r"([0-9]+)(?:-([0-9]+)([SP]?)|([p?])([0-9]+))", re.ASCII)
_LINK_SPACE = re.compile(r"[ \t]+")
_MAX_DIGITS = 9
_SEPARATOR = "|||"
_FORMS = "i-j or i-jS (sure), ipj, i?j or i-jP (possible), with i and j written in the digits 0-9"


class IndexBaseWarning(UserWarning):
    """The index base of a gold file was inferred (it names the base chosen and how to set it)."""


@dataclass(frozen=True)
class _RawLink:
    i: int
    j: int
    sure: bool
    token: str


def _parse_token(token: str) -> _RawLink:
    m = _TOKEN.fullmatch(token)
    if m is None:
        hint = ""
        if any(c.isdigit() and not c.isascii() for c in token):
            hint = " (it uses digits of another script: write indices with 0-9)"
        elif token.startswith("-") or "--" in token:
            hint = " (indices are never negative)"
        raise GoldFormatError(f"bad alignment token {token!r}{hint}: expected {_FORMS}; fix the token or the file")
    i_text, j_text = m.group(1), m.group(2) if m.group(2) is not None else m.group(5)
    for text in (i_text, j_text):
        if len(text) > _MAX_DIGITS:
            shown = text if len(text) <= 20 else f"{text[:12]}... ({len(text)} digits)"
            raise GoldFormatError(f"index {shown} in token {token[:40]!r} is too large: indices count the words "
                                  f"of a sentence (at most {_MAX_DIGITS} digits); fix the token")
    sure = m.group(3) != "P" if m.group(2) is not None else False
    return _RawLink(int(i_text), int(j_text), sure, token)


def _parse_raw_line(line: str) -> list[_RawLink]:
    return [_parse_token(tok) for tok in _LINK_SPACE.split(line.strip(" \t")) if tok]


def _check_base(index_base: Any, *, allow_none: bool = True) -> int | None:
    """``index_base`` as 0, 1 or ``None``; anything else (``True``, ``1.0``, ``2``) is an InputError."""
    if index_base is None and allow_none:
        return None
    if isinstance(index_base, bool) or not isinstance(index_base, numbers.Integral) or int(index_base) not in (0, 1):
        raise InputError(f"index_base={index_base!r}: pass the integer 0 (indices count words from 0) or 1 (from 1)"
                         + (", or None to infer it from the file" if allow_none else ""))
    return int(index_base)


_NULL_HINT = ("in the 1-based WPT/NAACL format index 0 marks a NULL (unaligned) link: remove those links "
              "(AER does not score unaligned words), or pass index_base=0 if the file counts words from 0")


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
            raise GoldFormatError(f"link {link.token!r} uses index 0, which a 1-based file does not have; {_NULL_HINT}")
        if lengths is not None:
            n_src, n_tgt = lengths
            for side, idx, n in (("source", i, n_src), ("target", j, n_tgt)):
                if idx >= n:
                    lo, hi = index_base, n - 1 + index_base
                    raise GoldFormatError(
                        f"link {link.token!r}: {side} index {idx + index_base} is outside the "
                        f"{side} sentence ({n} words, {index_base}-based indices {lo}..{hi}); fix the link, or "
                        "check that the alignment file and the sentences are the same corpus in the same order"
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
    path: str = "<string>",
    line_number: int = 1,
) -> tuple[set[Link], set[Link]]:
    """Parse one line of Pharaoh / talp links into 0-based ``(sure, possible)`` link sets.

    ``possible`` is P and contains the sure links. ``lengths = (n_source, n_target)`` in the
    line's own orientation, if given, refuses links outside the sentence. ``reverse=True``
    returns ``(j, i)`` links. Errors name ``path`` and ``line_number`` (by default
    ``<string>, line 1``); pass them when the line comes from somewhere a reader can find.

    >>> sure, possible = parse_alignment_line("0-0 1p1 2?0", index_base=0)
    >>> sorted(sure), sorted(possible)
    ([(0, 0)], [(0, 0), (1, 1), (2, 0)])
    >>> parse_alignment_line("1-2", index_base=1, reverse=True)
    ({(1, 0)}, {(1, 0)})

    Raises :class:`~headscope.errors.GoldFormatError` (malformed line) or
    :class:`~headscope.errors.InputError` (``index_base`` not 0 or 1).
    """
    base = _check_base(index_base, allow_none=False)
    assert base is not None
    if not isinstance(line, str):
        raise InputError(f"line: pass one line of links as a string, not {type(line).__name__}")
    text = line[:-1] if line.endswith("\n") else line
    text = text[:-1] if text.endswith("\r") else text
    try:
        if "\n" in text or "\r" in text:
            raise GoldFormatError("holds a line break: pass one line of links (read files with read_alignments)")
        return _convert(_parse_raw_line(text), base, reverse, lengths)
    except GoldFormatError as e:
        raise GoldFormatError(str(e), path=path, line=line_number) from None


def _read_lines(path: PathLike) -> list[str]:
    """Lines of a UTF-8 text file without line ends (a final newline adds no empty line)."""
    spath = str(path)
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise GoldFormatError("file not found; check the path", path=spath) from None
    except IsADirectoryError:
        raise GoldFormatError("is a folder, not a file; pass the gold file inside it", path=spath) from None
    except OSError as e:
        raise GoldFormatError(f"cannot be read ({e.strerror or e}); check the path and its permissions",
                              path=spath) from None
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    raw = data.split(b"\n")
    if raw and raw[-1] == b"":
        raw.pop()
    lines = []
    for n, chunk in enumerate(raw, start=1):
        try:
            text = chunk.decode("utf-8")
        except UnicodeDecodeError as e:
            raise GoldFormatError(f"not UTF-8 text (byte {chunk[e.start]:#04x} at column {e.start + 1}); save the "
                                  "file as UTF-8", path=spath, line=n) from None
        lines.append(text[:-1] if text.endswith("\r") else text)
    return lines


def _infer_base(
    raws: list[list[_RawLink]], lengths: Sequence[tuple[int, int]] | None, path: str
) -> int:
    """The index base the links show (see the module docstring), warning which and why; else raise."""
    zero_lines: list[tuple[int, str]] = []
    top_lines: list[tuple[int, str]] = []
    for n, raw in enumerate(raws, start=1):
        zero = next((link.token for link in raw if link.i == 0 or link.j == 0), None)
        if zero is not None:
            zero_lines.append((n, zero))
        if lengths is not None:
            n_src, n_tgt = lengths[n - 1]
            top = next((link.token for link in raw if link.i == n_src or link.j == n_tgt), None)
            if top is not None:
                top_lines.append((n, top))
    linked = sum(1 for raw in raws if raw)
    if zero_lines and top_lines:
        (zl, zt), (tl, tt) = zero_lines[0], top_lines[0]
        raise GoldFormatError(
            f"the index base cannot be inferred: line {zl} ({zt!r}) uses index 0, which a 1-based file does not "
            f"have, and line {tl} ({tt!r}) uses an index equal to the sentence length, which a 0-based file does "
            f"not have; pass index_base=0 or index_base=1 (--index-base on the command line). If the file is "
            f"1-based, {_NULL_HINT.split(': ', 1)[0]}: remove those links",
            path=path, line=zl)
    how = "pass index_base={0} (--index-base {0} on the command line) to confirm it and silence this warning"
    if top_lines:
        tl, tt = top_lines[0]
        warnings.warn(f"{path}: index base not given; read as 1-based because line {tl} ({tt!r}) uses an index "
                      f"equal to its sentence's length, which a 0-based file cannot have; {how.format(1)}",
                      IndexBaseWarning, stacklevel=4)
        return 1
    if zero_lines:
        zl, zt = zero_lines[0]
        if 2 * len(zero_lines) < linked:
            shown = ", ".join(f"line {n} ({t!r})" for n, t in zero_lines[:3])
            raise GoldFormatError(
                f"the index base cannot be inferred: only {len(zero_lines)} of {linked} lines with links use index "
                f"0 ({shown}), too few for a 0-based file, where most sentences link their first word. If the file "
                f"is 1-based, {_NULL_HINT}; then pass index_base=1 (--index-base 1). If it is 0-based pass "
                "index_base=0",
                path=path, line=zl)
        warnings.warn(f"{path}: index base not given; read as 0-based because {len(zero_lines)} of {linked} lines "
                      f"with links use index 0 (first: line {zl}, {zt!r}); {how.format(0)}",
                      IndexBaseWarning, stacklevel=4)
        return 0
    if linked:
        first = next(n for n, raw in enumerate(raws, start=1) if raw)
        raise GoldFormatError(
            "cannot tell whether the indices are 0- or 1-based (no link uses index 0"
            + (" or an index equal to the sentence length" if lengths is not None else "")
            + "); pass index_base=0 or index_base=1 (--index-base on the command line)",
            path=path, line=first,
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
    index and helps ``index_base=None`` infer the base (see the module docstring: an inferred base
    warns with :class:`IndexBaseWarning`; weak or conflicting evidence raises a
    :class:`~headscope.errors.GoldFormatError` asking for ``index_base``).
    ``reverse=True`` swaps every link to ``(target, source)``.

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "a.gold"
    >>> _ = p.write_text("0-0 1p1\\n\\n")
    >>> [(sorted(s), sorted(p)) for s, p in read_alignments(p, index_base=0)]
    [([(0, 0)], [(0, 0), (1, 1)]), ([], [])]
    """
    base = _check_base(index_base)
    spath = str(path)
    lines = _read_lines(path)
    if lengths is not None and len(lengths) != len(lines):
        n = min(len(lengths), len(lines)) + 1
        raise GoldFormatError(
            f"{len(lines)} alignment lines for {len(lengths)} sentence pairs"
            + (f": line {n} has no sentence pair" if len(lines) > len(lengths)
               else f": sentence pair {n} has no alignment line")
            + "; give one alignment line per sentence pair, in the same order",
            path=spath,
            line=n,
        )
    raws: list[list[_RawLink]] = []
    for n, line in enumerate(lines, start=1):
        try:
            raws.append(_parse_raw_line(line))
        except GoldFormatError as e:
            raise GoldFormatError(str(e), path=spath, line=n) from None
    if base is None:
        base = _infer_base(raws, lengths, spath)
    out = []
    for n, raw in enumerate(raws, start=1):
        try:
            out.append(_convert(raw, base, reverse, None if lengths is None else lengths[n - 1]))
        except GoldFormatError as e:
            raise GoldFormatError(str(e), path=spath, line=n) from None
    return out


def _split_pair(line: str) -> tuple[list[str], list[str]]:
    """``source words ||| target words`` -> the two word lists (GoldFormatError without a place)."""
    words = line.split()
    glued = next((w for w in words if _SEPARATOR in w and w != _SEPARATOR), None)
    if glued is not None:
        raise GoldFormatError(f"{glued[:40]!r} is not the separator: write exactly '|||' with a space on each side "
                              "('source words ||| target words')")
    seps = [k for k, w in enumerate(words) if w == _SEPARATOR]
    if len(seps) != 1:
        what = "no '|||' separator" if not seps else f"{len(seps)} '|||' separators"
        raise GoldFormatError(f"{what}: expected one, as in 'source words ||| target words'")
    src, tgt = words[:seps[0]], words[seps[0] + 1:]
    for side, side_words in (("source", src), ("target", tgt)):
        if not side_words:
            raise GoldFormatError(f"empty {side} sentence: give words on both sides of '|||'")
    return src, tgt


def read_sentence_pairs(path: PathLike) -> list[SentencePair]:
    """Read ``source ||| target`` lines into ``(source_words, target_words)`` pairs.

    Words are split on whitespace (trailing spaces are dropped). A line without exactly one
    ``|||`` token (``||||`` or ``a|||b`` is not one), or with an empty side, raises
    :class:`~headscope.errors.GoldFormatError` naming the file and line.

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "s.txt"
    >>> _ = p.write_text("the house ||| la maison  \\n")
    >>> read_sentence_pairs(p)
    [(['the', 'house'], ['la', 'maison'])]
    """
    spath = str(path)
    pairs = []
    for n, line in enumerate(_read_lines(path), start=1):
        try:
            pairs.append(_split_pair(line))
        except GoldFormatError as e:
            raise GoldFormatError(str(e), path=spath, line=n) from None
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
            f"line {len(sides[short]) + 1} has no counterpart; give both files one sentence per line, in the "
            "same order",
            path=str(longer),
            line=len(sides[short]) + 1,
        )
    pairs = []
    for n, (s, t) in enumerate(zip(*sides), start=1):
        src, tgt = s.split(), t.split()
        for side, words, p in (("source", src, source_path), ("target", tgt, target_path)):
            if not words:
                raise GoldFormatError(f"empty {side} sentence; give one sentence per line", path=str(p), line=n)
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
    index_base = _check_base(index_base)
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
    elif isinstance(name_or_paths, (tuple, list)) and all(isinstance(p, (str, os.PathLike)) for p in name_or_paths):
        paths = tuple(name_or_paths)
    else:
        raise InputError(f"gold: pass a gold set name ({', '.join(list_gold_sets())}), (sentences, alignments) or "
                         f"(source, target, alignments) paths, not {type(name_or_paths).__name__}")
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
