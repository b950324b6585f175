"""The seed figure: do headscope's translators cross over "European Economic Area"?

headscope's founding picture is Bahdanau, Cho & Bengio (2015), "Neural Machine Translation by
Jointly Learning to Align and Translate", Fig. 3(a): the English->French attention of

    the agreement on the European Economic Area was signed in August 1992 .
    l' accord sur la zone économique européenne a été signé en août 1992 .

where the links cross over "European Economic Area" / "zone économique européenne" (European ->
européenne, Economic -> économique, Area -> zone) and stay near the diagonal elsewhere. This script
forces that French sentence through every shipped translator (teacher forcing, word-split input)
and scores three readings per model on it: one head (the only head, or the best head), the mean of
all cross-attention heads, and encoder-decoder rollout. It writes ``docs/img/seed_figure.png``
and ``docs/seed_figure.md`` and prints the markdown.

    python examples/seed_figure.py [--png PATH] [--md PATH]

Scoring (:func:`score_map`) uses a word-level map ``[French word, English word]`` (source
subwords summed, target subwords averaged, ``</s>`` left out; rows are not renormalised, so mass
on ``</s>`` counts against every word) and the hand-made reference alignment ``REFERENCE``.
"""

from __future__ import annotations

import time

_T0 = time.perf_counter()  # wall time counts the imports too

import argparse  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

import headscope  # noqa: E402
from headscope.aggregate import encoder_decoder_rollout  # noqa: E402
from headscope.align.words import subword_to_word  # noqa: E402
from headscope.viz.figures import save  # noqa: E402
from headscope.viz.seed import Panel, bipartite_grid  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PNG = ROOT / "docs" / "img" / "seed_figure.png"
MD = ROOT / "docs" / "seed_figure.md"

EN = "the agreement on the European Economic Area was signed in August 1992 ."
FR = "l' accord sur la zone économique européenne a été signé en août 1992 ."
EN_CASED = "The agreement on the European Economic Area was signed in August 1992."

EN_WORDS, FR_WORDS = EN.split(), FR.split()

#: Hand-made reference alignment (written for this page, not taken from any gold data set): for
#: each French word, the English word it translates. "a été" both go to "was"; the articles "l'"
#: and "la" go to the two "the".
REFERENCE: list[int] = [
    0,   # l'          -> the
    1,   # accord      -> agreement
    2,   # sur         -> on
    3,   # la          -> the
    6,   # zone        -> Area
    5,   # économique  -> Economic
    4,   # européenne  -> European
    7,   # a           -> was
    7,   # été         -> was
    8,   # signé       -> signed
    9,   # en          -> in
    10,  # août        -> August
    11,  # 1992        -> 1992
    12,  # .           -> .
]

#: The crossing: (English word, French word) indices, in English order.
CROSSING: list[tuple[int, int]] = [(4, 6), (5, 5), (6, 4)]

#: A French word's row counts as "near the diagonal" mass within this many English words of its
#: reference word.
RADIUS = 1


# ---- scoring --------------------------------------------------------------------------------

def score_map(m: np.ndarray, reference: list[int] = REFERENCE, crossing: list[tuple[int, int]] = CROSSING,
              radius: int = RADIUS) -> dict:
    """Score one word-level map ``m[French word, English word]`` against the reference.

    Returns a dict with

    * ``crossing``: per (English, French) pair of ``crossing``, a dict ``ok`` (the argmax English
      word of the French word's row is the right English word), ``argmax`` (that word's index),
      ``mass`` (the row's weight on the right English word);
    * ``crossing_ok``: how many of the crossing pairs are right;
    * ``diagonal``: for the French words outside the crossing, the mean share of the row's mass
      on English words within ``radius`` of the reference word (clipped at the sentence ends);
    * ``links``: French words whose argmax is their reference word, over all French words.
    """
    m = np.asarray(m, dtype=float)
    if m.shape[0] != len(reference):
        raise ValueError(f"map has {m.shape[0]} target rows, reference has {len(reference)} words")
    argmax = m.argmax(axis=1)
    pairs = []
    for s, t in crossing:
        pairs.append(dict(ok=bool(argmax[t] == s), argmax=int(argmax[t]), mass=float(m[t, s])))
    inside = {t for _, t in crossing}
    near = []
    for t, s in enumerate(reference):
        if t in inside:
            continue
        lo, hi = max(0, s - radius), min(m.shape[1], s + radius + 1)
        near.append(float(m[t, lo:hi].sum()))
    return dict(crossing=pairs, crossing_ok=sum(p["ok"] for p in pairs),
                diagonal=float(np.mean(near)) if near else float("nan"),
                links=int(sum(int(a == s) for a, s in zip(argmax, reference))))


