"""Shared helpers of the translator scripts (data, tokenizer, model config, batching).

Imported by ``prepare_data.py``, ``train_translator.py`` and ``evaluate_translator.py``;
run those scripts from anywhere, e.g. ``python training/train_translator.py``.
"""

from __future__ import annotations

import gzip
import json
import random
import re
from pathlib import Path
from typing import Iterator

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data"
DEFAULT_WORK = REPO / "training" / "work"
WEIGHTS = REPO / "src" / "headscope" / "models" / "weights"

PAD, EOS, UNK = "<pad>", "</s>", "<unk>"

# name -> (folder name, MarianConfig overrides)
SIZES: dict[str, dict] = {
    "1x1": dict(encoder_layers=1, decoder_layers=1, encoder_attention_heads=1,
                decoder_attention_heads=1, encoder_ffn_dim=1024, decoder_ffn_dim=1024),
    "default": dict(encoder_layers=3, decoder_layers=3, encoder_attention_heads=4,
                    decoder_attention_heads=4, encoder_ffn_dim=1024, decoder_ffn_dim=1024),
    "6x8": dict(encoder_layers=6, decoder_layers=6, encoder_attention_heads=8,
                decoder_attention_heads=8, encoder_ffn_dim=1024, decoder_ffn_dim=1024),
}
FOLDERS = {"1x1": "en-fr-1x1", "default": "en-fr", "6x8": "en-fr-6x8"}


def read_lines(path: Path) -> list[str]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        return [line.rstrip("\n").strip() for line in f]


def read_multi30k(data: Path, split: str) -> tuple[list[str], list[str]]:
    d = data / "multi30k"
    return read_lines(d / f"{split}.en.gz"), read_lines(d / f"{split}.fr.gz")


def read_gettext(data: Path) -> tuple[list[str], list[str]]:
    en, fr = [], []
    for line in read_lines(data / "gettext" / "en-fr.tsv"):
        parts = line.split("\t")
        if len(parts) >= 2 and parts[0].strip() and parts[1].strip():
            en.append(" ".join(parts[0].split()))
            fr.append(" ".join(parts[1].split()))
    return en, fr


_PUNCT = re.compile(r"([.,!?;:()\"«»…]|(?<=\w)-(?=\w))")


def separate_punctuation(text: str) -> str:
    """Hansards-style pre-tokenisation: punctuation and inner hyphens become separate words."""
    text = text.replace("’", "'")
    text = _PUNCT.sub(r" \1 ", text)
    text = re.sub(r"(\w')(?=\w)", r"\1 ", text)  # l'homme -> l' homme (French elision)
    return " ".join(text.split())


def write_lines(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def load_tokenizer(folder: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(folder))


def marian_config(size: str, vocab_size: int, pad_id: int, eos_id: int, unk_id: int):
    from transformers import MarianConfig

    return MarianConfig(
        vocab_size=vocab_size,
        decoder_vocab_size=vocab_size,
        d_model=256,
        max_position_embeddings=256,
        scale_embedding=True,
        share_encoder_decoder_embeddings=True,
        tie_word_embeddings=True,
        dropout=0.1,
        attention_dropout=0.1,
        activation_dropout=0.0,
        activation_function="gelu",
        pad_token_id=pad_id,
        eos_token_id=eos_id,
        decoder_start_token_id=pad_id,
        forced_eos_token_id=eos_id,
        **SIZES[size],
    )


def token_batches(lengths: list[tuple[int, int]], max_tokens: int, rng: random.Random,
                  max_sentences: int = 256) -> list[list[int]]:
    """Group example indices into batches of similar length holding about ``max_tokens`` tokens."""
    order = sorted(range(len(lengths)), key=lambda i: (max(lengths[i]), rng.random()))
    batches, cur, cur_max = [], [], 0
    for i in order:
        m = max(lengths[i])
        if cur and (max(cur_max, m) * (len(cur) + 1) > max_tokens or len(cur) >= max_sentences):
            batches.append(cur)
            cur, cur_max = [], 0
        cur.append(i)
        cur_max = max(cur_max, m)
    if cur:
        batches.append(cur)
    rng.shuffle(batches)
    return batches


def chunks(seq: list, n: int) -> Iterator[list]:
    for i in range(0, len(seq), n):
        yield seq[i:i + n]


def translate(model, tok, sentences: list[str], batch_size: int = 64, num_beams: int = 1,
              max_new_tokens: int = 128) -> list[str]:
    """Translate sentences with ``model.generate`` (length-sorted batches), in input order."""
    import torch

    order = sorted(range(len(sentences)), key=lambda i: len(sentences[i]))
    out: list[str] = [""] * len(sentences)
    model.eval()
    with torch.inference_mode():
        for idx in chunks(order, batch_size):
            enc = tok([sentences[i] for i in idx], return_tensors="pt", padding=True,
                      truncation=True, max_length=256)
            gen = model.generate(**enc, num_beams=num_beams, max_new_tokens=max_new_tokens,
                                 do_sample=False)
            for i, text in zip(idx, tok.batch_decode(gen, skip_special_tokens=True)):
                out[i] = text.strip()
    return out


def bleu(hyps: list[str], refs: list[str]) -> float:
    import sacrebleu

    return float(sacrebleu.corpus_bleu(hyps, [refs]).score)


def update_meta(folder: Path, **fields) -> dict:
    path = folder / "headscope.json"
    meta = json.loads(path.read_text()) if path.exists() else {}
    meta.update(fields)
    path.write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n")
    return meta
