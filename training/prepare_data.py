"""Prepare the English->French training data and train the shared subword tokenizer.

Reads multi30k ``train`` / ``val`` and (a random 12k subset of) the gettext en-fr catalog
messages from ``--data``
(default ``../shared/data`` next to the repository), never the multi30k test sets nor the
Hansards alignment set. Adds robustness copies: a lowercased copy of ``--lower-frac`` of the
training pairs and a lowercased, punctuation-separated (Hansards-style) copy of
``--tok-frac`` of them. Writes ``<work>/data/{train,val}.{en,fr}`` and a fast tokenizer
(Unigram, ~8k shared vocabulary, Metaspace pre-tokenizer splitting only on whitespace,
``</s>`` appended to every sequence) to ``<work>/tokenizer``.

    python training/prepare_data.py
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

from translator_lib import (DEFAULT_DATA, DEFAULT_WORK, EOS, PAD, UNK, read_gettext,
                            read_multi30k, separate_punctuation, write_lines)


def build_pairs(data: Path, lower_frac: float, tok_frac: float, seed: int, gettext_max: int):
    rng = random.Random(seed)
    m_en, m_fr = read_multi30k(data, "train")
    g_en, g_fr = read_gettext(data)
    gettext = list(zip(g_en, g_fr))
    if 0 < gettext_max < len(gettext):
        gettext = rng.sample(gettext, gettext_max)
    base = list(zip(m_en, m_fr)) + gettext
    base = [(e, f) for e, f in base if e and f]
    extra = []
    for e, f in rng.sample(base, int(lower_frac * len(base))):
        extra.append((e.lower(), f.lower()))
    for e, f in rng.sample(base, int(tok_frac * len(base))):
        extra.append((separate_punctuation(e).lower(), separate_punctuation(f).lower()))
    pairs = base + extra
    rng.shuffle(pairs)
    stats = dict(multi30k=len(m_en), gettext=len(gettext), lowercased=int(lower_frac * len(base)),
                 punct_separated=int(tok_frac * len(base)), total=len(pairs))
    return pairs, stats


def train_tokenizer(texts: list[str], vocab_size: int, out: Path) -> None:
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.NFKC()
    # Metaspace splits on whitespace only, so every subword belongs to one whitespace word
    # and the fast tokenizer's word_ids() maps subwords back to words.
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    trainer = trainers.UnigramTrainer(vocab_size=vocab_size, special_tokens=[PAD, EOS, UNK],
                                      unk_token=UNK, max_piece_length=16, shrinking_factor=0.75)
    tok.train_from_iterator(texts, trainer=trainer)
    eos_id = tok.token_to_id(EOS)
    tok.post_processor = processors.TemplateProcessing(
        single=f"$A {EOS}", pair=f"$A $B {EOS}", special_tokens=[(EOS, eos_id)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token=PAD, eos_token=EOS,
                                   unk_token=UNK, model_max_length=256)
    out.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(str(out))
    # make the folder self-describing for AutoTokenizer
    cfg_path = out / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["tokenizer_class"] = "PreTrainedTokenizerFast"
    cfg_path.write_text(json.dumps(cfg, indent=2, ensure_ascii=False) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--work", type=Path, default=DEFAULT_WORK)
    ap.add_argument("--vocab-size", type=int, default=8000)
    ap.add_argument("--lower-frac", type=float, default=0.25)
    ap.add_argument("--tok-frac", type=float, default=0.15)
    ap.add_argument("--gettext-max", type=int, default=12000,
                    help="random subset of the gettext pairs (0: all); multi30k stays the majority")
    ap.add_argument("--seed", type=int, default=13)
    args = ap.parse_args()

    pairs, stats = build_pairs(args.data, args.lower_frac, args.tok_frac, args.seed,
                               args.gettext_max)
    d = args.work / "data"
    write_lines(d / "train.en", [e for e, _ in pairs])
    write_lines(d / "train.fr", [f for _, f in pairs])
    v_en, v_fr = read_multi30k(args.data, "val")
    write_lines(d / "val.en", v_en)
    write_lines(d / "val.fr", v_fr)
    (d / "stats.json").write_text(json.dumps(stats, indent=2) + "\n")
    print("pairs:", stats)

    texts = [e for e, _ in pairs] + [f for _, f in pairs]
    train_tokenizer(texts, args.vocab_size, args.work / "tokenizer")

    from translator_lib import load_tokenizer

    tok = load_tokenizer(args.work / "tokenizer")
    enc = tok("A man in a red shirt.", text_target="Un homme en chemise rouge.")
    print("vocab:", len(tok), type(tok).__name__)
    print("input:", tok.convert_ids_to_tokens(enc["input_ids"]), "word_ids:", enc.word_ids())
    print("labels:", tok.convert_ids_to_tokens(enc["labels"]))
    print("decode:", tok.decode(enc["labels"], skip_special_tokens=True))


if __name__ == "__main__":
    main()
