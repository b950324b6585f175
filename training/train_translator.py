"""Train an English->French MarianMTModel from scratch on CPU and export it in fp16.

Needs ``python training/prepare_data.py`` first (data + tokenizer in ``<work>``).
Plain PyTorch loop: AdamW, linear warmup then inverse-sqrt decay, token-bucketed batches of
similar lengths, label smoothing 0.1, time-bounded (``--minutes``) and/or step-bounded
(``--steps``). Checkpoints go to ``<work>/<size>/ckpt.pt`` (``--resume`` continues one); at the
end the model is exported with ``model.half()`` + ``save_pretrained`` (safetensors) together
with the tokenizer and a ``headscope.json`` metadata file into ``--out``.

    python training/train_translator.py --size default --minutes 55
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from translator_lib import (DEFAULT_WORK, FOLDERS, SIZES, WEIGHTS, bleu, load_tokenizer,
                            marian_config, read_lines, token_batches, translate, update_meta)

DESCRIPTIONS = {
    "1x1": "English->French MarianMT, 1 encoder + 1 decoder layer, 1 head each: the closest "
           "transformer to a single RNN-era attention map.",
    "default": "English->French MarianMT, 3+3 layers, 4 heads (headscope's default model).",
    "6x8": "English->French MarianMT, 6+6 layers, 8 heads (fragmentation-at-scale study).",
}


def encode(tok, src: list[str], tgt: list[str], max_len: int):
    enc = tok(src, text_target=tgt, truncation=True, max_length=max_len)
    return enc["input_ids"], enc["labels"]


def collate(ids_src, ids_tgt, idx, pad_id):
    s = [ids_src[i] for i in idx]
    t = [ids_tgt[i] for i in idx]
    ls, lt = max(map(len, s)), max(map(len, t))
    src = torch.full((len(idx), ls), pad_id, dtype=torch.long)
    lab = torch.full((len(idx), lt), -100, dtype=torch.long)
    for k, (a, b) in enumerate(zip(s, t)):
        src[k, :len(a)] = torch.tensor(a)
        lab[k, :len(b)] = torch.tensor(b)
    dec_in = torch.full_like(lab, pad_id)
    dec_in[:, 1:] = lab[:, :-1].clamp(min=0)
    dec_in[:, 1:][lab[:, :-1] == -100] = pad_id
    return src, (src != pad_id).long(), dec_in, lab


def export(model, tok, out: Path, size: str, meta: dict) -> None:
    import copy

    out.mkdir(parents=True, exist_ok=True)
    half = copy.deepcopy(model).half().eval()
    half.generation_config.max_length = 128
    half.generation_config.num_beams = 1
    half.save_pretrained(str(out), safe_serialization=True)
    tok.save_pretrained(str(out))
    cfg = json.loads((out / "tokenizer_config.json").read_text())
    cfg["tokenizer_class"] = "PreTrainedTokenizerFast"
    (out / "tokenizer_config.json").write_text(json.dumps(cfg, indent=2, ensure_ascii=False) + "\n")
    update_meta(out, **meta)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", choices=sorted(SIZES), default="default")
    ap.add_argument("--minutes", type=float, default=55.0, help="wall-clock training budget")
    ap.add_argument("--steps", type=int, default=0, help="step budget (0: time-bounded only)")
    ap.add_argument("--work", type=Path, default=DEFAULT_WORK)
    ap.add_argument("--tokenizer", type=Path, default=None,
                    help="tokenizer folder (default <work>/tokenizer); give a shipped model's folder to share its vocabulary")
    ap.add_argument("--out", type=Path, default=None,
                    help="export folder (default src/headscope/models/weights/<en-fr...>)")
    ap.add_argument("--max-tokens", type=int, default=2000)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--warmup", type=int, default=300)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--eval-minutes", type=float, default=10.0)
    ap.add_argument("--eval-n", type=int, default=300, help="val sentences for periodic BLEU")
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=False,
                    help="bfloat16 autocast of the forward pass (slow when batch shapes vary: off by default)")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--no-export", action="store_true")
    ap.add_argument("--export-only", action="store_true",
                    help="export <work>/<size>/ckpt.pt (e.g. of a run still going) without training")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    out = args.out or WEIGHTS / FOLDERS[args.size]
    run_dir = args.work / args.size
    run_dir.mkdir(parents=True, exist_ok=True)

    from transformers import MarianMTModel

    tok = load_tokenizer(args.tokenizer or args.work / "tokenizer")
    pad_id, eos_id, unk_id = tok.pad_token_id, tok.eos_token_id, tok.unk_token_id
    cfg = marian_config(args.size, len(tok), pad_id, eos_id, unk_id)
    model = MarianMTModel(cfg)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"size={args.size} params={n_params:,}", flush=True)

    d = args.work / "data"
    src_ids, tgt_ids = encode(tok, read_lines(d / "train.en"), read_lines(d / "train.fr"), 128)
    lengths = [(len(a), len(b)) for a, b in zip(src_ids, tgt_ids)]
    val_en, val_fr = read_lines(d / "val.en")[: args.eval_n], read_lines(d / "val.fr")[: args.eval_n]
    print(f"train pairs={len(src_ids):,} tokens(src+tgt)={sum(a + b for a, b in lengths):,}", flush=True)

    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.98), eps=1e-9,
                            weight_decay=1e-4)

    def lr_at(step: int) -> float:
        step = max(step, 1)
        return args.lr * min(step / args.warmup, math.sqrt(args.warmup / step))

    step, epoch, elapsed_before, history = 0, 0, 0.0, []
    ckpt = run_dir / "ckpt.pt"
    if args.export_only and not ckpt.exists():
        raise SystemExit(f"no checkpoint at {ckpt}")
    if (args.resume or args.export_only) and ckpt.exists():
        state = torch.load(ckpt, map_location="cpu")
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        step, epoch = state["step"], state["epoch"]
        elapsed_before, history = state["elapsed"], state["history"]
        print(f"resumed at step {step} ({elapsed_before / 60:.1f} min)", flush=True)

    def save() -> None:
        torch.save(dict(model=model.state_dict(), opt=opt.state_dict(), step=step, epoch=epoch,
                        elapsed=elapsed_before + time.time() - t0, history=history), ckpt)

    def evaluate() -> float:
        model.eval()
        hyp = translate(model, tok, val_en, batch_size=100)
        model.train()
        return bleu(hyp, val_fr)

    t0 = time.time()
    budget = args.minutes * 60
    next_eval = args.eval_minutes * 60
    done = args.export_only
    tok_count, loss_acc, n_acc, t_log = 0, 0.0, 0, time.time()
    model.train()
    while not done:
        epoch += 1
        for idx in token_batches(lengths, args.max_tokens, rng):
            src, mask, dec_in, lab = collate(src_ids, tgt_ids, idx, pad_id)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
                logits = model(input_ids=src, attention_mask=mask, decoder_input_ids=dec_in).logits
            loss = F.cross_entropy(logits.float().view(-1, logits.size(-1)), lab.view(-1),
                                   ignore_index=-100, label_smoothing=0.1)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            step += 1
            for g in opt.param_groups:
                g["lr"] = lr_at(step)
            opt.step()
            ntok = int((lab != -100).sum())
            tok_count += ntok
            loss_acc += float(loss.detach()) * ntok
            n_acc += ntok
            now = time.time() - t0
            if step % 25 == 0:
                dt = time.time() - t_log
                print(f"step {step} ep {epoch} loss {loss_acc / n_acc:.3f} lr {lr_at(step):.2e} "
                      f"tgt_tok/s {tok_count / dt:.0f} elapsed {(elapsed_before + now) / 60:.1f}m",
                      flush=True)
                tok_count, loss_acc, n_acc, t_log = 0, 0.0, 0, time.time()
            if now >= next_eval:
                b = evaluate()
                history.append(dict(step=step, minutes=round((elapsed_before + now) / 60, 1),
                                    val_bleu=round(b, 2)))
                print(f"EVAL step {step} val BLEU({len(val_en)}) {b:.2f}", flush=True)
                save()
                next_eval = (time.time() - t0) + args.eval_minutes * 60
            if now >= budget or (args.steps and step >= args.steps):
                done = True
                break

    if args.export_only:
        wall = elapsed_before
    else:
        wall = elapsed_before + time.time() - t0
        b = evaluate()
        history.append(dict(step=step, minutes=round(wall / 60, 1), val_bleu=round(b, 2)))
        print(f"FINAL step {step} epochs {epoch} wall {wall / 60:.1f} min val BLEU({len(val_en)}) "
              f"{b:.2f}", flush=True)
        save()
    if args.no_export:
        return
    model.eval()
    sizes = dict(encoder_layers=cfg.encoder_layers, decoder_layers=cfg.decoder_layers,
                 heads=cfg.encoder_attention_heads, d_model=cfg.d_model,
                 ffn_dim=cfg.encoder_ffn_dim, vocab_size=cfg.vocab_size, params=n_params)
    train_cmd = f"python training/train_translator.py --size {args.size} --minutes {args.minutes:g}"
    if args.threads != 2:
        train_cmd += f" --threads {args.threads}"
    if args.export_only:
        train_cmd = (f"python training/train_translator.py --size {args.size} --threads {args.threads}"
                     f" (checkpoint after {wall / 60:.0f} min, step {step}, exported with --export-only)")
    stats = json.loads((d / "stats.json").read_text()) if (d / "stats.json").exists() else {}
    export(model, tok, out, args.size, dict(
        name=f"headscope/{FOLDERS[args.size]}",
        description=DESCRIPTIONS[args.size],
        task="translation",
        data=(f"multi30k train ({stats.get('multi30k', '?'):,} caption pairs) + Debian gettext en-fr "
              f"messages ({stats.get('gettext', '?'):,} pairs), plus lowercased "
              f"({stats.get('lowercased', '?'):,}) and lowercased punctuation-separated "
              f"({stats.get('punct_separated', '?'):,}) copies of random pairs"),
        data_counts=stats,
        tokenizer="Unigram 8k shared en/fr (HF tokenizers), Metaspace whitespace pre-tokenizer",
        sizes=sizes,
        training=dict(command=train_cmd,
                      wall_minutes=round(wall / 60, 1), steps=step, epochs=epoch,
                      threads=args.threads, bf16=args.bf16, max_tokens=args.max_tokens, lr=args.lr,
                      warmup=args.warmup, label_smoothing=0.1, val_history=history),
    ))
    print(f"exported to {out}", flush=True)


if __name__ == "__main__":
    main()
