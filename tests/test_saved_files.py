"""Saved files (issue 13): every folder headscope writes is put in place atomically (a failure or a kill
leaves the old complete folder or the new one), carries a format version, and loads only when the
version is known and its files agree (a transposed tensor, NaN, shortened tokens or links, a wrong
version: a clear InputError naming the file)."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

import headscope
from headscope import storage
from headscope.align import AlignmentReport, evaluate_inspections
from headscope.errors import InputError
from headscope.faithful import FaithfulnessReport, faithfulness_report
from headscope.fragment import Fragmentation, fragmentation
from headscope.inspection import Inspection
from headscope.models.architectures import architecture_named


# ---- inspections ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def insp(tiny):
    return headscope.inspect(tiny("marian"), "A man in a red shirt.", target="Un homme en chemise rouge.")


def _edit_maps(folder, edit):
    tensors = load_file(str(folder / "attentions.safetensors"))
    edit(tensors)
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(folder / "attentions.safetensors"))


def _edit_meta(folder, edit):
    meta = json.loads((folder / "inspection.json").read_text())
    edit(meta)
    (folder / "inspection.json").write_text(json.dumps(meta))


def _nan(t):
    t["cross"][0, 0, 0, 0] = float("nan")


@pytest.mark.parametrize("edit, problem", [
    (lambda f: _edit_maps(f, lambda t: t.update(cross=t["cross"].transpose(-1, -2))), "'cross' maps have shape"),
    (lambda f: _edit_maps(f, _nan), "'cross' maps hold NaN"),
    (lambda f: _edit_meta(f, lambda m: m.update(source_tokens=m["source_tokens"][:-1])), "'encoder' maps have shape"),
    (lambda f: _edit_meta(f, lambda m: m.update(source_word_ids=m["source_word_ids"][:-1])), "word ids"),
    (lambda f: _edit_meta(f, lambda m: m.update(target_word_ids=m["target_word_ids"][:-1])), "target word ids"),
    (lambda f: _edit_meta(f, lambda m: m.update(format=99)), "format 99 is not one this headscope reads.*upgrade"),
    (lambda f: _edit_meta(f, lambda m: m.update(format="2")), "format '2' is not one"),
    (lambda f: (f / "attentions.safetensors").write_bytes(b"\x00" * 10), "unreadable inspection files"),
    (lambda f: (f / "inspection.json").unlink(), "is not a saved inspection"),
])
def test_edited_inspection_is_refused(insp, tmp_path, edit, problem):
    folder = insp.save(tmp_path / "insp")
    assert Inspection.load(folder) == insp
    edit(folder)
    with pytest.raises(InputError, match=problem) as err:
        Inspection.load(folder)
    assert str(folder) in str(err.value)


def test_failed_save_leaves_the_old_folder_whole(insp, tmp_path, monkeypatch):
    folder = insp.save(tmp_path / "insp")
    other = headscope.inspect(insp.loaded, "Two dogs.", target="Deux chiens.")

    def killed(staging, dest):
        raise KeyboardInterrupt  # as if Ctrl-C came just before the rename

    monkeypatch.setattr(storage, "replace_folder", killed)
    with pytest.raises(KeyboardInterrupt):
        other.save(folder)
    monkeypatch.undo()
    assert Inspection.load(folder) == insp  # the old complete inspection
    assert sorted(p.name for p in tmp_path.iterdir()) == ["insp"]  # no staging left
    other.save(folder)
    assert Inspection.load(folder) == other


@pytest.mark.parametrize("exchange", [True, False])
def test_replace_folder_swaps_whole_folders(tmp_path, monkeypatch, exchange):
    if not exchange:
        monkeypatch.setattr(storage, "_exchange", lambda a, b: False)  # systems without renameat2
    for n in range(3):
        storage.write_folder(tmp_path / "out", {"main.json": f"{n}", f"only-{n}.txt": "x"}, marker="main.json",
                             what="result")
        assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["main.json", f"only-{n}.txt"]
        assert (tmp_path / "out" / "main.json").read_text() == f"{n}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_stale_staging_of_a_dead_process_is_swept(tmp_path):
    dead = tmp_path / ".out.headscope-999999999-abcd"  # no such pid
    alive = tmp_path / f".out.headscope-{os.getppid()}-abcd"
    for d in (dead, alive):
        d.mkdir()
        (d / "main.json").write_text("half")
    storage.write_folder(tmp_path / "out", {"main.json": "{}"}, marker="main.json", what="result")
    assert not dead.exists() and alive.exists()


def test_write_file_is_atomic(tmp_path, monkeypatch):
    target = storage.write_file(tmp_path / "piece.npz", b"old")

    def killed(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        storage.write_file(target, b"new")
    monkeypatch.undo()
    assert target.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["piece.npz"]


# ---- alignment reports ------------------------------------------------------------------------------------

def _planted_cross() -> Inspection:
    """2 layers x 3 heads (not square: a transposed grid shows), source "a b </s>", target "x y </s>"."""
    torch.manual_seed(1)
    cross = torch.softmax(torch.randn(2, 3, 3, 3) * 3, dim=-1)
    return Inspection(
        model_name="planted", architecture=architecture_named("encoder-decoder"), source_text="a b",
        source_tokens=["▁a", "▁b", "</s>"], source_word_ids=[0, 1, None], attentions={"cross": cross},
        target_text="x y", target_tokens=["▁x", "▁y", "</s>"], target_word_ids=[0, 1, None], forced=True)


GOLD = [{"source_words": ["a", "b"], "target_words": ["x", "y"], "sure": [[0, 0]], "possible": [[1, 1]]}] * 3


@pytest.fixture(scope="module")
def align_report():
    return evaluate_inspections([_planted_cross()] * 3, GOLD, convention="both", sources=("heads", "all_mean"))


def _json_edit(name, edit):
    def apply(folder):
        if name.endswith(".jsonl"):
            rows = [json.loads(x) for x in (folder / name).read_text().splitlines()]
            rows = edit(rows)
            (folder / name).write_text("".join(json.dumps(r) + "\n" for r in rows))
        else:
            data = json.loads((folder / name).read_text())
            edit(data)
            (folder / name).write_text(json.dumps(data))
    return apply


def _transpose_aer(d):
    d["scores"]["naive"]["aer"] = np.array(d["scores"]["naive"]["aer"]).T.tolist()


def _nan_aer(d):
    d["scores"]["shift"]["aer"][1][2] = float("nan")


def _short_words(rows):
    rows[1]["source_words"] = rows[1]["source_words"][:1]
    rows[1]["possible"] = []
    return rows


@pytest.mark.parametrize("edit, problem", [
    (_json_edit("report.json", _transpose_aer), "naive aer has shape \\[3, 2\\] but the report has 2 layers x 3"),
    (_json_edit("report.json", _nan_aer), "shift aer nan at \\[1, 2\\] differs from .* its AER counts give"),
    (_json_edit("report.json", lambda d: d.update(format=3)), "format 3 is not one this headscope reads.*upgrade"),
    (_json_edit("report.json", lambda d: d.update(layers=[0])), "has shape \\[2, 3\\] but the report has 1 layers"),
    (_json_edit("links.jsonl", lambda rows: rows[:2]), "links.jsonl: 2 sentences but report.json says 3"),
    (_json_edit("links.jsonl", _short_words), "line 2: .* link \\[1, .\\] is outside the sentence \\(1 source"),
    (lambda f: (f / "scores.csv").unlink(), "scores.csv is missing"),
    (lambda f: (f / "links.jsonl").write_text("{\n"), "links.jsonl, line 1: not a sentence of this report"),
])
def test_edited_alignment_report_is_refused(align_report, tmp_path, edit, problem):
    folder = align_report.save(tmp_path / "rep")
    back = AlignmentReport.load(folder)
    assert back.to_rows() == align_report.to_rows() and back.links == align_report.links
    edit(folder)
    with pytest.raises(InputError, match=problem) as err:
        AlignmentReport.load(folder)
    assert str(folder) in str(err.value) and ("again" in str(err.value) or "upgrade" in str(err.value))


def test_failed_report_save_leaves_the_old_report(align_report, tmp_path, monkeypatch):
    folder = align_report.save(tmp_path / "rep", extra_files={"picture.png": b"\x89PNG old"})
    monkeypatch.setattr(storage, "replace_folder", lambda s, d: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):
        align_report.save(folder, extra_files={"picture.png": b"\x89PNG new"})
    monkeypatch.undo()
    assert (folder / "picture.png").read_bytes() == b"\x89PNG old" and AlignmentReport.load(folder)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rep"]


# ---- faithfulness reports and fragmentations ----------------------------------------------------------------

@pytest.fixture(scope="module")
def faithful_report(tiny):
    return faithfulness_report(tiny("bert"), ["a man in a red shirt", "two dogs"])


def _per_example(d):
    d["ablation"]["per_example"]["prob_drop"] = [row[:1] for row in d["ablation"]["per_example"]["prob_drop"]]


@pytest.mark.parametrize("edit, problem", [
    (lambda d: d.update(format=2), "format 2 is not one this headscope reads \\(1\\).*upgrade"),
    (lambda d: d.pop("format"), "format None is not one"),
    (lambda d: d.update(texts=d["texts"][:1]), "1 texts but 2 predictions and 2 comparisons"),
    (_per_example, "per example has shape \\[.*, 1\\], not \\[.* ablations, 2 examples\\]"),
    (lambda d: d["examples"][0]["rows"][0]["tau"].pop("loo"), "methods .* are not the compared"),
])
def test_edited_faithfulness_report_is_refused(faithful_report, tmp_path, edit, problem):
    folder = faithful_report.save(tmp_path / "f")
    assert FaithfulnessReport.load(folder).to_dict() == json.loads(json.dumps(faithful_report.to_dict()))
    _json_edit("faithful.json", edit)(folder)
    with pytest.raises(InputError, match=problem) as err:
        FaithfulnessReport.load(folder)
    assert str(folder / "faithful.json") in str(err.value)


def test_faithfulness_report_is_never_saved_over_an_unrelated_folder(faithful_report, tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    with pytest.raises(InputError, match="not a saved faithfulness report"):
        faithful_report.save(tmp_path / "mine")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep"
    faithful_report.save(tmp_path / "f")
    faithful_report.save(tmp_path / "f")  # its own folder is replaced


def _tau(d):
    d["tau"] = [row[:-1] for row in d["tau"]]


def _js(d):
    kind = next(iter(d["kinds"]))
    d["kinds"][kind]["js"][0][0] = float("nan")


@pytest.mark.parametrize("edit, problem", [
    (lambda d: d.update(format=7), "format 7 is not one"),
    (_tau, "tau has shape"),
    (_js, "js or sink_mass hold NaN"),
])
def test_edited_fragmentation_is_refused(insp, tmp_path, edit, problem):
    frag = fragmentation(insp, faithful=False)
    folder = frag.save(tmp_path / "frag")
    assert Fragmentation.load(folder).reading_names == frag.reading_names
    _json_edit("fragmentation.json", edit)(folder)
    with pytest.raises(InputError, match=problem):
        Fragmentation.load(folder)
