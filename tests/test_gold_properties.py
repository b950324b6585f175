"""Gold readers (issue 13): exactly the documented grammar, every error a GoldFormatError naming file,
line and fix; property tests with hypothesis (round trips; arbitrary bytes never raise anything else)."""

from __future__ import annotations

import re
import tempfile
import warnings
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from headscope.align.gold import (
    IndexBaseWarning,
    load_gold,
    parse_alignment_line,
    read_alignments,
    read_parallel,
    read_sentence_pairs,
)
from headscope.cli import main
from headscope.errors import GoldFormatError, HeadscopeError, InputError

PROPS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def write(folder: Path, name: str, data: str | bytes) -> Path:
    p = folder / name
    p.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return p


def _located(err: GoldFormatError, path: Path, line: int) -> None:
    """The message starts with the file and the line, as GoldFormatError puts them."""
    assert str(err).startswith(f"{path}, line {line}: ") and err.path == str(path) and err.line == line


# ---- the grammar, case by case ------------------------------------------------------------------

@pytest.mark.parametrize("bad", ["||||", "|||||", "a|||b", "|||la", "house|||"])
def test_separator_is_exactly_three_bars(tmp_path, bad):
    f = write(tmp_path, "s.txt", f"a ||| b\nthe {bad} la maison\n" if bad.count("|") > 3 else f"a ||| b\nthe {bad}\n")
    with pytest.raises(GoldFormatError, match="not the separator: write exactly '\\|\\|\\|' with a space") as e:
        read_sentence_pairs(f)
    _located(e.value, f, 2)


def test_separator_and_sides(tmp_path):
    assert read_sentence_pairs(write(tmp_path, "s", "a | b ||| x || y\n")) == [(["a", "|", "b"], ["x", "||", "y"])]
    for text, match in [("a b\n", "no '\\|\\|\\|' separator"), ("a ||| b ||| c\n", "2 '\\|\\|\\|' separators"),
                        ("||| b\n", "empty source sentence"), ("a |||\n", "empty target sentence")]:
        with pytest.raises(GoldFormatError, match=match) as e:
            read_sentence_pairs(write(tmp_path, "s", text))
        _located(e.value, tmp_path / "s", 1)


@pytest.mark.parametrize("token, hint", [("1" * 5000 + "-1", "too large"), ("1-" + "9" * 10, "too large"),
                                         ("١-٢", "digits of another script"), ("２-1", "digits of another script"),
                                         ("0-1x", "expected i-j"), ("-1-2", "never negative"), ("1-2s", "expected"),
                                         ("1--2", "never negative"), ("1p", "expected"), ("0-0\u00a01-1", "expected")])
def test_bad_tokens_name_file_line_and_fix(tmp_path, token, hint):
    f = write(tmp_path, "a.gold", f"0-0\n0-0 {token}\n")
    with pytest.raises(GoldFormatError, match=hint) as e:
        read_alignments(f, index_base=0)
    _located(e.value, f, 2)
    assert "fix" in str(e.value) or "write" in str(e.value)
    assert len(str(e.value)) < 400  # a huge index is shown cut, never in full


def test_largest_index_is_read(tmp_path):
    assert read_alignments(write(tmp_path, "a", "999999999-0\n"), index_base=0) == [
        ({(999999999, 0)}, {(999999999, 0)})]


@pytest.mark.parametrize("base", [True, False, 1.0, 0.0, 2, -1, "1", None])
def test_index_base_is_the_integer_0_or_1(tmp_path, base):
    f = write(tmp_path, "a.gold", "1-1\n")
    if base is None:
        with pytest.raises(InputError, match="index_base=None: pass the integer 0"):
            parse_alignment_line("1-1", index_base=base)
        return
    for call in (lambda: read_alignments(f, index_base=base), lambda: parse_alignment_line("1-1", index_base=base),
                 lambda: load_gold((f, f), index_base=base)):
        with pytest.raises(InputError, match=re.escape(f"index_base={base!r}: pass the integer 0")):
            call()


def test_numpy_integer_base_is_an_integer(tmp_path):
    import numpy as np

    assert read_alignments(write(tmp_path, "a", "1-1\n"), index_base=np.int64(1)) == [({(0, 0)}, {(0, 0)})]


def test_not_utf8_names_file_and_line(tmp_path):
    f = write(tmp_path, "a.gold", b"0-0\n0-1\n1-1 \xff2-2\n")
    with pytest.raises(GoldFormatError, match="not UTF-8 text \\(byte 0xff at column 5\\); save the file as UTF-8") as e:
        read_alignments(f, index_base=0)
    _located(e.value, f, 3)
    s = write(tmp_path, "s.txt", "a ||| b\n".encode() + "é ||| e\n".encode("latin-1"))
    with pytest.raises(GoldFormatError, match="not UTF-8") as e:
        read_sentence_pairs(s)
    _located(e.value, s, 2)


