"""evaluate(): scoring every cross-attention head against gold alignments; report; CLI."""

from __future__ import annotations

import csv
import json
import re

import numpy as np
import pytest
import torch

from headscope import Inspection, InputError
from headscope.align import AlignmentReport, aer, evaluate, evaluate_inspections
from headscope.readings import Site
from headscope.cli import main

# ---- a planted case: hand-made cross attention, AER worked by hand -------------------------

E0, E1 = [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]
EOS_HEAVY = [0.1, 0.2, 0.7]  # most mass on </s>, which is not a word


def _planted() -> Inspection:
    """2 layers x 2 heads; source "a b </s>", target "x y </s>"; rows = decoder steps."""
    cross = torch.tensor(
        [
            [[E0, E1, E1], [E1, E0, E1]],  # L0H0, L0H1
            [[E0, E0, E0], [EOS_HEAVY] * 3],  # L1H0, L1H1
        ]
    )
    return Inspection(
        model_name="planted", family="encoder-decoder", source_text="a b",
        source_tokens=["▁a", "▁b", "</s>"], source_word_ids=[0, 1, None],
        attentions={"cross": cross}, target_text="x y", target_tokens=["▁x", "▁y", "</s>"],
        target_word_ids=[0, 1, None], forced=True,
    )


GOLD = [{"source_words": ["a", "b"], "target_words": ["x", "y"], "sure": [[0, 0]], "possible": [[0, 0], [1, 1]]}]


def test_planted_heads_by_hand():
    r = evaluate_inspections([_planted()], GOLD, convention="both", sources=("heads", "layer_mean", "all_mean"))
    naive, shift = r.by_convention["naive"], r.by_convention["shift"]
    # naive: L0H0 {(0,0),(1,1)} -> AER 1-(1+2)/(2+1)=0; L0H1 {(1,0),(0,1)} -> 1;
    #        L1H0 {(0,0),(0,1)} -> 1-(1+1)/3 = 1/3; L1H1 (EOS dropped: b wins) {(1,0),(1,1)} -> 1-(0+1)/3
    np.testing.assert_allclose(naive.aer, [[0, 1], [1 / 3, 2 / 3]])
    np.testing.assert_allclose(naive.precision, [[1, 0], [0.5, 0.5]])
    np.testing.assert_allclose(naive.recall, [[1, 0], [1, 0]])
    # shift: word t uses step t+1: L0H0 {(1,0),(1,1)}; L0H1 {(0,0),(1,1)}; L1H0, L1H1 unchanged
    np.testing.assert_allclose(shift.aer, [[2 / 3, 0], [1 / 3, 2 / 3]])
    assert naive.best_head == (0, 0) and shift.best_head == (0, 1)
    # the report's main fields follow the default convention (naive)
    assert r.convention == "naive" and r.best_head == (0, 0) and r.best_aer == 0.0
    np.testing.assert_array_equal(r.aer, naive.aer)
    # layer-0 mean, naive: rows tie between a and b -> first (a) for both words -> 1/3
    assert naive.aggregates["layer 0 mean"]["aer"] == pytest.approx(1 / 3)
    assert set(naive.aggregates) == {"layer 0 mean", "layer 1 mean", "all heads mean"}
    assert r.predicted_links(0, (0, 1), "shift") == {(0, 0), (1, 1)}
    assert r.predicted_links(0, "best", "naive") == {(0, 0), (1, 1)}
    assert r.predicted_links(0, "cross.1.1", "naive") == {(1, 0), (1, 1)}
    assert r.predicted_links(0, Site("cross", 1, 1), "naive") == {(1, 0), (1, 1)}
    assert r.predicted_links(0, (1, 1), "naive") == {(1, 0), (1, 1)}
    assert r.sources == ["cross.0.0", "cross.0.1", "cross.1.0", "cross.1.1",
                         "layer 0 mean", "layer 1 mean", "all heads mean"]
    for bad in ("L1H1", "cross.1", Site("cross", 1), Site("decoder", 1, 1), (1, 1, 0)):
        with pytest.raises(InputError):
            r.predicted_links(0, bad, "naive")
    assert "*" in r.table() and "naive 0.000  shift 0.000" in r.summary()
    assert "best head: cross.0.1, AER 0.000" in r.table("shift")
    assert "naive (main): best head cross.0.0 AER 0.000" in r.summary()
    assert "| 0 | 0.667 / 0.500 / 0.000 | **0.000 / 1.000 / 1.000** |" in r.markdown()
    assert "| shift | `cross.0.1` | 0.000 |" in r.markdown()


def test_planted_symmetrized():
    r = evaluate_inspections([_planted()], GOLD, convention="both", sources="heads")
    inter = r.symmetrized("intersection")
    # L0H0: naive {(0,0),(1,1)} & shift {(1,0),(1,1)} = {(1,1)}: 1 - (0 + 1) / (1 + 1)
    # L0H1: {(1,0),(0,1)} & {(0,0),(1,1)} = {}: AER 1; L1H0, L1H1 unchanged
    np.testing.assert_allclose(inter.aer, [[0.5, 1], [1 / 3, 2 / 3]])
    assert inter.convention == "naive+shift intersection" and inter.best_head == (1, 0)
    np.testing.assert_allclose(r.symmetrized("union").aer[0], [1 - 3 / 4, 1 - 3 / 5])
    with pytest.raises(InputError, match="both"):
        evaluate_inspections([_planted()], GOLD, convention="naive", sources="heads").symmetrized()


