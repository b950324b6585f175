"""The one-page report: sections by claim, gold scoring, one vocabulary, errors that propagate,
an atomic write, and the CLI verb."""

from __future__ import annotations

import re

import pytest

import headscope.aggregate
import headscope.faithful
import headscope.fragment
from headscope import inspect
from headscope.cli import main
from headscope.errors import InputError, NotApplicableError
from headscope.viz import build_report, parse_gold, report

SRC = "A man in a red shirt .".split()
TGT = "Un homme en chemise rouge .".split()
GOLD = "0-0 1-1 2-2 4-4 5-3 3p2 6-5"
QUICK = dict(faithful=False, bertviz=False, fragmentation=False)


@pytest.fixture(scope="module")
def pair_insp(tiny):
    model, tok = tiny("marian")
    return inspect((model, tok), SRC, target=TGT, is_split_into_words=True)


def _claims(page):
    return re.findall(r'data-claim="(\w+)"', page)


def _section(page, claim):
    return page.split(f'data-claim="{claim}"')[1].split("</section>")[0]


def test_parse_gold_forms():
    sure, possible = parse_gold("0-0 1-2 2p1")
    assert sure == {(0, 0), (1, 2)} and possible == {(0, 0), (1, 2), (2, 1)}
    assert parse_gold(({(0, 0)}, {(1, 1)})) == ({(0, 0)}, {(0, 0), (1, 1)})
    assert parse_gold({"sure": [[0, 1]], "possible": [[0, 1], [2, 2]]}) == ({(0, 1)}, {(0, 1), (2, 2)})
    assert parse_gold([(0, 0)]) == ({(0, 0)}, {(0, 0)})
    assert parse_gold(None) is None
    with pytest.raises(InputError):
        parse_gold([(0, 1, 2)])
    with pytest.raises(InputError, match="sure"):
        parse_gold({"possible": [[0, 0]]})


def test_report_with_gold_scores_alignment(pair_insp, tmp_path):
    path = report(pair_insp, tmp_path, gold=GOLD, **QUICK)
    assert path == tmp_path / "report.html"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]  # no temporary file left behind
    page = path.read_text(encoding="utf-8")
    assert _claims(page)[:3] == ["alignment", "plausible", "faithful"]
    assert "forced (teacher forcing)" in page.split("</header>")[0]
    alignment = _section(page, "alignment")
    assert "AER" in alignment and "best single head" in alignment and "Not scored" not in alignment
    assert alignment.count("<img") == 3  # AER heatmap, best head + gold, mean + gold
    assert "Un homme en chemise rouge ." in page
    assert not re.search(r'(src|href)="(https?:)?//', page)  # nothing fetched from the network
    assert "data:image/png;base64," in page


def test_readings_are_named_by_their_labels(pair_insp):
    alignment = _section(build_report(pair_insp, GOLD, **QUICK), "alignment")
    rows = re.findall(r"<tr><td>([^<]+)</td>", alignment)
    assert re.fullmatch(r"cross\.\d\.\d \(best single head\)", rows[0])
    assert rows[1:] == ["layer 0 mean", "layer 1 mean", "all-heads mean", "rollout", "diagonal, no model (baseline)"]
    assert "<b>all-heads mean</b>: every cross-attention head" in alignment


def test_report_without_gold_says_not_scored_and_has_views(pair_insp):
    page = build_report(pair_insp, faithful=False, fragmentation=False)
    alignment = _section(page, "alignment")
    assert "Not scored" in alignment and "<img" not in alignment
    plausible = _section(page, "plausible")
    assert plausible.count('class="headscope-bertviz"') == 2 and plausible.count("<img") == 4
    assert "Not computed" in _section(page, "faithful")


def test_gold_out_of_range_raises_and_writes_nothing(pair_insp, tmp_path):
    with pytest.raises(InputError, match="outside"):
        report(pair_insp, tmp_path / "r.html", "0-0 40-1", **QUICK)
    assert not list(tmp_path.iterdir())


