"""Train the shipped vision model ``headscope/shapes-vit``: a small ViT on synthetic shapes.

Data: :mod:`headscope.vision.shapes` draws one shape (circle, square, triangle, cross, ring) at a
random position, size, rotation and colour over textured clutter, 48x48 pixels, mask kept. The
training pool (``--pool`` images, seed ``TRAIN_SEED``) is augmented with the 8 flips/rotations of
the square (they keep the class); validation and the held-out test set use their own seeds and
never meet the pool.

Model: ``ViTForImageClassification``, 4 layers, 4 heads, hidden 96, patch 8 (a 6x6 grid + CLS),
trained from scratch on CPU (AdamW, warm-up then cosine), exported in fp16 with its
``ViTImageProcessor`` to ``--out`` (default ``src/headscope/models/weights/shapes-vit``). The
held-out accuracy is then measured on the exported model loaded the way headscope loads it (fp16
weights cast to fp32, images prepared by the saved processor) and written to the folder's
``headscope.json`` with the command, the wall time and the training curve.

    python training/train_vit_shapes.py --threads 1                   # the shipped model
    python training/train_vit_shapes.py --steps 30 --pool 512 --out training/work/vit-smoke  # smoke
    python training/train_vit_shapes.py --evaluate-only                # accuracy of the shipped model
    python training/train_vit_shapes.py --init src/headscope/models/weights/shapes-vit --steps 2000 --lr 3e-4
                                                                       # continue from the export
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

from headscope.vision.shapes import SHAPES, SIZE, TEST_SEED, TRAIN_SEED, VALIDATION_SEED, shapes_batch  # noqa: E402

OUT = REPO / "src" / "headscope" / "models" / "weights" / "shapes-vit"
PATCH, LAYERS, HEADS, HIDDEN, FFN = 8, 4, 4, 96, 384


def build_model():
    from transformers import ViTConfig, ViTForImageClassification

    config = ViTConfig(image_size=SIZE, patch_size=PATCH, num_channels=3, hidden_size=HIDDEN,
                       num_hidden_layers=LAYERS, num_attention_heads=HEADS, intermediate_size=FFN,
                       hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, num_labels=len(SHAPES),
                       id2label=dict(enumerate(SHAPES)), label2id={s: i for i, s in enumerate(SHAPES)})
    return ViTForImageClassification(config)


def build_processor():
    from transformers import ViTImageProcessor

    return ViTImageProcessor(do_resize=True, size={"height": SIZE, "width": SIZE}, resample=2, do_rescale=True,
                             rescale_factor=1 / 255, do_normalize=True, image_mean=[0.5] * 3, image_std=[0.5] * 3)


def to_pixels(images: np.ndarray) -> torch.Tensor:
    """uint8 ``[n, H, W, 3]`` -> the processor's ``pixel_values`` ``[n, 3, H, W]`` (rescale, normalise)."""
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0
    return (x - 0.5) / 0.5


def augment(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One of the 8 symmetries of the square per image (they keep every shape's class)."""
    out = np.empty_like(images)
    for i, img in enumerate(images):
        k = int(rng.integers(0, 8))
        img = np.rot90(img, k % 4, axes=(0, 1))
        out[i] = img[:, ::-1] if k >= 4 else img
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
    ap.add_argument("--minutes", type=float, default=120.0, help="wall-clock cap; the schedule follows --steps")
    ap.add_argument("--batch", type=int, default=96)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--pool", type=int, default=24000, help="training images (augmented x8)")
    ap.add_argument("--validation", type=int, default=1000)
    ap.add_argument("--test", type=int, default=2000)
    ap.add_argument("--eval-every", type=int, default=500)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--evaluate-only", action="store_true")
    ap.add_argument("--init", type=Path, default=None,
                    help="start from this exported folder's weights (continue training with a fresh schedule)")
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

    model = build_model()
    previous = None
    if args.init is not None:  # continue from an export (fp16 weights cast back to fp32)
        from transformers import AutoModelForImageClassification

        model.load_state_dict(AutoModelForImageClassification.from_pretrained(str(args.init),
                                                                              dtype=torch.float32).state_dict())
        meta_file = args.init / "headscope.json"
        previous = json.loads(meta_file.read_text(encoding="utf-8"))["training"] if meta_file.is_file() else None
        print(f"initialised from {args.init}", flush=True)
    params = sum(p.numel() for p in model.parameters())
    print(f"model: {params:,} parameters", flush=True)
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "embeddings" not in n]
    other = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "embeddings" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.05}, {"params": other, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.99))

    def lr_at(step: int) -> float:
        if step < args.warmup:
            return args.lr * (step + 1) / args.warmup
        done = (step - args.warmup) / max(1, args.steps - args.warmup)
        return args.lr * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(done, 1.0))))

    history, step, running = [], 0, []
    for step in range(args.steps):
        if (time.time() - start) / 60 > args.minutes:
            print(f"time cap of {args.minutes} minutes reached at step {step}", flush=True)
            break
        model.train()
        for group in opt.param_groups:
            group["lr"] = lr_at(step)
        idx = rng.integers(0, args.pool, args.batch)
        x = to_pixels(augment(pool.images[idx], rng))
        y = torch.from_numpy(pool.labels[idx])
        loss = torch.nn.functional.cross_entropy(model(pixel_values=x).logits, y, label_smoothing=0.05)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        running.append(loss.item())
        if (step + 1) % args.eval_every == 0 or step + 1 == args.steps:
            acc = accuracy(model, val.images, val.labels)
            minutes = (time.time() - start) / 60
            history.append({"step": step + 1, "minutes": round(minutes, 1), "loss": round(float(np.mean(running)), 4),
                            "val_accuracy": round(acc, 4)})
            running = []
            print(json.dumps(history[-1]), flush=True)
    else:
        step = args.steps - 1

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
        "data": (f"{args.pool} images of 48x48 px, one of {', '.join(SHAPES)} at a random position, size (radius "
                 "6-13 px), rotation and colour over a smooth random colour field with thin lines and dots; "
                 "augmented with the 8 flips/rotations of the square"),
        "sizes": {"layers": LAYERS, "heads": HEADS, "hidden": HIDDEN, "intermediate": FFN, "patch": PATCH,
                  "image": SIZE, "params": params},
        "grid": [SIZE // PATCH, SIZE // PATCH],
        "training": {"command": command, "wall_minutes": round(wall, 1), "steps": step + 1, "batch": args.batch,
                     "lr": args.lr, "warmup": args.warmup, "threads": args.threads, "seed": args.seed,
                     "history": history, **({"continued_from": previous} if previous else {})},
        **result,
        "quality": f"held-out accuracy {result['test_accuracy']:.1%} on {args.test} images (seed {TEST_SEED})",
        "evaluation_command": "python training/train_vit_shapes.py --evaluate-only",
    }
    (args.out / "headscope.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({k: meta[k] for k in ("test_accuracy", "per_class_accuracy")}), flush=True)
    print(f"wrote {args.out} in {wall:.1f} min", flush=True)


if __name__ == "__main__":
    main()
