"""The shipped vision model (issue 18): ``headscope/shapes-vit``, small, fp16, accurate, inspectable by name and CLI."""

from __future__ import annotations

import pytest
import torch

import headscope
from headscope.cli import main
from headscope.models.shipped import SHIPPED
from headscope.vision import grid_map, localisation, shapes_batch
from headscope.vision.shapes import SHAPES, TEST_SEED

NAME = "headscope/shapes-vit"


@pytest.fixture(scope="module")
def loaded():
    return headscope.load(NAME)


def test_shipped_small_fp16_with_its_record():
    m = SHIPPED[NAME]
    assert m.available and m.task == "image-classification"
    files = {f.name: f.stat().st_size for f in m.path.iterdir()}
    assert {"config.json", "model.safetensors", "preprocessor_config.json", "headscope.json"} <= set(files)
    assert sum(files.values()) < 2_000_000  # well under 5 MB
    from safetensors import safe_open

    with safe_open(str(m.path / "model.safetensors"), "pt") as f:
        assert {f.get_slice(k).get_dtype() for k in f.keys()} == {"F16"}
    meta = m.metadata()
    assert meta["test_accuracy"] >= 0.95 and meta["test_seed"] == TEST_SEED
    assert meta["training"]["command"].startswith("python training/train_vit_shapes.py")
    assert meta["training"]["wall_minutes"] > 0


def test_held_out_accuracy_is_reproduced(loaded):
    """The accuracy of headscope.json, re-measured on the same held-out images with the model's own processor."""
    from PIL import Image

    meta = SHIPPED[NAME].metadata()
    test = shapes_batch(meta["test_images"], TEST_SEED)
    correct = 0
    with torch.inference_mode():
        for i in range(0, len(test), 500):
            pixels = loaded.tokenizer(images=[Image.fromarray(x) for x in test.images[i:i + 500]],
                                      return_tensors="pt")["pixel_values"]
            correct += int((loaded.model(pixel_values=pixels).logits.argmax(-1).numpy() == test.labels[i:i + 500]).sum())
    assert correct / len(test) == pytest.approx(meta["test_accuracy"], abs=1e-4)
    assert correct / len(test) >= 0.95


def test_inspect_by_name_gives_the_grid_and_the_label(loaded):
    batch = shapes_batch(8, TEST_SEED + 1)
    insps = headscope.inspect(NAME, list(batch.images))
    assert all(i.patch_grid == (6, 6) and i.source_tokens[0] == "[CLS]" for i in insps)
    assert type(loaded.tokenizer).__name__.startswith("ViTImageProcessor")
    hits = [i.prediction["label"] == SHAPES[y] for i, y in zip(insps, batch.labels)]
    assert sum(hits) >= 7
    result = localisation(insps, list(batch.masks), saliency=("gradient",))
    assert result.n_images == 8 and grid_map(insps[0], "encoder.flow").values.shape == (6, 6)


def test_cli_inspects_an_image_path(tmp_path, capsys):
    from PIL import Image

    path = tmp_path / "shape.png"
    batch = shapes_batch(1, TEST_SEED + 2)
    Image.fromarray(batch.images[0]).save(path)
    assert main(["inspect", NAME, str(path), "--out", str(tmp_path / "insp")]) == 0
    out = capsys.readouterr().out
    assert "6x6 patch grid" in out and f"prediction: {SHAPES[batch.labels[0]]}" in out
    assert headscope.Inspection.load(tmp_path / "insp").patch_grid == (6, 6)
    assert main(["inspect", NAME, "a text, not an image"]) == 2
    assert "pass an image" in capsys.readouterr().err


def test_fragment_of_an_image_takes_the_image_tests_as_references(tmp_path, capsys):
    """``headscope fragment MODEL image.png`` and :func:`image_fragmentation`: Kendall τ of each reading
    with leave-one-patch-out and gradient saliency over the patch tokens, as scipy computes it from the
    vision functions' own grids; the text tests refuse an image by name."""
    import numpy as np
    from PIL import Image
    from scipy.stats import kendalltau

    from headscope.aggregate import reading_map
    from headscope.errors import InputError
    from headscope.faithful import head_ablation, token_importance
    from headscope.fragment import fragmentation
    from headscope.readings import Rollout
    from headscope.vision import image_fragmentation, leave_one_patch_out, token_positions

    path = tmp_path / "shape.png"
    Image.fromarray(shapes_batch(1, TEST_SEED + 3).images[0]).save(path)
    assert main(["fragment", NAME, str(path)]) == 0
    assert "Kendall τ with loo" in capsys.readouterr().out
    assert main(["fragment", NAME, str(path), "--no-faithful"]) == 0
    assert "not measured" in capsys.readouterr().out
    insp = headscope.inspect(NAME, str(path))
    frag = image_fragmentation(insp)
    assert frag.references == ["gradient", "loo"]
    patches = [p for p in token_positions(insp) if p is not None]
    loo = leave_one_patch_out(insp).values
    rollout = reading_map(insp, "encoder.rollout")[0].numpy()[[i for i, p in enumerate(token_positions(insp)) if p]]
    expected = kendalltau([loo[p] for p in patches], rollout).statistic
    assert np.isclose(frag.tau_with("loo")[Rollout("encoder")], expected, atol=1e-12)
    for call in (lambda: fragmentation(insp), lambda: token_importance(insp, "loo"), lambda: head_ablation(insp)):
        with pytest.raises(InputError, match="image_f"):
            call()