def test_planted_threshold():
    r = evaluate_inspections([_planted()], GOLD, convention="naive", extraction=("threshold", 0.5), sources="heads")
    # L1H1 has no word cell above 0.5 (0.1, 0.2): empty prediction, AER 1 (|S| = 1)
    np.testing.assert_allclose(r.aer, [[0, 1], [1 / 3, 1]])
    assert r.aggregates == {} and r.extraction == "threshold 0.5"


def test_word_mismatch_refused():
    insp = _planted()
    gold = [dict(GOLD[0], source_words=["a", "b", "c"])]
    with pytest.raises(InputError, match=r"sentence 0 \(line 1.*source words.*'c'.*no token"):
        evaluate_inspections([insp], gold, sources="heads")


def test_bad_options():
    with pytest.raises(InputError, match="convention"):
        evaluate_inspections([_planted()], GOLD, convention="sideways")
    with pytest.raises(InputError, match="extraction"):
        evaluate_inspections([_planted()], GOLD, extraction=("threshold", 2))
    with pytest.raises(InputError, match="sources"):
        evaluate_inspections([_planted()], GOLD, sources=("encoder",))


# ---- a tiny model: one pass equals head-by-head scoring ----------------------------------

SENTS = [
    ("a man in a red shirt .", "un homme en chemise rouge ."),
    ("two dogs are playing in the snow .", "deux chiens jouent dans la neige ."),
    ("a little girl .", "une petite fille ."),
]
LINKS = ["0-0 1-1 2-2 4-4 5-3 6-5", "0-0 1-1 2p2 3-2 4-3 5-4 6-5 7-6", "0-0 1-1 2-2 3-3"]


@pytest.fixture(scope="module")
def gold_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("gold")
    (d / "sents.txt").write_text("".join(f"{s} ||| {t}\n" for s, t in SENTS), encoding="utf-8")
    (d / "links.txt").write_text("".join(line + "\n" for line in LINKS), encoding="utf-8")
    return str(d / "sents.txt"), str(d / "links.txt")


@pytest.fixture(scope="module")
def marian():
    from headscope.models.tiny import build_tiny

    torch.manual_seed(0)
    return build_tiny("marian")


@pytest.fixture(scope="module")
def report(marian, gold_files):
    return evaluate(marian, gold_files, convention="both", index_base=0, batch_size=2, progress=False)


def test_one_pass_equals_each_head_scored_alone(report, marian, gold_files):
    import headscope
    from headscope.align import load_gold

    ds = load_gold(gold_files, index_base=0)
    insps = headscope.inspect(marian, ds["source_words"], target=ds["target_words"], is_split_into_words=True)
    sure = [{tuple(x) for x in s} for s in ds["sure"]]
    possible = [{tuple(x) for x in p} for p in ds["possible"]]
    assert report.n_sentences == 3 and report.aer.shape == (2, 4)
    for conv in ("naive", "shift"):
        sc = report.by_convention[conv]
        for layer in range(2):
            for head in range(4):
                links = [i.align(layer, head, convention=conv)[1] for i in insps]
                alone = aer(links, sure, possible)
                assert sc.aer[layer, head] == pytest.approx(alone.aer)
                assert sc.precision[layer, head] == pytest.approx(alone.precision)
                assert sc.recall[layer, head] == pytest.approx(alone.recall)
                assert [report.predicted_links(k, (layer, head), conv) for k in range(3)] == links
        mean_links = [i.align(convention=conv)[1] for i in insps]
        assert sc.aggregates["all heads mean"]["aer"] == pytest.approx(aer(mean_links, sure, possible).aer)
        assert sc.best_aer == pytest.approx(sc.aer.min())


def test_rollout_and_order_independent_of_batching(report, marian, gold_files):
    assert "rollout" in report.aggregates and report.notes == []
    again = evaluate(marian, gold_files, convention="both", index_base=0, batch_size=3, progress=False,
                     sources=("heads",), limit=2)
    assert again.n_sentences == 2 and again.aggregates == {}
    one = evaluate(marian, gold_files, convention="naive", index_base=0, batch_size=1, progress=False)
    np.testing.assert_allclose(one.aer, report.by_convention["naive"].aer, atol=1e-12)


