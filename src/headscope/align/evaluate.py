"""Score every cross-attention head of a translation model as a word aligner.

:func:`evaluate` forces each gold target through the model (teacher forcing, padded batches,
only the attention it needs), pools subword maps to word maps, extracts links from every map
source and accumulates precision / recall / AER counts for all of them in one pass over the
corpus. Map sources:

- every single cross-attention head of every decoder layer (``heads``);
- the mean of the heads of each layer (``layer_mean``);
- the mean of all heads of all layers (``all_mean``);
- the encoder-decoder rollout of :func:`headscope.aggregate.encoder_decoder_rollout`
  (``rollout``; needs the encoder and decoder self-attention too, so it costs a bigger capture).

Encoder and decoder self-attention are not alignments and are not scored on their own.

:func:`evaluate_inspections` runs the same scoring on already captured
:class:`~headscope.Inspection` objects (e.g. hand-made maps in tests).

Example
-------
>>> report = evaluate("headscope/en-fr", "hansards-en-fr", convention="both")  # doctest: +SKIP
>>> print(report.table())                                                       # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import re
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

import numpy as np
import torch

from headscope.aggregate import encoder_decoder_rollout as _rollout
from headscope.align.extract import argmax_mask, mask_to_links, threshold_mask
from headscope.align.gold import load_gold
from headscope.align.metrics import AERCounts
from headscope.align.words import CONVENTIONS, DEFAULT_CONVENTION, POOLINGS, select_rows, subword_to_word
from headscope.readings import Site
from headscope.errors import InputError, UnsupportedModelError

if TYPE_CHECKING:  # pragma: no cover
    from headscope.inspection import Inspection

__all__ = [
    "evaluate",
    "evaluate_inspections",
    "word_maps",
    "align_inspection",
    "AlignmentReport",
    "ConventionScores",
    "SOURCES",
    "torch_threads",
]

#: Map sources :func:`evaluate` can score.
SOURCES: tuple[str, ...] = ("heads", "layer_mean", "all_mean", "rollout")
ALL_MEAN = "all heads mean"
ROLLOUT = "rollout"
Link = tuple[int, int]
Extraction = Union[str, tuple[str, float]]



# ---- helpers ---------------------------------------------------------------------------------


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run the block with ``torch.set_num_threads(n)``, restoring the previous setting after.

    The word pooling works on many tiny tensors: with more than one thread on busy shared cores
    each op pays the thread pool's synchronisation, 20-40x slower than one thread. ``None``
    leaves the setting alone.
    """
    old = torch.get_num_threads()
    if n is None or n == old:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


@contextlib.contextmanager
def _skip_output_projection(model: Any) -> Iterator[None]:
    """Skip the vocabulary projection while only attention is needed.

    The output layer (``d_model x vocabulary``) is the last op of a seq2seq forward and a
    quarter or more of its cost for a small translator; alignment uses no logits. Its forward
    returns zeros of width 1 (the logits become meaningless, attention is untouched) and is
    restored after. Models whose output layer is not a plain ``Linear`` are left alone.
    """
    get = getattr(model, "get_output_embeddings", None)
    head = get() if callable(get) else None
    if not isinstance(head, torch.nn.Linear) or "forward" in vars(head):
        yield
        return
    head.forward = lambda x: x.new_zeros(()).expand(*x.shape[:-1], 1)  # type: ignore[method-assign]
    try:
        yield
    finally:
        del head.forward


def _check_extraction(extraction: Extraction) -> tuple[str, float | None]:
    if extraction == "argmax":
        return "argmax", None
    if (
        isinstance(extraction, (tuple, list))
        and len(extraction) == 2
        and extraction[0] == "threshold"
        and isinstance(extraction[1], (int, float))
        and 0.0 <= float(extraction[1]) < 1.0
    ):
        return "threshold", float(extraction[1])
    raise InputError(
        f"extraction must be 'argmax' or ('threshold', p) with 0 <= p < 1, not {extraction!r}"
    )


def _check_pools(src_pool: str, tgt_pool: str) -> tuple[str, str]:
    for name, how in (("src_pool", src_pool), ("tgt_pool", tgt_pool)):
        if how not in POOLINGS:
            raise InputError(f"{name} must be one of {POOLINGS}, not {how!r}")
    return src_pool, tgt_pool


def _check_conventions(convention: str) -> tuple[str, ...]:
    if convention == "both":
        return CONVENTIONS
    if convention in CONVENTIONS:
        return (convention,)
    raise InputError(f"convention must be 'naive', 'shift' or 'both', not {convention!r}")


def _check_sources(sources: Sequence[str]) -> tuple[str, ...]:
    if isinstance(sources, str):
        sources = (sources,)
    bad = [s for s in sources if s not in SOURCES]
    if bad or not sources:
        raise InputError(f"sources must be a non-empty selection of {SOURCES}, got {tuple(sources)!r}")
    return tuple(s for s in SOURCES if s in sources)


