"""Images (issue 18): inspect on the patch grid, grid views by structure, localisation, upsampling, faithfulness.

Tiny random ViT / DeiT / BEiT / DINOv2-with-registers models built from configs; the shipped
``headscope/shapes-vit`` is tested in ``test_vision_model.py``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import transformers as tf

import headscope
from headscope.errors import InputError, NotApplicableError
from headscope.inspection import Inspection
from headscope.models.architectures import ARCHITECTURES, VisionEncoder, architecture_named
from headscope.vision import (ImageFaithfulness, LocalisationResult, UpsamplingResult, grid_map, image_faithfulness,
                              image_for_display, leave_one_patch_out, localisation, mass_inside, object_cells,
                              patch_coverage, patch_curves, patch_values, pointing_hit, query_index, render,
                              resize_mask, saliency_maps, shapes_batch, token_positions, upsampling_test)
from headscope.vision.shapes import SHAPES

SIZE, PATCH = 32, 8  # a 4x4 grid


def _build(family: str):
    common = dict(image_size=SIZE, patch_size=PATCH, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                  intermediate_size=64, num_labels=len(SHAPES), id2label=dict(enumerate(SHAPES)),
                  label2id={s: i for i, s in enumerate(SHAPES)})
    if family == "vit":
        model = tf.ViTForImageClassification(tf.ViTConfig(**common))
    elif family == "deit":
        model = tf.DeiTForImageClassificationWithTeacher(tf.DeiTConfig(**common))
    elif family == "beit":
        model = tf.BeitForImageClassification(tf.BeitConfig(use_relative_position_bias=True, **common))
    elif family == "dinov2-registers":
        model = tf.Dinov2WithRegistersForImageClassification(tf.Dinov2WithRegistersConfig(num_register_tokens=2,
                                                                                          **common))
    else:
        raise ValueError(family)
    processor = tf.ViTImageProcessor(size={"height": SIZE, "width": SIZE}, image_mean=[0.5] * 3, image_std=[0.5] * 3)
    return model.eval(), processor


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    return {f: _build(f) for f in ("vit", "deit", "beit", "dinov2-registers")}


@pytest.fixture(scope="module")
def batch():
    return shapes_batch(4, seed=7, size=SIZE)


@pytest.fixture(scope="module")
def vit_insps(models, batch):
    return headscope.inspect(models["vit"], list(batch.images))


# ---- the data where the answer is known ------------------------------------------------------------------------

def test_shapes_are_reproducible_and_masks_match_boxes():
    a, b = shapes_batch(6, seed=3), shapes_batch(6, seed=3)
    assert np.array_equal(a.images, b.images) and np.array_equal(a.masks, b.masks)
    assert a.images.shape == (6, 48, 48, 3) and a.masks.dtype == bool
    for mask, (top, left, bottom, right) in zip(a.masks, a.boxes):
        rows, cols = np.nonzero(mask)
        assert (rows.min(), cols.min(), rows.max(), cols.max()) == (top, left, bottom, right)
    assert set(shapes_batch(200, seed=1).labels.tolist()) == set(range(len(SHAPES)))


def test_the_object_is_brighter_than_every_clutter_pixel():
    """The dataset's design: a bright shape (every channel >= 90, one at 255) over dim clutter (<= ~115)."""
    batch = shapes_batch(50, seed=5)
    brightness = batch.images.astype(int).sum(-1)
    for b, mask in zip(brightness, batch.masks):
        assert b[mask].min() > b[~mask].max()


# ---- inspect: images in, the patch grid out --------------------------------------------------------------------