def pick_head(word_maps: np.ndarray, reference: list[int] = REFERENCE) -> tuple[int, int]:
    """The (layer, head) of ``word_maps[layer, head, French word, English word]`` whose argmax
    links agree with ``reference`` on the most French words; ties go to the larger mean weight on
    the reference words, then to the lower (layer, head)."""
    n_layers, n_heads = word_maps.shape[:2]
    rows = np.arange(len(reference))

    def key(lh: tuple[int, int]) -> tuple[int, float]:
        m = word_maps[lh]
        return int((m.argmax(-1) == np.asarray(reference)).sum()), float(m[rows, reference].mean())

    heads = [(lay, h) for lay in range(n_layers) for h in range(n_heads)]
    return max(heads, key=lambda lh: (key(lh), -lh[0], -lh[1]))


# ---- readings -------------------------------------------------------------------------------

@dataclass
class Reading:
    key: str            # "head" | "mean" | "rollout"
    label: str          # as shown in the table and the figure
    matrix: np.ndarray  # [French words, English words]
    scores: dict = field(default_factory=dict)


def translators() -> list[str]:
    """Every shipped translator in the registry, in registry order."""
    return [m.name for m in headscope.models.list_models() if m.task == "translation"]


def readings_of(model: str) -> list[Reading]:
    """Force the seed pair through ``model``; return its readings (word-level maps, scored)."""
    insp = headscope.inspect(model, EN_WORDS, target=FR_WORDS, is_split_into_words=True)
    att = insp.attentions
    cross = att["cross"].double()  # [layers, heads, T, S], row t = the step that outputs token t

    def words(x):
        w = subword_to_word(x, insp.source_word_ids, insp.target_word_ids,
                            n_src_words=len(EN_WORDS), n_tgt_words=len(FR_WORDS))
        return np.asarray(w, dtype=float)

    per_head = words(cross)
    n_layers, n_heads = per_head.shape[:2]
    out = []
    if n_layers * n_heads == 1:
        out.append(Reading("head", "single head", per_head[0, 0]))
    else:
        lay, h = pick_head(per_head)
        out.append(Reading("head", f"best head (layer {lay}, head {h})", per_head[lay, h]))
        out.append(Reading("mean", f"all-heads mean ({n_layers * n_heads} heads)", words(cross.mean(dim=(0, 1)))))
    roll = encoder_decoder_rollout(att["encoder"], att["decoder"], att["cross"])
    out.append(Reading("rollout", "rollout", words(roll)))
    for r in out:
        r.scores = score_map(r.matrix)
    return out


def translations(model: str) -> list[tuple[str, str]]:
    """The model's own greedy translation of the lowercased/tokenised and of the cased sentence."""
    return [(src, headscope.inspect(model, src).target_text) for src in (EN, EN_CASED)]


# ---- output ---------------------------------------------------------------------------------

READING_KEYS = ("head", "mean", "rollout")


def _cell(p: dict) -> str:
    if p["ok"]:
        return f"yes · {p['mass']:.2f}"
    return f"no (→ {EN_WORDS[p['argmax']]}) · {p['mass']:.2f}"


def table(results: dict[str, list[Reading]]) -> str:
    """One markdown row per model x reading."""
    head = [f"{EN_WORDS[s]}→{FR_WORDS[t]}" for s, t in CROSSING]
    lines = ["| model | reading | " + " | ".join(head) + " | crossing right | near-diagonal mass elsewhere "
             "| argmax = reference |",
             "|---|---|" + "---|" * len(head) + "---:|---:|---:|"]
    for model, readings in results.items():
        for r in readings:
            sc = r.scores
            lines.append(f"| {model} | {r.label} | " + " | ".join(_cell(p) for p in sc["crossing"])
                         + f" | {sc['crossing_ok']}/{len(CROSSING)} | {sc['diagonal']:.2f} "
                         f"| {sc['links']}/{len(REFERENCE)} |")
    return "\n".join(lines)


def _uniform_diagonal() -> float:
    return score_map(np.full((len(FR_WORDS), len(EN_WORDS)), 1.0 / len(EN_WORDS)))["diagonal"]


def _straight(crossing: list[tuple[int, int]] = CROSSING) -> dict[int, int]:
    """French word -> the English word in the same position of the span (no crossing)."""
    src = sorted(s for s, _ in crossing)
    tgt = sorted(t for _, t in crossing)
    return dict(zip(tgt, src))


