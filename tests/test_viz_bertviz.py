"""bertviz export: offline scripts, labels, rounding, subsetting, size, determinism."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest

from headscope import inspect
from headscope.errors import InputError
from headscope.viz import HTMLPage, to_bertviz
from headscope.viz.bertviz import page_params

TEXT, TARGET = "A man in a red shirt.", "Un homme en chemise rouge."


@pytest.fixture(scope="module")
def marian_insp(tiny):
    model, tok = tiny("marian")
    return inspect((model, tok), TEXT, target=TARGET)


def _pretty(tokens):
    return [t.replace("▁", " ") for t in tokens]


def test_head_view_of_encoder_decoder_is_offline_and_labelled(marian_insp, tmp_path):
    path = tmp_path / "head.html"
    page = to_bertviz(marian_insp, "head", path=path)
    assert isinstance(page, HTMLPage) and path.read_text(encoding="utf-8") == page
    assert not re.search(r"<script[^>]*\bsrc=", page)  # nothing loaded from anywhere
    assert "cdnjs" not in page and "https://cdnjs" not in page
    assert "d3 and jquery are defined inline (offline)" in page  # bertviz's require.config with CDN paths replaced
    assert "d3js.org v5.7.0" in page and "jQuery v3.7.1" in page and "RequireJS 2.3.6" in page
    (params,) = page_params(page)
    names = [a["name"] for a in params["attention"]]
    assert names == ["Encoder", "Decoder", "Cross"]
    enc, dec, cross = params["attention"]
    assert enc["left_text"] == enc["right_text"] == _pretty(marian_insp.source_tokens)
    assert cross["left_text"] == _pretty(marian_insp.target_tokens)  # generated/forced outputs on the decoder side
    assert cross["right_text"] == _pretty(marian_insp.source_tokens)
    att = np.array(cross["attn"])
    assert att.shape == (2, 4, len(marian_insp.target_tokens), len(marian_insp.source_tokens))
    np.testing.assert_allclose(att, marian_insp.attentions["cross"].numpy(), atol=5e-4 + 1e-9)
    assert params["include_layers"] == [0, 1]


def test_generated_output_labels_the_decoder(tiny):
    model, tok = tiny("marian")
    insp = inspect((model, tok), TEXT, max_new_tokens=5)
    (params,) = page_params(to_bertviz(insp, "head", kinds=["cross"]))
    assert params["attention"][0]["left_text"] == _pretty(insp.target_tokens)


def test_rounding_subsetting_and_model_view(marian_insp):
    page = to_bertviz(marian_insp, "model", layers=[1], heads=[1, 3], decimals=2)
    (params,) = page_params(page)
    assert params["include_layers"] == [1] and params["include_heads"] == [0, 1]
    cross = np.array(params["attention"][2]["attn"])
    assert cross.shape[:2] == (1, 2)
    np.testing.assert_allclose(cross, marian_insp.attentions["cross"][1][[1, 3]].numpy()[None], atol=5e-3 + 1e-9)
    numbers = re.findall(r"\d\.\d+", page[page.index("const params"):page.index("const params") + 5000])
    assert numbers and all(len(n.split(".")[1]) <= 2 for n in numbers)
    assert "heads [1, 3]" in page
    assert "Decoder positions are labelled by the token they output" in page


def test_same_inspection_same_bytes(marian_insp):
    assert to_bertviz(marian_insp) == to_bertviz(marian_insp)


def test_errors(marian_insp):
    with pytest.raises(InputError, match="view"):
        to_bertviz(marian_insp, "neuron")
    with pytest.raises(InputError, match="layer"):
        to_bertviz(marian_insp, layers=[7])
    with pytest.raises(InputError, match="head"):
        to_bertviz(marian_insp, heads=[4])


def test_classifier_page_is_saved_whole_and_shows_in_notebooks(tiny, tmp_path):
    model, tok = tiny("bert")
    insp = inspect((model, tok), TEXT)
    page = to_bertviz(insp, "head", path=tmp_path / "bert.html")
    (params,) = page_params(page)
    assert len(params["attention"]) == 1 and params["attention"][0]["left_text"][0] == "[CLS]"
    assert (tmp_path / "bert.html").read_text(encoding="utf-8") == page
    assert [p.name for p in tmp_path.iterdir()] == ["bert.html"]  # written beside, renamed into place
    assert '<iframe srcdoc="' in page._repr_html_()
    with pytest.raises(InputError, match="one attention kind"):
        to_bertviz(insp, kinds=["encoder", "encoder"])


def test_decoder_only_labels_and_caption(tiny):
    model, tok = tiny("gpt2")
    insp = inspect((model, tok), "A man in a red shirt")
    page = to_bertviz(insp, "head")
    (params,) = page_params(page)
    assert params["attention"][0]["left_text"] == [t.replace("Ġ", " ") for t in insp.source_tokens]
    assert "Decoder positions are labelled by the token they output" not in page  # no target side


def test_kinds_not_captured_are_named(tiny):
    model, tok = tiny("marian")
    insp = inspect((model, tok), TEXT, target=TARGET, kinds=["cross"])
    with pytest.raises(InputError, match="captured kinds"):
        to_bertviz(insp, kinds=["encoder"])
    (params,) = page_params(to_bertviz(insp))
    assert [a["name"] for a in params["attention"]] == ["Cross"]


def test_tokens_cannot_break_out_of_the_script(marian_insp):
    import dataclasses

    evil = dataclasses.replace(marian_insp, source_tokens=["</script><b>x"] + marian_insp.source_tokens[1:])
    page = to_bertviz(evil, kinds=["encoder"])
    assert "</script><b>x" not in page
    assert page_params(page)[0]["attention"][0]["left_text"][0] == "</script><b>x"


def test_six_by_eight_at_64_tokens_stays_small_and_big_pages_warn(tiny):
    model, tok = tiny("marian", layers=6, heads=8)
    words = ("a man in a red shirt is riding a bike near the old wooden fence " * 8).split()
    while len(tok(" ".join(words))["input_ids"]) > 64:
        words = words[:-1]
    text = " ".join(words)
    insp = inspect((model, tok), text, target=text)
    assert insp.attentions["cross"].shape[0:2] == (6, 8) and insp.attentions["cross"].shape[-1] >= 60
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        page = to_bertviz(insp, "head")  # all three kinds, every layer and head
    assert len(page.encode("utf-8")) < 5_000_000
    with pytest.warns(UserWarning, match="MB"):
        to_bertviz(insp, "head", kinds=["cross"], max_bytes=1_000_000)
    small = to_bertviz(insp, "head", layers=[5], heads=[0, 1], kinds=["cross"])
    assert len(small.encode("utf-8")) < 600_000


def test_head_view_is_readable_at_its_default_size(marian_insp):
    """bertviz draws ~115 px of hairlines at opacity weight / heads; headscope widens the space
    between the token columns, thickens the lines and lifts weak ones (sqrt), and says so."""
    from headscope.viz.bertviz import HEAD_VIEW_PATCHES

    page = to_bertviz(marian_insp, "head")
    assert "const MATRIX_WIDTH = 360;" in page and "const MATRIX_WIDTH = 115;" not in page
    assert 'attr("stroke-width", 3)' in page and "Math.sqrt(d / activeHeads())" in page
    assert "return d / activeHeads()" not in page and "√(weight / heads shown)" in page
    width = {name: int(re.search(rf"const {name} = (\d+);", page).group(1)) for name in ("BOXWIDTH", "MATRIX_WIDTH")}
    assert 2 * width["BOXWIDTH"] + width["MATRIX_WIDTH"] >= 600
    model_view = to_bertviz(marian_insp, "model")
    assert all(new not in model_view for _, new in HEAD_VIEW_PATCHES)  # the model view is bertviz's own
