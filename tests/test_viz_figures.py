"""Static figures: structure (cells, curves, gold boxes), no smoothing, deterministic files."""

from __future__ import annotations

import numpy as np
import pytest

import headscope.align as align
from headscope import inspect
from headscope.errors import InputError, ShapeError
from headscope.readings import Head, HeadsMean, LayerMean
from headscope.viz import figures as F
from headscope.viz.words import word_map, words_of

SRC = ["the", "European", "Economic", "Area"]
TGT = ["la", "zone", "économique", "européenne"]
# Bahdanau et al.'s reordering: zone<-Area, économique<-Economic, européenne<-European
M = np.array([[0.9, 0.05, 0.03, 0.02],
              [0.05, 0.05, 0.1, 0.8],
              [0.02, 0.08, 0.85, 0.05],
              [0.03, 0.82, 0.1, 0.05]])


def _artists(fig, gid):
    ax = fig.axes[0]
    return [a for a in ax.get_children() if a.get_gid() == gid]


def test_words_of_joins_subwords_and_drops_specials():
    assert words_of(["▁un", "▁hom", "me", "</s>"], [0, 1, 1, None]) == ["un", "homme"]
    assert words_of(["[CLS]", "play", "##ing", "[SEP]"], [None, 0, 0, None]) == ["playing"]


def test_alignment_matrix_one_flat_cell_per_word_pair_with_gold_boxes():
    fig = F.alignment_matrix(M, SRC, TGT, sure={(0, 0), (3, 1), (2, 2)}, possible={(1, 3), (0, 0)},
                             predicted={(0, 0), (3, 1)})
    (mesh,) = _artists(fig, "cell-mesh")
    assert mesh.get_array().size == len(SRC) * len(TGT)
    assert not fig.axes[0].images  # no raster image that a viewer could smooth
    assert len(_artists(fig, "gold-sure")) == 3
    assert len(_artists(fig, "gold-possible")) == 1  # (1, 3) only: (0, 0) is already sure
    assert len(_artists(fig, "predicted")) == 2
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == SRC


def test_alignment_matrix_refuses_out_of_range_gold_and_bad_labels():
    with pytest.raises(InputError):
        F.alignment_matrix(M, SRC, TGT, sure={(9, 0)})
    with pytest.raises(ShapeError):
        F.alignment_matrix(M, SRC[:3], TGT)


def test_bipartite_one_curve_per_link_width_and_darkness_follow_weight():
    fig = F.bipartite(M, SRC, TGT, min_weight=0.5)
    links = _artists(fig, "link")
    assert len(links) == int((M >= 0.5).sum()) == 4
    widths = sorted(p.get_linewidth() for p in links)
    assert widths[0] < widths[-1]
    alphas = [p.get_edgecolor()[3] for p in links]
    assert max(alphas) > min(alphas)
    # reordering: the curve Area -> zone crosses European -> européenne
    ends = sorted((p.get_path().vertices[0, 0], p.get_path().vertices[-1, 0]) for p in links)
    crossings = sum(1 for i, a in enumerate(ends) for b in ends[i + 1:] if (a[0] - b[0]) * (a[1] - b[1]) < 0)
    assert crossings == 3
    assert len(_artists(F.bipartite(M, SRC, TGT, min_weight=0.0), "link")) == M.size


def test_layer_head_heatmaps_cells_and_scales():
    aer = np.linspace(0, 1, 12).reshape(3, 4)
    fig = F.aer_heatmap(aer)
    (mesh,) = _artists(fig, "cell-mesh")
    assert mesh.get_array().size == 12 and mesh.norm.vmin == 0 and mesh.norm.vmax == 1
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["L0", "L1", "L2"]
    eff = np.array([[0.5, -0.1], [0.0, 2.0]])
    (mesh,) = _artists(F.ablation_heatmap(eff, layers=[3, 5]), "cell-mesh")
    assert mesh.norm.vcenter == 0.0
    tau = np.array([[1.0, 0.2, np.nan], [0.2, 1.0, -0.4], [np.nan, -0.4, 1.0]])
    fig = F.kendall_matrix(tau, ["attention", "gradient", "loo"])
    (mesh,) = _artists(fig, "cell-mesh")
    assert mesh.get_array().size == 9
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert "-0.40" in texts and len(texts) == 7  # NaN cells left blank