def test_save_load(report, tmp_path):
    out = report.save(tmp_path / "rep")
    for name in ("report.json", "scores.csv", "links.jsonl", "aer_heatmap.png"):
        assert (out / name).is_file(), name
    meta = json.loads((out / "report.json").read_text())
    assert np.array(meta["scores"]["shift"]["aer"]).shape == (2, 4)
    assert set(meta["scores"]) == {"naive", "shift"}
    rows = list(csv.DictReader(open(out / "scores.csv")))
    n_agg = len(report.aggregates)  # 2 layer means, all-heads mean, rollout
    assert n_agg == 4 and len(rows) == 2 * (8 + n_agg)
    assert sum(int(r["best"]) for r in rows) == 2
    assert [r["source"] for r in rows[:8]] == [f"cross.{l}.{h}" for l in range(2) for h in range(4)]
    assert {r["source"] for r in rows if r["best"] == "1"} == {
        f"cross.{sc.best_head[0]}.{sc.best_head[1]}" for sc in report.by_convention.values()}
    assert len((out / "links.jsonl").read_text().splitlines()) == 3
    assert (out / "aer_heatmap.png").read_bytes()[:4] == b"\x89PNG"
    back = AlignmentReport.load(out)
    np.testing.assert_allclose(back.aer, report.aer)
    assert back.best_head == report.best_head and back.conventions == ("naive", "shift")
    assert back.predicted_links(1, "rollout", "naive") == report.predicted_links(1, "rollout", "naive")
    assert back.table() == report.table()
    assert back.sources == report.sources and back.predicted_links(2, "cross.1.3", "shift") == \
        report.predicted_links(2, (1, 3), "shift")


def test_load_legacy_head_names(report, tmp_path):
    """Reports saved before heads were named by site ("L1H3") load with site names."""
    out = report.save(tmp_path / "legacy", heatmap=False)
    legacy = {name: re.sub(r"^cross\.(\d+)\.(\d+)$", r"L\1H\2", name) for name in report.sources}
    meta = json.loads((out / "report.json").read_text())
    meta["sources"] = [legacy[n] for n in meta["sources"]]
    (out / "report.json").write_text(json.dumps(meta))
    rows = [json.loads(line) for line in (out / "links.jsonl").read_text().splitlines()]
    for row in rows:
        row["predicted"] = {c: {legacy[n]: v for n, v in d.items()} for c, d in row["predicted"].items()}
    (out / "links.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    back = AlignmentReport.load(out)
    assert back.sources == report.sources and "L1H3" not in back.sources
    for k in range(3):
        assert back.predicted_links(k, (1, 3), "naive") == report.predicted_links(k, "cross.1.3", "naive")


# ---- CLI --------------------------------------------------------------------------------


@pytest.fixture(autouse=False)
def only_align_verb(monkeypatch):
    """Build the command with just this area's verb (other areas' verb modules are not under test here)."""
    import headscope.cli

    monkeypatch.setattr(headscope.cli, "VERB_MODULES", ("headscope.cli.align",))


@pytest.fixture(scope="module")
def marian_dir(marian, tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny-marian")
    marian[0].save_pretrained(folder)
    marian[1].save_pretrained(folder)
    return str(folder)


def test_cli_align(only_align_verb, marian_dir, gold_files, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["align", marian_dir, "--gold", *gold_files, "--index-base", "0", "--convention", "both",
                 "--out", str(out), "--no-progress", "--symmetrize", "intersection"])
    assert code == 0
    text = capsys.readouterr().out
    assert "naive+shift intersection: best head" in text
    assert "naive convention" in text and "shift convention" in text and "*" in text
    assert "best-head AER side by side" in text
    assert (out / "aer_heatmap.png").is_file() and (out / "scores.csv").is_file()


def test_cli_malformed_gold(only_align_verb, marian_dir, gold_files, tmp_path, capsys):
    bad = tmp_path / "bad.txt"
    bad.write_text(f"{LINKS[0]}\n0-0 1x1\n{LINKS[2]}\n", encoding="utf-8")
    code = main(["align", marian_dir, "--gold", gold_files[0], str(bad), "--index-base", "0", "--no-progress"])
    assert code == 2
    err = capsys.readouterr().err
    assert "line 2" in err and "1x1" in err and str(bad) in err


def test_cli_three_files_reverse_limit(only_align_verb, marian_dir, tmp_path, capsys):
    (tmp_path / "src.txt").write_text("".join(t + "\n" for _, t in SENTS), encoding="utf-8")  # French side
    (tmp_path / "tgt.txt").write_text("".join(s + "\n" for s, _ in SENTS), encoding="utf-8")
    flipped = [" ".join(f"{j}-{i}" if "-" in tok else f"{j}p{i}"
                        for tok in line.split() for i, j in [tok.replace("p", "-").split("-")]) for line in LINKS]
    (tmp_path / "links.txt").write_text("".join(line + "\n" for line in flipped), encoding="utf-8")
    out = tmp_path / "o"
    code = main(["align", marian_dir, "--gold", str(tmp_path / "src.txt"), str(tmp_path / "tgt.txt"),
                 str(tmp_path / "links.txt"), "--reverse", "--index-base", "0", "--limit", "2",
                 "--convention", "naive", "--out", str(out), "--no-progress"])
    assert code == 0, capsys.readouterr().err
    back = AlignmentReport.load(out)
    assert back.n_sentences == 2 and back.conventions == ("naive",)
    assert back.gold[0]["source_words"] == SENTS[0][0].split()  # reversed back to English -> French
