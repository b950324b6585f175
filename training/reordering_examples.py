"""Translate the adjective-noun reordering captions of docs/models.md with the shipped models.

Prints a markdown table (English, expected French order, each model's greedy translation).

    python training/reordering_examples.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from headscope.models.shipped import SHIPPED, load_shipped  # noqa: E402

# English caption, French adjective-noun pattern it should produce (noun before adjective)
CAPTIONS = [
    ("A man in a red shirt.", "chemise rouge"),
    ("A black dog is running on the green grass.", "chien noir ... herbe verte"),
    ("A woman in a white dress.", "robe blanche"),
    ("A man wearing a blue hat.", "chapeau bleu"),
    ("Two men in orange vests are working.", "gilets orange"),
    ("A brown dog is playing with a yellow ball.", "chien marron ... balle jaune"),
    ("A child in a pink jacket.", "veste rose"),
    ("A girl with long hair is smiling.", "cheveux longs"),
]


def main() -> None:
    torch.set_num_threads(2)
    models = [n for n in ("headscope/en-fr-1x1", "headscope/en-fr") if SHIPPED[n].available]
    outs = {}
    for name in models:
        model, tok = load_shipped(name)
        enc = tok([c for c, _ in CAPTIONS], return_tensors="pt", padding=True)
        with torch.inference_mode():
            gen = model.generate(**enc, num_beams=1, do_sample=False, max_new_tokens=40)
        outs[name] = tok.batch_decode(gen, skip_special_tokens=True)
    print("| English | expected order | " + " | ".join(f"`{m}` (greedy)" for m in models) + " |")
    print("|---|---|" + "---|" * len(models))
    for i, (src, pattern) in enumerate(CAPTIONS):
        print(f"| {src} | {pattern} | " + " | ".join(outs[m][i] for m in models) + " |")


if __name__ == "__main__":
    main()
