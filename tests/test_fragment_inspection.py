"""Fragmentation and aggregates on real inspections (tiny random models)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import TARGETS, TEXTS

import headscope
from headscope import InputError
from headscope.aggregate import encoder_decoder_rollout, flow, rollout


@pytest.fixture(scope="module")
def marian_insp():
    return headscope.inspect(headscope.build_tiny("marian"), TEXTS[0], target=TARGETS[0])


@pytest.fixture(scope="module")
def bert_insp():
    return headscope.inspect(headscope.build_tiny("bert"), TEXTS[1])


def test_inspection_rollout_and_flow(marian_insp, bert_insp):
    a = marian_insp.attentions
    assert np.allclose(marian_insp.rollout(), encoder_decoder_rollout(a["encoder"], a["decoder"], a["cross"]))
    assert np.allclose(marian_insp.rollout(kind="encoder"), rollout(a["encoder"]))
    enc = bert_insp.attentions["encoder"]
    assert np.allclose(bert_insp.flow(rows=[0]), flow(enc, rows=[0]))
    assert bert_insp.rollout().shape == (len(bert_insp.source_tokens),) * 2
    with pytest.raises(InputError, match="self-attention stack"):
        marian_insp.flow(kind="cross")


def test_fragmentation_readings_and_summary(marian_insp, tmp_path):
    frag = marian_insp.fragmentation()
    names = frag.reading_names
    assert "cross.1.3" in names and "all-heads mean" in names and "rollout" in names
    assert names[-2:] == ["gradient", "loo"]
    assert frag.tau.shape == (len(names), len(names)) and np.allclose(np.diag(frag.tau), 1)
    assert np.all(np.abs(frag.tau) <= 1 + 1e-12)
    assert set(frag.kinds) == {"encoder", "decoder", "cross"} and frag.kinds["cross"].n_heads == 8
    text = frag.summary()
    for claim in ("Alignment", "Plausible", "Faithful"):
        assert claim in text
    assert "Kendall τ with loo" in text
    data = json.loads((frag.save(tmp_path) / "fragmentation.json").read_text())
    assert data["readings"] == names


def test_fragmentation_classifier_without_faithful(bert_insp):
    frag = bert_insp.fragmentation(faithful=False, alignment={"best head": 0.3})
    assert "flow" in frag.reading_names and "loo" not in frag.reading_names
    assert "not measured" in frag.summary() and "best head AER 0.300" in frag.summary()


def test_fragmentation_needs_model_for_faithful(marian_insp, tmp_path):
    loaded = headscope.Inspection.load(marian_insp.save(tmp_path / "i"))
    with pytest.raises(InputError, match="faithful=False"):
        loaded.fragmentation()
    assert loaded.fragmentation(faithful=False).kinds["cross"].n_heads == 8