def test_aer_heatmap_outlines_the_best_head_at_its_model_layer():
    aer = np.array([[0.9, 0.8], [0.7, 0.2], [0.5, 0.6]])
    fig = F.aer_heatmap(aer, layers=[2, 4, 5], best=(4, 1))
    (box,) = _artists(fig, "best-head")
    assert box.get_xy() == (0.5, 0.5)  # head 1 of the second row (model layer 4)
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["L2", "L4", "L5"]
    (same,) = _artists(F.aer_heatmap(aer, layers=[2, 4, 5], best=Head("cross", 4, 1)), "best-head")
    assert same.get_xy() == box.get_xy()
    with pytest.raises(InputError, match="best head"):
        F.aer_heatmap(aer, layers=[2, 4, 5], best=(1, 0))
    with pytest.raises(ShapeError):
        F.aer_heatmap(aer, layers=[2, 4])


def test_bars_and_fragmentation_hook():
    fig = F.fragmentation_summary({"positional": 0.5, "sink": 0.25, "diffuse": 0.25})
    assert len(_artists(fig, "bar")) == 3
    fig = F.fragmentation_summary({"sink mass": np.zeros((2, 3))})
    assert _artists(fig, "cell-mesh")[0].get_array().size == 6
    with pytest.raises(InputError):
        F.fragmentation_summary({"a": np.zeros((2, 2)), "b": np.zeros((2, 2))})


@pytest.mark.parametrize("fmt", ["png", "svg"])
def test_files_are_deterministic(tmp_path, fmt):
    a = F.to_bytes(F.alignment_matrix(M, SRC, TGT, sure={(0, 0)}), fmt)
    b = F.to_bytes(F.alignment_matrix(M, SRC, TGT, sure={(0, 0)}), fmt)
    assert a == b
    path = F.save(F.bipartite(M, SRC, TGT), tmp_path / f"fig.{fmt}")
    assert path.read_bytes() == F.to_bytes(F.bipartite(M, SRC, TGT), fmt)
    if fmt == "svg":
        text = a.decode()
        assert "<dc:date>" not in text
        assert text.count("<image") == 1  # only the colour bar's gradient; the cells are vector blocks
    else:
        assert a.startswith(b"\x89PNG") and b"Software" not in a


def test_word_map_of_any_reading(tiny):
    model, tok = tiny("marian")
    src, tgt = "A man in a red shirt .".split(), "Un homme en chemise rouge .".split()
    insp = inspect((model, tok), src, target=tgt, is_split_into_words=True)
    m, keys, queries = word_map(insp, "cross.mean")
    assert m.shape == (len(tgt), len(src)) and keys == src and queries == tgt
    assert np.array_equal(m, word_map(insp, HeadsMean("cross"))[0])
    one, _, _ = word_map(insp, "cross.1.2")
    assert one.shape == m.shape and not np.allclose(one, m)
    # the same pooling and decoder-step rows as headscope.align
    for convention in ("naive", "shift"):
        shifted, _, _ = word_map(insp, "cross.1.2", convention=convention)
        expected = align.subword_to_word(align.select_rows(insp.map("cross", 1, 2).double().numpy(), convention),
                                         insp.source_word_ids, insp.target_word_ids)
        np.testing.assert_allclose(shifted, expected, atol=1e-6)
    enc, enc_keys, enc_queries = word_map(insp, LayerMean("encoder", 0))
    assert enc.shape == (len(src), len(src)) and enc_keys == enc_queries == src
    dec, dec_keys, dec_queries = word_map(insp, "decoder.rollout")
    assert dec.shape == (len(tgt), len(tgt)) and dec_keys == dec_queries == tgt
    fig = F.alignment_matrix(m, keys, queries)
    assert _artists(fig, "cell-mesh")[0].get_array().size == len(src) * len(tgt)
    with pytest.raises(InputError, match="reading"):
        word_map(insp, "all heads, mean")
    with pytest.raises(InputError, match="captured"):
        word_map(insp, "cross.7.0")