def test_bom_and_crlf_are_read(tmp_path):
    f = write(tmp_path, "a.gold", "\ufeff0-0\r\n1-1\r\n")
    assert read_alignments(f, index_base=0) == [({(0, 0)}, {(0, 0)}), ({(1, 1)}, {(1, 1)})]


def test_file_problems_name_the_file(tmp_path):
    with pytest.raises(GoldFormatError, match=f"^{re.escape(str(tmp_path / 'nope'))}: file not found"):
        read_alignments(tmp_path / "nope", index_base=0)
    with pytest.raises(GoldFormatError, match="is a folder, not a file"):
        read_alignments(tmp_path, index_base=0)


def test_single_line_errors_have_a_place():
    with pytest.raises(GoldFormatError, match="^<string>, line 1: bad alignment token 'x'"):
        parse_alignment_line("x", index_base=0)
    with pytest.raises(GoldFormatError, match="^gold.txt, line 7: "):
        parse_alignment_line("0-0 1x1", index_base=0, path="gold.txt", line_number=7)
    with pytest.raises(GoldFormatError, match="line break"):
        parse_alignment_line("0-0\n1-1", index_base=0)
    assert parse_alignment_line("0-0\n", index_base=0) == ({(0, 0)}, {(0, 0)})


# ---- index base ---------------------------------------------------------------------------------

def test_inferred_base_warns_naming_base_line_and_setting(tmp_path):
    sents = write(tmp_path, "s", "a b ||| x y\nc d ||| z w\n")
    zero = write(tmp_path, "g0", "0-0 1-1\n0-1\n")
    with pytest.warns(IndexBaseWarning, match=r"read as 0-based because 2 of 2 lines .*line 1, '0-0'.*"
                                              r"index_base=0 \(--index-base 0 on the command line\)"):
        assert load_gold((sents, zero))[0]["sure"] == [[0, 0], [1, 1]]
    one = write(tmp_path, "g1", "1-1 2-2\n1-2\n")
    with pytest.warns(IndexBaseWarning, match=r"read as 1-based because line 1 \('2-2'\) uses an index equal to"):
        assert load_gold((sents, one))[0]["sure"] == [[0, 0], [1, 1]]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an explicit base, or a built-in set: no warning
        load_gold((sents, one), index_base=1)
        load_gold("hansards-en-fr")


def test_one_based_file_with_a_stray_zero_is_never_shifted(tmp_path):
    """A 1-based file with one stray 0-x link (a NULL link in WPT/NAACL files) raises: reading it as
    0-based would shift every link. With the sentences, the links reaching the last word prove 1-based."""
    sents = write(tmp_path, "s", "".join(f"w{k} v{k} u{k} ||| x{k} y{k} z{k}\n" for k in range(6)))
    links = ["1-1 2-2 3-3"] * 6
    links[3] = "0-1 2-2 3-3"  # the stray NULL link
    gold = write(tmp_path, "g", "\n".join(links) + "\n")
    with pytest.raises(GoldFormatError, match=r"cannot be inferred: line 4 \('0-1'\) uses index 0.*line 1 "
                                              r"\('3-3'\) uses an index equal to the sentence length.*NULL") as e:
        load_gold((sents, gold))
    _located(e.value, gold, 4)
    # without the sentences (no lengths): one line in six with index 0 is too few for a 0-based file
    with pytest.raises(GoldFormatError, match=r"only 1 of 6 lines with links use index 0 \(line 4 \('0-1'\)\).*"
                                              r"NULL.*index_base=1") as e:
        read_alignments(gold)
    _located(e.value, gold, 4)
    # told it is 1-based: the zero is an error naming the line and what it probably is
    with pytest.raises(GoldFormatError, match=r"link '0-1' uses index 0, which a 1-based file does not have.*NULL"):
        load_gold((sents, gold), index_base=1)


def test_ambiguous_base_names_a_line(tmp_path):
    g = write(tmp_path, "g", "\n1-1\n")
    with pytest.raises(GoldFormatError, match="pass index_base=0 or index_base=1") as e:
        read_alignments(g)
    _located(e.value, g, 2)


# ---- the command line: one line, no traceback ---------------------------------------------------

