"""Bad input (issue 13): every bad call ends in a HeadscopeError naming the problem, where and the fix,
and leaves the model exactly as it was (weights, training flags, attention implementation, hooks,
instance attributes, config, tokenizer state). ``headscope.inspect`` on arbitrary strings returns a
valid Inspection or raises a HeadscopeError (hypothesis)."""

from __future__ import annotations

import json
import re
import warnings

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import headscope
from headscope.cli import main
from headscope.errors import HeadscopeError, InputError, ModelNotFoundError, UnsupportedModelError

#: Words a fix in a message starts with: every error says what to do.
FIX = re.compile(r"\b(pass|give|Fix|fix|use|add|drop|load|save|shorten|write|remove|choose|check|delete|put|call)\b")


# ---- the state of a model ----------------------------------------------------------------------------

_HOOKS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks",
          "_forward_hooks_with_kwargs", "_forward_pre_hooks_with_kwargs", "_state_dict_hooks",
          "_load_state_dict_pre_hooks")


def model_state(model, tokenizer=None) -> dict:
    """Everything a call could leave changed on a model (and its tokenizer), comparable with ``==``."""
    from torch.nn.modules import module as nn_module

    state = {
        "weights": {k: (v.dtype, v.device, v.detach().clone()) for k, v in model.state_dict(keep_vars=True).items()},
        "requires_grad": {k: p.requires_grad for k, p in model.named_parameters()},
        "training": {name: m.training for name, m in model.named_modules()},
        "hooks": {name: {h: list(getattr(m, h, {}).keys()) for h in _HOOKS} for name, m in model.named_modules()},
        "attributes": {name: sorted(vars(m)) for name, m in model.named_modules()},
        "global_hooks": [len(getattr(nn_module, h)) for h in dir(nn_module) if h.startswith("_global_")
                         and isinstance(getattr(nn_module, h), dict)],
        "attn_implementation": [getattr(c, "_attn_implementation", None) for c in _configs(model.config)],
        "config": model.config.to_json_string(),
        "generation": model.generation_config.to_json_string() if model.can_generate() else None,
    }
    if tokenizer is not None:  # (a fast tokenizer's backend padding is per-call state that every call sets)
        state["tokenizer"] = (tokenizer.padding_side, tokenizer.truncation_side, tokenizer.model_max_length,
                              len(tokenizer), tokenizer.pad_token, tokenizer.eos_token)
    return state


def _configs(config):
    out = [config]
    for key in ("text_config", "encoder", "decoder"):
        sub = getattr(config, key, None)
        if sub is not None and hasattr(sub, "_attn_implementation"):
            out.append(sub)
    return out