def test_save_writes_atomically(tmp_path):
    path = tmp_path / "fig.png"
    path.write_bytes(b"old")
    F.save(F.bipartite(M, SRC, TGT), path)
    assert path.read_bytes().startswith(b"\x89PNG") and [p.name for p in tmp_path.iterdir()] == ["fig.png"]
    assert path.stat().st_mode & 0o777 != 0o600  # not the private mode of a temporary file


# ---- issue 14: colour scales fit the data and say so; words, not subword markers ------------------

def _colorbar_label(fig) -> str:
    return fig.axes[-1].get_ylabel()


def test_word_maps_are_scaled_to_their_own_largest_weight():
    """A diffuse map (rollout: max weight ~0.3) spans the whole colour scale instead of staying
    near-white on a fixed 0..1 scale, and the colour bar states the scale."""
    diffuse = np.array([[0.10, 0.30, 0.05], [0.20, 0.12, 0.28]])
    fig = F.alignment_matrix(diffuse, ["a", "b", "c"], ["x", "y"])
    (mesh,) = _artists(fig, "cell-mesh")
    assert mesh.norm.vmin == 0.0 and mesh.norm.vmax == pytest.approx(0.30)
    assert _colorbar_label(fig) == "weight (scale 0 to 0.3, fitted to the data)"
    fixed = F.alignment_matrix(diffuse, ["a", "b", "c"], ["x", "y"], vmax=1.0)
    assert _colorbar_label(fixed) == "weight (scale 0 to 1)"


def test_heatmaps_state_their_scale():
    assert _colorbar_label(F.aer_heatmap(np.full((2, 2), 0.6))) == "AER (scale 0 to 1)"
    assert _colorbar_label(F.kendall_matrix(np.eye(2), ["a", "b"])) == "Kendall τ (scale -1 to 1)"
    fig = F.heatmap(np.array([[0.2, 0.4], [0.3, 0.25]]), ["r0", "r1"], ["c0", "c1"], vmin=0.0, colorbar_label="weight")
    (mesh,) = _artists(fig, "cell-mesh")
    assert (mesh.norm.vmin, mesh.norm.vmax) == (0.0, 0.4)
    assert _colorbar_label(fig) == "weight (scale 0 to 0.4, fitted to the data)"
    fig = F.ablation_heatmap(np.array([[0.5, -0.1], [0.0, 0.2]]))
    assert _colorbar_label(fig) == "change in output score (scale -0.5 to 0.5, fitted to the data)"
    flat = F.heatmap(np.full((2, 2), 0.25), ["a", "b"], ["c", "d"])  # one value: still a (tiny) scale
    (mesh,) = _artists(flat, "cell-mesh")
    assert mesh.norm.vmax > mesh.norm.vmin


def _all_text(fig) -> str:
    texts = [t.get_text() for ax in fig.axes for t in (*ax.get_xticklabels(), *ax.get_yticklabels(), *ax.texts)]
    return " ".join([*texts, *(ax.get_title() for ax in fig.axes)])


def test_report_figures_show_words_not_subword_markers(tiny):
    """The report's token figures (importance heatmaps and bars) label tokens as words: no '▁'."""
    from headscope.viz.page import Section
    from headscope.viz.sections import faithful as faithful_section

    model, tok = tiny("marian")
    insp = inspect((model, tok), "A man in a red shirt.", target="Un homme en chemise rouge.")
    assert any(t.startswith("▁") for t in insp.source_tokens)  # the tokenizer does mark word starts
    drawn = []
    section = Section("faithful")
    section.figure = lambda fig, caption: drawn.append((_all_text(fig), caption))  # type: ignore[method-assign]
    from headscope.faithful import token_importance

    faithful_section._importance(section, [token_importance(insp, "attention"), token_importance(insp, "loo")],
                                 slice(None))
    assert drawn and all("▁" not in text + caption for text, caption in drawn)
    assert any("man" in text for text, _ in drawn)
