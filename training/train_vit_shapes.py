"""Train the shipped vision model ``headscope/shapes-vit``: a small ViT on synthetic shapes.

Data: :mod:`headscope.vision.shapes` draws one upright shape (circle, square, triangle, cross,
ring) at a random position, size and bright colour over dim textured clutter, 48x48 pixels, mask
kept. The training pool (``--pool`` images, seed ``TRAIN_SEED``) is augmented with left-right
mirrors (every upright shape keeps its class); validation and the held-out test set use their own
seeds and never meet the pool.

Model: ``ViTForImageClassification``, 4 layers, 4 heads, patch 8 (a 6x6 grid + CLS), position
embeddings started from 2-D sine-cosine codes, trained from scratch on CPU (AdamW, warm-up then
cosine), exported in fp16 with its ``ViTImageProcessor`` to ``--out`` (default
``src/headscope/models/weights/shapes-vit``). The cosine follows whichever budget runs out first,
``--steps`` or ``--minutes`` (on a shared machine the wall clock often does), and training stops
there. The held-out accuracy is then measured on the exported model loaded the way headscope loads
it (fp16 weights cast to fp32, images prepared by the saved processor) and written to the folder's
``headscope.json`` with the command, the wall time and the training curve.

    python training/train_vit_shapes.py --threads 1                   # the shipped model (its headscope.json has the command)
    python training/train_vit_shapes.py --steps 30 --pool 512 --out training/work/vit-smoke  # smoke
    python training/train_vit_shapes.py --evaluate-only                # accuracy of the shipped model
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from headscope.vision.shapes import (DOTS, LINES, RADIUS, SHAPES, SIZE, TEST_SEED, TRAIN_SEED,
                                     VALIDATION_SEED, shapes_batch)

OUT = REPO / "src" / "headscope" / "models" / "weights" / "shapes-vit"
PATCH, LAYERS, HEADS, HIDDEN, FFN = 8, 4, 4, 64, 256


def build_model(hidden: int = HIDDEN, ffn: int = FFN, layers: int = LAYERS, heads: int = HEADS):
    """A fresh ViT classifier for the shapes, its patch position embeddings set to :func:`sincos_2d`."""
    from transformers import ViTConfig, ViTForImageClassification

    config = ViTConfig(image_size=SIZE, patch_size=PATCH, num_channels=3, hidden_size=hidden,
                       num_hidden_layers=layers, num_attention_heads=heads, intermediate_size=ffn,
                       hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, num_labels=len(SHAPES),
                       id2label=dict(enumerate(SHAPES)), label2id={s: i for i, s in enumerate(SHAPES)})
    model = ViTForImageClassification(config)
    with torch.no_grad():
        model.vit.embeddings.position_embeddings[0, 1:] = sincos_2d(SIZE // PATCH, hidden)
    return model


def build_processor():
    from transformers import ViTImageProcessor

    return ViTImageProcessor(do_resize=True, size={"height": SIZE, "width": SIZE}, resample=2, do_rescale=True,
                             rescale_factor=1 / 255, do_normalize=True, image_mean=[0.5] * 3, image_std=[0.5] * 3)


def sincos_2d(side: int, dim: int) -> torch.Tensor:
    """``[side * side, dim]`` 2-D sine-cosine position codes (row codes in the first half, column codes in the second)."""
    quarter = dim // 4
    omega = 1.0 / 10000 ** (torch.arange(quarter, dtype=torch.float32) / quarter)
    pos = torch.arange(side, dtype=torch.float32)[:, None] * omega[None]
    rows = torch.cat([pos.sin(), pos.cos()], 1)  # [side, dim / 2]
    grid_r = rows[:, None].expand(side, side, -1).reshape(side * side, -1)
    grid_c = rows[None].expand(side, side, -1).reshape(side * side, -1)
    return torch.cat([grid_r, grid_c], 1) * 0.1


def to_pixels(images: np.ndarray) -> torch.Tensor:
    """uint8 ``[n, H, W, 3]`` -> the processor's ``pixel_values`` ``[n, 3, H, W]`` (rescale, normalise)."""
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0
    return (x - 0.5) / 0.5