def _word_count(word_ids: Sequence[int | None], words: Sequence[str], side: str, k: int) -> None:
    """Refuse a sentence whose tokenizer words are not exactly the gold words."""
    seen = sorted({w for w in word_ids if w is not None})
    if seen == list(range(len(words))):
        return
    n_tok = (seen[-1] + 1) if seen else 0
    missing = [i for i in range(len(words)) if i not in set(seen)]
    detail = ""
    if missing and missing[0] < len(words):
        detail = f"; gold {side} word #{missing[0]} {words[missing[0]]!r} got no token"
    elif n_tok > len(words):
        detail = f"; the tokenizer has word #{n_tok - 1}, past the last gold word"
    raise InputError(
        f"sentence {k} (line {k + 1} of the gold files): the tokenizer's {side} words do not match the gold {side} words "
        f"({len(words)} gold words, tokenizer word ids cover {len(seen)} of them, up to "
        f"{n_tok - 1}){detail}. The gold sentence must be tokenised into the words the model's "
        "tokenizer keeps (use a fast tokenizer: words are passed with is_split_into_words=True)"
    )


def _gold_name(gold: Any) -> str:
    if isinstance(gold, str):
        return gold
    if hasattr(gold, "column_names"):
        return "dataset"
    if isinstance(gold, (tuple, list)):
        return " ".join(str(p) for p in gold)
    return type(gold).__name__


def head_name(layer: int, head: int) -> str:
    """The map-source name of one cross-attention head: its site name, ``"cross.2.3"``."""
    return Site("cross", int(layer), int(head)).name


_HEAD_NAME = re.compile(r"cross\.\d+\.\d+")
_LEGACY_HEAD_NAME = re.compile(r"L(\d+)H(\d+)")  # names of reports saved before site names


def _head_names(layers: Sequence[int], n_heads: int) -> list[str]:
    return [head_name(l, h) for l in layers for h in range(n_heads)]


def _site_name(name: str) -> str:
    """A source name of a saved report, legacy ``"L2H3"`` heads renamed ``"cross.2.3"``."""
    m = _LEGACY_HEAD_NAME.fullmatch(name)
    return head_name(int(m.group(1)), int(m.group(2))) if m else name


# ---- maps of one inspection ------------------------------------------------------------------


def _source_maps(
    insp: "Inspection", sources: tuple[str, ...]
) -> tuple[torch.Tensor, list[str], list[int], int]:
    """Stack every map source of one sentence: ``[N, T_sub, S_sub]`` and the source names."""
    if "cross" not in insp.attentions:
        raise InputError("the inspection has no cross attention; capture kinds=['cross'] of an encoder-decoder")
    cross = insp.attentions["cross"].float()
    n_layers, n_heads = int(cross.shape[0]), int(cross.shape[1])
    layers = insp.layers.get("cross", list(range(n_layers)))
    parts: list[torch.Tensor] = []
    names: list[str] = []
    if "heads" in sources:
        parts.append(cross.reshape(n_layers * n_heads, *cross.shape[2:]))
        names += _head_names(layers, n_heads)
    if "layer_mean" in sources:
        parts.append(cross.mean(dim=1))
        names += [f"layer {l} mean" for l in layers]
    if "all_mean" in sources:
        parts.append(cross.mean(dim=(0, 1)).unsqueeze(0))
        names.append(ALL_MEAN)
    if "rollout" in sources and "encoder" in insp.attentions and "decoder" in insp.attentions:
        r = _rollout(insp.attentions["encoder"], insp.attentions["decoder"], cross)
        parts.append(torch.from_numpy(np.asarray(r, dtype=np.float32)).unsqueeze(0))
        names.append(ROLLOUT)
    return torch.cat(parts, dim=0), names, list(layers), n_heads


def word_maps(
    insp: "Inspection",
    *,
    convention: str = DEFAULT_CONVENTION,
    sources: Sequence[str] = ("heads", "layer_mean", "all_mean"),
    src_pool: str = "sum",
    tgt_pool: str = "mean",
) -> tuple[torch.Tensor, list[str]]:
    """Word-level maps ``[N, T_words, S_words]`` of one forced inspection, and their source names.

    Rows are the target words, columns the source words (``Inspection.target_word_ids`` /
    ``source_word_ids``; special tokens dropped), for every map source in ``sources``
    (see :data:`SOURCES`; ``rollout`` needs encoder and decoder self-attention captured).
    """
    if insp.target_word_ids is None:
        raise InputError("word maps need a translation: inspect an encoder-decoder with a target")
    if convention not in CONVENTIONS:
        raise InputError(f"word_maps takes one convention, 'naive' or 'shift', not {convention!r}")
    conv = convention
    stack, names, _, _ = _source_maps(insp, _check_sources(sources))
    rows = select_rows(stack, conv)
    return subword_to_word(rows, insp.source_word_ids, insp.target_word_ids, src_pool, tgt_pool), names