def same_state(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    assert a["weights"].keys() == b["weights"].keys()
    for k, (dtype, device, value) in a["weights"].items():
        dtype2, device2, value2 = b["weights"][k]
        assert (dtype, device) == (dtype2, device2) and torch.equal(value, value2), k
    for key in a:
        if key != "weights":
            assert a[key] == b[key], key


# ---- every bad call of the issue ---------------------------------------------------------------------

def _inspect(pair, text="A dog.", **kw):
    return lambda: headscope.inspect(pair, text, **kw)


CALLS = {
    # name: (family, make the call from (model, tokenizer), error type, what the message must name)
    "another model's tokenizer": ("bert", lambda m, t, tiny: headscope.inspect((m, tiny("gpt2")[1]), "hello"),
                                  UnsupportedModelError, "do not belong together"),
    "(model, None)": ("bert", lambda m, t, tiny: headscope.inspect((m, None), "hello"), UnsupportedModelError,
                      "has no tokenizer"),
    "dtype='float16'": ("marian", lambda m, t, tiny: _inspect((m, t), dtype="float16")(), InputError,
                        "dtype='float16'"),
    "dtype=torch.int64": ("marian", lambda m, t, tiny: _inspect((m, t), dtype=torch.int64)(), InputError,
                          "dtype=torch.int64"),
    "batch_size=0": ("marian", lambda m, t, tiny: _inspect((m, t), batch_size=0)(), InputError, "batch_size=0"),
    "batch_size=-1": ("marian", lambda m, t, tiny: headscope.inspect((m, t), ["A dog."], batch_size=-1), InputError,
                      "batch_size=-1"),
    "num_beams=0": ("marian", lambda m, t, tiny: _inspect((m, t), num_beams=0)(), InputError, "num_beams=0"),
    "max_new_tokens=0": ("marian", lambda m, t, tiny: _inspect((m, t), max_new_tokens=0)(), InputError,
                         "max_new_tokens=0"),
    "string with is_split_into_words": ("marian", lambda m, t, tiny: _inspect((m, t), is_split_into_words=True)(),
                                        InputError, "is_split_into_words=True takes a list of words"),
    "text None": ("marian", lambda m, t, tiny: headscope.inspect((m, t), None), InputError, "no text given"),
    "zero-width text": ("bert", lambda m, t, tiny: headscope.inspect((m, t), "\u200b\u200b\u2060"), InputError,
                        "no word the tokenizer can read"),
    "empty text": ("bert", lambda m, t, tiny: headscope.inspect((m, t), "   "), InputError, "text #0 is empty"),
    "too long": ("bert", lambda m, t, tiny: headscope.inspect((m, t), "man " * 100), InputError,
                 "tokens long but .* at most 64"),
    "unknown kind": ("bert", lambda m, t, tiny: headscope.inspect((m, t), "a man", kinds=["cross"]), InputError,
                     "cross"),
    "missing layer": ("bert", lambda m, t, tiny: headscope.inspect((m, t), "a man", layers=[7]), InputError, "7"),
    "target for a classifier": ("bert", lambda m, t, tiny: headscope.inspect((m, t), "a man", target="x"),
                                InputError, "not an encoder-decoder"),
    "texts and targets differ in number": (
        "marian", lambda m, t, tiny: headscope.inspect((m, t), ["a", "b"], target=["x"]), InputError,
        "2 text\\(s\\) but 1 target"),
    "ablation mode": ("bert", lambda m, t, tiny: headscope.faithful.head_ablation((m, t), "a man", mode="every"),
                      InputError, "unknown ablation mode 'every'"),
    "align a classifier": ("bert", lambda m, t, tiny: headscope.align.evaluate((m, t), "hansards-en-fr", limit=2,
                                                                               progress=False),
                           headscope.NotApplicableError, "word alignment needs the cross attention"),
    "align batch_size=0": ("marian", lambda m, t, tiny: headscope.align.evaluate((m, t), "hansards-en-fr",
                                                                                 batch_size=0, progress=False),
                           InputError, "batch_size=0: pass a positive"),
    "align index_base=True": ("marian", lambda m, t, tiny: headscope.align.evaluate((m, t), ("a", "b"),
                                                                                    index_base=True, progress=False),
                              InputError, "index_base=True"),
}


@pytest.mark.parametrize("name", list(CALLS))
def test_bad_call_raises_a_clear_error_and_leaves_the_model(tiny, name):
    family, call, error, named = CALLS[name]
    model, tok = tiny(family)
    model.train(False)
    before = model_state(model, tok)
    with pytest.raises(error, match=named) as err:
        call(model, tok, tiny)
    assert isinstance(err.value, HeadscopeError)
    message = str(err.value)
    assert FIX.search(message) or name == "align a classifier", message  # says what to do
    assert len(message) < 500 and "\n" not in message
    same_state(before, model_state(model, tok))


def test_failure_in_the_middle_of_an_alignment_run_leaves_the_model(tiny, tmp_path):
    """A failure in the middle of an alignment run (its second batch holds a sentence longer than the
    model takes) gives the output layer back: no leftover forward, hook or attribute."""
    model, tok = tiny("marian")
    long = " ".join(["man"] * 80)
    (tmp_path / "s").write_text(f"a man ||| un homme\n{long} ||| un homme\n", encoding="utf-8")
    (tmp_path / "g").write_text("0-0 1-1\n0-0 2-1\n", encoding="utf-8")
    before = model_state(model, tok)
    with pytest.raises(InputError, match="gold sentence 1 \\(source\\) is .* tokens long but .* at most 64; leave it"):
        headscope.align.evaluate((model, tok), (tmp_path / "s", tmp_path / "g"), index_base=0, batch_size=1,
                                 progress=False)
    same_state(before, model_state(model, tok))


def test_a_model_in_train_mode_stays_in_train_mode(tiny):
    model, tok = tiny("bert")
    model.train()
    try:
        before = model_state(model, tok)
        with pytest.raises(InputError):
            headscope.inspect((model, tok), "a man", layers=[9])
        headscope.inspect((model, tok), "a man")
        same_state(before, model_state(model, tok))
    finally:
        model.eval()


def test_named_model_without_text_is_not_translated():
    """``inspect("headscope/sentiment", None)`` is a missing text, not a text for the default translator."""
    loaded = headscope.load("headscope/sentiment")
    before = model_state(loaded.model, loaded.tokenizer)
    with pytest.raises(InputError, match="no text given; call headscope.inspect\\(model, text\\)"):
        headscope.inspect("headscope/sentiment", None)
    same_state(before, model_state(loaded.model, loaded.tokenizer))


def test_meta_device_model(tiny):
    model, tok = tiny("bert")
    with torch.device("meta"):
        meta = type(model)(model.config)
    with pytest.raises(UnsupportedModelError, match="'meta' device.*load it with real weights"):
        headscope.inspect((meta, tok), "hello")
    assert all(p.is_meta for p in meta.parameters())


def test_folder_problems(tiny, tmp_path):
    model, tok = tiny("bert")
    model.save_pretrained(tmp_path / "m")
    with pytest.raises(ModelNotFoundError, match="has no tokenizer files.*save the tokenizer next to the model"):
        headscope.load(str(tmp_path / "m"))  # never an empty tokenizer mapping every token to [UNK]
    tok.save_pretrained(tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    (tmp_path / "m" / "config.json").write_text(json.dumps({**config, "num_attention_heads": 0}))
    with pytest.raises(ModelNotFoundError, match="num_attention_heads=0.*at least one head.*Fix"):
        headscope.load(str(tmp_path / "m"))
    with pytest.raises(InputError, match="heads=0: a tiny model needs a positive"):
        headscope.build_tiny("bert", heads=0)
    (tmp_path / "m" / "config.json").write_text(json.dumps(config))
    (tmp_path / "m" / "model.safetensors").write_bytes(bytes(range(256)) * 8)  # random bytes
    with pytest.raises(ModelNotFoundError, match="could not load the weights.*Fix"):
        headscope.load(str(tmp_path / "m"))


def test_report_onto_an_existing_file_or_folder(tiny, tmp_path):
    from headscope.viz import report

    insp = headscope.inspect(tiny("bert"), "a man")
    (tmp_path / "notes.txt").write_text("keep")
    with pytest.raises(InputError, match=r"notes.txt is a file, not a folder .*report.html.*give a new"):
        report(insp, tmp_path / "notes.txt", faithful=False, bertviz=False, fragmentation=False)
    (tmp_path / "page.html").mkdir()
    with pytest.raises(InputError, match="page.html: it is a folder; give a file name"):
        report(insp, tmp_path / "page.html", faithful=False, bertviz=False, fragmentation=False)
    assert (tmp_path / "notes.txt").read_text() == "keep"
    page = report(insp, tmp_path / "ok.html", faithful=False, bertviz=False, fragmentation=False).read_text()
    assert '<meta name="headscope-format" content="1">' in page and "<meta name=\"generator\" content=\"headscope " in page
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt", "ok.html", "page.html"]  # no temporary file


def test_saving_over_an_unrelated_folder_or_a_file_is_refused(tiny, tmp_path):
    insp = headscope.inspect(tiny("bert"), "a man")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    (tmp_path / "file").write_text("keep")
    for target in (tmp_path / "mine", tmp_path / "file", tmp_path / "file" / "x"):
        with pytest.raises(InputError, match="cannot save the inspection to .*give a"):
            insp.save(target)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep" and (tmp_path / "file").read_text() == "keep"


# ---- the command line: one line, exit 2 ---------------------------------------------------------------

@pytest.mark.parametrize("argv, named", [
    (["faithful", "headscope/en-fr-1x1", "missing.txt"], "'missing.txt' looks like a file name but no such file "
                                                         "exists; give an existing file .* or add --text"),
    (["faithful", "headscope/en-fr-1x1", "data/texts"], "'data/texts' looks like a file name"),
    (["align", "headscope/en-fr-1x1", "--gold", "hansards-en-fr", "--threads", "0"], "--threads"),
])
def test_cli_bad_arguments_one_line(argv, named, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert re.search(named, err) and "Traceback" not in err
    assert len([line for line in err.splitlines() if line.strip()]) == 1 or err.startswith("usage:")


# ---- inspect on arbitrary strings -----------------------------------------------------------------------

_TEXT = st.one_of(
    st.text(max_size=60),
    st.text(alphabet=st.characters(categories=["Cc", "Cf", "Zs", "Zl", "Zp", "Mn"]), max_size=20),
    st.text(alphabet="\u200b\u200c\u200d\u2060\ufeff \t\n", max_size=10),
    st.builds(lambda s, n: s * n, st.text(min_size=1, max_size=6), st.integers(20, 300)),
)


def _check_valid(insp) -> None:
    assert any(w is not None for w in insp.source_word_ids)
    assert len(insp.source_word_ids) == len(insp.source_tokens)
    if insp.target_tokens is not None:
        assert len(insp.target_word_ids) == len(insp.target_tokens)
    for kind in insp.kinds:
        att = insp.attentions[kind]
        assert tuple(att.shape[-2:]) == (len(insp.query_tokens(kind)), len(insp.key_tokens(kind)))
        assert torch.isfinite(att).all() and (att >= 0).all()
        assert torch.allclose(att.sum(-1), torch.ones(att.shape[:-1]), atol=1e-4)


@pytest.mark.parametrize("family, target", [("bert", False), ("gpt2", False), ("marian", True)])
def test_inspect_arbitrary_text_is_valid_or_a_headscope_error(tiny, family, target):
    model, tok = tiny(family)
    before = model_state(model, tok)
    seen = {"ok": 0, "error": 0}

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(_TEXT, st.booleans())
    def run(text, truncate):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                insp = headscope.inspect((model, tok), text, target=text if target else None, truncate=truncate)
        except HeadscopeError as err:
            assert "\n" not in str(err) and len(str(err)) < 500
            seen["error"] += 1
        else:
            _check_valid(insp)
            seen["ok"] += 1

    run()
    assert seen["ok"] and seen["error"]  # both outcomes were exercised
    same_state(before, model_state(model, tok))
