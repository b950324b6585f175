"""Baselines of every alignment report: the diagonal (no model) and eflomal, symmetrised."""

from __future__ import annotations

import importlib.util
import json

import pytest

from headscope import InputError
from headscope.align import AlignmentReport, evaluate_inspections, load_gold, symmetrize
from headscope.align.baselines import (INSTALL, Baseline, diagonal, diagonal_links, read_aligner_text,
                                       score_baselines, standing, statistical)
from headscope.cli import main
from test_align_evaluate import GOLD, _planted, gold_files, marian, marian_dir, only_align_verb  # noqa: F401

COLS = ("source_words", "target_words", "sure", "possible")


def _rows(n: int, start: int = 0) -> list[dict]:
    ds = load_gold("hansards-en-fr")
    return [{c: ds[k][c] for c in COLS} for k in range(start, start + n)]


# ---- the diagonal, by hand -------------------------------------------------------------------

def test_diagonal_links_by_hand():
    # 3 source, 4 target words: j*n/m = 0, 0.75, 1.5, 2.25 -> 0, 1, 2, 2
    assert diagonal_links(3, 4) == {(0, 0), (1, 1), (2, 2), (2, 3)}
    # 2 source, 4 target: 0, 0.5, 1, 1.5 -> round half to even 0, 0, 1, 2 -> capped at n - 1 = 1
    assert diagonal_links(2, 4) == {(0, 0), (0, 1), (1, 2), (1, 3)}
    assert diagonal_links(4, 1) == {(0, 0)} and diagonal_links(0, 3) == set() == diagonal_links(3, 0)


def test_diagonal_scores_by_hand():
    rows = [
        # links (0,0) (1,1) (2,2) (2,3); S = {(0,0), (1,2)}, P = S + {(2,3)}
        {"source_words": ["a", "b", "c"], "target_words": ["w", "x", "y", "z"], "sure": [[0, 0], [1, 2]],
         "possible": [[2, 3]]},
        # link (0,0); S = {(1,0)}
        {"source_words": ["a", "b"], "target_words": ["w"], "sure": [[1, 0]], "possible": []},
    ]
    b = diagonal(rows)
    # |A| = 4 + 1, |S| = 2 + 1, |A∩S| = 1 + 0, |A∩P| = 2 + 0
    assert b.precision == pytest.approx(2 / 5) and b.recall == pytest.approx(1 / 3)
    assert b.aer == pytest.approx(1 - (1 + 2) / (5 + 3))
    assert b.links == [{(0, 0), (1, 1), (2, 2), (2, 3)}, {(0, 0)}] and b.name == "diagonal"
    assert b.scores["n_predicted"] == 5 and b.scores["n_predicted_possible"] == 2


def test_diagonal_on_hansards_is_the_documented_rule():
    """The rule docs/alignment.md states (target j of m -> source min(n-1, round(j*n/m))), on the gold set."""
    rows = _rows(447)
    b = diagonal(rows)
    for r, links in zip(rows, b.links):
        n, m = len(r["source_words"]), len(r["target_words"])
        assert links == {(min(n - 1, round(j * n / m)), j) for j in range(m)}
    assert 0.4 < b.aer < 0.7


# ---- grow-diag-final-and, by hand on 3 x 3 ---------------------------------------------------

def test_grow_diag_final_and_by_hand():
    # forward a, reverse b. a ∩ b = {(0,0)}. Growing from (0,0) (neighbour order: left, up, right, down, then
    # diagonals): (1,1) is in the union and source 1 unaligned -> added; from (1,1): (1,2) (target 2 unaligned)
    # and (2,0) (source 2 unaligned) added; (2,2) then has source 2 and target 2 aligned -> not added.
    a, b = {(0, 0), (1, 1), (2, 0)}, {(0, 0), (1, 2), (2, 2)}
    assert symmetrize(a, b, "intersection") == {(0, 0)}
    assert symmetrize(a, b, "grow-diag") == {(0, 0), (1, 1), (1, 2), (2, 0)}
    assert symmetrize(a, b, "grow-diag-final-and") == {(0, 0), (1, 1), (1, 2), (2, 0)}
    # nothing grows from (0,0); FINAL-AND adds a's (2,1) (source 2 and target 1 unaligned) but not b's (2,2)
    # (source 2 is aligned by then); FINAL (or) adds (2,2) too (target 2 still unaligned)
    a, b = {(0, 0), (2, 1)}, {(0, 0), (2, 2)}
    assert symmetrize(a, b, "grow-diag") == {(0, 0)}
    assert symmetrize(a, b, "grow-diag-final-and") == {(0, 0), (2, 1)}
    assert symmetrize(a, b, "grow-diag-final") == {(0, 0), (2, 1), (2, 2)}


# ---- eflomal, end to end ---------------------------------------------------------------------

def test_eflomal_end_to_end():
    rows = _rows(30)
    b = statistical(rows)
    assert b.name == "eflomal" and len(b.links) == 30 and "grow-diag-final-and" in b.description
    for r, links in zip(rows, b.links):
        assert all(0 <= i < len(r["source_words"]) and 0 <= j < len(r["target_words"]) for i, j in links)
    assert b.aer < diagonal(rows).aer - 0.1  # 30 Hansards pairs: about 0.25 against the diagonal's 0.49
    # more parallel text trains it too; the gold pairs' links come back, the text's do not
    more = _rows(40, start=30)
    text = ([" ".join(r["source_words"]) for r in more], [" ".join(r["target_words"]) for r in more])
    b2 = statistical(rows, text)
    assert len(b2.links) == 30 and "40 pairs of aligner text" in b2.description