def align_inspection(
    insp: "Inspection",
    *,
    layer: int | None = None,
    head: int | None = None,
    convention: str = DEFAULT_CONVENTION,
    extraction: Extraction = "argmax",
) -> tuple[torch.Tensor, set[Link]]:
    """Word map ``[target words, source words]`` and its links ``{(source, target)}`` of one
    forced translation: one cross-attention head (``layer`` and ``head``), the mean of a layer's
    heads (``layer`` only) or of all heads (neither). ``Inspection.align`` calls this.

    >>> import headscope                                                        # doctest: +SKIP
    >>> insp = headscope.inspect("headscope/en-fr", ["the", "house"], target=["la", "maison"],
    ...                          is_split_into_words=True)                      # doctest: +SKIP
    >>> word_map, links = insp.align(layer=2, head=1)                           # doctest: +SKIP
    """
    if insp.target_word_ids is None:
        raise InputError("align needs a translation: inspect an encoder-decoder with a target")
    if convention not in CONVENTIONS:
        raise InputError(f"convention must be 'naive' or 'shift', not {convention!r}")
    if head is not None and layer is None:
        raise InputError("give layer= with head= (or neither for the mean of all heads)")
    how, p = _check_extraction(extraction)
    if layer is None:
        att = insp._kind("cross").float().mean(dim=(0, 1))
    else:
        att = insp.map("cross", layer, head).float()
        if head is None:
            att = att.mean(dim=0)
    wm = subword_to_word(select_rows(att, convention), insp.source_word_ids, insp.target_word_ids)
    mask = argmax_mask(wm) if how == "argmax" else threshold_mask(wm, p)
    return wm, mask_to_links(mask)


# ---- the report ------------------------------------------------------------------------------


