"""Do the heads put the adjective–noun crossing where it belongs?

The in-domain counterpart of Bahdanau et al.'s "European Economic Area" -> "zone économique
européenne" figure: English adjective–noun pairs that French reorders to noun–adjective. Each
caption's correct French is forced through each shipped translator; for every cross-attention
head (and the layer means and the all-heads mean) the French adjective and noun are linked to
their argmax English word. A pair's crossing is *recovered* when both links are right
(adjective -> adjective, noun -> noun).

    python examples/reordering_attention.py [--convention naive|shift]
"""

from __future__ import annotations

import argparse

import torch

import headscope
from headscope.align import align_inspection
from headscope.align.wordmaps import cross_readings
from headscope.readings import Head, HeadsMean, LayerMean, Reading

# (English, French, [(English adjective, English noun, French adjective, French noun) word indices])
CAPTIONS = [
    ("A man in a red shirt.", "Un homme en chemise rouge.", [(4, 5, 4, 3)]),
    ("A black dog is running on the green grass.", "Un chien noir court sur l'herbe verte.",
     [(1, 2, 2, 1), (7, 8, 6, 5)]),
    ("A woman in a white dress.", "Une femme en robe blanche.", [(4, 5, 4, 3)]),
    ("A man wearing a blue hat.", "Un homme portant un chapeau bleu.", [(4, 5, 5, 4)]),
    ("Two men in orange vests are working.", "Deux hommes en gilets oranges travaillent.", [(3, 4, 4, 3)]),
    ("A brown dog is playing with a yellow ball.", "Un chien brun joue avec un ballon jaune.",
     [(1, 2, 2, 1), (7, 8, 7, 6)]),
    ("A child in a pink jacket.", "Un enfant en veste rose.", [(4, 5, 4, 3)]),
]


def crossing_scores(model: str, convention: str) -> dict[Reading, tuple[int, int]]:
    """Per cross reading (heads, layer means, all-heads mean): (correct links, crossings recovered)."""
    sources, targets, _ = zip(*CAPTIONS)
    insps = headscope.inspect(model, [s.split() for s in sources], target=[t.split() for t in targets],
                              is_split_into_words=True, kinds=["cross"])
    scores = {}
    for reading in cross_readings(insps[0], ("heads", "layer_mean", "all_mean")):
        links_ok = crossings = 0
        for insp, (_, _, pairs) in zip(insps, CAPTIONS):
            _, links = align_inspection(insp, reading, convention=convention)
            for s_adj, s_noun, t_adj, t_noun in pairs:
                adj, noun = (s_adj, t_adj) in links, (s_noun, t_noun) in links
                links_ok += adj + noun
                crossings += adj and noun
        scores[reading] = (links_ok, crossings)
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--convention", default="naive", choices=("naive", "shift"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    n_pairs = sum(len(p) for _, _, p in CAPTIONS)
    print(f"{n_pairs} adjective–noun pairs in {len(CAPTIONS)} captions; {args.convention} convention; "
          "argmax links of the forced reference translation")
    print("\n| model | map | adjective + noun links right | crossings recovered |\n|---|---|---:|---:|")
    for model in ("headscope/en-fr-1x1", "headscope/en-fr"):
        scores = crossing_scores(model, args.convention)
        heads = {r: v for r, v in scores.items() if isinstance(r, Head)}
        best = max(heads, key=lambda r: heads[r])
        rows = [("best head " + best.label, heads[best]), (HeadsMean("cross").label, scores[HeadsMean("cross")])]
        rows += [(r.label, v) for r, v in scores.items() if isinstance(r, LayerMean)]
        full = sum(c == n_pairs for _, c in heads.values())
        for name, (links, crossings) in rows:
            print(f"| {model} | {name} | {links}/{2 * n_pairs} | {crossings}/{n_pairs} |")
        print(f"| {model} | heads recovering every crossing | {full} of {len(heads)} heads | |")


if __name__ == "__main__":
    main()
