"""Fragmentation and aggregates on real inspections (tiny random models)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import TARGETS, TEXTS

import headscope
from headscope import InputError
from headscope.aggregate import encoder_decoder_rollout, flow, reading_map, rollout
from headscope.fragment import Fragmentation, attention_readings, decision_rows, fragmentation
from headscope.readings import Flow, Head, HeadsMean, LayerMean, Rollout


@pytest.fixture(scope="module")
def marian_insp():
    return headscope.inspect(headscope.build_tiny("marian"), TEXTS[0], target=TARGETS[0])


@pytest.fixture(scope="module")
def bert_insp():
    return headscope.inspect(headscope.build_tiny("bert"), TEXTS[1])


@pytest.fixture(scope="module")
def gpt2_insp():
    return headscope.inspect(headscope.build_tiny("gpt2"), TEXTS[1])


@pytest.fixture(scope="module")
def marian_frag(marian_insp):
    return fragmentation(marian_insp)


def test_reading_map_rollout_and_flow(marian_insp, bert_insp):
    a = marian_insp.attentions
    expected = encoder_decoder_rollout(a["encoder"], a["decoder"], a["cross"])
    assert np.allclose(reading_map(marian_insp, "cross.rollout"), expected)
    assert np.allclose(reading_map(marian_insp, Rollout("encoder")), rollout(a["encoder"]))
    enc = bert_insp.attentions["encoder"]
    assert np.allclose(reading_map(bert_insp, "encoder.flow", rows=[0]), flow(enc, rows=[0]))
    assert reading_map(bert_insp, "encoder.rollout").shape == (len(bert_insp.source_tokens),) * 2
    with pytest.raises(InputError, match="self-attention stack"):
        reading_map(marian_insp, "cross.flow")


def test_attention_readings_are_the_decision_rows(marian_insp, bert_insp, gpt2_insp):
    cross = marian_insp.attentions["cross"].float()
    got = attention_readings(marian_insp)
    assert list(got)[8:] == [LayerMean("cross", 0), LayerMean("cross", 1), HeadsMean("cross"), Rollout("cross")]
    assert np.array_equal(got[Head("cross", 1, 3)], cross[1, 3].numpy())
    assert np.allclose(got[HeadsMean("cross")], cross.mean((0, 1)).numpy())
    for insp, kind, row in ((bert_insp, "encoder", 0), (gpt2_insp, "decoder", len(gpt2_insp.source_tokens) - 1)):
        att = insp.attentions[kind].float()
        assert decision_rows(insp, kind) == row
        got = attention_readings(insp)
        assert list(got)[-3:] == [HeadsMean(kind), Rollout(kind), Flow(kind)]
        assert np.allclose(got[LayerMean(kind, 1)], att[1, :, row].mean(0).numpy())
        assert np.allclose(got[Rollout(kind)], rollout(att)[row])
        assert np.allclose(got[Flow(kind)], flow(att)[row])


def test_many_heads_keep_only_the_last_layer_as_single_readings():
    insp = headscope.inspect(headscope.build_tiny("marian", heads=16), TEXTS[0], target=TARGETS[0])
    got = attention_readings(insp)
    heads = [r for r in got if isinstance(r, Head)]
    assert heads == [Head("cross", 1, h) for h in range(16)]
    assert LayerMean("cross", 0) in got and HeadsMean("cross") in got


def test_fragmentation_readings_and_summary(marian_frag, tmp_path):
    frag = marian_frag
    names = frag.reading_names
    assert Head("cross", 1, 3) in frag.readings and HeadsMean("cross") in frag.readings
    assert "cross.1.3" in names and "cross.mean" in names and "cross.rollout" in names
    assert frag.readings[-2:] == ["gradient", "loo"] and frag.references == ["gradient", "loo"]
    assert frag.tau.shape == (len(names), len(names)) and np.allclose(np.diag(frag.tau), 1)
    assert np.all(np.abs(frag.tau) <= 1 + 1e-12)
    assert set(frag.kinds) == {"encoder", "decoder", "cross"} and frag.kinds["cross"].n_heads == 8
    assert frag.kind == "cross" and frag.architecture == "encoder-decoder"
    text = str(frag)
    for claim in ("Alignment", "Plausible", "Faithful"):
        assert claim in text
    assert "Kendall τ with loo" in text and "all-heads mean" in text and "cross.mean" not in text
    assert len(repr(frag).splitlines()) == 1
    taus = frag.tau_with("loo")
    assert list(taus.values()) == sorted(taus.values(), reverse=True) and "loo" not in taus
    assert frag.tau_with("cross.mean") == frag.tau_with(HeadsMean("cross"))
    with pytest.raises(InputError, match="no reading"):
        frag.tau_with("encoder.mean")
    data = json.loads((frag.save(tmp_path / "f") / "fragmentation.json").read_text())
    assert data["readings"] == names and data["format"] == 2


def test_fragmentation_rows_and_table(marian_frag):
    frag = marian_frag
    rows = frag.to_rows()
    n_heads = sum(kf.n_heads for kf in frag.kinds.values())
    assert len(rows) == n_heads + sum(not isinstance(r, Head) for r in frag.readings)
    assert all(list(row) == list(rows[0]) for row in rows)
    assert list(rows[0]) == ["reading", "label", "kind", "behaviour", "sink_mass", "mean_js", "tau_gradient", "tau_loo"]
    by_name = {row["reading"]: row for row in rows}
    cross = frag.kinds["cross"]
    assert by_name["cross.1.3"]["behaviour"] == cross.labels[1, 3]
    assert by_name["cross.1.3"]["sink_mass"] == pytest.approx(cross.sink_mass[1, 3])
    assert by_name["cross.1.3"]["tau_loo"] == pytest.approx(frag.tau_with("loo")[Head("cross", 1, 3)])
    assert by_name["encoder.0.0"]["tau_loo"] is None  # encoder heads are not compared with loo
    assert by_name["cross.mean"]["label"] == "all-heads mean" and by_name["loo"]["tau_loo"] == 1.0
    assert np.mean([by_name[h.name]["mean_js"] for h in cross.heads]) == pytest.approx(cross.mean_js)
    table = frag.table().splitlines()
    assert len(table) == len(rows) + 1 and table[0].split()[:3] == ["label", "kind", "behaviour"]
    assert any(line.startswith("all-heads mean") for line in table) and "None" not in frag.table()


def test_fragmentation_save_load_round_trip(marian_frag, tmp_path):
    frag = marian_frag
    folder = frag.save(tmp_path / "f")
    assert sorted(p.name for p in folder.iterdir()) == ["fragmentation.csv", "fragmentation.json"]
    back = Fragmentation.load(folder)
    assert back.readings == frag.readings and np.array_equal(back.tau, frag.tau)
    assert back.to_rows() == frag.to_rows() and back.summary() == frag.summary()
    for kind, kf in frag.kinds.items():
        assert np.array_equal(back.kinds[kind].js, kf.js) and np.array_equal(back.kinds[kind].labels, kf.labels)
        assert back.kinds[kind].heads == kf.heads
    csv_lines = (folder / "fragmentation.csv").read_text().splitlines()
    assert csv_lines[0].startswith("reading,label,kind") and csv_lines[1].startswith("encoder.0.0,")
    frag.save(folder)  # replacing a saved fragmentation is fine, and leaves no staging folder behind
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f"]
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="not a saved fragmentation"):
        frag.save(tmp_path / "other")
    assert (tmp_path / "other" / "notes.txt").read_text() == "mine"


def test_fragmentation_load_checks_format_and_converts_version_1(marian_frag, tmp_path):
    data = marian_frag.to_dict()
    (tmp_path / "new.json").write_text(json.dumps({**data, "format": 99}))
    with pytest.raises(InputError, match="format 99"):
        Fragmentation.load(tmp_path / "new.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(InputError, match="bad.json"):
        Fragmentation.load(tmp_path / "bad.json")
    with pytest.raises(InputError, match="not a saved fragmentation"):
        Fragmentation.load(tmp_path / "missing")
    # version 1 (no "format"): "family", aggregates named by their labels, no layer indices
    old = {"model_name": data["model_name"], "family": "encoder-decoder", "tau": data["tau"],
           "readings": marian_frag.reading_labels, "alignment": {"all-heads mean": 0.5},
           "kinds": {k: {f: v for f, v in kd.items() if f != "layers"} for k, kd in data["kinds"].items()}}
    (tmp_path / "old.json").write_text(json.dumps(old))
    back = Fragmentation.load(tmp_path / "old.json")
    assert back.readings == marian_frag.readings and back.alignment == {HeadsMean("cross"): 0.5}
    assert back.to_rows() == marian_frag.to_rows()


def test_fragmentation_classifier_without_faithful(bert_insp):
    frag = fragmentation(bert_insp, faithful=False, alignment={"encoder.1.0": 0.3, HeadsMean("encoder"): 0.4})
    assert Flow("encoder") in frag.readings and "loo" not in frag.readings and frag.references == []
    text = frag.summary()
    assert "not measured" in text and "encoder.1.0 AER 0.300" in text and "all-heads mean AER 0.400" in text
    assert "tau_loo" not in frag.to_rows()[0]
    with pytest.raises(InputError, match="not a reading name"):
        fragmentation(bert_insp, faithful=False, alignment={"best head": 0.3})
    with pytest.raises(InputError, match="unknown importance method"):
        fragmentation(bert_insp, methods=["telepathy"])


def test_fragmentation_needs_model_for_faithful(marian_insp, tmp_path):
    loaded = headscope.Inspection.load(marian_insp.save(tmp_path / "i"))
    with pytest.raises(InputError, match="faithful=False"):
        fragmentation(loaded)
    assert fragmentation(loaded, faithful=False).kinds["cross"].n_heads == 8