def test_aligner_text_checked(tmp_path):
    with pytest.raises(InputError, match="2 source lines but 1 target"):
        read_aligner_text((["a", "b"], ["x"]))
    with pytest.raises(InputError, match="does not exist"):
        read_aligner_text((tmp_path / "no.txt", tmp_path / "no.txt"))
    (tmp_path / "s").write_text("a b\n\nc\n")
    (tmp_path / "t").write_text("x y\nz\nw\n")
    assert read_aligner_text((tmp_path / "s", tmp_path / "t")) == (["a b", "c"], ["x y", "w"])  # empty side dropped
    with pytest.raises(InputError, match="aligner must be"):
        score_baselines(GOLD, aligner="giza")
    with pytest.raises(InputError, match="aligner_text"):
        evaluate_inspections([_planted()], GOLD, sources="heads", aligner=None, aligner_text=(["a"], ["x"]))


def test_without_eflomal_one_note(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "eflomal" else real(name, *a))
    refs, notes = score_baselines(GOLD)
    assert [b.name for b in refs] == ["diagonal"]
    assert notes == [f"statistical aligner baseline not run: eflomal is not installed ({INSTALL})"]
    report = evaluate_inspections([_planted()], GOLD, sources="heads")
    assert INSTALL in report.summary() and [b.name for b in report.baselines] == ["diagonal"]


# ---- in the report: tables, summary, files ---------------------------------------------------

def test_standing_line():
    refs = [Baseline("diagonal", "", {"aer": 0.542}), Baseline("eflomal", "", {"aer": 0.12})]
    assert standing([("best head cross.2.2", 0.572), ("all-heads mean", 0.586)], refs) == (
        "AER, lowest first: eflomal 0.120 < diagonal 0.542 < best head cross.2.2 0.572 < all-heads mean 0.586")


def test_tables_show_baselines(tmp_path):
    report = evaluate_inspections([_planted()], GOLD, convention="both", sources=("heads", "all_mean"))
    names = [b.name for b in report.baselines]
    assert names[0] == "diagonal" and names[1:] == ["eflomal"]  # eflomal is in the test extras
    # the diagonal of "a b" / "x y" is (0,0) (1,1): |A|=2, |S|=1, |A∩S|=1, |A∩P|=2 -> AER 0
    assert report.baselines[0].aer == 0.0 and report.baselines[0].links == [{(0, 0), (1, 1)}]
    table = report.table()
    assert table.count("diagonal               1.000     1.000     0.000") == 2  # one per convention
    assert table.count("AER, lowest first: ") == 2 and "diagonal 0.000" in table
    md = report.markdown()
    assert "| baseline (no attention) | AER | precision | recall |" in md and "| diagonal AER |" in md
    assert "baselines: diagonal AER 0.000" in report.summary()

    out = report.save(tmp_path / "rep")
    meta = json.loads((out / "report.json").read_text())
    assert [b["name"] for b in meta["baselines"]] == names
    back = AlignmentReport.load(out)
    assert [(b.name, b.description, b.scores, b.links) for b in back.baselines] == \
        [(b.name, b.description, b.scores, b.links) for b in report.baselines]
    assert back.table() == table and back.summary() == report.summary() and back.gold == report.gold


def test_report_saved_before_baselines_loads(tmp_path):
    report = evaluate_inspections([_planted()], GOLD, sources="heads", aligner=None)
    out = report.save(tmp_path / "old")
    meta = json.loads((out / "report.json").read_text())
    del meta["baselines"]
    (out / "report.json").write_text(json.dumps(meta))
    lines = [json.loads(line) for line in (out / "links.jsonl").read_text().splitlines()]
    (out / "links.jsonl").write_text("".join(json.dumps({k: v for k, v in row.items() if k != "baselines"}) + "\n"
                                             for row in lines))
    back = AlignmentReport.load(out)
    assert back.baselines == [] and "baseline" not in back.table()


def test_cli_aligner_options(only_align_verb, marian_dir, gold_files, tmp_path, capsys):  # noqa: F811
    (tmp_path / "s.txt").write_text("a man .\na dog .\n")
    (tmp_path / "t.txt").write_text("un homme .\nun chien .\n")
    gold = [arg for f in gold_files for arg in ("--gold", f)]
    code = main(["align", marian_dir, *gold, "--index-base", "0", "--out", str(tmp_path / "a"), "--no-progress",
                 "--aligner-text", str(tmp_path / "s.txt"), str(tmp_path / "t.txt")])
    assert code == 0
    text = capsys.readouterr().out
    assert "diagonal" in text and "AER, lowest first:" in text
    assert "2 pairs of aligner text" in json.loads((tmp_path / "a" / "report.json").read_text())["baselines"][1][
        "description"]
    code = main(["align", marian_dir, *gold, "--index-base", "0", "--out", str(tmp_path / "b"), "--no-progress",
                 "--no-aligner"])
    assert code == 0
    assert [b.name for b in AlignmentReport.load(tmp_path / "b").baselines] == ["diagonal"]


def test_report_page_shows_the_diagonal():
    from headscope.viz.sections.alignment import alignment_section, parse_gold

    section = alignment_section(_planted(), parse_gold("0-0 1p1"), "naive")
    html = "".join(section.parts)
    # the diagonal of "a b" / "x y" is (0,0) (1,1): |A|=2, |S|=1, |A∩S|=1, |A∩P|=2 -> AER 0
    assert "<tr><td>diagonal, no model (baseline)</td><td>0.000</td><td>1.000</td><td>1.000</td></tr>" in html
    assert "headscope align</code> scores eflomal" in html


def test_eflomal_same_text_same_links_in_one_process():
    rows = _rows(12)
    a, b = statistical(rows), statistical(rows)
    assert a.links == b.links and a.scores == b.scores
    a.links[0].add((99, 99))  # callers get copies
    assert (99, 99) not in statistical(rows).links[0]
