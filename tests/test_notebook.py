"""examples/tour.ipynb runs from top to bottom in a fresh kernel (nbclient), so the notebook cannot rot."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "examples" / "tour.ipynb"
TIMEOUT = 300  # seconds per cell; the whole tour takes about a minute on two busy cores


def outputs(nb, kind: str) -> list[str]:
    """Every output of the executed notebook carrying ``kind`` (``"text"`` for printed text)."""
    out = []
    for cell in nb.cells:
        for o in cell.get("outputs", []):
            if kind == "text":
                out.append(o.get("text", "") + o.get("data", {}).get("text/plain", ""))
            elif kind in o.get("data", {}):
                out.append(o["data"][kind])
    return out


def test_notebook_is_stored_without_outputs():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), "clear the outputs before committing"
    source = "\n".join(c.source for c in nb.cells)
    for step in ("headscope.inspect(", "evaluate(", "head_ablation(", "fragmentation(", "to_bertviz("):
        assert step in source, f"the tour covers {step}...)"


@pytest.mark.slow
def test_tour_notebook_runs(tmp_path):
    nb = nbformat.read(NOTEBOOK, as_version=4)
    env_before = os.environ.get("HF_HUB_OFFLINE")
    os.environ["HF_HUB_OFFLINE"] = "1"  # inherited by the kernel: nothing to fetch
    try:
        NotebookClient(nb, timeout=TIMEOUT, kernel_name="python3",
                       resources={"metadata": {"path": str(tmp_path)}}).execute()
    finally:
        if env_before is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
    text = "\n".join(outputs(nb, "text"))
    assert "output: Un homme" in text and "best head" in text and "effective distinct maps" in text
    assert "▁" not in text, "summaries show words, not subword markers"
    assert any("headscope-bertviz" in html and "bertviz head view" in html for html in outputs(nb, "text/html")), \
        "the bertviz head view is shown inline"
    assert outputs(nb, "image/png"), "the word map figure is shown inline"
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
