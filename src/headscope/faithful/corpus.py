"""A faithfulness report over a corpus of texts, computed a chunk at a time and resumable.

:func:`faithfulness_corpus` cuts the texts into chunks of ``chunk_size``, computes
:func:`~headscope.faithful.faithfulness_report` on each (head ablation on the texts among the
first ``ablation_texts``, attention-vs-explanation comparisons on all) and pools them into one
:class:`~headscope.faithful.FaithfulnessReport`. With ``work_dir`` each finished chunk is saved
there at once (:mod:`headscope.runs`), and the same call after an interruption computes only the
chunks not saved yet: the result equals that of an uninterrupted call. ``headscope faithful MODEL
FILE`` runs it.

Pooling: the comparisons and the per-example ablation effects are concatenated (so the effect of
a head is its mean over all ablated texts, as in one call); the attention proxies (confidence,
entropy, gradient) are the means of the chunks' proxies weighted by their texts, and the rank
correlations are computed again on the pooled numbers.

>>> report = faithfulness_corpus("headscope/sentiment", texts, work_dir="run.partial")   # doctest: +SKIP
>>> report.save("faithful-out")                                                      # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..distributed import check_processes, open_work, run_chunks
from ..errors import InputError
from ..models.loading import load
from ..readings import Site
from ..runs import fingerprint, iter_pieces, model_fingerprint, text_list, unreadable_json
from .ablation import AblationResult, rank_correlations
from .comparison import summarise
from .report import FaithfulnessReport, faithfulness_report

__all__ = ["faithfulness_corpus", "merge_reports"]

_PIECE = "json"


def faithfulness_corpus(model: Any, texts: Sequence[str], *, chunk_size: int = 16, work_dir: str | os.PathLike | None = None,
                        ablation_texts: int | None = None, batch_size: int = 64,
                        progress: bool = False, processes: int | None = None) -> FaithfulnessReport:
    """Head ablation and attention-vs-explanation comparisons of ``model`` on ``texts``, a chunk at a time.

    Parameters
    ----------
    model : a shipped name, folder, ``(model, tokenizer)`` or :class:`~headscope.LoadedModel`.
    texts : the texts (a list of non-empty strings).
    chunk_size : texts per chunk (and per saved piece). The numbers depend on it (padding within a
        batch changes the last digits), so a resumed run must use the same one.
    work_dir : folder to keep finished chunks in; a call with the same arguments and folder after an
        interruption continues where it stopped (see :mod:`headscope.runs`). Delete it once the
        report is saved (``headscope faithful`` does).
    ablation_texts : ablate heads on the first ``ablation_texts`` texts (default all; 0: none).
    batch_size : rows per forward pass of the head ablation.
    progress : show a progress bar over chunks.
    processes : compute the chunks in this many processes with ``accelerate`` (one per GPU where
        there are GPUs), or leave it out in a script started by ``accelerate launch``, whose
        processes then share the chunks (:mod:`headscope.distributed`). Chunks are the unit shared
        out, so the report equals a one-process report exactly.

    Returns
    -------
    FaithfulnessReport
    """
    texts = text_list(texts, "texts", "faithfulness_report(model, text)")
    for name, value in (("chunk_size", chunk_size), ("batch_size", batch_size)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise InputError(f"{name}={value!r}: pass a positive whole number")
    if ablation_texts is not None and (not isinstance(ablation_texts, int) or isinstance(ablation_texts, bool)
                                       or ablation_texts < 0):
        raise InputError(f"ablation_texts={ablation_texts!r}: pass a number of texts (0: no ablation) or None (all)")
    check_processes(processes)
    loaded = load(model)
    pieces = list(iter_pieces(len(texts), chunk_size))
    work = None
    if work_dir is not None:
        options = {"what": "headscope.faithful.faithfulness_corpus", "model": loaded.name,
                   "weights": model_fingerprint(loaded.model), "texts": fingerprint(texts), "n_texts": len(texts),
                   "chunk_size": chunk_size, "ablation_texts": ablation_texts, "batch_size": batch_size}
        work = open_work(work_dir, options, total=len(pieces))

    def compute(index: int) -> bytes:
        _, start, stop = pieces[index]
        n_ablate = stop - start if ablation_texts is None else max(0, min(stop, ablation_texts) - start)
        part = faithfulness_report(loaded, texts[start:stop], ablation_texts=n_ablate, batch_size=batch_size)
        return json.dumps(part.to_dict(), ensure_ascii=False).encode("utf-8")

    # every chunk, fresh or saved, goes through JSON: resumed == uninterrupted == shared out
    found = run_chunks(loaded.model, len(pieces), compute, suffix=_PIECE, work=work, processes=processes,
                       check=unreadable_json(FaithfulnessReport.from_dict), progress=progress, desc=f"faithful {loaded.name}")
    return merge_reports([FaithfulnessReport.from_dict(json.loads(data.decode("utf-8"))) for data in found])


def merge_reports(parts: Sequence[FaithfulnessReport]) -> FaithfulnessReport:
    """One report of the texts of ``parts`` (reports of consecutive chunks of one model), in order.

    >>> merge_reports([faithfulness_report(m, texts[:8]), faithfulness_report(m, texts[8:])])  # doctest: +SKIP
    """
    if not parts:
        raise InputError("no reports to merge")
    first = parts[0]
    if any((p.model_name, p.architecture) != (first.model_name, first.architecture) for p in parts):
        raise InputError("the reports to merge come from different models")
    comparisons = [c for p in parts for c in p.comparisons]
    ablations = [p.ablation for p in parts if p.ablation is not None]
    return FaithfulnessReport(first.model_name, first.architecture, [t for p in parts for t in p.texts],
                              [x for p in parts for x in p.predictions], comparisons, summarise(comparisons),
                              merge_ablations(ablations) if ablations else None)


def merge_ablations(parts: Sequence[AblationResult]) -> AblationResult:
    """Single-head ablations of consecutive sets of examples pooled as if run on all of them (see the
    module docstring for the proxies)."""
    first = parts[0]
    for p in parts:
        if p.mode != "single" or p.configs != first.configs or p.measure != first.measure:
            raise InputError("only single-head ablations of one model with the same heads can be merged")
    sites = [Site.parse(cfg[0]) for cfg in first.configs]
    layers: dict[str, list[int]] = {}
    for s in sites:
        layers.setdefault(s.kind, [])
        if s.layer not in layers[s.kind]:
            layers[s.kind].append(s.layer)
    cells = [(s.kind, layers[s.kind].index(s.layer), s.head) for s in sites]

    def grid(flat: np.ndarray, like: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = {k: np.zeros_like(v, dtype=float) for k, v in like.items()}
        for (kind, li, h), value in zip(cells, flat):
            out[kind][li, h] = value
        return out

    def flat(by_kind: dict[str, np.ndarray]) -> np.ndarray:
        return np.array([by_kind[kind][li, h] for kind, li, h in cells], dtype=float)

    per_example = {m: np.concatenate([p.per_example[m] for p in parts], axis=1) for m in first.per_example}
    means = {m: v.mean(axis=1) for m, v in per_example.items()}
    n = sum(p.n_examples for p in parts)
    merged = AblationResult(
        model_name=first.model_name, architecture=first.architecture, mode="single", measure=first.measure,
        effects={m: grid(v, first.effects[m]) for m, v in means.items()}, per_example=per_example,
        configs=first.configs, per_token=[t for p in parts for t in p.per_token], n_examples=n,
        n_forwards=sum(p.n_forwards for p in parts))
    if first.proxies:
        proxies = {name: sum(flat(p.proxies[name]) * p.n_examples for p in parts) / n for name in first.proxies}
        merged.proxies = {name: grid(v, first.proxies[name]) for name, v in proxies.items()}
        merged.correlations = rank_correlations(np.abs(means[first.measure]), proxies)
    return merged
