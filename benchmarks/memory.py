"""Peak memory of a capture: extra memory over a plain forward, divided by what the capture keeps.

Each case runs in a fresh subprocess (``--case``), so no case sees another's memory. In it:

1. load the model, run one plain forward and one capture (warm-up: lazy imports, allocator);
2. reset the kernel's resident-set high-water mark (``echo 5 > /proc/self/clear_refs``), note the
   resident set, run the plain forward (the model's own attention) and read ``VmHWM`` from
   ``/proc/self/status``: the plain forward's peak above its start;
3. the same around ``headscope.inspect(...)``: the capture's peak above its start;
4. extra = capture peak - plain forward peak; kept = bytes of the maps and reductions the
   Inspection holds (tensor storages); ratio = extra / kept.

glibc's malloc may keep freed memory, so the subprocesses run with ``MALLOC_MMAP_THRESHOLD_=65536``
(every large tensor is its own mapping, returned to the system when freed) and one thread. Linux only.

Cases: the shipped classifier ``headscope/sentiment`` (6 layers x 12 heads) at 128, 256 and 512
tokens (goal: ratio <= 1.3); a 4,096-token input through a 6-layer x 12-head BERT of width 96
(random weights, ``max_position_embeddings=4096``) captured with reductions (entropy, sink, max,
top-8 per row, the ``[CLS]`` row) and with its full maps streamed to disk.

    python benchmarks/memory.py [--lengths 128,256,512] [--long-tokens 4096]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MiB = 1024 * 1024


def _status(field: str) -> int:
    """A ``/proc/self/status`` field in bytes."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def peak_of(fn):
    """``(result, peak resident bytes above the start)`` of ``fn()``."""
    gc.collect()
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset VmHWM to the current resident set
    start = _status("VmRSS")
    result = fn()
    return result, _status("VmHWM") - start


def _kept_bytes(insp) -> int:
    storages = {}
    tensors = [t for maps in insp.attentions.values() for t in (maps if isinstance(maps, list) else [maps])]
    tensors += [t for found in getattr(insp, "reduced", {}).values() for t in found.values()]
    for t in tensors:
        storage = t.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
    return sum(storages.values())


def _text(tokenizer, n: int, word: str) -> str:
    """A text of exactly ``n`` tokens (specials included)."""
    specials = len(tokenizer("x")["input_ids"]) - len(tokenizer("x", add_special_tokens=False)["input_ids"])
    text = " ".join([word] * (n - specials))
    got = len(tokenizer(text)["input_ids"])
    if got != n:
        raise SystemExit(f"could not build a {n}-token text ({got} tokens)")
    return text


def long_model(tokens: int):
    """A 6-layer x 12-head BERT of width 96 with positions for ``tokens`` tokens (random weights)."""
    import torch
    import transformers as tf

    from headscope.models.tiny import tiny_tokenizer

    tok = tiny_tokenizer("wordpiece")
    tok.model_max_length = tokens
    config = tf.BertConfig(vocab_size=len(tok), hidden_size=96, num_hidden_layers=6, num_attention_heads=12,
                           intermediate_size=384, max_position_embeddings=tokens, pad_token_id=tok.pad_token_id,
                           attn_implementation="sdpa")
    torch.manual_seed(0)
    return tf.BertForSequenceClassification(config).eval(), tok