@dataclass
class ConventionScores:
    """The scores of every map source under one decoder-step convention."""

    convention: str
    aer: np.ndarray  #: ``[layers, heads]``
    precision: np.ndarray  #: ``[layers, heads]``
    recall: np.ndarray  #: ``[layers, heads]``
    aggregates: dict[str, dict[str, float]]  #: name -> precision, recall, aer, counts
    best_head: tuple[int, int]  #: ``(layer, head)`` with the lowest AER (model layer index)
    best_aer: float
    counts: dict[str, np.ndarray]  #: n_predicted, n_sure, ... as ``[layers, heads]``

    def as_dict(self) -> dict[str, Any]:
        return {
            "convention": self.convention,
            "aer": self.aer.tolist(),
            "precision": self.precision.tolist(),
            "recall": self.recall.tolist(),
            "aggregates": self.aggregates,
            "best_head": {"layer": self.best_head[0], "head": self.best_head[1], "aer": self.best_aer},
            "counts": {k: v.tolist() for k, v in self.counts.items()},
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ConventionScores":
        return cls(
            convention=d["convention"],
            aer=np.array(d["aer"], dtype=np.float64),
            precision=np.array(d["precision"], dtype=np.float64),
            recall=np.array(d["recall"], dtype=np.float64),
            aggregates=d["aggregates"],
            best_head=(int(d["best_head"]["layer"]), int(d["best_head"]["head"])),
            best_aer=float(d["best_head"]["aer"]),
            counts={k: np.array(v, dtype=np.int64) for k, v in d["counts"].items()},
        )


@dataclass
class AlignmentReport:
    """How good an aligner every cross-attention head (and aggregate) of a model is.

    ``aer``, ``precision``, ``recall`` are ``[layers, heads]`` arrays of the main convention
    (:data:`~headscope.align.DEFAULT_CONVENTION` when both were scored); ``aggregates`` has one
    row per aggregate (layer means, all-heads mean, rollout); ``best_head`` is the head with the
    lowest AER. ``by_convention`` holds the same for every scored convention. Per-sentence
    predicted links: :meth:`predicted_links`.
    """

    model_name: str
    gold_name: str
    conventions: tuple[str, ...]
    convention: str  #: the main convention (the fields below)
    extraction: str
    layers: list[int]
    n_heads: int
    aer: np.ndarray
    precision: np.ndarray
    recall: np.ndarray
    aggregates: dict[str, dict[str, float]]
    best_head: tuple[int, int]
    best_aer: float
    by_convention: dict[str, ConventionScores]
    n_sentences: int
    seconds: float
    sources: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: per convention, per sentence: the predicted links of every source (``sources`` order)
    links: dict[str, list[list[set[Link]]]] = field(default_factory=dict, repr=False)
    #: per sentence: source_words, target_words, sure, possible
    gold: list[dict[str, Any]] = field(default_factory=list, repr=False)

    # ---- access ---------------------------------------------------------------------------
    def predicted_links(self, sentence: int, source: "str | tuple[int, int] | Site" = "best",
                        convention: str | None = None) -> set[Link]:
        """Links ``{(source word, target word)}`` predicted for one sentence by one map source.

        ``source``: ``"best"`` (the best head), ``(layer, head)``, a head's site name
        ``"cross.2.3"`` or :class:`~headscope.capture.sites.Site`, or an aggregate name
        (``"all heads mean"``, ``"layer 0 mean"``, ``"rollout"``).
        """
        conv = convention or self.convention
        if conv not in self.links:
            raise InputError(f"no links for convention {conv!r}; scored: {list(self.links)}")
        if isinstance(source, str) and source == "best":
            source = self.by_convention[conv].best_head
        if isinstance(source, Site):
            if source.kind != "cross" or source.head is None:
                raise InputError(f"map sources are cross-attention heads: give a site 'cross.layer.head', not {source.name!r}")
            source = source.name
        elif isinstance(source, (tuple, list)):
            if len(source) != 2:
                raise InputError(f"a head is (layer, head), got {tuple(source)!r}")
            source = head_name(*source)
        if source not in self.sources:
            raise InputError(f"unknown map source {source!r}; sources: {', '.join(self.sources)}")
        if not 0 <= sentence < len(self.links[conv]):
            raise InputError(f"sentence {sentence} out of range (0..{len(self.links[conv]) - 1})")
        return set(self.links[conv][sentence][self.sources.index(source)])

    def symmetrized(self, method: str = "grow-diag-final", a: str = "naive", b: str = "shift") -> ConventionScores:
        """Scores of every map source after symmetrising its links under conventions ``a`` and
        ``b`` (``intersection``, ``union``, ``grow-diag``, ``grow-diag-final``,
        ``grow-diag-final-and``; see :func:`headscope.align.symmetrize`). Needs both conventions
        scored (``convention="both"``); the result's convention is named ``"a+b method"``.
        """
        from headscope.align.extract import symmetrize

        for conv in (a, b):
            if conv not in self.links or len(self.links[conv]) != len(self.gold):
                raise InputError(f"no links for convention {conv!r}; evaluate with convention='both'")
        counts = AERCounts((len(self.sources),))
        n = len(self.sources)
        for k, g in enumerate(self.gold):
            sure = {tuple(x) for x in g["sure"]}
            possible = {tuple(x) for x in g["possible"]} | sure
            for s in range(n):
                pred = symmetrize(self.links[a][k][s], self.links[b][k][s], method)  # type: ignore[arg-type]
                counts.n_predicted[s] += len(pred)
                counts.n_predicted_sure[s] += len(pred & sure)
                counts.n_predicted_possible[s] += len(pred & possible)
            counts.n_sure += len(sure)
            counts.n_sentences += 1
        return _convention_scores(f"{a}+{b} {method}", counts.score(), self.sources, self.layers, self.n_heads)

    # ---- display --------------------------------------------------------------------------
    def table(self, convention: str | None = None, metric: str = "aer") -> str:
        """Text table, layers x heads (best head marked ``*``), then one row per aggregate.

        Without ``convention``, one table per scored convention.
        """
        convs = [convention] if convention else list(self.conventions)
        blocks = []
        for conv in convs:
            sc = self.by_convention[conv]
            values = {"aer": sc.aer, "precision": sc.precision, "recall": sc.recall}[metric]
            head = f"{metric.upper() if metric == 'aer' else metric} by cross-attention head ({conv} convention; * = best head by AER)"
            lines = [head, "layer  " + "".join(f"{'head ' + str(h):>10}" for h in range(self.n_heads))]
            for i, layer in enumerate(self.layers):
                cells = []
                for h in range(self.n_heads):
                    mark = "*" if (layer, h) == sc.best_head else " "
                    cells.append(f"{values[i, h]:>9.3f}{mark}")
                lines.append(f"{layer:>5}  " + "".join(cells))
            lines.append(
                f"best head: {head_name(*sc.best_head)}, AER {sc.best_aer:.3f} "
                f"(P {sc.precision[self.layers.index(sc.best_head[0]), sc.best_head[1]]:.3f}, "
                f"R {sc.recall[self.layers.index(sc.best_head[0]), sc.best_head[1]]:.3f})"
            )
            if sc.aggregates:
                lines.append(f"{'aggregate':<18}{'precision':>10}{'recall':>10}{'AER':>10}")
                for name, row in sc.aggregates.items():
                    lines.append(f"{name:<18}{row['precision']:>10.3f}{row['recall']:>10.3f}{row['aer']:>10.3f}")
            blocks.append("\n".join(lines))
        return "\n\n".join(blocks)

    def markdown(self) -> str:
        """Markdown tables per convention: AER / precision / recall per layer x head (best head in
        bold), then the aggregates, then the best-head AER of each convention side by side."""
        out = []
        for conv in self.conventions:
            sc = self.by_convention[conv]
            out.append(f"**{conv}** convention — cells are AER / precision / recall; best head in bold\n")
            out.append("| layer | " + " | ".join(f"head {h}" for h in range(self.n_heads)) + " |")
            out.append("|---:|" + "---:|" * self.n_heads)
            for i, layer in enumerate(self.layers):
                cells = []
                for h in range(self.n_heads):
                    c = f"{sc.aer[i, h]:.3f} / {sc.precision[i, h]:.3f} / {sc.recall[i, h]:.3f}"
                    cells.append(f"**{c}**" if (layer, h) == sc.best_head else c)
                out.append(f"| {layer} | " + " | ".join(cells) + " |")
            if sc.aggregates:
                out.append("\n| aggregate | AER | precision | recall |\n|---|---:|---:|---:|")
                for name, row in sc.aggregates.items():
                    out.append(f"| {name} | {row['aer']:.3f} | {row['precision']:.3f} | {row['recall']:.3f} |")
            out.append("")
        out.append("| convention | best head | best-head AER | all-heads mean AER |")
        out.append("|---|---|---:|---:|")
        for conv in self.conventions:
            sc = self.by_convention[conv]
            mean = sc.aggregates.get(ALL_MEAN, {}).get("aer", math.nan)
            out.append(f"| {conv} | `{head_name(*sc.best_head)}` | {sc.best_aer:.3f} | {mean:.3f} |")
        return "\n".join(out)

    def summary(self) -> str:
        """A few lines: model, gold, size, time and the best head of each convention."""
        lines = [
            f"alignment of {self.model_name} on {self.gold_name}: {self.n_sentences} sentences, "
            f"{self.seconds:.1f} s ({self.n_sentences / max(self.seconds, 1e-9):.0f} sentences/s), "
            f"extraction {self.extraction}"
        ]
        for conv in self.conventions:
            sc = self.by_convention[conv]
            best_agg = min(sc.aggregates.items(), key=lambda kv: kv[1]["aer"], default=None)
            agg = f"; best aggregate {best_agg[0]} AER {best_agg[1]['aer']:.3f}" if best_agg else ""
            main = " (main)" if conv == self.convention and len(self.conventions) > 1 else ""
            lines.append(
                f"  {conv:<5}{main}: best head {head_name(*sc.best_head)} "
                f"AER {sc.best_aer:.3f}{agg}"
            )
        if len(self.conventions) > 1:
            side = "  ".join(f"{c} {self.by_convention[c].best_aer:.3f}" for c in self.conventions)
            lines.append(f"  best-head AER side by side: {side}")
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()

    # ---- persistence ----------------------------------------------------------------------
    def _meta(self) -> dict[str, Any]:
        return {
            "model_name": self.model_name,
            "gold_name": self.gold_name,
            "conventions": list(self.conventions),
            "convention": self.convention,
            "extraction": self.extraction,
            "layers": self.layers,
            "n_heads": self.n_heads,
            "n_sentences": self.n_sentences,
            "seconds": self.seconds,
            "sources": self.sources,
            "notes": self.notes,
        }

    def save(self, path: str | os.PathLike, *, heatmap: bool = True) -> Path:
        """Write into folder ``path``: ``report.json`` (everything but the links),
        ``scores.csv`` (one row per convention and map source), ``links.jsonl`` (per sentence:
        gold and predicted links of every source) and ``aer_heatmap.png`` (AER per layer x head).
        """
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        meta = self._meta()
        meta["scores"] = {c: s.as_dict() for c, s in self.by_convention.items()}
        (folder / "report.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")
        with open(folder / "scores.csv", "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["convention", "source", "kind", "layer", "head", "precision", "recall", "aer",
                        "n_predicted", "n_sure", "n_predicted_sure", "n_predicted_possible", "best"])
            for conv, sc in self.by_convention.items():
                for i, layer in enumerate(self.layers):
                    for h in range(self.n_heads):
                        w.writerow([conv, head_name(layer, h), "head", layer, h,
                                    f"{sc.precision[i, h]:.6f}", f"{sc.recall[i, h]:.6f}", f"{sc.aer[i, h]:.6f}",
                                    *(int(sc.counts[k][i, h]) for k in _COUNT_KEYS),
                                    int((layer, h) == sc.best_head)])
                for name, row in sc.aggregates.items():
                    kind = "rollout" if name == ROLLOUT else "all_mean" if name == ALL_MEAN else "layer_mean"
                    layer = name.split()[1] if kind == "layer_mean" else ""
                    w.writerow([conv, name, kind, layer, "", f"{row['precision']:.6f}", f"{row['recall']:.6f}",
                                f"{row['aer']:.6f}", *(row[k] for k in _COUNT_KEYS), 0])
        with open(folder / "links.jsonl", "w", encoding="utf-8") as f:
            for k, g in enumerate(self.gold):
                predicted = {
                    conv: {name: sorted(map(list, self.links[conv][k][s])) for s, name in enumerate(self.sources)}
                    for conv in self.links
                }
                f.write(json.dumps({"sentence": k, **g, "predicted": predicted}, ensure_ascii=False) + "\n")
        if heatmap:
            self.heatmap(folder / "aer_heatmap.png")
        return folder

    @classmethod
    def load(cls, path: str | os.PathLike) -> "AlignmentReport":
        """Read a report written by :meth:`save` (links included when ``links.jsonl`` is there)."""
        folder = Path(path)
        if not (folder / "report.json").is_file():
            raise InputError(f"{folder} holds no report.json; pass a folder written by AlignmentReport.save")
        meta = json.loads((folder / "report.json").read_text(encoding="utf-8"))
        by_conv = {c: ConventionScores.from_dict(d) for c, d in meta.pop("scores").items()}
        main = by_conv[meta["convention"]]
        links: dict[str, list[list[set[Link]]]] = {c: [] for c in by_conv}
        gold: list[dict[str, Any]] = []
        if (folder / "links.jsonl").is_file():
            with open(folder / "links.jsonl", encoding="utf-8") as f:
                for line in f:
                    row = json.loads(line)
                    pred = row.pop("predicted")
                    row.pop("sentence")
                    gold.append(row)
                    for c in by_conv:
                        links[c].append([{tuple(x) for x in pred[c][name]} for name in meta["sources"]])
        meta["sources"] = [_site_name(name) for name in meta["sources"]]
        return cls(
            conventions=tuple(meta.pop("conventions")),
            aer=main.aer, precision=main.precision, recall=main.recall, aggregates=main.aggregates,
            best_head=main.best_head, best_aer=main.best_aer, by_convention=by_conv,
            links=links, gold=gold, **meta,
        )

    def heatmap(self, path: str | os.PathLike) -> Path:
        """PNG of AER per layer x head, one panel per convention (nearest cells, no smoothing)."""
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt

        convs = list(self.conventions)
        fig, axes = plt.subplots(
            1, len(convs), figsize=(1.6 + 1.1 * self.n_heads * len(convs), 1.6 + 0.6 * len(self.layers)),
            squeeze=False, layout="constrained",
        )
        im = None
        for ax, conv in zip(axes[0], convs):
            sc = self.by_convention[conv]
            im = ax.imshow(sc.aer, cmap="viridis_r", vmin=0.0, vmax=1.0, interpolation="nearest", aspect="auto")
            for i in range(len(self.layers)):
                for h in range(self.n_heads):
                    best = (self.layers[i], h) == sc.best_head
                    ax.text(h, i, f"{sc.aer[i, h]:.3f}" + ("*" if best else ""), ha="center", va="center",
                            fontsize=8, color="white" if sc.aer[i, h] > 0.5 else "black",
                            fontweight="bold" if best else "normal")
            ax.set_xticks(range(self.n_heads))
            ax.set_yticks(range(len(self.layers)), [str(l) for l in self.layers])
            ax.set_xlabel("head")
            ax.set_ylabel("decoder layer")
            ax.set_title(f"AER, {conv} (best {sc.best_aer:.3f})", fontsize=9)
        fig.suptitle(f"{self.model_name} on {self.gold_name}", fontsize=9)
        if im is not None:
            fig.colorbar(im, ax=list(axes[0]), shrink=0.9, label="AER (lower is better)")
        out = Path(path)
        fig.savefig(out, dpi=120)
        plt.close(fig)
        return out


