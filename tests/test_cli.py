"""The ``headscope`` command on a model folder saved with save_pretrained (the real loading path)."""

from __future__ import annotations

import pytest

from headscope import Inspection
from headscope.fragment import Fragmentation
from headscope.cli import main


@pytest.fixture(scope="module")
def marian_dir(tmp_path_factory):
    from headscope.models.tiny import build_tiny

    model, tok = build_tiny("marian")
    folder = tmp_path_factory.mktemp("tiny-marian")
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return str(folder)


def test_inspect_folder_forced(marian_dir, tmp_path, capsys):
    assert main(["inspect", marian_dir, "A man in a red shirt.", "--target", "Un homme.", "--out", str(tmp_path / "o")]) == 0
    out = capsys.readouterr().out
    assert "output: Un homme.  (forced)" in out and "cross   attention: 2 layers x 4 heads" in out
    insp = Inspection.load(tmp_path / "o")
    assert insp.target_text == "Un homme." and insp.model_name == marian_dir


def test_inspect_error_exit_code(capsys):
    assert main(["inspect", "no-such/model-xyz", "hello"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("headscope: error: 'no-such/model-xyz' is not a shipped model") and err.count("\n") == 1


def test_fragment_verb(marian_dir, tmp_path, capsys):
    assert main(["fragment", marian_dir, "A man in a red shirt.", "--target", "Un homme.", "--table",
                 "--out", str(tmp_path / "f")]) == 0
    out = capsys.readouterr().out
    assert "Plausible" in out and "Kendall τ of each reading with leave-one-out" in out
    assert "  all-heads mean   " in out and "behaviour" in out  # labels for people, and the table
    frag = Fragmentation.load(tmp_path / "f")
    assert frag.model_name == marian_dir and frag.references == ["gradient", "loo"]
    assert "cross.mean" in frag.reading_names and (tmp_path / "f" / "fragmentation.csv").is_file()


def test_models_verb_lists_shipped(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "headscope/en-fr  (default)" in out and "headscope/sentiment" in out and "BLEU" in out