def run_case(case: str, tokens: int) -> dict:
    import torch

    import headscope

    torch.set_num_threads(1)
    if case == "sentiment":
        loaded = headscope.load("headscope/sentiment")
        options: dict = {}
        word = "good"
    else:
        loaded = headscope.load(long_model(tokens))
        word = "the"
        options = {"reduce": headscope.capture.Reductions(rows=[0], topk=8)} if case == "long-reduce" else {}
    text = _text(loaded.tokenizer, tokens, word)
    inputs = loaded.tokenizer(text, return_tensors="pt")

    def plain():
        with torch.no_grad():
            return loaded.model(**inputs).logits

    stream_dir = Path(tempfile.mkdtemp(prefix="headscope-memory-"))
    if case == "long-stream":
        options = {"stream_to": stream_dir / "maps"}
    plain()
    if case == "sentiment":
        headscope.inspect(loaded, text[:200])  # warm-up of the capture path
    _, plain_peak = peak_of(plain)
    start = time.perf_counter()
    insp, capture_peak = peak_of(lambda: headscope.inspect(loaded, text, **options))
    seconds = time.perf_counter() - start
    layers, heads = loaded.model.config.num_hidden_layers, loaded.model.config.num_attention_heads
    full = layers * heads * tokens * tokens * 4
    disk = sum(p.stat().st_size for p in (stream_dir / "maps").glob("*")) if case == "long-stream" else 0
    if case == "long-stream":  # the shards read back equal the maps of an in-memory capture of one layer
        from headscope.capture import load_streamed

        back = load_streamed(stream_dir / "maps", "encoder", [0])["encoder"]
        check = headscope.inspect(loaded, text, layers=[0]).attentions["encoder"]
        assert torch.equal(back[0], check), "streamed layer 0 differs from the in-memory capture"
        for p in (stream_dir / "maps").glob("*"):
            p.unlink()
        (stream_dir / "maps").rmdir()
    stream_dir.rmdir()
    kept = _kept_bytes(insp)
    return {"case": case, "tokens": tokens, "kept": kept, "full_maps": full, "plain_peak": plain_peak,
            "capture_peak": capture_peak, "extra": capture_peak - plain_peak, "disk": disk, "seconds": seconds}


def subprocess_case(case: str, tokens: int) -> dict:
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, __file__, "--case", case, "--tokens", str(tokens)], env=env,
                         capture_output=True, text=True, check=False)
    if out.returncode:
        raise SystemExit(f"case {case} {tokens}: failed\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", choices=["sentiment", "long-reduce", "long-stream"], help=argparse.SUPPRESS)
    parser.add_argument("--tokens", type=int, default=512, help=argparse.SUPPRESS)
    parser.add_argument("--lengths", default="128,256,512", help="sentiment input lengths (tokens)")
    parser.add_argument("--long-tokens", type=int, default=4096, help="length of the long input (tokens)")
    args = parser.parse_args()
    if args.case:
        print(json.dumps(run_case(args.case, args.tokens)))
        return
    print("peak memory of headscope.inspect, each case in a fresh subprocess (VmHWM above the resting set)")
    print("extra = capture peak - plain forward peak (the model's own attention); goal extra/kept <= 1.3")
    print(f"{'case':<34} {'kept MiB':>9} {'peak MiB':>9} {'plain MiB':>10} {'extra MiB':>10} {'extra/kept':>11} "
          f"{'peak/kept':>10}")
    for n in [int(x) for x in args.lengths.split(",")]:
        r = subprocess_case("sentiment", n)
        print(f"{f'headscope/sentiment, {n} tokens':<34} {r['kept'] / MiB:>9.1f} {r['capture_peak'] / MiB:>9.1f} "
              f"{r['plain_peak'] / MiB:>10.1f} {r['extra'] / MiB:>10.1f} {r['extra'] / r['kept']:>11.2f} "
              f"{r['capture_peak'] / r['kept']:>10.2f}")
    n = args.long_tokens
    print(f"\n{n}-token input, 6 layers x 12 heads, width 96 (full float32 maps would be "
          f"{6 * 12 * n * n * 4 / MiB:,.0f} MiB)")
    print(f"{'capture':<34} {'kept MiB':>9} {'peak MiB':>9} {'over plain':>11} {'on disk MiB':>12} {'s':>6}")
    for case, label in (("long-reduce", "reductions (4 stats, top-8, CLS row)"), ("long-stream", "full maps streamed")):
        r = subprocess_case(case, n)
        print(f"{label:<34} {r['kept'] / MiB:>9.1f} {r['capture_peak'] / MiB:>9.0f} {r['extra'] / MiB:>11.0f} "
              f"{r['disk'] / MiB:>12,.0f} {r['seconds']:>6.1f}")


if __name__ == "__main__":
    main()
