"""The fragmentation-at-scale study: one map (1x1) against many (3x4, 6x8).

For each shipped translator of the family it measures, on the same data:

* alignment (hansards-en-fr gold, forced references): best-head AER, all-heads-mean AER,
  rollout AER, and how often the corpus-best head is also the best head sentence by sentence;
* disagreement between cross-attention heads (multi30k test_2016_flickr, forced references):
  mean pairwise JS divergence and the effective number of distinct maps;
* faithfulness: Kendall τ between leave-one-out importance and the all-heads mean, the best
  head and rollout, row by row (Jain & Wallace 2019).

Writes a table (CSV, JSON, Markdown) and a figure to ``--out``.

    python examples/fragmentation_at_scale.py --out docs/fragmentation
"""

from __future__ import annotations

import argparse
import gzip
import json
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

import headscope  # noqa: E402
from headscope.aggregate import reading_map  # noqa: E402
from headscope.align import aer, evaluate  # noqa: E402
from headscope.faithful import token_importance  # noqa: E402
from headscope.fragment import best_head_stability, kind_fragmentation, row_kendall  # noqa: E402
from headscope.readings import Head, HeadsMean, Rollout  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FAMILY = ("headscope/en-fr-1x1", "headscope/en-fr", "headscope/en-fr-6x8")


def multi30k(data: Path, n: int) -> tuple[list[str], list[str]]:
    """The first ``n`` test_2016_flickr pairs (never used in training)."""
    read = lambda lang: gzip.open(data / f"test_2016_flickr.{lang}.gz", "rt", encoding="utf-8").read().splitlines()
    return read("en")[:n], read("fr")[:n]


def per_sentence_head_aer(report) -> np.ndarray:
    """``[sentences, layers, heads]`` AER of every head on every sentence (NaN where undefined)."""
    conv = report.convention
    out = np.full((report.n_sentences, len(report.layers), report.n_heads), np.nan)
    for k, row in enumerate(report.gold):
        sure = {tuple(x) for x in row["sure"]}
        possible = {tuple(x) for x in row["possible"]}
        if not sure:
            continue
        for li, layer in enumerate(report.layers):
            for h in range(report.n_heads):
                pred = report.predicted_links(k, Head("cross", layer, h), conv)
                out[k, li, h] = aer([pred], [sure], [possible]).aer
    return out


def study(name: str, args: argparse.Namespace) -> dict:
    """One row of the table: alignment, head disagreement and τ with leave-one-out for model ``name``."""
    t0 = time.perf_counter()
    loaded = headscope.load(name)
    cfg = loaded.model.config
    row: dict = {"model": name, "encoder_layers": cfg.encoder_layers, "decoder_layers": cfg.decoder_layers,
                 "heads": cfg.decoder_attention_heads, "cross_heads": cfg.decoder_layers * cfg.decoder_attention_heads}

    report = evaluate(loaded, "hansards-en-fr", convention=args.convention, limit=args.hansards, progress=False)
    best = Head("cross", *report.best_head)
    row["best_head"] = best.name
    row["best_head_aer"] = report.best_aer
    row["all_mean_aer"] = report.score(HeadsMean("cross"))["aer"]
    row["rollout_aer"] = report.score(Rollout("cross"))["aer"] if Rollout("cross") in report.readings else float("nan")
    share, spread = best_head_stability(per_sentence_head_aer(report))
    li = report.layers.index(report.best_head[0])
    row["best_head_win_share"] = float(share[li, report.best_head[1]])
    row["heads_ever_best"] = int((share > 0).sum())
    row["per_head_aer_spread"] = float(np.nanstd(report.aer))

    sources, refs = multi30k(args.data, args.multi30k)
    insps = headscope.inspect(loaded, sources, target=refs, batch_size=16)
    js, eff, sink, aligned, tau_mean, tau_best, tau_roll = [], [], [], [], [], [], []
    for insp in insps:
        cross = insp.kind_maps("cross")
        frag = kind_fragmentation(cross, "cross", insp.key_tokens("cross"), insp.layer_indices("cross"))
        js.append(frag.mean_js)
        eff.append(frag.effective_maps)
        sink.append(float(frag.sink_mass.mean()))
        aligned.append(float((frag.labels == "alignment-like").mean()))
        loo = token_importance(insp, "loo").scores
        keep = np.array([w is not None for w in insp.source_word_ids])
        tau_mean.append(row_kendall(reading_map(insp, HeadsMean("cross")).numpy()[:, keep], loo[:, keep]))
        tau_best.append(row_kendall(reading_map(insp, best).numpy()[:, keep], loo[:, keep]))
        tau_roll.append(row_kendall(reading_map(insp, Rollout("cross")).numpy()[:, keep], loo[:, keep]))
    row.update(mean_js=float(np.mean(js)), effective_maps=float(np.mean(eff)), sink_mass=float(np.mean(sink)),
               alignment_like_share=float(np.mean(aligned)),
               tau_loo_all_mean=float(np.mean(tau_mean)), tau_loo_best_head=float(np.mean(tau_best)),
               tau_loo_rollout=float(np.mean(tau_roll)), seconds=round(time.perf_counter() - t0, 1))
    print(f"  {name}: done in {row['seconds']} s", flush=True)
    return row


