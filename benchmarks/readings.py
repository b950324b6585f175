"""Cost of each reading beyond the raw weights relative to plain capture (issue 16).

For the shipped classifier (``headscope/sentiment``, the first ``--reviews`` held-out reviews) and
translator (``headscope/en-fr``, the first ``--sentences`` multi30k ``test_2016_flickr`` sentences, its
own greedy translation teacher-forced so that no run generates), times ``headscope.inspect`` one text
at a time: plain (maps only) and with ``readings=[r]`` for each reading ``r`` and for all of them.
Every configuration runs once per repeat, interleaved, and the best repeat of each is kept; the
ratio is to plain capture in the same run.

    python benchmarks/readings.py [--reviews 16] [--sentences 16] [--repeats 3]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "examples"))
from faithfulness_study import held_out_reviews, multi30k  # noqa: E402  (the studies' texts)
CONFIGS = ("plain", "norm", "alti", "valuezeroing", "gradrollout", "all")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reviews", type=int, default=16, help="held-out reviews for the classifier")
    ap.add_argument("--sentences", type=int, default=16, help="multi30k sentences for the translator")
    ap.add_argument("--repeats", type=int, default=3, help="runs of each configuration; the best is kept")
    args = ap.parse_args()
    torch.set_num_threads(1)
    import headscope
    from headscope.models import load

    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread; one text at a time; best of {args.repeats}")
    print(f"{'model':<22} {'reading':<14} {'s per text':>10} {'x plain':>8}")
    for name, texts in (("headscope/sentiment", held_out_reviews(args.reviews)[0]),
                        ("headscope/en-fr", multi30k(args.sentences))):
        loaded = load(name)
        targets = [None] * len(texts)
        if loaded.architecture.has_target:
            targets = [headscope.inspect(loaded, t).target_text for t in texts]
        best = {c: float("inf") for c in CONFIGS}
        for _ in range(args.repeats):
            for config in CONFIGS:
                readings = None if config == "plain" else ["all"] if config == "all" else [config]
                start = time.perf_counter()
                for text, target in zip(texts, targets):
                    headscope.inspect(loaded, text, target=target, readings=readings)
                best[config] = min(best[config], (time.perf_counter() - start) / len(texts))
        for config in CONFIGS:
            print(f"{name:<22} {config:<14} {best[config]:10.4f} {best[config] / best['plain']:8.2f}")


if __name__ == "__main__":
    main()
