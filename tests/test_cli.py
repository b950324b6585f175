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


def test_inspect_readings_beyond_the_weights(marian_dir, tmp_path, capsys):
    assert main(["inspect", marian_dir, "A man in a red shirt.", "--target", "Un homme.", "--readings", "norm,alti",
                 "--out", str(tmp_path / "o")]) == 0
    assert "readings beyond the weights: alti, norm" in capsys.readouterr().out
    insp = Inspection.load(tmp_path / "o")
    assert {"cross.alti", "encoder.alti", "cross.1.norm", "decoder.0.3.norm"} <= set(insp.mixing)
    with pytest.raises(SystemExit) as exit_:
        main(["inspect", marian_dir, "A man.", "--readings", "norm,attention"])
    assert exit_.value.code == 2 and "choose from norm,alti,valuezeroing,gradrollout" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["inspect", marian_dir, "A man.", "--readings", "all,norm"])
    assert "or all alone" in capsys.readouterr().err


def test_fragment_verb_reads_a_long_text_from_reductions(marian_dir, tmp_path, monkeypatch):
    from headscope.fragment import corpus

    text, target = "A man in a red shirt is riding a bike.", "Un homme."
    assert main(["fragment", marian_dir, text, "--target", target, "--no-faithful", "--out", str(tmp_path / "whole")]) == 0
    monkeypatch.setattr(corpus, "LONG_INPUT", 4)  # this text counts as long: its rows are read from reductions
    assert main(["fragment", marian_dir, text, "--target", target, "--no-faithful", "--out", str(tmp_path / "long")]) == 0
    whole, long = Fragmentation.load(tmp_path / "whole"), Fragmentation.load(tmp_path / "long")
    assert all(kf.rows is None for kf in whole.kinds.values())
    assert all(kf.rows is not None for kf in long.kinds.values())
    assert long.kinds["cross"].rows == list(range(len(long.kinds["cross"].rows)))  # every target row kept


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


# ---- issue 14: no traps in the command line ------------------------------------------------------

import argparse  # noqa: E402
import re  # noqa: E402

import headscope  # noqa: E402
from headscope.cli import build_parser  # noqa: E402
from headscope.cli import common  # noqa: E402

TEXT_VERBS = ("inspect", "fragment", "faithful", "report", "bertviz")


