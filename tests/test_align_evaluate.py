"""evaluate(): scoring every cross-attention reading against gold alignments; report; files; CLI."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import threading

import numpy as np
import pytest
import torch

from headscope import Inspection, InputError, NotApplicableError
from headscope.aggregate import reading_map
from headscope.align import AlignmentReport, aer, align_inspection, evaluate, evaluate_inspections, word_maps
from headscope.align.evaluation import skip_vocabulary_projection
from headscope.align.store import legacy_reading
from headscope.align.wordmaps import cross_readings, reading_stack
from headscope.cli import main
from headscope.models.architectures import architecture_named
from headscope.readings import Head, HeadsMean, LayerMean, Rollout, Site

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
        model_name="planted", architecture=architecture_named("encoder-decoder"), source_text="a b",
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
    assert naive.aggregates["cross.0.mean"]["aer"] == pytest.approx(1 / 3)
    assert set(naive.aggregates) == {"cross.0.mean", "cross.1.mean", "cross.mean"}
    assert r.score(LayerMean("cross", 0), "naive")["aer"] == pytest.approx(1 / 3)
    assert r.score((1, 1), "naive")["aer"] == pytest.approx(2 / 3)
    assert r.predicted_links(0, (0, 1), "shift") == {(0, 0), (1, 1)}
    assert r.predicted_links(0, "best", "naive") == {(0, 0), (1, 1)}
    assert r.predicted_links(0, "cross.1.1", "naive") == {(1, 0), (1, 1)}
    assert r.predicted_links(0, Site("cross", 1, 1), "naive") == {(1, 0), (1, 1)}
    assert r.predicted_links(0, (1, 1), "naive") == {(1, 0), (1, 1)}
    assert [x.name for x in r.readings] == ["cross.0.0", "cross.0.1", "cross.1.0", "cross.1.1",
                                            "cross.0.mean", "cross.1.mean", "cross.mean"]
    # a layer site is the layer's head mean, as everywhere in the reading vocabulary
    assert r.predicted_links(0, Site("cross", 0), "naive") == r.predicted_links(0, "cross.0.mean", "naive") \
        == {(0, 0), (0, 1)}
    for bad in ("L1H1", "cross.1", "layer 0 mean", Site("decoder", 1, 1), (1, 1, 0), "cross.rollout"):
        with pytest.raises(InputError):
            r.predicted_links(0, bad, "naive")
    assert "*" in r.table() and "naive 0.000  shift 0.000" in r.summary()
    assert "all-heads mean" in r.table() and "layer 0 mean" in r.table() and "cross.mean" not in r.table()
    assert len(repr(r).splitlines()) == 1 and len(str(r).splitlines()) <= 5
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
    with pytest.raises(InputError, match="cross attention"):
        align_inspection(_planted(), "decoder.0.1")
    encoder_only = Inspection(model_name="bert", architecture=architecture_named("encoder"), source_text="a b",
                              source_tokens=["a", "b"], source_word_ids=[0, 1],
                              attentions={"encoder": torch.full((1, 1, 2, 2), 0.5)})
    with pytest.raises(NotApplicableError, match="encoder-only"):
        word_maps(encoder_only)


def test_word_maps_are_reading_maps_pooled():
    """The batched maps of every reading equal headscope.aggregate.reading_map of each, exactly."""
    insp = _planted()
    readings = cross_readings(insp)
    assert readings == [Head("cross", 0, 0), Head("cross", 0, 1), Head("cross", 1, 0), Head("cross", 1, 1),
                        LayerMean("cross", 0), LayerMean("cross", 1), HeadsMean("cross")]
    assert torch.equal(reading_stack(insp, readings), torch.stack([reading_map(insp, x) for x in readings]))
    maps, names = word_maps(insp, ["cross.1.0", Site("cross", 0, 1), (0, 0)], convention="shift")
    assert names == [Head("cross", 1, 0), Head("cross", 0, 1), Head("cross", 0, 0)] and maps.shape == (3, 2, 2)
    wm, links = align_inspection(insp, "cross.0.1", convention="shift")
    assert torch.equal(wm, maps[1]) and links == {(0, 0), (1, 1)}


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
                links = [align_inspection(i, (layer, head), convention=conv)[1] for i in insps]
                alone = aer(links, sure, possible)
                assert sc.aer[layer, head] == pytest.approx(alone.aer)
                assert sc.precision[layer, head] == pytest.approx(alone.precision)
                assert sc.recall[layer, head] == pytest.approx(alone.recall)
                assert [report.predicted_links(k, (layer, head), conv) for k in range(3)] == links
        for reading in ("cross.mean", "cross.1.mean", "cross.rollout"):
            links = [align_inspection(i, reading, convention=conv)[1] for i in insps]
            assert sc.aggregates[reading]["aer"] == pytest.approx(aer(links, sure, possible).aer)
            assert [report.predicted_links(k, reading, conv) for k in range(3)] == links
        assert sc.best_aer == pytest.approx(sc.aer.min())


def test_rollout_and_order_independent_of_batching(report, marian, gold_files):
    assert "cross.rollout" in report.aggregates and report.notes == []
    assert report.readings[-1] == Rollout("cross")
    again = evaluate(marian, gold_files, convention="both", index_base=0, batch_size=3, progress=False,
                     sources=("heads",), limit=2)
    assert again.n_sentences == 2 and again.aggregates == {}
    one = evaluate(marian, gold_files, convention="naive", index_base=0, batch_size=1, progress=False)
    np.testing.assert_allclose(one.aer, report.by_convention["naive"].aer, atol=1e-12)


def test_save_load(report, tmp_path):
    out = report.save(tmp_path / "rep")
    assert sorted(p.name for p in out.iterdir()) == ["links.jsonl", "report.json", "scores.csv"]  # numbers only
    assert [p.name for p in tmp_path.iterdir()] == ["rep"]  # no staging folder left beside it
    meta = json.loads((out / "report.json").read_text())
    assert meta["format"] == 2 and set(meta["scores"]) == {"naive", "shift"}
    assert np.array(meta["scores"]["shift"]["aer"]).shape == (2, 4)
    assert meta["readings"][8:] == ["cross.0.mean", "cross.1.mean", "cross.mean", "cross.rollout"]
    rows = list(csv.DictReader(open(out / "scores.csv")))
    n_agg = len(report.aggregates)  # 2 layer means, all-heads mean, rollout
    assert n_agg == 4 and len(rows) == 2 * (8 + n_agg) == len(report.to_rows())
    assert sum(int(r["best"]) for r in rows) == 2
    assert [r["reading"] for r in rows[:8]] == [f"cross.{l}.{h}" for l in range(2) for h in range(4)]
    assert [r["label"] for r in rows[8:12]] == ["layer 0 mean", "layer 1 mean", "all-heads mean", "rollout"]
    assert {r["reading"] for r in rows if r["best"] == "1"} == {sc.best.name for sc in report.by_convention.values()}
    assert float(rows[10]["aer"]) == pytest.approx(report.aggregates["cross.mean"]["aer"], abs=1e-6)
    assert len((out / "links.jsonl").read_text().splitlines()) == 3
    back = AlignmentReport.load(out)
    np.testing.assert_allclose(back.aer, report.aer)
    assert back.best_head == report.best_head and back.conventions == ("naive", "shift")
    assert back.predicted_links(1, "cross.rollout", "naive") == report.predicted_links(1, "cross.rollout", "naive")
    assert back.table() == report.table() and back.to_rows() == report.to_rows()
    assert back.readings == report.readings and back.predicted_links(2, "cross.1.3", "shift") == \
        report.predicted_links(2, (1, 3), "shift")
    # saving again replaces the report; an unrelated folder is never written over
    report.save(out)
    assert AlignmentReport.load(out).to_rows() == report.to_rows() and len(list(tmp_path.iterdir())) == 1
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    with pytest.raises(InputError, match="not a saved alignment report"):
        report.save(tmp_path / "mine")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep"


def test_legacy_reading_names():
    assert [legacy_reading(n) for n in ("L1H3", "layer 0 mean", "all heads mean", "rollout", "cross.0.2")] == [
        Head("cross", 1, 3), LayerMean("cross", 0), HeadsMean("cross"), Rollout("cross"), Head("cross", 0, 2)]
    with pytest.raises(InputError):
        legacy_reading("all-heads, mean")


def test_load_legacy_report(report, tmp_path):
    """Reports saved before typed reading names (no "format"; "L1H3", "layer 0 mean", "all heads mean",
    "rollout") load with today's names."""
    out = report.save(tmp_path / "legacy")
    old = {f"cross.{l}.{h}": f"L{l}H{h}" for l in range(2) for h in range(4)}
    old |= {"cross.0.mean": "layer 0 mean", "cross.1.mean": "layer 1 mean", "cross.mean": "all heads mean",
            "cross.rollout": "rollout"}
    meta = json.loads((out / "report.json").read_text())
    del meta["format"]
    meta["sources"] = [old[n] for n in meta.pop("readings")]
    for scores in meta["scores"].values():
        scores["aggregates"] = {old[n]: v for n, v in scores["aggregates"].items()}
    (out / "report.json").write_text(json.dumps(meta))
    rows = [json.loads(line) for line in (out / "links.jsonl").read_text().splitlines()]
    for row in rows:
        row["predicted"] = {c: {old[n]: v for n, v in d.items()} for c, d in row["predicted"].items()}
    (out / "links.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    back = AlignmentReport.load(out)
    assert back.readings == report.readings and back.aggregates == report.aggregates
    for k in range(3):
        assert back.predicted_links(k, (1, 3), "naive") == report.predicted_links(k, "cross.1.3", "naive")
        assert back.predicted_links(k, "cross.mean", "shift") == report.predicted_links(k, "cross.mean", "shift")
    meta["format"] = 99
    (out / "report.json").write_text(json.dumps(meta))
    with pytest.raises(InputError, match="format 99"):
        AlignmentReport.load(out)


def test_vocabulary_projection_skipped_in_this_context_only(marian, gold_files):
    """evaluate skips the output projection for its own forwards; the model is given back exactly
    (also after an error), and a forward on another thread meanwhile computes real logits."""
    model, tok = marian
    layer = model.get_output_embeddings()
    before = dict(vars(layer))
    batch = tok(["a man ."], text_target=["un homme ."], return_tensors="pt")
    with torch.no_grad():
        full = model(**batch).logits
        seen = {}
        with skip_vocabulary_projection(model):
            seen["here"] = model(**batch).logits
            other = threading.Thread(target=lambda: seen.setdefault("thread", model(**batch).logits))
            other.start()
            other.join()
        assert vars(layer) == before
        skipped = torch.zeros(full.shape[:-1] + (1,)) + model.final_logits_bias  # Marian adds a final bias
        assert torch.equal(seen["here"], skipped) and torch.equal(seen["thread"], full)
        assert torch.equal(model(**batch).logits, full)
    bad = [{"source_words": ["a", "man"], "target_words": ["un", "homme"], "sure": [[5, 0]], "possible": []}]
    with pytest.raises(InputError, match="outside the sentence"):  # raised while scoring, inside the block
        evaluate(marian, _dataset(bad), progress=False)
    assert vars(layer) == before


def _dataset(rows):
    import datasets

    return datasets.Dataset.from_list(rows)


def test_too_long_and_not_a_translator(marian, tiny):
    rows = [{"source_words": ["a"], "target_words": ["un"], "sure": [[0, 0]], "possible": []},
            {"source_words": ["a"] * 100, "target_words": ["un"], "sure": [[0, 0]], "possible": []}]
    with pytest.raises(InputError, match=r"gold sentence 1 \(source\) is 10\d tokens long .* leave it out"):
        evaluate(marian, _dataset(rows), progress=False)
    with pytest.raises(NotApplicableError, match="encoder-only"):
        evaluate(tiny("bert"), _dataset(rows[:1]), progress=False)


# ---- CLI --------------------------------------------------------------------------------


def test_align_and_its_verb_import_without_torch():
    """``headscope --help`` builds the align verb from headscope.align.options alone."""
    code = ("import sys, headscope.align, headscope.cli.align; from headscope.align import DEFAULT_CONVENTION; "
            "print(sorted(m for m in ('torch', 'transformers', 'headscope.align.evaluation') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


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
    code = main(["align", marian_dir, *[arg for f in gold_files for arg in ("--gold", f)], "--index-base", "0", "--convention", "both",
                 "--out", str(out), "--no-progress", "--symmetrize", "intersection"])
    assert code == 0
    text = capsys.readouterr().out
    assert "naive+shift intersection: best head" in text
    assert "naive convention" in text and "shift convention" in text and "*" in text
    assert "best-head AER side by side" in text
    assert (out / "aer_heatmap_naive.png").read_bytes()[:4] == b"\x89PNG"
    assert (out / "aer_heatmap_shift.png").is_file() and (out / "scores.csv").is_file()


def test_cli_malformed_gold(only_align_verb, marian_dir, gold_files, tmp_path, capsys):
    bad = tmp_path / "bad.txt"
    bad.write_text(f"{LINKS[0]}\n0-0 1x1\n{LINKS[2]}\n", encoding="utf-8")
    code = main(["align", marian_dir, "--gold", gold_files[0], "--gold", str(bad), "--index-base", "0", "--no-progress"])
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
    code = main(["align", marian_dir, "--gold", str(tmp_path / "src.txt"), "--gold", str(tmp_path / "tgt.txt"),
                 "--gold", str(tmp_path / "links.txt"), "--reverse", "--index-base", "0", "--limit", "2",
                 "--convention", "naive", "--out", str(out), "--no-progress"])
    assert code == 0, capsys.readouterr().err
    back = AlignmentReport.load(out)
    assert back.n_sentences == 2 and back.conventions == ("naive",)
    assert back.gold[0]["source_words"] == SENTS[0][0].split()  # reversed back to English -> French
