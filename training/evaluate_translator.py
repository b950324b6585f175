"""BLEU of an exported English->French translator on multi30k test_2016_flickr.

Loads the exported folder with ``AutoModelForSeq2SeqLM.from_pretrained(folder, dtype=float32)``
(the fp16-stored weights cast back to float32, exactly as headscope loads them), translates the
1,000 test sentences with ``model.generate`` (greedy by default) and prints sacrebleu's
detokenised corpus BLEU. ``--write-meta`` records the score in the folder's ``headscope.json``.

    python training/evaluate_translator.py src/headscope/models/weights/en-fr
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from translator_lib import DEFAULT_DATA, bleu, read_multi30k, translate, update_meta


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--split", default="test_2016_flickr")
    ap.add_argument("--beams", type=int, default=1)
    ap.add_argument("--limit", type=int, default=0, help="first N sentences only (0: all)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--dtype", choices=["float32", "float16"], default="float32")
    ap.add_argument("--write-meta", action="store_true")
    ap.add_argument("--show", type=int, default=5, help="print the first N translations")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    model = AutoModelForSeq2SeqLM.from_pretrained(str(args.folder), dtype=getattr(torch, args.dtype))
    tok = AutoTokenizer.from_pretrained(str(args.folder))
    src, ref = read_multi30k(args.data, args.split)
    if args.limit:
        src, ref = src[: args.limit], ref[: args.limit]
    t0 = time.time()
    hyp = translate(model, tok, src, num_beams=args.beams)
    score = bleu(hyp, ref)
    for s, h, r in list(zip(src, hyp, ref))[: args.show]:
        print(f"EN  {s}\nOUT {h}\nREF {r}\n")
    decoding = "greedy" if args.beams == 1 else f"beam {args.beams}"
    print(f"BLEU {score:.2f} on multi30k {args.split} en->fr ({len(src)} sentences, {decoding}, "
          f"{args.dtype}, {time.time() - t0:.0f}s)")
    if args.write_meta:
        cmd = f"python training/evaluate_translator.py {args.folder}"
        if args.beams != 1:
            cmd += f" --beams {args.beams}"
        if args.limit:
            cmd += f" --limit {args.limit}"
        update_meta(args.folder, bleu=round(score, 2), bleu_test_set=f"multi30k {args.split} ({len(src)} sentences)",
                    bleu_decoding=decoding, evaluation_command=cmd,
                    quality=f"BLEU {score:.1f} (multi30k {args.split}, {decoding})")


if __name__ == "__main__":
    main()
