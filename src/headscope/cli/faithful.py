"""``headscope faithful MODEL TEXT_OR_FILE [--out DIR]``: is the attention faithful on these inputs?

Prints per-head ablation effects (with the confidence / entropy / gradient proxies), Kendall tau
between attention and gradient / leave-one-out rankings, and the fraction of tokens erased before
the decision flips under each ranking; ``--out`` writes ``faithful.json``, ``heads.csv`` and
``examples.csv``. A file argument is read as one text per line.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError


def register(subparsers: Any) -> None:
    """Add the ``faithful`` verb."""
    p = subparsers.add_parser("faithful", help="head ablation, attention vs gradient/LOO, erasure flips")
    p.add_argument("model", help="model name or folder (e.g. headscope/sentiment, headscope/en-fr)")
    p.add_argument("text", metavar="TEXT_OR_FILE", help="a text, or a file with one text per line")
    p.add_argument("--out", help="folder for faithful.json, heads.csv and examples.csv")
    p.add_argument("--limit", type=int, default=None, help="use only the first N lines of a file")
    p.add_argument("--top", type=int, default=12, help="heads to show in the ablation table (default 12)")
    p.add_argument("--no-ablation", action="store_true", help="skip head ablation")
    p.add_argument("--batch-size", type=int, default=64, help="rows per forward pass in head ablation")
    p.set_defaults(handler=run)


def read_texts(arg: str, limit: int | None = None) -> list[str]:
    """One text, or the non-empty lines of a file."""
    if os.path.isfile(arg):
        lines = [ln.strip() for ln in Path(arg).read_text(encoding="utf-8").splitlines()]
        texts = [ln for ln in lines if ln]
        if not texts:
            raise InputError(f"{arg} has no non-empty lines; put one text per line")
    else:
        texts = [arg]
    return texts[:limit] if limit else texts


def _mean(values: list[float]) -> float:
    arr = np.asarray(values, dtype=float)
    arr = arr[~np.isnan(arr)]
    return float(arr.mean()) if len(arr) else float("nan")


def summarise(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Dataset-level summary of :func:`~headscope.faithful.metrics.compare_rankings` results."""
    from ..faithful.metrics import tau_summary

    def flat(x: Any) -> list[Any]:
        return x if isinstance(x, list) else [x]

    taus = {name: tau_summary([t for r in results for t in flat(r["tau"][name])]) for name in results[0]["tau"]}
    flips = {}
    for name in results[0]["flip"]:
        items = [f for r in results for f in flat(r["flip"][name])]
        flipped = [f["fraction"] for f in items if f["flipped"]]
        flips[name] = {"n": len(items), "flipped": float(np.mean([f["flipped"] for f in items])) if items else 0.0,
                       "mean_fraction_when_flipped": _mean(flipped),
                       "median_fraction_when_flipped": float(np.median(flipped)) if flipped else float("nan"),
                       "mean_fraction_all": _mean([f["fraction"] for f in items])}
    eraser = {}
    if results[0]["eraser"]:
        for name in results[0]["eraser"]:
            eraser[name] = {k: _mean([r["eraser"][name][k] for r in results]) for k in ("comprehensiveness", "sufficiency")}
    return {"tau": taus, "flip": flips, "eraser": eraser}


def format_summary(summary: dict[str, Any]) -> str:
    lines = ["Kendall tau-b between attention and other explanations (content tokens; Jain & Wallace 2019):",
             f"  {'vs':<14}{'n':>6}{'mean':>8}{'median':>8}{'q25':>8}{'q75':>8}{'<0':>7}"]
    for name, s in summary["tau"].items():
        if s["n"]:
            lines.append(f"  {name:<14}{s['n']:>6}{s['mean']:>8.3f}{s['median']:>8.3f}{s['q25']:>8.3f}"
                         f"{s['q75']:>8.3f}{s['frac_below_0']:>7.2f}")
    lines.append("Erasure until the decision flips (Serrano & Smith 2019):")
    lines.append(f"  {'ranking':<14}{'n':>6}{'flipped':>9}{'frac|flip':>11}{'median':>8}")
    for name, f in summary["flip"].items():
        lines.append(f"  {name:<14}{f['n']:>6}{f['flipped']:>9.2f}{f['mean_fraction_when_flipped']:>11.3f}"
                     f"{f['median_fraction_when_flipped']:>8.3f}")
    if summary["eraser"]:
        lines.append("ERASER AOPC over top-{1,5,10,20,50}% (DeYoung et al. 2020):")
        for name, e in summary["eraser"].items():
            lines.append(f"  {name:<14}comprehensiveness {e['comprehensiveness']:+.4f}  "
                         f"sufficiency {e['sufficiency']:+.4f}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from ..run import inspect
    from ..models.loading import load
    from ..faithful._common import from_inspection
    from ..faithful.ablation import head_ablation
    from ..faithful.metrics import compare_rankings

    texts = read_texts(args.text, args.limit)
    loaded = load(args.model)
    insps = inspect(loaded, texts)
    insps = insps if isinstance(insps, list) else [insps]
    examples = [from_inspection(i) for i in insps]
    ablation = None
    if not args.no_ablation:
        ablation = head_ablation(examples, batch_size=args.batch_size, progress=len(examples) > 1)
        print(ablation.table(args.top))
        print()
    results = [compare_rankings(ex) for ex in tqdm(examples, desc="explanations", unit="text",
                                                     disable=len(examples) == 1)]
    summary = summarise(results)
    print(f"{loaded.name} ({loaded.family}), {len(examples)} text(s)")
    print(format_summary(summary))
    if args.out:
        write(Path(args.out), loaded.name, texts, insps, ablation, results, summary)
        print(f"wrote faithful.json, heads.csv, examples.csv to {args.out}/")
    return 0


def write(folder: Path, model: str, texts: list[str], insps: list[Any], ablation: Any,
          results: list[dict[str, Any]], summary: dict[str, Any]) -> None:
    """Write the JSON report and the two CSV tables."""
    folder.mkdir(parents=True, exist_ok=True)
    report = {"model": model, "texts": texts, "summary": summary, "examples": results,
              "predictions": [i.prediction for i in insps],
              "ablation": None if ablation is None else ablation.to_dict()}
    (folder / "faithful.json").write_text(json.dumps(report, indent=1, ensure_ascii=False, default=float),
                                          encoding="utf-8")
    if ablation is not None:
        with open(folder / "heads.csv", "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            proxies = list(ablation.proxies)
            flat_p = {p: np.concatenate([v.ravel() for v in ablation.proxies[p].values()]) for p in proxies}
            measures = list(ablation.per_example)
            w.writerow(["head", *measures, *proxies])
            for g, cfg in enumerate(ablation.configs):
                w.writerow([",".join(cfg), *[f"{ablation.per_example[m][g].mean():.6g}" for m in measures],
                            *[f"{flat_p[p][g]:.6g}" for p in proxies]])
    with open(folder / "examples.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        taus, flips = list(results[0]["tau"]), list(results[0]["flip"])
        w.writerow(["example", "row", *[f"tau_{t}" for t in taus], *[f"flip_fraction_{f}" for f in flips]])
        for i, r in enumerate(results):
            for j, row in enumerate(r["rows"]):
                def pick(x: Any) -> Any:
                    return x[j] if isinstance(x, list) else x

                w.writerow([i, row, *[f"{pick(r['tau'][t]):.4f}" for t in taus],
                            *[f"{pick(r['flip'][f])['fraction']:.4f}" for f in flips]])