_COUNT_KEYS = ("n_predicted", "n_sure", "n_predicted_sure", "n_predicted_possible")


# ---- the scoring pass ------------------------------------------------------------------------


def _convention_scores(conv: str, sc: Any, names: list[str], layers: list[int], n_heads: int) -> ConventionScores:
    """Split the scores of every map source (``names`` order, heads first) into a ConventionScores."""
    n_lh = sum(1 for name in names if _HEAD_NAME.fullmatch(name))
    shape = (len(layers), n_heads)

    def grid(x: np.ndarray) -> np.ndarray:
        return np.asarray(x)[:n_lh].reshape(shape) if n_lh else np.full(shape, np.nan)

    aggregates = {
        name: {"precision": float(sc.precision[i]), "recall": float(sc.recall[i]), "aer": float(sc.aer[i]),
               **{key: int(getattr(sc, key)[i]) for key in _COUNT_KEYS}}
        for i, name in enumerate(names) if i >= n_lh
    }
    aer_grid = grid(sc.aer)
    if n_lh:
        li, h = np.unravel_index(int(np.argmin(aer_grid)), shape)
        best, best_aer = (layers[li], int(h)), float(aer_grid[li, h])
    else:
        best, best_aer = (layers[0], 0), math.nan
    return ConventionScores(
        convention=conv, aer=aer_grid, precision=grid(sc.precision), recall=grid(sc.recall),
        aggregates=aggregates, best_head=best, best_aer=best_aer,
        counts={key: grid(getattr(sc, key)).astype(np.int64) if n_lh else np.zeros(shape, np.int64)
                for key in _COUNT_KEYS},
    )


