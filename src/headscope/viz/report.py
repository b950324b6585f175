"""``report(insp, path)``: one self-contained HTML page about one input.

The page shows the model's output (translation or prediction) and every view headscope can
draw for it, each section headed by the claim it supports:

* **Alignment** - attention read as word links and *scored* against gold links (AER per
  head, the best head's map with the gold links drawn in). Without gold links the section says
  it is not scored.
* **Plausible** - pictures for a person: the bipartite link picture, word-level matrices
  (heads averaged, rollout), the bertviz head and model views. They show; they measure nothing.
* **Faithful** - interventions on the model: head ablation and token importance (gradients,
  leave-one-out erasure) with Kendall τ between the readings.
* **Fragmentation** - how far the single-map reading breaks apart (when
  :mod:`headscope.fragment` is installed).

Figures are embedded as base64 PNG, the bertviz views with their scripts inlined: the page
needs no network. Sections whose module is missing or whose computation fails say so.
"""

from __future__ import annotations

import html
import importlib
import traceback
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from headscope.errors import InputError

from . import figures as F
from .bertviz import bertviz_fragment, offline_scripts

__all__ = ["report", "parse_gold", "build_report"]

Link = tuple[int, int]

_CSS = """
body{font-family:Helvetica,Arial,sans-serif;margin:0;color:#222;background:#fafafa}
header{background:#1f2d3d;color:#fff;padding:1em 1.5em}
header h1{margin:0 0 .3em 0;font-size:1.35em}
header .io{font-size:1.05em;line-height:1.6}
header .io b{display:inline-block;width:6.5em;color:#9fb3c8;font-weight:normal}
nav{padding:.5em 1.5em;background:#e9eef3;font-size:.9em}
nav a{margin-right:1.2em}
main{padding:0 1.5em 2em 1.5em}
section.claim{background:#fff;border:1px solid #ddd;border-left:6px solid #999;margin:1.2em 0;padding:.6em 1.2em}
section.alignment{border-left-color:#2b8cbe}section.plausible{border-left-color:#d95f0e}
section.faithful{border-left-color:#31a354}section.fragmentation{border-left-color:#756bb1}
.claimtag{display:inline-block;font-size:.75em;text-transform:uppercase;letter-spacing:.06em;padding:.15em .5em;
border-radius:3px;background:#eee;margin-right:.5em;vertical-align:middle}
.question{color:#555;font-style:italic;margin-top:-.4em}
figure{display:inline-table;margin:.6em 1.2em .6em 0;vertical-align:top}
figure img{max-width:100%;border:1px solid #eee}
figcaption{display:table-caption;caption-side:bottom;font-size:.85em;color:#555}
header table{border:none;font-size:.85em;color:#c8d6e5}header td,header th{border:none;padding:.05em .8em .05em 0}
.note{background:#fff8e1;border:1px solid #f0d98a;padding:.4em .8em;font-size:.9em}
.missing{color:#a33}
table{border-collapse:collapse;font-size:.9em;margin:.5em 0}
td,th{border:1px solid #ddd;padding:.2em .6em;text-align:left}
.hs-caption{color:#555;font-size:.85em;max-width:60em}
pre{font-size:.8em;background:#f4f4f4;padding:.5em;overflow-x:auto}
"""

_CLAIMS = {
    "alignment": ("Alignment", "Do the weights mark real correspondences? Scored against gold links."),
    "plausible": ("Plausible", "Does it look right to a person? Shown, not measured."),
    "faithful": ("Faithful", "Did those inputs drive the output? Ablation, erasure, gradients."),
    "fragmentation": ("Fragmentation", "How far do the readings (heads, layers, aggregates) disagree?"),
}


# ---- gold -----------------------------------------------------------------------------------

