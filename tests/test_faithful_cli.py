"""``headscope faithful`` on a saved tiny model: table printed, JSON and CSV written."""

from __future__ import annotations

import csv
import json

from conftest import TEXTS
from faithful_helpers import one_thread  # noqa: F401

from headscope.cli import main


def test_faithful_verb_writes_reports(tiny, tmp_path, capsys):
    model, tok = tiny("bert")
    folder = tmp_path / "tiny-bert"
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    texts = tmp_path / "texts.txt"
    texts.write_text("\n".join(TEXTS) + "\n\n", encoding="utf-8")
    out = tmp_path / "out"
    assert main(["faithful", str(folder), str(texts), "--out", str(out), "--top", "3"]) == 0
    printed = capsys.readouterr().out
    assert "head ablation" in printed and "Kendall tau-b" in printed and "flips" in printed
    report = json.loads((out / "faithful.json").read_text())
    assert len(report["examples"]) == 2 and set(report["summary"]["flip"]) == {"attention", "gradient", "loo", "random"}
    with open(out / "heads.csv") as fh:
        rows = list(csv.reader(fh))
    assert rows[0][:2] == ["head", "prob_drop"] and len(rows) == 1 + 8
    with open(out / "examples.csv") as fh:
        assert len(list(csv.reader(fh))) == 3


def test_faithful_verb_bad_model(capsys, tmp_path):
    assert main(["faithful", str(tmp_path / "missing"), "a text"]) == 2
    assert "error" in capsys.readouterr().err
