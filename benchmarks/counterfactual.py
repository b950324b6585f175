"""Speed of the adversarial attention search (Jain & Wallace 2019, section 4.2): examples per second.

For the shipped classifier (``headscope/sentiment``, the first ``--reviews`` held-out reviews; the heads
of its top layer, then all 72 heads together) and the shipped translator (``headscope/en-fr``, the first
``--sentences`` multi30k ``test_2016_flickr`` sentences, its own greedy translation teacher-forced; the heads
of cross layer 2, then all 12 cross heads together), :func:`headscope.faithful.counterfactual` with
``method="adversarial"`` searches each example's map of largest JS divergence within each
``--epsilon`` (``--steps`` Adam steps per epsilon, one forward + backward each, all examples of a
batch optimised together), and re-checks every result with a separate forward. Reported: wall and
CPU seconds of the search alone, and examples per second (examples x head sets / search seconds,
all epsilons included), plus the forward passes it took.

    python benchmarks/counterfactual.py [--reviews 16] [--sentences 16] [--steps 20] [--epsilon 0.01 0.05]
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reviews", type=int, default=16, help="held-out reviews for the classifier")
    ap.add_argument("--sentences", type=int, default=16, help="multi30k sentences for the translator")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--epsilon", type=float, nargs="+", default=[0.01, 0.05])
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1; 0 keeps torch's)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    import headscope
    from headscope.faithful import counterfactual
    from headscope.faithful._common import as_examples

    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s); {args.reviews} reviews, "
          f"{args.sentences} sentences, {args.steps} steps "
          f"per epsilon, epsilons {args.epsilon}, batch {args.batch_size}")
    print("| model | heads | examples | wall s | CPU s | examples/s (wall) | examples/s (CPU) | forwards | "
          "mean largest JS |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---|")
    for model, texts, sites in (("headscope/sentiment", held_out_reviews(args.reviews)[0], ["encoder.5.mean", "encoder.mean"]),
                                ("headscope/en-fr", multi30k(args.sentences), ["cross.2.mean", "cross.mean"])):
        examples = as_examples(headscope.inspect(model, texts, truncate=True))
        for site in sites:
            t0, c0 = time.perf_counter(), time.process_time()
            res = counterfactual(examples, sites=[site], method="adversarial", epsilon=args.epsilon,
                                 steps=args.steps, batch_size=args.batch_size)
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            js = ", ".join(f"{g['js_mean']:.3f} (ε {g['epsilon']:g})" for g in res.groups())
            assert all(e.within for e in res.effects)
            print(f"| `{model}` | `{site}` | {len(examples)} | {wall:.1f} | {cpu:.1f} | {len(examples) / wall:.2f} | "
                  f"{len(examples) / cpu:.2f} | {res.n_forwards} | {js} |", flush=True)


if __name__ == "__main__":
    main()
