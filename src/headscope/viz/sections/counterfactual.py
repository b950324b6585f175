"""Counterfactual attention in the report, under the Faithful claim.

For the page's one input, each layer of the decision kind and all its heads together get their
attention replaced during the forward pass - uniform, randomly permuted, adversarial within a
total-variation bound (:func:`headscope.faithful.counterfactual`, Jain & Wallace 2019 section 4) -
and the block shows how far the output moved and how different a map the output tolerates:
a table and Jain & Wallace's figure (:func:`~headscope.viz.figures.swap_scatter`).
"""

from __future__ import annotations

from collections.abc import Sequence

from headscope import faithful
from headscope.errors import NotApplicableError
from headscope.inspection import Inspection

from ..figures import swap_scatter
from ..page import Section, escape

__all__ = ["counterfactual_block"]


def _table(res: faithful.CounterfactualResult) -> str:
    head = ("<tr><th>heads</th><th>method</th><th>JS from original (bits)</th><th>output change (TVD)</th>"
            "<th>decision changed</th><th>Δ log-likelihood</th></tr>")
    rows = []
    for g in res.groups():
        method = g["method"] if g["epsilon"] is None else f"adversarial, TVD ≤ {g['epsilon']:g}"
        rows.append(f"<tr><td><code>{escape(g['target'])}</code></td><td>{escape(method)}</td>"
                    f"<td>{g['js_mean']:.3f}</td><td>{g['tvd_median']:.4f}</td>"
                    f"<td>{'yes' if g['flip_rate'] >= 0.5 else 'no'}</td><td>{g['ll_change_mean']:+.3f}</td></tr>")
    return f"<table>{head}{''.join(rows)}</table>"


def counterfactual_block(section: Section, insp: Inspection, *, epsilons: Sequence[float] = (0.01, 0.05),
                         steps: int = 20, permutations: int = 5) -> None:
    """Append the counterfactual-attention block to the report's faithful ``section``.

    Parameters
    ----------
    section
        The faithful section (parts are appended to it).
    insp
        The inspection; its model is re-run (``insp.loaded``).
    epsilons, steps, permutations
        The adversarial bounds and search steps, and the permutation draws (kept small: a report
        computes them for one input).
    """
    if insp.loaded is None:
        section.note("<b>Counterfactual attention not computed</b>: this inspection has no model attached.")
        return
    try:
        res = faithful.counterfactual(insp, method=["uniform", "permute", "adversarial"], epsilon=list(epsilons),
                                      steps=steps, permutations=permutations)
    except NotApplicableError as err:
        section.note(f"Counterfactual attention: <b>not applicable</b> ({escape(err)}).")
        return
    section.add("<h3>Counterfactual attention</h3><p>Each layer's heads (and all heads together) get their "
                "attention replaced <i>during the forward pass</i>: uniform over the unmasked keys, the row's own "
                "weights randomly permuted, or the most different map (largest Jensen–Shannon divergence) whose "
                "output stays within a total-variation bound (Jain &amp; Wallace 2019, §4). A map that can be "
                "swapped for a very different one without changing the output is weak evidence of what drove it."
                "</p>")
    section.add(_table(res))
    section.figure(swap_scatter({f"{res.model_name}: {t}": res for t in res.targets},
                                targets={f"{res.model_name}: {t}": t for t in res.targets}),
                   "Largest JS divergence from the original map reached within each TVD bound (coloured), against "
                   "the output change it causes; hollow markers: uniform (grey) and permuted (orange) maps. "
                   f"{res.n_examples} input, {steps} search steps per bound; every adversarial map re-checked by "
                   "a second forward.")