def parse_gold(gold: Any) -> tuple[set[Link], set[Link]] | None:
    """Gold links for the inspected pair as ``(sure, possible)`` with possible ⊇ sure, or ``None``.

    Accepts a Pharaoh / talp string over 0-based word indices of the source and target
    (``"0-0 1-2 2-1 3p3"``: ``p`` or ``?`` marks a possible link), a ``(sure, possible)`` pair
    of link sets, a mapping with ``"sure"`` (and ``"possible"``) as in a
    :func:`headscope.align.load_gold` row, or a plain set of links (all sure).
    """
    if gold is None:
        return None
    if isinstance(gold, str):
        from headscope.align import parse_alignment_line

        sure, possible = parse_alignment_line(gold, index_base=0)
    elif isinstance(gold, Mapping):
        if "sure" not in gold:
            raise InputError("a gold mapping needs a 'sure' entry (and optionally 'possible')")
        sure, possible = _links(gold["sure"]), _links(gold.get("possible") or [])
    elif isinstance(gold, tuple) and len(gold) == 2 and all(isinstance(x, (set, frozenset, list)) for x in gold) \
            and all(all(isinstance(link, (tuple, list)) for link in x) for x in gold):
        sure, possible = _links(gold[0]), _links(gold[1])
    else:
        sure, possible = _links(gold), set()
    return set(sure), set(possible) | set(sure)


def _links(items: Iterable[Sequence[int]]) -> set[Link]:
    out = set()
    for item in items:
        if len(item) != 2:
            raise InputError(f"a link is a (source, target) pair, not {item!r}")
        out.add((int(item[0]), int(item[1])))
    return out


# ---- small html helpers -----------------------------------------------------------------------

def _e(x: Any) -> str:
    return html.escape(str(x))


def _figure(fig: Any, caption: str, alt: str | None = None) -> str:
    uri = F.to_data_uri(fig, "png", dpi=100)
    return (f'<figure><img src="{uri}" alt="{_e(alt or caption)}">'
            f"<figcaption>{caption}</figcaption></figure>")