@pytest.mark.parametrize("family", ["vit", "deit", "beit", "dinov2-registers"])
def test_capture_from_an_image_equals_eager_output_attentions(models, batch, family):
    model, processor = models[family]
    insps = headscope.inspect((model, processor), list(batch.images))
    assert all(i.architecture.name == "vision-encoder" for i in insps)
    pixels = processor(images=list(batch.images), return_tensors="pt")["pixel_values"]
    assert torch.equal(torch.stack([i.pixel_values for i in insps]), pixels)  # the model's own processor
    eager = type(model)(model.config)
    eager.load_state_dict(model.state_dict())
    eager.set_attn_implementation("eager")
    with torch.no_grad():
        reference = eager.eval()(pixel_values=pixels, output_attentions=True).attentions
    for b, insp in enumerate(insps):
        for layer, ref in enumerate(reference):
            torch.testing.assert_close(insp.attentions["encoder"][layer], ref[b], rtol=0, atol=1e-6)


@pytest.mark.parametrize("family, specials", [
    ("vit", ["[CLS]"]), ("deit", ["[CLS]", "[DIST]"]), ("beit", ["[CLS]"]),
    ("dinov2-registers", ["[CLS]", "[REG0]", "[REG1]"])])
def test_every_token_has_a_place_on_the_grid_or_a_name(models, batch, family, specials):
    insp = headscope.inspect(models[family], batch.images[0])
    rows, cols = insp.patch_grid
    assert (rows, cols) == (SIZE // PATCH, SIZE // PATCH)
    n = len(specials)
    assert insp.source_tokens[:n] == specials
    assert insp.source_tokens[n:] == [f"p({r},{c})" for r in range(rows) for c in range(cols)]
    positions = token_positions(insp)
    assert positions[:n] == [None] * n
    assert positions[n:] == [(r, c) for r in range(rows) for c in range(cols)]
    assert insp.attentions["encoder"].shape[-1] == n + rows * cols
    assert "label" in insp.prediction and insp.prediction["label"] in SHAPES
    assert f"{rows}x{cols} patch grid" in insp.summary()


def test_image_inputs_path_pil_array_tensor_and_batches(models, batch, tmp_path):
    from PIL import Image

    model = models["vit"]
    path = tmp_path / "shape.png"
    Image.fromarray(batch.images[0]).save(path)
    from_path = headscope.inspect(model, str(path))
    from_pil = headscope.inspect(model, Image.fromarray(batch.images[0]))
    from_array = headscope.inspect(model, batch.images[0])
    from_floats = headscope.inspect(model, batch.images[0].astype(np.float32) / 255)
    from_tensor = headscope.inspect(model, torch.from_numpy(batch.images[0]).permute(2, 0, 1))
    assert from_path.source_text == str(path)
    for other in (from_pil, from_array, from_floats, from_tensor):
        assert torch.equal(other.attentions["encoder"], from_path.attentions["encoder"])
    stacked = headscope.inspect(model, batch.images)  # a 4-d array is a batch
    assert isinstance(stacked, list) and len(stacked) == len(batch)
    assert torch.equal(stacked[0].attentions["encoder"], from_path.attentions["encoder"])


def test_image_input_errors_say_what_to_do(models, batch, tiny, tmp_path):
    with pytest.raises(InputError, match="no such file"):
        headscope.inspect(models["vit"], str(tmp_path / "missing.png"))
    (tmp_path / "bad.png").write_text("not an image")
    with pytest.raises(InputError, match="not an image file"):
        headscope.inspect(models["vit"], str(tmp_path / "bad.png"))
    with pytest.raises(InputError, match="pixel values"):
        headscope.inspect(models["vit"], batch.images[0].astype(np.float32) * 3)
    with pytest.raises(InputError, match="image classifier: pass an image"):
        headscope.inspect(models["vit"], "A red car.")
    with pytest.raises(InputError, match="reads text"):
        headscope.inspect(tiny("bert"), batch.images[0])
    with pytest.raises(InputError, match="target"):
        headscope.inspect(models["vit"], batch.images[0], target="circle")


def test_image_inspection_saves_and_loads_with_its_grid_and_pixels(vit_insps, tmp_path):
    insp = vit_insps[1]
    loaded = Inspection.load(insp.save(tmp_path / "img"))
    assert loaded == insp
    assert loaded.patch_grid == insp.patch_grid and isinstance(loaded.patch_grid, tuple)
    assert torch.equal(loaded.pixel_values, insp.pixel_values)
    assert loaded.architecture is ARCHITECTURES["vision-encoder"]
    assert isinstance(architecture_named("vision-encoder"), VisionEncoder)
    # without the processor a saved image is shown rescaled to 0..1, one scale for all channels: the same picture
    # up to brightness and contrast (the processor's mean and std are equal over the channels here)
    shown, true = image_for_display(loaded), image_for_display(insp)
    assert shown.min() == 0 and shown.max() == 1
    assert np.corrcoef(shown.reshape(-1), true.reshape(-1))[0, 1] > 0.9999


# ---- maps on the grid -------------------------------------------------------------------------------------------

def test_grid_map_is_the_query_row_laid_out_on_the_patches(vit_insps):
    insp = vit_insps[0]
    row = insp.map("encoder", 1, 2)[0].double().numpy()
    gm = grid_map(insp, "encoder.1.2")
    assert gm.grid == insp.patch_grid and gm.query == "[CLS]" and gm.image_size == (SIZE, SIZE)
    np.testing.assert_allclose(gm.values.reshape(-1), row[1:])
    assert gm.specials == pytest.approx({"[CLS]": row[0]})
    assert gm.values.sum() + sum(gm.specials.values()) == pytest.approx(1.0)
    other = grid_map(insp, "encoder.1.2", query=(1, 2))
    assert other.query == "p(1,2)"
    np.testing.assert_allclose(other.values.reshape(-1), insp.map("encoder", 1, 2)[query_index(insp, (1, 2))][1:])
    for reading in ("encoder.0.mean", "encoder.mean", "encoder.rollout", "encoder.flow"):
        m = grid_map(insp, reading)
        assert m.values.shape == insp.patch_grid
        assert m.values.sum() + sum(m.specials.values()) == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(InputError, match="special tokens"):
        grid_map(insp, "encoder.rollout", query="[DIST]")


def test_grid_maps_need_an_image(tiny):
    text = headscope.inspect(tiny("bert"), "A red car.")
    with pytest.raises(NotApplicableError):
        grid_map(text, "encoder.rollout")


def test_saliency_is_pooled_onto_patches(vit_insps):
    for method in ("gradient", "grad_x_input"):
        maps = saliency_maps(vit_insps, method)
        assert len(maps) == len(vit_insps)
        assert all(m.values.shape == vit_insps[0].patch_grid and m.values.sum() == pytest.approx(1) for m in maps)
    with pytest.raises(InputError):
        saliency_maps(vit_insps, "smoothgrad")


# ---- localisation -------------------------------------------------------------------------------------------------

def test_localisation_measures_on_known_maps():
    mask = np.zeros((8, 8), bool)
    mask[0:2, 0:5] = True  # touches patches (0,0) and (0,1) of a 2x2 grid of 4x4 patches
    cells = object_cells(mask, (2, 2))
    assert cells.tolist() == [[True, True], [False, False]]
    assert patch_coverage(mask, (2, 2))[0].tolist() == [0.5, 2 / 16]
    values = np.array([[0.1, 0.5], [0.3, 0.1]])
    assert pointing_hit(values, cells) == 1.0
    assert pointing_hit(np.array([[0.1, 0.2], [0.6, 0.1]]), cells) == 0.0
    assert pointing_hit(np.full((2, 2), 0.25), cells) == 0.5  # ties share the hit
    assert mass_inside(values, cells) == pytest.approx(0.6 / 1.0)
    assert resize_mask(mask, (4, 4)).tolist()[0] == [True, True, False, False]


def test_localisation_scores_every_reading_against_chance(vit_insps, batch, tmp_path):
    result = localisation(vit_insps, list(batch.masks))
    names = [r["name"] for r in result.rows]
    assert names[:8] == [f"encoder.{layer}.{h}" for layer in range(2) for h in range(4)]
    assert {"encoder.0.mean", "encoder.1.mean", "encoder.mean", "encoder.rollout", "encoder.flow", "gradient",
            "grad_x_input", "chance"} <= set(names)
    for r in result.rows:
        assert 0 <= r["pointing_low"] <= r["pointing"] <= r["pointing_high"] <= 1 and 0 <= r["mass"] <= 1
    cells = [object_cells(m, vit_insps[0].patch_grid) for m in batch.masks]
    assert result.row("chance")["mass"] == pytest.approx(np.mean([c.mean() for c in cells]), abs=1e-4)
    assert "pointing" in str(result) and "chance" in result.table()
    loaded = LocalisationResult.load(result.save(tmp_path / "loc"))
    assert loaded.rows == result.rows and loaded.grid == result.grid
    assert (tmp_path / "loc" / "localisation.csv").read_text().startswith("name,label,group,pointing")


# ---- the upsampling test --------------------------------------------------------------------------------------

def test_renderings_grid_blocks_versus_interpolation():
    values = np.arange(4.0).reshape(2, 2)
    blocks = render(values, (8, 8), "grid")
    assert len(np.unique(blocks)) == 4 and (blocks[:4, :4] == 0).all() and (blocks[4:, 4:] == 3).all()
    smooth = render(values, (8, 8), "bilinear")
    assert len(np.unique(smooth)) > 4  # more values shown than numbers measured


def test_upsampling_test_separates_interpolation_from_the_model(vit_insps, batch, tmp_path):
    maps = [grid_map(i, "encoder.rollout") for i in vit_insps]
    result = upsampling_test(maps, list(batch.masks), "tiny")
    grid, smooth = result.get("rollout", "grid"), result.get("rollout", "bilinear")
    assert grid["within_patch"] == 0 and smooth["within_patch"] > 0
    assert grid["distinct_values"] <= 16 < smooth["distinct_values"]
    assert grid["edge_width_px"] is None and smooth["edge_width_px"] > 0  # steps on the patch lines vs ramps
    oracle = result.get("oracle", "grid")
    assert oracle["iou"] > grid["iou"]  # the perfect grid map localises; a random model does not
    text = str(result)
    assert "pixels per number" in text and "interpolation's, not the model's" in text
    assert UpsamplingResult.load(result.save(tmp_path / "up")).rows == result.rows


# ---- faithfulness for images ------------------------------------------------------------------------------------

def test_deletion_insertion_and_leave_one_patch_out(vit_insps):
    insp = vit_insps[0]
    occlusion = leave_one_patch_out(insp)
    assert occlusion.values.shape == insp.patch_grid
    curves = patch_curves(insp, {"occlusion": occlusion, "rollout": grid_map(insp, "encoder.rollout")})
    n = insp.patch_grid[0] * insp.patch_grid[1]
    for c in curves.values():
        assert len(c["deletion"]) == len(c["insertion"]) == n + 1
        assert c["deletion"][0] == pytest.approx(c["insertion"][-1], abs=1e-5)  # the intact image
        assert c["deletion"][-1] == pytest.approx(c["insertion"][0], abs=1e-5)  # all patches replaced
        assert 0 <= c["deletion_auc"] <= 1 and 0 <= c["insertion_auc"] <= 1
    # removing the patch whose occlusion costs most, first: the first deletion step is that drop
    p0 = curves["occlusion"]["deletion"][0]
    p1 = curves["occlusion"]["deletion"][1]
    assert np.log(p0) - np.log(p1) == pytest.approx(occlusion.values.max(), abs=1e-4)


def test_image_faithfulness_rows_and_head_ablation(vit_insps, tmp_path):
    result = image_faithfulness(vit_insps[:2])
    heads = [r for r in result.rows if r["group"] == "head"]
    assert len(heads) == 8 and all("ablation_drop" in r and "flip_rate" in r for r in heads)
    assert all("deletion_auc" not in r for r in heads)
    for name in ("encoder.rollout", "encoder.flow", "gradient", "occlusion", "random"):
        assert 0 <= result.row(name)["deletion_auc"] <= 1
    assert ImageFaithfulness.load(result.save(tmp_path / "faith")).rows == result.rows
    assert "deletion AUC" in str(result)


def test_ablating_every_head_of_a_layer_changes_the_output(models, batch):
    """Gates reach the heads of an image model (capture's head_gates on pixel inputs)."""
    from headscope.capture import AttentionCapture

    model, processor = models["vit"]
    insp = headscope.inspect((model, processor), batch.images[0])
    pixels = insp.pixel_values[None]
    with torch.no_grad():
        base = model(pixel_values=pixels).logits
        with AttentionCapture(model, kinds=(), head_gates={("encoder", 1): torch.zeros(1, 4)},
                              structure=insp.loaded.structure):
            gated = model(pixel_values=pixels).logits
    assert not torch.allclose(base, gated)


def test_values_wrapped_on_the_grid_check_their_shape(vit_insps):
    with pytest.raises(InputError):
        patch_values(np.zeros((3, 3)), vit_insps[0], "x", "x")


def test_hierarchical_models_are_refused_by_name(batch):
    """Swin attends over windows of pooled grids, not one patch grid: a clear refusal, not a crash."""
    from headscope.errors import UnsupportedModelError

    config = tf.SwinConfig(image_size=SIZE, patch_size=4, embed_dim=16, depths=[1, 1], num_heads=[2, 2], window_size=4,
                           num_labels=3)
    model = tf.SwinForImageClassification(config).eval()
    processor = tf.ViTImageProcessor(size={"height": SIZE, "width": SIZE})
    with pytest.raises(UnsupportedModelError, match="hierarchical"):
        headscope.inspect((model, processor), batch.images[0])


@pytest.mark.parametrize("family", ["swin", "pvt"])
def test_hierarchical_capture_from_an_image_equals_eager_output_attentions(batch, family):
    """Hierarchical families (windows, pooled keys) are captured exactly from an image input, layer by layer
    in the model's own layout (maps of different shapes per stage); only the one-grid views refuse them."""
    from headscope.capture import run_capture
    from headscope.models import describe

    torch.manual_seed(0)
    if family == "swin":
        model = tf.SwinForImageClassification(tf.SwinConfig(image_size=SIZE, patch_size=4, embed_dim=16, depths=[1, 1],
                                                            num_heads=[2, 2], window_size=4, num_labels=3))
    else:
        model = tf.PvtForImageClassification(tf.PvtConfig(image_size=SIZE, num_encoder_blocks=2, depths=[1, 1],
                                                           sequence_reduction_ratios=[2, 1], hidden_sizes=[16, 32],
                                                           patch_sizes=[4, 2], strides=[4, 2], num_attention_heads=[1, 2],
                                                           mlp_ratios=[2, 2], num_labels=3))
    model.eval()
    processor = tf.ViTImageProcessor(size={"height": SIZE, "width": SIZE}, image_mean=[0.5] * 3, image_std=[0.5] * 3)
    pixels = processor(images=list(batch.images), return_tensors="pt")["pixel_values"]
    eager = type(model)(model.config)
    eager.load_state_dict(model.state_dict())
    eager.set_attn_implementation("eager")
    with torch.no_grad():
        _, captured = run_capture(model, {"pixel_values": pixels}, structure=describe(model))
        reference = eager.eval()(pixel_values=pixels, output_attentions=True).attentions
    maps = captured.maps["encoder"]
    assert len(maps) == len(reference) and len({tuple(m.shape) for m in maps}) > 1  # stages differ in shape
    for got, ref in zip(maps, reference):
        torch.testing.assert_close(got, ref, rtol=0, atol=1e-6)
