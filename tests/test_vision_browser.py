"""Acceptance (issue 18): the image report renders in headless Chromium with the network off, as the text report does.

Uses the Chromium fixture and offline rendering of ``test_viz_browser.py`` (which never skips).
"""

from __future__ import annotations

import re

import pytest
import torch
import transformers as tf

import headscope
from headscope.vision import shapes_batch
from headscope.viz import report
from test_viz_browser import chromium, errors, render  # noqa: F401  (the fixture and the offline renderer)

SIZE, PATCH = 48, 8


@pytest.fixture(scope="module")
def image_case():
    torch.manual_seed(0)
    config = tf.ViTConfig(image_size=SIZE, patch_size=PATCH, hidden_size=32, num_hidden_layers=2,
                          num_attention_heads=4, intermediate_size=64, num_labels=5)
    model = tf.ViTForImageClassification(config).eval()
    processor = tf.ViTImageProcessor(size={"height": SIZE, "width": SIZE}, image_mean=[0.5] * 3, image_std=[0.5] * 3)
    batch = shapes_batch(1, seed=4)
    return headscope.inspect((model, processor), batch.images[0]), batch.masks[0]


def test_image_report_renders_offline(chromium, tmp_path, image_case):  # noqa: F811
    insp, mask = image_case
    path = report(insp, tmp_path / "image.html", gold=mask)
    dom, console = render(chromium, path)
    assert not errors(console), console
    for claim in ("localisation", "plausible", "faithful", "fragmentation"):
        assert f'data-claim="{claim}"' in dom
    assert "Not applicable" not in dom  # every section applies and ran
    assert len(re.findall(r'<img src="data:image/png;base64,', dom)) >= 7
    plausible = dom.split('data-claim="plausible"')[1].split("</section>")[0]
    assert "patch grid" in plausible and "SMOOTH" not in plausible.split("<img")[0]  # the grid comes first
    assert "smooth" in plausible  # the labelled alternative is there, once
    assert "[CLS]" in plausible
    assert "pointing hit" in dom.split('data-claim="localisation"')[1].split("</section>")[0]
    assert "<script" not in dom.split("</header>")[1]  # nothing to fetch: the page is images and tables


def test_image_report_without_mask_or_model_says_why(tmp_path, image_case):
    insp, _ = image_case
    loaded = headscope.Inspection.load(insp.save(tmp_path / "insp"))
    page = (report(loaded, tmp_path / "page.html")).read_text(encoding="utf-8")
    localisation = page.split('data-claim="localisation"')[1].split("</section>")[0]
    faithful = page.split('data-claim="faithful"')[1].split("</section>")[0]
    assert "Not applicable" in localisation and "no object mask" in localisation
    assert "Not applicable" in faithful and "no model attached" in faithful
    assert "patch grid" in page.split('data-claim="plausible"')[1]  # the grid views need no model