class _Scorer:
    """Accumulates counts of every map source and convention, one sentence at a time."""

    def __init__(self, conventions: tuple[str, ...], extraction: tuple[str, float | None],
                 sources: tuple[str, ...], n: int, pools: tuple[str, str] = ("sum", "mean")) -> None:
        self.pools = pools
        self.conventions = conventions
        self.extraction = extraction
        self.sources = sources
        self.names: list[str] | None = None
        self.layers: list[int] = []
        self.n_heads = 0
        self.counts: dict[str, AERCounts] = {}
        self.links: dict[str, list[Any]] = {c: [None] * n for c in conventions}
        self.warned_eos = False

    def add(self, k: int, insp: "Inspection", row: dict[str, Any]) -> None:
        src_words, tgt_words = row["source_words"], row["target_words"]
        if insp.target_word_ids is None:
            raise InputError(f"sentence {k}: no target word ids; the inspection must be a forced translation")
        _word_count(insp.source_word_ids, src_words, "source", k)
        _word_count(insp.target_word_ids, tgt_words, "target", k)
        stack, names, layers, n_heads = _source_maps(insp, self.sources)
        if self.names is None:
            self.names, self.layers, self.n_heads = names, layers, n_heads
            self.counts = {c: AERCounts((len(names),)) for c in self.conventions}
        elif names != self.names:
            raise InputError(f"sentence {k}: map sources {names} differ from the first sentence's {self.names}")
        if "shift" in self.conventions and insp.target_word_ids[-1] is not None and not self.warned_eos:
            self.warned_eos = True
            warnings.warn(
                f"sentence {k}: the target does not end with a special token (EOS); under the shift "
                "convention its last word keeps its own (naive) row", stacklevel=3,
            )
        sure = [tuple(x) for x in row["sure"]]
        possible = [tuple(x) for x in row["possible"]]
        how, p = self.extraction
        for conv in self.conventions:
            wm = subword_to_word(select_rows(stack, conv), insp.source_word_ids, insp.target_word_ids,
                                 *self.pools, n_src_words=len(src_words), n_tgt_words=len(tgt_words))
            mask = argmax_mask(wm) if how == "argmax" else threshold_mask(wm, p)
            mask = mask.numpy()
            self.counts[conv].add(mask, sure, possible)
            self.links[conv][k] = mask

    def report(self, *, model_name: str, gold_name: str, gold: list[dict[str, Any]], seconds: float,
               notes: list[str]) -> AlignmentReport:
        if self.names is None:
            raise InputError("no sentences to score")
        by_conv = {
            conv: _convention_scores(conv, self.counts[conv].score(), self.names, self.layers, self.n_heads)
            for conv in self.conventions
        }
        main = DEFAULT_CONVENTION if DEFAULT_CONVENTION in self.conventions else self.conventions[0]
        m = by_conv[main]
        links = {
            conv: [[mask_to_links(mk[s]) for s in range(len(self.names))] for mk in masks]
            for conv, masks in self.links.items()
        }
        how, p = self.extraction
        return AlignmentReport(
            model_name=model_name, gold_name=gold_name, conventions=self.conventions, convention=main,
            extraction=("argmax" if how == "argmax" else f"threshold {p:g}")
            + ("" if self.pools == ("sum", "mean") else f", pooling {self.pools[0]}/{self.pools[1]}"), layers=self.layers,
            n_heads=self.n_heads, aer=m.aer, precision=m.precision, recall=m.recall, aggregates=m.aggregates,
            best_head=m.best_head, best_aer=m.best_aer, by_convention=by_conv, n_sentences=len(gold),
            seconds=seconds, sources=list(self.names), notes=notes, links=links, gold=gold,
        )