def augment(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Half of the images mirrored left-right (every upright shape keeps its class)."""
    out = images.copy()
    flip = rng.random(len(images)) < 0.5
    out[flip] = images[flip][:, :, ::-1]
    return out


@torch.no_grad()
def accuracy(model, images: np.ndarray, labels: np.ndarray, batch: int = 250) -> float:
    model.eval()
    correct = 0
    for i in range(0, len(labels), batch):
        pred = model(pixel_values=to_pixels(images[i:i + batch])).logits.argmax(-1)
        correct += int((pred.numpy() == labels[i:i + batch]).sum())
    return correct / len(labels)


def evaluate_export(folder: Path, n_test: int) -> dict:
    """Held-out accuracy of the exported folder, loaded as headscope loads it (fp16 -> fp32, its processor)."""
    from PIL import Image
    from transformers import AutoImageProcessor, AutoModelForImageClassification

    model = AutoModelForImageClassification.from_pretrained(str(folder), dtype=torch.float32,
                                                            attn_implementation="eager").eval()
    processor = AutoImageProcessor.from_pretrained(str(folder))
    test = shapes_batch(n_test, TEST_SEED)
    correct, per_class = 0, np.zeros((len(SHAPES), 2), int)
    with torch.no_grad():
        for i in range(0, n_test, 250):
            pil = [Image.fromarray(im) for im in test.images[i:i + 250]]
            pixels = processor(images=pil, return_tensors="pt")["pixel_values"]
            pred = model(pixel_values=pixels).logits.argmax(-1).numpy()
            gold = test.labels[i:i + 250]
            correct += int((pred == gold).sum())
            for g, p in zip(gold, pred):
                per_class[g] += (int(g == p), 1)
    return {"test_accuracy": round(correct / n_test, 4), "test_images": n_test, "test_seed": TEST_SEED,
            "per_class_accuracy": {s: round(float(c / max(t, 1)), 4) for s, (c, t) in zip(SHAPES, per_class)}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=6000)
    ap.add_argument("--minutes", type=float, default=40.0, help="training-time budget: the cosine follows whichever of --steps and --minutes runs out first")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1.5e-3)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--pool", type=int, default=24000, help="training images (mirrored at random)")
    ap.add_argument("--validation", type=int, default=1000)
    ap.add_argument("--test", type=int, default=2000)
    ap.add_argument("--eval-every", type=int, default=500)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--hidden", type=int, default=HIDDEN)
    ap.add_argument("--ffn", type=int, default=FFN)
    ap.add_argument("--layers", type=int, default=LAYERS)
    ap.add_argument("--evaluate-only", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.evaluate_only:
        print(json.dumps(evaluate_export(args.out, args.test), indent=1))
        return
    command = "python training/train_vit_shapes.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    start = time.time()
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    pool = shapes_batch(args.pool, TRAIN_SEED)
    val = shapes_batch(args.validation, VALIDATION_SEED)
    print(f"data: {args.pool} training images, {args.validation} validation ({time.time() - start:.0f}s)", flush=True)

    model = build_model(args.hidden, args.ffn, args.layers)
    params = sum(p.numel() for p in model.parameters())
    print(f"model: {params:,} parameters", flush=True)
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "embeddings" not in n]
    other = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "embeddings" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.05}, {"params": other, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.99))

    train_start = time.time()

    def progress(step: int) -> float:
        """How much of the budget is spent: the larger of the steps' and the minutes' share."""
        return max(step / args.steps, (time.time() - train_start) / 60 / args.minutes)

    def lr_at(step: int, done: float) -> float:
        if step < args.warmup:
            return args.lr * (step + 1) / args.warmup
        return args.lr * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(done, 1.0))))

    history, step, running = [], 0, []
    stopped_by = "steps"
    for step in range(args.steps):
        done = progress(step)
        if done >= 1.0:
            stopped_by = "minutes"
            print(f"the {args.minutes}-minute budget is spent at step {step}", flush=True)
            break
        model.train()
        for group in opt.param_groups:
            group["lr"] = lr_at(step, done)
        idx = rng.integers(0, args.pool, args.batch)
        x = to_pixels(augment(pool.images[idx], rng))
        y = torch.from_numpy(pool.labels[idx])
        loss = torch.nn.functional.cross_entropy(model(pixel_values=x).logits, y, label_smoothing=0.05)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        running.append(loss.item())
        if (step + 1) % args.eval_every == 0 or step + 1 == args.steps or progress(step + 1) >= 1.0:
            acc = accuracy(model, val.images, val.labels)
            minutes = (time.time() - start) / 60
            history.append({"step": step + 1, "minutes": round(minutes, 1), "loss": round(float(np.mean(running)), 4),
                            "val_accuracy": round(acc, 4)})
            running = []
            print(json.dumps(history[-1]), flush=True)
    else:
        step = args.steps

    args.out.mkdir(parents=True, exist_ok=True)
    model.eval()
    model.half().save_pretrained(str(args.out), safe_serialization=True)
    build_processor().save_pretrained(str(args.out))
    wall = (time.time() - start) / 60
    result = evaluate_export(args.out, args.test)
    meta = {
        "name": "headscope/shapes-vit",
        "description": ("ViTForImageClassification trained from scratch on synthetic shapes over textured clutter "
                        "(headscope.vision.shapes); the object mask of every image is known"),
        "task": "image-classification",
        "data": (f"{args.pool} images of {SIZE}x{SIZE} px, one upright {', '.join(SHAPES)} at a random position, "
                 f"size (radius {RADIUS[0]:g}-{RADIUS[1]:g} px) and bright colour over a dim smooth random colour "
                 f"field with {LINES[0]}-{LINES[1] - 1} thin lines and {DOTS[0]}-{DOTS[1] - 1} dots "
                 "(headscope.vision.shapes); augmented with left-right mirrors"),
        "sizes": {"layers": args.layers, "heads": HEADS, "hidden": args.hidden, "intermediate": args.ffn, "patch": PATCH,
                  "image": SIZE, "params": params},
        "grid": [SIZE // PATCH, SIZE // PATCH],
        "training": {"command": command, "wall_minutes": round(wall, 1), "steps": step, "stopped_by": stopped_by,
                     "batch": args.batch, "lr": args.lr, "warmup": args.warmup, "threads": args.threads,
                     "seed": args.seed, "history": history},
        **result,
        "quality": f"held-out accuracy {result['test_accuracy']:.1%} on {args.test} images (seed {TEST_SEED})",
        "evaluation_command": "python training/train_vit_shapes.py --evaluate-only",
    }
    (args.out / "headscope.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({k: meta[k] for k in ("test_accuracy", "per_class_accuracy")}), flush=True)
    print(f"wrote {args.out} in {wall:.1f} min", flush=True)


if __name__ == "__main__":
    main()