def reading_paragraph(results: dict[str, list[Reading]]) -> str:
    """The honest reading, built from the numbers so it stays true when models change."""
    n = len(CROSSING)
    straight = _straight()
    parts = []
    for model, readings in results.items():
        best = max(r.scores["crossing_ok"] for r in readings)
        head = readings[0]
        sc = head.scores
        links = {t: p["argmax"] for (_, t), p in zip(CROSSING, sc["crossing"])}
        verdict = ("puts the whole crossing where it belongs" if sc["crossing_ok"] == n else
                   "does not put the crossing where it belongs")
        if sc["crossing_ok"] < n and all(links[t] == straight[t] for t in links):
            how = (": it reads the span straight through in English order, "
                   + ", ".join(f"{FR_WORDS[t]} → {EN_WORDS[links[t]]}" for t in sorted(links))
                   + ", which is the diagonal without the crossing")
        else:
            wrong = [f"{FR_WORDS[t]} → {EN_WORDS[p['argmax']]}" for (s, t), p in zip(CROSSING, sc["crossing"])
                     if not p["ok"]]
            how = f": it links {', '.join(wrong)}" if wrong else ""
        parts.append(f"**{model}**'s {head.label} {verdict} ({sc['crossing_ok']}/{n} crossing links, "
                     f"{sc['links']}/{len(REFERENCE)} French words on their reference word){how}. "
                     f"No reading of this model gets more than {best}/{n}.")
    uni = _uniform_diagonal()
    pairs = {}  # model -> (near-diagonal mass of the head reading, of rollout)
    for model, readings in results.items():
        by_key = {r.key: r.scores["diagonal"] for r in readings}
        pairs[model] = (by_key["head"], by_key["rollout"])
    heads = ", ".join(f"{hd:.2f}" for hd, _ in pairs.values())
    if all(hd >= 2 * uni for hd, _ in pairs.values()):
        diag = f"Away from the crossing the head readings do stay near the diagonal (near-diagonal mass {heads}"
    else:
        diag = f"Away from the crossing not every head reading stays near the diagonal (near-diagonal mass {heads}"
    diag += f"; a uniform row scores {uni:.2f}, so read that column against it)."
    detail = "; ".join(f"{m}: {ro:.2f} vs {hd:.2f}" for m, (hd, ro) in pairs.items())
    if all(ro < hd for hd, ro in pairs.values()):
        roll = f"Rollout is flatter than the head in every model (near-diagonal mass, rollout vs head: {detail})."
    else:
        roll = f"Near-diagonal mass, rollout vs head: {detail}."
    return " ".join([
        *parts, diag, roll,
        "Two cautions: the best head is chosen on this very sentence with the hand-made reference, so its "
        "row is an optimistic upper bound; and these are tiny caption translators (Multi30k + Debian "
        "messages), for which this Hansards-style sentence (Bahdanau et al. trained on WMT'14) is out "
        "of domain, as their own translations above show. The figure is a plausibility view of one sentence; alignment claims need the "
        "gold-scored numbers in docs/alignment.md.",
    ])