def test_cli_gold_error_is_one_line(tmp_path, capsys, monkeypatch):
    import headscope.cli

    monkeypatch.setattr(headscope.cli, "VERB_MODULES", ("headscope.cli.align",))
    sents = write(tmp_path, "s", "a b |||| x y\n")
    gold = write(tmp_path, "g", "0-0\n")
    assert main(["align", "headscope/en-fr-1x1", "--gold", str(sents), "--gold", str(gold), "--no-progress",
                 "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"headscope: error: {sents}, line 1: '||||' is not the separator")


# ---- properties ---------------------------------------------------------------------------------

@st.composite
def gold_corpus(draw):
    """Sentence pairs with sure and possible links, and how to write them (base, token spelling)."""
    n = draw(st.integers(1, 5))
    sents, sure, possible = [], [], []
    for _ in range(n):
        ls, lt = draw(st.integers(1, 6)), draw(st.integers(1, 6))
        pairs = st.tuples(st.integers(0, ls - 1), st.integers(0, lt - 1))
        s = draw(st.sets(pairs, max_size=6))
        p = draw(st.sets(pairs, max_size=6)) | s
        sents.append((ls, lt))
        sure.append(s)
        possible.append(p)
    base = draw(st.sampled_from([0, 1]))
    spell = draw(st.lists(st.sampled_from(["-", "-S", "p", "?", "-P"]), min_size=1, max_size=3))
    sep = draw(st.sampled_from([" ", "\t", "  ", " \t "]))
    return sents, sure, possible, base, spell, sep


def _line(sure, possible, base, spell, sep, k):
    toks = []
    for n, (i, j) in enumerate(sorted(possible)):
        form = spell[(n + k) % len(spell)]
        if (i, j) in sure:
            form = "-S" if form == "-S" else "-"
        elif form in ("-", "-S"):
            form = "p"
        a, b = i + base, j + base
        toks.append(f"{a}-{b}{form[1:]}" if form.startswith("-") else f"{a}{form}{b}")
    return sep.join(toks)


@PROPS
@given(gold_corpus(), st.booleans())
def test_written_gold_reads_back_the_same_links(corpus, reverse):
    sents, sure, possible, base, spell, sep = corpus
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        s_file = write(d, "s.txt", "".join(" ".join(f"s{k}w{i}" for i in range(ls)) + " ||| " +
                                           " ".join(f"t{k}w{j}" for j in range(lt)) + "\n"
                                           for k, (ls, lt) in enumerate(sents)))
        g_file = write(d, "g.txt", "".join(_line(s, p, base, spell, sep, k) + "\n"
                                           for k, (s, p) in enumerate(zip(sure, possible))))
        assert read_alignments(g_file, index_base=base, lengths=sents) == list(zip(sure, possible))
        ds = load_gold((s_file, g_file), index_base=base, reverse=reverse)
        flip = (lambda x: (x[1], x[0])) if reverse else (lambda x: x)
        assert [{flip(tuple(x)) for x in row} for row in ds["sure"]] == sure
        assert [{flip(tuple(x)) for x in row} for row in ds["possible"]] == possible
        assert [len(w) for w in ds["target_words" if reverse else "source_words"]] == [ls for ls, _ in sents]
        for k, (s, p) in enumerate(zip(sure, possible)):
            assert parse_alignment_line(_line(s, p, base, spell, sep, k), index_base=base) == (s, p)


_GOLDISH = st.text(alphabet=st.sampled_from(list("0123456789-pP?S |\t\r\n\ufeff٣２\u200b\x00é")), max_size=120)


@PROPS
@given(st.one_of(st.binary(max_size=200), _GOLDISH.map(lambda t: t.encode("utf-8"))),
       st.one_of(st.binary(max_size=200), _GOLDISH.map(lambda t: t.encode("utf-8"))),
       st.sampled_from([None, 0, 1]))
def test_arbitrary_bytes_give_links_or_a_gold_format_error(links, sentences, base):
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore", IndexBaseWarning)
        d = Path(tmp)
        g, s = write(d, "g", links), write(d, "s", sentences)
        for call in (lambda: read_alignments(g, index_base=base), lambda: read_sentence_pairs(s),
                     lambda: read_parallel(s, g), lambda: load_gold((s, g), index_base=base),
                     lambda: load_gold((s, s, g), index_base=base)):
            try:
                call()
            except GoldFormatError as err:
                assert err.path is not None and str(err).startswith(err.path)
                assert "\n" not in str(err)
            except HeadscopeError:
                pass


@PROPS
@given(st.text(max_size=80), st.sampled_from([0, 1]))
def test_arbitrary_line_gives_links_or_a_gold_format_error(line, base):
    assume("\n" not in line.rstrip("\n"))
    try:
        sure, possible = parse_alignment_line(line, index_base=base)
    except GoldFormatError as err:
        assert err.line == 1 and err.path == "<string>"
    else:
        assert sure <= possible and all(i >= 0 and j >= 0 for i, j in possible)