def _gold_rows(gold: Any, reverse: bool, index_base: int | None, limit: int | None) -> list[dict[str, Any]]:
    ds = gold
    if isinstance(gold, (str, os.PathLike, tuple, list)):
        ds = load_gold(gold, reverse=reverse, index_base=index_base)
    elif reverse or index_base is not None:
        raise InputError("reverse / index_base apply when loading gold files; pass a name or paths, not a dataset")
    cols = ("source_words", "target_words", "sure", "possible")
    try:
        n = len(ds)
        if limit is not None:
            if limit < 1:
                raise InputError(f"limit must be a positive number of sentences, not {limit}")
            n = min(n, limit)
        data = ds[:n] if hasattr(ds, "column_names") else None
    except TypeError:
        raise InputError(f"gold must be a gold set name, file paths or a datasets.Dataset, not {type(gold).__name__}") from None
    if data is None or any(c not in data for c in cols):
        raise InputError(f"a gold dataset needs the columns {cols} (as made by headscope.align.load_gold)")
    return [{c: data[c][k] for c in cols} for k in range(n)]


def evaluate_inspections(
    inspections: Sequence["Inspection"],
    gold: Any,
    *,
    convention: str = DEFAULT_CONVENTION,
    extraction: Extraction = "argmax",
    sources: Sequence[str] = SOURCES,
    reverse: bool = False,
    index_base: int | None = None,
    threads: int | None = 1,
    src_pool: str = "sum",
    tgt_pool: str = "mean",
) -> AlignmentReport:
    """Score already captured forced inspections (one per gold sentence, same order).

    The scoring half of :func:`evaluate`: same checks, same counts, same report. ``gold`` as in
    :func:`evaluate`, or a list of rows ``{"source_words", "target_words", "sure", "possible"}``.
    """
    t0 = time.perf_counter()
    convs = _check_conventions(convention)
    ext = _check_extraction(extraction)
    srcs = _check_sources(sources)
    if isinstance(gold, list) and gold and isinstance(gold[0], dict):
        rows = gold
    else:
        rows = _gold_rows(gold, reverse, index_base, None)
    if len(rows) != len(inspections):
        raise InputError(f"{len(inspections)} inspections for {len(rows)} gold sentences")
    scorer = _Scorer(convs, ext, srcs, len(rows), _check_pools(src_pool, tgt_pool))
    with torch_threads(threads), torch.no_grad():
        for k, (insp, row) in enumerate(zip(inspections, rows)):
            scorer.add(k, insp, row)
    name = inspections[0].model_name if inspections else ""
    return scorer.report(model_name=name, gold_name=_gold_name(gold) if not isinstance(gold, list) else "rows",
                         gold=rows, seconds=time.perf_counter() - t0, notes=_notes(srcs, scorer))