def verb_parsers() -> dict[str, argparse.ArgumentParser]:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def test_version(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0 and capsys.readouterr().out.strip() == f"headscope {headscope.__version__}"


def test_every_option_has_help():
    missing = []
    for name, parser in {"headscope": build_parser(), **verb_parsers()}.items():
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                continue
            if not action.help or action.help == argparse.SUPPRESS:
                missing.append(f"{name} {'/'.join(action.option_strings) or action.dest}")
    assert not missing, f"options without help: {missing}"


def test_every_verb_takes_the_model_the_same_way():
    """The model is the optional first positional [MODEL] of every verb that runs one (default headscope/en-fr)."""
    for name, parser in verb_parsers().items():
        positionals = [a for a in parser._actions if not a.option_strings and a.dest != "help"]
        if name == "models":
            assert positionals == []
            continue
        assert positionals and positionals[0].dest == "model", f"{name}: MODEL is not its first positional"
        assert positionals[0].nargs == "?" and positionals[0].metavar == "MODEL", f"{name}: MODEL is not optional"
        assert "headscope/en-fr" in positionals[0].help
    assert common.DEFAULT_MODEL == headscope.DEFAULT_MODEL
    assert all(common.names_model(m.name) for m in headscope.list_models())


@pytest.mark.parametrize("verb", TEXT_VERBS)
def test_missing_text_is_a_usage_error(verb, capsys):
    """`headscope inspect headscope/sentiment` (text forgotten) exits 2 with the usage: it does not
    run the model on its own name."""
    with pytest.raises(SystemExit) as stop:
        main([verb, "headscope/sentiment"])
    assert stop.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.startswith(f"usage: headscope {verb}")
    assert "is missing: 'headscope/sentiment' names a model" in captured.err
    with pytest.raises(SystemExit) as stop:
        main([verb])
    assert stop.value.code == 2 and "usage:" in capsys.readouterr().err


def test_missing_text_for_a_hub_name_and_a_model_folder(marian_dir, capsys):
    for name in ("Helsinki-NLP/opus-mt-en-fr", marian_dir):
        with pytest.raises(SystemExit) as stop:
            main(["inspect", name])
        assert stop.value.code == 2 and "names a model" in capsys.readouterr().err
    assert not common.names_model("A red car.") and not common.names_model("good")


def test_options_do_not_swallow_the_model():
    args = build_parser().parse_args(["align", "--gold", "hansards-en-fr", "headscope/en-fr"])
    assert args.model == "headscope/en-fr" and args.gold == ["hansards-en-fr"]
    args = build_parser().parse_args(["align", "--gold", "sents.txt", "--gold", "links.talp", "--limit", "2"])
    assert args.model is None and args.gold == ["sents.txt", "links.talp"]
    args = build_parser().parse_args(["bertviz", "--layers", "1", "2", "--", "headscope/en-fr", "A dog."])
    assert (args.model, args.text, args.layers) == ("headscope/en-fr", "A dog.", [1, 2])


def test_threads_must_be_positive(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["inspect", "A dog.", "--threads", "0"])
    assert stop.value.code == 2 and "--threads takes a positive number" in capsys.readouterr().err


def test_default_outputs_go_under_one_folder(marian_dir, tmp_path, monkeypatch, capsys):
    """Without --out, files go under ./headscope-out/<verb>/ and nowhere else in the working directory."""
    monkeypatch.chdir(tmp_path)
    assert main(["bertviz", marian_dir, "A man in a red shirt.", "--target", "Un homme."]) == 0
    page = common.default_out("bertviz", marian_dir, "A man in a red shirt.") / "bertviz_head.html"
    assert page.is_file() and str(page) in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["headscope-out"]
    assert common.default_out("align", "headscope/en-fr", "hansards-en-fr").as_posix() == \
        "headscope-out/align/headscope_en-fr/hansards-en-fr"


@pytest.mark.slow
def test_align_without_out_keeps_the_working_directory_clean(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["align", "--gold", "hansards-en-fr", "headscope/en-fr", "--limit", "2", "--no-progress"]) == 0
    out = tmp_path / "headscope-out" / "align" / "headscope_en-fr" / "hansards-en-fr"
    assert (out / "scores.csv").is_file() and (out / "aer_heatmap_naive.png").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["headscope-out"]
    assert f"to {out.relative_to(tmp_path)}/" in capsys.readouterr().out


def _number(pattern: str, text: str) -> float:
    found = re.search(pattern, text, re.M)
    assert found, f"{pattern!r} not in:\n{text}"
    return float(found.group(1))


@pytest.mark.slow
def test_faithful_and_fragment_print_the_same_tau(capsys):
    """The same input gives the same Kendall τ in `headscope faithful` and `headscope fragment`: the
    reading faithful compares is named, and fragment averages over the same decisions (the final
    </s> is explained by neither). Before, faithful printed 0.653 and fragment 0.61 here."""
    text = "A man in a red shirt is riding a bike."
    assert main(["faithful", "headscope/en-fr", text, "--no-ablation"]) == 0
    faithful = capsys.readouterr().out
    assert main(["fragment", "headscope/en-fr", text]) == 0
    fragment = capsys.readouterr().out
    named = re.search(r"^attention = (.+) \(([\w.]+)\); Kendall τ per decision, (\d+) decision", faithful, re.M)
    assert named, faithful
    label, name = named.group(1), named.group(2)
    assert headscope.parse_reading(name).label == label
    for method, heading in (("gradient", None), ("loo", "leave-one-out")):
        mean = _number(rf"^  {method}\s+\d+\s+([+-]?[\d.]+)", faithful)
        if heading:  # fragment's list of every reading's τ with leave-one-out
            assert _number(rf"^  {re.escape(label)}\s+([+-][\d.]+)$", fragment) == pytest.approx(mean, abs=6e-4)
    best = re.search(r"Kendall τ with gradient: best reading (.+?) ([+-][\d.]+);", fragment)
    if best and best.group(1) == label:
        assert float(best.group(2)) == pytest.approx(_number(r"^  gradient\s+\d+\s+([+-]?[\d.]+)", faithful), abs=6e-3)
