"""Gold alignment readers: link notations, index bases, direction, sentence formats, errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from headscope.align import (
    list_gold_sets,
    load_gold,
    parse_alignment_line,
    read_alignments,
    read_parallel,
    read_sentence_pairs,
)
from headscope.align.gold import IndexBaseWarning
from headscope.errors import GoldFormatError, HeadscopeError, InputError


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


# ---------------------------------------------------------------- link notations

@pytest.mark.parametrize(
    "token, sure",
    [("2-3", True), ("2-3S", True), ("2p3", False), ("2?3", False), ("2-3P", False)],
)
def test_every_notation(token, sure):
    s, p = parse_alignment_line(token, index_base=1)
    assert p == {(1, 2)}
    assert s == ({(1, 2)} if sure else set())


def test_line_mixes_notations_possible_includes_sure():
    s, p = parse_alignment_line("0-0 1p1 2?2 3-3P 4-4S", index_base=0)
    assert s == {(0, 0), (4, 4)}
    assert p == {(0, 0), (1, 1), (2, 2), (3, 3), (4, 4)}
    assert s <= p


def test_sure_wins_over_possible_duplicate():
    s, p = parse_alignment_line("1-1 1p1", index_base=1)
    assert s == {(0, 0)} and p == {(0, 0)}


def test_reverse_swaps_links():
    s, p = parse_alignment_line("1-2 3p1", index_base=1, reverse=True)
    assert s == {(1, 0)} and p == {(1, 0), (0, 2)}


def test_line_lengths_in_file_orientation():
    # lengths = (n_source, n_target) of the line as written, also with reverse=True
    assert parse_alignment_line("3-1", index_base=1, lengths=(3, 1), reverse=True) == ({(0, 2)}, {(0, 2)})
    with pytest.raises(GoldFormatError, match="source index 3 is outside"):
        parse_alignment_line("3-1", index_base=1, lengths=(2, 3))


def test_empty_line_is_no_links():
    assert parse_alignment_line("   ", index_base=0) == (set(), set())


@pytest.mark.parametrize("bad", ["1-", "a-b", "1-2X", "1p2S", "-1-2", "1_2", "1-2-3", "1.5-2"])
def test_bad_token_rejected(bad):
    with pytest.raises(GoldFormatError, match="bad alignment token"):
        parse_alignment_line(f"0-0 {bad}", index_base=0)


def test_errors_are_headscope_and_value_errors():
    with pytest.raises(HeadscopeError):
        parse_alignment_line("x", index_base=0)
    with pytest.raises(ValueError):
        parse_alignment_line("x", index_base=0)


# ---------------------------------------------------------------- index base

def test_explicit_bases(tmp_path):
    g = write(tmp_path, "a.gold", "1-1 2-2\n1p2\n")
    assert read_alignments(g, index_base=1) == [({(0, 0), (1, 1)}, {(0, 0), (1, 1)}), (set(), {(0, 1)})]
    assert read_alignments(g, index_base=0)[0][0] == {(1, 1), (2, 2)}


def test_infer_zero_based_from_index_zero(tmp_path):
    g = write(tmp_path, "a.gold", "1-1\n0-2\n")
    with pytest.warns(IndexBaseWarning, match=r"read as 0-based .*line 2.*'0-2'.*index_base=0"):
        assert read_alignments(g)[1][0] == {(0, 2)}


def test_infer_one_based_from_sentence_length(tmp_path):
    g = write(tmp_path, "a.gold", "1-1\n2-3\n")
    with pytest.warns(IndexBaseWarning, match=r"read as 1-based .*line 2.*'2-3'.*index_base=1"):
        out = read_alignments(g, lengths=[(2, 2), (2, 3)])
    assert out[1][0] == {(1, 2)}


def test_ambiguous_file_refused(tmp_path):
    g = write(tmp_path, "a.gold", "1-1\n1-2\n")
    with pytest.raises(GoldFormatError, match="index_base") as e:
        read_alignments(g, lengths=[(3, 3), (3, 3)])
    assert str(g) in str(e.value)
    with pytest.raises(GoldFormatError, match="pass index_base"):
        read_alignments(g)  # no lengths and no 0: ambiguous too


def test_neither_base_fits(tmp_path):
    g = write(tmp_path, "a.gold", "0-1\n2-2\n")
    with pytest.raises(GoldFormatError, match="line 2") as e:
        read_alignments(g, lengths=[(2, 2), (2, 2)])
    assert "0-based" in str(e.value) and "1-based" in str(e.value)


def test_no_links_needs_no_base(tmp_path):
    g = write(tmp_path, "a.gold", "\n\n")
    assert read_alignments(g, lengths=[(1, 1), (1, 1)]) == [(set(), set()), (set(), set())]


def test_index_zero_in_one_based_file(tmp_path):
    g = write(tmp_path, "a.gold", "1-1\n0-1\n")
    with pytest.raises(GoldFormatError, match=r"line 2: .*index 0"):
        read_alignments(g, index_base=1)


def test_bad_index_base_argument(tmp_path):
    g = write(tmp_path, "a.gold", "1-1\n")
    with pytest.raises(InputError):
        read_alignments(g, index_base=2)


# ---------------------------------------------------------------- sentences

def test_sentence_pairs_strip_trailing_spaces(tmp_path):
    f = write(tmp_path, "s", "the  house   ||| la maison  \nyes ||| oui\n")
    assert read_sentence_pairs(f) == [(["the", "house"], ["la", "maison"]), (["yes"], ["oui"])]


def test_parallel_files_equal_pipe_file(tmp_path):
    pipe = write(tmp_path, "p", "a b ||| x y z\nc ||| w\n")
    src = write(tmp_path, "s", "a b\nc\n")
    tgt = write(tmp_path, "t", "x y z  \r\nw")  # CRLF, no final newline
    assert read_parallel(src, tgt) == read_sentence_pairs(pipe)
    gold = write(tmp_path, "g", "1-1 2-3\n1p1\n")
    a = load_gold((pipe, gold), index_base=1)
    b = load_gold((src, tgt, gold), index_base=1)
    assert a.to_dict() == b.to_dict()


def test_missing_separator_line_number(tmp_path):
    f = write(tmp_path, "s", "a ||| b\nc d\n")
    with pytest.raises(GoldFormatError, match=re.escape(f"{f}, line 2: no '|||'")):
        read_sentence_pairs(f)


def test_two_separators_and_empty_side(tmp_path):
    f = write(tmp_path, "s", "a ||| b ||| c\n")
    with pytest.raises(GoldFormatError, match="line 1: 2 '\\|\\|\\|' separators"):
        read_sentence_pairs(f)
    f = write(tmp_path, "s2", "a ||| b\n  ||| c\n")
    with pytest.raises(GoldFormatError, match="line 2: empty source"):
        read_sentence_pairs(f)


def test_parallel_files_different_lengths(tmp_path):
    src = write(tmp_path, "s", "a\nb\nc\n")
    tgt = write(tmp_path, "t", "x\ny\n")
    with pytest.raises(GoldFormatError, match=re.escape(f"{src}, line 3")):
        read_parallel(src, tgt)


# ---------------------------------------------------------------- load_gold and its errors

def test_load_gold_columns_reverse(tmp_path):
    sents = write(tmp_path, "s", "a b c ||| x y\nd ||| z\n")
    gold = write(tmp_path, "g", "1-1 3p2 2-2S\n1-1\n")
    with pytest.warns(IndexBaseWarning, match="read as 1-based"):
        ds = load_gold((sents, gold))  # 3 = length of "a b c": 1-based inferred
    assert ds.column_names == ["source_words", "target_words", "sure", "possible"]
    assert ds[0] == {
        "source_words": ["a", "b", "c"],
        "target_words": ["x", "y"],
        "sure": [[0, 0], [1, 1]],
        "possible": [[0, 0], [1, 1], [2, 1]],
    }
    r = load_gold((sents, gold), reverse=True, index_base=1)
    assert r[0] == {
        "source_words": ["x", "y"],
        "target_words": ["a", "b", "c"],
        "sure": [[0, 0], [1, 1]],
        "possible": [[0, 0], [1, 1], [1, 2]],
    }


def test_load_gold_zero_based_explicit(tmp_path):
    sents = write(tmp_path, "s", "a b ||| x y\n")
    gold = write(tmp_path, "g", "1-1\n")
    assert load_gold((sents, gold), index_base=0)[0]["sure"] == [[1, 1]]
    with pytest.raises(GoldFormatError, match="index_base"):
        load_gold((sents, gold))


def test_index_outside_sentence(tmp_path):
    sents = write(tmp_path, "s", "a b ||| x y\na b c ||| x\n")
    gold = write(tmp_path, "g", "1-1\n3-2\n")
    with pytest.raises(GoldFormatError, match=re.escape(f"{gold}, line 2: link '3-2': target index 2")):
        load_gold((sents, gold), index_base=1)


def test_bad_token_file_line(tmp_path):
    sents = write(tmp_path, "s", "a ||| x\na ||| x\na ||| x\n")
    gold = write(tmp_path, "g", "1-1\n1-1\n1:1\n")
    with pytest.raises(GoldFormatError, match=re.escape(f"{gold}, line 3: bad alignment token '1:1'")) as e:
        load_gold((sents, gold), index_base=1)
    assert e.value.path == str(gold) and e.value.line == 3


@pytest.mark.parametrize("n_gold, line", [(2, 3), (4, 4)])
def test_sentence_and_alignment_counts_differ(tmp_path, n_gold, line):
    sents = write(tmp_path, "s", "a ||| x\n" * 3)
    gold = write(tmp_path, "g", "1-1\n" * n_gold)
    with pytest.raises(GoldFormatError, match=f"line {line}") as e:
        load_gold((sents, gold), index_base=1)
    assert e.value.line == line and f"{n_gold} alignment lines for 3 sentence pairs" in str(e.value)


def test_missing_file_and_unknown_name(tmp_path):
    with pytest.raises(GoldFormatError, match="not found"):
        load_gold((tmp_path / "nope", tmp_path / "nope.gold"))
    with pytest.raises(InputError, match="hansards-en-fr"):
        load_gold("no-such-set")
    with pytest.raises(InputError, match="paths"):
        load_gold([tmp_path / "one"])


# ---------------------------------------------------------------- built-in set

def test_builtin_hansards():
    assert "hansards-en-fr" in list_gold_sets()
    ds = load_gold("hansards-en-fr")
    assert ds.num_rows == 447
    assert "Mihalcea" in ds.info.citation
    n_sure = sum(len(s) for s in ds["sure"])
    n_p = sum(len(p) for p in ds["possible"])
    # the shared README's "4,038 sure and 13,400 possible links": 13,400 counts the `ipj`
    # tokens only (possible-only links, disjoint from the sure ones), so |P| = 17,438
    assert n_sure == 4038
    assert n_p - n_sure == 13400
    assert n_p == 17438
    for s, p in zip(ds["sure"], ds["possible"]):
        assert {tuple(x) for x in s} <= {tuple(x) for x in p}
    # English is the source side
    assert ds[2]["source_words"] == ["oh", ",", "oh", "!"]
    assert ds[0] == {"source_words": ["2", "."], "target_words": ["2", "."],
                     "sure": [[0, 0], [1, 1]], "possible": [[0, 0], [1, 1]]}
    # 1-based is also what inference finds on the shipped files
    from headscope.align.gold import gold_set_files

    sent, ali, base = gold_set_files("hansards-en-fr")
    assert base == 1
    with pytest.warns(IndexBaseWarning, match="read as 1-based"):
        assert load_gold((sent, ali))["possible"] == ds["possible"]
    r = load_gold("hansards-en-fr", reverse=True)
    assert r[5]["source_words"] == ds[5]["target_words"]
    assert sorted([j, i] for i, j in ds[5]["possible"]) == r[5]["possible"]