def _notes(sources: tuple[str, ...], scorer: _Scorer) -> list[str]:
    if "rollout" in sources and (scorer.names is None or ROLLOUT not in scorer.names):
        return ["rollout not scored: encoder/decoder self-attention was not captured"]
    return []


def evaluate(
    model: Any,
    gold: Any = "hansards-en-fr",
    *,
    convention: str = DEFAULT_CONVENTION,
    extraction: Extraction = "argmax",
    sources: Sequence[str] = SOURCES,
    batch_size: int = 32,
    limit: int | None = None,
    progress: bool = True,
    reverse: bool = False,
    index_base: int | None = None,
    threads: int | None = 1,
    src_pool: str = "sum",
    tgt_pool: str = "mean",
) -> AlignmentReport:
    """Score every cross-attention head (and aggregate) of ``model`` against gold word alignments.

    Parameters
    ----------
    model : a shipped name (``"headscope/en-fr"``), folder, hub name, ``(model, tokenizer)`` or
        :class:`~headscope.LoadedModel` of an encoder-decoder translating gold source to target.
    gold : a built-in gold set (``"hansards-en-fr"``), ``(sentences, alignments)`` or
        ``(source, target, alignments)`` paths, or a dataset from :func:`~headscope.align.load_gold`.
    convention : ``"naive"`` (default), ``"shift"`` or ``"both"`` (the report then has both,
        the main fields in the default convention).
    extraction : ``"argmax"`` (one link per target word) or ``("threshold", p)``.
    sources : which maps to score, from :data:`SOURCES`; ``rollout`` needs the encoder and decoder
        self-attention too, so it makes the capture bigger.
    batch_size : sentences per padded forward pass (sentences are sorted by length first).
    limit : score only the first ``limit`` gold sentences.
    src_pool, tgt_pool : how subwords pool into words (``sum`` / ``mean`` / ``max``; default sum
        over source subwords, mean over target subwords), see :func:`~headscope.align.subword_to_word`.
    reverse, index_base : passed to :func:`~headscope.align.load_gold` for file gold sets.
    threads : torch threads while evaluating, restored after (default 1: on 2 shared, busy CPU
        cores both the small forward passes and the word pooling of many tiny tensors ran 10-40x
        slower with 2 threads than with 1; ``None`` keeps the caller's setting).

    The gold words are passed to the tokenizer pre-split (``is_split_into_words=True``); a
    sentence whose tokenizer words differ from the gold words is refused with an error.
    """
    from headscope.models.loading import load

    t0 = time.perf_counter()
    convs = _check_conventions(convention)
    ext = _check_extraction(extraction)
    srcs = _check_sources(sources)
    if batch_size < 1:
        raise InputError(f"batch_size must be positive, not {batch_size}")
    rows = _gold_rows(gold, reverse, index_base, limit)
    loaded = load(model)
    if loaded.family != "encoder-decoder":
        raise UnsupportedModelError(
            f"{loaded.name} is a {loaded.family}; word alignment needs an encoder-decoder (translation) model"
        )
    notes: list[str] = []
    kinds = ["cross"]
    if "rollout" in srcs:
        kinds = ["encoder", "decoder", "cross"]
    scorer = _Scorer(convs, ext, srcs, len(rows), _check_pools(src_pool, tgt_pool))
    order = sorted(range(len(rows)), key=lambda k: (len(rows[k]["source_words"]) + len(rows[k]["target_words"])))
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(rows), desc=f"align {loaded.name}", unit="sent")
    with torch_threads(threads), torch.no_grad(), _skip_output_projection(loaded.model):
        _run_batches(loaded, rows, order, batch_size, kinds, scorer, bar)
    notes += _notes(_check_sources(sources), scorer)
    report = scorer.report(model_name=loaded.name, gold_name=_gold_name(gold), gold=rows, seconds=0.0, notes=notes)
    report.seconds = time.perf_counter() - t0
    return report


def _run_batches(loaded: Any, rows: list[dict[str, Any]], order: list[int], batch_size: int,
                 kinds: list[str], scorer: _Scorer, bar: Any) -> None:
    from headscope.run import inspect

    try:
        for start in range(0, len(order), batch_size):
            chunk = order[start:start + batch_size]
            try:
                insps = inspect(
                    loaded,
                    [rows[k]["source_words"] for k in chunk],
                    target=[rows[k]["target_words"] for k in chunk],
                    is_split_into_words=True,
                    kinds=kinds,
                    batch_size=batch_size,
                )
            except InputError as err:  # name the gold sentence, not its place in the batch
                msg = re.sub(r"^(text|target) #(\d+)",
                             lambda m: f"gold sentence {chunk[int(m.group(2))]} ({'source' if m.group(1) == 'text' else 'target'})",
                             str(err))
                msg = re.sub(r"; shorten it or pass truncate=True.*$",
                             "; leave it out of the gold set (cutting it would drop gold words)", msg)
                raise InputError(msg) from None
            for k, insp in zip(chunk, insps):
                scorer.add(k, insp, rows[k])
            if bar is not None:
                bar.update(len(chunk))
    finally:
        if bar is not None:
            bar.close()
