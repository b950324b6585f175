"""Cost of ablating every head of the default translator on 32 sentences, batched vs looped.

All 36 heads (encoder, decoder and cross attention, 3 layers x 4 heads each) of ``headscope/en-fr``
are ablated one at a time on the first 32 sentences of multi30k ``test_2016_flickr`` (en -> fr,
the French reference forced as target); the effect is the drop of the teacher-forced
log-likelihood of each reference. Timed in the same run, all with the same numbers (checked):

* ``batched``: :func:`headscope.faithful.head_ablation` - (head, sentence) rows packed
  ``--batch-size`` to a forward pass, one gate vector per row; ablations of decoder and cross
  heads reuse the encoder output;
* ``per head``: one forward pass per head (its 32 sentences batched), ``batched=False``;
* ``per head and sentence``: one forward per (head, sentence), the loop one writes around
  ``head_ablation(insp)`` sentence by sentence.

``--random-weights`` times a random-weight model with the same config and tokenizer instead (the
cost does not depend on the weights).

    python benchmarks/ablation.py [--model headscope/en-fr] [--threads 1] [--random-weights]
"""

from __future__ import annotations

import argparse
import gzip
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "multi30k"


def sentences(n: int) -> tuple[list[str], list[str]]:
    def read(lang: str) -> list[str]:
        with gzip.open(DATA / f"test_2016_flickr.{lang}.gz", "rt", encoding="utf-8") as fh:
            return [line.strip() for _, line in zip(range(n), fh)]

    return read("en"), read("fr")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="headscope/en-fr")
    ap.add_argument("--sentences", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1; 0 keeps torch's)")
    ap.add_argument("--skip-naive", action="store_true", help="skip the one-forward-per-(head, sentence) loop")
    ap.add_argument("--random-weights", action="store_true", help="random weights in --model's shape")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    import headscope
    from headscope.faithful import AblationResult, head_ablation
    from headscope.faithful._common import as_examples
    from headscope.models.tiny import random_like

    loaded = headscope.load(random_like(args.model) if args.random_weights else args.model)
    what = f"random-weight {args.model} shape" if args.random_weights else args.model
    src, tgt = sentences(args.sentences)
    examples = as_examples(loaded, src, tgt)

    def timed(label: str, **kw: object) -> tuple[str, float, float, AblationResult]:
        start, cpu = time.perf_counter(), time.process_time()
        res = head_ablation(examples, proxies=False, **kw)
        return label, time.perf_counter() - start, time.process_time() - cpu, res

    runs = [timed("batched", batched=True, batch_size=args.batch_size),
            timed("per head", batched=False, batch_size=len(examples))]
    if not args.skip_naive:
        runs.append(timed("per head and sentence", batched=False, batch_size=1))
    ref = runs[0][3]
    n_heads = len(ref.configs)
    print(f"model: {what}")
    print(f"{n_heads} heads x {len(examples)} sentences (multi30k test_2016_flickr, forced reference), "
          f"torch threads {torch.get_num_threads()}")
    print(f"{'path':<24}{'forwards':>9}{'wall s':>8}{'cpu s':>8}{'ablations/s':>13}{'x wall':>8}{'x cpu':>7}"
          f"{'max |diff|':>12}")
    base_t, base_c = runs[0][1], runs[0][2]
    for label, secs, cpu, res in runs:
        diff = max(float(np.abs(res.per_example[m] - ref.per_example[m]).max()) for m in ref.per_example)
        print(f"{label:<24}{res.n_forwards:>9}{secs:>8.2f}{cpu:>8.2f}{n_heads * len(examples) / secs:>13.1f}"
              f"{secs / base_t:>8.1f}{cpu / base_c:>7.1f}{diff:>12.2e}")
    top = ref.ranking()[:5]
    print("largest mean log-likelihood drops:", ", ".join(f"{n} {v:.3f}" for n, v in top))


if __name__ == "__main__":
    main()
