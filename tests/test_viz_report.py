"""The one-page report: sections by claim, gold scoring, no network references, CLI verb."""

from __future__ import annotations

import re

import pytest

from headscope import inspect
from headscope.cli import main
from headscope.errors import InputError
from headscope.viz.report import build_report, parse_gold, report

SRC = "A man in a red shirt .".split()
TGT = "Un homme en chemise rouge .".split()
GOLD = "0-0 1-1 2-2 4-4 5-3 3p2 6-5"


@pytest.fixture(scope="module")
def pair_insp(tiny):
    model, tok = tiny("marian")
    return inspect((model, tok), SRC, target=TGT, is_split_into_words=True)


def _claims(page):
    return re.findall(r'data-claim="(\w+)"', page)


def test_parse_gold_forms():
    sure, possible = parse_gold("0-0 1-2 2p1")
    assert sure == {(0, 0), (1, 2)} and possible == {(0, 0), (1, 2), (2, 1)}
    assert parse_gold(({(0, 0)}, {(1, 1)})) == ({(0, 0)}, {(0, 0), (1, 1)})
    assert parse_gold({"sure": [[0, 1]], "possible": [[0, 1], [2, 2]]}) == ({(0, 1)}, {(0, 1), (2, 2)})
    assert parse_gold([(0, 0)]) == ({(0, 0)}, {(0, 0)})
    assert parse_gold(None) is None
    with pytest.raises(InputError):
        parse_gold([(0, 1, 2)])


def test_report_with_gold_scores_alignment(pair_insp, tmp_path):
    path = report(pair_insp, tmp_path, gold=GOLD, faithful=False, bertviz=False, fragmentation=False)
    assert path == tmp_path / "report.html"
    page = path.read_text(encoding="utf-8")
    assert _claims(page)[:3] == ["alignment", "plausible", "faithful"]
    assert "forced (teacher forcing)" in page.split("</header>")[0]
    alignment = page.split('data-claim="alignment"')[1].split("</section>")[0]
    assert "AER" in alignment and "best single head" in alignment and "Not scored" not in alignment
    assert alignment.count("<img") == 3  # AER heatmap, best head + gold, mean + gold
    assert "Un homme en chemise rouge ." in page
    assert not re.search(r'(src|href)="(https?:)?//', page)  # nothing fetched from the network
    assert "data:image/png;base64," in page


def test_report_without_gold_says_not_scored_and_has_views(pair_insp, tmp_path):
    page = build_report(pair_insp, faithful=False, fragmentation=False)
    alignment = page.split('data-claim="alignment"')[1].split("</section>")[0]
    assert "Not scored" in alignment and "<img" not in alignment
    plausible = page.split('data-claim="plausible"')[1].split("</section>")[0]
    assert plausible.count('class="headscope-bertviz"') == 2 and plausible.count("<img") >= 3
    assert "Not computed" in page.split('data-claim="faithful"')[1]


def test_report_gold_out_of_range_is_reported_not_raised(pair_insp):
    page = build_report(pair_insp, "0-0 40-1", faithful=False, bertviz=False, fragmentation=False)
    assert "could not be computed" in page and "outside" in page


def test_classifier_report(tiny, tmp_path):
    model, tok = tiny("bert")
    insp = inspect((model, tok), "A man in a red shirt.")
    page = insp.report(tmp_path / "bert.html", faithful=False, bertviz=False, fragmentation=False).read_text(encoding="utf-8")
    assert "Not applicable" in page and "prediction" in page


def test_cli_report_verb(tmp_path, monkeypatch, tiny, capsys):
    import headscope.inspection as hi

    model, tok = tiny("marian")
    real = hi.inspect
    monkeypatch.setattr(hi, "inspect", lambda m, *a, **k: real((model, tok), *a, **k))
    rc = main(["report", "tiny-marian", " ".join(SRC), "--target", " ".join(TGT), "--gold", GOLD,
               "--no-faithful", "--no-bertviz", "--no-fragmentation", "--out", str(tmp_path)])
    assert rc == 0 and (tmp_path / "report.html").exists()
    assert "AER" in (tmp_path / "report.html").read_text(encoding="utf-8")
    assert main(["report", "tiny-marian", "A man.", "--gold", "0-0", "--out", str(tmp_path)]) == 2
    assert "--target" in capsys.readouterr().err
    rc = main(["bertviz", "tiny-marian", "A man.", "--view", "model", "--layers", "1", "--out", str(tmp_path)])
    assert rc == 0 and (tmp_path / "bertviz_model.html").exists()


def test_decoder_only_report(tiny):
    model, tok = tiny("gpt2")
    insp = inspect((model, tok), "A man in a red shirt")
    page = build_report(insp, faithful=False, fragmentation=False)
    assert "Not applicable" in page and "could not be computed" not in page
    assert page.count('class="headscope-bertviz"') == 2