def markdown(results: dict[str, list[Reading]], outputs: dict[str, list[tuple[str, str]]]) -> str:
    fig_link = "img/seed_figure.png"
    gold = ", ".join(f"`{FR_WORDS[t]}→{EN_WORDS[s]}`" for t, s in enumerate(REFERENCE))
    lines = [
        "# The seed figure: European Economic Area",
        "",
        "headscope starts from Bahdanau, Cho & Bengio (2015), Fig. 3(a): English→French attention that "
        "crosses over *European Economic Area* / *zone économique européenne* (European→européenne, "
        "Economic→économique, Area→zone) and stays near the diagonal elsewhere. Here the same sentence "
        "pair is forced through every shipped translator, and three readings of its cross-attention are "
        "scored: one head (the only head, or the best head), the mean of all heads (skipped for a one-head "
        "model, where it is that head), and encoder-decoder rollout (Chefer et al. 2021 rules on raw "
        "attention).",
        "",
        "```bash",
        "python examples/seed_figure.py",
        "```",
        "",
        f"![seed figure: bipartite attention pictures, models by readings]({fig_link})",
        "",
        f"- EN: `{EN}`",
        f"- FR (forced): `{FR}`",
        f"- Reference alignment, **hand-made** for this page (not from a gold data set): {gold}.",
        "- Word maps: source subwords summed, target subwords averaged, `</s>` left out (rows are not "
        "renormalised); row *t* is the decoder step that outputs French word *t* (headscope's `naive` "
        "convention).",
        "- A crossing cell is `yes`/`no` (is the argmax English word of the French word the right one; "
        "if not, where it went) and the weight on the right English word. *Near-diagonal mass elsewhere*: "
        f"for the {len(REFERENCE) - len(CROSSING)} French words outside the crossing, the mean weight on the "
        f"English words within ±{RADIUS} of the reference word (a uniform row scores {_uniform_diagonal():.2f}). "
        "*Best head*: the cross-attention head whose argmax agrees with the reference on the most French "
        "words (ties: larger mean weight on the reference words).",
        "- In the figure, curves are weights ≥ 0.1 (width and darkness follow the weight); red: the three "
        "French words of the crossing; grey dashed: the reference.",
        "",
        table(results),
        "",
        "## What the models translate themselves",
        "",
        "Greedy output for the tokenised lowercase sentence and for the cased one, as they come:",
        "",
        "| model | English input | generated French |",
        "|---|---|---|",
    ]
    for model, pairs in outputs.items():
        for src, out in pairs:
            lines.append(f"| {model} | `{src}` | `{out}` |")
    lines += ["", "## Reading", "", reading_paragraph(results), ""]
    return "\n".join(lines)


def figure(results: dict[str, list[Reading]]):
    """Rows: models; columns: head / all-heads mean / rollout."""
    rows = []
    for readings in results.values():
        by_key = {r.key: r for r in readings}
        row = []
        for key in READING_KEYS:
            r = by_key.get(key)
            if r is None:
                row.append("one head: the all-heads\nmean is the single head")
                continue
            sc = r.scores
            title = (f"{r.label}\ncrossing {sc['crossing_ok']}/{len(CROSSING)} · near-diagonal "
                     f"{sc['diagonal']:.2f} · reference {sc['links']}/{len(REFERENCE)}")
            row.append(Panel(r.matrix, EN_WORDS, FR_WORDS, title=title,
                             reference=[(s, t) for t, s in enumerate(REFERENCE)],
                             highlight=[t for _, t in CROSSING]))
        rows.append(row)
    return bipartite_grid(
        rows, row_labels=list(results),
        title="The seed pair (Bahdanau et al. 2015, Fig. 3a) forced through headscope's translators",
        caption="English left, French right; curves: attention weight ≥ 0.1 (width, darkness ∝ weight); "
                "red: zone / économique / européenne; grey dashed: hand-made reference alignment")


MODELS_MD = ROOT / "docs" / "models.md"
START, END = "<!-- seed-figure: written by examples/seed_figure.py -->", "<!-- /seed-figure -->"


def update_section(path: Path, text: str) -> None:
    """Replace the block between START and END in ``path`` with ``text`` (headings one level down)."""
    doc = path.read_text(encoding="utf-8")
    head, rest = doc.split(START, 1)
    _, tail = rest.split(END, 1)
    body = "\n".join("#" + line if line.startswith("#") else line for line in text.strip().splitlines())
    path.write_text(f"{head}{START}\n{body}\n{END}{tail}", encoding="utf-8")


def run(models: list[str] | None = None, png: Path | None = PNG, md: Path | None = MD,
        translate: bool = True, models_md: Path | None = None) -> dict:
    """Score every model, draw the figure, write the files; returns everything computed."""
    models = translators() if models is None else list(models)
    results = {m: readings_of(m) for m in models}
    outputs = {m: translations(m) for m in models} if translate else {}
    fig = figure(results)
    text = markdown(results, outputs)
    if png is not None:
        save(fig, png)
    if md is not None:
        Path(md).parent.mkdir(parents=True, exist_ok=True)
        Path(md).write_text(text, encoding="utf-8")
    if models_md is not None:
        update_section(models_md, text)
    return dict(results=results, outputs=outputs, figure=fig, markdown=text, table=table(results))


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--png", type=Path, default=PNG)
    parser.add_argument("--md", type=Path, default=MD)
    parser.add_argument("--models-md", type=Path, default=MODELS_MD,
                        help="page whose seed-figure section is rewritten (default docs/models.md)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    out = run(png=args.png, md=args.md, models_md=args.models_md)
    print(out["markdown"])
    print(f"\nwrote {args.png} and {args.md}; wall time {time.perf_counter() - _T0:.1f} s (imports included)")
    return out


if __name__ == "__main__":
    main()