def _optional(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


class _Section:
    def __init__(self, claim: str, anchor: str | None = None) -> None:
        self.claim = claim
        self.anchor = anchor or claim
        self.parts: list[str] = []

    def add(self, text: str) -> None:
        self.parts.append(text)

    def note(self, text: str) -> None:
        self.parts.append(f'<p class="note">{text}</p>')

    def failed(self, what: str, err: BaseException) -> None:
        detail = "".join(traceback.format_exception_only(type(err), err)).strip()
        self.parts.append(f'<p class="note missing">{_e(what)} could not be computed: {_e(detail)}</p>')

    def html(self) -> str:
        title, question = _CLAIMS[self.claim]
        tag = "claim" if self.claim in ("alignment", "plausible", "faithful") else "across claims"
        return (f'<section class="claim {self.claim}" id="{self.anchor}" data-claim="{self.claim}">'
                f'<h2><span class="claimtag">{tag}</span>{_e(title)}</h2><p class="question">{_e(question)}</p>\n'
                + "\n".join(self.parts) + "\n</section>")


# ---- sections ---------------------------------------------------------------------------------

def _output_table(insp: Any) -> str:
    """The output and what was captured, for the page header (no claim: this is what happened)."""
    rows = [("family", insp.family)]
    if insp.family == "encoder-decoder":
        rows.append(("output is", "forced (teacher forcing)" if insp.forced else "generated by the model"))
    elif "label" in insp.prediction:
        probs = ", ".join(f"{k}: {v:.3f}" for k, v in insp.prediction.get("probabilities", {}).items())
        rows.append(("prediction", f"{insp.prediction['label']}  ({probs})"))
    elif "next_token" in insp.prediction:
        rows.append(("next token", f"{insp.prediction['next_token']!r} (p={insp.prediction['probability']:.3f})"))
    shapes = ", ".join(f"{k}: {insp.shape(k)[0]} layers x {insp.shape(k)[1]} heads" for k in insp.kinds)
    rows.append(("captured", shapes))
    return ('<table class="captured">' + "".join(f"<tr><th>{_e(a)}</th><td>{_e(b)}</td></tr>" for a, b in rows)
            + "</table>")


def _cross_word_maps(insp: Any, convention: str) -> tuple[np.ndarray, list[str], list[str]]:
    """All heads of cross attention as word maps ``[L, H, Tw, Sw]``."""
    from headscope.align import select_rows, subword_to_word

    att = insp.attentions["cross"].detach().double().numpy()
    att = np.asarray(select_rows(att, convention))
    maps = np.asarray(subword_to_word(att, insp.source_word_ids, insp.target_word_ids))
    return (maps, F.words_of(insp.source_tokens, insp.source_word_ids),
            F.words_of(insp.target_tokens, insp.target_word_ids))


def _rollout_map(insp: Any) -> np.ndarray | None:
    agg = _optional("headscope.aggregate")
    if agg is None:
        return None
    if insp.family == "encoder-decoder" and all(k in insp.attentions for k in ("encoder", "decoder", "cross")) \
            and not insp.layers:
        return np.asarray(agg.encoder_decoder_rollout(insp.attentions["encoder"], insp.attentions["decoder"],
                                                      insp.attentions["cross"]))
    kind = insp.kinds[0]
    if insp.family != "encoder-decoder" and not insp.layers:
        return np.asarray(agg.rollout(insp.attentions[kind]))
    return None


def _alignment_section(insp: Any, gold: tuple[set[Link], set[Link]] | None, convention: str | None) -> _Section:
    sec = _Section("alignment")
    if "cross" not in insp.attentions or insp.target_tokens is None:
        sec.note(f"Not applicable: a {_e(insp.family)} has no cross attention between an input and an output, "
                 "so there are no word links to score.")
        return sec
    if gold is None:
        sec.note("<b>Not scored</b>: no gold links were given for this sentence pair, so nothing here says whether "
                 "the attention marks real correspondences. Pass <code>gold=</code> (Pharaoh links such as "
                 "<code>0-0 1-2 2-1</code>) or <code>--gold</code> on the command line. The pictures below, under "
                 "<i>Plausible</i>, are views only.")
        return sec
    align = _optional("headscope.align")
    if align is None:
        sec.note('<span class="missing">headscope.align is not installed: the maps cannot be scored.</span>')
        return sec
    sure, possible = gold
    convention = convention or align.DEFAULT_CONVENTION
    try:
        maps, src_words, tgt_words = _cross_word_maps(insp, convention)
        n_t, n_s = maps.shape[-2:]
        bad = [link for link in possible if not (0 <= link[0] < n_s and 0 <= link[1] < n_t)]
        if bad:
            raise InputError(f"gold links {sorted(bad)[:5]} fall outside the {n_s} source x {n_t} target words "
                             f"({src_words} / {tgt_words}); gold indices count whitespace words from 0")
        n_layers, n_heads = maps.shape[:2]
        layer_ids = insp.layers.get("cross", list(range(n_layers)))
        scores = np.zeros((n_layers, n_heads))
        for l in range(n_layers):
            for h in range(n_heads):
                scores[l, h] = align.aer([align.argmax(maps[l, h])], [sure], [possible]).aer
        mean_map = maps.mean(axis=(0, 1))
        readings = {"all heads, mean": mean_map}
        rollout = _rollout_map(insp)
        if rollout is not None:
            sub = np.asarray(align.select_rows(rollout, convention))
            readings["encoder-decoder rollout"] = np.asarray(
                align.subword_to_word(sub, insp.source_word_ids, insp.target_word_ids))
        reading_aer = {name: align.aer([align.argmax(m)], [sure], [possible]) for name, m in readings.items()}
        best = np.unravel_index(int(np.argmin(scores)), scores.shape)
        best_name = f"cross.{layer_ids[best[0]]}.{best[1]}"
        sec.add(f"<p>Each reading is turned into links by argmax (each target word linked to its highest-weight "
                f"source word), rows chosen by the <code>{_e(convention)}</code> decoder-step convention, and "
                f"scored by AER against {len(sure)} sure / {len(possible)} possible gold links "
                f"(lower is better; 0 = every link right).</p>")
        rows = [(best_name + " (best single head)", align.aer([align.argmax(maps[best])], [sure], [possible]))]
        rows += list(reading_aer.items())
        sec.add("<table><tr><th>reading</th><th>AER</th><th>precision</th><th>recall</th></tr>" + "".join(
            f"<tr><td>{_e(n)}</td><td>{s.aer:.3f}</td><td>{s.precision:.3f}</td><td>{s.recall:.3f}</td></tr>"
            for n, s in rows) + "</table>")
        sec.add('<p class="note">One sentence pair is an anecdote: the best head here is selected on the very '
                "links it is scored against. Score heads over a gold set "
                "(<code>headscope.align</code>) before trusting one.</p>")
        sec.add(_figure(F.aer_heatmap(scores, layers=layer_ids, title=f"cross-attention AER per head ({convention})"),
                        "AER of each cross-attention head's argmax links against the gold links of this pair "
                        "(dark = low error)."))
        sec.add(_figure(F.alignment_matrix(maps[best], src_words, tgt_words, sure=sure, possible=possible,
                                           predicted=align.argmax(maps[best]),
                                           title=f"{best_name}: AER {scores[best]:.2f}"),
                        f"Best head {best_name} at word level; red squares: sure gold links, dashed orange: possible "
                        "gold links, blue dots: its argmax links."))
        sec.add(_figure(F.alignment_matrix(mean_map, src_words, tgt_words, sure=sure, possible=possible,
                                           predicted=align.argmax(mean_map),
                                           title=f"all heads, mean: AER {reading_aer['all heads, mean'].aer:.2f}"),
                        "All cross-attention heads and layers averaged, with the same gold links."))
    except Exception as err:  # noqa: BLE001 - the page says what failed instead of failing
        sec.failed("The alignment scores", err)
    return sec


def _plausible_section(insp: Any, bertviz: bool, bertviz_layers: Any, bertviz_heads: Any, decimals: int,
                       min_weight: float) -> _Section:
    sec = _Section("plausible")
    sec.add("<p>Pictures of the weights. A reading that looks right is not thereby an alignment (see "
            "<i>Alignment</i>) nor a cause of the output (see <i>Faithful</i>).</p>")
    try:
        if "cross" in insp.attentions and insp.target_tokens is not None:
            m, src_words, tgt_words = F.word_map(insp, "cross")
            sec.add(_figure(F.bipartite(m, src_words, tgt_words, min_weight=min_weight,
                                        title="cross attention, all layers and heads averaged"),
                            f"Source words along the bottom, output words along the top; one curve per word pair "
                            f"with mean weight ≥ {min_weight:g}, thicker and darker for more weight. Crossing curves "
                            "are reorderings (e.g. adjective-noun)."))
            sec.add(_figure(F.alignment_matrix(m, src_words, tgt_words, title="cross attention, mean of all heads"),
                            "The same averaged map as flat blocks, one per word pair (no smoothing)."))
            last = insp.layers.get("cross", list(range(insp.shape("cross")[0])))[-1]
            ml, _, _ = F.word_map(insp, "cross", layer=last)
            sec.add(_figure(F.alignment_matrix(ml, src_words, tgt_words,
                                               title=f"cross attention, layer {last}, mean of heads"),
                            f"Last decoder layer ({last}) only."))
        else:
            kind = insp.kinds[0]
            last = insp.layers.get(kind, list(range(insp.shape(kind)[0])))[-1]
            m, keys, queries = F.word_map(insp, kind, layer=last)
            sec.add(_figure(F.heatmap(m, queries, keys, title=f"{kind} self-attention, layer {last}, mean of heads",
                                      cmap="Greys", vmin=0.0, vmax=1.0, xlabel="attended word",
                                      ylabel="attending word", annotate=False),
                            "Word-level self-attention of the last layer (special tokens left out), flat blocks."))
            q = 0 if insp.family == "classifier" else -1  # [CLS] decides a classifier; the last token the next one
            row = insp.attentions[kind][-1].float().mean(0)[q].double().numpy()
            which = "first (classification)" if q == 0 else "last (predicting)"
            sec.add(_figure(F.bars(list(row), list(insp.source_tokens),
                                   title=f"attention from the {which.split()[0]} token "
                                         f"({insp.source_tokens[q]}), layer {last}", xlabel="weight"),
                            f"What the {which} position reads in the last layer, heads averaged."))
        rollout = _rollout_map(insp)
        if rollout is not None:
            kind = "cross" if insp.family == "encoder-decoder" else insp.kinds[0]
            rm, keys, queries = F.word_map(insp, kind, subword=rollout)
            title = "encoder-decoder rollout (Chefer et al. 2021)" if kind == "cross" else "attention rollout"
            sec.add(_figure(F.alignment_matrix(rm, keys, queries, title=title),
                            "Aggregate over layers with the residual path (headscope.aggregate). A reading too: it "
                            "is scored under Alignment when gold links are given."))
        elif _optional("headscope.aggregate") is None:
            sec.note('<span class="missing">headscope.aggregate is not installed: no rollout view.</span>')
    except Exception as err:  # noqa: BLE001
        sec.failed("A static figure", err)
    if bertviz:
        for view in ("head", "model"):
            try:
                sec.add(f"<h3>bertviz {view} view</h3>")
                sec.add(bertviz_fragment(insp, view, layers=bertviz_layers, heads=bertviz_heads, decimals=decimals))
            except Exception as err:  # noqa: BLE001
                sec.failed(f"The bertviz {view} view", err)
    return sec


def _faithful_section(insp: Any, faithful: bool, methods: Sequence[str]) -> _Section:
    sec = _Section("faithful")
    mod = _optional("headscope.faithful")
    if mod is None:
        sec.note('<span class="missing">headscope.faithful is not installed: no ablation or importance '
                 "results, so nothing here says whether the attention drove the output.</span>")
        return sec
    if not faithful:
        sec.note("Not computed for this report (<code>faithful=False</code>).")
        return sec
    if insp.loaded is None:
        sec.note("Not computed: this inspection has no model attached (it was loaded from disk); "
                 "inspect the model again to ablate heads or erase tokens.")
        return sec
    try:
        res = mod.head_ablation(insp, proxies=False)
        effects = res.effect()
        sec.add(f"<p>Head ablation: each head removed alone; the effect is the <code>{_e(res.measure)}</code> of the "
                "model's own output (positive: the output got less likely without the head).</p>")
        for kind, eff in effects.items():
            layer_ids = insp.layers.get(kind, list(range(np.asarray(eff).shape[0])))
            sec.add(_figure(F.ablation_heatmap(eff, layers=layer_ids, title=f"{kind}: effect of ablating each head"),
                            f"{_e(kind)} heads: change of {_e(res.measure)} when the head is removed."))
    except Exception as err:  # noqa: BLE001
        sec.failed("Head ablation", err)
    try:
        imps = {}
        for method in methods:
            try:
                imps[method] = mod.token_importance(insp, method)
            except Exception as err:  # noqa: BLE001
                sec.failed(f"Token importance by {method}", err)
        if imps:
            first = next(iter(imps.values()))
            keep = None if first.special is None else ~np.asarray(first.special, dtype=bool)
            names = list(imps)
            tau = np.full((len(names), len(names)), np.nan)
            for i, a in enumerate(names):
                for j, b in enumerate(names):
                    x, y = imps[a].scores, imps[b].scores
                    tau[i, j] = (mod.kendall_tau(x, y, keep) if x.ndim == 1
                                 else float(np.nanmean(mod.kendall_tau_rows(x, y, keep))))
            sec.add("<p>Token importance by several methods; agreement of their rankings as Kendall τ "
                    "(Jain &amp; Wallace 2019), special tokens left out"
                    + (", mean over output tokens" if first.scores.ndim == 2 else "") + ".</p>")
            sec.add(_figure(F.kendall_matrix(tau, names), "Kendall τ between token-importance readings: "
                            "attention-based readings agreeing with gradient / leave-one-out ones is evidence "
                            "(not proof) that the attention tracks what drove the output."))
            for method, imp in imps.items():
                if method in ("loo", "gradient"):
                    scores = imp.scores
                    if scores.ndim == 2:
                        fig = F.heatmap(scores, imp.target_tokens, imp.source_tokens, cmap="RdBu_r", center=0.0,
                                        title=f"{method} importance", xlabel="source token",
                                        ylabel="output token", annotate=False)
                    else:
                        fig = F.bars(list(scores), imp.source_tokens, title=f"{method} importance", xlabel="score")
                    sec.add(_figure(fig, f"Importance of each source token by <code>{_e(method)}</code> "
                                         "(for encoder-decoders: per output token, teacher forcing)."))
    except Exception as err:  # noqa: BLE001
        sec.failed("Token importance", err)
    return sec


def _fragmentation_section(insp: Any, faithful: bool) -> _Section | None:
    mod = _optional("headscope.fragment")
    sec = _Section("fragmentation")
    fn = getattr(mod, "fragmentation", None) if mod is not None else None
    if fn is None:
        return None
    try:
        frag = fn(insp, faithful=faithful and insp.loaded is not None)
        sec.add(f"<pre>{_e(frag.summary())}</pre>")
        tau = np.asarray(frag.tau, dtype=float)
        if tau.ndim == 2 and tau.size:
            sec.add(_figure(F.kendall_matrix(tau, list(frag.reading_names), title="Kendall τ between readings"),
                            "Rank agreement between readings of the input (heads, layer means, aggregates, "
                            "gradient, leave-one-out)."))
        for kind, kf in frag.kinds.items():
            if np.ndim(kf.sink_mass) == 2:
                sec.add(_figure(F.layer_head_heatmap(kf.sink_mass, title=f"{kind}: attention mass on sink tokens",
                                                     cmap="Purples", vmin=0.0, vmax=1.0),
                                f"{_e(kind)}: share of each head's attention on special / sink tokens."))
            if getattr(kf, "shares", None):
                sec.add(_figure(F.fragmentation_summary(kf.shares, title=f"{kind}: head behaviours"),
                                f"{_e(kind)}: share of heads by behaviour."))
    except Exception as err:  # noqa: BLE001
        sec.failed("The fragmentation analysis", err)
    return sec


# ---- the page ---------------------------------------------------------------------------------

def build_report(insp: Any, gold: Any = None, *, convention: str | None = None, bertviz: bool = True,
                 bertviz_layers: Sequence[int] | None = None, bertviz_heads: Sequence[int] | None = None,
                 decimals: int = 3, faithful: bool = True,
                 importance_methods: Sequence[str] = ("attention", "rollout", "gradient", "loo"),
                 fragmentation: bool = True, min_weight: float = 0.1) -> str:
    """The report page as a string (see :func:`report`)."""
    gold_links = parse_gold(gold)
    sections = [_alignment_section(insp, gold_links, convention),
                _plausible_section(insp, bertviz, bertviz_layers, bertviz_heads, decimals, min_weight),
                _faithful_section(insp, faithful, importance_methods)]
    if fragmentation:
        frag = _fragmentation_section(insp, faithful)
        if frag is not None:
            sections.append(frag)
    missing = [name for name in ("headscope.aggregate", "headscope.align", "headscope.faithful", "headscope.fragment")
               if _optional(name) is None]
    nav = "".join(f'<a href="#{s.anchor}">{_e(_CLAIMS[s.claim][0])}</a>' for s in sections)
    if insp.family == "encoder-decoder":
        io = (f'<div class="io"><b>input</b>{_e(insp.source_text)}<br><b>output</b>{_e(insp.target_text)}'
              f'{" (forced)" if insp.forced else ""}</div>')
    else:
        pred = insp.prediction.get("label", insp.prediction.get("next_token", ""))
        io = f'<div class="io"><b>input</b>{_e(insp.source_text)}<br><b>prediction</b>{_e(pred)}</div>'
    foot = ("<p class='note'>Not available in this install: " + ", ".join(f"<code>{m}</code>" for m in missing)
            + ".</p>") if missing else ""
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>headscope report: {_e(insp.source_text)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
            + (offline_scripts() + "\n" if bertviz else "")
            + f'<header><h1>headscope report: {_e(insp.model_name)}</h1>{io}{_output_table(insp)}</header>\n'
            + f'<nav>{nav}</nav>\n<main>\n'
            + "\n".join(s.html() for s in sections) + f"\n{foot}\n</main>\n</body>\n</html>\n")


def report(insp: Any, path: str | Path, gold: Any = None, **options: Any) -> Path:
    """Write one self-contained HTML page about ``insp`` to ``path`` (a file, or a folder that gets
    ``report.html``) and return the file's path.

    ``gold``: links of this sentence pair (see :func:`parse_gold`), word indices from 0 over the
    inspection's words (inspect with ``is_split_into_words=True`` to control the words).
    Options: ``convention`` (decoder-step rows for scoring, default headscope.align's),
    ``bertviz`` (include the bertviz views, default True), ``bertviz_layers`` /
    ``bertviz_heads`` / ``decimals`` (their size), ``faithful`` (run ablation and importance,
    default True; needs the model), ``importance_methods``, ``fragmentation``, ``min_weight``
    (bipartite picture threshold).
    """
    out = Path(path)
    if out.suffix.lower() not in (".html", ".htm"):
        out = out / "report.html"
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*(tight_layout|Glyph).*")
        page = build_report(insp, gold, **options)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    return out
