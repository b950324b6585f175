"""examples/seed_figure.py: the scoring on hand-worked maps, and the figure/table structure on the
shipped translators."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from headscope.viz.seed import Panel, bipartite_grid

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def seed():
    spec = importlib.util.spec_from_file_location("seed_figure", ROOT / "examples" / "seed_figure.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["seed_figure"] = mod  # dataclasses look their module up while the class is built
    spec.loader.exec_module(mod)
    yield mod
    sys.modules.pop("seed_figure", None)


def _one_hot(cols: list[int], n_src: int) -> np.ndarray:
    m = np.zeros((len(cols), n_src))
    m[np.arange(len(cols)), cols] = 1.0
    return m


def test_reference_is_the_seed_pair(seed):
    assert len(seed.EN_WORDS) == 13 and len(seed.FR_WORDS) == 14 == len(seed.REFERENCE)
    for s, t in seed.CROSSING:
        assert seed.REFERENCE[t] == s
    pairs = {(seed.EN_WORDS[s], seed.FR_WORDS[t]) for s, t in seed.CROSSING}
    assert pairs == {("European", "européenne"), ("Economic", "économique"), ("Area", "zone")}


def test_score_map_small_hand_worked(seed):
    """3 English x 3 French words, the last two crossed; worked out by hand."""
    mod = seed
    m = np.array([[0.7, 0.2, 0.1],    # French 0 -> English 0 (not in the crossing)
                  [0.1, 0.3, 0.6],    # French 1 should be English 2: argmax 2, right, mass 0.6
                  [0.2, 0.5, 0.3]])   # French 2 should be English 1: argmax 1, right, mass 0.5
    sc = mod.score_map(m, reference=[0, 2, 1], crossing=[(1, 2), (2, 1)], radius=1)
    assert [p["ok"] for p in sc["crossing"]] == [True, True]
    assert [p["mass"] for p in sc["crossing"]] == pytest.approx([0.5, 0.6])
    assert sc["crossing_ok"] == 2
    assert sc["diagonal"] == pytest.approx(0.9)    # French 0: English 0..1 -> 0.7 + 0.2
    assert sc["links"] == 3
    # the straight (uncrossed) reading: French 1 -> English 1, French 2 -> English 2
    straight = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.05, 0.15, 0.8]])
    sc = mod.score_map(straight, reference=[0, 2, 1], crossing=[(1, 2), (2, 1)], radius=0)
    assert [p["ok"] for p in sc["crossing"]] == [False, False]
    assert [p["argmax"] for p in sc["crossing"]] == [2, 1]
    assert [p["mass"] for p in sc["crossing"]] == pytest.approx([0.15, 0.1])
    assert sc["diagonal"] == pytest.approx(0.7)    # radius 0: only the reference word
    assert sc["links"] == 1


def test_score_map_on_the_seed_pair(seed):
    n_fr, n_en = len(seed.FR_WORDS), len(seed.EN_WORDS)
    perfect = _one_hot(seed.REFERENCE, n_en)
    sc = seed.score_map(perfect)
    assert sc["crossing_ok"] == 3 and sc["links"] == n_fr and sc["diagonal"] == pytest.approx(1.0)
    assert all(p["ok"] and p["mass"] == 1.0 for p in sc["crossing"])
    # the monotone diagonal j -> round(j * (m-1)/(n-1)): right on Economic only, zone -> European
    diag = _one_hot([round(j * (n_en - 1) / (n_fr - 1)) for j in range(n_fr)], n_en)
    sc = seed.score_map(diag)
    cells = {seed.FR_WORDS[t]: (p["ok"], p["argmax"], p["mass"]) for (_, t), p in zip(seed.CROSSING, sc["crossing"])}
    assert cells["zone"] == (False, 4, 0.0)           # round(4 * 12/13) = 4: European
    assert cells["économique"] == (True, 5, 1.0)      # round(5 * 12/13) = 5
    assert cells["européenne"] == (False, 6, 0.0)     # round(6 * 12/13) = 6: Area
    assert sc["crossing_ok"] == 1
    # two rows of half-weight: mass splits, the tie goes to the first column (numpy argmax)
    half = perfect.copy()
    half[4] = 0.0
    half[4, [2, 6]] = 0.5                             # zone: on / Area
    sc = seed.score_map(half)
    assert sc["crossing"][2] == dict(ok=False, argmax=2, mass=0.5)
    # uniform rows: the ±1 window holds 3 of 13 words, 2 at the sentence ends
    uni = np.full((n_fr, n_en), 1 / n_en)
    outside = [s for t, s in enumerate(seed.REFERENCE) if t not in {t for _, t in seed.CROSSING}]
    expected = np.mean([(2 if s in (0, n_en - 1) else 3) / n_en for s in outside])
    assert seed.score_map(uni)["diagonal"] == pytest.approx(expected)


def test_pick_head(seed):
    n_en = len(seed.EN_WORDS)
    good = _one_hot(seed.REFERENCE, n_en)
    bad = _one_hot([0] * len(seed.REFERENCE), n_en)
    maps = np.stack([np.stack([bad, bad]), np.stack([bad, good])])   # [2 layers, 2 heads, T, S]
    assert seed.pick_head(maps) == (1, 1)


def test_grid_structure():
    m = np.array([[0.9, 0.05], [0.2, 0.8]])
    fig = bipartite_grid([[Panel(m, ["a", "b"], ["A", "B"], reference=[(0, 0), (1, 1)], highlight=[1]),
                           "a note"],
                          [None, Panel(m, ["a", "b"], ["A", "B"])]], row_labels=["one", "two"], title="t")
    gids = [ax.get_gid() for ax in fig.axes]
    assert gids.count("bipartite-panel") == 2 and gids.count("empty-panel") == 1
    links = [p for ax in fig.axes for p in ax.patches if p.get_gid() == "link"]
    refs = [p for ax in fig.axes for p in ax.patches if p.get_gid() == "reference"]
    assert len(links) == 2 * 3 and len(refs) == 2    # weights >= 0.1: 0.9, 0.2, 0.8 per panel


@pytest.mark.slow
def test_run_on_shipped_translators(seed, tmp_path):
    import torch

    torch.set_num_threads(1)
    models = seed.translators()
    assert "headscope/en-fr" in models and "headscope/en-fr-1x1" in models
    out = seed.run(png=tmp_path / "seed.png", md=tmp_path / "seed.md", translate=False)
    results = out["results"]
    assert list(results) == models
    n_panels = 0
    for model, readings in results.items():
        keys = [r.key for r in readings]
        assert keys[0] == "head" and keys[-1] == "rollout"
        assert ("mean" in keys) == (len(readings) == 3)
        for r in readings:
            assert r.matrix.shape == (len(seed.FR_WORDS), len(seed.EN_WORDS))
            assert np.all(r.matrix.sum(1) <= 1 + 1e-6)
        n_panels += len(readings)
    fig = out["figure"]
    assert sum(ax.get_gid() == "bipartite-panel" for ax in fig.axes) == n_panels
    rows = [line for line in out["table"].splitlines()[2:] if line.startswith("| headscope/")]
    assert len(rows) == n_panels
    assert (tmp_path / "seed.png").read_bytes()[:4] == b"\x89PNG"
    md = (tmp_path / "seed.md").read_text(encoding="utf-8")
    assert "python examples/seed_figure.py" in md and out["table"] in md and "hand-made" in md
