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
  ``Inspection.head_ablation`` sentence by sentence.

Without the shipped weights it falls back to a random-weight Marian of the same shape
(say so in the output); the cost does not depend on the weights.

    python benchmarks/ablation.py [--model headscope/en-fr] [--threads 1]
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


def stand_in():
    """Random-weight Marian of the default translator's shape (3+3 layers x 4 heads, d_model 256)."""
    import transformers as tf

    tok_dir = REPO / "training" / "work" / "tokenizer"
    if tok_dir.is_dir():
        tok = tf.AutoTokenizer.from_pretrained(str(tok_dir))
    else:
        from headscope.models.tiny import tiny_tokenizer

        tok = tiny_tokenizer("metaspace")
    torch.manual_seed(0)
    config = tf.MarianConfig(
        vocab_size=len(tok), decoder_vocab_size=len(tok), d_model=256, max_position_embeddings=256,
        encoder_layers=3, decoder_layers=3, encoder_attention_heads=4, decoder_attention_heads=4,
        encoder_ffn_dim=1024, decoder_ffn_dim=1024, scale_embedding=True, share_encoder_decoder_embeddings=True,
        pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, decoder_start_token_id=tok.pad_token_id,
    )
    return tf.MarianMTModel(config).eval(), tok


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="headscope/en-fr")
    ap.add_argument("--sentences", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1; 0 keeps torch's)")
    ap.add_argument("--skip-naive", action="store_true", help="skip the one-forward-per-(head, sentence) loop")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    import headscope
    from headscope.errors import HeadscopeError
    from headscope.faithful import head_ablation
    from headscope.faithful._common import as_examples

    try:
        loaded = headscope.load(args.model)
        what = args.model
    except HeadscopeError as err:
        loaded = headscope.load(stand_in())
        what = (f"RANDOM-WEIGHT stand-in of the default translator's shape ({args.model} not available: "
                f"{str(err).splitlines()[0][:100]})")
    src, tgt = sentences(args.sentences)
    examples = as_examples(loaded, src, tgt)
    n_heads = None

    def timed(label: str, **kw):
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
