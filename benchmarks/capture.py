"""Cost of capture: a captured forward vs a plain eager forward with ``output_attentions=True``.

6 layers x 8 heads, width 512 (random weights), 128 tokens, batch 8, BERT-like and Marian-like.
Both timings are taken in the same run, interleaved, best of N repeats.

    python benchmarks/capture.py [--repeats 7]
"""

from __future__ import annotations

import argparse
import time

import torch
import transformers as tf

from headscope.capture import run_capture


def models() -> dict[str, tuple[torch.nn.Module, dict]]:
    torch.manual_seed(0)
    vocab, n, batch = 8000, 128, 8
    ids = torch.randint(5, vocab, (batch, n))
    mask = torch.ones(batch, n, dtype=torch.long)
    bert = tf.BertForSequenceClassification(tf.BertConfig(
        vocab_size=vocab, hidden_size=512, num_hidden_layers=6, num_attention_heads=8, intermediate_size=2048,
        attn_implementation="eager")).eval()
    marian = tf.MarianMTModel(tf.MarianConfig(
        vocab_size=vocab, d_model=512, encoder_layers=6, decoder_layers=6, encoder_attention_heads=8,
        decoder_attention_heads=8, encoder_ffn_dim=2048, decoder_ffn_dim=2048, pad_token_id=0,
        decoder_start_token_id=0, eos_token_id=1, scale_embedding=True, attn_implementation="eager")).eval()
    return {
        "bert-like 6x8 d512": (bert, dict(input_ids=ids, attention_mask=mask)),
        "marian-like 6+6x8 d512": (marian, dict(input_ids=ids, attention_mask=mask, decoder_input_ids=ids,
                                                decoder_attention_mask=mask)),
    }


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; batch 8 x 128 tokens; best of {args.repeats}")
    print(f"{'model':<24} {'eager+output_attentions s':>26} {'headscope capture s':>20} {'ratio':>7}")
    for name, (model, inputs) in models().items():

        def eager():
            with torch.no_grad():
                out = model(**inputs, output_attentions=True)
            return out

        def captured():
            _, cap = run_capture(model, inputs)
            return cap.maps

        eager(), captured()  # warm-up
        t_eager, t_cap = [], []
        for _ in range(args.repeats):  # interleave so both see the same machine load
            t_eager.append(best_of(eager, 1))
            t_cap.append(best_of(captured, 1))
        e, c = min(t_eager), min(t_cap)
        print(f"{name:<24} {e:>26.3f} {c:>20.3f} {c / e:>7.2f}")


if __name__ == "__main__":
    main()