COLUMNS = [
    ("model", "model", "{}"), ("cross_heads", "cross heads", "{}"), ("best_head", "best head", "{}"),
    ("best_head_aer", "best-head AER", "{:.3f}"), ("all_mean_aer", "all-heads-mean AER", "{:.3f}"),
    ("rollout_aer", "rollout AER", "{:.3f}"), ("best_head_win_share", "best head wins (share of sentences)", "{:.2f}"),
    ("heads_ever_best", "heads ever best", "{}"), ("mean_js", "mean head JS", "{:.3f}"),
    ("effective_maps", "effective maps", "{:.2f}"), ("sink_mass", "mean sink mass", "{:.2f}"),
    ("alignment_like_share", "alignment-like heads", "{:.0%}"), ("tau_loo_all_mean", "τ(LOO, all-heads mean)", "{:+.3f}"),
    ("tau_loo_best_head", "τ(LOO, best head)", "{:+.3f}"), ("tau_loo_rollout", "τ(LOO, rollout)", "{:+.3f}"),
]


def markdown(rows: list[dict]) -> str:
    """The table of ``rows`` in Markdown, columns as in ``COLUMNS``."""
    head = "| " + " | ".join(c[1] for c in COLUMNS) + " |"
    sep = "|" + "|".join("---" for _ in COLUMNS) + "|"
    body = ["| " + " | ".join(fmt.format(r[key]) for key, _, fmt in COLUMNS) + " |" for r in rows]
    return "\n".join([head, sep, *body])


def figure(rows: list[dict], path: Path) -> None:
    """Three panels by model size: AER of the readings, distinct maps, τ with leave-one-out."""
    names = [r["model"].split("/")[-1] for r in rows]
    x = np.arange(len(rows))
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for key, label in (("best_head_aer", "best head"), ("all_mean_aer", "all-heads mean"), ("rollout_aer", "rollout")):
        axes[0].plot(x, [r[key] for r in rows], marker="o", label=label)
    axes[0].set_title("AER on hansards-en-fr (lower is better)")
    axes[0].set_ylim(0, 1)
    axes[0].legend()
    axes[1].bar(x, [r["effective_maps"] for r in rows], color="tab:gray", label="effective maps")
    axes[1].plot(x, [r["cross_heads"] for r in rows], "k_", markersize=30, label="cross heads")
    axes[1].set_title("Distinct cross-attention maps")
    axes[1].legend()
    for key, label in (("tau_loo_all_mean", "all-heads mean"), ("tau_loo_best_head", "best head"),
                       ("tau_loo_rollout", "rollout")):
        axes[2].plot(x, [r[key] for r in rows], marker="o", label=label)
    axes[2].axhline(0, color="k", lw=0.5)
    axes[2].set_title("Kendall τ with leave-one-out")
    axes[2].legend()
    for ax in axes:
        ax.set_xticks(x, names)
    fig.tight_layout()
    fig.savefig(path, dpi=110, metadata={"Software": None})
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(FAMILY))
    parser.add_argument("--hansards", type=int, default=None, help="gold sentences (default: all 447)")
    parser.add_argument("--multi30k", type=int, default=100, help="multi30k test sentences for JS/τ")
    parser.add_argument("--convention", default="naive", choices=("naive", "shift"))
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "multi30k")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "fragmentation")
    args = parser.parse_args()
    torch.manual_seed(0)
    shipped = {m.name for m in headscope.list_models()}
    rows = []
    for name in args.models:
        if name.startswith("headscope/") and name not in shipped:
            print(f"  {name}: not shipped; skipped (training/README.md says how to reproduce it)")
            continue
        rows.append(study(name, args))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "scale.json").write_text(json.dumps(rows, indent=1), encoding="utf-8")
    with open(args.out / "scale.csv", "w", encoding="utf-8") as f:
        f.write(",".join(k for k, _, _ in COLUMNS) + "\n")
        f.writelines(",".join(str(r[k]) for k, _, _ in COLUMNS) + "\n" for r in rows)
    table = markdown(rows)
    (args.out / "scale.md").write_text(table + "\n", encoding="utf-8")
    figure(rows, args.out / "scale.png")
    print(table)


if __name__ == "__main__":
    main()