def test_a_broken_reading_makes_report_raise_and_keeps_the_old_page(pair_insp, tmp_path, monkeypatch):
    """Only NotApplicableError marks a section; any other error propagates and no page is written."""
    old = tmp_path / "report.html"
    old.write_text("the previous report", encoding="utf-8")

    def broken(*args, **kwargs):
        raise RuntimeError("reading exploded")

    monkeypatch.setattr(headscope.aggregate, "reading_map", broken)
    with pytest.raises(RuntimeError, match="reading exploded"):
        report(pair_insp, tmp_path, **QUICK)
    assert old.read_text(encoding="utf-8") == "the previous report"
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]


def test_a_broken_section_is_not_turned_into_a_note(pair_insp, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("fragmentation exploded")

    monkeypatch.setattr(headscope.fragment, "fragmentation", broken)
    with pytest.raises(RuntimeError, match="fragmentation exploded"):
        build_report(pair_insp, faithful=False, bertviz=False)


def test_not_applicable_is_the_one_marked_case(pair_insp, monkeypatch):
    def not_here(*args, **kwargs):
        raise NotApplicableError("no fragmentation for this input")

    monkeypatch.setattr(headscope.fragment, "fragmentation", not_here)
    fragmentation = _section(build_report(pair_insp, faithful=False, bertviz=False), "fragmentation")
    assert "Not applicable" in fragmentation and "no fragmentation for this input" in fragmentation


def test_classifier_report(tiny, tmp_path):
    model, tok = tiny("bert")
    insp = inspect((model, tok), "A man in a red shirt.")
    page = report(insp, tmp_path / "bert.html", gold="0-0", **QUICK).read_text(encoding="utf-8")
    assert "Not applicable" in _section(page, "alignment") and "prediction" in page
    plausible = _section(page, "plausible")
    assert plausible.count("<img") == 3  # last layer's word map, what [CLS] reads, rollout
    assert "layer 1 mean" in plausible and "[CLS]" in plausible


def test_decoder_only_report(tiny):
    model, tok = tiny("gpt2")
    insp = inspect((model, tok), "A man in a red shirt")
    page = build_report(insp, faithful=False, fragmentation=False)
    assert "Not applicable" in _section(page, "alignment")
    assert page.count('class="headscope-bertviz"') == 2


def test_faithful_and_fragmentation_sections(pair_insp, monkeypatch):
    real = headscope.faithful.token_importance

    def importance(insp, method, **kwargs):
        if method == "rollout":
            raise NotApplicableError("rollout is not defined here")
        return real(insp, method, **kwargs)

    monkeypatch.setattr(headscope.faithful, "token_importance", importance)
    page = build_report(pair_insp, GOLD, bertviz=False, importance_methods=("attention", "rollout", "loo"))
    faithful = _section(page, "faithful")
    assert "not applicable</b> (rollout is not defined here)" in faithful
    assert len(re.findall(r"<figcaption>\w+ heads: change of", faithful)) == len(pair_insp.kinds)  # one per kind
    # ablation, Kendall τ, attention and loo, and the counterfactual-attention figure
    assert faithful.count("<img") == len(pair_insp.kinds) + 1 + 2 + 1
    fragmentation = _section(page, "fragmentation")
    assert "<pre>" in fragmentation and "all-heads mean" in fragmentation


def test_cli_report_verb(tmp_path, tiny, capsys):
    model, tok = tiny("marian")
    folder = tmp_path / "tiny-marian"  # the CLI takes the model as a folder written by save_pretrained
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    rc = main(["report", str(folder), " ".join(SRC), "--target", " ".join(TGT), "--gold", GOLD,
               "--no-faithful", "--no-bertviz", "--no-fragmentation", "--out", str(tmp_path)])
    assert rc == 0 and (tmp_path / "report.html").exists()
    assert "AER" in (tmp_path / "report.html").read_text(encoding="utf-8")
    assert main(["report", str(folder), "A man.", "--gold", "0-0", "--out", str(tmp_path)]) == 2
    assert "--target" in capsys.readouterr().err
    rc = main(["bertviz", str(folder), "A man.", "--view", "model", "--layers", "1", "--out", str(tmp_path)])
    assert rc == 0 and (tmp_path / "bertviz_model.html").exists()
