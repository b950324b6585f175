"""Cost of the full alignment report: every cross-attention head, the means and rollout, on
hansards-en-fr (447 sentence pairs), both decoder-step conventions.

Timed in the same run:

* ``evaluate``: :func:`headscope.align.evaluate` (padded, length-sorted batches, cross attention
  plus the self-attention rollout needs, one counting pass for every map source);
* baseline: the straightforward loop: one sentence at a time through ``headscope.inspect``
  (every kind captured), then for every head and convention
  :func:`headscope.align.align_inspection` to a link set and the plain
  :func:`headscope.align.aer` over the link sets of each head.

Both give the same AER table (checked). Goal: the full report in <= 60 s on 2 cores. Both run
with ``--threads`` torch threads (default 1: on 2 shared, busy cores the small forward passes and
the word pooling of many tiny tensors run several times slower with 2).

    python benchmarks/align.py [--model headscope/en-fr] [--skip-baseline] [--threads N] [--limit N]
    python benchmarks/align.py --random-weights   # random weights in the shape of --model
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch


def baseline(loaded, ds, conventions):
    """One sentence at a time; per head: align_inspection -> link sets -> plain aer()."""
    import headscope
    from headscope.align import aer, align_inspection

    n_layers = n_heads = None
    links: dict = {}
    for k in range(len(ds)):
        row = ds[k]
        insp = headscope.inspect(loaded, row["source_words"], target=row["target_words"], is_split_into_words=True)
        if n_layers is None:
            n_layers, n_heads = insp.shape("cross")
        for conv in conventions:
            for layer in range(n_layers):
                for head in range(n_heads):
                    _, found = align_inspection(insp, (layer, head), convention=conv)
                    links.setdefault((conv, layer, head), []).append(found)
    sure = [{tuple(x) for x in s} for s in ds["sure"]]
    possible = [{tuple(x) for x in p} for p in ds["possible"]]
    out = {}
    for conv in conventions:
        grid = np.zeros((n_layers, n_heads))
        for layer in range(n_layers):
            for head in range(n_heads):
                grid[layer, head] = aer(links[(conv, layer, head)], sure, possible).aer
        out[conv] = grid
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="headscope/en-fr")
    parser.add_argument("--random-weights", action="store_true",
                        help="time a random-weight model with --model's config and tokenizer instead")
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1, help="torch threads for both paths (default 1)")
    parser.add_argument("--limit", type=int, default=None, metavar="N",
                        help="time the first N sentence pairs only (default: all 447)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    import headscope
    from headscope.align import evaluate, load_gold

    from headscope.models.tiny import random_like

    loaded = headscope.load(random_like(args.model) if args.random_weights else args.model)
    name = f"random-weight {args.model} shape" if args.random_weights else args.model
    ds = load_gold("hansards-en-fr")
    if args.limit is not None:
        ds = ds.select(range(min(args.limit, len(ds))))
    n = len(ds)
    print(f"model: {name}; gold: hansards-en-fr, {n} sentence pairs; torch {torch.__version__}, "
          f"{torch.get_num_threads()} torch thread(s)")

    evaluate(loaded, ds, limit=8, progress=False, aligner=None)  # warm-up (first-call costs of the model and tokenizer)
    start = time.perf_counter()
    # aligner=None: the time of scoring the readings, without training the eflomal baseline
    report = evaluate(loaded, ds, convention="both", batch_size=args.batch_size, progress=False, aligner=None)
    t_eval = time.perf_counter() - start
    print(f"evaluate (every head, layer means, all-heads mean, rollout; naive + shift): "
          f"{t_eval:.2f} s, {n / t_eval:.0f} sentences/s")
    print(report.summary())

    if not args.skip_baseline:
        with torch.no_grad():
            start = time.perf_counter()
            grids = baseline(loaded, ds, ("naive", "shift"))
            t_base = time.perf_counter() - start
        for conv, grid in grids.items():
            np.testing.assert_allclose(grid, report.by_convention[conv].aer, atol=1e-9)
        print(f"baseline (per sentence, per head, plain aer; heads only): {t_base:.2f} s, "
              f"{n / t_base:.0f} sentences/s; same AER table; evaluate is {t_base / t_eval:.1f}x faster "
              "while also scoring the means and rollout")


if __name__ == "__main__":
    main()
