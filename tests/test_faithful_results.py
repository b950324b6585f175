"""Typed results: the same shape for every architecture (and for a label head on a decoder);
short summaries, tables, exact save/load round trips with a checked format."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from conftest import TARGETS, TEXTS
from faithful_helpers import one_thread  # noqa: F401
from transformers import GPT2ForSequenceClassification

import headscope
from headscope.errors import InputError
from headscope.faithful import (
    AblationResult,
    FaithfulnessReport,
    FlipResult,
    RankingComparison,
    RowComparison,
    compare_rankings,
    faithfulness_report,
    head_ablation,
    summarise,
    token_importance,
)


def _gpt2_classifier(tiny):
    """A decoder-only model with a classification head: its output is a label, its attention causal."""
    model, tok = tiny("gpt2")
    config = model.config.__class__.from_dict({**model.config.to_dict(), "num_labels": 2,
                                                "pad_token_id": tok.pad_token_id})
    torch.manual_seed(3)
    return GPT2ForSequenceClassification(config).eval(), tok


@pytest.mark.parametrize("family", ["bert", "gpt2", "marian", "gpt2-classifier"])
def test_results_have_one_shape_for_every_architecture(tiny, family):
    model, tok = _gpt2_classifier(tiny) if family == "gpt2-classifier" else tiny(family)
    target = TARGETS[0] if family == "marian" else None
    insp = headscope.inspect((model, tok), TEXTS[0], target=target)
    n_decisions = len(insp.target_tokens) if family == "marian" else 1
    for method in ("attention", "gradient", "loo"):
        imp = token_importance(insp, method)
        assert imp.scores.shape == (n_decisions, len(insp.source_tokens)), method
        assert len(imp.decisions) == n_decisions and len(imp.to_rows()) == imp.scores.size
    if family == "gpt2-classifier":
        assert token_importance(insp, "attention").decisions == [insp.prediction["label"]]
        np.testing.assert_allclose(token_importance(insp, "attention").scores[0],  # the last token reads the label
                                   insp.map("decoder", 1).mean(0)[-1].numpy(), atol=1e-6)
    comparison = compare_rankings(insp, eraser=True)
    assert isinstance(comparison, RankingComparison)
    expected = n_decisions - (1 if family == "marian" else 0)  # the final </s> is not explained
    assert [r.row for r in comparison.rows] == list(range(expected))
    keys = {k.split("_")[0] for k in comparison.to_rows()[0]}
    assert keys == {"row", "decision", "tau", "flip", "flipped", "comprehensiveness", "sufficiency"}
    assert all(set(r.tau) == {"gradient", "loo"} and set(r.flip) == {"attention", "gradient", "loo", "random"}
               for r in comparison.rows)
    assert "median Kendall tau" in str(comparison) and len(comparison.table().splitlines()) == 3 + expected
    assert RankingComparison.from_dict(json.loads(json.dumps(comparison.to_dict()))).to_dict() == comparison.to_dict()
    res = head_ablation(insp, proxies=False)
    assert res.measure == ("ll_drop" if family in ("gpt2", "marian") else "prob_drop")
    assert len(res.per_token) == 1 and res.per_token[0].shape[0] == len(res.configs)


def test_ablation_result_prints_tabulates_and_round_trips(tiny, tmp_path):
    model, tok = tiny("bert")
    res = head_ablation((model, tok), text=TEXTS)
    assert 2 <= len(str(res).splitlines()) <= 5 and "\n" not in repr(res)
    rows = res.to_rows()
    assert len(rows) == 8 and [r["ablated"] for r in rows] == [c[0] for c in res.configs]
    assert set(rows[0]) == {"ablated", "step", "prob_drop", "kl", "logprob_drop", "confidence", "entropy", "gradient"}
    assert rows[3]["kl"] == pytest.approx(res.per_example["kl"][3].mean())
    assert len(res.table().splitlines()) == 2 + 8 + 3 and len(res.table(2).splitlines()) == 2 + 2 + 3
    folder = res.save(tmp_path / "ablation")
    back = AblationResult.load(folder)
    assert json.dumps(back.to_dict()) == json.dumps(res.to_dict())
    for n in range(res.n_examples):
        np.testing.assert_array_equal(back.per_token[n], res.per_token[n])
    res.save(folder)  # replacing the folder leaves nothing beside it
    assert [p.name for p in tmp_path.iterdir()] == ["ablation"]
    meta = json.loads((folder / "ablation.json").read_text())
    assert meta["format"] == 1
    (folder / "ablation.json").write_text(json.dumps({**meta, "format": 99}))
    with pytest.raises(InputError, match="format 99"):
        AblationResult.load(folder)
    with pytest.raises(InputError, match="not a saved"):
        AblationResult.load(tmp_path / "missing")


def _row(t, tau_loo, fraction, flipped=True, eraser=None):
    flip = FlipResult(round(fraction * 10), 10, flipped)
    return RowComparison(t, f"tok{t}", {"loo": tau_loo}, {"attention": flip}, eraser or {})


def test_summarise_pools_every_decision():
    a = RankingComparison("m", "encoder-decoder", "cross.1.mean", [], ["loo"], ["attention"],
                          [_row(0, 0.5, 0.2), _row(1, -0.5, 0.4), _row(2, float("nan"), 1.0, flipped=False)])
    b = RankingComparison("m", "encoder-decoder", "cross.1.mean", [], ["loo"], ["attention"],
                          [_row(0, 1.0, 0.6, eraser={"attention": {"comprehensiveness": 0.3, "sufficiency": 0.1}})])
    s = summarise([a, b])
    assert s.tau["loo"]["n"] == 3 and s.tau["loo"]["nan"] == 1 and s.tau["loo"]["median"] == pytest.approx(0.5)
    assert s.flip["attention"]["n"] == 4 and s.flip["attention"]["flipped"] == pytest.approx(0.75)
    assert s.flip["attention"]["mean_fraction_when_flipped"] == pytest.approx(0.4)
    assert s.flip["attention"]["mean_fraction_all"] == pytest.approx(0.55)
    assert s.eraser == {"attention": {"comprehensiveness": 0.3, "sufficiency": 0.1}}
    assert "Kendall tau-b" in s.table() and len(s.to_rows()) == 3
    assert math.isnan(a.to_rows()[0]["comprehensiveness_attention"])


def test_legacy_comparison_dicts_are_read():
    seq2seq = {"tau": {"loo": [0.1, 0.2]}, "flip": {"attention": [
        {"n_erased": 1, "n_erasable": 4, "flipped": True, "fraction": 0.25},
        {"n_erased": 4, "n_erasable": 4, "flipped": False, "fraction": 1.0}]}, "eraser": {}, "rows": [0, 1]}
    old = RankingComparison.from_dict(seq2seq)
    assert [r.tau["loo"] for r in old.rows] == [0.1, 0.2] and old.rows[1].flip["attention"].fraction == 1.0
    label = {"tau": {"loo": 0.3}, "flip": {"attention": {"n_erased": 2, "n_erasable": 8, "flipped": True,
                                                        "fraction": 0.25}},
             "eraser": {"attention": {"comprehensiveness": 0.2, "sufficiency": 0.4}}, "rows": [0]}
    assert RankingComparison.from_dict(label).rows[0].eraser["attention"]["sufficiency"] == 0.4


def test_report_saves_and_loads(tiny, tmp_path):
    model, tok = tiny("marian")
    report = faithfulness_report((model, tok), TEXTS, TARGETS, ablation_texts=1)
    assert report.ablation is not None and report.ablation.n_examples == 1
    assert len(report.to_rows()) == sum(len(c.rows) for c in report.comparisons)
    folder = report.save(tmp_path / "report")
    assert sorted(p.name for p in folder.iterdir()) == ["examples.csv", "faithful.json", "heads.csv"]
    back = FaithfulnessReport.load(folder)
    assert json.dumps(back.to_dict()) == json.dumps(report.to_dict())
    assert len(str(back).splitlines()) <= 8
